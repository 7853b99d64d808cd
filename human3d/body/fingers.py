"""Finger pose from hand landmarks: each finger's three joints (:data:`~human3d.body.models.FINGER_JOINTS`) set from
mediapipe Hands' 21 landmarks (:mod:`human3d.body.hands`), for the body models that have finger bones (Anny).

The hand's own frame carries the landmarks onto the model. The palm frame (forward: wrist to middle knuckle; across:
pinky knuckle to index knuckle; normal: out of the palm) is built the same way from the landmarks and from the
model's rest hand, so a finger segment's direction in the photo's palm frame is its target in the rest hand's frame,
whatever the wrist does: a finger's rotation turns its subtree after the wrist's (:mod:`human3d.body.models`).

Along each finger, from the knuckle out (closed form, no optimisation):

* fingers: the knuckle (MCP) flexes toward the palm about the axis across the finger and spreads about the palm
  normal; the middle (PIP) and end (DIP) joints are hinges about the axis across the finger. Flexion is limited to
  :data:`FLEX_RANGE_DEG` per joint: fingers curl, and bend backward only a little.
* the thumb is not posed (:data:`POSED_FINGERS`): on renders of the body model, whose thumb is known, mediapipe's
  thumb reads 15-30 degrees straighter than the rest thumb in every hand, open or closed, so following it made
  the thumb worse than leaving it. :func:`finger_pose` can still swing it (each joint by at most
  :data:`THUMB_SWING_DEG`; the thumb's axes differ too much between people and models for fixed hinges).

A hand below :data:`MIN_SCORE` or with a degenerate palm keeps the rest pose, and so does a finger the landmarks bend
less than :data:`MIN_BEND_CHANGE_DEG` away from it (within mediapipe's error on an open hand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from human3d.body.hands import Hand
from human3d.body.models import FINGERS, BodyModel
from human3d.ops.rotation import min_rotation, orthonormal_frame

#: mediapipe Hands' landmarks along each finger, from its base: thumb CMC..tip, the others MCP..tip.
LANDMARKS = {"thumb": (1, 2, 3, 4), "index": (5, 6, 7, 8), "middle": (9, 10, 11, 12), "ring": (13, 14, 15, 16),
             "pinky": (17, 18, 19, 20)}
#: The palm frame's landmarks: wrist, index, middle and pinky knuckles.
PALM = (0, 5, 9, 17)
#: Flexion range (degrees; negative: bent backward) of each finger joint, knuckle to end, and the knuckle's spread.
FLEX_RANGE_DEG = ((-20.0, 95.0), (-5.0, 110.0), (-5.0, 90.0))
SPREAD_DEG = 25.0
#: Largest swing (degrees) of each thumb joint from its rest direction.
THUMB_SWING_DEG = (50.0, 70.0, 90.0)
#: The fingers :func:`finger_pose` sets by default (see the module docstring for the thumb).
POSED_FINGERS = ("index", "middle", "ring", "pinky")
#: A finger keeps the rest pose unless the landmarks bend it (:func:`finger_bend`) at least this much more or less
#: (degrees): on renders of the body model, mediapipe reads open and relaxed fingers 5-25 degrees off.
MIN_BEND_CHANGE_DEG = 25.0
#: Hands the hand model is less sure of than this keep the rest pose.
MIN_SCORE = 0.7


@dataclass(frozen=True)
class RestHand:
    """One side's rest hand in canonical axes: palm (3, 3) columns across, forward, palm normal; per finger, the
    (3, 3) rows of its segments' unit directions (knuckle out) and the three joint names."""

    side: str
    palm: np.ndarray
    segments: dict[str, np.ndarray]
    joints: dict[str, tuple[str, str, str]]


def has_fingers(model: BodyModel) -> bool:
    """Whether ``model`` poses finger joints (and so can take a finger pose)."""
    return all(f"{s}_{f}{k}" in model.pivots for s in ("left", "right") for f in FINGERS for k in (1, 2, 3))


def palm_frame(wrist: np.ndarray, index: np.ndarray, middle: np.ndarray, pinky: np.ndarray, side: str
               ) -> np.ndarray | None:
    """(3, 3) orthonormal columns: across the palm (pinky to index), forward (wrist to middle knuckle), out of the
    palm; None when the points are degenerate. Both hands' normals point out of the palm (``side``: the subject's)."""
    frame = orthonormal_frame(middle - wrist, index - pinky, eps=1e-6)  # forward, across, forward x across
    if frame is None:
        return None
    return np.stack([frame[:, 1], frame[:, 0], frame[:, 2] * (1.0 if side == "left" else -1.0)], 1)


def rest_hand(model: BodyModel, rest_joints: np.ndarray, bone_axes: np.ndarray, side: str) -> RestHand:
    """The rest hand of ``side`` from (J, 3) rest joints (bone heads) and (J, 3) rest bone directions (the last
    finger segment has no child joint to point at)."""
    idx = {name: model.pivots[name] for name in model.pivots}

    def head(finger: str, k: int) -> np.ndarray:
        return rest_joints[idx[f"{side}_{finger}{k}"]]

    palm = palm_frame(rest_joints[idx[f"{side}_wrist"]], head("index", 1), head("middle", 1), head("pinky", 1), side)
    if palm is None:
        raise ValueError(f"the body model's rest {side} hand is degenerate")
    segments, joints = {}, {}
    for finger in FINGERS:
        d = [head(finger, 2) - head(finger, 1), head(finger, 3) - head(finger, 2),
             bone_axes[idx[f"{side}_{finger}3"]]]
        segments[finger] = np.stack([v / np.linalg.norm(v) for v in d])
        joints[finger] = tuple(f"{side}_{finger}{k}" for k in (1, 2, 3))
    return RestHand(side=side, palm=palm, segments=segments, joints=joints)


