"""The whole embedded pipeline on CPU with no weights: a generated photo in, a textured, metric GLB out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from typer.testing import CliRunner

from human3d.cameras import OrthoCamera
from human3d.config import preset_config
from human3d.io.meshes import export_mesh, export_transform, read_mesh
from human3d.ops.mesh import weld
from human3d.pipeline import Reconstructor
from human3d.render import get_rasterizer
from tests.conftest import SHARED_DATA
from tests.gltf_check import glb_json, khronos_report


@pytest.fixture(scope="module")
def reconstruction(tmp_path_factory):
    from examples.demo import make_person_photo

    tmp = tmp_path_factory.mktemp("e2e")
    photo = make_person_photo(tmp / "person.png", pose="standing", seed=1, resolution=512, yaw_deg=10.0)
    cfg = preset_config("fast", device="cpu")
    res = Reconstructor(cfg).run(photo, tmp / "person.glb", work_dir=tmp / "work")
    return res, tmp


def test_glb_loads_with_a_texture_in_metres_feet_on_the_ground(reconstruction):
    res, tmp = reconstruction
    scene = trimesh.load(tmp / "person.glb", force="mesh", process=False)
    assert isinstance(scene.visual, trimesh.visual.TextureVisuals)
    tex = np.asarray(scene.visual.material.baseColorTexture)
    assert tex.shape[0] == tex.shape[1] == preset_config("fast").texture.texture_size
    assert tex.reshape(-1, tex.shape[-1])[:, :3].std() > 5  # a real texture, not one flat colour
    textured = res.results["texture"]
    expected = export_transform(textured.vertices, textured.height_m, textured.canonical_height)
    np.testing.assert_allclose(np.asarray(scene.vertices), expected, atol=1e-4)
    v = np.asarray(scene.vertices)
    assert v[:, 1].min() == pytest.approx(0.0, abs=1e-5)


def test_height_matches_the_body_fit(reconstruction):
    res, tmp = reconstruction
    body = res.results["body"]
    v = np.asarray(trimesh.load(tmp / "person.glb", force="mesh", process=False).vertices)
    # the posed body's height in metres, in the same units as the export
    body_height = body.height_m * float(np.ptp(body.vertices[:, 1])) / body.canonical_height
    assert float(np.ptp(v[:, 1])) == pytest.approx(body_height, rel=0.05)


def test_front_render_matches_the_input_mask(reconstruction):
    res, _ = reconstruction
    framed, textured = res.results["frame"], res.results["texture"]
    raster = get_rasterizer("auto")
    with torch.no_grad():
        frags = raster.rasterize(torch.as_tensor(textured.vertices), torch.as_tensor(textured.faces),
                                 [OrthoCamera("front", 0.0, framed.resolution)])
    mask = frags.mask[0].numpy()
    iou = (mask & framed.mask).sum() / (mask | framed.mask).sum()
    assert iou > 0.90, iou


def test_work_dir_keeps_every_intermediate_and_a_contact_sheet(reconstruction):
    res, tmp = reconstruction
    folders = sorted(p.name for p in (tmp / "work").iterdir())
    assert folders == ["0_load", "1_segment", "2_frame", "3_body", "4_multiview", "5_carve", "6_texture", "7_rig"]
    assert (tmp / "work" / "4_multiview" / "contact_sheet.png").stat().st_size > 1000
    assert res.backends["multiview"] == "prior"


def test_glb_passes_the_khronos_validator(reconstruction):
    _, tmp = reconstruction
    report = khronos_report(tmp / "person.glb")
    assert report["errors"] == 0 and report["warnings"] == 0, report["messages"]


def test_glb_is_rigged_with_a_humanoid_skeleton(reconstruction):
    from human3d.io.gltf_skin import read_glb_skin

    res, tmp = reconstruction
    skin = read_glb_skin(tmp / "person.glb")
    assert skin is not None and {"hips", "head", "leftHand", "rightFoot"} <= set(skin.humanoid)
    assert len(skin.weights) == len(res.results["rig"].vertices)
    assert res.results["rig"].skin.report["closest_surface"] > 0.5


@pytest.mark.parametrize("name", ["pexels-marta-wave-6437749.png", "flickr_39742984604_cc0_group.jpg"])
def test_shared_photos_reconstruct_without_error(name, tmp_path):
    photo = SHARED_DATA / "photos" / name
    if not photo.is_file():
        pytest.skip(f"{photo} is absent")
    res = Reconstructor(preset_config("fast", device="cpu")).run(photo, tmp_path / "out.glb")
    assert (tmp_path / "out.glb").stat().st_size > 10_000
    assert len(res.results["texture"].faces) > 1000


def test_preview_of_the_result_has_the_input_silhouette(reconstruction):
    from PIL import Image

    from human3d.io.previews import write_result_preview
    from tests.pictures import PREVIEW_BG, front_panel, iou, panels_of, silhouette

    res, tmp = reconstruction
    preview = write_result_preview(res, tmp / "person.glb", tmp / "person_preview.png")
    image = np.asarray(Image.open(preview).convert("RGB"))
    assert len(panels_of(image)) == 4
    front = silhouette(front_panel(image), PREVIEW_BG)
    mask = np.asarray(Image.fromarray(res.results["frame"].mask).resize(front.shape[::-1], Image.NEAREST))
    assert iou(front, mask) > 0.85


# -- what a user checks in the asset, on a shared photo (the fast preset; then --faces 5000 --normal-map) ----------

@pytest.fixture(scope="module")
def shared_asset(tmp_path_factory):
    """out.glb + out.obj from the fast preset, and low.glb from the CLI with --faces 5000 --normal-map (it resumes
    from the first run's carve in the same work dir)."""
    from human3d.cli import app

    photo = SHARED_DATA / "photos" / "pexels-barbara-olsen-7869640.png"
    if not photo.is_file():
        pytest.skip(f"{photo} is absent")
    tmp = tmp_path_factory.mktemp("asset")
    res = Reconstructor(preset_config("fast", device="cpu")).run(photo, tmp / "out.glb", work_dir=tmp / "work")
    export_mesh(res.results["texture"], tmp / "out.obj")
    r = CliRunner().invoke(app, ["reconstruct", str(photo), "-o", str(tmp / "low.glb"), "--preset", "fast",
                                 "--device", "cpu", "--work-dir", str(tmp / "work"), "--faces", "5000",
                                 "--normal-map", "--quiet"])
    assert r.exit_code == 0, r.output
    return res, tmp


def _welded(path):
    """The exported mesh with its UV-seam copies merged by position: the surface a user measures."""
    m = read_mesh(path)
    v, f, _ = weld(np.asarray(m.vertices, np.float64), m.faces)
    return v, f


def _o3d(v, f):
    import open3d as o3d

    return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32)))


