"""The person mask snapped to the photo's edges where the segmenter was unsure.

mediapipe's person probability comes from a low-resolution network: upsampled to the photo, its outline wanders a
few pixels off the person (strips of background along a leg) and it dips where a garment's colour is unusual (a
dark hem between the legs read as a gap, so a skirt became shorts). Where the probability is confident and well
inside the outline, it is kept; in a band along the outline and wherever it hesitated, the photo's colours decide:
GrabCut (Rother et al., "GrabCut: interactive foreground extraction using iterated graph cuts", SIGGRAPH 2004;
OpenCV's implementation) with colour models of the confident person and background, and a graph cut that follows
the image's edges. Pixels it may change are limited to that zone, so the result never strays further from the
segmenter's mask than the band. It runs where the segmenter works (its working resolution), before the
probability is brought to the photo's size.

Colours decide well only where the background is plain: in front of a busy street, a dark jacket beside a dark
doorway or a neighbour, GrabCut's colour models overlap and it takes the doorway in and a hand out (measured on the
shared group photo). So the refinement runs only when the background around the person is plain (its colours'
spread, a ring of the band's width just outside the zone, at most PLAIN_SPREAD levels), and a refinement that would
change a large share of the person is not used either.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Probability above which (and more than the band inside the outline) a pixel is surely the person.
SURE_PERSON = 0.95
#: Probability below which (and more than the band outside the outline) a pixel is surely background.
SURE_BACKGROUND = 0.05
#: Width of the band along the outline that the colours decide, as a fraction of the person's height.
BAND_FRACTION = 0.01
#: Largest spread (mean absolute deviation from the median, 0..255 levels, over the colour channels) of the background
#: ring around the person for which the colours are trusted to decide: a studio backdrop or a plain wall is a few
#: levels, a street or a room tens.
PLAIN_SPREAD = 12.0
#: A refinement that adds or removes more than this fraction of the person's area is not used.
MAX_CHANGE = 0.15
ITERATIONS = 3


def snap_to_edges(rgb: np.ndarray, probability: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, int, int]:
    """The person mask (H, W) bool from ``probability`` (H, W) in [0, 1] above ``threshold``, with the unsure zone
    decided by the colours of ``rgb`` (H, W, 3) uint8 (module docstring); also how many pixels it added and
    removed. The plain thresholded mask (0, 0) when there is nothing to refine or the refinement is not used."""
    mask = probability > threshold
    if not mask.any() or mask.all():
        return mask, 0, 0
    import cv2  # opencv-contrib-python, which mediapipe needs

    rows = np.flatnonzero(mask.any(1))
    band = max(2, int(round(BAND_FRACTION * (rows[-1] - rows[0] + 1))))
    cross = ndi.generate_binary_structure(2, 1)
    sure_person = (probability >= SURE_PERSON) & ndi.binary_erosion(mask, cross, iterations=band)
    maybe = (probability > SURE_BACKGROUND) | ndi.binary_dilation(mask, cross, iterations=band)
    if not sure_person.any() or maybe.all():
        return mask, 0, 0
    if background_spread(rgb, maybe, band) > PLAIN_SPREAD:
        return mask, 0, 0
    labels = np.full(mask.shape, cv2.GC_BGD, np.uint8)
    labels[maybe] = cv2.GC_PR_BGD
    labels[mask] = cv2.GC_PR_FGD
    labels[sure_person] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), labels, None, bgd, fgd, ITERATIONS,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # too few pixels of one kind for its colour model (a tiny photo): nothing to learn from
        return mask, 0, 0
    refined = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    added, removed = int((refined & ~mask).sum()), int((mask & ~refined).sum())
    if added + removed > MAX_CHANGE * mask.sum():
        return mask, 0, 0
    return refined, added, removed


def background_spread(rgb: np.ndarray, zone: np.ndarray, band: int) -> float:
    """Mean absolute deviation from the median colour (levels, averaged over the channels) of the background ring
    ``band`` pixels wide just outside ``zone`` (H, W bool) in ``rgb`` (H, W, 3); infinite when there is no ring (the
    person fills the photo)."""
    ring = ndi.binary_dilation(zone, ndi.generate_binary_structure(2, 1), iterations=band) & ~zone
    if not ring.any():
        return float("inf")
    colours = rgb[ring].astype(np.float64)
    return float(np.abs(colours - np.median(colours, axis=0)).mean())
