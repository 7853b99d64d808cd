from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from human3d.batch import expand_inputs, output_names, run_batch, sanitize_stem
from human3d.errors import BadInputError, UsageError
from human3d.io.atomic import TMP_PREFIX
from human3d.io.meshes import export_mesh
from tests.meshdata import textured_sphere

REPO = Path(__file__).resolve().parents[1]


def _touch(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        (folder / n).write_bytes(b"x")
        out.append(folder / n)
    return out


def test_folder_expansion_is_natural_sorted_and_skips_non_images(tmp_path):
    _touch(tmp_path, "img10.jpg", "img2.png", "img1.JPG", "notes.txt", ".hidden.png", "shot.heic")
    got = [p.name for p in expand_inputs([tmp_path])]
    assert got == ["img1.JPG", "img2.png", "img10.jpg", "shot.heic"]


def test_glob_files_and_dedup_keep_given_order(tmp_path):
    a, b, c = _touch(tmp_path, "a.png", "b.png", "c.jpg")
    got = expand_inputs([str(c), str(tmp_path / "*.png"), str(a)])
    assert got == [c, a, b]


def test_empty_folder_and_unmatched_glob_are_usage_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(UsageError):
        expand_inputs([str(tmp_path / "*.png")])


def test_missing_plain_path_is_kept_to_be_reported(tmp_path):
    assert expand_inputs([tmp_path / "nope.jpg"]) == [tmp_path / "nope.jpg"]


@pytest.mark.parametrize("name,expected", [("my photo (1)", "my_photo_1"), ("../../etc", "etc"), ("...", "image"),
                                           ("CON", "image_CON"), ("été", "t")])
def test_sanitize_stem(name, expected):
    assert sanitize_stem(name) == expected


def test_output_names_resolve_collisions_case_insensitively(tmp_path):
    inputs = [Path("a/Photo.jpg"), Path("b/photo.png"), Path("c/photo.webp"), Path("d/x y.jpg")]
    names = [p.name for p in output_names(inputs, tmp_path, "glb")]
    assert names == ["Photo.glb", "photo_2.glb", "photo_3.glb", "x_y.glb"]


def _writer(fail_on: dict[str, Exception]):
    def process(src: Path, dst: Path, work: Path | None):
        if src.name in fail_on:
            raise fail_on[src.name]
        export_mesh(textured_sphere(subdivisions=1, texture_size=8), dst, overwrite=True)  # batch decided
        return ["a warning"], {"load": 0.1}, {"segment": "alpha"}

    return process


def test_batch_isolates_failures_and_records_every_outcome(tmp_path):
    inputs = _touch(tmp_path / "in", "good1.png", "bad.png", "bug.png", "good2.png")
    inputs.append(tmp_path / "in" / "missing.png")
    outputs = output_names(inputs, tmp_path / "out", "glb")
    summary_path = tmp_path / "out" / "summary.json"
    summary = run_batch(inputs, outputs, _writer({"bad.png": BadInputError("not an image"),
                                                  "bug.png": ZeroDivisionError("oops")}),
                        summary_path=summary_path, fmt="glb")
    status = {Path(i.input).name: i for i in summary.items}
    assert status["good1.png"].status == status["good2.png"].status == "ok"
    assert status["bad.png"].status == "failed" and status["bad.png"].exit_code == 3
    assert status["bug.png"].status == "failed" and status["bug.png"].exit_code == 5
    assert "ZeroDivisionError" in status["bug.png"].error
    assert status["missing.png"].status == "failed" and status["missing.png"].exit_code == 3
    assert summary.exit_code == 1
    data = json.loads(summary_path.read_text())
    assert data["counts"] == {"ok": 2, "failed": 3, "skipped": 0, "pending": 0}
    assert {k for k in data["items"][0]} >= {"input", "status", "output", "seconds", "error"}
    assert (tmp_path / "out" / "good1.glb").is_file() and not (tmp_path / "out" / "bad.glb").exists()


def test_batch_resume_skips_done_outputs_unless_overwrite(tmp_path):
    inputs = _touch(tmp_path / "in", "a.png", "b.png")
    outputs = output_names(inputs, tmp_path / "out", "glb")
    outputs[0].parent.mkdir(parents=True)
    outputs[0].write_bytes(b"done before")
    calls = []

    def process(src, dst, work):
        calls.append(src.name)
        return _writer({})(src, dst, work)

    s = run_batch(inputs, outputs, process, summary_path=None, fmt="glb")
    assert calls == ["b.png"] and [i.status for i in s.items] == ["skipped", "ok"] and s.exit_code == 0
    assert outputs[0].read_bytes() == b"done before"
    run_batch(inputs, outputs, process, summary_path=None, fmt="glb", overwrite=True)
    assert calls == ["b.png", "a.png", "b.png"]
    assert outputs[0].read_bytes()[:4] == b"glTF"


SLOW_BATCH = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from human3d.batch import run_batch, output_names
from human3d.io.meshes import export_mesh
from tests.meshdata import textured_sphere

inputs = sorted(Path({inp!r}).iterdir())
outputs = output_names(inputs, Path({out!r}), "obj")

def process(src, dst, work):
    m = textured_sphere(subdivisions=4, texture_size=256)
    time.sleep(0.3)
    export_mesh(m, dst)
    return [], {{}}, {{}}

run_batch(inputs, outputs, process, summary_path=Path({out!r}) / "summary.json", fmt="obj")
"""


def test_killed_batch_leaves_no_partial_output_and_rerun_finishes(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    _touch(inp, *(f"p{i}.png" for i in range(6)))
    script = tmp_path / "batch.py"
    script.write_text(SLOW_BATCH.format(repo=str(REPO), inp=str(inp), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "p1.obj").exists():
        time.sleep(0.05)
    time.sleep(0.15)  # land somewhere inside a later item, possibly mid-export
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in out.glob("*.obj"))
    assert 2 <= len(done) < 6, done
    for p in out.glob("*.obj"):  # every OBJ that exists is complete, with its material and texture
        text = p.read_text()
        assert text.count("\nf ") == 5120  # all faces of a level-4 icosphere
        assert (out / f"{p.stem}.mtl").exists() and (out / f"{p.stem}_texture.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] is None or summary["counts"]["pending"] > 0
    # rerun: finishes the rest, skips the done ones, and sweeps temporaries of the killed run
    subprocess.run([sys.executable, str(script)], cwd=REPO, check=True, timeout=300)
    assert sorted(p.name for p in out.glob("*.obj")) == [f"p{i}.obj" for i in range(6)]
    assert not list(out.glob(TMP_PREFIX + "*"))
    summary = json.loads((out / "summary.json").read_text())
    # the killed run's records stand (its finished items stay "ok"); each input is listed once, none lost
    assert sorted(Path(i["input"]).name for i in summary["items"]) == [f"p{i}.png" for i in range(6)]
    assert summary["counts"]["ok"] + summary["counts"]["skipped"] == 6 and summary["exit_code"] == 0
    assert {Path(i["input"]).name for i in summary["items"] if i["status"] == "ok"} >= {f"{n[:-4]}.png" for n in done[:-1]}
    assert os.path.getsize(out / "p5_texture.png") > 0
