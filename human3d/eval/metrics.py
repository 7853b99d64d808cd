"""Reconstruction metrics: the geometry figures of DRPose's Table 1 and the appearance figures of its Table 2.

Geometry (Table 1), from ``n_points`` (default 100,000, as the paper) points sampled uniformly by area on each
surface, with the normal of the triangle each point lies on:

* Chamfer distance, in **centimetres**: ``CD = (mean_p min_q |p - q| + mean_q min_p |q - p|) / 2`` over predicted
  points p and ground-truth points q (unsquared Euclidean distances; the mean of the two one-sided distances, the
  ICON/ECON "Chamfer" convention);
* normal consistency in [0, 1]: the mean, over both directions, of ``|n_p . n_q|`` at each point's nearest neighbour
  (the absolute value as in Occupancy Networks, so a mesh with flipped winding is not punished twice);
* F-score in percent at a distance threshold ``tau`` (default 1 cm): ``100 * 2PR / (P + R)`` with precision P the
  fraction of predicted points within tau of the ground truth and recall R the converse.

Units: every distance is measured after scaling the ground truth to its real standing height ``gt_height_m`` (the
same factor is applied to the aligned prediction), so 1 unit = 1 m and figures are reported in cm. With no height
given, the ground truth's own y extent is taken as metres (right for metric scans such as THuman2.1, whose files are
in metres; a non-metric ground truth needs ``gt_height_m``).

How this relates to the papers' figures: DRPose (sec. 5, "Evaluation protocol") states only that CD, NC and F-score
are computed from 100K uniformly sampled points per mesh and that PSNR/SSIM/LPIPS come from 6 evenly spaced azimuths
distinct from the 3 input views. It states neither the unit of CD (its Table 1 lists 37.6 to 187.5), nor the F-score
threshold, nor the alignment, nor the mesh normalisation. Its CD values are 20-100x the 1-3 cm that ICON-style
evaluations report in cm, so they are in some normalised or scaled unit and **are not comparable with the cm
figures here**; NC (0.57-0.74 there) and F-score (4.8-20.7 there) depend on the same unstated choices. Compare
methods with this module under one protocol rather than against the printed numbers.

Appearance (Table 2): both meshes, already in one frame, are rendered without lighting (albedo: texture, vertex
colours, or a flat grey when a mesh has neither) on a white background with one orthographic camera framing shared
by both, from 6 azimuths ``EVAL_AZIMUTHS`` = 30, 90, ..., 330 degrees: evenly spaced and distinct from the 3 input
views of the benchmark (0, 120, 240). PSNR (dB, data range 1) is that of the mean squared error over all 6 views
(per-view values are kept too); SSIM (scikit-image, colour, data range 1) is averaged over the 6 views; LPIPS (AlexNet, :mod:`human3d.eval.lpips`) likewise, or ``None`` when its weights are
absent (never estimated without them).

Alignment of the prediction onto the ground truth: ``none``; ``scale`` (scale+translation: the predicted y extent is
matched to the ground truth's and the bounding-box centres are made to coincide); ``icp`` (``scale``, then rigid
point-to-point ICP, Open3D).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from human3d.errors import MissingBackendError, UsageError
from human3d.ops.mesh import sample_surface
from human3d.types import TexturedMesh

ALIGNMENTS = ("none", "scale", "icp")
DEFAULT_POINTS = 100_000
DEFAULT_THRESHOLD_CM = 1.0
#: The appearance views: 6 azimuths evenly spaced, 30 degrees off the benchmark's input views (0, 120, 240).
EVAL_AZIMUTHS: tuple[float, ...] = (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)


@dataclass
class GeometryScores:
    """chamfer_cm (and its two one-sided halves), normal_consistency in [0, 1], fscore in percent at
    threshold_cm."""

    chamfer_cm: float
    accuracy_cm: float
    """Mean distance from predicted points to the ground truth (the prediction -> GT half of CD)."""
    completeness_cm: float
    """Mean distance from ground-truth points to the prediction (the GT -> prediction half of CD)."""
    normal_consistency: float
    fscore: float
    precision: float
    recall: float
    threshold_cm: float
    n_points: int


@dataclass
class AppearanceScores:
    """Means over the views; per-view values in ``per_view``. lpips is None when its weights are absent."""

    psnr: float
    ssim: float
    lpips: float | None
    azimuths: list[float]
    resolution: int
    per_view: dict[str, list[float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- sampling and nearest neighbours ------------------------------------------------------------------------------
def nearest_neighbours(queries: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (M, 3) query, (distance, index) of its nearest point among (N, 3) ``points``."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(points).query(queries, k=1, workers=-1)
    return dist, idx


# -- geometry -----------------------------------------------------------------------------------------------------
def geometry_scores(pred_vertices: np.ndarray, pred_faces: np.ndarray, gt_vertices: np.ndarray, gt_faces: np.ndarray,
                    *, n_points: int = DEFAULT_POINTS, threshold_cm: float = DEFAULT_THRESHOLD_CM,
                    seed: int = 0) -> GeometryScores:
    """Chamfer (cm), normal consistency and F-score of two meshes that are already aligned, in metres."""
    if threshold_cm <= 0:
        raise UsageError("the F-score threshold must be positive (in cm)")
    # One seed for both surfaces: identical meshes then get identical samples (CD exactly 0), and the sampling
    # noise of two similar meshes is correlated instead of adding up.
    p, pn = sample_surface(pred_vertices, pred_faces, n_points, seed)
    q, qn = sample_surface(gt_vertices, gt_faces, n_points, seed)
    return point_scores(p, pn, q, qn, threshold_cm)


def point_scores(p: np.ndarray, pn: np.ndarray, q: np.ndarray, qn: np.ndarray,
                 threshold_cm: float = DEFAULT_THRESHOLD_CM) -> GeometryScores:
    """CD (cm), NC and F-score of (N, 3) predicted points p with unit normals pn against (M, 3) ground-truth points
    q with normals qn, all in metres."""
    if threshold_cm <= 0:
        raise UsageError("the F-score threshold must be positive (in cm)")
    d_pq, i_pq = nearest_neighbours(p, q)
    d_qp, i_qp = nearest_neighbours(q, p)
    d_pq, d_qp = d_pq * 100.0, d_qp * 100.0  # metres -> cm
    nc_p = np.abs(np.sum(pn * qn[i_pq], 1)).mean()
    nc_q = np.abs(np.sum(qn * pn[i_qp], 1)).mean()
    precision = float((d_pq <= threshold_cm).mean())
    recall = float((d_qp <= threshold_cm).mean())
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return GeometryScores(
        chamfer_cm=float(0.5 * (d_pq.mean() + d_qp.mean())), accuracy_cm=float(d_pq.mean()),
        completeness_cm=float(d_qp.mean()), normal_consistency=float(0.5 * (nc_p + nc_q)), fscore=100.0 * f,
        precision=100.0 * precision, recall=100.0 * recall, threshold_cm=float(threshold_cm), n_points=len(p))


# -- alignment ----------------------------------------------------------------------------------------------------
def _bbox_centre(v: np.ndarray) -> np.ndarray:
    return 0.5 * (v.min(0) + v.max(0))


def align_scale_translation(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(4, 4) similarity that gives ``pred`` the y extent of ``gt`` and puts their bounding-box centres together."""
    h_pred = float(np.ptp(pred[:, 1]))
    if h_pred <= 0:
        raise UsageError("the predicted mesh has zero height; cannot align it")
    s = float(np.ptp(gt[:, 1])) / h_pred
    t = _bbox_centre(gt) - s * _bbox_centre(pred)
    m = np.eye(4)
    m[:3, :3] *= s
    m[:3, 3] = t
    return m


