"""PoseScore, DRPose's differentiable reward: r(x0, theta) = -E || g_skel(x0) - R(J(theta)) ||.

g_skel (:class:`~human3d.train.skel_predictor.SkeletalImagePredictor`) turns the generated multi-view latents into
23-channel skeletal images; R (:func:`~human3d.train.skeleton.render_skeleton`) draws the pose's joints into the
same views. The distance is the paper's: binary cross-entropy plus LPIPS (:class:`SkeletonDistance`). LPIPS is
the AlexNet LPIPS of :mod:`human3d.eval.lpips` with the official weights; each bone channel is compared as a grey
image. Without those weights LPIPS is not computed at all: asking for it raises MissingWeightsError.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from human3d.cameras import OrthoCamera
from human3d.train.skeleton import DEFAULT_SIGMA, render_skeleton

#: AlexNet's first layers need this many pixels; smaller skeletal images are upsampled for LPIPS.
LPIPS_MIN_SIDE = 64


class SkeletonDistance(nn.Module):
    """|| I_hat - I ||: BCE(logits, target) + lpips_weight * LPIPS(sigmoid(logits), target), per sample.

    ``lpips``: an :class:`human3d.eval.lpips.LPIPS` with official weights (frozen here), or None for BCE only.
    """

    def __init__(self, lpips: nn.Module | None = None, lpips_weight: float = 1.0) -> None:
        super().__init__()
        self.lpips = lpips
        self.lpips_weight = lpips_weight
        if lpips is not None:
            lpips.requires_grad_(False).eval()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits, target: (B, V, C, H, W), target in [0, 1] -> (B,) distances (float32)."""
        logits, target = logits.float(), target.float()
        dist = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2, 3, 4))
        if self.lpips is not None:
            dist = dist + self.lpips_weight * self.perceptual(torch.sigmoid(logits), target)
        return dist

    def perceptual(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, V, C, H, W) images in [0, 1] -> (B,) mean LPIPS over views and channels (each a grey image)."""
        b, v, c, h, w = pred.shape
        a = pred.reshape(b * v * c, 1, h, w)
        t = target.reshape(b * v * c, 1, h, w)
        if min(h, w) < LPIPS_MIN_SIDE:
            size = (max(h, LPIPS_MIN_SIDE), max(w, LPIPS_MIN_SIDE))
            a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
        a, t = (x.expand(-1, 3, -1, -1) * 2.0 - 1.0 for x in (a, t))
        param = next(self.lpips.parameters())
        d = self.lpips(a.to(param.dtype), t.to(param.dtype)).float()  # (B*V*C,)
        return d.reshape(b, v * c).mean(1)


def load_skeleton_distance(use_lpips: bool, lpips_weights: str | None = None, weights_dir: str | None = None,
                           allow_pickle: bool = False, lpips_weight: float = 1.0) -> SkeletonDistance:
    """The paper's BCE + LPIPS distance, or BCE alone when ``use_lpips`` is False.

    Raises MissingWeightsError (from :func:`human3d.eval.lpips.load_lpips`) when LPIPS is asked for and its official
    weights are not found; nothing stands in for them.
    """
    if not use_lpips:
        return SkeletonDistance(None)
    from human3d.eval.lpips import load_lpips

    return SkeletonDistance(load_lpips(weights_dir, folder=lpips_weights, allow_pickle=allow_pickle), lpips_weight)


class PoseScore(nn.Module):
    """r(x0, theta) = -distance(g_skel(x0), R(J(theta))); g_skel is frozen (the reward model is not trained here).

    cameras / flipped_views: the views g_skel reads, in the diffusion model's convention (see
    :mod:`human3d.train.skeleton`); sigma: line width of R in latent pixels, as g_skel was trained with.
    """

    def __init__(self, g_skel: nn.Module, distance: SkeletonDistance, cameras: Sequence[OrthoCamera] | None = None,
                 flipped_views: Sequence[int] = (), sigma: float = DEFAULT_SIGMA) -> None:
        super().__init__()
        self.g_skel = g_skel.requires_grad_(False).eval()
        self.distance = distance
        self.cameras = cameras
        self.flipped_views = tuple(flipped_views)
        self.sigma = sigma

    def targets(self, joints: torch.Tensor, joint_names: Sequence[str], resolution: int) -> torch.Tensor:
        """(B, J, 3) canonical joints -> (B, V, 23, h, w) skeletal images R(J(theta)) at latent resolution."""
        return render_skeleton(joints, joint_names, resolution, self.cameras, self.flipped_views, self.sigma)

    def forward(self, latents: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """latents: (B, V, 8, h, w) multi-view latents x0 (normal | colour per view); target: (B, V, 23, h, w)
        -> (B,) rewards (higher is better; 0 would be a perfect match without the BCE entropy floor)."""
        param = next(self.g_skel.parameters())
        logits = self.g_skel(latents.to(param.dtype))
        return -self.distance(logits, target)
