"""The ``frame`` stage: the cutout placed in the canonical canvas of DESIGN.md §3, plus the face crop.

The person's bounding box is scaled so that its long side is ``crop_size / 768 * R`` and centred on the R x R
canvas; the map is ``canvas = scale * photo + offset`` in pixel-edge coordinates (pixel i spans [i, i + 1)) on both
axes. The resampling realises that map exactly: each output is a PIL area-aware resize of a photo box whose edges
are the map's preimage of whole canvas pixels, so a point goes photo -> canvas -> photo without drift. Colour is
resampled premultiplied by the mask so the background never bleeds into the edge, then composited on white.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from human3d import cameras
from human3d.config import FrameConfig
from human3d.context import StageContext
from human3d.errors import InternalError, UsageError
from human3d.types import Cutout, Framed, FrontPhoto

WHITE = 255.0


def canvas_transform(bbox: tuple[int, int, int, int], resolution: int, crop_size: int) -> tuple[float, tuple[float, float]]:
    """(scale, (ox, oy)) with canvas = scale * photo + offset: bbox long side -> crop_size/768 * R, centred."""
    x0, y0, x1, y1 = bbox
    long_side = max(x1 - x0, y1 - y0)
    if long_side <= 0:
        raise InternalError(f"empty person bbox {bbox} reached the frame stage")
    scale = crop_size / cameras.CANVAS_SIZE * resolution / long_side
    half = resolution / 2.0
    return scale, (half - scale * (x0 + x1) / 2.0, half - scale * (y0 + y1) / 2.0)


def _resample(channels: list[np.ndarray], scale: float, offset: tuple[float, float], size: int) -> list[np.ndarray]:
    """Each (H, W) float32 photo channel -> (size, size) float32 under canvas = scale * photo + offset; outside the
    photo counts as zero (background)."""
    h, w = channels[0].shape
    ox, oy = offset
    # Only the photo region that reaches the canvas is resampled, with room for the filter's support (Lanczos:
    # 3 output pixels when reducing) and a zero border so that partly covered canvas pixels at the photo's edge
    # come out partly covered instead of being cut.
    support = 3.0 / min(scale, 1.0) + 2.0
    pad = int(math.ceil(support))
    px0, px1 = max(0, int(math.floor(-ox / scale - support))), min(w, int(math.ceil((size - ox) / scale + support)))
    py0, py1 = max(0, int(math.floor(-oy / scale - support))), min(h, int(math.ceil((size - oy) / scale + support)))
    out = [np.zeros((size, size), np.float32) for _ in channels]
    if px1 <= px0 or py1 <= py0:
        return out
    # In the padded crop, photo x = crop x + px0 - pad, so canvas = scale * crop + o2.
    o2x, o2y = ox + scale * (px0 - pad), oy + scale * (py0 - pad)
    cw, ch = px1 - px0 + 2 * pad, py1 - py0 + 2 * pad
    # Whole canvas pixels inside the padded crop's image; their edges map back inside the crop.
    cx0, cy0 = max(0, math.ceil(o2x - 1e-9)), max(0, math.ceil(o2y - 1e-9))
    cx1, cy1 = min(size, math.floor(o2x + scale * cw + 1e-9)), min(size, math.floor(o2y + scale * ch + 1e-9))
    if cx1 <= cx0 or cy1 <= cy0:
        return out
    box = (
        min(max((cx0 - o2x) / scale, 0.0), cw), min(max((cy0 - o2y) / scale, 0.0), ch),
        min(max((cx1 - o2x) / scale, 0.0), cw), min(max((cy1 - o2y) / scale, 0.0), ch),
    )
    for src, dst in zip(channels, out, strict=True):
        crop = np.pad(src[py0:py1, px0:px1], pad)
        img = Image.fromarray(np.ascontiguousarray(crop, np.float32), "F")
        dst[cy0:cy1, cx0:cx1] = np.asarray(img.resize((cx1 - cx0, cy1 - cy0), Image.Resampling.LANCZOS, box=box))
    return out


def render_on_white(rgb: np.ndarray, mask: np.ndarray, scale: float, offset: tuple[float, float],
                    size: int) -> tuple[np.ndarray, np.ndarray]:
    """The masked photo under the map, on white: ((size, size, 3) uint8, (size, size) float32 coverage in [0, 1])."""
    alpha = mask.astype(np.float32)
    premultiplied = [rgb[..., c].astype(np.float32) * alpha for c in range(3)]
    *colour, coverage = _resample(premultiplied + [alpha], scale, offset, size)
    coverage = np.clip(coverage, 0.0, 1.0)
    # Lanczos rings slightly outside [0, 1]; clip the premultiplied colour to what the coverage allows.
    out = np.stack([np.clip(c, 0.0, WHITE * coverage) + WHITE * (1.0 - coverage) for c in colour], axis=-1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8), coverage


def front_photo(cutout: Cutout, scale: float, offset: tuple[float, float], resolution: int, margin: int = 8
                ) -> FrontPhoto:
    """The person's box of the photo (grown by ``margin`` pixels, within the photo) at full resolution, with the
    canvas map moved onto the crop: colour fusion samples it instead of the canvas."""
    h, w = cutout.mask.shape
    x0, y0, x1, y1 = cutout.bbox
    x0, y0, x1, y1 = max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)
    return FrontPhoto(rgb=np.ascontiguousarray(cutout.rgb[y0:y1, x0:x1]),
                      mask=np.ascontiguousarray(cutout.mask[y0:y1, x0:x1]), scale=float(scale),
                      offset=(float(offset[0] + scale * x0), float(offset[1] + scale * y0)),
                      resolution=int(resolution))


def frame_cutout(cutout: Cutout, cfg: FrameConfig, ctx: StageContext) -> Framed:
    """Place the person in the R x R canvas (R = ``cfg.resolution``) and cut the face view.

    Returns :class:`Framed`: rgb (R, R, 3) uint8 on white, mask (R, R) bool (coverage > 0.5), face_rgb / face_mask
    the face box of :func:`human3d.cameras.face_box` rendered at (R, R) straight from the photo (not upscaled from
    the canvas, so it keeps the photo's detail), and the scale / offset of the photo -> canvas map.
    """
    r = cfg.resolution
    if r < 16 or cfg.crop_size <= 0 or cfg.crop_size > cameras.CANVAS_SIZE:
        raise UsageError(f"frame resolution {r} / crop size {cfg.crop_size} are out of range "
                         f"(resolution >= 16, 0 < crop size <= {cameras.CANVAS_SIZE})")
    scale, offset = canvas_transform(cutout.bbox, r, cfg.crop_size)
    ctx.progress(0.1, f"scale {scale:.3f}, offset ({offset[0]:.1f}, {offset[1]:.1f})")
    rgb, coverage = render_on_white(cutout.rgb, cutout.mask, scale, offset, r)

    # Face view: canvas box (fx0, fy0)-(fx1, fy1) stretched to R x R, i.e. face = k * (canvas - f0).
    fx0, fy0, fx1, fy1 = cameras.face_box(r)
    k = r / (fx1 - fx0)
    face_offset = (k * (offset[0] - fx0), k * (offset[1] - fy0))
    ctx.progress(0.6, "face crop")
    face_rgb, face_coverage = render_on_white(cutout.rgb, cutout.mask, scale * k, face_offset, r)
    h, w = cutout.mask.shape
    return Framed(
        rgb=rgb,
        mask=coverage > 0.5,
        face_rgb=face_rgb,
        face_mask=face_coverage > 0.5,
        scale=float(scale),
        offset=(float(offset[0]), float(offset[1])),
        photo_size=(int(w), int(h)),
        photo=front_photo(cutout, scale, offset, r),
    )
