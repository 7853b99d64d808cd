"""Synthetic subjects with known geometry for oracle tests and benchmarks of carving, and the metrics to score them.

:func:`humanoid_mesh` builds a posed humanoid as the smooth union of capsules and ellipsoids (a signed distance
field meshed by marching cubes), optionally "clothed": a looser jacket and trousers with folds, a hood (a shell around the back and top of
the head, open at the front) and a face with a nose, the kind of detail carving has to recover from the views. It
spans the canonical canvas like a framed person: about 740/768 of the height, centred.

:func:`oracle_scores` measures a carved mesh against the ground truth: triangle count, Chamfer distance (% of the
height) and normal consistency (from :mod:`human3d.eval.metrics`), and the mean angle between the two meshes'
rendered normals in the views, at the view resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from human3d.cameras import CANVAS_SIZE, CROP_SIZE, OrthoCamera
from human3d.carve.meshing import marching_cubes_surface
from human3d.render import Rasterizer, TorchRasterizer, render_normals
from human3d.types import MultiView

# (a, b, radius) capsules and (centre, radii) ellipsoids of a person about 1.9 units tall, facing +Z, in a relaxed
# pose: right arm (-X) bent forward at the elbow, left knee slightly bent.
_CAPSULES: tuple[tuple[tuple[float, float, float], tuple[float, float, float], float], ...] = (
    ((0.0, 0.60, 0.0), (0.0, 0.72, 0.0), 0.05),  # neck
    ((0.19, 0.55, 0.0), (0.34, 0.27, -0.02), 0.048),  # left upper arm
    ((0.34, 0.27, -0.02), (0.42, 0.01, 0.02), 0.041),  # left forearm
    ((-0.19, 0.55, 0.0), (-0.33, 0.28, -0.03), 0.048),  # right upper arm
    ((-0.33, 0.28, -0.03), (-0.36, 0.10, 0.20), 0.041),  # right forearm, bent forward
    ((0.09, -0.02, 0.0), (0.11, -0.46, 0.05), 0.072),  # left thigh, knee forward
    ((0.11, -0.46, 0.05), (0.12, -0.87, -0.01), 0.055),  # left shin
    ((-0.09, -0.02, 0.0), (-0.11, -0.46, 0.0), 0.072),  # right thigh
    ((-0.11, -0.46, 0.0), (-0.12, -0.87, 0.0), 0.055),  # right shin
    ((0.12, -0.90, -0.02), (0.13, -0.91, 0.10), 0.045),  # left foot
    ((-0.12, -0.90, -0.02), (-0.13, -0.91, 0.10), 0.045),  # right foot
)
_ELLIPSOIDS: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = (
    ((0.0, 0.82, 0.01), (0.095, 0.12, 0.105)),  # head
    ((0.0, 0.36, 0.0), (0.19, 0.29, 0.115)),  # chest and belly
    ((0.0, 0.04, 0.0), (0.175, 0.13, 0.115)),  # pelvis
    ((0.44, -0.06, 0.03), (0.03, 0.065, 0.022)),  # left hand
    ((-0.37, 0.06, 0.27), (0.03, 0.022, 0.06)),  # right hand, pointing forward
)


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def humanoid_sdf(points: np.ndarray, clothed: bool = False) -> np.ndarray:
    """(N, 3) points -> (N,) approximate signed distance (negative inside) of the humanoid."""
    d = np.full(points.shape[0], np.inf)
    for a, b, r in _CAPSULES:
        a_, b_ = np.asarray(a), np.asarray(b)
        ab = b_ - a_
        t = np.clip(((points - a_) @ ab) / (ab @ ab), 0.0, 1.0)
        dist = np.linalg.norm(points - (a_ + t[:, None] * ab), axis=1) - r
        d = _smooth_min(d, dist, 0.03) if np.isfinite(d).all() else dist
    for c, radii in _ELLIPSOIDS:
        q = (points - np.asarray(c)) / np.asarray(radii)
        dist = (np.linalg.norm(q, axis=1) - 1.0) * min(radii)  # a lower bound, fine near the surface
        d = _smooth_min(d, dist, 0.03)
    if clothed:
        d = _smooth_min(d - clothing_displacement(points), _hood_sdf(points), 0.01)
        d = _smooth_min(d, _ellipsoid_sdf(points, _NOSE[0], _NOSE[1]), 0.01)
    return d


#: The nose: (centre, radii), on the front of the head ellipsoid (whose front is at z = 0.115).
_NOSE = ((0.0, 0.80, 0.108), (0.016, 0.028, 0.026))


def _ellipsoid_sdf(points: np.ndarray, center: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    q = (points - np.asarray(center)) / np.asarray(radii)
    return (np.linalg.norm(q, axis=1) - 1.0) * min(radii)


def _hood_sdf(points: np.ndarray) -> np.ndarray:
    """A hood: a 1.4 cm shell around the back and top of the head, cut open in front of z = 0.03 (a rounded cut),
    joined to the jacket at the neck."""
    shell = np.abs(_ellipsoid_sdf(points, (0.0, 0.835, -0.005), (0.13, 0.155, 0.14))) - 0.007
    cut = points[:, 2] - 0.03 + 0.25 * np.maximum(points[:, 1] - 0.95, 0.0)  # > 0 in front of the opening
    upper = 0.66 - points[:, 1]  # > 0 below the neck line
    return np.maximum(np.maximum(shell, cut), upper)


def clothing_displacement(points: np.ndarray) -> np.ndarray:
    """(N,) outward offset of a smooth garment: a looser jacket with horizontal folds on the torso and upper arms,
    wide trousers with folds on the legs. At most about 0.05 units (2.5% of the height)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]

    def band(v: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(v - lo) / soft)) * 1.0 / (1.0 + np.exp((v - hi) / soft))

    jacket = band(y, -0.12, 0.62, 0.03) * (0.025 + 0.012 * np.sin(14.0 * y + 2.0 * x) ** 2)
    trousers = band(y, -0.85, -0.05, 0.03) * (0.02 + 0.015 * (0.5 + 0.5 * np.sin(9.0 * y + 5.0 * z)))
    return jacket + trousers


