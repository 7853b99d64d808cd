from __future__ import annotations

import numpy as np
import pytest
import trimesh

from human3d.errors import UsageError
from human3d.texture.decimate import check_face_options, decimate


def _distance(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    return scene.compute_distance(o3d.core.Tensor(np.asarray(points, np.float32))).numpy()


def _bumpy_sphere(subdivisions: int = 4) -> trimesh.Trimesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    v = s.vertices * (1.0 + 0.05 * np.sin(6 * s.vertices[:, :1]) * np.cos(5 * s.vertices[:, 1:2]))
    return trimesh.Trimesh(v, s.faces, process=False)


@pytest.mark.parametrize("target", [1000, 999, 300])
def test_decimation_meets_the_count_and_keeps_the_mesh_clean(target):
    full = _bumpy_sphere()
    v, f, note = decimate(full.vertices, full.faces, target)
    assert note is None
    assert abs(len(f) - target) <= 0.02 * target
    out = trimesh.Trimesh(v, f, process=False)
    assert out.is_watertight and out.is_winding_consistent and out.body_count == 1
    assert out.volume > 0  # still outward
    assert out.volume == pytest.approx(full.volume, rel=0.06)
    assert _distance(full, v).max() < 0.03  # stays on the surface


def test_a_count_above_the_mesh_subdivides_and_says_so():
    full = trimesh.creation.icosphere(subdivisions=2)  # 320 triangles
    v, f, note = decimate(full.vertices, full.faces, 1000)
    assert note is not None and "320" in note
    assert abs(len(f) - 1000) <= 20
    out = trimesh.Trimesh(v, f, process=False)
    assert out.is_watertight and out.body_count == 1
    assert _distance(full, v).max() < 1e-5  # same shape: no detail invented


def test_face_options_are_validated():
    check_face_options(None, False)
    check_face_options(5000, True)
    for bad in (99, 0, -5, 1000.5, True):
        with pytest.raises(UsageError):
            check_face_options(bad, False)
    with pytest.raises(UsageError, match="--faces"):
        check_face_options(None, True)
