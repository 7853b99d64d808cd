"""Photos per minute of one batch: in this process (--jobs 1), two local workers (--jobs 2), and the Ray executor
with two local workers, on the same photos (generated, posed Anny bodies), as ratios to --jobs 1 in one run.

    .venv/bin/python benchmarks/batch.py [--photos 6] [--preset fast] [--set SECTION.FIELD=VALUE ...] [--no-ray]

Each configuration writes into its own folder; model loading is included (a worker pays it once, then the
compute alone), which is what a user's batch sees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(photos: Path, out: Path, extra: list[str], settings: list[str]) -> float:
    cmd = [sys.executable, "-m", "human3d", "reconstruct", str(photos), "-o", str(out), "--quiet", *extra]
    cmd += [a for s in settings for a in ("--set", s)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env={**os.environ, **RAY_ENV}, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(extra) or '--jobs 1'} failed ({r.returncode}): {r.stderr[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--set", dest="settings", action="append", default=[])
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    from examples.demo import make_person_photo

    tmp = Path(tempfile.mkdtemp(prefix="h3d-batch-bench-"))
    photos = tmp / "photos"
    for i in range(args.photos):
        make_person_photo(photos / f"p{i}.png", pose=("standing", "arms_raised")[i % 2], seed=i + 1,
                          resolution=512, yaw_deg=10.0)
    settings = ["device=cpu", *args.settings]
    runs = [("--jobs 1", ["--preset", args.preset, "--jobs", "1"]),
            ("--jobs 2", ["--preset", args.preset, "--jobs", "2"])]
    cluster = None
    if not args.no_ray:
        port = cluster = _free_port()
        subprocess.run([str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}",
                        "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                        "--node-ip-address=127.0.0.1", f"--temp-dir={tmp / 'ray'}"],
                       env={**os.environ, **RAY_ENV}, check=True,
                       capture_output=True)
        runs.append(("ray, 2 workers", ["--preset", args.preset, "--executor", "ray", "--ray-address",
                                        f"127.0.0.1:{port}"]))
    try:
        rows = [(name, _run(photos, tmp / f"out{i}", extra, settings)) for i, (name, extra) in enumerate(runs)]
    finally:
        if cluster is not None:  # only this benchmark's cluster: its processes name its temp folder
            for signal_name in ("-TERM", "-KILL"):
                subprocess.run(["pkill", signal_name, "-f", str(tmp / "ray")], check=False)
                time.sleep(1.0)
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0][1]
    print(f"{args.photos} photos, preset {args.preset}, {os.cpu_count()} cores")
    print("| executor | seconds | photos/min | vs --jobs 1 |\n|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {60 * args.photos / seconds:.2f} | {base / seconds:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
