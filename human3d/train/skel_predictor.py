"""g_skel, DRPose's skeletal image predictor: multi-view latents -> 23-channel skeletal images of every view.

Architecture (DRPose Fig. 12): the views' latents (normal and colour latents of a view side by side, 8 channels)
are stacked along channels, go through initial convolutions to 32 channels, four down blocks (a residual block, then
a stride-2 convolution: 64^2 -> 4^2 spatially at 64^2 input, 32 -> 512 channels), a residual middle, four up
blocks (nearest upsampling, concatenation with the skip of the same level, a residual block) and a final
convolution to ``views x 23`` logits. Stacking the views lets every view's prediction use the others (a limb
hidden in one view is visible in another), and the output holds all views at once, as in the paper.

Training (:func:`train_skel`): renders of scans with their body fits, encoded by the diffusion model's VAE (see
:mod:`human3d.train.data`), targets drawn by :func:`~human3d.train.skeleton.render_skeleton`, loss BCE (+ LPIPS).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from human3d.cameras import OrthoCamera, body_cameras
from human3d.errors import UsageError
from human3d.train.skeleton import DEFAULT_SIGMA, NUM_BONES

log = logging.getLogger("human3d")


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a (1x1-projected) residual."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SkeletalImagePredictor(ModelMixin, ConfigMixin):
    """g_skel: (B, V, C, h, w) latents -> (B, V, 23, h, w) logits of the skeletal images.

    num_views: views read (PSHuman's six body views); latent_channels: per view (4 normal + 4 colour);
    block_out_channels: the widths of the input level and the four down levels (paper: 32 ... 512).
    h and w must be multiples of 2 ** (len(block_out_channels) - 1) (96 for 768 images: yes).
    sigma, view_names, view_azimuths, flipped_views: how its targets were drawn (skeleton line width in latent
    pixels; the views' names and azimuths; the views predicted mirrored), stored in config.json by
    :func:`train_skel` so DRPose can refuse a g_skel made for other views or another sigma (None: unknown).
    """

    @register_to_config
    def __init__(self, num_views: int = 6, latent_channels: int = 8, num_bones: int = NUM_BONES,
                 block_out_channels: Sequence[int] = (32, 64, 128, 256, 512), norm_num_groups: int = 8,
                 sigma: float | None = None, view_names: Sequence[str] | None = None,
                 view_azimuths: Sequence[float] | None = None, flipped_views: Sequence[int] | None = None) -> None:
        super().__init__()
        ch = list(block_out_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(num_views * latent_channels, ch[0], 3, padding=1), nn.SiLU(),
            nn.Conv2d(ch[0], ch[0], 3, padding=1),
        )
        self.down = nn.ModuleList()
        for cin, cout in zip(ch[:-1], ch[1:]):
            self.down.append(nn.ModuleDict({
                "block": ResBlock(cin, cin, norm_num_groups),
                "sample": nn.Conv2d(cin, cout, 3, stride=2, padding=1),
            }))
        self.mid = ResBlock(ch[-1], ch[-1], norm_num_groups)
        self.up = nn.ModuleList()
        for cdeep, cskip in zip(ch[:0:-1], ch[-2::-1]):
            self.up.append(ResBlock(cdeep + cskip, cskip, norm_num_groups))
        self.out_norm = nn.GroupNorm(min(norm_num_groups, ch[0]), ch[0])
        self.out = nn.Conv2d(ch[0], num_views * num_bones, 3, padding=1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, v, c, h, w = latents.shape
        cfg = self.config
        factor = 2 ** len(self.down)
        if v != cfg.num_views or c != cfg.latent_channels:
            raise ValueError(f"g_skel expects (B, {cfg.num_views}, {cfg.latent_channels}, h, w), got {tuple(latents.shape)}")
        if h % factor or w % factor:
            raise ValueError(f"g_skel needs latent sides divisible by {factor}, got {h}x{w}")
        x = self.stem(latents.reshape(b, v * c, h, w))
        skips = []
        for level in self.down:
            x = level["block"](x)
            skips.append(x)
            x = level["sample"](x)
        x = self.mid(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skip], 1))
        x = self.out(F.silu(self.out_norm(x)))
        return x.reshape(b, v, cfg.num_bones, h, w)


def split_view_latents(latents: torch.Tensor, views: Sequence[int]) -> torch.Tensor:
    """The multi-view pipeline's latents (2N, 4, h, w) [normal views; colour views] (N = its views) ->
    (1, len(views), 8, h, w) [normal | colour] of the chosen views, g_skel's input."""
    normal, color = latents.chunk(2)
    idx = torch.as_tensor(list(views), device=latents.device)
    return torch.cat([normal.index_select(0, idx), color.index_select(0, idx)], 1)[None]


# ------------------------------------------------------------------------------------------------------------------
# training
@dataclass
class SkelTrainConfig:
    """``human3d train skel``: fit g_skel on multi-view latents of renders with their body fits."""

    iterations: int = 10_000
    """Optimiser steps (paper: 10K)."""
    batch_size: int = 16
    """Samples per step (paper: 16)."""
    learning_rate: float = 1e-4
    """AdamW learning rate."""
    use_lpips: bool = True
    """Add LPIPS to BCE, as the paper (needs the 'lpips' weights; --no-lpips for BCE only)."""
    lpips_weights: str | None = None
    """Folder with the LPIPS files (default: the 'lpips' asset in the weights dir)."""
    sigma: float = DEFAULT_SIGMA
    """Line width of the target skeletal images, in latent pixels."""
    block_out_channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    """Widths of g_skel's levels."""
    seed: int = 0
    """Initialisation and batch order."""
    save_every: int = 1000
    """Write the model every this many steps (and at the end)."""
    log_every: int = 10
    """Append the loss to log.csv every this many steps."""
    extra: dict[str, str] = field(default_factory=dict)
    """Free-form notes stored with the run."""


def train_skel(
    dataset: torch.utils.data.Dataset,
    output_dir: str | Path,
    cfg: SkelTrainConfig,
    *,
    cameras: Sequence[OrthoCamera] | None = None,
    flipped_views: Sequence[int] = (),
    device: str | torch.device = "cpu",
    distance: nn.Module | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train g_skel; writes ``output_dir`` (a g_skel folder: config.json + safetensors) and ``log.csv``.

    dataset: items ``(latents (V, 8, h, w), joints (J, 3), joint_names)`` (see :class:`human3d.train.data.SkelDataset`);
    cameras: the V views in the latents' order (default: the six body views of DESIGN.md §3); flipped_views: those
    among them the diffusion model predicts mirrored;
    distance: the loss (default: :func:`~human3d.train.posescore.load_skeleton_distance` from ``cfg``);
    progress(step, loss) after every step. Returns the per-step losses.
    """
    from human3d.train.data import collate_pose_batch
    from human3d.train.posescore import load_skeleton_distance
    from human3d.train.skeleton import render_skeleton

    if len(dataset) == 0:
        raise UsageError("the g_skel dataset is empty; see human3d.train.data for its format")
    device = torch.device(device)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    latents0 = dataset[0][0]
    cameras = list(cameras) if cameras is not None else body_cameras()
    if latents0.shape[0] != len(cameras):
        raise UsageError(f"the samples hold {latents0.shape[0]} views but {len(cameras)} cameras were given "
                         f"({[c.name for c in cameras]}); pass --views naming the samples' views")
    model = SkeletalImagePredictor(num_views=len(cameras), latent_channels=latents0.shape[1],
                                   block_out_channels=tuple(cfg.block_out_channels), sigma=float(cfg.sigma),
                                   view_names=[c.name for c in cameras],
                                   view_azimuths=[float(c.azimuth_deg) for c in cameras],
                                   flipped_views=sorted(int(i) for i in flipped_views)).to(device)
    if distance is None:
        distance = load_skeleton_distance(cfg.use_lpips, cfg.lpips_weights)
    distance = distance.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(cfg.batch_size, len(dataset)), shuffle=True,
                                         drop_last=True, collate_fn=collate_pose_batch,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    losses: list[float] = []
    batches = _forever(loader)
    with (out / "log.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss"])
        for step in range(1, cfg.iterations + 1):
            latents, joints, names = next(batches)
            latents, joints = latents.to(device), joints.to(device)
            target = render_skeleton(joints, names, latents.shape[-1], cameras, flipped_views, cfg.sigma)
            with autocast:
                logits = model(latents)
            loss = distance(logits.float(), target).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, losses[-1])
            if step % cfg.log_every == 0 or step == cfg.iterations:
                writer.writerow([step, f"{losses[-1]:.6f}"])
                fh.flush()
            if step % cfg.save_every == 0 or step == cfg.iterations:
                model.save_pretrained(out)
    if not math.isfinite(losses[-1]):
        raise UsageError("g_skel training diverged (loss is not finite); lower --lr")
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    return losses


def _forever(loader: torch.utils.data.DataLoader):
    while True:
        yield from loader


# ------------------------------------------------------------------------------------------------------------------
# evaluation (DRPose Table 3)


def holdout_split(n: int, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, held-out) indices of n samples: a seeded random ``fraction`` (at least one, at most n - 1) held out."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--eval-fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise UsageError(f"holding out evaluation pairs needs at least 2 samples, got {n}; give --eval-data DIR")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = min(max(1, round(fraction * n)), n - 1)
    return sorted(order[k:]), sorted(order[:k])


def model_cameras(model: SkeletalImagePredictor, resolution: int) -> tuple[list[OrthoCamera], list[int]]:
    """The views g_skel was trained for (stored in its config) at ``resolution``, and the mirrored ones."""
    from human3d.cameras import camera_for_view

    cfg = model.config
    if cfg.view_names is None or cfg.sigma is None:
        raise UsageError("this g_skel folder does not record its cameras and sigma; retrain it with "
                         "`human3d train skel`")
    cams = [camera_for_view(str(n), resolution) for n in cfg.view_names]
    return cams, [int(i) for i in (cfg.flipped_views or ())]


@torch.no_grad()
def evaluate_skel(model: SkeletalImagePredictor, dataset: torch.utils.data.Dataset, lpips: nn.Module | None = None,
                  device: str | torch.device = "cpu") -> dict[str, float | int | None]:
    """PSNR / SSIM / LPIPS of g_skel's predicted skeletal images against R(J(theta)) on ``dataset`` (Table 3).

    Prediction = sigmoid(logits) in [0, 1]. Every (view, bone) channel is one grey image: PSNR over all of them
    (one MSE per view), SSIM and LPIPS (AlexNet, the grey image as RGB, upsampled to 64 px when smaller) averaged
    over the channel images; then averaged over views and samples. LPIPS is None when no model is given.
    """
    from skimage.metrics import structural_similarity

    from human3d.eval.metrics import psnr
    from human3d.train.posescore import SkeletonDistance
    from human3d.train.skeleton import render_skeleton

    model = model.to(device).eval()
    perceptual = SkeletonDistance(lpips.to(device)) if lpips is not None else None
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "lpips": []}
    for i in range(len(dataset)):
        latents, joints, names = dataset[i]
        cams, flipped = model_cameras(model, latents.shape[-1])
        pred = torch.sigmoid(model(latents[None].to(device)).float())  # (1, V, 23, h, w)
        target = render_skeleton(joints[None].to(device), names, latents.shape[-1], cams, flipped,
                                 float(model.config.sigma))
        p, t = pred[0].cpu().numpy(), target[0].cpu().numpy()
        for v in range(p.shape[0]):
            scores["psnr"].append(psnr(p[v], t[v]))
            scores["ssim"].append(float(np.mean([structural_similarity(a, b, data_range=1.0, win_size=7)
                                                 for a, b in zip(p[v], t[v])])))
        if perceptual is not None:
            scores["lpips"].append(float(perceptual.perceptual(pred, target)[0]))
    return {"pairs": len(dataset), "psnr": float(np.mean(scores["psnr"])), "ssim": float(np.mean(scores["ssim"])),
            "lpips": float(np.mean(scores["lpips"])) if scores["lpips"] else None}
