"""PSHuman's multi-view UNet: a diffusers ``UNet2DConditionModel`` whose 16 transformer blocks gain ``norm_mv`` and
``attn_mv``, with attention processors that implement PSHuman's multi-view behaviour on torch SDPA.

Batch layout the UNet expects (PSHuman's): ``N = 2 * G * V`` images where ``V = num_views``; the first half of the
batch are normal maps, the second half colour images, each half being ``G`` groups of ``V`` consecutive views
(``G`` = CFG branches x images). Inside every transformer block:

1. ``attn1`` (joint cross-domain self-attention): the tokens of view ``v`` of the normal half and of the same view
   of the colour half are concatenated (2·HW tokens) and attend together. After the output projection, the face
   view's output (detached, bilinearly resized to the face box) is averaged 0.5/0.5 into the front view's rows
   ``[0, H//3)`` and columns ``[H//3, H - H//3)``, the region of the canvas the face crop was cut from.
2. ``attn_mv`` (row-wise multi-view attention, after LayerNorm ``norm_mv``, residual): only the body views take
   part; token row ``r`` of every body view attends to row ``r`` of all body views (``(b v) (h w) c -> (b h) (v w)
   c``). Its output projection starts at zero, so a freshly added branch leaves the UNet unchanged.
3. ``attn2``: ordinary cross-attention to the prompt embeddings; then the feed-forward.

PSHuman gets (1) and (2) only when xformers is installed (its default processors silently drop them). Here the
behaviour lives in processors built on ``torch.nn.functional.scaled_dot_product_attention``, and the multi-view
attention layers refuse to have it swapped for a plain processor (e.g. by ``set_attn_processor`` or
``enable_xformers_memory_efficient_attention``), so no optional install changes what the model computes.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import nn

log = logging.getLogger("human3d")

#: PSHuman's block class names -> the diffusers blocks with the same parameters (the MV parts are added per block).
PSHUMAN_BLOCK_TYPES = {
    "CrossAttnDownBlockMV2D": "CrossAttnDownBlock2D",
    "UNetMidBlockMV2DCrossAttn": "UNetMidBlock2DCrossAttn",
    "CrossAttnUpBlockMV2D": "CrossAttnUpBlock2D",
}

#: PSHuman config switches and the only value this implementation reproduces (its released 768/6-view model).
PSHUMAN_SUPPORTED_FLAGS: dict[str, Any] = {
    "multiview_attention": True,
    "mvcd_attention": True,
    "selfattn_block": "self_rowwise",
    "cd_attention_mid": False,
    "cd_attention_last": False,
    "use_dino": False,
    "addition_downsample": False,
    "regress_elevation": False,
    "regress_focal_length": False,
}

#: PSHuman config keys that do not change the model it builds for the supported flags.
class UnsupportedVariantError(ValueError):
    """A PSHuman UNet config switches on a variant this implementation does not have."""


PSHUMAN_INERT_KEYS = ("sparse_mv_attention", "num_regress_blocks", "projection_camera_embeddings_input_dim")


def translate_pshuman_unet_config(config: dict[str, Any]) -> dict[str, Any]:
    """A PSHuman ``UNetMV2DConditionModel`` config -> the config of :class:`UNetMV2DConditionModel` here.

    Block class names are mapped onto diffusers' blocks, PSHuman's switches are checked against the one variant
    implemented (raises :class:`UnsupportedVariantError`, a ``ValueError``, naming the switch otherwise) and
    dropped, and the face view is PSHuman's last view. A config already in our form passes through unchanged.
    """
    config = dict(config)
    for key in ("down_block_types", "up_block_types"):
        if key in config and config[key] is not None:
            config[key] = [PSHUMAN_BLOCK_TYPES.get(name, name) for name in config[key]]
    if config.get("mid_block_type") in PSHUMAN_BLOCK_TYPES:
        config["mid_block_type"] = PSHUMAN_BLOCK_TYPES[config["mid_block_type"]]
    foreign = [k for k in PSHUMAN_SUPPORTED_FLAGS if k in config]
    for key in foreign:
        value = config.pop(key)
        if value != PSHUMAN_SUPPORTED_FLAGS[key]:
            raise UnsupportedVariantError(
                f"the UNet config sets {key}={value!r}; only PSHuman's released variant "
                f"({key}={PSHUMAN_SUPPORTED_FLAGS[key]!r}) is implemented"
            )
    for key in PSHUMAN_INERT_KEYS:
        config.pop(key, None)
    if foreign and "face_view_index" not in config:
        config["face_view_index"] = int(config.get("num_views", 7)) - 1
    return config


# ---------------------------------------------------------------------------------------------------------------
# attention processors


def _sdpa(attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Multi-head attention with torch SDPA: (N, Lq, H*d), (N, Lk, H*d) x2 -> (N, Lq, H*d)."""
    n, lq, inner = query.shape
    heads = attn.heads
    d = inner // heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(n, t.shape[1], heads, d).transpose(1, 2)  # (N, H, L, d)

    out = F.scaled_dot_product_attention(split(query), split(key), split(value), scale=attn.scale)
    return out.transpose(1, 2).reshape(n, lq, inner)


