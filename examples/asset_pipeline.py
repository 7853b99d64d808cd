"""An asset-pipeline step: reconstruct every photo of a folder, check each GLB the way a downstream tool reads it,
and write a CSV manifest that the next step (import, review, upload) consumes.

    python examples/asset_pipeline.py PHOTOS_DIR OUT_DIR [--preset fast] [--set SECTION.FIELD=VALUE ...]

A photo that fails is recorded with its reason and the rest go on; rerunning skips finished photos. The exit
status is 0 when every photo passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import trimesh

from human3d.batch import expand_inputs, output_names, run_batch
from human3d.config import apply_settings, preset_config
from human3d.pipeline import Reconstructor


def check_asset(path: Path) -> dict[str, object]:
    """What a downstream importer needs: it loads, has a texture, is metric with the feet on the ground."""
    mesh = trimesh.load(path, force="mesh", process=False)
    lo, hi = mesh.bounds
    textured = isinstance(mesh.visual, trimesh.visual.TextureVisuals) and mesh.visual.material is not None
    return {"triangles": len(mesh.faces), "height_m": round(float(hi[1] - lo[1]), 3), "textured": textured,
            "feet_on_ground": bool(abs(lo[1]) < 0.01), "finite": bool(np.isfinite(mesh.vertices).all())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--set", dest="settings", action="append", default=[])
    args = parser.parse_args(argv)

    cfg = apply_settings(preset_config(args.preset, seed=0), args.settings)
    photos = expand_inputs([str(args.photos)])
    outputs = output_names(photos, args.out, "glb")
    args.out.mkdir(parents=True, exist_ok=True)
    reconstructor = Reconstructor(cfg)

    def process(src: Path, dst: Path, work: Path | None):
        res = reconstructor.run(src, dst)
        return res.warnings, {k: round(v, 3) for k, v in res.timings.items()}, res.backends

    summary = run_batch(photos, outputs, process, summary_path=args.out / "summary.json", fmt="glb")
    rows, ok = [], True
    for item in summary.items:
        row: dict[str, object] = {"input": item.input, "status": item.status, "output": item.output or "",
                                  "error": item.error or ""}
        if item.status in ("ok", "skipped") and item.output and Path(item.output).is_file():
            row.update(check_asset(Path(item.output)))
            ok &= bool(row["textured"] and row["feet_on_ground"] and row["finite"])
        else:
            ok = False
        rows.append(row)
    fields = ["input", "status", "output", "error", "triangles", "height_m", "textured", "feet_on_ground", "finite"]
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"manifest: {args.out / 'manifest.csv'} ({sum(r['status'] != 'failed' for r in rows)}/{len(rows)} ok)",
          file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
