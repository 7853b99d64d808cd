"""human3d.ops.rotation against the Rodrigues formula written out element by element."""

from __future__ import annotations

import math

import numpy as np

from human3d.ops.rotation import min_rotation, orthonormal_frame


def _rodrigues(axis: np.ndarray, angle: float) -> list[list[float]]:
    x, y, z = axis
    c, s, t = math.cos(angle), math.sin(angle), 1 - math.cos(angle)
    return [[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c]]


def test_min_rotation_turns_a_onto_b_about_their_normal():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.normal(size=3) * 3, rng.normal(size=3) * 0.2  # any lengths
        ua, ub = a / np.linalg.norm(a), b / np.linalg.norm(b)
        axis = np.cross(ua, ub) / np.linalg.norm(np.cross(ua, ub))
        angle = math.acos(float(np.clip(ua @ ub, -1, 1)))
        r = min_rotation(a, b).as_matrix()
        np.testing.assert_allclose(r, _rodrigues(axis, angle), atol=1e-9)
        np.testing.assert_allclose(r @ ua, ub, atol=1e-9)


def test_min_rotation_of_parallel_and_opposite_directions():
    np.testing.assert_allclose(min_rotation([0, 2.0, 0], [0, 0.5, 0]).as_matrix(), np.eye(3), atol=1e-12)
    for a in ([1.0, 0, 0], [0, 1.0, 0], [0.3, -0.2, 0.9]):
        a = np.asarray(a)
        r = min_rotation(a, -a)
        np.testing.assert_allclose(r.apply(a), -a, atol=1e-9)
        assert abs(r.magnitude() - math.pi) < 1e-9 and abs(float(r.as_rotvec() @ a)) < 1e-9  # a half turn about a normal


def test_orthonormal_frame_keeps_the_first_direction_and_the_plane_of_both():
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b = rng.normal(size=3), rng.normal(size=3)
        f = orthonormal_frame(a, b)
        np.testing.assert_allclose(f.T @ f, np.eye(3), atol=1e-12)
        assert np.linalg.det(f) > 0.999
        np.testing.assert_allclose(f[:, 0], a / np.linalg.norm(a), atol=1e-12)
        assert f[:, 1] @ b > 0 and abs(f[:, 2] @ b) < 1e-9  # b lies in the first two columns' plane, on the + side
    assert orthonormal_frame(np.zeros(3), np.ones(3)) is None
    assert orthonormal_frame(np.ones(3), 2 * np.ones(3)) is None