def _signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> float:
    """Angle (radians) turning ``a`` onto ``b`` about the unit ``axis``, both projected onto the plane normal to it."""
    a = a - (a @ axis) * axis
    b = b - (b @ axis) * axis
    return math.atan2(float(axis @ np.cross(a, b)), float(a @ b))


def _clamp(x: float, lo_deg: float, hi_deg: float) -> float:
    return min(max(x, math.radians(lo_deg)), math.radians(hi_deg))


def _finger(rest: RestHand, finger: str, targets: np.ndarray) -> list[Rotation]:
    """The joint rotations (world-aligned rest axes, knuckle out) turning ``finger``'s rest segments toward
    ``targets`` (3, 3) unit directions in the rest hand's frame, within the joint limits."""
    seg = rest.segments[finger]
    normal = rest.palm[:, 2]
    q = Rotation.identity()  # the finger's rotation so far (its parent's, relative to the hand)
    out: list[Rotation] = []
    for k in range(3):
        d = q.apply(seg[k])
        if finger == "thumb":
            swing = min_rotation(d, targets[k])
            angle = min(swing.magnitude(), math.radians(THUMB_SWING_DEG[k]))
            world = Rotation.from_rotvec(swing.as_rotvec() / max(swing.magnitude(), 1e-12) * angle)
        else:
            axis = np.cross(d, normal)
            axis /= max(np.linalg.norm(axis), 1e-12)
            world = Rotation.from_rotvec(axis * _clamp(_signed_angle(d, targets[k], axis), *FLEX_RANGE_DEG[k]))
            if k == 0:  # the knuckle also spreads the finger in the palm's plane
                spread = _signed_angle(world.apply(d), targets[k], normal)
                world = Rotation.from_rotvec(normal * _clamp(spread, -SPREAD_DEG, SPREAD_DEG)) * world
        local = q.inv() * world * q  # a joint's rotation acts after its parent's, in rest axes
        out.append(local)
        q = q * local
    return out


def finger_pose(hands: dict[str, Hand], rest_hands: dict[str, RestHand], min_score: float = MIN_SCORE,
                fingers: tuple[str, ...] = POSED_FINGERS, min_change_deg: float = MIN_BEND_CHANGE_DEG
                ) -> dict[str, np.ndarray]:
    """Finger joint name -> (3,) rotation vector for each of ``fingers`` of each hand found with at least
    ``min_score`` whose bend the landmarks change by at least ``min_change_deg``; absent joints stay in the rest
    pose."""
    pose: dict[str, np.ndarray] = {}
    for side, hand in hands.items():
        if hand.score < min_score or side not in rest_hands:
            continue
        w = hand.world
        palm = palm_frame(*(w[i] for i in PALM), side)
        if palm is None:
            continue
        rest = rest_hands[side]
        to_rest = rest.palm @ palm.T  # the photo's palm frame onto the rest hand's
        for finger in fingers:
            d = np.diff(w[list(LANDMARKS[finger])], axis=0) @ to_rest.T
            norms = np.linalg.norm(d, axis=1, keepdims=True)
            if (norms < 1e-6).any():
                continue
            posed = {name: r.as_rotvec() for name, r in zip(rest.joints[finger], _finger(rest, finger, d / norms))}
            if abs(finger_bend(rest, finger, posed) - finger_bend(rest, finger, {})) >= min_change_deg:
                pose.update(posed)
    return pose


def finger_bend(rest: RestHand, finger: str, pose: dict[str, np.ndarray]) -> float:
    """How far ``finger`` of the ``rest`` hand is bent under ``pose`` (degrees): the sum of the angles between its
    consecutive segments, from the palm's forward direction (the thumb: from its first segment) out."""
    q = Rotation.identity()
    dirs = [] if finger == "thumb" else [rest.palm[:, 1]]
    for name, d in zip(rest.joints[finger], rest.segments[finger]):
        q = q * Rotation.from_rotvec(np.asarray(pose.get(name, np.zeros(3)), dtype=np.float64))
        dirs.append(q.apply(d))
    return float(sum(math.degrees(math.acos(float(np.clip(a @ b, -1.0, 1.0)))) for a, b in zip(dirs[:-1], dirs[1:])))


def finger_bends(pose: dict[str, np.ndarray], rest_hands: dict[str, RestHand]) -> dict[str, float]:
    """"side_finger" -> :func:`finger_bend` of every finger of both hands under ``pose``."""
    return {f"{side}_{finger}": finger_bend(rest, finger, pose) for side, rest in rest_hands.items()
            for finger in FINGERS}


def rest_hands(model: BodyModel, shape: torch.Tensor, joints: np.ndarray | None = None) -> dict[str, RestHand]:
    """Both rest hands of ``model`` with ``shape`` (1, S) (``joints``: its (J, 3) rest joints when already posed);
    empty for a model without finger bones (or without ``bone_axes``, which the last finger segments need)."""
    if not has_fingers(model) or not hasattr(model, "bone_axes"):
        return {}
    if joints is None:
        with torch.no_grad():
            joints = model.forward({}, shape).joints[0].detach().cpu().numpy()
    axes = model.bone_axes(shape)
    return {side: rest_hand(model, np.asarray(joints, np.float64), axes, side) for side in ("left", "right")}
