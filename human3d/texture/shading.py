"""Shading attributes of a finished mesh: smooth vertex normals that ignore UV seams, and tangent frames for a
tangent-space normal map.

Vertices are split along UV seams by the unwrap (several vertices share one position). Normals computed on that
split mesh would differ on the two sides of a seam and draw a visible line, so they are computed on the welded
mesh (vertices merged by position) and copied back to every split vertex.
"""

from __future__ import annotations

import numpy as np

from human3d.ops.mesh import vertex_normals, weld


def smooth_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals of the welded mesh, the same for every split copy of a position (no seam shows)."""
    welded, welded_faces, index = weld(np.asarray(vertices, np.float64), faces)
    return vertex_normals(welded, welded_faces, weighting="angle")[index]


def vertex_tangents(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(V, 4) float32 glTF tangents: xyz = the direction of increasing u made orthogonal to the normal, w = +1 or
    -1 so that bitangent = w * cross(normal, tangent) points toward increasing v (v up, this project's UV
    convention; the top of the image in glTF's).

    Per-face dP/du and dP/dv (Lengyel 2001), area-weighted sums at each (split) vertex, Gram-Schmidt against the
    vertex normal. Tangents are per UV chart, so they are summed on the split mesh, not the welded one.
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    t = np.asarray(uvs, np.float64)
    n = np.asarray(normals, np.float64)
    e1, e2 = v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]  # (F, 3)
    d1, d2 = t[f[:, 1]] - t[f[:, 0]], t[f[:, 2]] - t[f[:, 0]]  # (F, 2)
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    r = np.where(np.abs(det) > 1e-20, 1.0 / np.where(np.abs(det) > 1e-20, det, 1.0), 0.0)[:, None]
    sdir = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * r  # dP/du (F, 3)
    tdir = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * r  # dP/dv
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1, keepdims=True)
    su = sdir / np.maximum(np.linalg.norm(sdir, axis=1, keepdims=True), 1e-30) * area
    tv = tdir / np.maximum(np.linalg.norm(tdir, axis=1, keepdims=True), 1e-30) * area
    acc_t, acc_b = np.zeros_like(v), np.zeros_like(v)
    for k in range(3):
        np.add.at(acc_t, f[:, k], su)
        np.add.at(acc_b, f[:, k], tv)
    tangent = acc_t - n * np.einsum("vd,vd->v", acc_t, n)[:, None]
    length = np.linalg.norm(tangent, axis=1, keepdims=True)
    # a vertex without a usable u direction (degenerate UVs) gets any unit vector orthogonal to its normal
    fallback = np.cross(n, np.where(np.abs(n[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]))
    tangent = np.where(length > 1e-20, tangent / np.maximum(length, 1e-30), fallback)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-30)
    w = np.where(np.einsum("vd,vd->v", np.cross(n, tangent), acc_b) < 0.0, -1.0, 1.0)
    return np.concatenate([tangent, w[:, None]], 1).astype(np.float32)
