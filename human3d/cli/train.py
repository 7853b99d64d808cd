"""``human3d train prepare-skel | skel | drpose``: DRPose's reward-model data, the reward model g_skel and the
reward fine-tuning of the multi-view UNet (see :mod:`human3d.train`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from human3d.cli.common import error_boundary
from human3d.errors import OutputExistsError, UsageError

app = typer.Typer(help="Train DRPose: g_skel's training pairs (prepare-skel), the skeletal image predictor (skel) "
                       "and the UNet fine-tuning (drpose).", no_args_is_help=True)

BODY_VIEWS = "front,front_right,right,back,left,front_left"


def _indices(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r} must be comma-separated view indices, e.g. 3,4") from None


def _cameras(names: str, resolution: int):
    from human3d.cameras import BODY_VIEW_NAMES, camera_for_view

    views = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in views if n not in BODY_VIEW_NAMES]
    if not views or unknown:
        raise UsageError(f"--views {names!r}: unknown views {unknown}; use names of {', '.join(BODY_VIEW_NAMES)}")
    return [camera_for_view(n, resolution) for n in views]


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def _load_gskel(folder: Path):
    """A trained g_skel folder; a missing, damaged or mismatched file, or running out of memory, is one line."""
    from human3d.errors import MissingWeightsError
    from human3d.train.skel_predictor import SkeletalImagePredictor
    from human3d.weights import LOAD_ERRORS, load_failure

    fix = "train it again (human3d train skel) or copy the complete folder"
    weights = folder / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        raise MissingWeightsError(f"{weights} is missing; {fix}")
    try:  # safetensors only: a pickle beside it is never read
        return SkeletalImagePredictor.from_pretrained(folder, use_safetensors=True)
    except LOAD_ERRORS as err:
        raise load_failure(weights, err, fix) from err


def _pipeline_folder(path: Path | None, weights_dir: Path | None) -> Path:
    if path is not None:
        return path
    from human3d.weights import require

    return require("pshuman", weights_dir)


def _printer(every: int):
    def report(step: int, value: object) -> None:
        if step == 1 or step % every == 0:
            print(f"step {step}: {value}", file=sys.stderr, flush=True)

    return report


def prepare_skel(
    scans: Path = typer.Argument(..., help="Folder of scans: NAME.obj|glb|ply + NAME.json (joints or a body fit)."),
    output: Path = typer.Argument(..., help="Folder for the renders (NAME.npz), input of `train skel --data`."),
    views: str = typer.Option(BODY_VIEWS, "--views", help="Body views to render, comma-separated names."),
    resolution: int = typer.Option(768, "--resolution", help="Render size (the diffusion model's: 768)."),
    renderer: str = typer.Option("auto", "--renderer", help="auto | torch | open3d | nvdiffrast"),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Where SMPL-X model files are looked for."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda (the renderer's and body model's device)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Re-render scans whose NAME.npz exists."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Render scans with their body fits into g_skel's training pairs (normals, colours, joints)."""
    from human3d.train.prepare import prepare_skel_data

    _positive(resolution=resolution)
    cameras = _cameras(views, resolution)
    written = prepare_skel_data(scans, output, cameras, renderer=renderer, weights_dir=weights_dir,
                                overwrite=overwrite, device=device)
    print(f"wrote {len(written)} renders into {output} (views {views}); next: human3d train skel --data {output} "
          "--pipeline PSHUMAN_DIR")


