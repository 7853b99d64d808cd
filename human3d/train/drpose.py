"""DRPose direct reward fine-tuning of the multi-view UNet (DRPose Algorithm 1, after DRTune).

One sample's step (:func:`drpose_loss`), the loop index t counting DDIM steps T..1:

1. draw the training steps ``t_train`` (K of them, spaced floor(T/K) apart, random offset) and the early stop
   ``t_min`` in [1, m];
2. from x_T ~ N(0, I), for t = T..1: the UNet sees ``stop_grad(x_t)``; at steps outside ``t_train`` its output is
   computed without a graph (stop_grad), at training steps with one, and there the frozen initial UNet's output is
   compared: L_KL += mean((eps_hat - eps_hat_0)^2); x0_hat = (x_t - sigma_t eps_hat) / alpha_t; at t = t_min stop;
   else x_{t-1} = alpha_{t-1} x0_hat + sigma_{t-1} eps_hat (deterministic DDIM). x_t itself is not detached in these
   updates, so the reward's gradient reaches the UNet only through the outputs at ``t_train``, carried along the
   (linear) DDIM updates and never through the UNet's input;
3. L = (1 - r(x0_hat, theta)) + w_KL L_KL with r the PoseScore (:mod:`human3d.train.posescore`).

``alpha_t, sigma_t`` are sqrt(abar), sqrt(1 - abar) of the scheduler's timestep for step t; a v-prediction model's
output v is turned into eps_hat = sigma x_t + alpha v, x0_hat = alpha x_t - sigma v (the same DDIM step).

The paper's offset ``s = randint(1, T - K floor(T/K))`` is empty for T = 20, K = 2, and its training steps could lie
below the early stop and never run. Here ``s`` is drawn from [t_min, T - (K-1) floor(T/K)], keeping the spacing
floor(T/K), so every iteration has exactly K gradient-bearing steps (requires m <= T - (K-1) floor(T/K)).

Samples of a batch are denoised one after another (the UNet's multi-view batch layout holds one image per call
with guidance) and their gradients summed; the UNet has no batch statistics, so this equals a batched step.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from human3d.cameras import BODY_VIEW_NAMES, OrthoCamera, camera_for_view
from human3d.errors import MissingBackendError, UsageError
from human3d.train.posescore import PoseScore
from human3d.train.skel_predictor import split_view_latents

log = logging.getLogger("human3d")

LOG_FIELDS = ("step", "loss", "reward", "kl", "t_min", "t_train")


@dataclass
class DRPoseConfig:
    """``human3d train drpose``: Algorithm 1's settings (defaults: the paper's) and the training machinery."""

    iterations: int = 5500
    """Optimiser updates (paper: 5.5K)."""
    batch_size: int = 4
    """Samples per micro-batch (paper: 4)."""
    gradient_accumulation: int = 2
    """Micro-batches per update (paper: 2)."""
    learning_rate: float = 1e-5
    """AdamW learning rate (not stated in the paper)."""
    num_steps: int = 20
    """T: DDIM steps of the training trajectory."""
    train_steps: int = 2
    """K: steps with gradients."""
    max_early_stop: int = 8
    """m: t_min is drawn from [1, m]."""
    kl_weight: float = 0.01
    """w_KL."""
    guidance_scale: float = 1.0
    """Classifier-free guidance while sampling in training (1.0: none; 3.0 doubles the UNet batch)."""
    noise_level: int = 0
    """unCLIP noise level of the image embeddings (as at inference)."""
    lora_rank: int = 0
    """0: fine-tune every UNet weight; > 0: train LoRA adapters of this rank on the attention projections (peft)."""
    lora_alpha: float | None = None
    """LoRA scale numerator (default: the rank)."""
    gradient_checkpointing: bool = True
    """Recompute UNet activations in the backward pass (less memory, ~30% more time)."""
    mixed_precision: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 elsewhere) | bf16 | no."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0: off)."""
    use_lpips: bool = True
    """PoseScore distance BCE + LPIPS as the paper (needs the 'lpips' weights); False: BCE only."""
    lpips_weights: str | None = None
    """Folder with the LPIPS files (default: the 'lpips' asset)."""
    sigma: float = 1.0
    """Line width of R(J(theta)) in latent pixels; must match g_skel's training."""
    seed: int = 0
    """Noise, step sampling and sample order are drawn from (seed, iteration): a resumed run continues identically."""
    save_every: int = 250
    """Write a resumable checkpoint every this many updates (and at the end)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Free-form notes stored with the run."""


