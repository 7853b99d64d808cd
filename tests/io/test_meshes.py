from __future__ import annotations

import numpy as np
import pytest
import trimesh

from human3d.errors import OutputExistsError, UsageError
from human3d.io.meshes import export_mesh, export_transform, format_from_path, read_mesh, sample_texture
from human3d.texture.bake import unwrap
from human3d.texture.shading import smooth_normals
from tests.gltf_check import glb_json, khronos_report
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


def _split_sphere(normal_map: bool = False):
    """A sphere split along UV seams by the unwrap, as the texture stage leaves it."""
    m = textured_sphere(subdivisions=3)
    vmap, faces, uvs = unwrap(m.vertices, m.faces, 64)
    m.vertices, m.faces, m.uvs, m.vertex_colors = m.vertices[vmap], faces, uvs, m.vertex_colors[vmap]
    if normal_map:
        m.normal_texture = np.full((32, 32, 3), (128, 128, 255), np.uint8)
    return m


def _seam_gap(vertices: np.ndarray, normals: np.ndarray) -> float:
    """Largest difference between the normals of vertices at the same position."""
    _, inverse = np.unique(np.round(vertices, 5), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    gap = 0.0
    for i in np.unique(inverse[np.bincount(inverse)[inverse] > 1]):
        group = normals[inverse == i]
        gap = max(gap, float(np.abs(group - group[0]).max()))
    return gap


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_every_format_carries_outward_normals_without_a_seam(tmp_path, fmt):
    m = _split_sphere()
    path = export_mesh(m, tmp_path / f"person.{fmt}")
    back = read_mesh(path)
    assert back.normals is not None and len(back.normals) == len(back.vertices)
    centre = 0.5 * (back.vertices.min(0) + back.vertices.max(0))
    radial = back.vertices - centre
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    assert np.sum(back.normals * radial, 1).min() > 0.99  # outward and smooth
    assert _seam_gap(back.vertices, back.normals) < 1e-4  # the split copies share one normal


def test_obj_faces_reference_normals_and_the_mtl_names_the_normal_map(tmp_path):
    path = export_mesh(_split_sphere(normal_map=True), tmp_path / "person.obj")
    lines = path.read_text().splitlines()
    assert sum(ln.startswith("vn ") for ln in lines) == sum(ln.startswith("v ") for ln in lines)
    face = next(ln for ln in lines if ln.startswith("f "))
    assert all(len(corner.split("/")) == 3 and all(corner.split("/")) for corner in face.split()[1:])
    assert "map_Bump -bm 1.000 person_normal.png" in (tmp_path / "person.mtl").read_text()
    assert (tmp_path / "person_normal.png").is_file()


@pytest.mark.parametrize("normal_map", [False, True])
def test_glb_has_normal_and_tangent_attributes_and_passes_the_validator(tmp_path, normal_map):
    m = _split_sphere(normal_map)
    path = export_mesh(m, tmp_path / "person.glb")
    doc = glb_json(path)
    attributes = doc["meshes"][0]["primitives"][0]["attributes"]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(attributes)
    assert ("TANGENT" in attributes) == normal_map == ("normalTexture" in doc["materials"][0])
    back = read_mesh(path)
    np.testing.assert_allclose(back.normals, smooth_normals(m.vertices, m.faces), atol=1e-6)
    if normal_map:
        np.testing.assert_array_equal(back.normal_texture, m.normal_texture)
    report = khronos_report(path)
    assert report["errors"] == 0 and report["warnings"] == 0, report["messages"]


def test_vertex_coloured_glb_passes_the_validator(tmp_path):
    m = textured_sphere()
    m.texture = m.uvs = None
    path = export_mesh(m, tmp_path / "c.glb")
    assert "COLOR_0" in glb_json(path)["meshes"][0]["primitives"][0]["attributes"]
    np.testing.assert_array_equal(read_mesh(path).vertex_colors, m.vertex_colors)
    report = khronos_report(path)
    assert report["errors"] == 0 and report["warnings"] == 0, report["messages"]