def align_icp(pred_points: np.ndarray, gt_points: np.ndarray, init: np.ndarray, max_distance: float,
              iterations: int = 50) -> np.ndarray:
    """(4, 4) rigid refinement of ``init`` by point-to-point ICP (Open3D) of (N, 3) point sets."""
    try:
        import open3d as o3d
    except ImportError as err:  # open3d is a dependency; it needs Debian's libusb-1.0-0 to import
        raise MissingBackendError(f"ICP alignment needs open3d, which does not import ({err}); "
                                  "use --align scale") from err
    src, dst = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
    src.points = o3d.utility.Vector3dVector(np.asarray(pred_points, np.float64))
    dst.points = o3d.utility.Vector3dVector(np.asarray(gt_points, np.float64))
    reg = o3d.pipelines.registration
    result = reg.registration_icp(src, dst, max_distance, init,
                                  reg.TransformationEstimationPointToPoint(with_scaling=False),
                                  reg.ICPConvergenceCriteria(max_iteration=iterations))
    return np.asarray(result.transformation)


def apply_transform(vertices: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(V, 3) points under a (4, 4) transform."""
    v = np.asarray(vertices, np.float64)
    return v @ m[:3, :3].T + m[:3, 3]


def align(pred_vertices: np.ndarray, pred_faces: np.ndarray, gt_vertices: np.ndarray, gt_faces: np.ndarray,
          method: str = "scale", *, icp_points: int = 20_000, seed: int = 0) -> np.ndarray:
    """The (4, 4) transform that brings the prediction onto the ground truth by ``method`` (see ALIGNMENTS)."""
    if method not in ALIGNMENTS:
        raise UsageError(f"unknown alignment {method!r}; choose one of {', '.join(ALIGNMENTS)}")
    if method == "none":
        return np.eye(4)
    m = align_scale_translation(np.asarray(pred_vertices, np.float64), np.asarray(gt_vertices, np.float64))
    if method == "icp":
        p, _ = sample_surface(pred_vertices, pred_faces, icp_points, seed + 7)
        q, _ = sample_surface(gt_vertices, gt_faces, icp_points, seed + 8)
        # correspondences further than a tenth of the body's height are outliers (a missing arm, a wrong leg)
        m = align_icp(p, q, m, max_distance=0.1 * float(np.ptp(np.asarray(gt_vertices)[:, 1])))
    return m


# -- rendering for appearance -------------------------------------------------------------------------------------
def _vertex_attributes(mesh: TexturedMesh) -> tuple[np.ndarray, str]:
    """(V, k) attributes to interpolate and what they are: 'uv' (k=2), 'rgb' (k=3 in [0, 1]) or 'grey'."""
    if mesh.texture is not None and mesh.uvs is not None:
        return np.asarray(mesh.uvs, np.float32), "uv"
    if mesh.vertex_colors is not None:
        return np.asarray(mesh.vertex_colors[:, :3], np.float32) / 255.0, "rgb"
    return np.full((len(mesh.vertices), 3), 0.75, np.float32), "grey"


def render_albedo(mesh: TexturedMesh, vertices: np.ndarray, azimuths: list[float] | tuple[float, ...],
                  resolution: int, half_extent: float, renderer: str = "auto",
                  shade: bool = False, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Colour renders of ``mesh`` with its vertices replaced by (V, 3) ``vertices`` (already in the shared frame,
    centred on the camera axis): ((B, R, R, 3) float32 in [0, 1] on white, (B, R, R) bool masks).

    Every view is orthographic at elevation 0 around the origin, seeing [-half_extent, half_extent]^2. Unlit unless
    ``shade`` (a head-light Lambert term, for photo-like inputs; metrics compare unlit albedo). device: where the
    rasterizer runs.
    """
    import torch

    from human3d.cameras import OrthoCamera
    from human3d.io.meshes import sample_texture
    from human3d.ops.mesh import vertex_normals
    from human3d.render import get_rasterizer

    raster = get_rasterizer(renderer, device)
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32, device=device)
    f = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.int64, device=device)
    attr_np, kind = _vertex_attributes(mesh)
    attr = torch.as_tensor(attr_np, device=device)
    if shade:
        attr = torch.cat([attr, vertex_normals(v, f)], 1)
    cams = [OrthoCamera(f"eval{a:g}", float(a), resolution, half_extent=half_extent) for a in azimuths]
    with torch.no_grad():
        frags = raster.rasterize(v, f, cams)
        values = raster.interpolate(attr, frags).cpu().numpy()  # (B, R, R, k [+ 3 normals])
    mask = frags.mask.cpu().numpy()
    out = np.ones((len(cams), resolution, resolution, 3), np.float32)
    k = attr_np.shape[1]
    if kind == "uv":
        out[mask] = sample_texture(mesh.texture, values[mask][:, :k]).astype(np.float32) / 255.0
    else:
        out[mask] = values[mask][:, :k]
    if shade:
        for b, cam in enumerate(cams):
            n = values[b, ..., k:k + 3]
            n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
            light = 0.45 + 0.55 * np.clip(n @ cam.direction.astype(np.float32), 0.0, 1.0)
            out[b][mask[b]] *= light[mask[b]][:, None]
    return np.clip(out, 0.0, 1.0), mask


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1]; ``inf`` for identical images."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (scikit-image, Gaussian-free 7x7 window, colour) of two (H, W, 3) images in [0, 1]."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0))


