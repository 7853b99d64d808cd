"""Backend ``mediapipe``: person segmentation with the models inside the mediapipe 0.10.21 wheel (offline).

BlazePose with ``enable_segmentation`` (``pose_landmark_full.tflite``, model_complexity=1, the one complexity
whose model ships in the wheel) gives a mask of one person, and it is much better on full bodies than the selfie
model (IoU 0.91-0.98 vs 0.71-0.95 on the shared RGBA cutouts put on flat and noisy backgrounds). Its detector
finds one person per call, so wide photos are also searched in overlapping square windows to see whether several
people are there; the largest person found is then segmented again in a crop around it, at a better scale.
When pose finds nobody, the selfie segmentation model (made for close-up people) gets a try.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from human3d.config import SegmentConfig
from human3d.context import StageContext
from human3d.errors import MissingBackendError, UsageError
from human3d.segment.base import RawMask
from human3d.types import LoadedImage

#: The models see at most 256 px; working at this long side keeps the crops sharp enough and the arrays small.
WORK_LONG_SIDE = 1280
#: Windows are searched along the long side when it is this much longer than the short one.
WINDOW_ASPECT = 1.25
#: Two detections are the same person when their overlap is this fraction of the smaller one.
SAME_PERSON_OVERLAP = 0.5
#: The selfie model's mask must be this confident on average to count as a person (it answers on anything).
SELFIE_MIN_MEAN_PROBABILITY = 0.75


def import_mediapipe() -> Any:
    """The mediapipe module, or :class:`MissingBackendError` saying how to get it."""
    try:
        import mediapipe as mp

        mp.solutions.pose  # noqa: B018 - the legacy solutions API is what carries the bundled models
    except (ImportError, AttributeError) as err:
        raise MissingBackendError(
            f"the mediapipe segmentation backend needs mediapipe==0.10.21 ({err}); "
            "pip install mediapipe==0.10.21, or use --segmenter rembg / --mask FILE"
        ) from err
    return mp


@dataclass
class Detection:
    """probability: (H, W) float32 at working resolution; area: pixels above the threshold."""

    probability: np.ndarray
    area: int


@contextmanager
def _pose(mp: Any) -> Iterator[Any]:
    # static_image_mode: every call detects afresh (no tracking between our windows).
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                                min_detection_confidence=0.5) as pose:
        yield pose


def pose_in_box(pose: Any, rgb: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, Any] | None:
    """The one person pose finds in ``rgb[box]``: ((H, W) float32 probability over the whole image, zeros outside
    the box; its pose landmarks in box-relative [0, 1] coordinates), or None."""
    x0, y0, x1, y1 = box
    result = pose.process(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    if result.segmentation_mask is None or result.pose_landmarks is None:
        return None
    full = np.zeros(rgb.shape[:2], np.float32)
    full[y0:y1, x0:x1] = np.clip(result.segmentation_mask, 0.0, 1.0)
    return full, result.pose_landmarks


def _pose_mask(pose: Any, rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """(H, W) float32 person probability of the one person pose finds in ``rgb[box]`` (zeros outside), or None."""
    found = pose_in_box(pose, rgb, box)
    return None if found is None else found[0]


def search_windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The whole image, plus overlapping square windows across a wide image (people stand side by side; in a tall
    image the windows would only cut one person into parts)."""
    boxes = [(0, 0, width, height)]
    if width < WINDOW_ASPECT * height:
        return boxes
    stride = max(1, height // 2)
    for x in list(range(0, width - height, stride)) + [width - height]:
        boxes.append((x, 0, x + height, height))
    return boxes


def _expand(box: tuple[int, int, int, int], width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    m = int(round(margin * max(x1 - x0, y1 - y0)))
    return max(0, x0 - m), max(0, y0 - m), min(width, x1 + m), min(height, y1 + m)


def detect_people(pose: Any, rgb: np.ndarray, threshold: float) -> list[Detection]:
    """Distinct people found by pose segmentation in the whole image and its windows, largest first."""
    height, width = rgb.shape[:2]
    people: list[Detection] = []
    for box in search_windows(width, height):
        prob = _pose_mask(pose, rgb, box)
        if prob is None:
            continue
        mask = prob > threshold
        area = int(mask.sum())
        if area == 0:
            continue
        for i, other in enumerate(people):
            overlap = int((mask & (other.probability > threshold)).sum())
            if overlap >= SAME_PERSON_OVERLAP * min(area, other.area):
                if area > other.area:  # the same person seen more completely
                    people[i] = Detection(prob, area)
                break
        else:
            people.append(Detection(prob, area))
    people.sort(key=lambda d: d.area, reverse=True)
    return people


def refine(pose: Any, rgb: np.ndarray, person: Detection, threshold: float) -> Detection:
    """Segment ``person`` again in a crop around it (the person then fills the model's input better)."""
    height, width = rgb.shape[:2]
    ys, xs = np.nonzero(person.probability > threshold)
    box = _expand((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), width, height, 0.15)
    if box == (0, 0, width, height):
        return person
    prob = _pose_mask(pose, rgb, box)
    if prob is None:
        return person
    mask, old = prob > threshold, person.probability > threshold
    iou = (mask & old).sum() / max(int((mask | old).sum()), 1)
    return Detection(prob, int(mask.sum())) if iou > 0.5 else person


def _selfie(mp: Any, rgb: np.ndarray) -> np.ndarray:
    # model_selection=0: the general (square, 256x256) model; the landscape one is for video calls.
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as selfie:
        return np.clip(selfie.process(np.ascontiguousarray(rgb)).segmentation_mask, 0.0, 1.0).astype(np.float32)


def _working_rgb(image: LoadedImage) -> np.ndarray:
    """(h, w, 3) uint8: the photo (a cutout's transparent parts shown on white) at the working resolution."""
    rgb = image.rgb
    if image.alpha is not None:
        a = image.alpha[..., None].astype(np.float32) / 255.0
        rgb = (rgb * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)
    h, w = rgb.shape[:2]
    scale = WORK_LONG_SIDE / max(h, w)
    if scale < 1.0:
        rgb = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                     Image.Resampling.BOX))
    return rgb


