from __future__ import annotations

import numpy as np
import pytest
import trimesh

from human3d.errors import OutputExistsError, UsageError
from human3d.io.meshes import export_mesh, export_transform, format_from_path, read_mesh, sample_texture
from tests.meshdata import textured_sphere


def _check_frame(v: np.ndarray, height: float) -> None:
    assert v[:, 1].min() == pytest.approx(0.0, abs=1e-6)
    assert v[:, 1].max() == pytest.approx(height, rel=1e-5)
    assert 0.5 * (v[:, 0].min() + v[:, 0].max()) == pytest.approx(0.0, abs=1e-6)
    assert 0.5 * (v[:, 2].min() + v[:, 2].max()) == pytest.approx(0.0, abs=1e-6)


def test_export_transform_metres_feet_on_ground():
    v = np.array([[0.3, -1.0, 0.1], [0.5, 1.0, -0.3], [-0.1, 0.2, 0.4]], np.float32)
    out = export_transform(v, 1.8)
    _check_frame(out, 1.8)
    # uniform scale: distances scale by 1.8 / 2.0
    assert np.linalg.norm(out[0] - out[1]) == pytest.approx(np.linalg.norm(v[0] - v[1]) * 0.9, rel=1e-5)
    # a known canonical height (e.g. a crouching subject) sets the scale instead of the extent
    out2 = export_transform(v, 1.8, canonical_height=4.0)
    assert out2[:, 1].max() == pytest.approx(0.9, rel=1e-5)


def test_glb_round_trip_keeps_geometry_uvs_and_texture(tmp_path):
    m = textured_sphere()
    path = export_mesh(m, tmp_path / "person.glb")
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == len(m.vertices) and len(loaded.faces) == len(m.faces)
    np.testing.assert_array_equal(loaded.faces, m.faces)
    _check_frame(np.asarray(loaded.vertices), 1.7)
    back = read_mesh(path)
    np.testing.assert_allclose(back.uvs, m.uvs, atol=1e-6)
    np.testing.assert_array_equal(back.texture, m.texture)
    # geometry equals the export transform of the input
    np.testing.assert_allclose(back.vertices, export_transform(m.vertices, 1.7), atol=1e-5)
    assert path.read_bytes()[:4] == b"glTF"


def test_obj_round_trip_writes_mtl_and_texture_without_clobbering_a_photo(tmp_path):
    m = textured_sphere()
    photo = tmp_path / "person.png"
    photo.write_bytes(b"the user's photo")
    path = export_mesh(m, tmp_path / "person.obj")
    assert photo.read_bytes() == b"the user's photo"
    assert (tmp_path / "person.mtl").is_file() and (tmp_path / "person_texture.png").is_file()
    back = read_mesh(path)
    assert len(back.faces) == len(m.faces)
    np.testing.assert_allclose(back.vertices, export_transform(m.vertices, 1.7), atol=1e-5)
    np.testing.assert_allclose(back.uvs, m.uvs, atol=1e-5)
    np.testing.assert_array_equal(back.texture, m.texture)


def test_ply_round_trip_keeps_vertex_colours(tmp_path):
    m = textured_sphere()
    path = export_mesh(m, tmp_path / "person.ply")
    back = read_mesh(path)
    np.testing.assert_array_equal(back.faces, m.faces)
    np.testing.assert_array_equal(back.vertex_colors, m.vertex_colors)


def test_ply_without_vertex_colours_samples_the_texture(tmp_path):
    m = textured_sphere()
    m.vertex_colors = None
    back = read_mesh(export_mesh(m, tmp_path / "t.ply"))
    np.testing.assert_array_equal(back.vertex_colors, sample_texture(m.texture, m.uvs))


def test_sample_texture_corners():
    tex = np.zeros((4, 4, 3), np.uint8)
    tex[0, 0] = (255, 0, 0)  # top-left pixel = uv (0, 1)
    tex[3, 3] = (0, 255, 0)  # bottom-right = uv (1, 0)
    out = sample_texture(tex, np.array([[0, 1], [1, 0]], np.float32))
    np.testing.assert_array_equal(out, [[255, 0, 0], [0, 255, 0]])


def test_existing_output_is_not_overwritten(tmp_path):
    m = textured_sphere()
    path = tmp_path / "a.glb"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        export_mesh(m, path)
    assert path.read_bytes() == b"keep me"
    export_mesh(m, path, overwrite=True)
    assert path.read_bytes()[:4] == b"glTF"


def test_format_from_path():
    from pathlib import Path

    assert format_from_path(Path("a.GLB")) == "glb"
    assert format_from_path(Path("a"), "obj") == "obj"
    with pytest.raises(UsageError):
        format_from_path(Path("a.glb"), "obj")
    with pytest.raises(UsageError):
        format_from_path(Path("a.fbx"))