@dataclass
class StepInfo:
    """What one sample's trajectory did: the training steps, the early stop, the steps run (T..t_min)."""

    t_train: tuple[int, ...]
    t_min: int
    steps_run: list[int]


def sample_schedule(rng: random.Random, num_steps: int, train_steps: int, max_early_stop: int
                    ) -> tuple[tuple[int, ...], int]:
    """(t_train, t_min): K steps spaced floor(T/K) apart with a random offset, all >= t_min; t_min in [1, m]."""
    spacing = num_steps // train_steps
    top = num_steps - (train_steps - 1) * spacing
    if train_steps < 1 or spacing < 1 or not 1 <= max_early_stop <= top:
        raise UsageError(f"need 1 <= K <= T and 1 <= m <= T - (K-1)*floor(T/K) (= {top}); got T={num_steps}, "
                         f"K={train_steps}, m={max_early_stop}")
    t_min = rng.randint(1, max_early_stop)
    s = rng.randint(t_min, top)
    return tuple(s + i * spacing for i in range(train_steps)), t_min


def _alphas(scheduler: Any, timesteps: torch.Tensor, t: int, num_steps: int) -> tuple[float, float]:
    """(alpha, sigma) = (sqrt(abar), sqrt(1 - abar)) at loop step t in T..1; t = 0 is the final (clean) level."""
    if t == 0:
        abar = float(getattr(scheduler, "final_alpha_cumprod", scheduler.alphas_cumprod[0]))
    else:
        abar = float(scheduler.alphas_cumprod[int(timesteps[num_steps - t])])
    return abar ** 0.5, (1.0 - abar) ** 0.5


