"""Fingers from the hand landmarks and the head's orientation from the face landmarks, on a rendered Anny whose
finger pose and head turn are known: one hand a (half-closed) fist, the other open, the head turned 30 degrees and
tipped up 15."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from human3d.body.fingers import (
    FLEX_RANGE_DEG,
    LANDMARKS,
    POSED_FINGERS,
    finger_bends,
    finger_pose,
    rest_hands,
)
from human3d.body.fit import FitSettings, fit_observations, observations_from_framed
from human3d.body.hands import Hand, detect_hands
from human3d.body.head import rotation_angle_deg
from human3d.body.keypoints import detect_landmarks
from human3d.body.models import KEYPOINT_NAMES
from human3d.body.synthetic import POSES, make_body, shaded_image
from human3d.context import StageContext
from tests.body.conftest import frame_rgba

pytest.importorskip("mediapipe")

KP = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
FIST_DEG = (60.0, 70.0, 45.0)  # knuckle, middle, end joint of each finger (the thumb stays at rest)
HEAD_YAW_PITCH_DEG = (30.0, 15.0)


@pytest.fixture(scope="module")
def hands_rest(anny_model):
    return rest_hands(anny_model, anny_model.shape_mean[None].float())


def curled(rest, side: str, angles: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """Rotation vectors flexing every finger (not the thumb) of ``side`` by ``angles`` degrees per joint toward the
    palm, each about the axis across its segment as posed so far."""
    hand, out = rest[side], {}
    for finger in POSED_FINGERS:
        q = Rotation.identity()
        for name, d, a in zip(hand.joints[finger], hand.segments[finger], angles):
            axis = np.cross(q.apply(d), hand.palm[:, 2])
            local = q.inv() * Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(a)) * q
            out[name] = local.as_rotvec()
            q = q * local
    return out


def hand_landmarks(model, rest, side: str, pose: dict[str, np.ndarray], turn: Rotation) -> np.ndarray:
    """(21, 3) mediapipe-ordered points of the model's ``side`` hand under the finger ``pose``, turned by ``turn``."""
    joints = model.forward({}, model.shape_mean[None].float()).joints[0].numpy().astype(np.float64)
    hand = rest[side]
    w = np.zeros((21, 3))
    w[0] = joints[model.pivots[f"{side}_wrist"]]
    for finger, lm in LANDMARKS.items():
        p = joints[model.pivots[f"{side}_{finger}1"]].copy()
        w[lm[0]] = p
        q = Rotation.identity()
        for k, (name, d) in enumerate(zip(hand.joints[finger], hand.segments[finger])):
            q = q * Rotation.from_rotvec(pose.get(name, np.zeros(3)))
            p = p + 0.03 * q.apply(d)
            w[lm[k + 1]] = p
    return turn.apply(w - w.mean(0))


def test_finger_pose_inverts_exact_landmarks_and_keeps_its_limits(anny_model, hands_rest):
    pose = curled(hands_rest, "left", FIST_DEG) | curled(hands_rest, "right", (20.0, 15.0, 10.0))
    turn = Rotation.from_euler("xyz", (40.0, -70.0, 20.0), degrees=True)  # any wrist orientation
    hands = {s: Hand(s, np.zeros((21, 2)), hand_landmarks(anny_model, hands_rest, s, pose, turn), 1.0)
             for s in ("left", "right")}
    fitted = finger_pose(hands, hands_rest)
    truth, got = finger_bends(pose, hands_rest), finger_bends(fitted, hands_rest)
    for key in truth:
        assert got[key] == pytest.approx(truth[key], abs=0.5), key
    # a finger bent backward far past the limits is held at them; an unsure hand keeps the rest pose
    back = curled(hands_rest, "left", (-60.0, -60.0, -60.0))
    hands = {"left": Hand("left", np.zeros((21, 2)), hand_landmarks(anny_model, hands_rest, "left", back, turn), 1.0)}
    bent = finger_pose(hands, hands_rest, min_change_deg=0.0)
    for finger in POSED_FINGERS:
        for k, (lo, _) in enumerate(FLEX_RANGE_DEG[1:], start=1):
            name = hands_rest["left"].joints[finger][k]
            assert np.degrees(np.linalg.norm(bent[name])) == pytest.approx(-lo, abs=0.5)
    assert finger_pose({"left": dataclasses.replace(hands["left"], score=0.3)}, hands_rest) == {}
    # a finger bent less than the landmarks' error on an open hand keeps the rest pose
    slight = curled(hands_rest, "left", (8.0, 8.0, 5.0))
    hands = {"left": Hand("left", np.zeros((21, 2)), hand_landmarks(anny_model, hands_rest, "left", slight, turn), 1.0)}
    assert finger_pose(hands, hands_rest) == {}


