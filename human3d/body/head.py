"""Head orientation for the body fit from mediapipe's face mesh (468 landmarks, the model inside the 0.10.21 wheel; the
detection of :mod:`human3d.multiview.face`, run on a crop around the pose's head).

The face's frame: across (the right eye's outer corner to the left's), up (chin to the top of the forehead, made
normal to across) and forward (out of the face). A head held straight, seen from the front, does not give the
identity: the forehead-to-chin line leans back a little. :data:`NEUTRAL_PITCH_DEG` is that lean, measured on the
body model's own rest head rendered from the front, so a fitted head that matches the photo's face has the photo's
orientation.

Coordinates: canonical axes (x right on the canvas = the subject's left when facing the camera, y up, z toward the
camera); mediapipe's crop coordinates are turned into them with one scale (the crop is square).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from human3d.body.keypoints import MEDIAPIPE_NAMES, Landmarks
from human3d.ops.rotation import orthonormal_frame

#: Face-mesh landmarks of the face's frame: outer eye corners (subject's right, left), forehead top, chin.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER, FOREHEAD, CHIN = 33, 263, 10, 152
#: The face frame of a head held straight, seen from the front: a rotation about x by this angle (degrees; see
#: the module docstring).
NEUTRAL_PITCH_DEG = 9.1
#: Crop side as a multiple of the head's size on the canvas (ear to ear, or eye to nose height when turned).
CROP_HEAD_WIDTHS = 2.6
#: Smallest head (canvas pixels, ear to ear) worth a face mesh.
MIN_HEAD_PX = 12.0


def face_frame(points: np.ndarray) -> np.ndarray | None:
    """(3, 3) columns across, up, forward of (468, 3) face landmarks in canonical axes; None when degenerate."""
    return orthonormal_frame(points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER], points[FOREHEAD] - points[CHIN])


def head_box(landmarks: Landmarks) -> tuple[float, float, float] | None:
    """(u0, v0, side) of a square canvas-pixel crop around the pose's head, None when the head is not seen (its
    nose and eyes below 0.5 visibility) or too small."""
    idx = [MEDIAPIPE_NAMES.index(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    if landmarks.visibility[idx[:3]].min() < 0.5:
        return None
    pts = landmarks.pixels[idx]
    width = max(float(np.linalg.norm(pts[3] - pts[4])), 2.0 * float(np.ptp(pts[:3, 1])) + 1e-6,
                float(np.ptp(pts[:, 0])))
    if width < MIN_HEAD_PX:
        return None
    centre = pts.mean(0)
    side = CROP_HEAD_WIDTHS * width
    return float(centre[0] - side / 2.0), float(centre[1] - side / 2.0), side


def head_rotation(rgb: np.ndarray, landmarks: Landmarks) -> np.ndarray | None:
    """(3, 3) rotation of the head from its straight-ahead, camera-facing orientation to the photo's (canonical
    axes), from the face mesh on the (R, R, 3) uint8 canvas; None when no face is found at the pose's head."""
    from human3d.multiview.face import detect_face_landmarks

    box = head_box(landmarks)
    if box is None:
        return None
    face = detect_face_landmarks(rgb, box)
    if face is None:
        return None
    r = face.resolution
    points = np.stack([2.0 * face.pixels[:, 0] / r, -2.0 * face.pixels[:, 1] / r, face.depth], 1)
    frame = face_frame(points)
    if frame is None:
        return None
    neutral = Rotation.from_euler("x", NEUTRAL_PITCH_DEG, degrees=True).as_matrix()
    return frame @ neutral.T


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle (degrees) of the rotation between two (3, 3) rotations."""
    c = (float(np.trace(a.T @ b)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


#: A face counts as frontal (seen from the front, so the person faces the camera) when its forward direction's
#: component toward the camera is at least this (cos 60 degrees).
FRONTAL = 0.5
#: Keypoint pairs (models.KEYPOINT_NAMES) on the head whose directions the face's rotation sets.
HEAD_PAIRS = (("right_ear", "left_ear"), ("right_eye", "left_eye"), ("left_ear", "nose"), ("right_ear", "nose"),
              ("nose", "left_eye"), ("nose", "right_eye"))


def head_segments(rotation: np.ndarray, rest_keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) keypoint index pairs on the head and (P, 3) their unit target directions: each pair's direction on the
    (K, 3) rest keypoints (a straight head facing the camera) turned by the face's (3, 3) ``rotation``."""
    from human3d.body.models import KEYPOINT_NAMES

    pairs = np.array([[KEYPOINT_NAMES.index(a), KEYPOINT_NAMES.index(b)] for a, b in HEAD_PAIRS], dtype=np.int64)
    d = rest_keypoints[pairs[:, 1]] - rest_keypoints[pairs[:, 0]]
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return pairs, d @ rotation.T
