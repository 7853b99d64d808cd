"""The ``segment`` stage: pick a backend, get a person mask, clean it, and refuse photos without a person."""

from __future__ import annotations

import importlib

from human3d.config import SegmentConfig
from human3d.context import StageContext
from human3d.errors import Human3DError, MissingBackendError, NoPersonFoundError, UsageError
from human3d.segment.alpha import alpha_problem
from human3d.segment.base import RawMask
from human3d.segment.clean import clean_mask, mask_bbox
from human3d.types import Cutout, LoadedImage

BACKENDS = ("alpha", "mediapipe", "rembg", "mask")


def _run(name: str, image: LoadedImage, cfg: SegmentConfig, ctx: StageContext) -> RawMask:
    # Backends import lazily: mediapipe and rembg are heavy and optional.
    module = importlib.import_module(f"human3d.segment.{name}")
    return module.segment(image, cfg, ctx)


def choose_backend(image: LoadedImage, cfg: SegmentConfig) -> tuple[str, str]:
    """(backend, why) for ``cfg.backend``; auto: the user's mask, else a meaningful alpha, else mediapipe."""
    if cfg.backend not in ("auto",) + BACKENDS:
        raise UsageError(f"unknown segmentation backend {cfg.backend!r}; choose auto, {', '.join(BACKENDS)}")
    if cfg.mask_path and cfg.backend not in ("auto", "mask"):
        raise UsageError(f"--mask was given together with --segmenter {cfg.backend}; drop one of them")
    if cfg.backend != "auto":
        return cfg.backend, "asked for"
    if cfg.mask_path:
        return "mask", "a mask file was given"
    problem = alpha_problem(image, cfg)
    if problem is None:
        return "alpha", "the image is a cutout (meaningful alpha)"
    return "mediapipe", problem


def _rembg_instead_of_mediapipe(image: LoadedImage, cfg: SegmentConfig, ctx: StageContext,
                                 err: MissingBackendError) -> RawMask:
    """auto without mediapipe: rembg, the other choice that needs no network, if the user has it and its model.
    Said aloud (a warning in the result), since the masks then come from another model."""
    try:
        raw = _run("rembg", image, cfg, ctx)
    except Human3DError as rembg_err:
        raise MissingBackendError(f"no segmentation backend is available: {err}; rembg: {rembg_err}") from err
    ctx.warn(f"segmentation backend: rembg instead of mediapipe, which is not available: {err}")
    return raw


def segment_person(image: LoadedImage, cfg: SegmentConfig, ctx: StageContext) -> Cutout:
    """Separate the person from the background.

    Returns a :class:`Cutout` with the photo rgb (H, W, 3), the cleaned person mask (H, W) bool (one component,
    small holes filled), its half-open bbox and the backend used. Several people: ``cfg.person`` or the one the photo
    is most likely of (mediapipe backend; other backends: the largest), with a warning listing them.
    Raises :class:`NoPersonFoundError` (exit 3) when the mask is empty or smaller than ``cfg.min_area_fraction``.
    """
    backend, why = choose_backend(image, cfg)
    if cfg.person is not None and backend != "mediapipe":
        raise UsageError(f"--person chooses among the people mediapipe finds, but the {backend} backend is used "
                         f"({why}); drop --person, or pass --segmenter mediapipe")
    ctx.progress(0.0, f"segmentation backend: {backend} ({why})")
    try:
        raw = _run(backend, image, cfg, ctx)
    except MissingBackendError as err:
        if cfg.backend != "auto" or backend != "mediapipe":
            raise  # asked for by name (or a mask file): its own error, with what to install
        raw = _rembg_instead_of_mediapipe(image, cfg, ctx, err)
    source = image.source or "the input"
    mask = raw.probability > cfg.threshold
    cleaned = clean_mask(mask, max_hole_fraction=cfg.max_hole_fraction)
    area = cleaned.mask.sum() / cleaned.mask.size
    if area < cfg.min_area_fraction:
        found = "no person" if area == 0 else f"a person mask of only {area:.2%} of the image"
        raise NoPersonFoundError(
            f"{source}: {found} was found ({raw.detail or raw.backend}; at least {cfg.min_area_fraction:.1%} is "
            "needed); use a photo where one person is clearly visible, or give a mask with --mask FILE"
        )
    people = max(raw.people, 1 + cleaned.others)
    warnings = list(raw.notes)
    if raw.candidates and len(raw.candidates) > 1:
        listed = "; ".join(raw.candidates)
        how = "as asked (--person)" if cfg.person is not None else "the most complete, central and large"
        warnings.append(f"several people in {source} ({len(raw.candidates)}, numbered left to right: {listed}); "
                        f"reconstructing person {raw.chosen}, {how}; choose another with --person N")
    elif people > 1:
        # Detectors find people one at a time and may miss some: the count is a lower bound.
        warnings.append(f"several people in {source} (at least {people}); reconstructing the largest one "
                        "(crop the photo or give --mask FILE to choose another)")
    for message in warnings:
        ctx.warn(message)
    bbox = mask_bbox(cleaned.mask)
    ctx.progress(1.0, f"{raw.detail or raw.backend}: person covers {area:.1%} of the image, bbox {bbox}")
    return Cutout(rgb=image.rgb, mask=cleaned.mask, bbox=bbox, backend=raw.backend, warnings=warnings)
