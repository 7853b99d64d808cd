"""Many workers, one batch (issue 14): concurrent batches into one folder split the work, compute nothing twice,
lose nothing, and take over the claim of a worker that was killed. Workers are subprocesses running the product's
``run_batch`` with a small real export per input (the reconstruction itself is tested elsewhere)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from human3d.batch import BATCH_DIR, ItemOutcome, claim_input, claim_is_stale, rebuild_summary, write_record

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import os, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from human3d.batch import run_batch, output_names
from human3d.errors import BadInputError
from human3d.io.meshes import export_mesh
from tests.meshdata import textured_sphere

inputs = sorted(Path({inp!r}).iterdir())
outputs = output_names(inputs, Path({out!r}), "obj")
log = Path({log!r})

def note(text):
    with open(log, "a") as fh:
        fh.write(f"{{text}} {{os.getpid()}}\n")

def process(src, dst, work):
    note(f"start {{src.name}}")
    time.sleep(0.4)
    if src.name.startswith("bad"):
        raise BadInputError(f"{{src}} is not a photo")
    export_mesh(textured_sphere(subdivisions=2, texture_size=16), dst)
    note(f"done {{src.name}}")
    return [], {{}}, {{}}

# workers started together wait for each other here, so that a slow start (a loaded machine) cannot make one of
# them begin after the other has already recorded an outcome (a batch begun later retries failures, by design)
together = int(os.environ.get("HUMAN3D_TEST_TOGETHER", "0"))
if together:
    ready = log.with_name("ready")
    ready.mkdir(exist_ok=True)
    (ready / str(os.getpid())).touch()
    deadline = time.time() + 60
    while len(list(ready.iterdir())) < together and time.time() < deadline:
        time.sleep(0.02)

s = run_batch(inputs, outputs, process, summary_path=Path({out!r}) / "summary.json", fmt="obj", poll_s=0.1)
sys.exit(s.exit_code)
"""


def _setup(tmp_path: Path, n: int = 6) -> tuple[Path, Path, Path, list[str]]:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    names = [f"p{i}.png" for i in range(n)] + ["bad.png"]
    for name in names:
        (inp / name).write_bytes(b"x")
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(repo=str(REPO), inp=str(inp), out=str(out), log=str(tmp_path / "log.txt")))
    return script, out, tmp_path / "log.txt", names


def _start(script: Path, together: int = 0) -> subprocess.Popen:
    """A worker; with ``together``, it begins its batch only once that many workers have started."""
    env = dict(os.environ, HUMAN3D_TEST_TOGETHER=str(together))
    return subprocess.Popen([sys.executable, str(script)], cwd=REPO, stderr=subprocess.PIPE, text=True, env=env)


def _check_final(out: Path, log: Path, names: list[str], codes: list[int]) -> None:
    lines = [ln.split() for ln in log.read_text().splitlines()]
    done = [ln[1] for ln in lines if ln[0] == "done"]
    assert sorted(done) == sorted(n for n in names if not n.startswith("bad"))  # each computed exactly once
    summary = json.loads((out / "summary.json").read_text())
    listed = sorted(Path(i["input"]).name for i in summary["items"])
    assert listed == sorted(names)  # every input once
    status = {Path(i["input"]).name: i["status"] for i in summary["items"]}
    assert status.pop("bad.png") == "failed" and set(status.values()) == {"ok"}
    assert summary["counts"] == {"ok": len(names) - 1, "failed": 1, "skipped": 0, "pending": 0}
    assert summary["exit_code"] == 1 and codes == [1] * len(codes)  # exit codes agree with the summary
    assert not list((out / BATCH_DIR / "claims").glob("*.claim"))  # every claim released
    for n in names:
        if not n.startswith("bad"):
            assert (out / f"{n[:-4]}.obj").is_file() and (out / f"{n[:-4]}_texture.png").is_file()


def test_two_batches_at_once_split_the_work(tmp_path):
    script, out, log, names = _setup(tmp_path)
    procs = [_start(script, together=2), _start(script, together=2)]
    codes = [p.wait(timeout=120) for p in procs]
    _check_final(out, log, names, codes)
    starts = [ln.split() for ln in log.read_text().splitlines() if ln.startswith("start")]
    assert len({ln[2] for ln in starts}) == 2  # both workers did part of it
    assert len(starts) == len(names)  # nothing started twice


