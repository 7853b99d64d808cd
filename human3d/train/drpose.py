"""DRPose direct reward fine-tuning of the multi-view UNet (DRPose Algorithm 1 and Eq. 1, after DRTune).

One sample's trajectory (:func:`drpose_loss`), the loop index t counting DDIM steps T..1:

1. the schedule (:func:`sample_schedule`): K training steps ``t_train`` spaced floor(T/K) apart from a random offset
   s, and the early stop ``t_min`` in [1, m];
2. from x_T ~ N(0, I), for t = T..t_min: the UNet sees ``stop_grad(x_t)``; its (guided) output is computed without a
   graph at steps outside ``t_train`` and with one at the training steps, where the frozen initial UNet is run on
   the same input. eps_hat = eps_w(stop_grad(x_t)) is the model's noise prediction (for a v-prediction model
   sigma_t stop_grad(x_t) + alpha_t v, for a sample-prediction model likewise from stop_grad(x_t)), so eps_hat
   carries gradients only where the UNet was run with a graph; x0_hat = (x_t - sigma_t eps_hat) / alpha_t with the
   *live* x_t; at t = t_min stop, else x_{t-1} = alpha_{t-1} x0_hat + sigma_{t-1} eps_hat (deterministic DDIM).
   The reward's gradient reaches the UNet only through the outputs at the training steps, carried along these
   linear updates (never through the UNet's input);
3. L = (1 - r(x0_hat, theta)) + w_KL L_KL, r the PoseScore (:mod:`human3d.train.posescore`) of x0_hat at t_min.

**L_KL** (paper: E||eps_hat - eps_hat_0||, "estimated with mean squared error"): the sum over the training steps that
ran of mean((out - out_0)^2), out / out_0 the tuned and the frozen UNet's guided outputs on the same stop_grad(x_t).
Both see only the detached input, so L_KL's gradient reaches the UNet at that step and no earlier step. For an
epsilon-prediction model this is exactly the paper's MSE of the eps_hat; for v-prediction it is the MSE of v (the
eps_hat difference would be alpha_t (v - v_0), an alpha_t^2 weighting the paper does not have).

**Guidance**: sampled as at inference (default scale 3.0, PSHuman's and the paper's inference value): one UNet call
per step on [normal-uncond, normal-cond, colour-uncond, colour-cond] (the pipeline's own ``predict_noise``), 4 x 6
body views = the paper's 24 images (28 with PSHuman's face view); both the trajectory and L_KL use the guided output.

**Schedule**: the paper's s = randint(1, T - K floor(T/K)) is empty for its own T = 20, K = 2. We read it as
s = randint(1, T - (K-1) floor(T/K)) (the largest range with every training step <= T; = floor(T/K) when K divides
T), drawn uniformly and independently of t_min = randint(1, m), as in Algorithm 1; training steps below t_min are
never reached (the loop breaks at t_min) and are skipped. For T = 20, K = 2, m = 8: s is uniform on 1..10, so every
step 1..20 is a training step with probability 1/10; the lower step s is skipped when s < t_min, P = 28/80 = 35%,
so 65% of trajectories have 2 gradient-bearing steps and 35% have 1 (mean 1.65). A trajectory with no training step
left (possible only when m > 1 + (K-1) floor(T/K)) contributes its reward to the log but no gradient.

Samples of a batch are denoised one after another (the UNet's multi-view batch layout holds one image per call)
and their gradients summed; the UNet has no batch statistics, so this equals a batched step.
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

LOG_FIELDS = ("step", "loss", "reward", "kl", "t_min", "t_train", "grad_steps")


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
    guidance_scale: float = 3.0
    """Classifier-free guidance while sampling in training, as at inference (3.0; 1.0: none, half the UNet batch)."""
    noise_level: int = 0
    """unCLIP noise level of the image embeddings (as at inference)."""
    lora_rank: int = 0
    """0: fine-tune every UNet weight; > 0: train LoRA adapters of this rank on the attention projections (peft)."""
    lora_alpha: float | None = None
    """LoRA scale numerator: adapters are scaled by alpha / rank (None: the rank, scale 1; not in the paper)."""
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
    sigma: float | None = None
    """Line width of R(J(theta)) in latent pixels (None: the one stored with g_skel; another value is refused)."""
    seed: int = 0
    """Noise, step sampling and sample order are drawn from (seed, iteration): a resumed run continues identically."""
    save_every: int = 250
    """Write a resumable checkpoint every this many updates (and at the end)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Free-form notes stored with the run."""


@dataclass
class StepInfo:
    """What one sample's trajectory did: the drawn training steps, the early stop, the steps run (T..t_min) and
    the training steps among them (the gradient-bearing UNet calls)."""

    t_train: tuple[int, ...]
    t_min: int
    steps_run: list[int]
    grad_steps: list[int]


@dataclass
class DRPoseTerms:
    """One sample's loss and its parts, all still attached to the graph.

    loss = (1 - reward) + w_KL kl; x0: (2V, 4, h, w) x0_hat at t_min, the latents the reward read; outputs: the
    tuned UNet's guided outputs (2V, 4, h, w) at the gradient-bearing steps, by step t; reference: the frozen UNet's
    at the same steps.
    """

    loss: torch.Tensor
    reward: torch.Tensor
    kl: torch.Tensor
    x0: torch.Tensor
    outputs: dict[int, torch.Tensor]
    reference: dict[int, torch.Tensor]
    info: StepInfo


def schedule_bounds(num_steps: int, train_steps: int, max_early_stop: int) -> tuple[int, int]:
    """(spacing floor(T/K), largest offset T - (K-1) floor(T/K)); UsageError for impossible T, K, m."""
    if train_steps < 1 or num_steps < train_steps or not 1 <= max_early_stop <= num_steps:
        raise UsageError(f"need 1 <= K <= T and 1 <= m <= T; got T={num_steps}, K={train_steps}, m={max_early_stop}")
    spacing = num_steps // train_steps
    return spacing, num_steps - (train_steps - 1) * spacing


def sample_schedule(rng: random.Random, num_steps: int, train_steps: int, max_early_stop: int
                    ) -> tuple[tuple[int, ...], int]:
    """(t_train, t_min) as Algorithm 1: s uniform on [1, T - (K-1) floor(T/K)], t_train = s + i floor(T/K) for
    i < K, t_min uniform on [1, m], independently. Steps of t_train below t_min are skipped by the trajectory."""
    spacing, top = schedule_bounds(num_steps, train_steps, max_early_stop)
    s = rng.randint(1, top)
    t_min = rng.randint(1, max_early_stop)
    return tuple(s + i * spacing for i in range(train_steps)), t_min


def _alphas(scheduler: Any, timesteps: torch.Tensor, t: int, num_steps: int) -> tuple[float, float]:
    """(alpha, sigma) = (sqrt(abar), sqrt(1 - abar)) at loop step t in T..1; t = 0 is the final (clean) level."""
    if t == 0:
        abar = float(getattr(scheduler, "final_alpha_cumprod", scheduler.alphas_cumprod[0]))
    else:
        abar = float(scheduler.alphas_cumprod[int(timesteps[num_steps - t])])
    return abar ** 0.5, (1.0 - abar) ** 0.5


def model_epsilon(output: torch.Tensor, x_in: torch.Tensor, alpha: float, sigma: float, prediction: str
                  ) -> torch.Tensor:
    """eps_hat = eps_w(stop_grad(x_t)): the model output at the detached input ``x_in`` as a noise prediction."""
    if prediction == "epsilon":
        return output
    if prediction == "v_prediction":
        return sigma * x_in + alpha * output
    if prediction == "sample":
        return (x_in - alpha * output) / sigma
    raise UsageError(f"the scheduler's prediction_type {prediction!r} is not supported by DRPose training")


def _model_output(pipe: Any, unet: nn.Module, latents: torch.Tensor, t: torch.Tensor, cond: Any,
                  guidance_scale: float) -> torch.Tensor:
    # the pipeline's own noise prediction (layout, CFG branches), run with the UNet given (trainable or frozen)
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
    schedule: tuple[Sequence[int], int],
    noise: torch.Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> DRPoseTerms:
    """One sample of Algorithm 1 -> :class:`DRPoseTerms`; call ``terms.loss.backward()`` when it requires grad.

    pipe: a PSHumanMVPipeline (scheduler, batch layout); reference(): a context giving the frozen initial UNet;
    cond: ``pipe.encode_conditions`` of the sample (guided iff ``cfg.guidance_scale != 1``); target:
    (1, V', 23, h, w) skeletal images of the pose in ``reward_views``; schedule: (t_train, t_min) from
    :func:`sample_schedule`; noise: x_T (2V, 4, h, w) before the scheduler's ``init_noise_sigma``.
    """
    scheduler = pipe.scheduler
    num = cfg.num_steps
    scheduler.set_timesteps(num, device=target.device)
    timesteps = scheduler.timesteps
    prediction = scheduler.config.prediction_type
    t_train, t_min = tuple(schedule[0]), int(schedule[1])
    x = noise.to(target.device) * scheduler.init_noise_sigma
    kl = torch.zeros((), device=target.device)
    outputs: dict[int, torch.Tensor] = {}
    refs: dict[int, torch.Tensor] = {}
    steps_run: list[int] = []
    x0 = x
    for t in range(num, 0, -1):
        steps_run.append(t)
        ts = timesteps[num - t]
        alpha, sigma = _alphas(scheduler, timesteps, t, num)
        x_in = x.detach()
        train = t in t_train
        with (contextlib.nullcontext() if train else torch.no_grad()), autocast():
            out = _model_output(pipe, unet, x_in, ts, cond, cfg.guidance_scale)
        if train:
            with torch.no_grad(), reference() as ref, autocast():
                refs[t] = _model_output(pipe, ref, x_in, ts, cond, cfg.guidance_scale)
            outputs[t] = out
            kl = kl + ((out - refs[t]) ** 2).mean()
        eps = model_epsilon(out, x_in, alpha, sigma, prediction)
        x0 = (x - sigma * eps) / alpha
        if t == t_min:
            break
        alpha_prev, sigma_prev = _alphas(scheduler, timesteps, t - 1, num)
        x = alpha_prev * x0 + sigma_prev * eps
    r = reward(split_view_latents(x0, reward_views), target)[0]
    loss = (1.0 - r) + cfg.kl_weight * kl
    info = StepInfo(t_train, t_min, steps_run, sorted(outputs, reverse=True))
    return DRPoseTerms(loss, r, kl, x0, outputs, refs, info)


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


def check_gskel(g_skel: nn.Module, pipe: Any, sigma: float | None) -> float:
    """The skeleton line width PoseScore must use: the one g_skel was trained with (stored in its folder).

    Refuses a g_skel trained for other views (names, azimuths, mirrored views) than the pipeline's body views, or a
    ``sigma`` other than the stored one; returns the stored sigma.
    """
    cfg = g_skel.config
    stored, names = getattr(cfg, "sigma", None), getattr(cfg, "view_names", None)
    azimuths, flipped = getattr(cfg, "view_azimuths", None), getattr(cfg, "flipped_views", None)
    if stored is None or names is None or azimuths is None or flipped is None:
        raise UsageError("this g_skel folder does not record its skeleton sigma and cameras (an older version wrote "
                         "it); retrain it with `human3d train skel`")
    _, cameras, want_flipped = reward_views_of(pipe)
    want = [(c.name, round(float(c.azimuth_deg), 4)) for c in cameras]
    have = [(str(n), round(float(a), 4)) for n, a in zip(names, azimuths)]
    if have != want or sorted(int(i) for i in flipped) != sorted(want_flipped):
        raise UsageError(f"g_skel was trained for views {have} (mirrored {list(flipped)}) but the model's body views "
                         f"are {want} (mirrored {want_flipped}); train g_skel with --views matching the model")
    if sigma is not None and abs(float(sigma) - float(stored)) > 1e-6:
        raise UsageError(f"--sigma {sigma} differs from the {stored} g_skel was trained with; omit --sigma or "
                         "retrain g_skel with it")
    return float(stored)


def make_reference(unet: nn.Module) -> Callable[[], contextlib.AbstractContextManager[nn.Module]]:
    """The frozen initial UNet as a context factory, in the tuned UNet's precision and mode (so L_KL = 0 before the
    first update): with LoRA the base model with its adapters switched off, else a frozen copy made now."""
    if getattr(unet, "peft_config", None):
        @contextlib.contextmanager
        def adapters_off():
            unet.disable_adapters()
            try:
                yield unet
            finally:
                unet.enable_adapters()

        return adapters_off
    frozen = copy.deepcopy(unet).requires_grad_(False)
    frozen.train(unet.training)
    return lambda: contextlib.nullcontext(frozen)


def _latent_shape(unet: nn.Module, latent_res: int) -> tuple[int, int, int, int]:
    """x_T's shape: (2V, C, h, h), normal then colour latents of the UNet's V views."""
    return 2 * int(unet.config.num_views), int(unet.config.out_channels), latent_res, latent_res


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
    (per update: loss, reward, KL, then per sample t_min, the drawn training steps and how many of them ran with
    gradients) and ``train_config.json`` (with the sigma read from g_skel).
    """
    from human3d.train.posescore import load_skeleton_distance

    device = torch.device(device)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(dataset) == 0:
        raise UsageError("the DRPose dataset is empty; see human3d.train.data for its format")
    views, cameras, flipped = reward_views_of(pipe)
    sigma = check_gskel(g_skel, pipe, cfg.sigma)
    schedule_bounds(cfg.num_steps, cfg.train_steps, cfg.max_early_stop)
    unet, reference = _prepare_unet(pipe, cfg, device)
    if distance is None:
        distance = load_skeleton_distance(cfg.use_lpips, cfg.lpips_weights)
    run = _Run(pipe, unet, reference, PoseScore(g_skel.to(device), distance.to(device), cameras, flipped, sigma),
               views, cfg, device, _autocast_for(cfg, device), list(_trainable(unet).values()))
    optimizer = torch.optim.AdamW(run.params, lr=cfg.learning_rate)

    ckpt = out / "checkpoint"
    start = load_checkpoint(ckpt, unet, optimizer) if (ckpt / "state.json").is_file() else 0
    if start:
        log.info("resuming DRPose from update %d", start)
    (out / "train_config.json").write_text(json.dumps({**asdict(cfg), "sigma": sigma}, indent=2, default=str))
    log_path = out / "log.csv"
    new_log = start == 0 or not log_path.is_file()
    with log_path.open("w" if new_log else "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(LOG_FIELDS)
        for step in range(start + 1, cfg.iterations + 1):
            totals, infos = _update(run, dataset, optimizer, step)
            writer.writerow(_log_row(step, totals, infos))
            fh.flush()
            if progress is not None:
                progress(step, totals)
            if step % cfg.save_every == 0 or step == cfg.iterations:
                save_checkpoint(ckpt, step, unet, optimizer)
    unet.eval()
    return save_unet_folder(unet, out / "unet")


@dataclass
class _Run:
    """What every update of one DRPose run uses."""

    pipe: Any
    unet: nn.Module
    reference: Callable[[], contextlib.AbstractContextManager[nn.Module]]
    reward: PoseScore
    views: list[int]
    cfg: DRPoseConfig
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    params: list[nn.Parameter]
    """The trainable parameters (what the optimizer updates and the gradient clipping sees)."""

    @property
    def latent_res(self) -> int:
        return self.pipe.default_resolution // self.pipe.vae_scale_factor


def _autocast_for(cfg: DRPoseConfig, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """The UNet's autocast context: bf16 when asked (auto: on CUDA), else none."""
    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "no"
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _prepare_unet(pipe: Any, cfg: DRPoseConfig, device: torch.device
                  ) -> tuple[nn.Module, Callable[[], contextlib.AbstractContextManager[nn.Module]]]:
    """The pipeline on ``device``, its UNet trainable (LoRA or all weights), and the frozen reference of it."""
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    unet = pipe.unet
    unet.train()
    if cfg.lora_rank > 0:
        add_lora(unet, cfg.lora_rank, cfg.lora_alpha)
    else:
        unet.requires_grad_(True)
    reference = make_reference(unet)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet, reference


def _update(run: _Run, dataset: torch.utils.data.Dataset, optimizer: torch.optim.Optimizer, step: int
            ) -> tuple[dict[str, float], list[StepInfo]]:
    """One optimizer update over ``batch_size x gradient_accumulation`` samples (seeded by ``step``): the mean
    loss, reward and KL, and each sample's schedule."""
    cfg = run.cfg
    rng = random.Random(cfg.seed * 1_000_003 + step)
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    per_update = cfg.batch_size * cfg.gradient_accumulation
    optimizer.zero_grad(set_to_none=True)
    totals = {"loss": 0.0, "reward": 0.0, "kl": 0.0}
    infos: list[StepInfo] = []
    for _ in range(per_update):
        sample = dataset[rng.randrange(len(dataset))]
        cond = _conditions(run.pipe, sample, cfg, generator)
        target = run.reward.targets(sample.joints[None].to(run.device), sample.joint_names, run.latent_res)
        schedule = sample_schedule(rng, cfg.num_steps, cfg.train_steps, cfg.max_early_stop)
        noise = torch.randn(_latent_shape(run.unet, run.latent_res), generator=generator)
        terms = drpose_loss(run.pipe, run.unet, run.reference, run.reward, cond, target, run.views, cfg, schedule,
                            noise, run.autocast)
        if terms.loss.requires_grad:  # no training step at or above t_min: nothing to learn from
            (terms.loss / per_update).backward()
        for key, value in (("loss", terms.loss), ("reward", terms.reward), ("kl", terms.kl)):
            totals[key] += float(value.detach()) / per_update
        infos.append(terms.info)
    if cfg.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.params, cfg.max_grad_norm)
    optimizer.step()
    return totals, infos


def _log_row(step: int, totals: dict[str, float], infos: Sequence[StepInfo]) -> list[Any]:
    """One ``log.csv`` row in :data:`LOG_FIELDS` order."""
    return [step, f"{totals['loss']:.6f}", f"{totals['reward']:.6f}", f"{totals['kl']:.8f}",
            " ".join(str(i.t_min) for i in infos),
            " ".join("/".join(map(str, i.t_train)) for i in infos),
            " ".join(str(len(i.grad_steps)) for i in infos)]


def _conditions(pipe: Any, sample: Any, cfg: DRPoseConfig, generator: torch.Generator) -> Any:
    """The pipeline's conditioning of one sample: the framed image for the body views, the face crop for the face."""
    r = pipe.default_resolution
    body = sample.image.resize((r, r)) if sample.image.size != (r, r) else sample.image
    face = sample.face.resize((r, r)) if sample.face.size != (r, r) else sample.face
    images = [face if i == pipe.face_view_index else body for i in range(pipe.num_views)]
    return pipe.encode_conditions(images, cfg.guidance_scale != 1.0, cfg.noise_level, generator)


@torch.no_grad()
def evaluate_reward(pipe: Any, reward: PoseScore, samples: Sequence[Any], num_steps: int = 20, seed: int = 0,
                    guidance_scale: float = 3.0) -> float:
    """Mean PoseScore of full deterministic DDIM runs (t = T..1, fixed noise per sample, no training step): a
    reward that does not depend on the training's random steps, for comparing a UNet before and after tuning."""
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
        noise = torch.randn(_latent_shape(pipe.unet, latent_res), generator=generator)
        terms = drpose_loss(pipe, pipe.unet, lambda: contextlib.nullcontext(pipe.unet), reward, cond, target,
                            views, cfg, ((), 1), noise)
        total += float(terms.reward)
    return total / max(len(samples), 1)
