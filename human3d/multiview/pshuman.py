"""The ``pshuman`` multi-view backend: PSHuman's (or a DRPose-tuned) diffusion model on the framed photo, its
views mapped into the canonical frame of :mod:`human3d.cameras`.

Normal convention. PSHuman's carving (its ``reconstruct.py``) renders the *world-frame* vertex normals of the mesh
as RGB = (n + 1) / 2 in every view and compares them with the generated normal maps directly, with the front
camera's frame as the world frame (x to the image right, y up, z toward the front camera; its SMPL-X vertices are
rotated 180 degrees about x from the OpenCV camera frame into that frame). So the generated maps (after un-flipping
the back and left views) are world-frame normals of exactly DESIGN.md's frame, and the mapping is
``n = normalise(2 * rgb - 1)`` with no rotation. The white background decodes to |2 * rgb - 1| = sqrt(3), far
from any unit normal, which is what the masks are cut from (or rembg's u2net when its model file is present).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from human3d.cameras import BODY_VIEW_AZIMUTHS, BODY_VIEW_NAMES, BODY_VIEW_WEIGHTS, FACE_VIEW_NAME
from human3d.config import MultiViewConfig
from human3d.context import StageContext
from human3d.errors import MissingBackendError, UsageError
from human3d.ops.image import decode_normals
from human3d.types import BodyFit, Framed, MultiView

log = logging.getLogger("human3d")

#: PSHuman's carving weights of its six body views (front, front_right, right, back, left, front_left).
PSHUMAN_VIEW_WEIGHTS: dict[str, float] = dict(zip(BODY_VIEW_NAMES, BODY_VIEW_WEIGHTS))
#: |2 rgb - 1| above this is background: unit normals give ~1, PSHuman's white background sqrt(3) ~ 1.73.
BACKGROUND_NORM = 1.35

_CACHE: dict[tuple[Any, ...], Any] = {}


def resolve_dtype(name: str, device: str) -> Any:
    """'auto' -> float16 on CUDA, float32 elsewhere; reduced precision on CPU is refused (too slow/unsupported)."""
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if name not in table:
        raise UsageError(f"unknown dtype {name!r}; use auto, float32, float16 or bfloat16")
    if table[name] is not torch.float32 and not device.startswith("cuda"):
        raise UsageError(f"--mv-dtype {name} needs a CUDA device; use float32 (or auto) on {device}")
    return table[name]


def load_pshuman_pipeline(cfg: MultiViewConfig, ctx: StageContext) -> Any:
    """The pipeline for ``cfg`` from the PSHuman weights (cached per process: a batch loads it once)."""
    from human3d import weights
    from human3d.multiview.loading import load_pipeline

    folder = weights.require("pshuman", ctx.weights_dir)
    dtype = resolve_dtype(cfg.dtype, ctx.device)
    key = (str(folder), cfg.unet_path, cfg.allow_pickle, str(dtype), ctx.device, cfg.cpu_offload)
    if key not in _CACHE:
        _CACHE.clear()  # one model at a time: they are gigabytes
        with weights.memory_guard(f"loading the PSHuman model onto {ctx.device}"):
            pipe = load_pipeline(folder, unet_path=cfg.unet_path, allow_pickle=cfg.allow_pickle, torch_dtype=dtype)
            pipe.set_progress_bar_config(disable=True)
            pipe.enable_memory_savings(ctx.device, cpu_offload=cfg.cpu_offload)
        _CACHE[key] = pipe
    return _CACHE[key]


def generate_pshuman_views(
    framed: Framed, body: BodyFit | None, cfg: MultiViewConfig, ctx: StageContext, pipeline: Any = None
) -> MultiView:
    """Run the multi-view diffusion on ``framed`` and return the views in the canonical frame.

    ``pipeline`` (a :class:`~human3d.multiview.pipeline.PSHumanMVPipeline`) replaces loading one from the weights;
    the body fit is not used by PSHuman's SMPL-free model.
    """
    if not ctx.device.startswith("cuda"):
        ctx.warn("the PSHuman multi-view model runs on CPU in float32: expect tens of minutes to hours per image "
                 "at 768x768 with 40 steps; use a CUDA GPU (--device cuda) for practical speed")
    pipe = pipeline if pipeline is not None else load_pshuman_pipeline(cfg, ctx)
    ctx.progress(0.0, "PSHuman multi-view diffusion")
    from human3d.weights import memory_guard

    with memory_guard(f"running the PSHuman model on {ctx.device} at {cfg.resolution} px"):
        out = pipe(
            framed.rgb, framed.face_rgb if pipe.face_view_index is not None else None,
            num_inference_steps=cfg.num_inference_steps, guidance_scale=cfg.guidance_scale, seed=ctx.seed,
            resolution=cfg.resolution,
            step_callback=lambda i, n: ctx.progress(0.95 * i / n, f"denoising step {i}/{n}"),
        )
    ctx.progress(0.97, "masks and normals")
    view = views_to_multiview(out.normals, out.colors, out.view_names, framed, cfg, ctx,
                              face_view_index=pipe.face_view_index, front_view_index=pipe.front_view_index)
    ctx.progress(1.0, "done")
    return view


def background_masks(normals_rgb: np.ndarray) -> np.ndarray:
    """(V, R, R, 3) normal maps in [0, 1] -> (V, R, R) bool: pixels whose decoded vector is near unit length."""
    return np.linalg.norm(normals_rgb.astype(np.float32) * 2.0 - 1.0, axis=-1) < BACKGROUND_NORM


def choose_mask_method(cfg: MultiViewConfig, weights_dir: Path | None) -> tuple[str, str]:
    """(method, why) for ``cfg.mask_method``: asked-for rembg without its package or model file is an error that
    names what is missing; auto takes rembg when both are there, else the normal maps' background (and says so)."""
    from human3d.errors import MissingWeightsError
    from human3d.segment.rembg import import_rembg, model_file

    if cfg.mask_method not in ("auto", "normals", "rembg"):
        raise UsageError(f"unknown mask method {cfg.mask_method!r}; use auto, normals or rembg")
    if cfg.mask_method == "normals":
        return "normals", "asked for"
    try:
        import_rembg()
        model_file("u2net", weights_dir)
    except (MissingBackendError, MissingWeightsError) as err:
        if cfg.mask_method == "rembg":
            raise type(err)(f"--mv-masks rembg: {err}; or use --mv-masks normals") from err
        return "normals", f"rembg is not usable: {err}"
    return "rembg", "asked for" if cfg.mask_method == "rembg" else "rembg and its u2net model are installed"


