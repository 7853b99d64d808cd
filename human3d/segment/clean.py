"""Mask clean-up shared by every backend: one person component, small holes filled, specks gone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass
class CleanedMask:
    """mask: (H, W) bool, the kept person; areas: pixel areas of the separate blobs found, largest first;
    others: how many of the other blobs are big enough to be another person."""

    mask: np.ndarray
    areas: list[int]
    others: int


def clean_mask(
    mask: np.ndarray,
    *,
    max_hole_fraction: float = 0.01,
    join_fraction: float = 0.004,
    other_person_fraction: float = 0.2,
) -> CleanedMask:
    """Keep the largest blob of ``mask`` (H, W) bool and fill its small holes.

    Blobs closer than ``join_fraction`` of the image diagonal count as one (a hand or foot the segmenter cut off
    by a thin gap stays with the body). Holes smaller than ``max_hole_fraction`` of the person's area are filled;
    larger ones (the gap between an arm on the hip and the body) are real background and kept. Other blobs at
    least ``other_person_fraction`` of the largest are counted in ``others`` (likely more people).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return CleanedMask(mask.copy(), [], 0)
    h, w = mask.shape
    radius = max(1, int(round(join_fraction * float(np.hypot(h, w)))))
    # Label on a dilated mask so near pieces share a label; the kept pixels are still the original ones.
    joined = ndi.binary_dilation(mask, structure=ndi.generate_binary_structure(2, 1), iterations=radius)
    labels, n = ndi.label(joined, structure=np.ones((3, 3), bool))
    areas = np.bincount(labels[mask], minlength=n + 1)  # original pixels per joined blob
    areas[0] = 0
    order = np.argsort(areas)[::-1]
    order = order[areas[order] > 0]
    keep = mask & (labels == order[0])
    largest = int(areas[order[0]])
    others = int(sum(1 for lab in order[1:] if areas[lab] >= other_person_fraction * largest))
    keep = fill_small_holes(keep, max_hole_fraction * largest)
    return CleanedMask(keep, [int(areas[lab]) for lab in order], others)


def fill_small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """(H, W) bool with every enclosed background region of at most ``max_area`` pixels set to True."""
    holes = ndi.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    labels, n = ndi.label(holes)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    small = sizes <= max_area
    small[0] = False
    return mask | small[labels]


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) half-open pixel bounds of a non-empty (H, W) bool mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1
