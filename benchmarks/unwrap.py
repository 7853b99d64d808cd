"""Seconds of the texture stage's UV unwrap: projection charts packed by xatlas (what the stage uses) against
xatlas's own chart growing, on the synthetic clothed humanoid at a few mesh sizes (or on a carved mesh).

    .venv/bin/python benchmarks/unwrap.py [--spacings 0.02 0.014] [--mesh WORK/5_carve] [--no-xatlas]

Prints wall and CPU seconds, charts, the atlas size before it is fitted to the texture, and the share of the
texture the charts cover (xatlas's utilization).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _xatlas_charts(v: np.ndarray, f: np.ndarray, size: int) -> tuple[int, float]:
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(v, np.float32), np.ascontiguousarray(f, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding, pack.bilinear = size, 4, True
    atlas.generate(pack_options=pack)
    return atlas.chart_count, atlas.utilization


def _projection_charts(v: np.ndarray, f: np.ndarray, size: int) -> tuple[int, float]:
    from human3d.texture.bake import _pack
    from human3d.texture.charts import chart_mesh, projection_charts

    chart, uv = projection_charts(v, f)
    _, cf, cuv = chart_mesh(f, chart, uv)
    atlas = _pack(cuv, cf, size, 4)
    return int(chart.max()) + 1, atlas.utilization


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spacings", type=float, nargs="*", default=[0.02, 0.014])
    ap.add_argument("--mesh", nargs="*", default=[], help="stage folders of carved meshes (WORK/5_carve)")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--no-xatlas", action="store_true", help="skip xatlas's own charts (slow on big meshes)")
    args = ap.parse_args()
    from human3d.carve.synthetic import humanoid_mesh
    from human3d.types import Mesh

    meshes = [(f"humanoid {s}", *humanoid_mesh(clothed=True, spacing=s)) for s in args.spacings]
    for folder in args.mesh:
        m = Mesh.load(Path(folder))
        meshes.append((folder, m.vertices, m.faces))
    print("| mesh | faces | charts by | wall s | CPU s | charts | utilization |")
    print("|---|---|---|---|---|---|---|")
    methods = [("projection", _projection_charts)] + ([] if args.no_xatlas else [("xatlas", _xatlas_charts)])
    for name, v, f in meshes:
        for label, fn in methods:
            t, c = time.perf_counter(), time.process_time()
            charts, util = fn(np.asarray(v), np.asarray(f, np.int64), args.size)
            print(f"| {name} | {len(f)} | {label} | {time.perf_counter() - t:.2f} | {time.process_time() - c:.2f} | "
                  f"{charts} | {util:.2f} |", flush=True)


if __name__ == "__main__":
    main()