def rembg_masks(images: np.ndarray, weights_dir: Path | None, device: str = "cpu") -> np.ndarray:
    """(V, R, R, 3) images in [0, 1] -> (V, R, R) bool masks from rembg's u2net (the local file, no download)."""
    from PIL import Image

    from human3d.segment.rembg import import_rembg, model_file, rembg_session

    rembg = import_rembg()
    session = rembg_session(rembg, "u2net", model_file("u2net", weights_dir), device)
    masks = []
    for image in images:
        pil = Image.fromarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8))
        masks.append(np.asarray(rembg.remove(pil, session=session, only_mask=True)) > 127)
    return np.stack(masks)


def views_to_multiview(
    normals_rgb: np.ndarray,
    colors: np.ndarray,
    view_names: list[str],
    framed: Framed,
    cfg: MultiViewConfig,
    ctx: StageContext,
    face_view_index: int | None = 6,
    front_view_index: int = 0,
) -> MultiView:
    """The pipeline's (V, R, R, 3) normal maps and colours -> :class:`MultiView` in the canonical frame.

    Masks: the front view's is the input silhouette (its colour *is* the input); the others come from
    :func:`choose_mask_method`'s choice: rembg's u2net, or the normal maps' white background.
    Weights: PSHuman's carving weights per body view, ``cfg.face_view_weight`` for the face view (its normals are
    already pasted into the front view, so PSHuman does not use it again).
    """
    from PIL import Image

    method, why = choose_mask_method(cfg, ctx.weights_dir)
    log.info("multi-view masks: %s (%s)", method, why)
    ctx.progress(0.98, f"masks of the generated views: {method} ({why})")
    masks = rembg_masks(normals_rgb, ctx.weights_dir, ctx.device) if method == "rembg" \
        else background_masks(normals_rgb)
    size = normals_rgb.shape[1]
    front_mask = framed.mask
    if front_mask.shape[0] != size:
        front_mask = np.asarray(Image.fromarray(front_mask.astype(np.uint8) * 255).resize((size, size),
                                                                                          Image.NEAREST)) > 127
    masks[front_view_index] = front_mask
    normals = decode_normals(normals_rgb, masks)
    azimuth = dict(zip(BODY_VIEW_NAMES, BODY_VIEW_AZIMUTHS))
    azimuths, view_weights = [], []
    for i, name in enumerate(view_names):
        if i == face_view_index or name == FACE_VIEW_NAME:
            azimuths.append(0.0)
            view_weights.append(cfg.face_view_weight)
        else:
            azimuths.append(azimuth.get(name, 0.0))
            view_weights.append(PSHUMAN_VIEW_WEIGHTS.get(name, 1.0))
    return MultiView(
        normals=normals, colors=np.clip(colors, 0.0, 1.0).astype(np.float32), masks=masks.astype(bool),
        view_weights=np.asarray(view_weights, np.float32), view_names=list(view_names), azimuths=azimuths,
        backend="pshuman",
    )
