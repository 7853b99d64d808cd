"""A tiny synthetic g_skel dataset: 'latents' that are a fixed random mix of the poses' skeletal images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from human3d.train.skeleton import SKELETON_JOINTS, render_skeleton
from tests.train.poses import random_poses

LATENT_RES = 16


def synthetic_latents(joints: torch.Tensor, seed: int = 0, flipped_views=()) -> torch.Tensor:
    """(B, 24, 3) -> (B, 6, 8, h, w): every latent channel a fixed random combination of the bone images."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(8, 23, generator=g)
    skel = render_skeleton(joints, resolution=LATENT_RES, flipped_views=flipped_views)  # (B, 6, 23, h, w)
    return torch.einsum("kb,nvbhw->nvkhw", mix, skel)


def write_skel_dataset(folder: Path, n: int = 8, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    joints = random_poses(n, seed)
    latents = synthetic_latents(joints)
    for i in range(n):
        np.savez(folder / f"scan{i:03d}.npz", latents=latents[i].numpy(), joints=joints[i].numpy(),
                 joint_names=np.asarray(SKELETON_JOINTS))
    return folder
