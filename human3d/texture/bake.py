"""UV unwrap (projection charts packed by xatlas), texel rasterization, and baking colours into a PNG texture."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from human3d.cameras import OrthoCamera
from human3d.ops.mesh import vertex_normals
from human3d.render import get_rasterizer
from human3d.texture.charts import chart_mesh, projection_charts
from human3d.texture.fuse import ColorSource, fuse_colors, propagate_colors


def unwrap(vertices: np.ndarray, faces: np.ndarray, resolution: int = 2048, padding: int = 4
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Charts from the six axis projections (:mod:`human3d.texture.charts`) packed by xatlas into one
    ``resolution`` texture -> (vmapping (V',) into the input vertices, faces (F, 3) into the new vertices, uvs (V', 2)
    in [0, 1], v up).

    xatlas's own chart growing costs about 1 s per 1k faces (90 s for the default preset's 100k); the projection
    charts take about 1 s for all of them, and only packing is left to xatlas (about 1 s a pass).
    """
    chart, corner_uv = projection_charts(np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
    vmap, chart_faces, chart_uvs = chart_mesh(np.asarray(faces, np.int64), chart, corner_uv)
    atlas = _pack(chart_uvs, chart_faces, resolution, padding)
    # xatlas's own texel density overflows the resolution: scale it to fit one atlas, so that the padding between
    # charts is ``padding`` texels of the final texture (the UVs of a larger atlas would be shrunk to [0, 1]).
    size = max(atlas.width, atlas.height)
    scale = 0.97
    while size > resolution and scale > 0.3:
        fitted = _pack(chart_uvs, chart_faces, resolution, padding, atlas.texels_per_unit * resolution / size * scale)
        if fitted.atlas_count == 1:
            atlas = fitted
            break
        scale *= 0.95
    xref, indices, uvs = atlas[0]
    return vmap[xref.astype(np.int64)], indices.astype(np.int64), uvs.astype(np.float32)


def _pack(uvs: np.ndarray, faces: np.ndarray, resolution: int, padding: int, texels_per_unit: float = 0.0) -> Any:
    """An xatlas atlas of the UV charts (V, 2), (F, 3) (charts must not touch: xatlas joins touching faces)."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_uv_mesh(np.ascontiguousarray(uvs, np.float32), np.ascontiguousarray(faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = int(padding)
    pack.bilinear = True
    pack.texels_per_unit = float(texels_per_unit)
    atlas.generate(pack_options=pack)
    return atlas


def rasterize_uv(uvs: np.ndarray, faces: np.ndarray, size: int, renderer: str = "auto",
                 device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre: ((T, T) int64 triangle id or -1, (T, T, 3) barycentrics).

    Row i of the texture is v = 1 - (i + 0.5) / T (v up, OBJ/trimesh convention), column j is u = (j + 0.5) / T:
    the UV layout is drawn as a flat mesh at z = 0 and seen by a front camera, so any rasterizer backend works
    (on ``device``).
    """
    flat = np.concatenate([uvs * 2.0 - 1.0, np.zeros((len(uvs), 1), np.float32)], 1)
    raster = get_rasterizer(renderer, device)
    with torch.no_grad():
        frags = raster.rasterize(torch.as_tensor(flat, device=device),
                                 torch.as_tensor(faces, dtype=torch.int64, device=device),
                                 [OrthoCamera("uv", 0.0, size)])
    return frags.tri_id[0].cpu().numpy(), frags.bary[0].cpu().numpy()


def dilate(texture: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Every texel outside the charts takes the colour of the nearest covered texel, so seams and mip-maps never
    pull in background."""
    from scipy import ndimage

    if covered.all() or not covered.any():
        return texture
    _, (iy, ix) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return texture[iy, ix]


def bake_texture(vertices: np.ndarray, faces: np.ndarray, sources: Sequence[ColorSource],
                 depths: Sequence[np.ndarray], size: int = 2048, cos_power: float = 2.0, padding: int = 4,
                 fill_weight: float = 0.05, renderer: str = "auto", device: str | torch.device = "cpu"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unwrap and bake.

    Returns (vertices (V', 3), faces (F, 3), uvs (V', 2), texture (T, T, 3) uint8, vertex_colors (V', 3) uint8);
    the mesh is split along UV seams. Texels no view sees take colours propagated over the mesh from seen
    vertices; weakly seen texels (grazing angles) fade toward that fill (``fill_weight``). device: where the
    rasterizer runs.
    """
    vertices = np.asarray(vertices, np.float32)
    faces = np.asarray(faces, np.int64)
    normals = vertex_normals(vertices, faces).astype(np.float32)

    # 1. per-vertex colours on the original (seamless) mesh, unseen ones filled by propagation over its edges
    vcol, vw = fuse_colors(vertices, normals, sources, depths, cos_power)
    vfill = propagate_colors(vcol, vw > 0, faces)

    # 2. unwrap; the split mesh inherits positions, normals and the fill colours
    vmap, new_faces, uvs = unwrap(vertices, faces, size, padding)
    tri_id, bary = rasterize_uv(uvs, new_faces, size, renderer, device)
    covered = tri_id >= 0
    tid, b = tri_id[covered], bary[covered]  # (K,), (K, 3)
    corner = vmap[new_faces[tid]]  # (K, 3) original vertex ids of each texel's triangle
    points = np.einsum("kc,kcd->kd", b, vertices[corner])
    tnormals = np.einsum("kc,kcd->kd", b, normals[corner])
    tnormals /= np.maximum(np.linalg.norm(tnormals, axis=1, keepdims=True), 1e-12)
    fill = np.einsum("kc,kcd->kd", b, vfill[corner])

    # 3. texel colours: fused where seen, blended toward the fill where weakly or never seen
    tcol, tw = fuse_colors(points, tnormals, sources, depths, cos_power)
    blend = (tw[:, None] * tcol + fill_weight * fill) / (tw[:, None] + fill_weight)
    texture = np.zeros((size, size, 3), np.float32)
    texture[covered] = blend
    texture = dilate(texture, covered)
    texture_u8 = np.clip(texture * 255.0 + 0.5, 0, 255).astype(np.uint8)
    vblend = (vw[:, None] * vcol + fill_weight * vfill) / (vw[:, None] + fill_weight)
    vertex_colors = np.clip(vblend[vmap] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return vertices[vmap], new_faces, uvs, texture_u8, vertex_colors
