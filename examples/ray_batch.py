"""A batch spread over many machines with Ray, from Python (the CLI equivalent is
``human3d reconstruct PHOTOS -o OUT --executor ray --ray-address HEAD:6379``).

    python examples/ray_batch.py PHOTOS_DIR OUT_DIR [--address HEAD:6379] [--jobs N] [--set SECTION.FIELD=VALUE ...]

Without --address it runs N local worker processes instead (``--jobs``, default 2). With Ray, OUT_DIR must be a
folder every node sees (shared storage); pass --driver-storage when it is not, and results come back to this
machine through Ray's object store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from human3d.batch import expand_inputs, output_names, run_batch
from human3d.config import apply_settings, preset_config
from human3d.executors import ExecutorSettings, ReconstructTask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--address", default=None, help="a running Ray cluster; omit for local workers")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--driver-storage", action="store_true")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--set", dest="settings", action="append", default=[])
    args = parser.parse_args(argv)

    cfg = apply_settings(preset_config(args.preset, seed=0), args.settings)
    photos = expand_inputs([str(args.photos)])
    outputs = output_names(photos, args.out, "glb")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.address:
        spread = ExecutorSettings(executor="ray", ray_address=args.address,
                                  storage="driver" if args.driver_storage else "shared")
    else:
        spread = ExecutorSettings(executor="local", jobs=args.jobs)
    summary = run_batch(photos, outputs, ReconstructTask(cfg), summary_path=args.out / "summary.json", fmt="glb",
                        executor_settings=spread, on_message=lambda m: print(m, file=sys.stderr),
                        on_item=lambda i, item: print(f"{item.status:7} {item.input}", file=sys.stderr))
    counts = summary.counts
    print(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed; "
          f"summary: {args.out / 'summary.json'}")
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
