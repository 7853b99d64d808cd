"""Every person in a photo, numbered left to right, and the one a user most likely means.

mediapipe's pose model finds one person per call. :func:`find_people` therefore searches the whole photo and its
overlapping windows (:func:`human3d.segment.mediapipe.search_windows`), then hides everyone found so far (painted
grey) and searches again, until a pass finds nobody new. Each person keeps the probability map of their best view
and their landmarks' visibility.

:func:`intended` scores candidates by how complete (landmarks seen), central and large they are: the subject of a
photo is rarely a cut-off bystander at its edge, even a near one. :func:`own_probability` cuts from the chosen
person's map the pixels another person claims more strongly (a neighbour's arm across them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

#: At most this many people are looked for (each costs a few pose passes).
MAX_PEOPLE = 8
#: Two detections are the same person when their overlap is this fraction of the smaller one.
SAME_PERSON_OVERLAP = 0.5
#: A landmark counts as seen at this visibility.
SEEN = 0.5
#: Grey that hides a found person from the next pass (mediapipe sees nobody in a flat patch).
HIDE_GREY = 127


@dataclass
class Person:
    """One person found in the working image.

    box: (x0, y0, x1, y1) half-open, working pixels; area: fraction of the image covered; completeness: fraction of
    the 33 landmarks seen; centrality: 1 at the image centre, 0 at a corner; probability: (h, w) float32 map.
    """

    box: tuple[int, int, int, int]
    area: float
    completeness: float
    centrality: float
    probability: np.ndarray = field(repr=False)

    @property
    def score(self) -> float:
        """How likely this is the person the photo is of (larger is likelier)."""
        return float(np.sqrt(self.area) * (0.25 + self.completeness) * (0.3 + self.centrality))


def _detect(pose: Any, rgb: np.ndarray, box: tuple[int, int, int, int], threshold: float
            ) -> tuple[np.ndarray, float] | None:
    """(full-size probability map, completeness) of the one person pose finds in ``rgb[box]``, or None."""
    from human3d.segment.mediapipe import pose_in_box

    x0, y0, x1, y1 = box
    found = pose_in_box(pose, rgb, box)
    if found is None or not (found[0] > threshold).any():
        return None
    prob, lm = found[0], found[1].landmark
    seen = [p.visibility >= SEEN and 0.0 <= p.x <= 1.0 and 0.0 <= p.y <= 1.0 for p in lm]
    # the mask may spill onto a neighbour in similar clothes: keep it near this person's own landmarks
    xy = np.array([[x0 + p.x * (x1 - x0), y0 + p.y * (y1 - y0)] for p in lm])
    lo, hi = xy.min(0), xy.max(0)
    size = float(hi[1] - lo[1])
    keep = np.zeros_like(prob, dtype=bool)
    kx0, kx1 = int(max(0, lo[0] - 0.15 * size)), int(min(rgb.shape[1], hi[0] + 0.15 * size + 1))
    ky0, ky1 = int(max(0, lo[1] - 0.2 * size)), int(min(rgb.shape[0], hi[1] + 0.1 * size + 1))
    keep[ky0:ky1, kx0:kx1] = True
    prob = np.where(keep, prob, 0.0).astype(np.float32)
    if not (prob > threshold).any():
        return None
    return prob, float(np.mean(seen))


def _person(prob: np.ndarray, completeness: float, threshold: float) -> Person:
    h, w = prob.shape
    mask = prob > threshold
    # the largest connected part is the person (pose masks leak small blobs)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = labels == 1 + int(np.argmax(sizes))
        prob = np.where(mask | (labels == 0), prob, 0.0).astype(np.float32)
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    cx, cy = (box[0] + box[2]) / 2 / w - 0.5, (box[1] + box[3]) / 2 / h - 0.5
    return Person(box=box, area=float(mask.mean()), completeness=completeness,
                  centrality=float(max(0.0, 1.0 - np.hypot(cx, cy) / np.hypot(0.5, 0.5))), probability=prob)


def find_people(pose: Any, rgb: np.ndarray, threshold: float, max_people: int = MAX_PEOPLE) -> list[Person]:
    """Everyone pose finds in ``rgb`` (h, w, 3) uint8, numbered left to right (by box centre)."""
    from human3d.segment.mediapipe import search_windows

    height, width = rgb.shape[:2]
    people: list[Person] = []
    work = rgb.copy()
    for _ in range(max_people):
        found_new = False
        for box in search_windows(width, height):
            got = _detect(pose, work, box, threshold)
            if got is None:
                continue
            cand = _person(got[0], got[1], threshold)
            mask = cand.probability > threshold
            area = int(mask.sum())
            for i, other in enumerate(people):
                other_mask = other.probability > threshold
                if (mask & other_mask).sum() >= SAME_PERSON_OVERLAP * min(area, int(other_mask.sum())):
                    if cand.area > other.area and cand.completeness >= other.completeness:
                        people[i] = cand  # the same person seen more completely
                    break
            else:
                if len(people) < max_people:
                    people.append(cand)
                    found_new = True
        if not found_new or len(people) >= max_people:
            break
        hide = np.zeros((height, width), bool)
        for p in people:
            hide |= p.probability > 0.2
        work = rgb.copy()
        work[ndimage.binary_dilation(hide, iterations=max(2, width // 200))] = HIDE_GREY
    people.sort(key=lambda p: p.box[0] + p.box[2])
    return people


def intended(people: list[Person]) -> int:
    """Index (0-based) of the person the photo most likely is of: see :attr:`Person.score`."""
    return int(np.argmax([p.score for p in people]))


def own_probability(people: list[Person], index: int) -> np.ndarray:
    """(h, w) the chosen person's probability where no other person claims the pixel more strongly (0 there)."""
    prob = people[index].probability
    others = [p.probability for i, p in enumerate(people) if i != index]
    if not others:
        return prob
    return np.where(prob >= np.max(others, axis=0), prob, 0.0).astype(np.float32)


def describe(people: list[Person], scale: float = 1.0) -> list[str]:
    """One line per person: number, box in photo pixels (working pixels / ``scale``), size and completeness."""
    out = []
    for i, p in enumerate(people):
        x0, y0, x1, y1 = (int(round(c / scale)) for c in p.box)
        out.append(f"{i + 1}: box ({x0}, {y0})-({x1}, {y1}), {p.area:.1%} of the photo, "
                   f"{p.completeness:.0%} of the landmarks seen")
    return out