def appearance_scores(pred: TexturedMesh, pred_vertices: np.ndarray, gt: TexturedMesh, gt_vertices: np.ndarray, *,
                      azimuths: tuple[float, ...] = EVAL_AZIMUTHS, resolution: int = 512, lpips_model: Any = None,
                      lpips_note: str = "", renderer: str = "auto", device: str = "cpu") -> AppearanceScores:
    """PSNR / SSIM / LPIPS between renders of two aligned meshes (vertices in metres, one frame).

    The framing comes from the ground truth alone (its bounding box, 5% margin) and is shared by both renders.
    ``lpips_model``: a loaded :class:`~human3d.eval.lpips.LPIPS`, or None (then LPIPS is None with ``lpips_note``).
    device: where the renders run (a resolved device, not 'auto').
    """
    gt_v = np.asarray(gt_vertices, np.float64)
    centre = _bbox_centre(gt_v)
    gt_c, pred_c = gt_v - centre, np.asarray(pred_vertices, np.float64) - centre
    radius = float(np.max(np.linalg.norm(gt_c[:, [0, 2]], axis=1)))
    half = 1.05 * max(float(np.abs(gt_c[:, 1]).max()), radius, 1e-6)
    img_p, _ = render_albedo(pred, pred_c, azimuths, resolution, half, renderer, device=device)
    img_g, _ = render_albedo(gt, gt_c, azimuths, resolution, half, renderer, device=device)
    psnrs = [psnr(p, g) for p, g in zip(img_p, img_g)]
    # the summary PSNR is that of the mean squared error over all views, so one identical view (a sphere seen
    # along its offset) does not make the mean infinite
    psnr_all = psnr(img_p, img_g)
    ssims = [ssim(p, g) for p, g in zip(img_p, img_g)]
    notes: list[str] = []
    for name, m in (("prediction", pred), ("ground truth", gt)):
        if _vertex_attributes(m)[1] == "grey":
            notes.append(f"the {name} has no colours: rendered flat grey, appearance scores compare silhouettes only")
    if lpips_model is not None:
        lp: list[float | None] = [float(x) for x in lpips_model.distance_images(img_p, img_g)]
        lpips_mean: float | None = float(np.mean(lp))  # type: ignore[arg-type]
    else:
        lp, lpips_mean = [None] * len(azimuths), None
        notes.append(lpips_note or "LPIPS unavailable: its weights are absent")
    return AppearanceScores(psnr=psnr_all, ssim=float(np.mean(ssims)), lpips=lpips_mean,
                            azimuths=[float(a) for a in azimuths], resolution=resolution,
                            per_view={"psnr": psnrs, "ssim": ssims, "lpips": lp}, notes=notes)