def _eps_x0(output: torch.Tensor, x: torch.Tensor, alpha: float, sigma: float, prediction: str
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Model output at x_t -> (eps_hat, x0_hat) for the scheduler's prediction type."""
    if prediction == "epsilon":
        return output, (x - sigma * output) / alpha
    if prediction == "v_prediction":
        return sigma * x + alpha * output, alpha * x - sigma * output
    if prediction == "sample":
        return (x - alpha * output) / sigma, output
    raise UsageError(f"the scheduler's prediction_type {prediction!r} is not supported by DRPose training")


def _model_output(pipe: Any, unet: nn.Module, latents: torch.Tensor, t: torch.Tensor, cond: Any,
                  guidance_scale: float) -> torch.Tensor:
    # the pipeline's own noise prediction (layout, guidance), run with the UNet given (trainable or frozen)
    view = SimpleNamespace(scheduler=pipe.scheduler, unet=unet)
    return type(pipe).predict_noise(view, latents, t, cond, guidance_scale).float()


def drpose_loss(
    pipe: Any,
    unet: nn.Module,
    reference: Callable[[], contextlib.AbstractContextManager[nn.Module]],
    reward: PoseScore,
    cond: Any,
    target: torch.Tensor,
    reward_views: Sequence[int],
    cfg: DRPoseConfig,
    rng: random.Random,
    generator: torch.Generator,
    autocast: contextlib.AbstractContextManager | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, StepInfo]:
    """One sample of Algorithm 1 -> (loss, reward r, L_KL, info); call ``loss.backward()``.

    pipe: a PSHumanMVPipeline (scheduler, its batch layout) whose UNet is ``unet``; reference(): a context giving
    the frozen initial UNet; cond: ``pipe.encode_conditions`` of the sample; target: (1, V', 23, h, w) skeletal
    images of the pose in the views ``reward_views``; rng / generator: the schedule and the initial noise.
    """
    scheduler = pipe.scheduler
    num = cfg.num_steps
    scheduler.set_timesteps(num, device=target.device)
    timesteps = scheduler.timesteps
    prediction = scheduler.config.prediction_type
    t_train, t_min = sample_schedule(rng, num, cfg.train_steps, cfg.max_early_stop)
    v = int(unet.config.num_views)
    h = target.shape[-1]
    shape = (2 * v, int(unet.config.out_channels), h, h)
    x = torch.randn(shape, generator=generator).to(target.device) * scheduler.init_noise_sigma
    kl = torch.zeros((), device=target.device)
    steps_run: list[int] = []
    autocast = autocast or contextlib.nullcontext()
    x0 = x
    for t in range(num, 0, -1):
        steps_run.append(t)
        ts = timesteps[num - t]
        alpha, sigma = _alphas(scheduler, timesteps, t, num)
        x_in = x.detach()
        if t in t_train:
            with autocast:
                out = _model_output(pipe, unet, x_in, ts, cond, cfg.guidance_scale)
            with torch.no_grad(), reference() as ref, autocast:
                out_ref = _model_output(pipe, ref, x_in, ts, cond, cfg.guidance_scale)
            eps, x0 = _eps_x0(out, x, alpha, sigma, prediction)
            eps_ref, _ = _eps_x0(out_ref, x_in, alpha, sigma, prediction)
            kl = kl + ((eps - eps_ref) ** 2).mean()
        else:
            with torch.no_grad(), autocast:
                out = _model_output(pipe, unet, x_in, ts, cond, cfg.guidance_scale)
            eps, x0 = _eps_x0(out, x, alpha, sigma, prediction)
        if t == t_min:
            break
        alpha_prev, sigma_prev = _alphas(scheduler, timesteps, t - 1, num)
        x = alpha_prev * x0 + sigma_prev * eps
    r = reward(split_view_latents(x0, reward_views), target)[0]
    loss = (1.0 - r) + cfg.kl_weight * kl
    return loss, r.detach(), kl.detach(), StepInfo(t_train, t_min, steps_run)


# ------------------------------------------------------------------------------------------------------------------
# set-up


def reward_views_of(pipe: Any) -> tuple[list[int], list[OrthoCamera], list[int]]:
    """The UNet views PoseScore reads (the body views, by name) -> (indices, their cameras, flipped among them)."""
    names = list(pipe.config.view_names)
    idx = [i for i, n in enumerate(names) if n in BODY_VIEW_NAMES]
    if not idx:
        raise UsageError(f"the multi-view model has no body views ({names}); PoseScore needs them")
    flipped = set(pipe.config.flipped_views)
    return idx, [camera_for_view(names[i]) for i in idx], [k for k, i in enumerate(idx) if i in flipped]


def add_lora(unet: nn.Module, rank: int, alpha: float | None) -> None:
    """LoRA adapters (peft) on the UNet's attention projections; only they train."""
    try:
        from peft import LoraConfig
    except ImportError as err:
        raise MissingBackendError("LoRA needs the 'peft' package: pip install peft, or train without --lora-rank") \
            from err
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))


def merged_unet_state(unet: nn.Module) -> dict[str, torch.Tensor]:
    """The UNet's weights with LoRA adapters (if any) merged in, under the plain UNet's parameter names."""
    lora = getattr(unet, "peft_config", None)
    if lora:
        unet.fuse_lora()
    try:
        state = {}
        for key, value in unet.state_dict().items():
            if "lora_" in key:
                continue
            # a copy: unfusing below subtracts the adapters in place from the same storage
            state[key.replace(".base_layer.", ".")] = value.detach().to("cpu", torch.float32, copy=True)
        return state
    finally:
        if lora:
            unet.unfuse_lora()


