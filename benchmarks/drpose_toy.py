"""A toy DRPose run end to end on the CPU, through the CLI: generated Anny bodies -> `human3d train prepare-skel` ->
`human3d train skel --eval` -> `human3d train drpose` (guidance on) -> PoseScore on a fixed validation set before
and after, and the tuned UNet loaded back as `reconstruct --unet` loads it.

Everything is tiny (the tests' random PSHuman-style pipeline at 32 px, latents 8 x 8, a small g_skel); the numbers
show the machinery works, not what the real model gains.

    PYTHONPATH=$PWD python benchmarks/drpose_toy.py [--work DIR] [--updates 8] [--skel-iterations 300]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from human3d.body.models import load_body_model
from human3d.body.synthetic import POSES, make_body, random_pose, shaded_image
from human3d.train.data import PoseImageDataset, write_pose_sample

RES = 32
VIEWS = "front,right,back"  # the tiny pipeline's body views; back is predicted mirrored (index 2)


def bone_colours(model) -> np.ndarray:
    """(V, 3) uint8 vertex colours: trousers on the legs, a shirt on the torso and upper arms, skin elsewhere."""
    names = model.joint_names
    dominant = model.skinning_weights.argmax(1)
    legs, torso = ("leg", "pelvis", "hip", "knee", "root"), ("spine", "clavicle", "shoulder", "upperarm")
    table = np.array([(50, 50, 60) if any(w in b for w in legs) else (40, 90, 170) if any(w in b for w in torso)
                      else (224, 172, 140) for b in names], np.uint8)
    return table[np.asarray(dominant)]


def write_bodies(model, folder: Path, seeds: range, scans: Path | None) -> None:
    """DRPose pairs (shaded image + joints) in ``folder``; with ``scans`` also the bodies as GLB scans + joints."""
    import json

    import trimesh

    colours = bone_colours(model)
    names = list(POSES)
    for seed in seeds:
        body = make_body(model, random_pose(names[seed % len(names)], seed, jitter=0.25), resolution=RES,
                         yaw_deg=float(np.random.default_rng(seed).uniform(-30, 30)))
        write_pose_sample(folder, f"body{seed:03d}", shaded_image(body, model), body.joints, model.joint_names)
        if scans is not None:
            mesh = trimesh.Trimesh(body.vertices * 0.9 + [0.0, 0.0, 0.3], body.faces, vertex_colors=colours,
                                   process=False)  # any frame: prepare-skel re-frames the scan
            mesh.export(scans / f"body{seed:03d}.glb")
            joints = body.joints * 0.9 + [0.0, 0.0, 0.3]
            (scans / f"body{seed:03d}.json").write_text(json.dumps(
                {"joint_names": list(model.joint_names), "joints": joints.round(6).tolist()}))


def run(cmd: list[str]) -> str:
    print("$ human3d " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "human3d", *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    print(f"  ({time.perf_counter() - start:.0f} s) {proc.stdout.strip()}", flush=True)
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--scans", type=int, default=48)
    parser.add_argument("--skel-iterations", type=int, default=300)
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="drpose_toy_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}")

    # 1. the tiny pipeline, saved as a PSHuman-style folder; generated Anny bodies
    from tests.train.test_drpose import tiny_pipeline

    pipe_dir = work / "pipeline"
    if not pipe_dir.exists():
        tiny_pipeline().save_pretrained(pipe_dir)
    model = load_body_model("anny")
    scans, train_pairs, val_pairs = work / "scans", work / "pairs_train", work / "pairs_val"
    if not scans.exists():
        scans.mkdir()
        write_bodies(model, train_pairs, range(args.scans), scans)
        write_bodies(model, val_pairs, range(1000, 1006), None)

    # 2. g_skel's data and g_skel (with the Table 3 evaluation on held-out pairs)
    renders, gskel = work / "renders", work / "gskel"
    run(["train", "prepare-skel", str(scans), str(renders), "--views", VIEWS, "--resolution", str(RES),
         "--renderer", "torch", "--overwrite"])
    run(["train", "skel", "--data", str(renders), "--pipeline", str(pipe_dir), "-o", str(gskel), "--views", VIEWS,
         "--flipped-views", "2", "--block-channels", "8,16,16,16", "--iterations", str(args.skel_iterations),
         "--batch-size", "8", "--lr", "3e-3", "--no-lpips", "--eval", "--eval-fraction", "0.15", "--device", "cpu",
         "--overwrite"])

    # 3. PoseScore on the fixed validation set before and after DRPose (guided, the training's T)
    from human3d.multiview.loading import load_pipeline
    from human3d.train.drpose import evaluate_reward, reward_views_of
    from human3d.train.posescore import PoseScore, SkeletonDistance
    from human3d.train.skel_predictor import SkeletalImagePredictor

    def pose_score(unet_path: Path | None) -> float:
        pipe = load_pipeline(pipe_dir, unet_path=unet_path)
        _, cams, flipped = reward_views_of(pipe)
        g = SkeletalImagePredictor.from_pretrained(gskel)
        reward = PoseScore(g, SkeletonDistance(None), cams, flipped, float(g.config.sigma))
        samples = [s for s in PoseImageDataset(val_pairs, RES)]
        return evaluate_reward(pipe, reward, samples, num_steps=4, seed=0, guidance_scale=3.0)

    before = pose_score(None)
    run_dir = work / "run"
    if run_dir.exists():  # this script's own scratch run: start over rather than resume
        shutil.rmtree(run_dir)
    run(["train", "drpose", "--data", str(train_pairs), "--gskel", str(gskel), "-o", str(run_dir), "--pipeline",
         str(pipe_dir), "--iterations", str(args.updates), "--batch-size", "2", "--grad-accum", "1", "--lr",
         str(args.lr), "--num-steps", "4", "--train-steps", "2", "--max-early-stop", "2", "--guidance-scale", "3",
         "--no-lpips", "--no-gradient-checkpointing", "--save-every", str(args.updates), "--device", "cpu"])
    after = pose_score(run_dir / "unet")
    log = (run_dir / "log.csv").read_text().strip().splitlines()
    print("\nDRPose log (per update: loss, training reward, KL, t_min, training steps, gradient-bearing steps):")
    print("\n".join(log))
    print("\n| | PoseScore, fixed validation set (6 poses, T=4, guidance 3.0) |")
    print("|---|---|")
    print(f"| initial UNet | {before:.4f} |")
    print(f"| after {args.updates} DRPose updates | {after:.4f} |")
    print(f"| change | {after - before:+.4f} |")


if __name__ == "__main__":
    main()
