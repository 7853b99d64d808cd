from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from human3d import __version__, pipeline
from human3d.cli import app
from human3d.pipeline import StageSpec
from human3d.types import Cutout, LoadedImage

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_version_and_help():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"human3d {__version__}"
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0 and "reconstruct" in r.stdout and "doctor" in r.stdout


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "human3d", "--version"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"human3d {__version__}"


def test_doctor_json_reports_torch_and_every_stage():
    r = runner.invoke(app, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["info"]["torch"] and data["info"]["cuda"] in (True, False)
    names = {(c["group"], c["name"]) for c in data["checks"]}
    for stage in pipeline.STAGE_NAMES:
        assert ("stage", stage) in names
    assert ("segment", "mediapipe") in names and ("weights", "pshuman") in names
    assert all(c["detail"] for c in data["checks"])  # every 'no' says why


def test_weights_list_and_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    r = runner.invoke(app, ["weights", "list", "--json", "--weights-dir", str(tmp_path / "w")])
    assert r.exit_code == 0
    assets = {a["name"]: a for a in json.loads(r.stdout)["assets"]}
    assert set(assets) >= {"pshuman", "smplx", "u2net"} and not assets["smplx"]["found"]
    r = runner.invoke(app, ["weights", "path", "smplx", "--weights-dir", str(tmp_path / "w")])
    assert r.exit_code == 4 and r.stdout.strip() == str(tmp_path / "w" / "smplx")
    assert "register" in r.stderr
    r = runner.invoke(app, ["weights", "download", "smplx", "--weights-dir", str(tmp_path / "w")])
    assert r.exit_code == 4 and r.stderr.startswith("error: ") and "Traceback" not in r.output
    r = runner.invoke(app, ["weights", "path", "nonsense"])
    assert r.exit_code == 2 and "unknown asset" in r.stderr


# -- reconstruct, with small stages defined here so the CLI logic is tested whatever stages exist ---------------

def t_load(path, cfg, ctx):
    data = path.read_bytes()
    if data.startswith(b"BAD"):
        from human3d.errors import BadInputError

        raise BadInputError(f"{path} is not an image; use a JPEG or PNG")
    return LoadedImage(rgb=np.zeros((4, 4, 3), np.uint8), source=str(path))


def t_segment(image, cfg, ctx):
    return Cutout(rgb=image.rgb, mask=np.ones((4, 4), bool), bbox=(0, 0, 4, 4), backend="test")


@pytest.fixture
def two_stage_pipeline(monkeypatch, stage_needing_a_package):
    stages = (
        StageSpec("load", f"{__name__}:t_load", (), "input", LoadedImage, "load image"),
        StageSpec("segment", f"{__name__}:t_segment", ("load",), "segment", Cutout, "segment person"),
        StageSpec("body", stage_needing_a_package, ("segment",), "body", Cutout, "fit body"),
    )
    monkeypatch.setattr(pipeline, "STAGES", stages)


def test_single_input_stops_at_a_missing_package_with_exit_4_and_no_output(tmp_path, two_stage_pipeline):
    photo = tmp_path / "p.png"
    photo.write_bytes(b"ok")
    out = tmp_path / "p.glb"
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(out)])
    assert r.exit_code == 4
    assert r.stderr.strip().splitlines()[-1].startswith("error: the 'fit body' stage needs the Python package")
    assert "Traceback" not in r.output and not out.exists()


def test_bad_input_is_one_line_exit_3(tmp_path, two_stage_pipeline):
    photo = tmp_path / "p.png"
    photo.write_bytes(b"BAD")
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(tmp_path / "x.glb")])
    assert r.exit_code == 3 and "not an image" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "x.glb")])
    assert r.exit_code == 3 and "does not exist" in r.stderr


def test_existing_output_needs_overwrite_exit_2(tmp_path, two_stage_pipeline):
    photo = tmp_path / "p.png"
    photo.write_bytes(b"ok")
    out = tmp_path / "p.glb"
    out.write_bytes(b"precious")
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(out)])
    assert r.exit_code == 2 and "--overwrite" in r.stderr and out.read_bytes() == b"precious"


def test_usage_errors_exit_2(tmp_path, two_stage_pipeline):
    photo = tmp_path / "p.png"
    photo.write_bytes(b"ok")
    assert runner.invoke(app, ["reconstruct", str(photo), "--preset", "ultra"]).exit_code == 2
    assert runner.invoke(app, ["reconstruct", str(photo), "-o", str(tmp_path / "a.fbx")]).exit_code == 2
    assert runner.invoke(app, ["reconstruct", str(tmp_path / "*.nothing")]).exit_code == 2
    assert runner.invoke(app, ["reconstruct", str(photo), "--bogus-flag"]).exit_code == 2


def test_batch_json_summary_and_exit_1(tmp_path, two_stage_pipeline):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"ok")
    (folder / "b.png").write_bytes(b"BAD")
    out = tmp_path / "out"
    r = runner.invoke(app, ["reconstruct", str(folder), "-o", str(out), "--json"], env={"NO_COLOR": "1"})
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    by_name = {Path(i["input"]).name: i for i in data["items"]}
    assert by_name["a.png"]["exit_code"] == 4 and by_name["b.png"]["exit_code"] == 3
    assert json.loads((out / "summary.json").read_text())["counts"]["failed"] == 2


def test_cuda_without_gpu_is_a_clear_error(tmp_path, two_stage_pipeline):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    photo = tmp_path / "p.png"
    photo.write_bytes(b"ok")
    r = runner.invoke(app, ["reconstruct", str(photo), "--device", "cuda"])
    assert r.exit_code == 4 and "no CUDA GPU" in r.stderr


def test_face_options_are_checked_before_any_work(tmp_path, two_stage_pipeline):
    photo = tmp_path / "p.png"
    photo.write_bytes(b"BAD")  # the load stage would exit 3: a 2 means the options were refused first
    for args, words in ((["--faces", "50"], "at least 100"), (["--faces", "many"], "Error"),
                        (["--normal-map"], "--faces"), (["--faces", "500", "--normal-map", "-f", "ply"], "PLY")):
        r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(tmp_path / "x"), *args])
        assert r.exit_code == 2 and words in r.stderr and "Traceback" not in r.output, (args, r.output)