def save_unet_folder(unet: nn.Module, folder: str | Path) -> Path:
    """Write a UNet folder (config.json + diffusion_pytorch_model.safetensors) that ``--unet`` and
    :func:`human3d.multiview.loading.load_pipeline` (``unet_path``) load. Written beside and renamed into place."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    unet.save_config(tmp)
    save_file(merged_unet_state(unet), str(tmp / "diffusion_pytorch_model.safetensors"))
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        folder.rename(old)
        tmp.rename(folder)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        tmp.rename(folder)
    return folder


def _trainable(unet: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in unet.named_parameters() if p.requires_grad}


def save_checkpoint(folder: Path, step: int, unet: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Resumable state: trainable weights (safetensors), optimizer state, the update count."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({n: p.detach().cpu().contiguous() for n, p in _trainable(unet).items()}, str(tmp / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step}))
    if folder.exists():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    tmp.rename(folder)


def load_checkpoint(folder: Path, unet: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore :func:`save_checkpoint`'s state; returns the update count reached."""
    from safetensors.torch import load_file

    params = _trainable(unet)
    saved = load_file(str(folder / "trainable.safetensors"))
    if set(saved) != set(params):
        raise UsageError(f"{folder} was written by a different set-up (LoRA rank or model differs); "
                         "start a new output folder or match the options")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(saved[n].to(p.device, p.dtype))
    # optimizer state: tensors and plain containers only
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
    return int(json.loads((folder / "state.json").read_text())["step"])


# ------------------------------------------------------------------------------------------------------------------
# the loop


