"""Benchmark of the carving stage per preset on a synthetic subject with known geometry, and of the cost of one
remeshing iteration against mesh size.

The subject is the clothed humanoid of :mod:`human3d.carve.synthetic` (jacket and trousers with folds, a hood, a
face with a nose); its six body views are rendered at the canvas resolution (768) as the multi-view stage would
give them (perfect normals), and the stage starts from the undisplaced body (as the body fit would give it),
shifted and scaled a little so that the body refinement has work to do.

Prints, per preset: carve seconds (the continuous-remeshing loop) and the whole stage's seconds, iterations,
triangles, Chamfer (% of height), normal consistency, the mean angle between the output's and the ground truth's
rendered normals in the six views at the view resolution, and mask IoU. Then the seconds per carving iteration
(render + backward + optimiser step + remesh) and per remesh alone, at three mesh sizes.

    .venv/bin/python benchmarks/carve.py                      # fast, default and quality
    .venv/bin/python benchmarks/carve.py --presets default --renderer torch
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def preset_table(args: argparse.Namespace) -> None:
    from human3d.cameras import body_cameras
    from human3d.carve.carve import carve_with_report
    from human3d.carve.synthetic import humanoid_mesh, oracle_scores, render_views
    from human3d.config import preset_config
    from human3d.context import StageContext
    from human3d.types import BodyFit

    t0 = time.perf_counter()
    truth = humanoid_mesh(clothed=True, spacing=0.008)
    body_v, body_f = humanoid_mesh(clothed=False, spacing=0.02)
    cams = body_cameras(args.view_resolution)
    views = render_views(*truth, cams)
    center = body_v.mean(0)
    start_v = ((body_v - center) * 1.03 + center + np.array([0.02, -0.015, 0.0])).astype(np.float32)
    body = BodyFit(vertices=start_v, faces=body_f, joints=np.zeros((0, 3), np.float32))
    s0 = oracle_scores((body_v, body_f), truth, cams, count=args.points)
    print(f"subject: {len(truth[1])} triangles, views {args.view_resolution}px, set up in "
          f"{time.perf_counter() - t0:.1f} s; undisplaced body: {s0.row()}")
    header = ("preset", "res", "iters", "carve s", "stage s", "triangles", "chamfer %h", "NC", "normal angle deg",
              "mask IoU", "self-int.", "renderer", "seconds by step")
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
        s = oracle_scores((mesh.vertices, mesh.faces), truth, cams, count=args.points)
        steps = " ".join(f"{k} {v:.1f}" for k, v in report.seconds.items())
        selfint = getattr(report, "self_intersecting_faces", "n/a")
        print(f"| {preset} | {cfg.resolution} | {report.iterations} | {report.seconds['carve']:.1f} | {total:.1f} | "
              f"{s.row()} | {selfint} | {report.renderer} | {steps} |", flush=True)


def iteration_table(args: argparse.Namespace) -> None:
    """Seconds per carving iteration and per remesh at three mesh sizes (edges at the floor: no net remeshing)."""
    import torch

    from human3d.cameras import body_cameras
    from human3d.carve.carve import ViewTargets, view_losses
    from human3d.carve.optimizer import MeshOptimizer, RemeshingSettings
    from human3d.carve.synthetic import humanoid_mesh, render_views
    from human3d.context import torch_threads
    from human3d.render import get_rasterizer

    res = 384
    truth = humanoid_mesh(clothed=True, spacing=0.01)
    mv = render_views(*truth, body_cameras(res))
    targets = ViewTargets(torch.as_tensor(mv.normals), torch.as_tensor(mv.masks).float(), torch.ones(6), body_cameras(res))
    rasterizer = get_rasterizer(args.renderer)
    print(f"\nseconds per iteration at {res}px x 6 views ({rasterizer.name}); the mesh is the ground truth at three "
          "spacings, its reference length its own edge length")
    print("| vertices | triangles | s/iteration | s/remesh | s/iteration per 10k vertices | s/remesh per 10k vertices "
          "| CPU s/iteration | CPU s/remesh |")
    print("|---|---|---|---|---|---|---|---|")
    with torch_threads(1):
        for spacing in (0.02, 0.01, 0.005):
            v, f = humanoid_mesh(clothed=True, spacing=spacing)
            edge = float(np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1).mean())
            opt = MeshOptimizer(torch.as_tensor(v), torch.as_tensor(f),
                                RemeshingSettings(edge_len_lims=(edge, edge)))
            n_iter = 5
            t_remesh = c_remesh = 0.0
            t, c = time.perf_counter(), time.process_time()
            for _ in range(n_iter):
                opt.zero_grad()
                loss, _ = view_losses(opt.vertices, opt.faces, targets, rasterizer)
                loss.backward()
                opt.step(remesh=False)
                t1, c1 = time.perf_counter(), time.process_time()
                opt.remesh()
                t_remesh += time.perf_counter() - t1
                c_remesh += time.process_time() - c1
            per, cpu = (time.perf_counter() - t) / n_iter, (time.process_time() - c) / n_iter
            nv = opt.vertices.shape[0]
            print(f"| {nv} | {opt.faces.shape[0]} | {per:.3f} | {t_remesh / n_iter:.3f} | {1e4 * per / nv:.3f} | "
                  f"{1e4 * t_remesh / n_iter / nv:.3f} | {cpu:.3f} | {c_remesh / n_iter:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=["fast", "default", "quality"],
                        choices=["fast", "default", "quality"])
    parser.add_argument("--renderer", default="auto", help="auto | torch | open3d | nvdiffrast")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="override CarveConfig.threads")
    parser.add_argument("--view-resolution", type=int, default=768)
    parser.add_argument("--points", type=int, default=100_000, help="sample points per surface of the metrics")
    parser.add_argument("--no-iterations", action="store_true", help="skip the per-iteration cost table")
    args = parser.parse_args()
    if args.presets:
        preset_table(args)
    if not args.no_iterations:
        iteration_table(args)


if __name__ == "__main__":
    main()
