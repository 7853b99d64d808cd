"""GPU memory of DRPose training with the real PSHuman UNet: an ESTIMATE from parameter counts and activation sizes
(no GPU was used). Prints a table for full fine-tuning and for LoRA.

Assumptions (each printed row says what it counts):
* weights fp32 with bf16 autocast (``--mixed-precision auto`` on CUDA); AdamW keeps two fp32 moments per trained
  parameter; the frozen reference is a copy in the tuned UNet's precision (full fine-tuning) or the same weights
  with the adapters switched off (LoRA);
* one sample is denoised at a time (batch 4 x accumulation 2 are 8 sequential trajectories, each backpropagated at
  once), so only one trajectory's graph is alive; its K gradient-bearing UNet calls keep their activations;
* gradient checkpointing on: a call keeps the inputs of its checkpointed blocks (every ResNet and transformer
  block, counted from the UNet config below), and the backward pass recomputes one block at a time;
* the UNet batch of one call is 2 domains x 7 views (6 body + face) x 2 CFG branches = 28 latents of 96 x 96;
* attention runs as fused scaled-dot-product attention (no N^2 score matrix is kept).

    python benchmarks/drpose_memory.py [--views 7] [--cfg 2] [--train-steps 2] [--lora-rank 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pshuman_unet_manifest.json"
UNET_PARAMS = 919_783_684  # the manifest's num_parameters (checked below when the manifest is found)
CLIP_VIT_H_PARAMS = 632_076_800  # SD2.1-unclip image encoder (ViT-H/14 with projection), approximate
VAE_PARAMS = 83_653_863  # SD's AutoencoderKL
GiB = 1024 ** 3


def gskel_params() -> int:
    from human3d.train.skel_predictor import SkeletalImagePredictor

    return sum(p.numel() for p in SkeletalImagePredictor().parameters())


def checkpoint_elements(channels: tuple[int, ...], res: int, layers: int = 2) -> int:
    """Elements per latent image kept by gradient checkpointing in an SD-style UNet: the input of every ResNet and
    transformer block (down: ``layers`` ResNet + transformer pairs per level, no transformer at the deepest; mid:
    ResNet, transformer, ResNet; up: ``layers + 1`` pairs per level, no transformer at the deepest, each ResNet
    reading the skip concatenated) plus the skip tensors held for the up path."""
    sizes = [(res // 2 ** i) ** 2 for i in range(len(channels))]
    last = len(channels) - 1
    total = 0
    skips = [(channels[0], sizes[0])]  # conv_in's output
    cin = channels[0]
    for i, (c, hw) in enumerate(zip(channels, sizes)):
        for _ in range(layers):
            total += cin * hw + (c * hw if i < last else 0)
            cin = c
            skips.append((c, hw))
        if i < last:
            skips.append((c, sizes[i + 1]))  # the downsampler's output
    total += 3 * channels[-1] * sizes[-1]  # mid block
    held = sum(ch * hw for ch, hw in skips)
    prev = channels[-1]
    for i in range(last, -1, -1):
        c, hw = channels[i], sizes[i]
        for _ in range(layers + 1):
            skip_ch, skip_hw = skips.pop()
            assert skip_hw == hw
            total += (prev + skip_ch) * hw + (c * hw if i < last else 0)
            prev = c
    return total + held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=7)
    parser.add_argument("--cfg", type=int, default=2, help="2 with guidance, 1 without")
    parser.add_argument("--train-steps", type=int, default=2)
    parser.add_argument("--lora-rank", type=int, default=4)
    args = parser.parse_args()
    params = UNET_PARAMS
    if MANIFEST.is_file():
        params = int(json.loads(MANIFEST.read_text())["num_parameters"])
        assert params == UNET_PARAMS, params
    batch = 2 * args.views * args.cfg
    per_image = checkpoint_elements((320, 640, 1280, 1280), 96)
    kept = per_image * batch * 2 * args.train_steps  # bf16
    # one transformer block at 96^2 recomputed in the backward pass: ~14 tensors of its width (norms, q/k/v, attention
    # out, cross-attention, GEGLU's 2 x 4 x width, ...) plus the multi-view attention's ~6
    recompute = 20 * 320 * 96 * 96 * batch * 2
    no_grad_peak = 6 * 320 * 96 * 96 * batch * 2  # a no-grad call: a few live level-0 tensors
    # LoRA on to_q, to_k, to_v, to_out.0 of the 16 blocks x 3 attentions (attn1, attn2, attn_mv): r (d_in + d_out) each
    widths = [320] * 4 + [640] * 4 + [1280] * 4 + [1280] * 1 + [1280] * 3  # per transformer block (approx.)
    lora = sum(3 * 4 * args.lora_rank * (w + w) for w in widths)  # cross-attention k/v read 1024: close enough
    encoders = (CLIP_VIT_H_PARAMS + VAE_PARAMS) * 2 + gskel_params() * 4  # fp16 encoders, fp32 g_skel
    rows = []
    for name, trained in (("full fine-tuning", params), (f"LoRA rank {args.lora_rank}", lora)):
        static = params * 4 + trained * 4 * 3 + (params * 4 if trained == params else 0) + encoders
        total = static + kept + max(recompute, no_grad_peak)
        rows.append((name, params * 4, trained * 12, params * 4 if trained == params else 0, encoders, kept,
                     max(recompute, no_grad_peak), total))
    print(f"DRPose GPU memory ESTIMATE (not measured): UNet {params:,} params, UNet batch {batch} x 96^2 latents, "
          f"K = {args.train_steps} gradient-bearing calls, checkpointed activations {per_image * 2 / 2**20:.0f} MiB "
          "per latent image per call\n")
    print("| set-up | UNet weights fp32 | trained: grads + AdamW | frozen reference | VAE + CLIP + g_skel | "
          "kept activations | recompute peak | total (+ allocator slack ~10%) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, *vals, total in rows:
        cells = " | ".join(f"{v / GiB:.1f} GiB" for v in vals)
        print(f"| {name} | {cells} | {total / GiB:.1f} GiB (~{total * 1.1 / GiB:.0f} GiB) |")


if __name__ == "__main__":
    main()
