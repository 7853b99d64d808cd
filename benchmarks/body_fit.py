"""Body-fit time per image on CPU, with its quality, as a Markdown table.

    .venv/bin/python benchmarks/body_fit.py                       # default config (200 iterations), R = 768
    .venv/bin/python benchmarks/body_fit.py --iterations 120 --threads 2

Inputs: shaded renders of posed Anny bodies (known pose: the 3D keypoint error after Procrustes is reported) and
the RGBA cutouts in ../shared/data/photos (when present), put on white and framed. Each row runs the whole stage
(`fit_body`: mediapipe landmarks + optimisation + outputs); the model is loaded once before the first timed row
(its cache build, on a cold machine, is reported separately).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from human3d.body.models import AnnyBody, anny_cache_dir, anny_cache_ready  # noqa: E402
from human3d.body.synthetic import make_body, random_pose, shaded_image  # noqa: E402
from human3d.cameras import CANVAS_SIZE, CROP_SIZE, face_box  # noqa: E402
from human3d.config import BodyConfig  # noqa: E402
from human3d.context import StageContext  # noqa: E402
from human3d.types import Framed  # noqa: E402

PHOTOS = REPO.parent / "shared" / "data" / "photos"


def frame_rgba(rgba: np.ndarray, resolution: int) -> Framed:
    """Put an RGBA cutout on white and frame it as DESIGN.md §3 describes (a stand-in for the framing stage)."""
    from PIL import Image

    alpha = rgba[..., 3] > 127
    rows, cols = np.nonzero(alpha)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    on_white = (rgba[..., :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)
    scale = resolution * CROP_SIZE / CANVAS_SIZE / max(y1 - y0, x1 - x0)
    w, h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    ox, oy = (resolution - w) // 2, (resolution - h) // 2
    canvas = np.full((resolution, resolution, 3), 255, np.uint8)
    mask = np.zeros((resolution, resolution), bool)
    canvas[oy:oy + h, ox:ox + w] = np.asarray(Image.fromarray(on_white[y0:y1, x0:x1]).resize((w, h)))
    mask[oy:oy + h, ox:ox + w] = np.asarray(Image.fromarray(alpha[y0:y1, x0:x1].astype(np.uint8) * 255)
                                            .resize((w, h))) > 127
    fx0, fy0, fx1, fy1 = face_box(resolution)
    sx = w / (x1 - x0)
    return Framed(rgb=canvas, mask=mask, face_rgb=canvas[fy0:fy1, fx0:fx1].copy(),
                  face_mask=mask[fy0:fy1, fx0:fx1].copy(), scale=float(sx),
                  offset=(float(ox - x0 * sx), float(oy - y0 * sx)), photo_size=(rgba.shape[1], rgba.shape[0]))


def procrustes_error(pred: np.ndarray, gt: np.ndarray) -> float:
    p0, g0 = pred - pred.mean(0), gt - gt.mean(0)
    u, s, vt = np.linalg.svd(p0.T @ g0)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    scale = (s * np.diag(d)).sum() / (p0 ** 2).sum()
    return float(np.linalg.norm(scale * p0 @ (u @ d @ vt) - g0, axis=1).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=BodyConfig().iterations)
    ap.add_argument("--resolution", type=int, default=768)
    ap.add_argument("--threads", type=int, default=BodyConfig().threads, help="torch threads while fitting (0: torch's)")
    ap.add_argument("--poses", nargs="*", default=["standing", "arms_raised", "lunge", "sitting"])
    ap.add_argument("--no-photos", action="store_true")
    args = ap.parse_args()

    cold = not anny_cache_ready()
    t0 = time.perf_counter()
    model = AnnyBody("cpu")
    load = time.perf_counter() - t0
    print(f"Anny model load: {load:.1f} s ({'cold: cache built in ' + str(anny_cache_dir()) if cold else 'warm cache'})"
          f"; torch threads {args.threads or torch.get_num_threads()}; iterations {args.iterations}; canvas {args.resolution}")

    inputs: list[tuple[str, Framed, np.ndarray | None]] = []
    for i, pose in enumerate(args.poses):
        body = make_body(model, random_pose(pose, i), resolution=args.resolution)
        rgba = np.concatenate([shaded_image(body, model), (body.mask * 255).astype(np.uint8)[..., None]], -1)
        inputs.append((f"render:{pose}", frame_rgba(rgba, args.resolution), body.keypoints))
    if not args.no_photos and PHOTOS.is_dir():
        from PIL import Image

        for p in sorted(PHOTOS.glob("*.png")):
            rgba = np.asarray(Image.open(p).convert("RGBA"))
            if (rgba[..., 3] < 128).mean() > 0.01:  # only cutouts: the pipeline's segmentation is not run here
                inputs.append((f"photo:{p.name}", frame_rgba(rgba, args.resolution), None))

    from human3d.body.fit import fit_body

    print("\n| input | seconds | keypoint error px (% of R) | mask IoU | 3D error after Procrustes (mm) | height m |")
    print("|---|---|---|---|---|---|")
    times = []
    for name, framed, gt in inputs:
        t = time.perf_counter()
        ctx = StageContext(device="cpu", seed=0)
        fit = fit_body(framed, BodyConfig(model="anny", iterations=args.iterations, threads=args.threads), ctx)
        dt = time.perf_counter() - t
        times.append(dt)
        kp = fit.report.get("keypoint_error_px")
        kp_s = f"{kp:.1f} ({100 * kp / args.resolution:.2f}%)" if kp is not None else "-"
        pa = "-"
        if gt is not None:
            pred = np.array(list(fit.params["keypoints"].values()))
            pa = f"{1000 * procrustes_error(pred, gt) * fit.height_m / fit.canonical_height:.0f}"
        print(f"| {name} | {dt:.1f} | {kp_s} | {fit.report['mask_iou']:.3f} | {pa} | {fit.height_m:.2f} |", flush=True)
    print(f"\nmean fit time per image: {np.mean(times):.1f} s over {len(times)} images")


if __name__ == "__main__":
    main()
