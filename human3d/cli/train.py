"""``human3d train skel`` and ``human3d train drpose``: DRPose's reward model and the reward fine-tuning of the
multi-view UNet (see :mod:`human3d.train`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from human3d.cli.common import error_boundary
from human3d.errors import OutputExistsError, UsageError

app = typer.Typer(help="Train DRPose: the skeletal image predictor (skel) and the UNet fine-tuning (drpose).",
                  no_args_is_help=True)


def _views(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--flipped-views {text!r} must be comma-separated view indices, e.g. 3,4") from None


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


def skel(
    data: Path = typer.Option(..., "--data", help="Folder of .npz renders with body fits (format: human3d.train.data)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the trained g_skel (and log.csv)."),
    pipeline: Path | None = typer.Option(None, "--pipeline", help="PSHuman folder whose VAE encodes renders "
                                            "(needed when the .npz files hold images, not latents)."),
    views: int = typer.Option(6, "--views", help="Body views per sample."),
    flipped_views: str = typer.Option("3,4", "--flipped-views", help="Views the model predicts mirrored (PSHuman: "
                                      "back, left)."),
    iterations: int = typer.Option(10_000, "--iterations"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(1e-4, "--lr"),
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", help="BCE + LPIPS (paper) or BCE only."),
    lpips_weights: Path | None = typer.Option(None, "--lpips-weights", help="Folder with the LPIPS files."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder's model."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Train g_skel, the skeletal image predictor of PoseScore."""
    from human3d.config import resolve_device
    from human3d.train.data import SkelDataset, encode_render_folder
    from human3d.train.posescore import load_skeleton_distance
    from human3d.train.skel_predictor import SkelTrainConfig, train_skel

    dev = resolve_device(device)
    if (output / "config.json").exists() and not overwrite:
        raise OutputExistsError(f"{output} already holds a model; pass --overwrite or choose another -o")
    flipped = _views(flipped_views)
    cfg = SkelTrainConfig(iterations=iterations, batch_size=batch_size, learning_rate=lr, use_lpips=lpips,
                          lpips_weights=str(lpips_weights) if lpips_weights else None, seed=seed)
    distance = load_skeleton_distance(lpips, cfg.lpips_weights, weights_dir)  # fail before any encoding
    folder = data
    if pipeline is not None:
        from human3d.multiview.loading import load_component

        vae = load_component("vae", _pipeline_folder(pipeline, weights_dir) / "vae").to(dev)
        folder = output / "latents"
        n = encode_render_folder(data, folder, vae, flipped)
        print(f"encoded {n} samples into {folder}", file=sys.stderr)
    dataset = SkelDataset(folder)
    losses = train_skel(dataset, output, cfg, num_views=views, flipped_views=flipped, device=dev,
                        distance=distance, progress=_printer(50))
    print(f"wrote {output} (final loss {losses[-1]:.4f})")


def drpose(
    data: Path = typer.Option(..., "--data", help="Folder of NAME.png + NAME.json pairs (format: human3d.train.data)."),
    gskel: Path = typer.Option(..., "--gskel", help="A g_skel folder from `human3d train skel`."),
    output: Path = typer.Option(..., "-o", "--output", help="Run folder: unet/ (the result), checkpoint/, log.csv; "
                                "rerunning with the same folder resumes."),
    pipeline: Path | None = typer.Option(None, "--pipeline", help="PSHuman weights folder (default: the "
                                            "'pshuman' asset)."),
    iterations: int = typer.Option(5500, "--iterations"),
    batch_size: int = typer.Option(4, "--batch-size"),
    grad_accum: int = typer.Option(2, "--grad-accum", help="Micro-batches per update."),
    lr: float = typer.Option(1e-5, "--lr"),
    lora_rank: int = typer.Option(0, "--lora-rank", help="Train LoRA adapters of this rank (0: all weights)."),
    guidance_scale: float = typer.Option(1.0, "--guidance-scale", help="CFG while sampling in training."),
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
    from human3d.train.drpose import DRPoseConfig, train_drpose
    from human3d.train.posescore import load_skeleton_distance
    from human3d.train.skel_predictor import SkeletalImagePredictor

    dev = resolve_device(device)
    if not (gskel / "config.json").is_file():
        raise UsageError(f"{gskel} is not a g_skel folder (no config.json); train one with `human3d train skel`")
    cfg = DRPoseConfig(iterations=iterations, batch_size=batch_size, gradient_accumulation=grad_accum,
                       learning_rate=lr, lora_rank=lora_rank, guidance_scale=guidance_scale,
                       gradient_checkpointing=checkpointing, use_lpips=lpips,
                       lpips_weights=str(lpips_weights) if lpips_weights else None, save_every=save_every, seed=seed)
    distance = load_skeleton_distance(lpips, cfg.lpips_weights, weights_dir)
    pipe = load_pipeline(_pipeline_folder(pipeline, weights_dir), allow_pickle=allow_pickle)
    g_skel = SkeletalImagePredictor.from_pretrained(gskel)
    dataset = PoseImageDataset(data, pipe.default_resolution)
    if dev == "cpu":
        print("warning: DRPose on CPU is only practical with tiny models", file=sys.stderr)
    out = train_drpose(pipe, g_skel, dataset, output, cfg, device=dev, distance=distance, progress=_printer(10))
    print(f"wrote {out} (use it with `human3d reconstruct --unet {out}`)")


app.command("skel")(error_boundary(skel))
app.command("drpose")(error_boundary(drpose))


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="train")