# -- the whole evaluation -----------------------------------------------------------------------------------------
@dataclass
class EvalSettings:
    """How a prediction is scored against a ground truth."""

    alignment: str = "scale"
    """none | scale (scale + translation) | icp (scale + translation, then rigid ICP)."""
    n_points: int = DEFAULT_POINTS
    """Points sampled on each surface for CD, NC and F-score (the paper: 100K)."""
    threshold_cm: float = DEFAULT_THRESHOLD_CM
    """F-score distance threshold in cm."""
    gt_height_m: float | None = None
    """The ground truth's real standing height in metres (default: its y extent, taken as metres)."""
    appearance: bool = True
    """Also render and compute PSNR / SSIM / LPIPS."""
    resolution: int = 512
    """Render size of the appearance views."""
    azimuths: tuple[float, ...] = EVAL_AZIMUTHS
    seed: int = 0
    renderer: str = "auto"
    device: str = "auto"
    """auto | cpu | cuda: where the appearance renders run (resolved like ``reconstruct --device``)."""


@dataclass
class EvalResult:
    geometry: GeometryScores
    appearance: AppearanceScores | None
    alignment: str
    transform: list[list[float]]
    """The (4, 4) transform applied to the prediction (in the ground truth's file units)."""
    metric_scale: float
    """Factor from the ground truth's file units to metres (applied to both meshes before measuring)."""
    gt_height_m: float

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats written as strings ('inf', 'nan') so that it is valid JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def evaluate(pred: TexturedMesh, gt: TexturedMesh, settings: EvalSettings | None = None,
             lpips_model: Any = None, lpips_note: str = "") -> EvalResult:
    """Align ``pred`` onto ``gt``, bring both to metres and compute every metric of DRPose's Tables 1 and 2.

    Both meshes must be in one frame up to the chosen alignment (+Y up; facing the same way).
    """
    s = settings or EvalSettings()
    gt_v = np.asarray(gt.vertices, np.float64)
    h_file = float(np.ptp(gt_v[:, 1])) if len(gt_v) else 0.0
    if h_file <= 0:
        raise UsageError("the ground-truth mesh has zero height; cannot measure it")
    if s.gt_height_m is not None and s.gt_height_m <= 0:
        raise UsageError("--gt-height must be a positive height in metres")
    height_m = s.gt_height_m if s.gt_height_m is not None else h_file
    k = height_m / h_file
    m = align(pred.vertices, pred.faces, gt_v, gt.faces, s.alignment, seed=s.seed)
    pred_m = apply_transform(pred.vertices, m) * k
    gt_m = gt_v * k
    geometry = geometry_scores(pred_m, pred.faces, gt_m, gt.faces, n_points=s.n_points, threshold_cm=s.threshold_cm,
                               seed=s.seed)
    appearance = None
    if s.appearance:
        from human3d.config import resolve_device

        appearance = appearance_scores(pred, pred_m, gt, gt_m, azimuths=tuple(s.azimuths), resolution=s.resolution,
                                       lpips_model=lpips_model, lpips_note=lpips_note, renderer=s.renderer,
                                       device=resolve_device(s.device))
    return EvalResult(geometry=geometry, appearance=appearance, alignment=s.alignment,
                      transform=np.asarray(m).tolist(), metric_scale=float(k), gt_height_m=float(height_m))