def test_a_killed_batch_is_taken_over_and_the_batch_completes(tmp_path):
    script, out, log, names = _setup(tmp_path)
    victim, other = _start(script), _start(script)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill the victim in the middle of an item (started, not done)
        lines = log.read_text().split("\n") if log.exists() else []
        mine = [ln.split() for ln in lines if ln.endswith(f" {victim.pid}")]
        if len(mine) >= 3 and mine[-1][0] == "start":
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"the victim never started a second item: {lines}")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_item = mine[-1][1]
    restarted = _start(script)
    codes = [other.wait(timeout=120), restarted.wait(timeout=120)]
    _check_final(out, log, names, codes)
    summary = json.loads((out / "summary.json").read_text())
    taker = next(i["worker"] for i in summary["items"] if Path(i["input"]).name == killed_item)
    assert taker and not taker.startswith(f"{victim.pid}@")  # its stale claim was taken over


def test_claims_are_exclusive_and_stale_ones_taken_over_once(tmp_path):
    batch = tmp_path / BATCH_DIR
    first = claim_input(batch, "a.glb", stale_after_s=60)
    assert first is not None and claim_input(batch, "a.glb", stale_after_s=60) is None  # live: not ours
    first._stop.set()  # its worker "hangs": no more heartbeats
    old = time.time() - 120
    os.utime(first.path, (old, old))
    info = json.loads(first.path.read_text())
    first.path.write_text(json.dumps({**info, "host": "elsewhere"}))  # another machine: only the age counts
    os.utime(first.path, (old, old))
    assert claim_is_stale(first.path, stale_after_s=60)
    second = claim_input(batch, "a.glb", stale_after_s=60)
    assert second is not None and second.took_over["host"] == "elsewhere" and not first.path.exists()
    assert claim_input(batch, "a.glb", stale_after_s=60) is None
    second.release()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    third = claim_input(batch, "b.glb")
    third._stop.set()
    third.path.write_text(json.dumps({**json.loads(third.path.read_text()), "pid": int(dead.stdout)}))
    assert claim_is_stale(third.path)  # same host, dead pid: stale at once, whatever the heartbeat


def test_summary_is_rebuilt_from_every_record(tmp_path):
    batch = tmp_path / BATCH_DIR
    write_record(batch, "a.glb", ItemOutcome("a.png", "ok", "a.glb", worker="1@x"))
    write_record(batch, "b.glb", ItemOutcome("b.png", "failed", "b.glb", error="bad", exit_code=3))
    assert not write_record(batch, "a.glb", ItemOutcome("a.png", "pending", "a.glb"), only_if_absent=True)
    s = rebuild_summary(tmp_path / "summary.json")
    data = json.loads((tmp_path / "summary.json").read_text())
    assert [i["input"] for i in data["items"]] == ["a.png", "b.png"] and s.exit_code == data["exit_code"] == 1
    assert data["counts"]["ok"] == 1 and data["finished"] is not None


CLI_WORKER = r"""
import sys, time
sys.path.insert(0, {repo!r})
from human3d import pipeline
from human3d.pipeline import StageSpec
from human3d.types import TexturedMesh

def sphere(image, cfg, ctx):  # the real load stage, then a small mesh standing in for the rest
    from tests.meshdata import textured_sphere
    time.sleep(0.5)
    return textured_sphere(subdivisions=1, texture_size=8)

pipeline.STAGES = (pipeline.STAGES[0],
                   StageSpec("texture", "__main__:sphere", ("load",), "texture", TexturedMesh, "texture"))
from human3d.cli import main
sys.argv = ["human3d", *sys.argv[1:]]
main()
"""


def test_two_cli_batches_at_once_agree_on_the_summary(tmp_path):
    from PIL import Image

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for i in range(4):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(inp / f"p{i}.png")
    (inp / "broken.png").write_bytes(b"not a png")
    script = tmp_path / "cli.py"
    script.write_text(CLI_WORKER.format(repo=str(REPO)))
    env = {**os.environ, "NO_COLOR": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), "reconstruct", str(inp), "-o", str(out), "--json"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(Path(i["input"]).name for i in summary["items"]) == sorted(p.name for p in inp.iterdir())
    assert summary["counts"] == {"ok": 4, "failed": 1, "skipped": 0, "pending": 0} and summary["exit_code"] == 1
    assert [code for code, _, _ in results] == [1, 1], results
    workers = {i["worker"] for i in summary["items"]}
    assert len(workers) == 2  # the work was split
    for _, stdout, _ in results:  # each batch's own --json agrees with the folder's summary
        mine = {i["input"]: i["status"] for i in json.loads(stdout)["items"]}
        assert mine == {i["input"]: i["status"] for i in summary["items"]}
