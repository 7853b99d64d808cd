"""Generated test figures: a person-like silhouette drawn with PIL (head, torso, arms, legs)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def draw_figure(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W) bool silhouette of a standing figure with arms held away from the body, filling ``box``
    (x0, y0, x1, y1) of an image of ``size`` (width, height)."""
    w, h = size
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)

    def px(fx: float, fy: float) -> tuple[float, float]:
        return x0 + fx * bw, y0 + fy * bh

    d.ellipse([px(0.40, 0.0), px(0.60, 0.13)], fill=255)  # head
    d.rectangle([px(0.47, 0.12), px(0.53, 0.16)], fill=255)  # neck
    d.rectangle([px(0.32, 0.15), px(0.68, 0.52)], fill=255)  # torso
    d.polygon([px(0.32, 0.16), px(0.0, 0.50), px(0.06, 0.52), px(0.34, 0.24)], fill=255)  # left arm
    d.polygon([px(0.68, 0.16), px(1.0, 0.50), px(0.94, 0.52), px(0.66, 0.24)], fill=255)  # right arm
    d.polygon([px(0.33, 0.50), px(0.49, 0.50), px(0.42, 1.0), px(0.30, 1.0)], fill=255)  # left leg
    d.polygon([px(0.51, 0.50), px(0.67, 0.50), px(0.70, 1.0), px(0.58, 1.0)], fill=255)  # right leg
    mask = np.asarray(im) > 127
    # Clip the drawing to the box: PIL's inclusive rectangle ends may reach one pixel past it.
    mask[:, :x0] = False
    mask[:, x1:] = False
    mask[:y0] = False
    mask[y1:] = False
    return mask


def figure_rgba(size: tuple[int, int], boxes: list[tuple[int, int, int, int]], seed: int = 0) -> np.ndarray:
    """(H, W, 4) uint8: noisy colours, alpha 255 on the figures drawn in ``boxes`` and 0 elsewhere."""
    w, h = size
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    alpha = np.zeros((h, w), bool)
    for box in boxes:
        alpha |= draw_figure(size, box)
    return np.dstack([rgb, alpha.astype(np.uint8) * 255])
