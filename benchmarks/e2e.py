"""End-to-end time per image per preset, with per-stage seconds and the output's triangles, as a Markdown table;
then the seconds per carving iteration and per remesh at three mesh sizes (benchmarks/carve.py's table).

    .venv/bin/python benchmarks/e2e.py [--presets fast default] [--photos ../shared/data/photos/*.png] [--no-iterations]

Wall seconds per stage, plus the whole run's CPU seconds (this process, all threads) and the 1-minute load average
before and after each run: on a shared machine the wall seconds grow with the load, the CPU seconds much less.

Inputs: a posed Anny person the script renders itself (examples/demo.py), plus any --photos given. Each run starts
from an empty work dir, so nothing is cached; model start-up (mediapipe, Anny) happens once per process, before the
first timed run, so the figures are per image in a batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from examples.demo import make_person_photo  # noqa: E402
from human3d.config import preset_config  # noqa: E402
from human3d.pipeline import STAGE_NAMES, Reconstructor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["fast", "default"])
    ap.add_argument("--photos", nargs="*", default=[])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-iterations", action="store_true", help="skip the per-iteration cost table")
    ap.add_argument("--renderer", default="auto", help="renderer of the per-iteration table")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="human3d-bench-"))
    inputs = [make_person_photo(tmp / "person.png")] + [Path(p) for p in args.photos]
    # warm-up: load the models once so start-up is not billed to the first image
    Reconstructor(preset_config("fast", device=args.device)).run(inputs[0], until="body")

    cols = list(STAGE_NAMES) + ["export"]
    print("| preset | image | " + " | ".join(cols) + " | total s | CPU s | load | triangles | vertices |")
    print("|---" * (len(cols) + 7) + "|")
    for preset in args.presets:
        for img in inputs:
            cfg = preset_config(preset, device=args.device)
            out = tmp / f"{preset}_{img.stem}.glb"
            load0 = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), time.process_time()
            res = Reconstructor(cfg).run(img, out, overwrite=True)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
            mesh = res.results["texture"]
            cells = [f"{res.timings.get(c, 0.0):.1f}" for c in cols]
            print(f"| {preset} | {img.name} | " + " | ".join(cells) + f" | {total:.1f} | {cpu:.1f} | "
                  f"{load0:.1f}-{os.getloadavg()[0]:.1f} | {len(mesh.faces)} | "
                  f"{len(mesh.vertices)} |", flush=True)
    if not args.no_iterations:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from carve import iteration_table

        iteration_table(argparse.Namespace(renderer=args.renderer))


if __name__ == "__main__":
    main()
