"""PSHuman's multi-view diffusion as a diffusers pipeline: the framed cutout (+ its face crop) in, normal maps and
colour images of every view out.

Components are PSHuman's (a Stable Diffusion 2.1-unclip image-variation setup): ``vae``, ``image_encoder`` (CLIP
ViT-H/14 with projection), ``feature_extractor``, ``image_normalizer``, ``image_noising_scheduler``, ``scheduler``,
``unet`` (:class:`~human3d.multiview.unet_mv.UNetMV2DConditionModel`) and the per-view prompt embeddings, either
precomputed (``prompt_embeddings``) or computed once from ``text_encoder`` + ``tokenizer``.

Batch layout (V views, face last in PSHuman): without guidance ``[normal v0..v(V-1), colour v0..v(V-1)]``; with
classifier-free guidance ``[normal-uncond, normal-cond, colour-uncond, colour-cond]`` (4V). The unconditional
branches have zero class labels and zero condition latents; the prompt embeddings are kept in both branches.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from torch import nn

from human3d.cameras import BODY_VIEW_NAMES, FACE_VIEW_NAME, face_box
from human3d.errors import MissingWeightsError
from human3d.multiview.unet_mv import UNetMV2DConditionModel

log = logging.getLogger("human3d")

#: PSHuman's 7 views in its order (the prompts name them).
PSHUMAN_VIEW_NAMES: tuple[str, ...] = (*BODY_VIEW_NAMES, FACE_VIEW_NAME)
#: Views PSHuman predicts mirrored left-right (its training targets for back and left were flipped).
PSHUMAN_FLIPPED_VIEWS: tuple[int, ...] = (3, 4)
PROMPT_TEMPLATE = "a rendering image of 3D human, {view} view, {domain} map."


class ViewPromptEmbeddings(ModelMixin, ConfigMixin):
    """Fixed text embeddings, one per view and domain: ``normal`` and ``color`` of shape (V, L, D).

    PSHuman ships them as ``normal_embeds.pt``/``clr_embeds.pt`` (float16 [7, 77, 1024], the SD2.1-unclip
    CLIPTextModel last hidden state of :data:`PROMPT_TEMPLATE` per view); here they are a small model so that a
    pipeline folder stores them as safetensors.
    """

    @register_to_config
    def __init__(self, num_views: int = 7, sequence_length: int = 77, embedding_dim: int = 1024) -> None:
        super().__init__()
        self.normal = nn.Parameter(torch.zeros(num_views, sequence_length, embedding_dim), requires_grad=False)
        self.color = nn.Parameter(torch.zeros(num_views, sequence_length, embedding_dim), requires_grad=False)

    @classmethod
    def from_tensors(cls, normal: torch.Tensor, color: torch.Tensor) -> ViewPromptEmbeddings:
        """normal, color: (V, L, D) -> the module holding them (float32)."""
        if normal.shape != color.shape or normal.ndim != 3:
            raise ValueError(f"prompt embeddings must both be (V, L, D); got {tuple(normal.shape)}, {tuple(color.shape)}")
        module = cls(*normal.shape)
        with torch.no_grad():
            module.normal.copy_(normal.float())
            module.color.copy_(color.float())
        return module


@torch.no_grad()
def encode_view_prompts(
    text_encoder: nn.Module, tokenizer: Any, view_names: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """PSHuman's per-view prompts through the CLIP text encoder: ((V, L, D) normal, (V, L, D) colour)."""
    device = next(text_encoder.parameters()).device

    def encode(domain: str) -> torch.Tensor:
        prompts = [PROMPT_TEMPLATE.format(view=v, domain=domain) for v in view_names]
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        return text_encoder(ids)[0].float().cpu()

    return encode("normal"), encode("color")


@dataclass
class MultiViewPipelineOutput(BaseOutput):
    """What the pipeline returns, views in the UNet's order, already un-flipped.

    normals: (V, H, W, 3) float32 in [0, 1], the normal maps as PSHuman draws them (RGB = (n + 1) / 2, white
    background), the front view with the face view's normals pasted into the face box;
    colors: (V, H, W, 3) float32 in [0, 1], the front view being the input image;
    view_names: the V names; latents: (2V, 4, h, w) final latents [normals; colours] when asked for.
    """

    normals: np.ndarray
    colors: np.ndarray
    view_names: list[str]
    latents: torch.Tensor | None = None


@dataclass
class Conditioning:
    """Everything the UNet is conditioned on, in the batch layout of the module docstring.

    prompt_embeds: (n, L, D); class_labels: (n, 2 * E) noised image embedding + noise-level embedding;
    image_latents: (n, 4, h, w) VAE latents of the condition images; n = 2V, or 4V with guidance.
    """

    prompt_embeds: torch.Tensor
    class_labels: torch.Tensor
    image_latents: torch.Tensor
    guided: bool