def skel(
    data: Path = typer.Option(..., "--data", help="Folder of .npz renders with body fits (format: human3d.train.data)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the trained g_skel (and log.csv)."),
    pipeline: Path | None = typer.Option(None, "--pipeline", help="PSHuman folder whose VAE encodes renders "
                                            "(needed when the .npz files hold images, not latents)."),
    views: str = typer.Option(BODY_VIEWS, "--views", help="The samples' views, in order (names)."),
    flipped_views: str = typer.Option("3,4", "--flipped-views", help="Indices among --views the model predicts "
                                      "mirrored (PSHuman: back, left)."),
    sigma: float | None = typer.Option(None, "--sigma", help="Skeleton line width in latent pixels [default: 1.0]; "
                                       "stored with g_skel."),
    iterations: int = typer.Option(10_000, "--iterations"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(1e-4, "--lr"),
    block_channels: str | None = typer.Option(None, "--block-channels", help="g_skel widths, e.g. 32,64,128,256,512 "
                                              "(default: the paper's)."),
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", help="BCE + LPIPS (paper) or BCE only."),
    lpips_weights: Path | None = typer.Option(None, "--lpips-weights", help="Folder with the LPIPS files."),
    evaluate: bool = typer.Option(False, "--eval", help="After training, print PSNR/SSIM/LPIPS of the predicted "
                                  "skeletal images on held-out pairs (paper Table 3)."),
    eval_data: Path | None = typer.Option(None, "--eval-data", help="Held-out folder (same format as --data); "
                                          "default: hold out --eval-fraction of --data."),
    eval_fraction: float = typer.Option(0.1, "--eval-fraction", help="Share of --data held out when no --eval-data."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder's model."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Train g_skel, the skeletal image predictor of PoseScore."""
    import torch

    from human3d.config import resolve_device
    from human3d.eval.lpips import try_load_lpips
    from human3d.train.data import SkelDataset, encode_render_folder
    from human3d.train.posescore import load_skeleton_distance
    from human3d.train.skel_predictor import SkelTrainConfig, evaluate_skel, holdout_split, train_skel
    from human3d.train.skeleton import DEFAULT_SIGMA

    dev = resolve_device(device)
    if (output / "config.json").exists() and not overwrite:
        raise OutputExistsError(f"{output} already holds a model; pass --overwrite or choose another -o")
    sigma = DEFAULT_SIGMA if sigma is None else sigma
    _positive(iterations=iterations, batch_size=batch_size, lr=lr, sigma=sigma)
    cameras = _cameras(views, 768)
    flipped = _indices(flipped_views, "--flipped-views")
    if any(not 0 <= i < len(cameras) for i in flipped):
        raise UsageError(f"--flipped-views {flipped_views} must index the {len(cameras)} --views")
    widths = _indices(block_channels, "--block-channels") if block_channels else (32, 64, 128, 256, 512)
    cfg = SkelTrainConfig(iterations=iterations, batch_size=batch_size, learning_rate=lr, use_lpips=lpips,
                          lpips_weights=str(lpips_weights) if lpips_weights else None, seed=seed, sigma=sigma,
                          block_out_channels=widths)
    distance = load_skeleton_distance(lpips, cfg.lpips_weights, weights_dir)  # fail before any encoding
    folders = {"train": data, "eval": eval_data}
    if pipeline is not None:
        from human3d.multiview.loading import load_component

        vae = load_component("vae", _pipeline_folder(pipeline, weights_dir) / "vae").to(dev)
        for key, src in list(folders.items()):
            if src is not None:
                folders[key] = output / ("latents" if key == "train" else "latents_eval")
                n = encode_render_folder(src, folders[key], vae, flipped)
                print(f"encoded {n} samples into {folders[key]}", file=sys.stderr)
    dataset = SkelDataset(folders["train"])
    held_out = SkelDataset(folders["eval"]) if folders["eval"] is not None else None
    if evaluate and held_out is None:
        train_idx, eval_idx = holdout_split(len(dataset), eval_fraction, seed)
        dataset, held_out = torch.utils.data.Subset(dataset, train_idx), torch.utils.data.Subset(dataset, eval_idx)
    losses = train_skel(dataset, output, cfg, cameras=cameras, flipped_views=flipped, device=dev,
                        distance=distance, progress=_printer(50))
    print(f"wrote {output} (final loss {losses[-1]:.4f})")
    if evaluate:
        lpips_model, note = try_load_lpips(weights_dir, folder=lpips_weights)
        scores = evaluate_skel(_load_gskel(output), held_out, lpips_model, dev)
        lp = f"{scores['lpips']:.4f}" if scores["lpips"] is not None else f"n/a ({note})"
        print(f"g_skel on {scores['pairs']} held-out pairs: PSNR {scores['psnr']:.2f} dB  SSIM {scores['ssim']:.4f}  "
              f"LPIPS {lp}")


def drpose(
    data: Path = typer.Option(..., "--data", help="Folder of NAME.png + NAME.json pairs (format: human3d.train.data)."),
    gskel: Path = typer.Option(..., "--gskel", help="A g_skel folder from `human3d train skel`."),
    output: Path = typer.Option(..., "-o", "--output", help="Run folder: unet/ (the result), checkpoint/, log.csv; "
                                "rerunning with the same folder resumes."),
    pipeline: Path | None = typer.Option(None, "--pipeline", help="PSHuman weights folder (default: the "
                                            "'pshuman' asset)."),
    iterations: int = typer.Option(5500, "--iterations", help="Optimiser updates (paper: 5.5K)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Samples per micro-batch (paper: 4)."),
    grad_accum: int = typer.Option(2, "--grad-accum", help="Micro-batches per update (paper: 2)."),
    lr: float = typer.Option(1e-5, "--lr"),
    num_steps: int = typer.Option(20, "--num-steps", help="T: DDIM steps of the training trajectory (paper: 20)."),
    train_steps: int = typer.Option(2, "--train-steps", help="K: steps with gradients (paper: 2)."),
    max_early_stop: int = typer.Option(8, "--max-early-stop", help="m: t_min is drawn from 1..m (paper: 8)."),
    kl_weight: float = typer.Option(0.01, "--kl-weight", help="w_KL (paper: 0.01)."),
    guidance_scale: float = typer.Option(3.0, "--guidance-scale", help="CFG while sampling in training (inference "
                                         "value 3.0; 1.0: none)."),
    sigma: float | None = typer.Option(None, "--sigma", help="Skeleton line width; must equal g_skel's (default: "
                                       "the one stored with g_skel)."),
    lora_rank: int = typer.Option(0, "--lora-rank", help="Train LoRA adapters of this rank (0: all weights)."),
    lora_alpha: float | None = typer.Option(None, "--lora-alpha", help="LoRA alpha (scale alpha/rank; default: the "
                                            "rank)."),
    checkpointing: bool = typer.Option(True, "--gradient-checkpointing/--no-gradient-checkpointing"),
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", help="PoseScore distance BCE + LPIPS (paper) or BCE."),
    lpips_weights: Path | None = typer.Option(None, "--lpips-weights", help="Folder with the LPIPS files."),
    save_every: int = typer.Option(250, "--save-every"),
    weights_dir: Path | None = typer.Option(None, "--weights-dir"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow pickle checkpoints in the pipeline."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, "--seed"),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Fine-tune the multi-view UNet with DRPose (PoseScore reward, Algorithm 1)."""
    from human3d.config import resolve_device
    from human3d.multiview.loading import load_pipeline
    from human3d.train.data import PoseImageDataset
    from human3d.train.drpose import DRPoseConfig, check_gskel, schedule_bounds, train_drpose
    from human3d.train.posescore import load_skeleton_distance
    from human3d.weights import memory_guard

    dev = resolve_device(device)
    if not (gskel / "config.json").is_file():
        raise UsageError(f"{gskel} is not a g_skel folder (no config.json); train one with `human3d train skel`")
    _positive(iterations=iterations, batch_size=batch_size, grad_accum=grad_accum, lr=lr, guidance_scale=guidance_scale,
              save_every=save_every)
    if kl_weight < 0 or lora_rank < 0 or (lora_alpha is not None and lora_alpha <= 0):
        raise UsageError("--kl-weight and --lora-rank must be >= 0 and --lora-alpha > 0")
    schedule_bounds(num_steps, train_steps, max_early_stop)
    cfg = DRPoseConfig(iterations=iterations, batch_size=batch_size, gradient_accumulation=grad_accum,
                       learning_rate=lr, num_steps=num_steps, train_steps=train_steps, max_early_stop=max_early_stop,
                       kl_weight=kl_weight, guidance_scale=guidance_scale, sigma=sigma, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, gradient_checkpointing=checkpointing, use_lpips=lpips,
                       lpips_weights=str(lpips_weights) if lpips_weights else None, save_every=save_every, seed=seed)
    distance = load_skeleton_distance(lpips, cfg.lpips_weights, weights_dir)
    g_skel = _load_gskel(gskel)
    pipe = load_pipeline(_pipeline_folder(pipeline, weights_dir), allow_pickle=allow_pickle)
    check_gskel(g_skel, pipe, sigma)  # before any work: views, mirrored views and sigma must match
    dataset = PoseImageDataset(data, pipe.default_resolution)
    if dev == "cpu":
        print("warning: DRPose on CPU is only practical with tiny models", file=sys.stderr)
    with memory_guard(f"training DRPose on {dev} (batch {batch_size})",
                      "lower --batch-size (raise --grad-accum to keep the update), train LoRA (--lora-rank 16), "
                      "or keep --gradient-checkpointing"):
        out = train_drpose(pipe, g_skel, dataset, output, cfg, device=dev, distance=distance, progress=_printer(10))
    print(f"wrote {out} (use it with `human3d reconstruct --unet {out}`)")


app.command("prepare-skel")(error_boundary(prepare_skel))
app.command("skel")(error_boundary(skel))
app.command("drpose")(error_boundary(drpose))


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="train")