def _output(attn: Attention, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The diffusers tail every processor shares: to_out, dropout, optional residual, rescale."""
    hidden = attn.to_out[1](attn.to_out[0](hidden))
    if attn.residual_connection:
        hidden = hidden + residual
    return hidden / attn.rescale_output_factor


def _square_side(tokens: int) -> int:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"multi-view attention needs square latents; got {tokens} tokens per view")
    return side


def fuse_face_into_front(
    hidden: torch.Tensor, num_views: int, face_view_index: int, front_view_index: int = 0
) -> torch.Tensor:
    """PSHuman's cross-scale face fusion for one domain.

    hidden: (G * V, H*W, C) tokens of G groups of V views (square H = W). Returns the same shape where, in every
    group, the front view's region rows [0, H//3) x cols [H//3, H - H//3) is replaced by the average of itself and
    the face view (detached, bilinearly resized to that region).
    """
    gv, tokens, channels = hidden.shape
    side = _square_side(tokens)
    start, end = side // 3, side - side // 3
    if start == 0:  # a latent smaller than 3 tokens has no face box
        return hidden
    grid = hidden.view(gv // num_views, num_views, side, side, channels)
    face = grid[:, face_view_index].detach().permute(0, 3, 1, 2)  # (G, C, H, W)
    face = F.interpolate(face, size=(start, end - start), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    out = grid.clone()
    out[:, front_view_index, :start, start:end] = 0.5 * grid[:, front_view_index, :start, start:end] + 0.5 * face
    return out.view(gv, tokens, channels)


class MultiViewProcessor:
    """Base of the processors that implement the multi-view semantics (the MV layers accept only these): diffusers'
    processor call, without attention masks; a subclass implements :meth:`attend`."""

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError("the multi-view UNet does not take an attention mask")
        return self.attend(attn, hidden_states, encoder_hidden_states)

    def attend(self, attn: Attention, hidden_states: torch.Tensor,
               encoder_hidden_states: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


class JointCrossDomainAttnProcessor(MultiViewProcessor):
    """``attn1``: a view's normal and colour tokens attend together; then the face view is fused into the front.

    Reads ``attn.mv_num_views``, ``attn.mv_face_view_index`` (None: no face view) and ``attn.mv_front_view_index``.
    """

    def attend(self, attn: Attention, hidden_states: torch.Tensor,
               encoder_hidden_states: torch.Tensor | None) -> torch.Tensor:
        n, tokens, _ = hidden_states.shape
        if n % (2 * attn.mv_num_views):
            raise ValueError(
                f"batch of {n} is not [normals; colours] x groups of {attn.mv_num_views} views (see unet_mv docstring)"
            )
        residual = hidden_states
        source = hidden_states if encoder_hidden_states is None else encoder_hidden_states

        def join(t: torch.Tensor) -> torch.Tensor:  # (N, L, C) -> (N/2, 2L, C): normal | colour of the same view
            normal, color = t.chunk(2, dim=0)
            return torch.cat([normal, color], dim=1)

        hidden = _sdpa(attn, join(attn.to_q(hidden_states)), join(attn.to_k(source)), join(attn.to_v(source)))
        hidden = attn.to_out[1](attn.to_out[0](hidden))
        normal, color = hidden.split(tokens, dim=1)  # (N/2, L, C) each
        if attn.mv_face_view_index is not None:
            normal = fuse_face_into_front(normal, attn.mv_num_views, attn.mv_face_view_index, attn.mv_front_view_index)
            color = fuse_face_into_front(color, attn.mv_num_views, attn.mv_face_view_index, attn.mv_front_view_index)
        hidden = torch.cat([normal, color], dim=0)
        if attn.residual_connection:
            hidden = hidden + residual
        return hidden / attn.rescale_output_factor


class RowwiseMVAttnProcessor(MultiViewProcessor):
    """``attn_mv``: token row r of every view attends to row r of all ``attn.mv_num_views`` views of its group.

    Input (B * Vb, H*W, C) with square latents; the domains stay separate (they are different groups of B).
    """

    def attend(self, attn: Attention, hidden_states: torch.Tensor,
               encoder_hidden_states: torch.Tensor | None) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("row-wise multi-view attention is self-attention without a mask")
        bv, tokens, _ = hidden_states.shape
        views = attn.mv_num_views
        if bv % views:
            raise ValueError(f"batch of {bv} is not a multiple of {views} body views")
        side = _square_side(tokens)

        def rows(t: torch.Tensor) -> torch.Tensor:  # (b v) (h w) c -> (b h) (v w) c
            c = t.shape[-1]
            return t.view(bv // views, views, side, side, c).permute(0, 2, 1, 3, 4).reshape(-1, views * side, c)

        hidden = _sdpa(attn, rows(attn.to_q(hidden_states)), rows(attn.to_k(hidden_states)),
                       rows(attn.to_v(hidden_states)))
        c = hidden.shape[-1]
        hidden = hidden.view(bv // views, side, views, side, c).permute(0, 2, 1, 3, 4).reshape(bv, tokens, c)
        return _output(attn, hidden, hidden_states)


class MultiViewAttention(Attention):
    """An ``Attention`` layer whose processor must stay multi-view aware.

    diffusers helpers (``set_attn_processor``, ``set_attention_slice``, xformers, default processors) would replace
    it with a plain per-image processor and silently drop the multi-view behaviour (what happens in PSHuman without
    xformers); here such a swap is refused with a log message.
    """

    def set_processor(self, processor: Any) -> None:
        if isinstance(processor, MultiViewProcessor) or not hasattr(self, "processor"):
            super().set_processor(processor)
            return
        log.info("kept the multi-view attention processor of a %s layer instead of %s",
                 type(self.processor).__name__, type(processor).__name__)

    def set_use_memory_efficient_attention_xformers(self, *args: Any, **kwargs: Any) -> None:
        # SDPA already picks a memory-efficient kernel; xformers would drop the multi-view semantics.
        return None


class MVBasicTransformerBlock(BasicTransformerBlock):
    """diffusers' ``BasicTransformerBlock`` plus PSHuman's ``norm_mv``/``attn_mv``; built by converting a block in
    place (:func:`add_multiview_layers`), so every other parameter keeps diffusers' name and shape."""

    num_views: int
    face_view_index: int | None
    front_view_index: int

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        timestep: torch.LongTensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        class_labels: torch.LongTensor | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(N, L, C) -> (N, L, C) with N = 2 x groups x num_views in PSHuman's layout."""
        kwargs = dict(cross_attention_kwargs or {})
        hidden_states = self.attn1(self.norm1(hidden_states), attention_mask=attention_mask, **kwargs) + hidden_states
        hidden_states = self._rowwise_multiview(hidden_states, kwargs)
        if self.attn2 is not None:
            hidden_states = hidden_states + self.attn2(
                self.norm2(hidden_states), encoder_hidden_states=encoder_hidden_states,
                attention_mask=encoder_attention_mask, **kwargs,
            )
        norm = self.norm3(hidden_states)
        if self._chunk_size is not None:
            ff = torch.cat([self.ff(part) for part in norm.split(self._chunk_size, dim=self._chunk_dim)],
                           dim=self._chunk_dim)
        else:
            ff = self.ff(norm)
        return ff + hidden_states

    def _rowwise_multiview(self, hidden_states: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
        """Residual row-wise attention over the body views; the face view passes through."""
        n, tokens, channels = hidden_states.shape
        grid = hidden_states.view(n // self.num_views, self.num_views, tokens, channels)
        if self.face_view_index is None:
            body = hidden_states
        else:
            body_idx = torch.tensor([v for v in range(self.num_views) if v != self.face_view_index],
                                    device=hidden_states.device)
            body = grid.index_select(1, body_idx).reshape(-1, tokens, channels)
        body = body + self.attn_mv(self.norm_mv(body), **kwargs)
        if self.face_view_index is None:
            return body
        grid = grid.index_copy(1, body_idx, body.view(grid.shape[0], -1, tokens, channels))
        return grid.view(n, tokens, channels)


def add_multiview_layers(
    block: BasicTransformerBlock, num_views: int, face_view_index: int | None, front_view_index: int
) -> MVBasicTransformerBlock:
    """Turn a diffusers ``BasicTransformerBlock`` into an :class:`MVBasicTransformerBlock` in place.

    Adds ``norm_mv`` (LayerNorm) and ``attn_mv`` (q/k/v without bias, output projection with bias, zero-initialised)
    right after ``attn1`` in the module order (the order of PSHuman's state_dict), and installs the processors.
    """
    if block.norm_type != "layer_norm" or block.pos_embed is not None or block.only_cross_attention:
        raise ValueError("multi-view layers need a plain layer-norm self+cross attention block")
    dim = block.dim
    heads, head_dim = block.num_attention_heads, block.attention_head_dim
    param = block.norm1.weight if block.norm1.weight is not None else next(block.parameters())
    factory = {"device": param.device, "dtype": param.dtype}
    norm_mv = nn.LayerNorm(dim, elementwise_affine=block.norm_elementwise_affine, eps=block.norm1.eps, **factory)
    attn_mv = Attention(query_dim=dim, heads=heads, dim_head=head_dim, dropout=block.dropout, bias=block.attention_bias,
                        upcast_attention=block.attn1.upcast_attention).to(**factory)
    if not param.is_meta:
        # A zero output projection makes the new branch an exact identity until trained (PSHuman zeroes the weight).
        nn.init.zeros_(attn_mv.to_out[0].weight)
        nn.init.zeros_(attn_mv.to_out[0].bias)

    block.__class__ = MVBasicTransformerBlock
    block.num_views = num_views
    block.face_view_index = face_view_index
    block.front_view_index = front_view_index
    body_views = num_views - (0 if face_view_index is None else 1)
    for attn, processor, views in ((block.attn1, JointCrossDomainAttnProcessor(), num_views),
                                   (attn_mv, RowwiseMVAttnProcessor(), body_views)):
        attn.__class__ = MultiViewAttention
        attn.mv_num_views = views
        attn.mv_face_view_index = face_view_index
        attn.mv_front_view_index = front_view_index
        attn.set_processor(processor)
    modules = dict(block._modules)
    block._modules.clear()
    for name, module in modules.items():
        block._modules[name] = module
        if name == "attn1":
            block._modules["norm_mv"] = norm_mv
            block._modules["attn_mv"] = attn_mv
    return block  # type: ignore[return-value]


class UNetMV2DConditionModel(UNet2DConditionModel):
    """PSHuman's multi-view UNet (same class name, state_dict and default config as PSHuman's released model).

    Extra config: ``num_views`` (views per group, face included), ``face_view_index`` (which of them is the face
    crop, None for none) and ``front_view_index`` (the view the face is fused into). Every other argument is
    diffusers' ``UNet2DConditionModel``'s; a PSHuman config (its block names and switches) is translated by
    :func:`translate_pshuman_unet_config` in :meth:`from_config`, so ``from_pretrained`` reads PSHuman's folders.

    Input of ``forward``: sample (2·G·V, 8, h, w) = [noisy latents (4) ; condition latents (4)] in the batch layout
    of the module docstring; ``class_labels`` (2·G·V, 2048) the noised CLIP image embedding + noise-level embedding.
    """

    @register_to_config
    def __init__(
        self,
        num_views: int = 7,
        face_view_index: int | None = 6,
        front_view_index: int = 0,
        sample_size: int = 96,
        in_channels: int = 8,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        mid_block_type: str = "UNetMidBlock2DCrossAttn",
        up_block_types: tuple[str, ...] = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        attention_head_dim: int | tuple[int, ...] = (5, 10, 20, 20),
        cross_attention_dim: int = 1024,
        class_embed_type: str | None = "projection",
        projection_class_embeddings_input_dim: int | None = 2048,
        use_linear_projection: bool = True,
        upcast_attention: bool = True,
        norm_num_groups: int = 32,
        **kwargs: Any,
    ) -> None:
        if face_view_index is not None and face_view_index < 0:
            face_view_index += num_views
        if num_views < 1 or (face_view_index is not None and not 0 <= face_view_index < num_views):
            raise ValueError(f"face_view_index {face_view_index} is not one of {num_views} views")
        if not 0 <= front_view_index < num_views or front_view_index == face_view_index:
            raise ValueError(f"front_view_index {front_view_index} must be a body view of {num_views}")
        down_block_types = tuple(PSHUMAN_BLOCK_TYPES.get(b, b) for b in down_block_types)
        up_block_types = tuple(PSHUMAN_BLOCK_TYPES.get(b, b) for b in up_block_types)
        mid_block_type = PSHUMAN_BLOCK_TYPES.get(mid_block_type, mid_block_type)
        super().__init__(
            sample_size=sample_size, in_channels=in_channels, out_channels=out_channels,
            down_block_types=down_block_types, mid_block_type=mid_block_type, up_block_types=up_block_types,
            block_out_channels=block_out_channels, layers_per_block=layers_per_block,
            attention_head_dim=attention_head_dim, cross_attention_dim=cross_attention_dim,
            class_embed_type=class_embed_type,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            use_linear_projection=use_linear_projection, upcast_attention=upcast_attention,
            norm_num_groups=norm_num_groups, **kwargs,
        )
        for module in list(self.modules()):
            if isinstance(module, BasicTransformerBlock):
                add_multiview_layers(module, num_views, face_view_index, front_view_index)

    @staticmethod
    def _get_init_keys(input_class: type) -> set[str]:
        # The **kwargs of __init__ are UNet2DConditionModel's arguments: list them so that from_config passes
        # them through (diffusers only passes keys it finds in the __init__ signature).
        import inspect

        keys = set(inspect.signature(input_class.__init__).parameters)
        if issubclass(input_class, UNetMV2DConditionModel):
            keys |= set(inspect.signature(UNet2DConditionModel.__init__).parameters)
        return keys

    @classmethod
    def from_config(cls, config: Any = None, return_unused_kwargs: bool = False, **kwargs: Any) -> Any:
        """diffusers' ``from_config`` after :func:`translate_pshuman_unet_config` (PSHuman folders load as is)."""
        if config is not None:
            config = translate_pshuman_unet_config(dict(config))
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

    @property
    def multiview_blocks(self) -> list[MVBasicTransformerBlock]:
        """The transformer blocks carrying multi-view attention (16 in PSHuman's configuration)."""
        return [m for m in self.modules() if isinstance(m, MVBasicTransformerBlock)]

    def set_default_attn_processor(self) -> None:
        """Plain SDPA processors for the cross-attention layers; the multi-view layers keep theirs."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.set_attn_processor(AttnProcessor2_0())