def _photo(model, pose: dict) -> tuple:
    body = make_body(model, pose, resolution=768)
    rgba = np.concatenate([shaded_image(body, model), (body.mask * 255).astype(np.uint8)[..., None]], -1)
    return body, frame_rgba(rgba, 768)


def _observe(framed):
    landmarks = detect_landmarks(framed.rgb)
    ctx = StageContext(device="cpu", seed=0)
    return observations_from_framed(framed, landmarks, ctx, detect_hands(framed.rgb, landmarks)), ctx


def _head_frame(kp: np.ndarray) -> np.ndarray:
    """(3, 3) across, up, forward of the head from (K, 3) keypoints (ears and nose)."""
    across = kp[KP["left_ear"]] - kp[KP["right_ear"]]
    across = across / np.linalg.norm(across)
    fwd = kp[KP["nose"]] - (kp[KP["left_ear"]] + kp[KP["right_ear"]]) / 2
    fwd = fwd - (fwd @ across) * across
    fwd = fwd / np.linalg.norm(fwd)
    return np.stack([across, np.cross(fwd, across), fwd], 1)


def test_a_fist_and_an_open_hand_are_fitted(anny_model, hands_rest):
    pose = dict(POSES["t_pose"]) | curled(hands_rest, "left", FIST_DEG) | curled(hands_rest, "right", (5.0, 5.0, 5.0))
    body, framed = _photo(anny_model, pose)
    obs, ctx = _observe(framed)
    assert set(obs.hands) == {"left", "right"}
    fit = fit_observations(anny_model, obs, FitSettings(iterations=40, offset_share=0.0), ctx)
    assert "left" in fit.report["fingers_posed"]
    fitted = {k: np.asarray(v) for k, v in fit.params["body_pose"].items()}
    truth, got, rest = (finger_bends(p, hands_rest) for p in (body.rotvecs, fitted, {}))
    fist = [f"left_{f}" for f in POSED_FINGERS]
    open_ = [f"right_{f}" for f in POSED_FINGERS]
    err = {k: abs(got[k] - truth[k]) for k in fist + open_}
    err_rest = {k: abs(rest[k] - truth[k]) for k in fist + open_}
    # mediapipe reads a rendered fist 25-45% less curled than it is (its 3D landmarks, not this mapping: exact
    # landmarks are inverted exactly above), so the fist is asked to close at least half the gap from the rest
    # pose, every finger a third of it. It reads the open hand 5-25 degrees flatter than it is, within the change
    # a finger needs to leave the rest pose: those fingers must stay open (within 25 degrees of the truth), and all
    # eight be closer than at rest.
    assert np.mean([err[k] for k in fist]) <= 0.5 * np.mean([err_rest[k] for k in fist]), (got, truth)
    assert all(err[k] <= 0.67 * err_rest[k] for k in fist), (got, truth)
    assert max(err[k] for k in open_) <= 25.0, (got, truth)
    assert np.mean(list(err.values())) <= 0.6 * np.mean(list(err_rest.values())), (got, truth)
    assert got["left_thumb"] == pytest.approx(rest["left_thumb"])  # the thumb is not posed (see fingers.py)


def test_a_turned_head_is_fitted_from_the_face(anny_model):
    pose = dict(POSES["a_pose"])
    pose["head"] = Rotation.from_euler("yx", HEAD_YAW_PITCH_DEG, degrees=True).as_rotvec()
    body, framed = _photo(anny_model, pose)
    obs, ctx = _observe(framed)
    assert obs.head is not None and obs.facing == "camera"
    settings = FitSettings(iterations=60, offset_share=0.0)
    errors = [rotation_angle_deg(_head_frame(fit_observations(anny_model, o, settings, ctx).keypoints),
                                 _head_frame(body.keypoints)) for o in (obs, dataclasses.replace(obs, head=None))]
    # within 10 degrees of the truth with the face, and closer than without it
    assert errors[0] <= 10.0 and errors[0] < errors[1] - 2.0, errors
