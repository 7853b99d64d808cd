"""Speed and memory of the PSHuman multi-view diffusion: seconds per image at 40 steps and peak GPU memory.

    python benchmarks/multiview_gpu.py                       # real weights (weights/pshuman), CUDA
    python benchmarks/multiview_gpu.py --random-weights      # same architecture, random weights: same cost, no files
    python benchmarks/multiview_gpu.py --random-weights --device cpu --resolution 128 --steps 1   # smoke test

Prints one Markdown row per memory setting (model CPU offload on/off) with seconds per image (mean of
``--repeats`` runs after one warm-up) and the peak allocated / reserved CUDA memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from human3d.cameras import face_box  # noqa: E402
from human3d.multiview.pipeline import PSHumanMVPipeline, ViewPromptEmbeddings  # noqa: E402
from human3d.multiview.unet_mv import UNetMV2DConditionModel  # noqa: E402


def random_pipeline(dtype: torch.dtype) -> PSHumanMVPipeline:
    """PSHuman's architecture (SD2.1-unclip components, the 920M multi-view UNet) with random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4,
                        sample_size=768)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14,
        image_size=224, projection_dim=1024, hidden_act="gelu"))
    g = torch.Generator().manual_seed(0)
    prompts = ViewPromptEmbeddings.from_tensors(torch.randn(7, 77, 1024, generator=g),
                                                torch.randn(7, 77, 1024, generator=g))
    pipe = PSHumanMVPipeline(
        vae=vae, image_encoder=encoder,
        feature_extractor=CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}),
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=1024),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", steps_offset=1,
                                clip_sample=False, set_alpha_to_one=False),
        unet=UNetMV2DConditionModel(), prompt_embeddings=prompts,
    )
    for name in ("vae", "image_encoder", "unet", "prompt_embeddings"):
        getattr(pipe, name).to(dtype=dtype)
    return pipe


def synthetic_inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A framed 'person' (an ellipse with texture on white) and its face crop."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    inside = ((xx - 0.5) / 0.18) ** 2 + ((yy - 0.5) / 0.48) ** 2 < 1
    image = np.full((size, size, 3), 255, np.uint8)
    image[inside] = (np.stack([xx, yy, 0.5 + 0 * xx], -1)[inside] * 200).astype(np.uint8)
    x0, y0, x1, y1 = face_box(size)
    from PIL import Image

    face = np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize((size, size), Image.BICUBIC))
    return image, face


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights-dir", default=None)
    ap.add_argument("--unet", default=None, help="a DRPose-tuned UNet folder")
    ap.add_argument("--random-weights", action="store_true", help="PSHuman's architecture with random weights")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--resolution", type=int, default=768)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--offload", default="both", choices=["both", "on", "off"])
    args = ap.parse_args()

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to torch; this benchmark measures the GPU path (use --device cpu for a smoke test)")
    dtype = getattr(torch, args.dtype) if cuda else torch.float32
    if args.random_weights:
        pipe = random_pipeline(dtype)
        source = "random weights (PSHuman architecture)"
    else:
        from human3d import weights
        from human3d.multiview.loading import load_pipeline

        folder = weights.require("pshuman", args.weights_dir)
        pipe = load_pipeline(folder, unet_path=args.unet, torch_dtype=dtype)
        source = str(folder) + (f" + unet {args.unet}" if args.unet else "")
    pipe.set_progress_bar_config(disable=True)
    image, face = synthetic_inputs(args.resolution)
    print(f"source: {source}; device {args.device}; dtype {dtype}; {args.steps} steps at {args.resolution}^2; "
          f"torch {torch.__version__}" + (f"; {torch.cuda.get_device_name()}" if cuda else ""))
    print("| model CPU offload | s / image | peak allocated GiB | peak reserved GiB |")
    print("|---|---|---|---|")
    settings = {"both": [False, True], "on": [True], "off": [False]}[args.offload] if cuda else [False]
    for offload in settings:
        pipe.enable_memory_savings(args.device, cpu_offload=offload)
        pipe(image, face, num_inference_steps=1, seed=0, resolution=args.resolution)  # warm-up
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            pipe(image, face, num_inference_steps=args.steps, seed=r, resolution=args.resolution)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        alloc = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else float("nan")
        print(f"| {'on' if offload else 'off'} | {np.mean(times):.2f} | {alloc:.2f} | {reserved:.2f} |")
        if offload:
            pipe.remove_all_hooks()


if __name__ == "__main__":
    main()
