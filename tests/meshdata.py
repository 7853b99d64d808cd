"""Generated meshes for tests: a UV-mapped, textured sphere and a box-like person stand-in."""

from __future__ import annotations

import numpy as np

from human3d.types import TexturedMesh


def textured_sphere(subdivisions: int = 2, texture_size: int = 32, height_m: float = 1.7) -> TexturedMesh:
    """A unit sphere in the canonical frame with per-vertex UVs (longitude/latitude) and a gradient texture."""
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    v = np.asarray(s.vertices, dtype=np.float32)
    uv = np.stack([(np.arctan2(v[:, 0], v[:, 2]) / (2 * np.pi)) % 1.0, v[:, 1] * 0.5 + 0.5], -1).astype(np.float32)
    yy, xx = np.mgrid[0:texture_size, 0:texture_size]
    tex = np.stack([xx * 255 // (texture_size - 1), yy * 255 // (texture_size - 1),
                    np.full_like(xx, 128)], -1).astype(np.uint8)
    colors = (np.clip(v * 0.5 + 0.5, 0, 1) * 255).astype(np.uint8)
    return TexturedMesh(vertices=v, faces=np.asarray(s.faces, dtype=np.int64), uvs=uv, texture=tex,
                        vertex_colors=colors, height_m=height_m, canonical_height=None)