def humanoid_mesh(clothed: bool = False, spacing: float = 0.012) -> tuple[np.ndarray, np.ndarray]:
    """The humanoid meshed on a grid of ``spacing``: (V, 3) float32, (F, 3) int64, closed, counter-clockwise."""
    lo = np.array([-0.62, -1.02, -0.3])
    hi = np.array([0.62, 1.02, 0.45])
    axes = [np.arange(lo[i], hi[i] + spacing, spacing) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    sdf = humanoid_sdf(grid.reshape(-1, 3), clothed).reshape(grid.shape[:3])
    v, f = marching_cubes_surface(sdf, lo, spacing)
    return fit_to_canvas(v), f


def fit_to_canvas(vertices: np.ndarray) -> np.ndarray:
    """Scale and centre so that the height spans CROP_SIZE / CANVAS_SIZE of the canvas (as framing does)."""
    lo, hi = vertices.min(0), vertices.max(0)
    scale = 2.0 * CROP_SIZE / CANVAS_SIZE / (hi[1] - lo[1])
    center = (lo + hi) / 2.0
    center[2] = 0.0
    return ((vertices - center) * scale).astype(np.float32)


def render_views(vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[OrthoCamera],
                 rasterizer: Rasterizer | None = None) -> MultiView:
    """Render a mesh into a :class:`MultiView`: world normals and hard masks (as a multi-view generator gives)."""
    rasterizer = rasterizer or TorchRasterizer()
    out = render_normals(torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces), cameras,
                         rasterizer, antialias=False)
    mask = out.frags.mask.numpy()
    normals = out.normals.numpy() * mask[..., None]
    return MultiView(normals=normals.astype(np.float32), colors=np.ones_like(normals, dtype=np.float32) * 0.5,
                     masks=mask, view_weights=np.ones(len(cameras), np.float32),
                     view_names=[c.name for c in cameras], azimuths=[c.azimuth_deg for c in cameras],
                     backend="synthetic")


def chamfer_and_normal_consistency(pred: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray],
                                   count: int = 50_000, seed: int = 0) -> tuple[float, float]:
    """Symmetric Chamfer distance (the mean of the two one-sided mean distances, in mesh units) and normal
    consistency, as :func:`human3d.eval.metrics.geometry_scores` computes them (which reports cm of metres: mesh
    units here, times 100)."""
    from human3d.eval.metrics import geometry_scores

    s = geometry_scores(pred[0], pred[1], truth[0], truth[1], n_points=count, seed=seed)
    return s.chamfer_cm / 100.0, s.normal_consistency


@dataclass(frozen=True)
class OracleScores:
    """A carved mesh against the ground truth."""

    triangles: int
    chamfer_pct_height: float
    """Chamfer distance in % of the ground truth's height."""
    normal_consistency: float
    normal_angle_deg: float
    """Mean angle between the two meshes' rendered normals, over the pixels both cover in every view."""
    mask_iou: float
    """Intersection over union of the two meshes' masks, over all views."""

    def row(self) -> str:
        return (f"{self.triangles} | {self.chamfer_pct_height:.3f} | {self.normal_consistency:.4f} | "
                f"{self.normal_angle_deg:.2f} | {self.mask_iou:.4f}")


def rendered_normal_angle(pred: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray],
                          cameras: Sequence[OrthoCamera], rasterizer: Rasterizer | None = None) -> tuple[float, float]:
    """(mean angle in degrees between the rendered normals of ``pred`` and ``truth`` over the pixels both cover,
    mask IoU) in ``cameras``, without antialiasing (one sample per pixel)."""
    a = render_views(*pred, cameras, rasterizer)
    b = render_views(*truth, cameras, rasterizer)
    both = (a.masks > 0.5) & (b.masks > 0.5)
    either = (a.masks > 0.5) | (b.masks > 0.5)
    cos = np.clip((a.normals * b.normals).sum(-1)[both], -1.0, 1.0)
    angle = float(np.degrees(np.arccos(cos)).mean()) if both.any() else 180.0
    return angle, float(both.sum() / max(either.sum(), 1))


def oracle_scores(pred: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray],
                  cameras: Sequence[OrthoCamera], count: int = 50_000) -> OracleScores:
    """Triangle count, Chamfer (% of height), normal consistency, rendered-normal angle and mask IoU."""
    chamfer, nc = chamfer_and_normal_consistency(pred, truth, count)
    height = float(truth[0][:, 1].max() - truth[0][:, 1].min())
    angle, iou = rendered_normal_angle(pred, truth, cameras)
    return OracleScores(triangles=len(pred[1]), chamfer_pct_height=100.0 * chamfer / height,
                        normal_consistency=nc, normal_angle_deg=angle, mask_iou=iou)
