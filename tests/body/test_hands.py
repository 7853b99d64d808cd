"""Hand landmarks (mediapipe Hands inside the wheel) near the pose's wrists, and their knuckles in the fit's
observations in place of the pose's coarse hand points."""

from __future__ import annotations

import numpy as np
import pytest

from human3d.body.fit import KP, _segment_targets, with_hands
from human3d.body.hands import HAND_INDEX_MCP, HAND_PINKY_MCP, Hand, detect_hands
from human3d.body.keypoints import MEDIAPIPE_NAMES, canonical_to_pixels, detect_landmarks
from human3d.body.models import KEYPOINT_NAMES
from tests.body.conftest import frame_rgba

pytest.importorskip("mediapipe")


def test_both_hands_of_the_waving_child_are_found_at_her_wrists():
    from PIL import Image

    from tests.conftest import shared_file

    rgba = np.asarray(Image.open(shared_file("photos", "pexels-marta-wave-6437749.png")).convert("RGBA"))
    framed = frame_rgba(rgba, 512)
    pose = detect_landmarks(framed.rgb)
    hands = detect_hands(framed.rgb, pose)
    assert set(hands) == {"left", "right"}
    for side, hand in hands.items():
        wrist = pose.pixels[MEDIAPIPE_NAMES.index(f"{side}_wrist")]
        assert np.linalg.norm(hand.pixels[0] - wrist) < 12.0 and hand.score > 0.8
        assert framed.mask[int(hand.pixels[HAND_INDEX_MCP, 1]), int(hand.pixels[HAND_INDEX_MCP, 0])]
        # an open hand seen from the front: index and pinky knuckles apart, the fingertips above the wrist
        assert np.linalg.norm(hand.pixels[HAND_INDEX_MCP] - hand.pixels[HAND_PINKY_MCP]) > 8.0
        assert hand.pixels[12, 1] < hand.pixels[0, 1]


def test_hand_knuckles_replace_the_pose_hand_points():
    k = len(KEYPOINT_NAMES)
    xy, conf, world = np.zeros((k, 2)), np.full(k, 0.9), np.zeros((k, 3))
    world[KP["left_wrist"]] = (0.3, 0.1, 0.05)
    pixels = np.tile([[128.0, 64.0]], (21, 1))
    pixels[HAND_INDEX_MCP] = (140.0, 50.0)
    hw = np.zeros((21, 3))
    hw[HAND_INDEX_MCP] = (0.02, 0.08, -0.01)
    hand = Hand(side="left", pixels=pixels, world=hw, score=0.7)
    nxy, nconf, nworld, done = with_hands(xy, conf, world, {"left": hand}, 256)
    i = KP["left_index"]
    np.testing.assert_allclose(canonical_to_pixels(nxy[i], 256), (140.0, 50.0))
    np.testing.assert_allclose(nworld[i], (0.32, 0.18, 0.04))
    assert nconf[i] == 0.7 and nconf[KP["right_index"]] == 0.9 and (xy == 0).all()
    assert set(done) == {KP["left_index"], KP["left_pinky"], KP["left_thumb"]}
    idx, _ = _segment_targets(nworld + np.arange(k)[:, None] * 1e-3, nconf, "cpu", hand_keypoints=done)
    pairs = {tuple(p) for p in idx.tolist()}
    assert (KP["left_wrist"], i) in pairs and (KP["right_wrist"], KP["right_index"]) not in pairs
