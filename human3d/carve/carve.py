"""The carving stage: deform and remesh a starting mesh until its rendered normals and masks match the views.

1. Body refinement: the body fit's mesh is aligned to the target masks and normals by a similarity transform
   (log-scale, axis-angle rotation, translation about its centroid), ``body_refine_steps`` Adam steps at
   ``body_refine_resolution`` with PSHuman's view weights [1.0, 0.4, 0.8, 1.0, 0.8, 0.4]. PSHuman refines SMPL-X
   pose and shape here; we only receive a mesh, so we correct its placement and size, and leave shape changes to
   carving (which is free-form and starts right after).
2. The mesh is made closed and manifold when it is not (signed-distance iso-surface), then carved with
   continuous remeshing (:mod:`human3d.carve.optimizer`): L1 normal loss inside the target masks plus L1 mask
   loss, over every view, weighted by ``MultiView.view_weights``. Coarse to fine (:func:`carve_schedule`):
   ``coarse_levels`` levels at R/4, R/2 (by default) share ``coarse_fraction`` of the iterations, the rest run at
   R; each level's edge-length floor is ``edge_length_pixels`` of its pixels (:func:`edge_length_floor`), so the
   output is as fine as the views can justify and no finer. Vertices that stray off the canvas (where no pixel
   sees them) are pulled back (:func:`pull_into_canvas`).
3. Optional Poisson clean-up, then :func:`human3d.carve.meshing.clean_mesh`: one component, manifold,
   outward winding, no degenerate faces, self-intersections smoothed away; what it did and the self-intersecting
   faces left go into the carve report.

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

from human3d.cameras import (
    BODY_VIEW_AZIMUTHS,
    BODY_VIEW_NAMES,
    BODY_VIEW_WEIGHTS,
    FACE_VIEW_NAME,
    OrthoCamera,
    face_camera,
)
from human3d.carve.meshing import clean_mesh, is_closed_manifold, make_watertight, poisson_cleanup
from human3d.carve.optimizer import MeshOptimizer, RemeshingSettings
from human3d.config import CarveConfig
from human3d.context import StageContext, log, torch_threads
from human3d.errors import BadInputError, UsageError
from human3d.render import Rasterizer, get_rasterizer, render_normals
from human3d.types import BodyFit, Mesh, MultiView

#: PSHuman's view weights of the body refinement, in the order of cameras.BODY_VIEW_NAMES.
BODY_REFINE_WEIGHTS: tuple[float, ...] = BODY_VIEW_WEIGHTS

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
    levels: list[dict[str, float]] = field(default_factory=list)
    """Per level of the coarse-to-fine schedule: resolution, iterations, edge_floor, vertices at its end, seconds."""
    cleanup: dict[str, int] = field(default_factory=dict)
    """What :func:`human3d.carve.meshing.clean_mesh` found and fixed (components removed, ...)."""
    self_intersecting_faces: int = 0
    """Faces of the output that intersect another face (open3d), after clean-up."""


def view_losses(vertices: torch.Tensor, faces: torch.Tensor, targets: ViewTargets, rasterizer: Rasterizer,
                normal_weight: float = 1.0, mask_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted L1 mask loss plus L1 normal loss inside the target masks, averaged over pixels and views."""
    out = render_normals(vertices, faces, targets.cameras, rasterizer)
    w = targets.weights / targets.weights.sum()
    mask_l1 = (out.mask - targets.masks).abs().mean((1, 2))  # (N,)
    normal_l1 = ((out.normals - targets.normals).abs().sum(-1) * targets.masks).mean((1, 2))
    loss = mask_weight * (w * mask_l1).sum() + normal_weight * (w * normal_l1).sum()
    return loss, {"mask_l1": float((w * mask_l1.detach()).sum()), "normal_l1": float((w * normal_l1.detach()).sum())}


@torch.no_grad()
def off_canvas_offsets(vertices: torch.Tensor, cameras: list[OrthoCamera]) -> torch.Tensor:
    """(V, 3) the move that would bring each vertex into the canvas of every body view (zero for vertices inside),
    summed over the views."""
    out = torch.zeros_like(vertices)
    for c in cameras:
        if c.name not in BODY_VIEW_NAMES:
            continue
        rot = torch.as_tensor(c.rotation[:2], dtype=vertices.dtype, device=vertices.device)  # (2, 3)
        center = torch.as_tensor(c.center, dtype=vertices.dtype, device=vertices.device)
        xy = vertices @ rot.T - center
        out += (xy.clamp(-c.half_extent, c.half_extent) - xy) @ rot
    return out


