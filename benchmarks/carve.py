"""Benchmark of the carving stage per preset on a synthetic subject with known geometry.

The subject is the clothed humanoid of :mod:`human3d.carve.synthetic`; its six body views are rendered at the
canvas resolution (768) as the multi-view stage would give them, and the stage starts from the undisplaced body
(as the body fit would give it), shifted and scaled a little so that the body refinement has work to do.
Prints, per preset: iterations, final vertex count, seconds per iteration, total seconds of the whole stage, and the
oracle metrics (Chamfer distance in % of the subject's height, normal consistency).

    .venv/bin/python benchmarks/carve.py                      # fast and default
    .venv/bin/python benchmarks/carve.py --presets fast default quality --renderer torch
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["fast", "default"], choices=["fast", "default", "quality"])
    parser.add_argument("--renderer", default="auto", help="auto | torch | open3d | nvdiffrast")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="override CarveConfig.threads")
    parser.add_argument("--view-resolution", type=int, default=768)
    args = parser.parse_args()

    from human3d.cameras import body_cameras
    from human3d.carve.carve import carve_with_report
    from human3d.carve.synthetic import chamfer_and_normal_consistency, humanoid_mesh, render_views
    from human3d.config import preset_config
    from human3d.context import StageContext
    from human3d.types import BodyFit

    t0 = time.perf_counter()
    truth = humanoid_mesh(clothed=True, spacing=0.008)
    body_v, body_f = humanoid_mesh(clothed=False, spacing=0.02)
    views = render_views(*truth, body_cameras(args.view_resolution))
    center = body_v.mean(0)
    start_v = ((body_v - center) * 1.03 + center + np.array([0.02, -0.015, 0.0])).astype(np.float32)
    body = BodyFit(vertices=start_v, faces=body_f, joints=np.zeros((0, 3), np.float32))
    height = float(truth[0][:, 1].max() - truth[0][:, 1].min())
    c0, n0 = chamfer_and_normal_consistency((body_v, body_f), truth)
    print(f"subject: {len(truth[0])} vertices, views {args.view_resolution}px, set up in "
          f"{time.perf_counter() - t0:.1f} s; undisplaced body: Chamfer {100 * c0 / height:.2f}% of height, "
          f"normal consistency {n0:.3f}")

    header = ("preset", "res", "iters", "vertices", "s/iter", "total s", "chamfer %h", "normal cons.", "renderer",
              "seconds by step")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    for preset in args.presets:
        cfg = preset_config(preset).carve
        cfg.renderer = args.renderer
        if args.threads is not None:
            cfg.threads = args.threads
        ctx = StageContext(device=args.device, stage="carve")
        t = time.perf_counter()
        mesh, report = carve_with_report(views, body, cfg, ctx)
        total = time.perf_counter() - t
        c, n = chamfer_and_normal_consistency((mesh.vertices, mesh.faces), truth)
        steps = " ".join(f"{k} {v:.1f}" for k, v in report.seconds.items())
        print(f"| {preset} | {cfg.resolution} | {cfg.iterations} | {len(mesh.vertices)} | "
              f"{report.seconds['carve'] / max(cfg.iterations, 1):.3f} | {total:.1f} | {100 * c / height:.3f} | "
              f"{n:.3f} | {report.renderer} | {steps} |", flush=True)

if __name__ == "__main__":
    main()
