"""The examples in examples/ run as a user runs them (short settings), and do what their docstrings say."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trimesh

REPO = Path(__file__).resolve().parents[1]
#: Real stages at the smallest settings that still make a person-shaped mesh.
SHORT = ["device=cpu", "body.iterations=10", "frame.resolution=256", "multiview.resolution=256",
         "carve.resolution=64", "carve.iterations=3", "carve.body_refine_steps=2", "texture.texture_size=256"]


def _set_args() -> list[str]:
    return [a for s in SHORT for a in ("--set", s)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from examples.demo import make_person_photo

    folder = tmp_path_factory.mktemp("photos")
    make_person_photo(folder / "person.png", pose="standing", seed=1, resolution=256, yaw_deg=10.0)
    (folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


def test_batch_shell_script_records_every_outcome_and_resumes(photos, tmp_path):
    out = tmp_path / "meshes"
    env = {**os.environ, "HUMAN3D": f"{sys.executable} -m human3d", "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(REPO / "examples" / "batch.sh"), str(photos), str(out), *_set_args()],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr  # one photo is broken: the batch goes on and says so
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("ok") and "person.png" in lines[0] and lines[0].endswith("person.glb")
    assert lines[1].startswith("failed") and "zz_broken.png" in lines[1]
    summary = json.loads((out / "summary.json").read_text())
    statuses = {Path(it["input"]).name: it["status"] for it in summary["items"]}
    assert statuses == {"person.png": "ok", "zz_broken.png": "failed"}  # each input once, with its outcome
    assert "Traceback" not in r.stderr
    assert trimesh.load(out / "person.glb", force="mesh").faces.shape[0] > 500


def test_python_api_example_writes_the_mesh_and_reports_it(photos, tmp_path):
    out = tmp_path / "person.glb"
    r = subprocess.run([sys.executable, "examples/python_api.py", str(photos / "person.png"), str(out),
                        "--preset", "fast", *_set_args()], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and f"wrote {out}" in r.stdout and "triangles" in r.stdout
    assert "fit body:" in r.stderr  # progress events arrived
    r = subprocess.run([sys.executable, "examples/python_api.py", str(photos / "person.png"), str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "exists" in r.stderr  # the API never overwrites either


def test_asset_pipeline_example_writes_a_checked_manifest(photos, tmp_path):
    out = tmp_path / "assets"
    r = subprocess.run([sys.executable, "examples/asset_pipeline.py", str(photos), str(out), *_set_args()],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr  # the broken photo fails the step
    rows = {Path(row["input"]).name: row for row in csv.DictReader(open(out / "manifest.csv"))}
    good, bad = rows["person.png"], rows["zz_broken.png"]
    assert good["status"] == "ok" and good["textured"] == "True" and good["feet_on_ground"] == "True"
    assert 1.2 < float(good["height_m"]) < 2.2 and int(good["triangles"]) > 500
    assert bad["status"] == "failed" and bad["error"]
