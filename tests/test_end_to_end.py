"""The whole embedded pipeline on CPU with no weights: a generated photo in, a textured, metric GLB out."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from human3d.cameras import OrthoCamera
from human3d.config import preset_config
from human3d.io.meshes import export_transform
from human3d.pipeline import Reconstructor
from human3d.render import get_rasterizer
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
VALIDATOR = REPO / ".tools" / "node_modules" / "gltf-validator"


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
    if shutil.which("node") is None or not VALIDATOR.is_dir():
        pytest.skip("node or the gltf-validator npm package is absent (make install adds it when node is present)")
    out = subprocess.run(["node", str(REPO / "tools" / "gltf_validate.js"), str(VALIDATOR), str(tmp / "person.glb")],
                         capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout)
    assert report["errors"] == 0, report["messages"]


def test_glb_is_rigged_with_a_humanoid_skeleton(reconstruction):
    from human3d.io.gltf_skin import read_glb_skin

    res, tmp = reconstruction
    skin = read_glb_skin(tmp / "person.glb")
    assert skin is not None and {"hips", "head", "leftHand", "rightFoot"} <= set(skin.humanoid)
    assert len(skin.weights) == len(res.results["rig"].vertices)
    assert res.results["rig"].skin.report["closest_surface"] > 0.5


@pytest.mark.parametrize("name", ["pexels-barbara-olsen-7869640.png", "pexels-marta-wave-6437749.png",
                                  "flickr_39742984604_cc0_group.jpg"])
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