def _to_photo(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if prob.shape[::-1] == size:
        return prob.astype(np.float32)
    return np.asarray(Image.fromarray(prob.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR))


def working_scale(image: LoadedImage) -> float:
    """Working pixels per photo pixel (see :func:`_working_rgb`)."""
    return min(1.0, WORK_LONG_SIDE / max(image.size))


def segment(image: LoadedImage, cfg: SegmentConfig, ctx: StageContext) -> RawMask:
    """(H, W) person probability from pose segmentation, else selfie segmentation.

    Several people (:mod:`human3d.segment.people`): ``cfg.person`` (1-based, left to right) or else the one the photo
    most likely is of; a neighbour's pixels are cut from them. Raises UsageError when ``cfg.person`` is beyond the
    people found.
    """
    from human3d.segment.people import describe, find_people, intended, own_probability

    mp = import_mediapipe()
    rgb = _working_rgb(image)
    with _pose(mp) as pose:
        ctx.progress(0.2, "mediapipe pose segmentation")
        people = find_people(pose, rgb, cfg.threshold)
        if people:
            chosen = pick_person(people, cfg.person, intended)
            ctx.progress(0.6, f"{len(people)} {'person' if len(people) == 1 else 'people'} found; refining")
            prob = own_probability(people, chosen)
            best = refine(pose, rgb, Detection(prob, int((prob > cfg.threshold).sum())), cfg.threshold)
            if len(people) > 1:  # the refined crop may see the neighbour's limb again: cut it once more
                best = Detection(np.where(own_probability(people, chosen) > 0, best.probability, 0.0)
                                 .astype(np.float32), best.area)
            prob, snapped = _snapped(rgb, best.probability, cfg)
            return RawMask(_to_photo(prob, image.size), "mediapipe", people=len(people),
                           detail="mediapipe pose segmentation" + snapped, chosen=chosen + 1,
                           candidates=describe(people, working_scale(image)))
    if cfg.person is not None and cfg.person != 1:
        raise UsageError(f"--person {cfg.person}: no person was found by pose detection in {image.source or 'the photo'}")
    ctx.progress(0.6, "pose found nobody; trying mediapipe selfie segmentation")
    prob = _selfie(mp, rgb)
    mask = prob > cfg.threshold
    if mask.any() and float(prob[mask].mean()) < SELFIE_MIN_MEAN_PROBABILITY:
        prob = np.zeros_like(prob)  # a hesitant selfie mask on a photo where pose saw nobody is not a person
    prob, snapped = _snapped(rgb, prob, cfg)
    return RawMask(_to_photo(prob, image.size), "mediapipe", people=0,
                   detail="mediapipe: pose found nobody, selfie segmentation used" + snapped)


def _snapped(rgb: np.ndarray, prob: np.ndarray, cfg: SegmentConfig) -> tuple[np.ndarray, str]:
    """The working-resolution probability with its unsure zone decided by the photo's edges when
    ``cfg.snap_edges`` (:mod:`human3d.segment.edges`: snapped pixels become 0 or 1, the rest keeps its value), and
    a note for the progress line ("" when nothing changed)."""
    if not cfg.snap_edges:
        return prob, ""
    from human3d.segment.edges import snap_to_edges

    mask, added, removed = snap_to_edges(rgb, prob, cfg.threshold)
    if not added and not removed:
        return prob, ""
    prob = np.where(mask != (prob > cfg.threshold), mask.astype(np.float32), prob).astype(np.float32)
    return prob, f"; edges snapped to the photo (+{added} / -{removed} px)"


def pick_person(people: list, person: int | None, intended: Any) -> int:
    """0-based index: the 1-based ``person`` (left to right) when given, else ``intended(people)``."""
    if person is None:
        return intended(people)
    if not 1 <= person <= len(people):
        raise UsageError(f"--person {person}: the photo shows {len(people)} "
                         f"{'person' if len(people) == 1 else 'people'}; choose 1 to {len(people)} "
                         "(numbered left to right; see human3d people PHOTO)")
    return person - 1
