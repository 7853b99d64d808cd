"""mediapipe landmarks on the canvas: coordinate conventions, the mapping to model keypoints, detection on a
rendered body with known keypoints and on real photos (RGBA cutouts put on white and framed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from human3d.body.keypoints import (
    MEDIAPIPE_NAMES,
    MEDIAPIPE_TO_KEYPOINT,
    canonical_to_pixels,
    detect_landmarks,
    pixels_to_canonical,
)
from human3d.body.models import KEYPOINT_NAMES
from human3d.body.synthetic import make_body, random_pose, shaded_image
from human3d.cameras import OrthoCamera
from human3d.errors import BadInputError
from tests.body.conftest import frame_rgba
from tests.conftest import shared_file

BODY = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
        "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]


def test_pixel_conventions_match_front_camera():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (20, 3))
    uv, _ = OrthoCamera("front", 0.0, 300).project(pts)
    np.testing.assert_allclose(canonical_to_pixels(pts[:, :2], 300), uv, atol=1e-9)
    np.testing.assert_allclose(pixels_to_canonical(uv, 300), pts[:, :2], atol=1e-9)


def test_mapping_names():
    assert len(MEDIAPIPE_NAMES) == 33
    for k, i in zip(KEYPOINT_NAMES, MEDIAPIPE_TO_KEYPOINT):
        assert MEDIAPIPE_NAMES[i] == k


def test_no_person_gives_none_and_bad_images_raise():
    assert detect_landmarks(np.full((256, 256, 3), 255, np.uint8)) is None
    with pytest.raises(BadInputError):
        detect_landmarks(np.zeros((64, 80, 3), np.uint8))
    with pytest.raises(BadInputError):
        detect_landmarks(np.zeros((64, 64), np.uint8))


@pytest.mark.parametrize("name, seed", [("standing", 0), ("lunge", 2)])
def test_landmarks_on_rendered_textured_body(anny_model, name, seed):
    """mediapipe finds a shaded, clothed render of a posed body; its landmarks land near the model's keypoints."""
    r = 512
    body = make_body(anny_model, random_pose(name, seed), resolution=r)
    lm = detect_landmarks(shaded_image(body, anny_model))
    assert lm is not None
    xy, conf, world = lm.for_model()
    idx = [KEYPOINT_NAMES.index(n) for n in BODY]
    err = np.linalg.norm(canonical_to_pixels(xy[idx], r) - canonical_to_pixels(body.keypoints[idx, :2], r), axis=1)
    assert np.median(err) < 0.02 * r and err.max() < 0.05 * r
    assert (conf[idx] > 0.5).all()
    # world landmarks: metric, canonical axes (head above hips, left on +X)
    kp = dict(zip(KEYPOINT_NAMES, world))
    assert kp["nose"][1] > kp["left_hip"][1] + 0.3
    assert kp["left_shoulder"][0] > kp["right_shoulder"][0]


@pytest.mark.parametrize("photo", ["pexels-barbara-olsen-7869640.png", "pexels-marta-wave-6437749.png"])
def test_landmarks_on_photos(photo):
    path = shared_file("photos", photo)
    rgba = np.asarray(Image.open(path).convert("RGBA"))
    framed = frame_rgba(rgba, 512)
    lm = detect_landmarks(framed.rgb)
    assert lm is not None
    xy, conf, _ = lm.for_model()
    idx = [KEYPOINT_NAMES.index(n) for n in BODY]
    assert (conf[idx] > 0.5).mean() >= 0.8
    # the visible landmarks lie on the person (within a few pixels of the mask)
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(~framed.mask)
    px = np.clip(canonical_to_pixels(xy[idx], 512).astype(int), 0, 511)
    seen = conf[idx] > 0.5
    assert (dist[px[seen, 1], px[seen, 0]] < 0.03 * 512).all()
