"""The carving stage: deform and remesh a starting mesh until its rendered normals and masks match the views.

1. Body refinement: the body fit's mesh is aligned to the target masks and normals by a similarity transform
   (log-scale, axis-angle rotation, translation about its centroid), ``body_refine_steps`` Adam steps at
   ``body_refine_resolution`` with PSHuman's view weights [1.0, 0.4, 0.8, 1.0, 0.8, 0.4]. PSHuman refines SMPL-X
   pose and shape here; we only receive a mesh, so we correct its placement and size, and leave shape changes to
   carving (which is free-form and starts right after).
2. The mesh is made closed and manifold when it is not (signed-distance iso-surface), then carved with
   continuous remeshing (:mod:`human3d.carve.optimizer`): L1 normal loss inside the target masks plus L1 mask
   loss, over every view, weighted by ``MultiView.view_weights``; the first ``coarse_fraction`` of the iterations
   render at half resolution.
3. Optional Poisson clean-up keeping the largest component.

:func:`carve_from_views` is the lower-level entry point: any starting mesh, any target views.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from human3d.cameras import BODY_VIEW_AZIMUTHS, BODY_VIEW_NAMES, FACE_VIEW_NAME, OrthoCamera, face_camera
from human3d.carve.meshing import is_closed_manifold, make_watertight, poisson_cleanup
from human3d.carve.optimizer import MeshOptimizer, RemeshingSettings
from human3d.config import CarveConfig
from human3d.context import StageContext, log, torch_threads
from human3d.errors import BadInputError, UsageError
from human3d.render import Rasterizer, get_rasterizer, render_normals
from human3d.types import BodyFit, Mesh, MultiView

#: PSHuman's view weights of the body refinement, in the order of cameras.BODY_VIEW_NAMES.
BODY_REFINE_WEIGHTS: tuple[float, ...] = (1.0, 0.4, 0.8, 1.0, 0.8, 0.4)

ProgressCallback = Callable[[float, str], None]


@dataclass
class ViewTargets:
    """Target views as tensors: normals (N, R, R, 3) world frame, masks (N, R, R) float in [0, 1],
    weights (N,), and the cameras (all of resolution R)."""

    normals: torch.Tensor
    masks: torch.Tensor
    weights: torch.Tensor
    cameras: list[OrthoCamera]

    @property
    def resolution(self) -> int:
        return int(self.masks.shape[-1])

    def resized(self, resolution: int) -> ViewTargets:
        """The same views resampled to ``resolution`` (area average; normals re-normalised)."""
        if resolution == self.resolution:
            return self
        f = torch.nn.functional
        m = f.interpolate(self.masks[:, None], size=(resolution, resolution), mode="area")[:, 0]
        n = f.interpolate((self.normals * self.masks[..., None]).permute(0, 3, 1, 2), size=(resolution, resolution),
                          mode="area").permute(0, 2, 3, 1)
        n = f.normalize(n, dim=-1, eps=1e-12)
        cams = [OrthoCamera(c.name, c.azimuth_deg, resolution, c.center, c.half_extent) for c in self.cameras]
        return ViewTargets(normals=n, masks=m, weights=self.weights, cameras=cams)


@dataclass
class CarveReport:
    """What happened: iterations, vertex counts, timings (seconds) and the final losses."""

    iterations: int = 0
    vertices: int = 0
    faces: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    renderer: str = ""


def view_losses(vertices: torch.Tensor, faces: torch.Tensor, targets: ViewTargets, rasterizer: Rasterizer,
                normal_weight: float = 1.0, mask_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted L1 mask loss plus L1 normal loss inside the target masks, averaged over pixels and views."""
    out = render_normals(vertices, faces, targets.cameras, rasterizer)
    w = targets.weights / targets.weights.sum()
    mask_l1 = (out.mask - targets.masks).abs().mean((1, 2))  # (N,)
    normal_l1 = ((out.normals - targets.normals).abs().sum(-1) * targets.masks).mean((1, 2))
    loss = mask_weight * (w * mask_l1).sum() + normal_weight * (w * normal_l1).sum()
    return loss, {"mask_l1": float((w * mask_l1.detach()).sum()), "normal_l1": float((w * normal_l1.detach()).sum())}


def refine_similarity(vertices: torch.Tensor, faces: torch.Tensor, targets: ViewTargets, rasterizer: Rasterizer,
                      steps: int, lr: float = 0.01, progress: ProgressCallback | None = None) -> torch.Tensor:
    """Align a mesh to the targets by a similarity transform about its centroid; returns (V, 3) moved vertices."""
    if steps <= 0:
        return vertices
    v0 = vertices.detach()
    centroid = v0.mean(0)
    params = torch.zeros(7, dtype=v0.dtype, device=v0.device, requires_grad=True)  # log-scale, rotvec, shift
    opt = torch.optim.Adam([params], lr=lr)

    def apply(p: torch.Tensor) -> torch.Tensor:
        rot = _axis_angle_matrix(p[1:4])
        return (v0 - centroid) @ rot.T * torch.exp(p[0]) + centroid + p[4:7]

    for step in range(steps):
        opt.zero_grad()
        loss, _ = view_losses(apply(params), faces, targets, rasterizer)
        loss.backward()
        opt.step()
        if progress is not None and (step % 10 == 0 or step == steps - 1):
            progress((step + 1) / steps, f"body refinement {step + 1}/{steps}")
    with torch.no_grad():
        return apply(params)


