"""2D/3D body landmarks from mediapipe Pose (0.10.21, ``model_complexity=1``: the only model inside the wheel; 0 and 2
would try to download) on the framed canvas, and their mapping onto the keypoints every body model regresses.

Coordinates: ``pixels`` are continuous canvas coordinates with pixel edges at integers (pixel (u, v) spans
[u, u+1) x [v, v+1)), the convention of ``OrthoCamera.project``; ``canonical`` is the front view's x, y
(x = 2u/R - 1, y = 1 - 2v/R); ``world`` is mediapipe's metric 3D estimate turned into canonical axes
(x = subject's left, y up, z toward the camera), origin between the hips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from human3d.body.models import KEYPOINT_NAMES
from human3d.errors import BadInputError, MissingBackendError

#: mediapipe Pose's 33 landmarks, in its order.
MEDIAPIPE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)

#: For each of the body models' keypoints (models.KEYPOINT_NAMES), the mediapipe landmark it corresponds to.
MEDIAPIPE_TO_KEYPOINT: np.ndarray = np.array([MEDIAPIPE_NAMES.index(n) for n in KEYPOINT_NAMES], dtype=np.int64)

#: How much each keypoint is trusted in the fit, relative to the torso and limbs (1): mediapipe's face and hand
#: points are less consistent with the body models' definitions of them; hips differ most between conventions.
KEYPOINT_WEIGHTS: np.ndarray = np.array(
    [{"nose": 1.0, "left_eye": 0.7, "right_eye": 0.7, "left_ear": 0.7, "right_ear": 0.7,
      "left_hip": 0.4, "right_hip": 0.4, "left_index": 0.3, "right_index": 0.3, "left_pinky": 0.3,
      "right_pinky": 0.3, "left_thumb": 0.2, "right_thumb": 0.2}.get(n, 1.0) for n in KEYPOINT_NAMES],
    dtype=np.float32,
)


@dataclass
class Landmarks:
    """mediapipe's 33 landmarks on an R x R canvas.

    pixels: (33, 2) canvas pixel coordinates (u right, v down); canonical: (33, 2) front-view x, y;
    visibility: (33,) in [0, 1]; world: (33, 3) metres, canonical axes, origin between the hips.
    """

    pixels: np.ndarray
    canonical: np.ndarray
    visibility: np.ndarray
    world: np.ndarray
    resolution: int

    def for_model(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The landmarks in the order of ``models.KEYPOINT_NAMES``: ((K, 2) canonical x, y, (K,) confidence,
        (K, 3) world)."""
        i = MEDIAPIPE_TO_KEYPOINT
        return self.canonical[i], self.visibility[i], self.world[i]


