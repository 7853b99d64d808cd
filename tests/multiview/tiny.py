"""Tiny random PSHuman-style components (diffusers' dummy-components habit) for CPU tests."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

from human3d.multiview.pipeline import PSHumanMVPipeline, ViewPromptEmbeddings
from human3d.multiview.unet_mv import UNetMV2DConditionModel

NUM_VIEWS = 4  # front, side, back (predicted mirrored), face
VIEW_NAMES = ["front", "right", "back", "face"]
FLIPPED = [2]
EMBED = 16  # CLIP projection dim; class labels are 2 * EMBED
TEXT_DIM = 32
RES = 64


def tiny_unet_config(num_views: int = NUM_VIEWS, face_view_index: int | None = NUM_VIEWS - 1) -> dict:
    return dict(
        num_views=num_views, face_view_index=face_view_index, sample_size=RES // 4, in_channels=8, out_channels=4,
        down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        block_out_channels=[16, 32], layers_per_block=1, attention_head_dim=[2, 4], cross_attention_dim=TEXT_DIM,
        class_embed_type="projection", projection_class_embeddings_input_dim=2 * EMBED,
        use_linear_projection=True, upcast_attention=True, norm_num_groups=8,
    )




def tiny_unet(seed: int = 0, **overrides) -> UNetMV2DConditionModel:
    torch.manual_seed(seed)
    unet = UNetMV2DConditionModel(**{**tiny_unet_config(), **overrides})
    with torch.no_grad():  # the MV branch starts at zero; make it matter in tests
        g = torch.Generator().manual_seed(seed + 1)
        for block in unet.multiview_blocks:
            for p in block.attn_mv.to_out.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return unet


def tiny_components(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[8, 16, 16], norm_num_groups=4,
        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3, sample_size=RES,
        layers_per_block=1,
    )
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=EMBED,
    )).eval()
    extractor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=EMBED)
    with torch.no_grad():
        normalizer.mean.copy_(torch.randn(1, EMBED) * 0.1)
        normalizer.std.copy_(torch.rand(1, EMBED) + 0.5)
    g = torch.Generator().manual_seed(seed + 7)
    prompts = ViewPromptEmbeddings.from_tensors(torch.randn(NUM_VIEWS, 8, TEXT_DIM, generator=g),
                                                torch.randn(NUM_VIEWS, 8, TEXT_DIM, generator=g))
    return dict(
        vae=vae, image_encoder=encoder, feature_extractor=extractor, image_normalizer=normalizer,
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                                prediction_type="v_prediction", timestep_spacing="leading"),
        unet=tiny_unet(seed), prompt_embeddings=prompts, view_names=VIEW_NAMES, flipped_views=FLIPPED,
    )


def tiny_pipeline(seed: int = 0) -> PSHumanMVPipeline:
    pipe = PSHumanMVPipeline(**tiny_components(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_inputs(seed: int = 0):
    """A 64x64 'framed cutout' (white background, coloured blob) and its face crop."""
    import numpy as np

    rng = np.random.default_rng(seed)
    image = np.full((RES, RES, 3), 255, np.uint8)
    image[8:60, 20:44] = rng.integers(0, 200, size=(52, 24, 3), dtype=np.uint8)
    face = np.full((RES, RES, 3), 255, np.uint8)
    face[10:54, 12:52] = rng.integers(50, 250, size=(44, 40, 3), dtype=np.uint8)
    return image, face
