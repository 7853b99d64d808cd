"""Backend ``mask``: a mask file the user made (white = person)."""

from __future__ import annotations

import numpy as np

from human3d.config import SegmentConfig
from human3d.context import StageContext
from human3d.errors import UsageError
from human3d.io.images import load_mask
from human3d.segment.base import RawMask
from human3d.types import LoadedImage


def segment(image: LoadedImage, cfg: SegmentConfig, ctx: StageContext) -> RawMask:
    """The file ``cfg.mask_path`` resized to the photo (see :func:`human3d.io.images.load_mask`)."""
    if not cfg.mask_path:
        raise UsageError("--segmenter mask needs a mask file: pass --mask FILE")
    mask = load_mask(cfg.mask_path, image.size, warn=ctx.warn)
    return RawMask(mask.astype(np.float32), "mask", detail=f"mask file {cfg.mask_path}")
