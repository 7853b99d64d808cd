"""``--normal-map``: bake the detail of the full carved mesh into a tangent-space normal map of the decimated one.

For every texel of the decimated mesh's UV layout: its surface point p and interpolated frame (normal n, tangent t,
bitangent b = w cross(n, t), exactly what a glTF viewer rebuilds from NORMAL and TANGENT); a ray from p along +n
and one along -n find the full mesh (the nearer hit within ``max_distance``; the closest point when both miss);
the full mesh's smooth normal there, written in (t, b, n) coordinates as RGB = (x + 1) / 2 (+X right, +Y up,
+Z out: glTF's and OpenGL's convention).
"""

from __future__ import annotations

import numpy as np

from human3d.ops.image import encode_normals
from human3d.texture.bake import dilate, rasterize_uv
from human3d.texture.shading import smooth_normals, vertex_tangents


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def normals_on_surface(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray, points: np.ndarray,
                       directions: np.ndarray, max_distance: float) -> np.ndarray:
    """(K, 3) unit normals of the mesh (vertices, faces, per-vertex ``normals``) where rays from ``points`` along
    +-``directions`` first meet it (nearer side, within ``max_distance``), else at the closest point."""
    from human3d.render.open3d_backend import import_open3d

    o3d = import_open3d("--normal-map (ray casting onto the full mesh)")

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(faces, np.uint32)))
    p, d = np.asarray(points, np.float32), np.asarray(directions, np.float32)
    hits = [scene.cast_rays(o3d.core.Tensor(np.concatenate([p, s * d], 1))) for s in (1.0, -1.0)]
    t = np.stack([h["t_hit"].numpy() for h in hits])  # (2, K), inf on a miss
    side = np.argmin(t, 0)
    k = np.arange(len(p))
    prim = np.stack([h["primitive_ids"].numpy() for h in hits])[side, k].astype(np.int64)
    uv = np.stack([h["primitive_uvs"].numpy() for h in hits])[side, k]
    miss = ~(t[side, k] <= max_distance)
    if miss.any():
        closest = scene.compute_closest_points(o3d.core.Tensor(p[miss]))
        prim[miss] = closest["primitive_ids"].numpy().astype(np.int64)
        uv[miss] = closest["primitive_uvs"].numpy()
    # open3d's barycentrics: point = (1 - u - v) a + u b + v c
    w = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1)
    return _unit(np.einsum("kc,kcd->kd", w, np.asarray(normals, np.float64)[np.asarray(faces)[prim]]))


def bake_normal_map(full_vertices: np.ndarray, full_faces: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                    uvs: np.ndarray, normals: np.ndarray, size: int, renderer: str = "auto", chunk: int = 1 << 20,
                    device: str = "cpu") -> np.ndarray:
    """(size, size, 3) uint8 tangent-space normal map of the mesh (vertices (V, 3), faces (F, 3), uvs (V, 2) v up,
    normals (V, 3): the ones exported) carrying the normals of the full mesh (full_vertices, full_faces).

    Texels outside the UV charts take the nearest chart texel's value (so mip-maps stay right). device: where
    the UV rasterization runs.
    """
    v, f, n_v = np.asarray(vertices, np.float64), np.asarray(faces, np.int64), np.asarray(normals, np.float64)
    tangents = vertex_tangents(vertices, faces, uvs, normals).astype(np.float64)
    full_normals = smooth_normals(full_vertices, full_faces)
    max_distance = 4.0 * float(np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1).mean())
    tri_id, bary = rasterize_uv(uvs, faces, size, renderer, device)
    covered = tri_id >= 0
    texels = np.flatnonzero(covered)
    image = np.full((size * size, 3), (0.0, 0.0, 1.0))  # unit tangent-space normals; flat outside the charts
    for start in range(0, len(texels), chunk):  # bounded memory at 4096^2
        k = texels[start:start + chunk]
        corner = f[tri_id.reshape(-1)[k]]  # (K, 3)
        b = bary.reshape(-1, 3)[k].astype(np.float64)
        p = np.einsum("kc,kcd->kd", b, v[corner])
        n = _unit(np.einsum("kc,kcd->kd", b, n_v[corner]))
        t = np.einsum("kc,kcd->kd", b, tangents[corner, :3])
        t = _unit(t - n * np.einsum("kd,kd->k", t, n)[:, None])
        bt = tangents[corner[:, 0], 3:4] * np.cross(n, t)
        detail = normals_on_surface(full_vertices, full_faces, full_normals, p, n, max_distance)
        local = np.stack([np.einsum("kd,kd->k", detail, a) for a in (t, bt, n)], 1)
        local[:, 2] = np.maximum(local[:, 2], 0.05)  # a detail normal facing away from the surface cannot be shown
        image[k] = _unit(local)
    image = image.reshape(size, size, 3)
    return encode_normals(dilate(image, covered))