def _to_pil(image: Any, size: int) -> Image.Image:
    """(H, W, 3) uint8 / float in [0, 1] array, (3, H, W) tensor in [0, 1] or PIL image -> RGB PIL at size x size."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            image = np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
        image = Image.fromarray(image[..., :3])
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected an image array, tensor or PIL image, got {type(image).__name__}")
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return image


class PSHumanMVPipeline(DiffusionPipeline):
    """Six body views plus a face view, each a normal map and a colour image, from one framed photo.

    >>> pipe = PSHumanMVPipeline.from_pretrained("weights/pshuman")          # see human3d.multiview.loading
    >>> out = pipe(framed.rgb, framed.face_rgb, seed=42)
    >>> out.normals.shape                                                      # (7, 768, 768, 3)

    Config: ``view_names`` (one per UNet view; PSHuman's seven by default) and ``flipped_views`` (indices of the
    views the model predicts mirrored; PSHuman: back and left).
    """

    model_cpu_offload_seq = "text_encoder->image_encoder->unet->vae"
    _exclude_from_cpu_offload = ["image_normalizer", "prompt_embeddings"]
    _optional_components = ["prompt_embeddings", "text_encoder", "tokenizer"]

    def __init__(
        self,
        vae: AutoencoderKL,
        image_encoder: Any,
        feature_extractor: Any,
        image_normalizer: StableUnCLIPImageNormalizer,
        image_noising_scheduler: SchedulerMixin,
        scheduler: SchedulerMixin,
        unet: UNetMV2DConditionModel,
        prompt_embeddings: ViewPromptEmbeddings | None = None,
        text_encoder: Any = None,
        tokenizer: Any = None,
        view_names: Sequence[str] | None = None,
        flipped_views: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.register_modules(
            vae=vae, image_encoder=image_encoder, feature_extractor=feature_extractor,
            image_normalizer=image_normalizer, image_noising_scheduler=image_noising_scheduler, scheduler=scheduler,
            unet=unet, prompt_embeddings=prompt_embeddings, text_encoder=text_encoder, tokenizer=tokenizer,
        )
        num_views = unet.config.num_views
        if view_names is None:
            view_names = PSHUMAN_VIEW_NAMES if num_views == 7 else tuple(f"view{i}" for i in range(num_views))
        if flipped_views is None:
            flipped_views = PSHUMAN_FLIPPED_VIEWS if num_views == 7 else ()
        if len(view_names) != num_views or any(not 0 <= v < num_views for v in flipped_views):
            raise ValueError(f"view_names {list(view_names)} / flipped_views {list(flipped_views)} do not fit the "
                             f"UNet's {num_views} views")
        self.register_to_config(view_names=list(view_names), flipped_views=list(flipped_views))
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    # -- properties ----------------------------------------------------------------------------------------------
    @property
    def num_views(self) -> int:
        return int(self.unet.config.num_views)

    @property
    def face_view_index(self) -> int | None:
        return self.unet.config.face_view_index

    @property
    def front_view_index(self) -> int:
        return int(self.unet.config.front_view_index)

    @property
    def default_resolution(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    # -- memory --------------------------------------------------------------------------------------------------
    def enable_memory_savings(self, device: str | torch.device, cpu_offload: bool = True) -> None:
        """VAE slicing and tiling, and on CUDA model CPU offload (each model on the GPU only while it runs).

        Attention already runs through torch SDPA (memory-efficient kernels) in the multi-view processors.
        """
        self.vae.enable_slicing()
        self.vae.enable_tiling()
        if torch.device(device).type == "cuda" and cpu_offload:
            self.enable_model_cpu_offload(device=device)
        else:
            self.to(device)

    # -- conditioning --------------------------------------------------------------------------------------------
    def view_prompt_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """((V, L, D) normal, (V, L, D) colour) prompt embeddings, computed once from the text encoder if needed."""
        if self.prompt_embeddings is None:
            if self.text_encoder is None or self.tokenizer is None:
                raise MissingWeightsError(
                    "the multi-view pipeline has neither prompt_embeddings nor text_encoder+tokenizer; "
                    "add either folder to the PSHuman weights"
                )
            normal, color = encode_view_prompts(self.text_encoder, self.tokenizer, self.config.view_names)
            self.register_modules(prompt_embeddings=ViewPromptEmbeddings.from_tensors(normal, color))
        return self.prompt_embeddings.normal.detach(), self.prompt_embeddings.color.detach()

    def noise_image_embeddings(
        self, image_embeds: torch.Tensor, noise_level: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """unCLIP noise augmentation: (n, E) -> (n, 2E) = [noised embeds, sinusoidal noise-level embedding]."""
        noise = randn_tensor(image_embeds.shape, generator=generator, device=image_embeds.device,
                             dtype=image_embeds.dtype)
        level = torch.full((image_embeds.shape[0],), noise_level, device=image_embeds.device)
        # the normaliser's statistics follow the embeddings (it is kept out of CPU offload, as in diffusers)
        mean = self.image_normalizer.mean.to(image_embeds)
        std = self.image_normalizer.std.to(image_embeds)
        embeds = (image_embeds - mean) / std
        embeds = self.image_noising_scheduler.add_noise(embeds, noise=noise, timesteps=level)
        embeds = embeds * std + mean
        level_embeds = get_timestep_embedding(level, embeds.shape[-1], flip_sin_to_cos=True, downscale_freq_shift=0)
        return torch.cat([embeds, level_embeds.to(embeds.dtype)], dim=1)

    @torch.no_grad()
    def encode_conditions(
        self,
        view_images: Sequence[Image.Image],
        guidance: bool,
        noise_level: int = 0,
        generator: torch.Generator | None = None,
    ) -> Conditioning:
        """V condition images (one per view) -> :class:`Conditioning` for both domains (and CFG branches)."""
        device = self._execution_device
        v = len(view_images)
        # prompts: [normal; colour], kept (not zeroed) in the unconditional branch
        normal_prompt, color_prompt = self.view_prompt_embeddings()
        text_dtype = self.unet.dtype
        normal_prompt, color_prompt = normal_prompt.to(device, text_dtype), color_prompt.to(device, text_dtype)
        prompts = [normal_prompt, normal_prompt, color_prompt, color_prompt] if guidance else [normal_prompt, color_prompt]

        # CLIP image embeddings of every view of both domains, noise-augmented at noise_level
        enc_dtype = self.image_encoder.dtype
        pixels = self.feature_extractor(images=list(view_images) * 2, return_tensors="pt").pixel_values
        image_embeds = self.image_encoder(pixels.to(device, enc_dtype)).image_embeds
        class_labels = self.noise_image_embeddings(image_embeds, noise_level, generator).to(self.unet.dtype)

        # VAE latents of the condition images (distribution mode, scaled)
        tensor = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0) for im in view_images])
        tensor = (tensor.permute(0, 3, 1, 2) * 2.0 - 1.0).to(device, self.vae.dtype)
        latents = self.vae.encode(tensor).latent_dist.mode() * self.vae.config.scaling_factor
        image_latents = torch.cat([latents, latents]).to(self.unet.dtype)

        if guidance:
            normal_cls, color_cls = class_labels.chunk(2)
            class_labels = torch.cat([torch.zeros_like(normal_cls), normal_cls, torch.zeros_like(color_cls), color_cls])
            normal_lat, color_lat = image_latents.chunk(2)
            image_latents = torch.cat([torch.zeros_like(normal_lat), normal_lat, torch.zeros_like(color_lat),
                                       color_lat])
        assert class_labels.shape[0] == image_latents.shape[0] == len(prompts) * v
        return Conditioning(torch.cat(prompts), class_labels, image_latents, guidance)

    def predict_noise(
        self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, guidance_scale: float
    ) -> torch.Tensor:
        """One UNet evaluation: latents (2V, 4, h, w) [normal; colour] -> guided model output (2V, 4, h, w)."""
        if cond.guided:
            normal, color = latents.chunk(2)
            model_in = torch.cat([normal, normal, color, color])
        else:
            model_in = latents
        # only the noisy half is scaled (identity for DDIM/DDPM; PSHuman scales both, which matters for no scheduler
        # it uses), the condition latents stay as encoded
        model_in = torch.cat([self.scheduler.scale_model_input(model_in, t), cond.image_latents], dim=1)
        out = self.unet(model_in.to(self.unet.dtype), t, encoder_hidden_states=cond.prompt_embeds,
                        class_labels=cond.class_labels, return_dict=False)[0]
        if not cond.guided:
            return out
        n_uncond, n_cond, c_uncond, c_cond = out.chunk(4)
        uncond, text = torch.cat([n_uncond, c_uncond]), torch.cat([n_cond, c_cond])
        return uncond + guidance_scale * (text - uncond)

    def _step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict[str, Any]:
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs: dict[str, Any] = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    # -- the call ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        image: Any,
        face_image: Any | None = None,
        *,
        num_inference_steps: int = 40,
        guidance_scale: float = 3.0,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        eta: float = 1.0,
        noise_level: int = 0,
        resolution: int | None = None,
        latents: torch.Tensor | None = None,
        return_latents: bool = False,
        step_callback: Callable[[int, int], None] | None = None,
    ) -> MultiViewPipelineOutput:
        """Generate every view's normal map and colour image.

        image: the framed cutout on white, (R, R, 3) uint8 or float in [0, 1] (array, (3, R, R) tensor or PIL);
        face_image: the face crop upscaled to (R, R) (needed when the UNet has a face view);
        seed / generator: the randomness (seed makes a CPU generator, so a seed gives the same noise on any device);
        eta: DDIM's eta (PSHuman: 1.0; ignored by schedulers without it); noise_level: unCLIP image-embedding noise;
        resolution: output side in pixels (default: UNet sample size x VAE factor, 768 for PSHuman);
        latents: initial noise (2V, 4, h, w) instead of drawing it; step_callback(step, total) after each step.
        """
        # 0. Check inputs
        size = resolution or self.default_resolution
        if size % self.vae_scale_factor:
            raise ValueError(f"resolution {size} is not a multiple of the VAE factor {self.vae_scale_factor}")
        if self.face_view_index is not None and face_image is None:
            raise ValueError("this UNet generates a face view: pass face_image (the face crop at full size)")
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(seed)
        device = self._execution_device
        guided = guidance_scale != 1.0
        v = self.num_views
        if device.type == "cpu" and size >= 512:
            log.warning("running the multi-view diffusion on CPU at %dx%d: expect minutes per denoising step", size,
                        size)

        # 1. Condition images: the full-body image for the body views, the face crop for the face view
        body = _to_pil(image, size)
        face = _to_pil(face_image, size) if face_image is not None else None
        view_images = [face if i == self.face_view_index else body for i in range(v)]

        # 2. Encode prompts, CLIP image embeddings (+ noise level) and VAE condition latents
        cond = self.encode_conditions(view_images, guided, noise_level, generator)

        # 3. Timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 4. Initial latents [normal views; colour views]
        shape = (2 * v, self.unet.config.out_channels, size // self.vae_scale_factor, size // self.vae_scale_factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must be {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device, self.unet.dtype) * self.scheduler.init_noise_sigma
        step_kwargs = self._step_kwargs(generator, eta)

        # 5. Denoising loop
        for i, t in enumerate(self.progress_bar(timesteps)):
            noise_pred = self.predict_noise(latents, t, cond, guidance_scale)
            latents = self.scheduler.step(noise_pred, t, latents, **step_kwargs, return_dict=False)[0]
            if step_callback is not None:
                step_callback(i + 1, len(timesteps))

        # 6. Decode [normals; colours]
        decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor, return_dict=False)[0]
        images = (decoded.float() / 2 + 0.5).clamp(0, 1)  # (2V, 3, R, R)
        self.maybe_free_model_hooks()

        # 7. Post-process: un-flip mirrored views, paste the face normals, the front colour is the input
        normals, colors = self.postprocess(images[:v], images[v:], body)
        return MultiViewPipelineOutput(normals=normals, colors=colors, view_names=list(self.config.view_names),
                                       latents=latents if return_latents else None)

    def postprocess(
        self, normals: torch.Tensor, colors: torch.Tensor, input_image: Image.Image
    ) -> tuple[np.ndarray, np.ndarray]:
        """(V, 3, R, R) decoded normals and colours in [0, 1] -> (V, R, R, 3) float32 arrays, PSHuman's way.

        Views in ``flipped_views`` are mirrored back; the face normal map, resized to the face box, replaces the
        front normal map there; the front colour image is the input image.
        """
        flipped = list(self.config.flipped_views)
        if flipped:
            normals, colors = normals.clone(), colors.clone()
            normals[flipped] = normals[flipped].flip(-1)
            colors[flipped] = colors[flipped].flip(-1)
        size = normals.shape[-1]
        front = self.front_view_index
        if self.face_view_index is not None:
            x0, y0, x1, y1 = face_box(size)
            face = F.interpolate(normals[self.face_view_index][None], size=(y1 - y0, x1 - x0), mode="bilinear",
                                 align_corners=False)[0]
            normals = normals.clone()
            normals[front, :, y0:y1, x0:x1] = face
        normals_np = normals.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
        colors_np = colors.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
        colors_np[front] = np.asarray(input_image, dtype=np.float32) / 255.0
        return normals_np, colors_np

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> PSHumanMVPipeline:
        """Load from a local folder in PSHuman's (or our saved) layout; see :func:`human3d.multiview.loading.load_pipeline`."""
        from human3d.multiview.loading import load_pipeline

        return load_pipeline(pretrained_model_name_or_path, **kwargs)
