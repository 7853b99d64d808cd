"""Colour fusion: the colour of surface points from several views, with per-view visibility from the rasterizer.

weight(point, view) = view weight x max(0, cos(normal, view direction))^k x mask(view, pixel), zero where the point
is hidden in that view (its depth is behind the view's depth map). Colours are the weighted mean, so overlapping
views blend across seams. The front view can take its colours from the input photo at full resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from human3d.cameras import OrthoCamera
from human3d.ops.image import sample_bilinear, sample_nearest
from human3d.ops.mesh import face_sides
from human3d.render import get_rasterizer


@dataclass
class ColorSource:
    """One view's colours.

    image: (H, W, 3) float32 in [0, 1]; mask: (H, W) bool, same size; camera: the view (its resolution is the
    resolution of the depth map used for visibility); to_image: maps (N, 2) camera-pixel coordinates to pixel
    coordinates of ``image`` (None: the image is at the camera's resolution); weight: the view's weight.
    """

    camera: OrthoCamera
    image: np.ndarray
    mask: np.ndarray
    weight: float = 1.0
    to_image: Callable[[np.ndarray], np.ndarray] | None = None




def depth_maps(vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[OrthoCamera],
               renderer: str = "auto", device: str | torch.device = "cpu") -> list[np.ndarray]:
    """(R, R) depth (larger = closer, -inf background) of the mesh in each camera; cameras may differ in size.
    device: where the rasterizer runs."""
    raster = get_rasterizer(renderer, device)
    v = torch.as_tensor(vertices, dtype=torch.float32, device=device)
    f = torch.as_tensor(faces, dtype=torch.int64, device=device)
    out = []
    for cam in cameras:
        with torch.no_grad():
            frags = raster.rasterize(v, f, [cam])
        out.append(frags.depth[0].cpu().numpy())
    return out


def fuse_colors(points: np.ndarray, normals: np.ndarray, sources: Sequence[ColorSource], depths: Sequence[np.ndarray],
                cos_power: float = 2.0, depth_tolerance_px: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Fuse colours at surface ``points`` (N, 3) with unit ``normals`` (N, 3).

    depths: one depth map per source (from :func:`depth_maps`). Returns ((N, 3) float32 colours in [0, 1],
    (N,) float32 total weight; 0 where no view sees the point).
    """
    acc = np.zeros((len(points), 3), np.float64)
    wsum = np.zeros(len(points), np.float64)
    for src, depth in zip(sources, depths):
        if src.weight <= 0:
            continue
        cam = src.camera
        uv, z = cam.project(points.astype(np.float64))
        cos = normals.astype(np.float64) @ cam.direction
        pixel = 2.0 * cam.half_extent / cam.resolution  # size of one pixel in camera units
        surface = sample_nearest(depth, uv)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < cam.resolution) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.resolution)
        visible = inside & (cos > 0) & np.isfinite(surface) & (z >= surface - depth_tolerance_px * pixel)
        if not visible.any():
            continue
        idx = np.nonzero(visible)[0]
        img_xy = uv[idx] if src.to_image is None else src.to_image(uv[idx])
        m = sample_bilinear(src.mask.astype(np.float32)[..., None], img_xy)[:, 0]
        w = src.weight * np.power(cos[idx], cos_power) * m
        acc[idx] += w[:, None] * sample_bilinear(src.image, img_xy)
        wsum[idx] += w
    colors = np.where(wsum[:, None] > 0, acc / np.maximum(wsum, 1e-12)[:, None], 0.0)
    return colors.astype(np.float32), wsum.astype(np.float32)


def propagate_colors(colors: np.ndarray, known: np.ndarray, faces: np.ndarray, max_rounds: int = 10_000) -> np.ndarray:
    """Fill vertices where ``known`` is False with colours spread over the mesh's edges from known vertices.

    Each round, every unknown vertex with known neighbours takes their mean (a front that advances one ring per
    round), so far-away regions get the colour of the nearest seen surface. Vertices in components with no known
    vertex get the mean known colour (mid grey when nothing is known).
    """
    colors = colors.astype(np.float64).copy()
    known = known.copy()
    n = len(colors)
    e = face_sides(faces)
    e = np.concatenate([e, e[:, ::-1]])  # both directions
    for _ in range(max_rounds):
        if known.all():
            break
        src_known = known[e[:, 0]] & ~known[e[:, 1]]
        if not src_known.any():
            break
        es = e[src_known]
        acc = np.zeros((n, 3))
        cnt = np.zeros(n)
        np.add.at(acc, es[:, 1], colors[es[:, 0]])
        np.add.at(cnt, es[:, 1], 1.0)
        new = cnt > 0
        colors[new] = acc[new] / cnt[new, None]
        known |= new
    if not known.all():
        fill = colors[known].mean(0) if known.any() else np.full(3, 0.5)
        colors[~known] = fill
    return colors.astype(np.float32)
