from __future__ import annotations

import numpy as np
import pytest
import trimesh

from human3d.texture.bake import unwrap
from human3d.texture.shading import smooth_normals, vertex_tangents


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1.0, 1.0)))


def test_normals_of_a_uv_split_sphere_are_radial_and_equal_on_both_sides_of_every_seam():
    s = trimesh.creation.icosphere(subdivisions=3)
    vmap, faces, _ = unwrap(s.vertices, s.faces, 256)
    v = np.asarray(s.vertices, np.float32)[vmap]
    assert len(v) > len(s.vertices)  # the unwrap did split vertices along seams
    n = smooth_normals(v, faces)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    radial = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert _angle_deg(n, radial).max() < 1.0  # outward, and smooth
    for original in np.unique(vmap):  # every split copy of a position gets one normal
        copies = n[vmap == original]
        assert np.abs(copies - copies[0]).max() == 0.0


@pytest.mark.parametrize("mirror", [False, True])
def test_tangents_point_along_u_and_the_rebuilt_bitangent_along_v(mirror):
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)  # a quad facing +z
    f = np.array([[0, 1, 2], [0, 2, 3]])
    uv = v[:, :2].copy()
    if mirror:
        uv[:, 0] = 1.0 - uv[:, 0]  # u runs along -x: a mirrored chart
    n = np.tile([0.0, 0.0, 1.0], (4, 1)).astype(np.float32)
    t = vertex_tangents(v, f, uv, n)
    sign = -1.0 if mirror else 1.0
    np.testing.assert_allclose(t[:, :3], np.tile([sign, 0, 0], (4, 1)), atol=1e-6)
    bitangent = t[:, 3:] * np.cross(n, t[:, :3])  # what a glTF viewer computes
    np.testing.assert_allclose(bitangent, np.tile([0, 1, 0], (4, 1)), atol=1e-6)  # increasing v (v up)
