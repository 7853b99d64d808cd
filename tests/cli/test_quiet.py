"""Third-party log output (mediapipe, TF-Lite, absl, glog) never reaches the terminal unless --debug; --quiet
prints nothing on success. Real subprocesses through the real entry point, stderr captured; the segmentation is
mediapipe's (the models inside its wheel)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FOREIGN = ("TensorFlow", "absl", "W0000", "I0000", "XNNPACK", "inference_feedback", "WARNING: All log")

# the real load and segment (mediapipe) stages, then a small textured mesh as the texture stage, so that a whole
# `human3d reconstruct` succeeds in seconds through the real CLI entry point
SCRIPT = r"""
import sys
sys.path.insert(0, {repo!r})
from human3d import pipeline
from human3d.pipeline import StageSpec
from human3d.types import Cutout, LoadedImage, TexturedMesh

def sphere(cutout, cfg, ctx):
    from tests.meshdata import textured_sphere
    return textured_sphere(subdivisions=1, texture_size=8)

pipeline.STAGES = (pipeline.STAGES[0], pipeline.STAGES[1],
                   StageSpec("texture", "__main__:sphere", ("segment",), "texture", TexturedMesh, "texture"))
from human3d.cli import main
sys.argv = ["human3d", *sys.argv[1:]]
main()
"""


def _run(args: list[str], cwd: Path, script: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLOG", "TF_CPP", "HUMAN3D_DEBUG"))}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1")
    cmd = [sys.executable, str(script)] if script else [sys.executable, "-m", "human3d"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    pytest.importorskip("mediapipe")
    from PIL import Image

    from examples.demo import make_person_photo

    tmp = tmp_path_factory.mktemp("quiet")
    rgba = np.asarray(Image.open(make_person_photo(tmp / "cut.png", pose="standing", seed=1, resolution=256)))
    rgb = np.where(rgba[..., 3:] > 127, rgba[..., :3], 235).astype(np.uint8)  # no alpha: mediapipe segments it
    Image.fromarray(rgb).save(tmp / "person.png")
    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(tmp / "empty.png")
    (tmp / "run.py").write_text(SCRIPT.format(repo=str(REPO)))
    return tmp


def test_a_failure_with_quiet_is_one_line_and_nothing_foreign(photos):
    r = _run(["reconstruct", "empty.png", "-o", "e.glb", "--quiet"], photos)
    assert r.returncode == 3, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: empty.png: no person was found"), r.stderr
    assert r.stdout == "" and not any(word in r.stderr for word in FOREIGN)


def test_success_with_quiet_prints_nothing(photos):
    # the cutout's alpha segments it: mediapipe's noise is the other tests' subject, nothing at all is this one's
    r = _run(["reconstruct", "cut.png", "-o", "q.glb", "--quiet", "--segmenter", "alpha"], photos, photos / "run.py")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""
    assert (photos / "q.glb").is_file()


def test_live_progress_on_a_terminal_gets_no_foreign_lines(photos):
    import pty
    import select

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM") and not k.startswith("GLOG")}
    env.update(PYTHONPATH=str(REPO), TERM="xterm", COLUMNS="100")
    proc = subprocess.Popen([sys.executable, str(photos / "run.py"), "reconstruct", "person.png", "-o", "t.glb",
                             "--segmenter", "mediapipe"], cwd=photos, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = screen.decode("utf-8", "replace")
    assert "\x1b[" in text  # the live display ran (cursor control), not the plain lines
    assert "segment person" in text and "wrote t.glb" in text
    assert not any(word in text for word in FOREIGN), text
