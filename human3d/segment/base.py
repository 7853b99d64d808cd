"""What a segmentation backend returns before the shared clean-up in :mod:`human3d.segment.person`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RawMask:
    """A backend's answer for one photo.

    probability: (H, W) float32 in [0, 1], photo pixels; the person is where it exceeds ``SegmentConfig.threshold``.
    people: how many separate people the backend saw (the mask holds the largest); 0 when it cannot tell.
    detail: how the mask was made, for the progress line (e.g. "pose segmentation, 3 windows").
    chosen: which of several people the mask holds (1-based, left to right), 0 when not told;
    candidates: one line describing each person found, left to right (see ``human3d people``).
    """

    probability: np.ndarray
    backend: str
    people: int = 0
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    chosen: int = 0
    candidates: list[str] = field(default_factory=list)
