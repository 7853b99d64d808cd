import json

import numpy as np
import pytest
import torch
import trimesh
from typer.testing import CliRunner

from human3d.cameras import CANVAS_SIZE, CROP_SIZE
from human3d.cli import app
from human3d.errors import UsageError
from human3d.train.drpose import check_gskel
from human3d.train.prepare import scan_joints
from human3d.train.skel_predictor import holdout_split
from human3d.train.skeleton import SKELETON_JOINTS
from tests.train.poses import standing_joints
from tests.train.synthetic import write_skel_dataset

runner = CliRunner()


def _box_scan(folder, name="box"):
    """A red box 0.4 x 1.6 x 0.3 (any unit) standing off-centre, and joints in the same frame."""
    folder.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box(extents=(0.4, 1.6, 0.3))
    box.unmerge_vertices()  # flat faces: vertex normals are the face normals
    box.apply_translation((2.0, 0.8, -1.0))
    box.visual = trimesh.visual.ColorVisuals(box, vertex_colors=np.tile([200, 30, 30, 255], (len(box.vertices), 1)))
    box.export(folder / f"{name}.glb")
    joints = standing_joints().numpy() * 0.8 + [2.0, 0.8, -1.0]
    (folder / f"{name}.json").write_text(json.dumps({"joint_names": list(SKELETON_JOINTS),
                                                     "joints": joints.tolist()}))
    return joints


def test_prepare_skel_frames_and_renders_a_scan(tmp_path):
    joints = _box_scan(tmp_path / "scans")
    out = tmp_path / "renders"
    res = runner.invoke(app, ["train", "prepare-skel", str(tmp_path / "scans"), str(out), "--views", "front,right",
                              "--resolution", "32", "--renderer", "torch"])
    assert res.exit_code == 0, res.output
    data = np.load(out / "box.npz")
    assert data["normals"].shape == data["colors"].shape == (2, 32, 32, 3)
    # framed like a photo: the box's 1.6 height spans CROP_SIZE/CANVAS_SIZE of the canvas, centred
    scale = 2 * CROP_SIZE / CANVAS_SIZE / 1.6
    np.testing.assert_allclose(data["joints"], (joints - [2.0, 0.8, -1.0]) * scale, atol=1e-5)
    front_n, front_c = data["normals"][0], data["colors"][0]
    np.testing.assert_array_equal(front_n[16, 16], [128, 128, 255])  # the face toward +Z
    np.testing.assert_array_equal(front_c[16, 16], [200, 30, 30])
    assert (front_c[16, 2] == 255).all() and (front_n[16, 2] == 255).all()  # white background
    np.testing.assert_array_equal(data["normals"][1][16, 16], [255, 128, 128])  # right view sees +X
    rows = np.nonzero((front_c != 255).any(-1).any(1))[0]
    assert rows.max() - rows.min() + 1 == pytest.approx(32 * CROP_SIZE / CANVAS_SIZE, abs=1.5)
    assert json.loads((out / "views.json").read_text())["views"] == ["front", "right"]
    # a rerun keeps what exists; a scan without a pose file is a one-line usage error
    again = runner.invoke(app, ["train", "prepare-skel", str(tmp_path / "scans"), str(out), "--views", "front,right",
                                "--resolution", "32", "--renderer", "torch"])
    assert again.exit_code == 0 and "wrote 0 renders" in again.output
    other = runner.invoke(app, ["train", "prepare-skel", str(tmp_path / "scans"), str(out), "--views", "front",
                                "--resolution", "32", "--renderer", "torch"])
    assert other.exit_code == 2 and "--overwrite" in other.output
    (tmp_path / "empty").mkdir()
    bad = runner.invoke(app, ["train", "prepare-skel", str(tmp_path / "empty"), str(out)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    bad_view = runner.invoke(app, ["train", "prepare-skel", str(tmp_path / "scans"), str(out), "--views", "top"])
    assert bad_view.exit_code == 2 and "--views" in bad_view.output


def test_an_anny_fit_gives_the_models_joints_in_the_scans_frame(tmp_path):
    from human3d.body.models import load_body_model

    model = load_body_model("anny")
    pose = {"left_elbow": [0.0, 0.0, 0.8]}
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({"body_model": "anny", "pose": pose, "scale": 2.0, "translation": [1.0, 0.0, 0.5]}))
    joints, names = scan_joints(path, {"anny": model})
    with torch.no_grad():
        ref = model.forward({"left_elbow": torch.tensor([[0.0, 0.0, 0.8]])}, model.shape_mean[None].float())
    np.testing.assert_allclose(joints, 2.0 * ref.joints[0].numpy() + [1.0, 0.0, 0.5], atol=1e-5)
    assert names == list(model.joint_names)


def test_skel_eval_prints_table3_metrics_on_held_out_pairs(tmp_path):
    data = write_skel_dataset(tmp_path / "data", n=4)
    res = runner.invoke(app, ["train", "skel", "--data", str(data), "-o", str(tmp_path / "g"), "--iterations", "2",
                              "--batch-size", "2", "--no-lpips", "--device", "cpu", "--block-channels", "8,16,16,16",
                              "--sigma", "1.5", "--eval", "--eval-fraction", "0.25"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if "held-out" in ln)
    assert line.startswith("g_skel on 1 held-out pairs: PSNR ") and "SSIM" in line and "LPIPS n/a" in line
    psnr = float(line.split("PSNR ")[1].split(" dB")[0])
    ssim = float(line.split("SSIM ")[1].split()[0])
    assert 0 < psnr < 60 and -1 <= ssim <= 1
    cfg = json.loads((tmp_path / "g" / "config.json").read_text())
    assert cfg["sigma"] == 1.5 and cfg["view_names"][0] == "front" and cfg["flipped_views"] == [3, 4]
    assert cfg["view_azimuths"] == [0.0, 45.0, 90.0, 180.0, 270.0, 315.0]
    train, held = holdout_split(10, 0.2, seed=0)
    assert len(held) == 2 and sorted(train + held) == list(range(10))


def test_drpose_refuses_a_gskel_for_other_views_or_sigma(tmp_path):
    from tests.train.test_drpose import tiny_gskel, tiny_pipeline

    pipe, g = tiny_pipeline(), tiny_gskel()
    assert check_gskel(g, pipe, None) == 1.0 and check_gskel(g, pipe, 1.0) == 1.0
    with pytest.raises(UsageError, match="--sigma"):
        check_gskel(g, pipe, 2.0)
    g.register_to_config(flipped_views=[])
    with pytest.raises(UsageError, match="mirrored"):
        check_gskel(g, pipe, None)
    g.register_to_config(sigma=None)
    with pytest.raises(UsageError, match="retrain"):
        check_gskel(g, pipe, None)
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "config.json").write_text("{}")
    res = runner.invoke(app, ["train", "drpose", "--data", str(tmp_path), "--gskel", str(tmp_path / "g"), "-o",
                              str(tmp_path / "run"), "--max-early-stop", "30", "--device", "cpu"])
    assert res.exit_code == 2 and "m <= T" in res.output and "Traceback" not in res.output
