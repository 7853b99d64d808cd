"""Benchmark of ``report.html`` for a large batch: how long writing the report takes, and how the page behaves in
headless Chromium (load time, time to open a viewer, viewers alive after opening several).

A batch folder of ``--rows`` results is made from one small GLB and its preview (hard links), with every tenth
input failed. Prints one table.

    .venv/bin/python benchmarks/report.py               # 500 rows
    .venv/bin/python benchmarks/report.py --rows 100 --keep /tmp/big_report
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_batch(folder: Path, rows: int) -> None:
    """``folder`` with one real result (GLB + preview) hard-linked ``rows`` times and a summary.json."""
    sys.path.insert(0, str(REPO))
    from human3d import pipeline
    from human3d.config import preset_config
    from human3d.io.previews import write_result_preview
    from tests.cli.fastpipe import FAST_STAGES, person_photo

    pipeline.STAGES = FAST_STAGES
    (folder / "previews").mkdir(parents=True)
    photo = person_photo(folder / "photo.png")
    res = pipeline.Reconstructor(preset_config("fast", device="cpu")).run(photo, folder / "r0.glb")
    write_result_preview(res, folder / "r0.glb", folder / "previews" / "r0_preview.png")
    items = []
    for i in range(rows):
        if i % 10 == 9:
            items.append({"input": f"in/p{i}.png", "status": "failed", "output": str(folder / f"r{i}.glb"),
                          "seconds": 0.1, "error": f"in/p{i}.png is not an image", "warnings": [], "timings": {}})
            continue
        if i:
            os.link(folder / "r0.glb", folder / f"r{i}.glb")
            os.link(folder / "previews" / "r0_preview.png", folder / "previews" / f"r{i}_preview.png")
        items.append({"input": str(photo), "status": "ok", "output": str(folder / f"r{i}.glb"), "seconds": 2.0,
                      "error": None, "warnings": ["a warning"], "timings": dict(res.timings),
                      "backends": dict(res.backends)})
    summary = {"items": items, "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:20:00+00:00"}
    (folder / "summary.json").write_text(json.dumps(summary))


def browse(report: Path, opens: int) -> dict[str, float]:
    from tests.browser import Chromium, find_chromium

    exe = find_chromium()
    if exe is None:
        return {}
    with tempfile.TemporaryDirectory() as profile:
        b = Chromium(exe, Path(profile))
        try:
            t0 = time.perf_counter()
            session = b.page(report.resolve().as_uri())
            out = {"page load (s)": time.perf_counter() - t0}
            for k in range(opens):
                t0 = time.perf_counter()
                b.evaluate(session, f"(() => {{ const d = document.querySelectorAll('tr.st-ok details')[{k * 7}];"
                                    " d.open = true; d.querySelector('button.view3d').click(); })()")
                state, deadline = None, time.monotonic() + 120
                while state not in ("loaded", "error") and time.monotonic() < deadline:
                    time.sleep(0.1)
                    state = b.evaluate(session, f"document.querySelectorAll('.viewer')[{k * 7}].dataset.state")
                out[f"viewer {k + 1} {state} after (s)"] = time.perf_counter() - t0
            out["viewers alive"] = b.evaluate(session, "document.querySelectorAll('model-viewer').length")
            out["console errors"] = len(b.errors())
        finally:
            b.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--opens", type=int, default=3, help="viewers to open one after another")
    parser.add_argument("--keep", type=Path, default=None, help="build the batch here and keep it")
    args = parser.parse_args()

    from human3d.report import write_report

    folder = args.keep or Path(tempfile.mkdtemp(prefix="h3d-report-bench-"))
    try:
        make_batch(folder, args.rows)
        t0 = time.perf_counter()
        result = write_report(folder)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_report(folder)
        warm = time.perf_counter() - t0
        rows = {"rows": args.rows, "report.html (KiB)": result.path.stat().st_size / 1024,
                "model scripts (MiB)": result.model_bytes / 2**20, "write, first (s)": cold,
                "write, again (s)": warm, "viewer bundled": result.viewer, **browse(result.path, args.opens)}
        width = max(map(len, rows))
        for k, v in rows.items():
            print(f"{k:<{width}}  {v:.2f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
