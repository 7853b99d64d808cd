"""Body-fit quality on hard poses and time per image on CPU, as a Markdown table.

    .venv/bin/python benchmarks/body_fit.py                       # default config (200 iterations), R = 768
    .venv/bin/python benchmarks/body_fit.py --iterations 120 --threads 2 --sheet fits.png

Inputs: shaded, textured renders (skin, shirt, trousers, hair, eyes, mouth) of Anny bodies in hard poses (T-pose,
A-pose, lunge, seated, one leg raised toward the camera, arms crossed, seen from behind, crouching; seeded jitter),
and the RGBA cutouts in ../shared/data/photos (when present), put on white and framed. Each row runs the whole stage
(`fit_body`: mediapipe landmarks + optimisation + outputs); the model is loaded once before the first timed row
(its cache build, on a cold machine, is reported separately).

Columns: seconds -- wall time of the stage; CPU s -- its CPU seconds (this process, all threads: they grow much less
than the wall seconds with the load of a shared machine, whose 1-minute average the last line gives).
Columns (renders, whose ground truth is known):
  IoU -- the fit's silhouette (its surface: the body with its clothing and hair offsets) against the person mask;
  body IoU -- the same for the body model's surface alone (before the offsets);
  joints mm -- mean 3D keypoint error after a similarity (Procrustes) alignment, in metres of the true body;
  depth wrong -- of the limbs (upper/lower arms and legs) that clearly point toward or away from the camera in
    truth (|dz| > 25% of their length), the fraction whose fitted direction points the other way;
  facing deg -- the torso's heading (about the vertical) of the fit against the truth;
  bent back -- elbows/knees flexed backward past straight by more than 10 degrees;
  height % -- exported height against the true body's standing height.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from human3d.body.models import KEYPOINT_NAMES, AnnyBody, anny_cache_dir, anny_cache_ready  # noqa: E402
from human3d.body.synthetic import make_body, random_pose, shaded_image  # noqa: E402
from human3d.cameras import CANVAS_SIZE, CROP_SIZE, face_box  # noqa: E402
from human3d.config import BodyConfig  # noqa: E402
from human3d.context import StageContext  # noqa: E402
from human3d.types import Framed  # noqa: E402

PHOTOS = REPO.parent / "shared" / "data" / "photos"

#: Benchmark cases: name -> (pose of synthetic.POSES, yaw in degrees).
CASES = {"t_pose": ("t_pose", 0.0), "a_pose": ("a_pose", 10.0), "lunge": ("lunge", 25.0), "seated": ("seated", 20.0),
         "leg_raised": ("leg_raised", 0.0), "arms_crossed": ("arms_crossed", 0.0), "back": ("a_pose", 180.0),
         "crouching": ("crouching", 15.0)}
LIMBS = (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
         ("right_elbow", "right_wrist"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
         ("right_hip", "right_knee"), ("right_knee", "right_ankle"))
KP = {n: i for i, n in enumerate(KEYPOINT_NAMES)}


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


def depth_order_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(wrong, considered): limbs whose true direction clearly points toward or away from the camera, and those of
    them the fit points the other way. pred, gt: (K, 3) canonical keypoints (z toward the camera)."""
    wrong = considered = 0
    for a, b in LIMBS:
        d_gt, d_pr = gt[KP[b]] - gt[KP[a]], pred[KP[b]] - pred[KP[a]]
        if abs(d_gt[2]) > 0.25 * np.linalg.norm(d_gt):
            considered += 1
            wrong += int(np.sign(d_gt[2]) != np.sign(d_pr[2]))
    return wrong, considered


def heading_deg(kp: np.ndarray) -> float:
    """The torso's forward direction as an angle about +Y (0: facing the camera, +Z), degrees."""
    left = (kp[KP["left_hip"]] - kp[KP["right_hip"]]) + (kp[KP["left_shoulder"]] - kp[KP["right_shoulder"]])
    fwd = np.cross(left, np.array([0.0, 1.0, 0.0]))
    return float(np.degrees(np.arctan2(fwd[0], fwd[2])))


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def fit_views(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """(R, 2R, 3) uint8 grey Lambert renders of a canonical-frame mesh from the front and from its left side."""
    from human3d.body.keypoints import canonical_to_pixels
    from human3d.body.silhouette import rasterize

    tiles = []
    for yaw in (0.0, -90.0):
        c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        v = vertices @ np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]).T
        fid, _ = rasterize(canonical_to_pixels(v[:, :2], resolution), v[:, 2], faces, resolution)
        tri = v[faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        shade = np.abs(n[:, 2]) / (np.linalg.norm(n, axis=1) + 1e-12)
        img = np.full((resolution, resolution), 255.0)
        img[fid >= 0] = 60 + 170 * shade[fid[fid >= 0]]
        tiles.append(np.repeat(img[..., None], 3, -1).astype(np.uint8))
    return np.concatenate(tiles, 1)


def _parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=BodyConfig().iterations)
    ap.add_argument("--resolution", type=int, default=768)
    ap.add_argument("--threads", type=int, default=BodyConfig().threads, help="torch threads while fitting (0: torch's)")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--jitter", type=float, default=0.08, help="pose jitter (radians per joint axis)")
    ap.add_argument("--no-photos", action="store_true")
    ap.add_argument("--sheet", type=Path, help="write a PNG: each input beside its fit seen from the front and side")
    return ap.parse_args()