def pixels_to_canonical(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """(..., 2) continuous canvas pixels -> (..., 2) canonical x, y."""
    p = np.asarray(pixels, dtype=np.float64)
    return np.stack([2.0 * p[..., 0] / resolution - 1.0, 1.0 - 2.0 * p[..., 1] / resolution], -1)


def canonical_to_pixels(xy: np.ndarray, resolution: int) -> np.ndarray:
    """Inverse of :func:`pixels_to_canonical`."""
    p = np.asarray(xy, dtype=np.float64)
    return np.stack([(p[..., 0] + 1.0) * resolution / 2.0, (1.0 - p[..., 1]) * resolution / 2.0], -1)


def detect_landmarks(rgb: np.ndarray, min_detection_confidence: float = 0.5) -> Landmarks | None:
    """Run mediapipe Pose on an (R, R, 3) uint8 canvas (white background); None when it finds no person.

    The canvas must be square (the framed canvas): mediapipe normalises x by the width and y by the height.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInputError(f"landmark detection needs an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    if h != w:
        raise BadInputError(f"landmark detection runs on the square framed canvas, got {w}x{h}")
    try:
        from mediapipe.python.solutions import pose as mp_pose
    except ImportError as err:
        raise MissingBackendError("body landmarks need mediapipe: pip install mediapipe==0.10.21") from err
    # static_image_mode: every call is an unrelated image (no tracking between calls).
    with mp_pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False,
                      min_detection_confidence=min_detection_confidence) as pose:
        result = pose.process(np.ascontiguousarray(rgb))
    if result.pose_landmarks is None:
        return None
    lm = result.pose_landmarks.landmark
    norm = np.array([[p.x, p.y] for p in lm], dtype=np.float64)
    visibility = np.array([p.visibility for p in lm], dtype=np.float32)
    pixels = norm * np.array([w, h], dtype=np.float64)
    if result.pose_world_landmarks is not None:
        wl = result.pose_world_landmarks.landmark
        # mediapipe: x right, y down, z away from the camera (smaller is closer) -> canonical x, -y, -z.
        world = np.array([[p.x, -p.y, -p.z] for p in wl], dtype=np.float64)
    else:
        world = np.full((33, 3), np.nan)
    return Landmarks(pixels=pixels, canonical=pixels_to_canonical(pixels, w), visibility=visibility, world=world,
                     resolution=w)


#: Left/right partners among the model keypoints (models.KEYPOINT_NAMES): index i <-> MIRROR[i].
MIRROR: np.ndarray = np.array([KEYPOINT_NAMES.index(n.replace("left_", "@").replace("right_", "left_")
                                                    .replace("@", "right_")) for n in KEYPOINT_NAMES], dtype=np.int64)


def facing_camera(world: np.ndarray) -> float:
    """How much (K, 3) model-order 3D landmarks (canonical axes) face the camera: the z component of the torso's
    unit forward direction (+1 facing it, -1 facing away)."""
    k = {n: world[i] for i, n in enumerate(KEYPOINT_NAMES)}
    left = (k["left_hip"] - k["right_hip"]) + (k["left_shoulder"] - k["right_shoulder"])
    up = (k["left_shoulder"] + k["right_shoulder"] - k["left_hip"] - k["right_hip"]) / 2
    fwd = np.cross(left, up)
    n = float(np.linalg.norm(fwd))
    return float(fwd[2] / n) if n > 1e-9 else 0.0


def turned_around(xy: np.ndarray, conf: np.ndarray, world: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The other reading of the same picture: the person turned around. Left and right labels swap and the 3D
    landmarks mirror in depth, so every 2D position stays where it was. (K, 2), (K,), (K, 3) in model order."""
    w = world[MIRROR].copy()
    w[:, 2] *= -1.0
    return xy[MIRROR].copy(), conf[MIRROR].copy(), w


def face_visible(rgb: np.ndarray, pixels: np.ndarray, visibility: np.ndarray) -> bool | None:
    """Whether mediapipe's face detector (short range, inside the wheel) finds a face at the head of the person whose
    (33, 2) landmark pixels are given; None when the head is not seen well enough to tell."""
    try:
        from mediapipe.python.solutions import face_detection
    except ImportError as err:
        raise MissingBackendError("body landmarks need mediapipe: pip install mediapipe==0.10.21") from err
    head = [MEDIAPIPE_NAMES.index(n) for n in ("nose", "left_ear", "right_ear", "left_eye", "right_eye")]
    sh = [MEDIAPIPE_NAMES.index(n) for n in ("left_shoulder", "right_shoulder")]
    if visibility[sh].min() < 0.5:
        return None
    centre = pixels[head].mean(0)
    size = 1.1 * float(np.linalg.norm(pixels[sh[0]] - pixels[sh[1]])) + 1e-6
    h, w = rgb.shape[:2]
    x0, y0 = int(max(0, centre[0] - size)), int(max(0, centre[1] - size))
    x1, y1 = int(min(w, centre[0] + size)), int(min(h, centre[1] + size))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    from PIL import Image

    crop = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1])).resize((192, 192), Image.BILINEAR))
    with face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as det:
        result = det.process(np.ascontiguousarray(crop))
    return bool(result.detections)
