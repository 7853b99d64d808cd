"""Backend ``alpha``: the photo's own alpha channel, when it is a real cutout."""

from __future__ import annotations

import numpy as np

from human3d.config import SegmentConfig
from human3d.context import StageContext
from human3d.errors import BadInputError
from human3d.segment.base import RawMask
from human3d.types import LoadedImage

#: A cutout leaves at least this fraction of the image transparent (background).
MIN_BACKGROUND_FRACTION = 0.02


def opaque_fraction(alpha: np.ndarray, cfg: SegmentConfig) -> float:
    """Fraction of the (H, W) uint8 ``alpha`` at or above the person threshold."""
    return float((alpha.astype(np.float32) >= cfg.threshold * 255.0).mean())


def alpha_problem(image: LoadedImage, cfg: SegmentConfig) -> str | None:
    """Why the image's alpha is not a usable person mask, or None when it is."""
    if image.alpha is None:
        return "the image has no alpha channel"
    fg = opaque_fraction(image.alpha, cfg)
    if fg >= 1.0 - MIN_BACKGROUND_FRACTION:
        return "the image's alpha channel is (almost) fully opaque"
    if fg == 0.0:
        return "the image's alpha channel is fully transparent"
    if fg < cfg.min_area_fraction:
        return f"the opaque part of the alpha channel covers only {fg:.2%} of the image"
    return None


def segment(image: LoadedImage, cfg: SegmentConfig, ctx: StageContext) -> RawMask:
    """(H, W) probability = alpha / 255. Raises :class:`BadInputError` when there is no alpha or it is opaque."""
    problem = alpha_problem(image, cfg)
    # An empty or tiny opaque part is left to the stage's "no person found" check; only a missing or opaque
    # alpha means the backend cannot answer at all.
    if problem and (image.alpha is None or opaque_fraction(image.alpha, cfg) >= 1.0 - MIN_BACKGROUND_FRACTION):
        raise BadInputError(f"{image.source or 'input'}: --segmenter alpha was asked for but {problem}; "
                            "use --segmenter auto or mediapipe")
    assert image.alpha is not None
    return RawMask(image.alpha.astype(np.float32) / 255.0, "alpha", detail="the image's alpha channel")
