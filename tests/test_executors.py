"""Spreading a batch: --jobs N local workers and the Ray executor on a real local Ray cluster.

The Ray tests start their own cluster on 127.0.0.1 (a head node with two CPUs, so two worker processes, on free
ports; torn down at the end) and skip when Ray is not installed. They use one node, not a head plus a worker node:
Ray registers a second node on the same machine under the machine's network address instead of loopback, and
these tests keep every connection on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import trimesh
from typer.testing import CliRunner

from human3d.cli import app

REPO = Path(__file__).resolve().parents[1]
SHORT = ["device=cpu", "body.iterations=10", "frame.resolution=256", "multiview.resolution=128",
         "carve.resolution=64", "carve.iterations=3", "carve.body_refine_steps=2", "texture.texture_size=256"]
SET_ARGS = [a for s in SHORT for a in ("--set", s)]
#: Ray's "single machine" mode: every address it advertises is 127.0.0.1.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from examples.demo import make_person_photo

    folder = tmp_path_factory.mktemp("photos")
    for i, pose in enumerate(("standing", "arms_raised", "standing")):
        make_person_photo(folder / f"p{i}.png", pose=pose, seed=i + 1, resolution=256, yaw_deg=10.0)
    (folder / "zz_bad.png").write_bytes(b"not an image at all")
    return folder


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "human3d", "reconstruct", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900, env={**os.environ, **(env or {})}, **kw)


def _check_batch(out: Path, photos: Path) -> dict:
    """Every good photo has exactly one valid output, the bad one is failed, the summary lists each input once."""
    summary = json.loads((out / "summary.json").read_text())
    by_name = {Path(it["input"]).name: it for it in summary["items"]}
    assert sorted(by_name) == sorted(p.name for p in photos.iterdir()) and len(summary["items"]) == 4
    for name in ("p0.png", "p1.png", "p2.png"):
        assert by_name[name]["status"] == "ok", by_name[name]
        mesh = trimesh.load(out / name.replace(".png", ".glb"), force="mesh")
        mesh.merge_vertices(merge_tex=True, merge_norm=True)  # the GLB splits vertices along UV seams
        assert len(mesh.faces) > 500 and mesh.is_watertight
    assert by_name["zz_bad.png"]["status"] == "failed" and "not an image" in by_name["zz_bad.png"]["error"]
    leftovers = [p.name for p in out.iterdir() if p.name not in {"p0.glb", "p1.glb", "p2.glb", "summary.json",
                                                                 ".human3d-batch", "previews", "report.html",
                                                                 "report_files"}]
    assert not leftovers, leftovers  # nothing partial, nothing duplicated
    assert sorted(p.name for p in (out / "previews").iterdir()) == [f"p{i}_preview.png" for i in range(3)]
    assert (out / "report.html").is_file()
    assert not list((out / ".human3d-batch" / "claims").glob("*.claim"))  # every claim released
    return summary


def test_jobs_2_gives_the_same_files_as_jobs_1(photos, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = _cli(str(photos), "-o", str(one), "--jobs", "1", *SET_ARGS)
    r2 = _cli(str(photos), "-o", str(two), "--jobs", "2", *SET_ARGS)
    assert r1.returncode == r2.returncode == 1, (r1.stderr, r2.stderr)
    _check_batch(one, photos)
    summary = _check_batch(two, photos)
    for name in ("p0.glb", "p1.glb", "p2.glb"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert len({it["worker"] for it in summary["items"] if it["status"] == "ok"}) == 2  # both workers took photos
    assert summary["exit_code"] == 1


def test_bad_executor_options_are_refused_before_work(tmp_path, monkeypatch, photos):
    runner = CliRunner()
    for args, needle in ((["--jobs", "0"], "--jobs 0"), (["--executor", "slurm"], "--executor 'slurm'"),
                         (["--executor", "ray", "--jobs", "2"], "--jobs is for the local executor"),
                         (["--ray-cpus-per-task", "-1"], "--ray-cpus-per-task")):
        r = runner.invoke(app, ["reconstruct", str(photos), "-o", str(tmp_path / "o"), *args])
        assert r.exit_code == 2 and needle in r.output, (args, r.output)
        assert not (tmp_path / "o").exists()
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    r = runner.invoke(app, ["reconstruct", str(photos), "-o", str(tmp_path / "o"), "--executor", "ray"])
    assert r.exit_code == 4 and "pip install 'human3d[ray]'" in r.output and len(r.output.strip().splitlines()) == 1


# -- Ray ---------------------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_pids(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="h3dray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    port = _free_port()
    env = {**os.environ, **RAY_ENV}
    cmd = [str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
           "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}"]
    started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    try:
        if started.returncode != 0:
            pytest.fail(f"ray start failed: {started.stderr[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _ray_pids(temp):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(1.0)


def test_ray_executor_runs_the_batch_on_the_cluster(ray_cluster, photos, tmp_path):
    out = tmp_path / "out"
    r = _cli(str(photos), "-o", str(out), "--executor", "ray", "--ray-address", ray_cluster, *SET_ARGS, env=RAY_ENV)
    assert r.returncode == 1, r.stderr[-3000:]
    summary = _check_batch(out, photos)
    assert all(it["worker"] and str(os.getpid()) not in it["worker"] for it in summary["items"]
               if it["status"] == "ok")  # computed by Ray's workers, not the driver
    assert "ray: 2 CPUs" in r.stderr


def test_ray_batch_survives_a_killed_worker(ray_cluster, photos, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "human3d", "reconstruct", str(photos), "-o", str(out),
                             "--executor", "ray", "--ray-address", ray_cluster, *SET_ARGS], cwd=REPO,
                            env={**os.environ, **RAY_ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    killed = None
    deadline = time.time() + 300
    while killed is None and time.time() < deadline and proc.poll() is None:
        claims = list((out / ".human3d-batch" / "claims").glob("*.claim")) if out.exists() else []
        workers = _ray_pids("ray::_ray_shared_item")
        if claims and workers:  # a task is mid-photo: kill its worker process
            time.sleep(2.0)
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    _, stderr = proc.communicate(timeout=900)
    assert killed is not None, "no Ray worker was seen working on a photo"
    assert proc.returncode == 1, stderr[-3000:]
    _check_batch(out, photos)


def test_ray_driver_storage_sends_results_back_to_the_driver(ray_cluster, photos, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for name in ("p0.png", "zz_bad.png"):
        (few / name).write_bytes((photos / name).read_bytes())
    out = tmp_path / "out"
    r = _cli(str(few), "-o", str(out), "--executor", "ray", "--ray-address", ray_cluster, "--ray-storage", "driver",
             *SET_ARGS, env=RAY_ENV)
    assert r.returncode == 1, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    by_name = {Path(it["input"]).name: it for it in summary["items"]}
    assert by_name["p0.png"]["status"] == "ok" and by_name["p0.png"]["input"] == str(few / "p0.png")
    assert by_name["p0.png"]["output"] == str(out / "p0.glb") and len(trimesh.load(out / "p0.glb").geometry) == 1
    assert by_name["zz_bad.png"]["status"] == "failed"
    assert sorted(p.name for p in out.iterdir()) == [".human3d-batch", "p0.glb", "previews", "report.html",
                                                     "report_files", "summary.json"]
    assert [p.name for p in (out / "previews").iterdir()] == ["p0_preview.png"]  # came back with the mesh
