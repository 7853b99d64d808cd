"""Synthetic subjects with known geometry for oracle tests and benchmarks of carving, and the metrics to score them.

:func:`humanoid_mesh` builds a posed humanoid as the smooth union of capsules and ellipsoids (a signed distance
field meshed by marching cubes), optionally wearing a smooth "clothing" displacement (a looser jacket and trousers
with folds). It spans the canonical canvas like a framed person: about 740/768 of the height, centred.
"""

from __future__ import annotations

from collections.abc import Sequence

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
        d = d - clothing_displacement(points)
    return d


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


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Area-uniform points on a mesh and their face normals: (count, 3), (count, 3)."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces].astype(np.float64)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    idx = rng.choice(len(faces), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    pts = (1 - s)[:, None] * tri[idx, 0] + (s * (1 - r2))[:, None] * tri[idx, 1] + (s * r2)[:, None] * tri[idx, 2]
    normals = cross[idx] / np.maximum(area[idx], 1e-30)[:, None]
    return pts, normals


def chamfer_and_normal_consistency(pred: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray],
                                   count: int = 50_000, seed: int = 0) -> tuple[float, float]:
    """Symmetric Chamfer distance (mean of the two mean nearest-neighbour distances, in mesh units) and normal
    consistency (mean oriented cosine between each sample's normal and its nearest neighbour's, both ways)."""
    from scipy.spatial import cKDTree

    pa, na = sample_surface(*pred, count, seed)
    pb, nb = sample_surface(*truth, count, seed + 1)
    d_ab, i_ab = cKDTree(pb).query(pa)
    d_ba, i_ba = cKDTree(pa).query(pb)
    chamfer = 0.5 * (d_ab.mean() + d_ba.mean())
    consistency = 0.5 * ((na * nb[i_ab]).sum(1).mean() + (nb * na[i_ba]).sum(1).mean())
    return float(chamfer), float(consistency)
