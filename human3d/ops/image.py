"""Pure functions on images (numpy): sampling at pixel or UV coordinates, and the normal-map colour codec.

Pixel coordinates: x right, y down, pixel (i, j) covers [j, j + 1) x [i, i + 1), so its centre is (j + 0.5,
i + 0.5). UV coordinates (this project's and OBJ's convention): origin bottom-left, v up, [0, 1] spanning the
pixel edges. A normal map stores unit vectors n as RGB = (n + 1) / 2 (DESIGN.md §3).
"""

from __future__ import annotations

import numpy as np


def sample_bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(H, W[, C]) image at (N, 2) pixel coordinates -> (N, C) float32, bilinear, edge-clamped."""
    h, w = image.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = image.reshape(h, w, -1).astype(np.float32)
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x1] * fx * (1 - fy) + img[y1, x0] * (1 - fx) * fy
            + img[y1, x1] * fx * fy)


def sample_nearest(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(H, W, ...) image at (N, 2) pixel coordinates -> (N, ...) values of the pixels containing them,
    edge-clamped."""
    h, w = image.shape[:2]
    x = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, w - 1)
    y = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, h - 1)
    return image[y, x]


def uv_to_pixel(uvs: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 2) UVs (v up) -> (N, 2) pixel coordinates of an (height, width) image (y down)."""
    return np.stack([uvs[:, 0] * width, (1.0 - uvs[:, 1]) * height], -1)


def sample_uv(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """(H, W, C) texture at (N, 2) UVs -> (N, C) float32, bilinear (values in the texture's own scale)."""
    return sample_bilinear(texture, uv_to_pixel(np.asarray(uvs, np.float64), *texture.shape[:2]))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def encode_normals(normals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(..., 3) unit normals in [-1, 1] -> uint8 RGB (n + 1) / 2, background (outside ``mask``) white."""
    rgb = to_uint8((np.asarray(normals) + 1.0) * 0.5)
    if mask is not None:
        rgb[~np.asarray(mask, bool)] = 255
    return rgb


def decode_normals(rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """uint8 or [0, 1] float RGB (..., 3) -> (..., 3) float32 unit normals (re-normalised; a zero vector, and
    every pixel outside ``mask``, is 0)."""
    x = np.asarray(rgb).astype(np.float32)
    if np.asarray(rgb).dtype == np.uint8:
        x = x / 255.0
    n = x * 2.0 - 1.0
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    out = np.where(norm > 1e-6, n / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
    if mask is not None:
        out[~np.asarray(mask, bool)] = 0.0
    return out


def row_runs(row: np.ndarray) -> list[tuple[int, int]]:
    """The runs of True in a (W,) bool row: [(start, stop), ...], stop exclusive, left to right."""
    edges = np.flatnonzero(np.diff(np.r_[0, np.asarray(row, np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