def _axis_angle_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """(3,) axis-angle -> (3, 3) rotation (Rodrigues; smooth at zero through the series of sin and cos terms)."""
    theta2 = (rotvec * rotvec).sum()
    k = torch.zeros(3, 3, dtype=rotvec.dtype, device=rotvec.device)
    k = k.index_put((torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([1, 2, 0, 2, 0, 1])),
                    torch.stack([-rotvec[2], rotvec[1], rotvec[2], -rotvec[0], -rotvec[1], rotvec[0]]))
    theta = torch.sqrt(theta2 + 1e-24)
    a = torch.where(theta2 > 1e-8, torch.sin(theta) / theta, 1 - theta2 / 6)
    b = torch.where(theta2 > 1e-8, (1 - torch.cos(theta)) / (theta2 + 1e-24), 0.5 - theta2 / 24)
    return torch.eye(3, dtype=rotvec.dtype, device=rotvec.device) + a * k + b * (k @ k)


def carve_from_views(vertices: torch.Tensor, faces: torch.Tensor, targets: ViewTargets, cfg: CarveConfig,
                     rasterizer: Rasterizer | None = None, progress: ProgressCallback | None = None,
                     report: CarveReport | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Carve a closed manifold mesh (V, 3), (F, 3) to match ``targets`` with continuous remeshing.

    Uses cfg.iterations, coarse_fraction, edge_length_min/max, lr, laplacian_weight, normal_weight, mask_weight and
    remesh_interval. Returns the carved (V', 3) vertices and (F', 3) faces.
    """
    with torch_threads(cfg.threads if vertices.device.type == "cpu" else 0):
        return _carve(vertices, faces, targets, cfg, rasterizer, progress, report)


def _carve(vertices: torch.Tensor, faces: torch.Tensor, targets: ViewTargets, cfg: CarveConfig,
           rasterizer: Rasterizer | None, progress: ProgressCallback | None,
           report: CarveReport | None) -> tuple[torch.Tensor, torch.Tensor]:
    rasterizer = rasterizer or get_rasterizer(cfg.renderer, vertices.device)
    report = report if report is not None else CarveReport()
    settings = RemeshingSettings(lr=cfg.lr, edge_len_lims=(cfg.edge_length_min, cfg.edge_length_max),
                                 laplacian_weight=cfg.laplacian_weight, remesh_interval=cfg.remesh_interval)
    opt = MeshOptimizer(vertices.detach(), faces, settings)
    n_coarse = int(round(cfg.iterations * cfg.coarse_fraction))
    coarse = targets.resized(max(targets.resolution // 2, 16))
    t0 = time.perf_counter()
    stats: dict[str, float] = {}
    for it in range(cfg.iterations):
        views = coarse if it < n_coarse else targets
        opt.zero_grad()
        loss, stats = view_losses(opt.vertices, opt.faces, views, rasterizer, cfg.normal_weight, cfg.mask_weight)
        loss.backward()
        opt.step()
        if progress is not None and (it % 5 == 0 or it == cfg.iterations - 1):
            progress((it + 1) / max(cfg.iterations, 1),
                     f"carving {it + 1}/{cfg.iterations}: {opt.vertices.shape[0]} vertices, "
                     f"mask {stats['mask_l1']:.4f}, normal {stats['normal_l1']:.4f}")
    report.iterations += cfg.iterations
    report.seconds["carve"] = time.perf_counter() - t0
    report.losses = stats
    report.renderer = rasterizer.name
    v, f = opt.vertices.detach(), opt.faces
    report.vertices, report.faces = int(v.shape[0]), int(f.shape[0])
    return v, f


def targets_from_multiview(views: MultiView, resolution: int, device: str | torch.device = "cpu") -> ViewTargets:
    """Tensors and cameras for the views of ``views`` that have a known camera (body views and the face view)."""
    names = list(views.view_names) or list(BODY_VIEW_NAMES)[: views.masks.shape[0]]
    if views.masks.ndim != 3 or views.normals.shape[:3] != views.masks.shape or len(names) != views.masks.shape[0]:
        raise BadInputError("the multi-view result is inconsistent (normals, masks and view names disagree); "
                            "rerun the multiview stage")
    r = int(views.masks.shape[-1])
    cams, keep = [], []
    for i, name in enumerate(names):
        if name in BODY_VIEW_NAMES:
            cams.append(OrthoCamera(name, BODY_VIEW_AZIMUTHS[BODY_VIEW_NAMES.index(name)], r))
        elif name == FACE_VIEW_NAME:
            cams.append(face_camera(r))
        else:
            continue
        keep.append(i)
    if not keep or not views.masks[keep].any():
        raise BadInputError("the multi-view result has no usable view with a non-empty mask; rerun the multiview "
                            "stage")
    weights = np.asarray(views.view_weights, dtype=np.float32)[keep] if len(views.view_weights) else \
        np.ones(len(keep), np.float32)
    t = ViewTargets(
        normals=torch.as_tensor(np.asarray(views.normals)[keep], dtype=torch.float32, device=device),
        masks=torch.as_tensor(np.asarray(views.masks)[keep], dtype=torch.float32, device=device),
        weights=torch.as_tensor(weights, device=device),
        cameras=cams,
    )
    return t.resized(resolution)


def carve_mesh(views: MultiView, body: BodyFit, cfg: CarveConfig, ctx: StageContext) -> Mesh:
    """Pipeline stage: body refinement, carving with continuous remeshing, optional Poisson clean-up."""
    return carve_with_report(views, body, cfg, ctx)[0]


def carve_with_report(views: MultiView, body: BodyFit, cfg: CarveConfig,
                      ctx: StageContext) -> tuple[Mesh, CarveReport]:
    """:func:`carve_mesh` that also returns its :class:`CarveReport` (timings per step, losses, sizes)."""
    if cfg.iterations < 0 or cfg.resolution < 16 or not (0 < cfg.edge_length_min <= cfg.edge_length_max):
        raise UsageError("carve settings are invalid: need iterations >= 0, resolution >= 16 and "
                         "0 < edge_length_min <= edge_length_max")
    if len(body.faces) == 0:
        raise BadInputError("the body fit has no mesh to carve from; rerun the body stage")
    device = torch.device(ctx.device)
    torch.manual_seed(ctx.seed)
    rasterizer = get_rasterizer(cfg.renderer, device)
    report = CarveReport(renderer=rasterizer.name)
    targets = targets_from_multiview(views, cfg.resolution, device)
    verts = torch.as_tensor(np.asarray(body.vertices), dtype=torch.float32, device=device)
    faces = torch.as_tensor(np.asarray(body.faces), dtype=torch.long, device=device)

    # 1. Body refinement on the body views with PSHuman's weights.
    t0 = time.perf_counter()
    body_idx = [i for i, c in enumerate(targets.cameras) if c.name in BODY_VIEW_NAMES]
    if not body_idx:
        raise BadInputError("the multi-view result has no body view (front, back, ...); rerun the multiview stage")
    refine_targets = ViewTargets(
        normals=targets.normals[body_idx], masks=targets.masks[body_idx],
        weights=torch.tensor([BODY_REFINE_WEIGHTS[BODY_VIEW_NAMES.index(targets.cameras[i].name)] for i in body_idx],
                             device=device),
        cameras=[targets.cameras[i] for i in body_idx],
    ).resized(min(cfg.body_refine_resolution, cfg.resolution))
    with torch_threads(cfg.threads if device.type == "cpu" else 0):
        verts = refine_similarity(verts, faces, refine_targets, rasterizer, cfg.body_refine_steps,
                                  progress=lambda f, m: ctx.progress(0.1 * f, m))
    report.seconds["body_refine"] = time.perf_counter() - t0

    # 2. A closed manifold start, then carving.
    t0 = time.perf_counter()
    v_np, f_np = verts.cpu().numpy(), faces.cpu().numpy()
    if not is_closed_manifold(v_np, f_np):
        ctx.progress(0.1, "making the body mesh watertight")
        v_np, f_np = make_watertight(v_np, f_np, spacing=cfg.edge_length_max / 2)
    report.seconds["watertight"] = time.perf_counter() - t0
    v, f = carve_from_views(torch.as_tensor(v_np, device=device), torch.as_tensor(f_np, device=device), targets,
                            cfg, rasterizer, progress=lambda fr, m: ctx.progress(0.1 + 0.85 * fr, m), report=report)
    v_np, f_np = v.cpu().numpy().astype(np.float32), f.cpu().numpy().astype(np.int64)

    # 3. Optional Poisson clean-up.
    if cfg.poisson:
        t0 = time.perf_counter()
        ctx.progress(0.95, "Poisson clean-up")
        v_np, f_np = poisson_cleanup(v_np, f_np, depth=cfg.poisson_depth)
        report.seconds["poisson"] = time.perf_counter() - t0
    ctx.progress(1.0, f"carved mesh: {len(v_np)} vertices")
    log.info("carve: %s", json.dumps(report.__dict__))
    if ctx.stage_dir is not None:
        from human3d.io.atomic import atomic_write_text

        ctx.stage_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(ctx.stage_dir / "carve_report.json", json.dumps(report.__dict__, indent=1))
    if not math.isfinite(float(np.abs(v_np).sum())):
        raise RuntimeError("carving diverged (non-finite vertices)")
    return Mesh(vertices=v_np, faces=f_np), report

