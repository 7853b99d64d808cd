"""A hand-made standing pose in the canonical frame (SMPL-X joint names), for tests."""

from __future__ import annotations

import numpy as np
import torch

from human3d.train.skeleton import SKELETON_JOINTS

# x: subject's left is +X; y up; z toward the front camera. Arms out to the sides (a T pose).
STANDING = {
    "pelvis": (0.0, 0.0, 0.0), "left_hip": (0.12, -0.05, 0.0), "right_hip": (-0.12, -0.05, 0.0),
    "spine1": (0.0, 0.12, -0.02), "left_knee": (0.13, -0.45, 0.03), "right_knee": (-0.13, -0.45, 0.03),
    "spine2": (0.0, 0.25, -0.03), "left_ankle": (0.14, -0.85, -0.02), "right_ankle": (-0.14, -0.85, -0.02),
    "spine3": (0.0, 0.35, -0.03), "left_foot": (0.15, -0.9, 0.12), "right_foot": (-0.15, -0.9, 0.12),
    "neck": (0.0, 0.55, -0.02), "left_collar": (0.08, 0.5, -0.02), "right_collar": (-0.08, 0.5, -0.02),
    "head": (0.0, 0.68, 0.02), "left_shoulder": (0.2, 0.5, -0.03), "right_shoulder": (-0.2, 0.5, -0.03),
    "left_elbow": (0.45, 0.5, -0.03), "right_elbow": (-0.45, 0.5, -0.03), "left_wrist": (0.7, 0.5, -0.03),
    "right_wrist": (-0.7, 0.5, -0.03), "left_middle1": (0.8, 0.5, -0.03), "right_middle1": (-0.8, 0.5, -0.03),
}


def standing_joints() -> torch.Tensor:
    """(24, 3) float32 in the order of SKELETON_JOINTS."""
    return torch.tensor(np.asarray([STANDING[n] for n in SKELETON_JOINTS], dtype=np.float32))


def random_poses(n: int, seed: int = 0, spread: float = 0.15) -> torch.Tensor:
    """(n, 24, 3): the standing pose with every joint jittered (distinct, plausible-scale poses)."""
    g = torch.Generator().manual_seed(seed)
    base = standing_joints()
    return base + spread * torch.randn(n, *base.shape, generator=g)
