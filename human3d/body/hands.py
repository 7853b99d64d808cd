"""Hand landmarks for the body fit: mediapipe Hands (0.10.21, ``model_complexity=1``: its palm detector and hand
landmark models are inside the wheel, nothing is downloaded) run on a crop around each wrist the pose found.

The pose model's own hand points (index, pinky, thumb) are coarse; the hand model's 21 landmarks are not. Their
knuckles replace the pose's hand points in the fit (Anny's keypoints there are the index and pinky knuckles and the
thumb's second joint, the same points), and their 3D directions from the wrist set the wrist's orientation in
depth; their finger landmarks set the fingers (:mod:`human3d.body.fingers`).

Coordinates as in :mod:`human3d.body.keypoints`: canvas pixels (u right, v down), canonical axes for 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from human3d.body.keypoints import MEDIAPIPE_NAMES, Landmarks
from human3d.errors import MissingBackendError

#: mediapipe Hands' landmarks used here: wrist, thumb IP, index MCP, pinky MCP (of its 21).
HAND_WRIST, HAND_THUMB_IP, HAND_INDEX_MCP, HAND_PINKY_MCP = 0, 3, 5, 17
#: The body keypoints (models.KEYPOINT_NAMES) a hand sets: name suffix -> hand landmark index.
HAND_KEYPOINTS = {"index": HAND_INDEX_MCP, "pinky": HAND_PINKY_MCP, "thumb": HAND_THUMB_IP}
#: Crop side = this x the wrist-to-hand-points span (at least a fraction of the forearm), and the hand model's input.
CROP_FACTOR = 3.0
CROP_PIXELS = 256


@dataclass
class Hand:
    """One hand on the canvas: side ("left"/"right": the subject's), pixels (21, 2) canvas pixel coordinates,
    world (21, 3) metres in canonical axes (as the pose's world landmarks) about the hand's centre, score in
    [0, 1] (the hand model's confidence)."""

    side: str
    pixels: np.ndarray
    world: np.ndarray
    score: float


def _crop_box(pose: Landmarks, side: str) -> tuple[float, float, float] | None:
    """(centre u, centre v, side length) of the square crop around ``side``'s hand, None when its wrist is unseen."""
    idx = {n: MEDIAPIPE_NAMES.index(f"{side}_{n}") for n in ("wrist", "elbow", "index", "pinky", "thumb")}
    if pose.visibility[idx["wrist"]] < 0.5:
        return None
    wrist = pose.pixels[idx["wrist"]]
    hand = pose.pixels[[idx["index"], idx["pinky"], idx["thumb"]]]
    centre = (wrist + hand.mean(0)) / 2
    span = float(np.linalg.norm(hand - wrist, axis=1).max())
    forearm = float(np.linalg.norm(pose.pixels[idx["elbow"]] - wrist))
    size = max(CROP_FACTOR * span, 0.6 * forearm, 24.0)
    return float(centre[0]), float(centre[1]), size


def detect_hands(rgb: np.ndarray, pose: Landmarks) -> dict[str, Hand]:
    """The subject's hands on the (R, R, 3) uint8 canvas, found near the wrists of ``pose``; a side is absent when
    its wrist is unseen or no hand is found whose wrist is the pose's (within a third of the crop)."""
    try:
        from mediapipe.python.solutions import hands as mp_hands
    except ImportError as err:
        raise MissingBackendError("hand landmarks need mediapipe: pip install mediapipe==0.10.21") from err

    found: dict[str, Hand] = {}
    with mp_hands.Hands(static_image_mode=True, max_num_hands=1, model_complexity=1,
                        min_detection_confidence=0.5) as model:
        for side in ("left", "right"):
            box = _crop_box(pose, side)
            hand = None if box is None else _hand_in_crop(model, rgb, pose, side, box)
            if hand is not None:
                found[side] = hand
    return found


def _hand_in_crop(model: Any, rgb: np.ndarray, pose: Landmarks, side: str, box: tuple[float, float, float]
                  ) -> Hand | None:
    """The hand mediapipe Hands finds in the square ``box`` (centre u, v, side) of the canvas, when its wrist is
    ``side``'s wrist of ``pose`` (within a third of the crop)."""
    from PIL import Image

    cu, cv, size = box
    x0, y0 = cu - size / 2, cv - size / 2
    crop = Image.fromarray(rgb).crop((round(x0), round(y0), round(x0 + size), round(y0 + size)))
    crop = crop.resize((CROP_PIXELS, CROP_PIXELS), Image.BILINEAR)
    result = model.process(np.ascontiguousarray(np.asarray(crop)))
    if not result.multi_hand_landmarks:
        return None
    k = round(size) / CROP_PIXELS
    lm = result.multi_hand_landmarks[0].landmark
    px = np.array([[round(x0) + p.x * CROP_PIXELS * k, round(y0) + p.y * CROP_PIXELS * k] for p in lm])
    wrist = pose.pixels[MEDIAPIPE_NAMES.index(f"{side}_wrist")]
    if np.linalg.norm(px[HAND_WRIST] - wrist) > size / 3:
        return None  # another hand in the crop (the other one, or a neighbour's)
    wl = result.multi_hand_world_landmarks[0].landmark
    # mediapipe: x right, y down, z away from the camera -> canonical x, -y, -z (as the pose's world)
    world = np.array([[p.x, -p.y, -p.z] for p in wl], dtype=np.float64)
    score = float(result.multi_handedness[0].classification[0].score)
    return Hand(side=side, pixels=px, world=world, score=score)