def _inputs(args: argparse.Namespace, model: AnnyBody) -> list[tuple[str, Framed, object]]:
    """(name, framed input, (true body, its height) or None) for every rendered case, then each shared cutout."""
    inputs: list[tuple[str, Framed, object]] = []
    for i, name in enumerate(args.cases):
        pose, yaw = CASES[name]
        body = make_body(model, random_pose(pose, i, jitter=args.jitter), yaw_deg=yaw, resolution=args.resolution)
        rgba = np.concatenate([shaded_image(body, model), (body.mask * 255).astype(np.uint8)[..., None]], -1)
        with torch.no_grad():
            rest = model.forward({}, torch.as_tensor(body.shape, dtype=torch.float32)[None])
        true_height = float(rest.vertices[0, :, 1].max() - rest.vertices[0, :, 1].min())
        inputs.append((f"render:{name}", frame_rgba(rgba, args.resolution), (body, true_height)))
    if not args.no_photos and PHOTOS.is_dir():
        from PIL import Image

        for p in sorted(PHOTOS.glob("*.png")):
            rgba = np.asarray(Image.open(p).convert("RGBA"))
            if (rgba[..., 3] < 128).mean() > 0.01:  # only cutouts: the pipeline's segmentation is not run here
                inputs.append((f"photo:{p.name}", frame_rgba(rgba, args.resolution), None))
    return inputs


def main() -> None:
    args = _parse_args()
    cold = not anny_cache_ready()
    t0 = time.perf_counter()
    model = AnnyBody("cpu")
    load = time.perf_counter() - t0
    print(f"Anny model load: {load:.1f} s ({'cold: cache built in ' + str(anny_cache_dir()) if cold else 'warm cache'})"
          f"; torch threads {args.threads or torch.get_num_threads()}; iterations {args.iterations}; canvas {args.resolution}")
    inputs = _inputs(args, model)

    from human3d.body.fit import fit_body

    print("\n| input | seconds | CPU s | IoU | body IoU | joints mm | depth wrong | facing deg | bent back | height m "
          "| height % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    times, cpus, ious, errs, sheet = [], [], [], [], []
    load0 = os.getloadavg()[0]
    for name, framed, truth in inputs:
        t, c = time.perf_counter(), time.process_time()
        ctx = StageContext(device="cpu", seed=0)
        fit = fit_body(framed, BodyConfig(model="anny", iterations=args.iterations, threads=args.threads), ctx)
        dt = time.perf_counter() - t
        times.append(dt)
        cpus.append(time.process_time() - c)
        ious.append(fit.report["mask_iou"])
        pred = np.array(list(fit.params["keypoints"].values()))
        bent = sum(f < -10.0 for f in fit.params["hinge_flexion_deg"].values())
        cells = ["-"] * 4
        if truth is not None:
            body, true_height = truth
            err = 1000 * procrustes_error(pred[:21], body.world[:21])
            errs.append(err)
            wrong, considered = depth_order_errors(pred, body.keypoints)
            facing = angle_diff(heading_deg(pred), heading_deg(body.keypoints))
            cells = [f"{err:.0f}", f"{wrong}/{considered}", f"{facing:.0f}",
                     f"{100 * (fit.height_m - true_height) / true_height:+.1f}"]
        body_iou = fit.report.get("mask_iou_body", fit.report["mask_iou"])
        print(f"| {name} | {dt:.1f} | {cpus[-1]:.1f} | {fit.report['mask_iou']:.3f} | {body_iou:.3f} | {cells[0]} | {cells[1]} | {cells[2]} | {bent} "
              f"| {fit.height_m:.2f} | {cells[3]} |", flush=True)
        if args.sheet is not None:
            r = 256
            from PIL import Image

            small = np.asarray(Image.fromarray(framed.rgb).resize((r, r)))
            sheet.append(np.concatenate([small, fit_views(fit.vertices, fit.faces, r)], 1))
    print(f"\nmean fit time per image: {np.mean(times):.1f} s ({np.mean(cpus):.1f} CPU s) over {len(times)} images; "
          f"load {load0:.1f}-{os.getloadavg()[0]:.1f}; min IoU {min(ious):.3f}"
          + (f"; median joint error {np.median(errs):.0f} mm" if errs else ""))
    if sheet:
        from PIL import Image

        Image.fromarray(np.concatenate(sheet, 0)).save(args.sheet)
        print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