def test_shared_photo_exports_carry_smooth_normals_in_glb_and_obj(shared_asset):
    res, tmp = shared_asset
    assert (tmp / "out.glb").stat().st_size > 10_000 and len(res.results["texture"].faces) > 1000
    for name in ("out.glb", "low.glb"):
        assert "NORMAL" in glb_json(tmp / name)["meshes"][0]["primitives"][0]["attributes"]
    lines = (tmp / "out.obj").read_text().splitlines()
    assert sum(ln.startswith("vn ") for ln in lines) == sum(ln.startswith("v ") for ln in lines) > 1000
    assert all(len(c.split("/")) == 3 for c in next(ln for ln in lines if ln.startswith("f ")).split()[1:])
    m = read_mesh(tmp / "out.glb")
    _, _, index = weld(m.vertices, m.faces)
    first = np.zeros(index.max() + 1, np.int64)
    first[index] = np.arange(len(index))
    assert np.abs(m.normals - m.normals[first[index]]).max() < 1e-6  # no shading seam along the UV seams


def test_shared_photo_glbs_pass_the_khronos_validator(shared_asset):
    _, tmp = shared_asset
    for name in ("out.glb", "low.glb"):
        report = khronos_report(tmp / name)
        assert report["errors"] == 0 and report["warnings"] == 0, (name, report["messages"])


def test_faces_5000_gives_5000_textured_triangles_with_a_normal_map(shared_asset):
    _, tmp = shared_asset
    doc = glb_json(tmp / "low.glb")
    assert "TANGENT" in doc["meshes"][0]["primitives"][0]["attributes"] and "normalTexture" in doc["materials"][0]
    low = read_mesh(tmp / "low.glb")
    assert abs(len(low.faces) - 5000) <= 100
    assert low.texture is not None and low.texture.reshape(-1, 3).std() > 5
    assert low.normal_texture is not None and low.normal_texture.shape == low.texture.shape
    v, f = _welded(tmp / "low.glb")
    mesh = _o3d(v, f)
    assert trimesh.Trimesh(v, f, process=False).is_watertight
    assert mesh.is_edge_manifold(allow_boundary_edges=False) and mesh.is_vertex_manifold()


def test_shared_photo_is_watertight_manifold_and_outward(shared_asset):
    _, tmp = shared_asset
    v, f = _welded(tmp / "out.glb")
    tm = trimesh.Trimesh(v, f, process=False)
    mesh = _o3d(v, f)
    assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0
    assert mesh.is_edge_manifold(allow_boundary_edges=False) and mesh.is_vertex_manifold()


def test_shared_photo_is_one_component(shared_asset):
    _, tmp = shared_asset
    v, f = _welded(tmp / "out.glb")
    assert trimesh.Trimesh(v, f, process=False).body_count == 1


def test_shared_photo_self_intersections_within_the_bound(shared_asset):
    _, tmp = shared_asset
    v, f = _welded(tmp / "out.glb")
    pairs = len(np.asarray(_o3d(v, f).get_self_intersecting_triangles()))
    assert pairs <= 0.001 * len(f), pairs


def test_shared_photo_has_the_fast_presets_triangle_count(shared_asset):
    res, _ = shared_asset
    assert len(res.results["carve"].faces) >= 10_000