def train_drpose(
    pipe: Any,
    g_skel: nn.Module,
    dataset: torch.utils.data.Dataset,
    output_dir: str | Path,
    cfg: DRPoseConfig,
    *,
    device: str | torch.device = "cpu",
    distance: nn.Module | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> Path:
    """Fine-tune ``pipe.unet`` with DRPose; returns ``output_dir / 'unet'`` (load it with ``--unet``).

    dataset: :class:`human3d.train.data.PoseImageDataset` items; g_skel: a trained
    :class:`~human3d.train.skel_predictor.SkeletalImagePredictor` for the pipeline's body views. ``output_dir``
    holds ``unet/`` (the result), ``checkpoint/`` (resumable; a rerun with the same folder continues), ``log.csv``
    (per update: loss, reward, KL, t_min, training steps) and ``train_config.json``.
    """
    from human3d.train.posescore import load_skeleton_distance

    device = torch.device(device)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(dataset) == 0:
        raise UsageError("the DRPose dataset is empty; see human3d.train.data for its format")
    views, cameras, flipped = reward_views_of(pipe)
    if g_skel.config.num_views != len(views):
        raise UsageError(f"g_skel reads {g_skel.config.num_views} views but the model has {len(views)} body views; "
                         "train g_skel for this model's views")
    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "no"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext

    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    unet = pipe.unet
    unet.train()
    if cfg.lora_rank > 0:
        add_lora(unet, cfg.lora_rank, cfg.lora_alpha)

        @contextlib.contextmanager
        def reference():  # the initial UNet is the base model with the adapters switched off
            unet.disable_adapters()
            try:
                yield unet
            finally:
                unet.enable_adapters()
    else:
        unet.requires_grad_(True)
        frozen = copy.deepcopy(unet).requires_grad_(False).eval()
        if precision == "bf16":
            frozen.to(torch.bfloat16)
        reference = lambda: contextlib.nullcontext(frozen)  # noqa: E731
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if distance is None:
        distance = load_skeleton_distance(cfg.use_lpips, cfg.lpips_weights)
    reward = PoseScore(g_skel.to(device), distance.to(device), cameras, flipped, cfg.sigma)
    params = list(_trainable(unet).values())
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate)

    ckpt = out / "checkpoint"
    start = load_checkpoint(ckpt, unet, optimizer) if (ckpt / "state.json").is_file() else 0
    if start:
        log.info("resuming DRPose from update %d", start)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    latent_res = pipe.default_resolution // pipe.vae_scale_factor
    per_update = cfg.batch_size * cfg.gradient_accumulation
    log_path = out / "log.csv"
    new_log = start == 0 or not log_path.is_file()
    with log_path.open("w" if new_log else "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(LOG_FIELDS)
        for step in range(start + 1, cfg.iterations + 1):
            rng = random.Random(cfg.seed * 1_000_003 + step)
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            optimizer.zero_grad(set_to_none=True)
            totals = {"loss": 0.0, "reward": 0.0, "kl": 0.0}
            infos: list[StepInfo] = []
            for _ in range(per_update):
                sample = dataset[rng.randrange(len(dataset))]
                cond = _conditions(pipe, sample, cfg, generator)
                target = reward.targets(sample.joints[None].to(device), sample.joint_names, latent_res)
                loss, r, kl, info = drpose_loss(pipe, unet, reference, reward, cond, target, views, cfg, rng,
                                                generator, autocast())
                (loss / per_update).backward()
                totals["loss"] += float(loss.detach()) / per_update
                totals["reward"] += float(r) / per_update
                totals["kl"] += float(kl) / per_update
                infos.append(info)
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            writer.writerow([step, f"{totals['loss']:.6f}", f"{totals['reward']:.6f}", f"{totals['kl']:.8f}",
                             " ".join(str(i.t_min) for i in infos),
                             " ".join("/".join(map(str, i.t_train)) for i in infos)])
            fh.flush()
            if progress is not None:
                progress(step, totals)
            if step % cfg.save_every == 0 or step == cfg.iterations:
                save_checkpoint(ckpt, step, unet, optimizer)
    unet.eval()
    return save_unet_folder(unet, out / "unet")


def _conditions(pipe: Any, sample: Any, cfg: DRPoseConfig, generator: torch.Generator) -> Any:
    """The pipeline's conditioning of one sample: the framed image for the body views, the face crop for the face."""
    r = pipe.default_resolution
    body = sample.image.resize((r, r)) if sample.image.size != (r, r) else sample.image
    face = sample.face.resize((r, r)) if sample.face.size != (r, r) else sample.face
    images = [face if i == pipe.face_view_index else body for i in range(pipe.num_views)]
    return pipe.encode_conditions(images, cfg.guidance_scale != 1.0, cfg.noise_level, generator)


@torch.no_grad()
def evaluate_reward(pipe: Any, reward: PoseScore, samples: Sequence[Any], num_steps: int = 20, seed: int = 0,
                    guidance_scale: float = 1.0) -> float:
    """Mean PoseScore of full deterministic DDIM runs (t = T..1, fixed noise per sample): a reward that does not
    depend on the training's random steps, for comparing a UNet before and after fine-tuning."""
    views, _, _ = reward_views_of(pipe)
    device = next(pipe.unet.parameters()).device
    latent_res = pipe.default_resolution // pipe.vae_scale_factor
    cfg = DRPoseConfig(num_steps=num_steps, train_steps=1, max_early_stop=1, guidance_scale=guidance_scale,
                       kl_weight=0.0)
    total = 0.0
    for i, sample in enumerate(samples):
        generator = torch.Generator().manual_seed(seed + i)
        cond = _conditions(pipe, sample, cfg, generator)
        target = reward.targets(sample.joints[None].to(device), sample.joint_names, latent_res)
        # t_min = 1 and one 'training' step: the full trajectory; the reference is the UNet itself (KL unused)
        _, r, _, _ = drpose_loss(pipe, pipe.unet, lambda: contextlib.nullcontext(pipe.unet), reward, cond, target,
                                 views, cfg, random.Random(0), generator)
        total += float(r)
    return total / max(len(samples), 1)
