"""Reading pictures the project writes, in tests: preview panels, silhouettes, their overlap."""

from __future__ import annotations

import numpy as np
from PIL import Image

from human3d.io.previews import PREVIEW_BACKGROUND, PREVIEW_GAP, caption_height

#: The render panels' background as 8-bit RGB.
PREVIEW_BG = tuple(round(c * 255) for c in PREVIEW_BACKGROUND)


def panels_of(preview: np.ndarray) -> list[np.ndarray]:
    """Split a preview at its gap columns (every pixel the gap colour) into its panels."""
    gap = np.all(preview == np.array(PREVIEW_GAP, np.uint8), axis=(0, 2))
    edges = np.flatnonzero(np.diff(np.r_[0, gap.astype(int), 0]))  # starts and ends of gap runs
    bounds = [0, *edges, preview.shape[1]]
    return [preview[:, a:b] for a, b in zip(bounds[::2], bounds[1::2]) if b > a]


def silhouette(image: np.ndarray, background: tuple[int, int, int], tol: int = 6) -> np.ndarray:
    return np.any(np.abs(image.astype(int) - np.array(background)) > tol, axis=-1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def front_panel(preview: np.ndarray, index: int = 1) -> np.ndarray:
    """Panel ``index`` of a preview (1 = the 0-degree render) without its caption strip."""
    panel = panels_of(preview)[index]
    return panel[caption_height(panel.shape[1]):]


def cropped(mask: np.ndarray, size: tuple[int, int] = (64, 128)) -> np.ndarray:
    """The mask's bounding box resized to ``size`` (width, height): compares shapes whatever their framing."""
    ys, xs = np.nonzero(mask)
    box = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return np.asarray(Image.fromarray(box).resize(size, Image.NEAREST))