@torch.no_grad()
def pull_into_canvas(vertices: torch.Tensor, cameras: list[OrthoCamera]) -> None:
    """Add to ``vertices.grad`` a pull toward the canvas for vertices outside it, as strong as the RMS gradient.

    Framing puts the whole person inside the canvas, but no pixel sees beyond it: a part of the mesh that strays off
    the canvas (feet of a body fit a little too tall) gets no gradient and would stay there. The pull has the
    scale of the view gradients, so the optimiser's moments stay meaningful; a hard clamp instead flattens such
    parts onto the canvas border, where they fold.
    """
    if vertices.grad is None:
        return
    offset = off_canvas_offsets(vertices.detach(), cameras)
    outside = offset.norm(dim=1) > 0
    if outside.any():
        rms = vertices.grad.square().sum(1).mean().sqrt()
        vertices.grad[outside] -= rms * torch.nn.functional.normalize(offset[outside], dim=1)


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

    Runs the levels of :func:`carve_schedule`, each with the edge-length floor of its resolution
    (:func:`edge_length_floor`). Returns the carved (V', 3) vertices and (F', 3) faces.
    """
    with torch_threads(cfg.threads if vertices.device.type == "cpu" else 0):
        return _carve(vertices, faces, targets, cfg, rasterizer, progress, report)


def carve_schedule(cfg: CarveConfig) -> list[tuple[int, int]]:
    """(render resolution, iterations) of each level, coarse to fine: ``coarse_levels`` levels at R/2^k sharing
    ``coarse_fraction`` of the iterations, then the rest at R = ``cfg.resolution``."""
    levels = max(int(cfg.coarse_levels), 0)
    n_coarse = int(round(cfg.iterations * cfg.coarse_fraction)) if levels else 0
    out = [(max(cfg.resolution >> k, 16), n_coarse // levels + (1 if i < n_coarse % levels else 0))
           for i, k in enumerate(range(levels, 0, -1))]
    return [lv for lv in out if lv[1] > 0] + [(cfg.resolution, cfg.iterations - n_coarse)]


def edge_length_floor(cfg: CarveConfig, resolution: int) -> float:
    """The smallest reference edge length at a render ``resolution``: ``edge_length_pixels`` pixels of 2/R units."""
    return cfg.edge_length_pixels * 2.0 / resolution


def _carve(vertices: torch.Tensor, faces: torch.Tensor, targets: ViewTargets, cfg: CarveConfig,
           rasterizer: Rasterizer | None, progress: ProgressCallback | None,
           report: CarveReport | None) -> tuple[torch.Tensor, torch.Tensor]:
    rasterizer = rasterizer or get_rasterizer(cfg.renderer, vertices.device)
    report = report if report is not None else CarveReport()
    schedule = carve_schedule(cfg)
    floor0 = edge_length_floor(cfg, schedule[0][0])
    settings = RemeshingSettings(lr=cfg.lr, edge_len_lims=(floor0, max(min(cfg.edge_length_max,
                                                                         cfg.edge_length_range * floor0), floor0)),
                                 laplacian_weight=cfg.laplacian_weight, remesh_interval=cfg.remesh_interval,
                                 flip_interval=cfg.flip_interval, max_vertices=cfg.max_vertices)
    opt = MeshOptimizer(vertices.detach(), faces, settings)
    t0 = time.perf_counter()
    stats: dict[str, float] = {}
    done, total = 0, max(cfg.iterations, 1)
    for resolution, iterations in schedule:
        t_level = time.perf_counter()
        views = targets.resized(min(resolution, targets.resolution))
        floor = edge_length_floor(cfg, resolution)
        if report.levels:  # finer views: what had converged at the coarser floor now starts that much finer
            opt.scale_reference_lengths(floor / report.levels[-1]["edge_floor"])
        # The ceiling too follows the level: where the views disagree (generated views are never exactly
        # consistent) vertices keep moving, and the reference controller would coarsen them up to edge_length_max.
        opt.set_edge_length_limits(floor, max(min(cfg.edge_length_max, cfg.edge_length_range * floor), floor))
        for _ in range(iterations):
            opt.zero_grad()
            loss, stats = view_losses(opt.vertices, opt.faces, views, rasterizer, cfg.normal_weight,
                                      cfg.mask_weight)
            loss.backward()
            pull_into_canvas(opt.vertices, views.cameras)
            opt.step()
            done += 1
            if progress is not None and (done % 5 == 0 or done == cfg.iterations):
                progress(done / total, f"carving {done}/{cfg.iterations} at {resolution}px: "
                         f"{opt.vertices.shape[0]} vertices, mask {stats['mask_l1']:.4f}, "
                         f"normal {stats['normal_l1']:.4f}")
        report.levels.append({"resolution": resolution, "iterations": iterations, "edge_floor": floor,
                              "vertices": int(opt.vertices.shape[0]),
                              "seconds": round(time.perf_counter() - t_level, 3)})
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



def start_mesh(views: MultiView, body: BodyFit, targets: ViewTargets, cfg: CarveConfig, ctx: StageContext,
               rasterizer: Rasterizer, report: CarveReport) -> tuple[np.ndarray, np.ndarray]:
    """The closed manifold mesh carving starts from ((V, 3) float32, (F, 3) int64): the views' own mesh
    (``cfg.start``: views, or auto when the views carry one; made watertight on a grid of the first level's edge
    floor when it is not closed), or the body fit after the body refinement (a similarity transform on the body
    views, PSHuman's weights)."""
    device = torch.device(ctx.device)
    if cfg.start != "body" and views.start_vertices is not None and views.start_faces is not None \
            and len(views.start_faces):
        t0 = time.perf_counter()
        v_np, f_np = np.asarray(views.start_vertices, np.float32), np.asarray(views.start_faces, np.int64)
        if not is_closed_manifold(v_np, f_np):
            v_np, f_np = make_watertight(v_np, f_np, spacing=edge_length_floor(cfg, carve_schedule(cfg)[0][0]))
        report.seconds["watertight"] = time.perf_counter() - t0
        return v_np.astype(np.float32), f_np.astype(np.int64)
    if cfg.start == "views":
        ctx.warn("carve: the views carry no mesh to start from; starting from the body fit")
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
    return v_np, f_np


def check_carve_config(cfg: CarveConfig) -> None:
    """Refuse carve settings no run could use, before any work (the CLI calls it with the other checks)."""
    if cfg.iterations < 0 or cfg.resolution < 16 or cfg.edge_length_pixels <= 0 or cfg.edge_length_max <= 0 \
            or not 0 <= cfg.coarse_fraction < 1 or cfg.coarse_levels < 0 or cfg.flip_interval < 1 \
            or cfg.start not in ("auto", "body", "views"):
        raise UsageError("carve settings are invalid: need iterations >= 0, resolution >= 16, edge_length_pixels "
                         "> 0, edge_length_max > 0, 0 <= coarse_fraction < 1, coarse_levels >= 0, "
                         "flip_interval >= 1 and start auto, body or views")


def carve_mesh(views: MultiView, body: BodyFit, cfg: CarveConfig, ctx: StageContext) -> Mesh:
    """Pipeline stage: body refinement, carving with continuous remeshing, optional Poisson clean-up."""
    return carve_with_report(views, body, cfg, ctx)[0]


def carve_with_report(views: MultiView, body: BodyFit, cfg: CarveConfig,
                      ctx: StageContext) -> tuple[Mesh, CarveReport]:
    """:func:`carve_mesh` that also returns its :class:`CarveReport` (timings per step, losses, sizes)."""
    check_carve_config(cfg)
    if len(body.faces) == 0:
        raise BadInputError("the body fit has no mesh to carve from; rerun the body stage")
    device = torch.device(ctx.device)
    torch.manual_seed(ctx.seed)
    rasterizer = get_rasterizer(cfg.renderer, device)
    report = CarveReport(renderer=rasterizer.name)
    targets = targets_from_multiview(views, cfg.resolution, device)
    v_np, f_np = start_mesh(views, body, targets, cfg, ctx, rasterizer, report)
    v, f = carve_from_views(torch.as_tensor(v_np, device=device), torch.as_tensor(f_np, device=device), targets,
                            cfg, rasterizer, progress=lambda fr, m: ctx.progress(0.1 + 0.85 * fr, m), report=report)
    v_np, f_np = v.cpu().numpy().astype(np.float32), f.cpu().numpy().astype(np.int64)

    # 3. Optional Poisson clean-up, then one clean closed mesh.
    if cfg.poisson:
        t0 = time.perf_counter()
        ctx.progress(0.95, "Poisson clean-up")
        v_np, f_np = poisson_cleanup(v_np, f_np, depth=cfg.poisson_depth, density_quantile=0.0,  # closed
                                     seed=ctx.seed)
        report.seconds["poisson"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctx.progress(0.97, "cleaning the mesh")
    v_np, f_np, report.cleanup = clean_mesh(v_np, f_np)
    v_np, f_np = v_np.astype(np.float32), f_np.astype(np.int64)
    report.self_intersecting_faces = report.cleanup["self_intersecting_faces_after"]
    report.vertices, report.faces = len(v_np), len(f_np)
    report.seconds["cleanup"] = time.perf_counter() - t0
    if report.self_intersecting_faces > cfg.max_self_intersections * len(f_np):
        log.warning("carve: %d of %d faces still intersect others after clean-up", report.self_intersecting_faces,
                    len(f_np))
    ctx.progress(1.0, f"carved mesh: {len(v_np)} vertices")
    log.info("carve: %s", json.dumps(report.__dict__))
    if ctx.stage_dir is not None:
        from human3d.io.atomic import atomic_write_text

        ctx.stage_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(ctx.stage_dir / "carve_report.json", json.dumps(report.__dict__, indent=1))
    if not math.isfinite(float(np.abs(v_np).sum())):
        raise RuntimeError("carving diverged (non-finite vertices)")
    # the body's height travels with the mesh: the export's metric transform needs nothing from an earlier stage
    return Mesh(vertices=v_np, faces=f_np, height_m=float(body.height_m),
                canonical_height=float(body.canonical_height),
                facing_away=body.report.get("facing") == "away"), report

