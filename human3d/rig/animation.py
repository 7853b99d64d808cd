"""Short procedural clips on the rig's humanoid bones (no motion capture): idle, walk, wave.

The rig's joints have identity orientation in the bind pose, so a joint's glTF rotation is the change from the
bind pose in its parent's frame. A clip is built as world-frame rotations ``Q_j(t)`` of the bones it moves (relative
to the bind pose; limbs are aimed at directions in the body's own axes, so a clip looks the same whatever the bind
pose), then turned into local rotations ``L_j = Q_parent^-1 Q_j``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from human3d.ops.rotation import min_rotation

CLIPS = ("none", "idle", "walk", "wave")
#: Duration of one loop of each clip (seconds) and keyframes per second.
DURATION_S = {"idle": 4.0, "walk": 1.2, "wave": 3.0}
KEYS_PER_S = 20


def _rx(deg: float) -> np.ndarray:
    return Rotation.from_euler("x", deg, degrees=True).as_matrix()


def _ry(deg: float) -> np.ndarray:
    return Rotation.from_euler("y", deg, degrees=True).as_matrix()


def _rz(deg: float) -> np.ndarray:
    return Rotation.from_euler("z", deg, degrees=True).as_matrix()


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _targets(clip: str, t: float) -> dict[str, tuple[str, object]]:
    """At time t: humanoid bone -> ('rot', (3, 3) rotation in body axes, 1) or ('aim', direction in body axes,
    amount in [0, 1]: how far from the bind direction toward it). Body axes: +X the subject's left, +Y up, +Z
    forward."""
    out: dict[str, tuple[str, object]] = {}
    if clip == "idle":
        w = 2 * np.pi * t / DURATION_S["idle"]
        out["spine"] = ("rot", _rx(-1.5 * np.sin(w)), 1.0)
        out["chest"] = ("rot", _rx(-1.5 * np.sin(w)), 1.0)
        out["head"] = ("rot", _ry(8 * np.sin(w)) @ _rx(3 * np.sin(2 * w)), 1.0)
        for side, sign in (("left", 1), ("right", -1)):  # arms sway a little about their bind pose
            out[f"{side}UpperArm"] = ("rot", _rz(sign * 3 * np.sin(w)) @ _rx(2 * np.sin(w + sign)), 1.0)
            out[f"{side}LowerArm"] = ("rot", _rx(-4 * (1 + np.sin(w))), 1.0)
    elif clip == "walk":
        w = 2 * np.pi * t / DURATION_S["walk"]
        for side, phase in (("left", 0.0), ("right", np.pi)):
            s = np.sin(w + phase)
            out[f"{side}UpperLeg"] = ("rot", _rx(-25 * s), 1.0)
            # the knee bends while the thigh swings forward (a positive turn about +X folds the shin back)
            out[f"{side}LowerLeg"] = ("rot", _rx(5 + 40 * max(0.0, np.cos(w + phase))), 1.0)
            sign = 1 if side == "left" else -1
            # arms hang down (whatever the bind pose) and each swings against its leg
            out[f"{side}UpperArm"] = ("aim", _rx(20 * s) @ _rz(sign * 8) @ np.array([0.0, -1.0, 0.0]), 1.0)
            out[f"{side}LowerArm"] = ("aim", _rx(20 * s - 25) @ _rz(sign * 8) @ np.array([0.0, -1.0, 0.0]), 1.0)
        out["spine"] = ("rot", _ry(4 * np.sin(w)), 1.0)
    elif clip == "wave":
        d = DURATION_S["wave"]
        ramp = float(np.clip(min(t, d - t) / 0.5, 0.0, 1.0))
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: up in 0.5 s, down in the last 0.5 s
        wave = 25 * np.sin(2 * np.pi * 2.0 * t) * ramp
        out["rightUpperArm"] = ("aim", _unit([-0.75, 0.55, 0.2]), ramp)  # from the bind pose up and out
        out["rightLowerArm"] = ("aim", _rz(wave) @ _unit([-0.1, 1.0, 0.15]), ramp)
        out["head"] = ("rot", _rz(6 * ramp) @ _ry(-10 * ramp), 1.0)
    return out


def make_clip(clip: str, parents: np.ndarray, bind_joints: np.ndarray, body_axes: np.ndarray,
              humanoid: dict[str, int], children: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keyframes of ``clip``: (times (K,), joint indices (A,), local rotations (K, A, 4) xyzw).

    parents (J,); bind_joints (J, 3) joint positions in the bind pose; body_axes (3, 3) the body's axes (columns) in
    the bind pose; humanoid: role -> joint index; children: role -> index of the joint its bone points at (the next
    role's joint, for aiming).
    """
    duration = DURATION_S[clip]
    times = np.linspace(0.0, duration, int(round(duration * KEYS_PER_S)) + 1)
    frames = [_frame(clip, float(t), parents, bind_joints, body_axes, humanoid, children) for t in times]
    moved = sorted(set().union(*[f.keys() for f in frames]))
    rot = np.zeros((len(times), len(moved), 4), np.float32)
    for k, f in enumerate(frames):
        for a, j in enumerate(moved):
            rot[k, a] = Rotation.from_matrix(f.get(j, np.eye(3))).as_quat()
    # one hemisphere from key to key, so that linear interpolation takes the short way
    for k in range(1, len(times)):
        flip = (rot[k] * rot[k - 1]).sum(1) < 0
        rot[k, flip] *= -1
    return times.astype(np.float32), np.asarray(moved, dtype=np.int64), rot


def _frame(clip: str, t: float, parents: np.ndarray, bind_joints: np.ndarray, body_axes: np.ndarray,
           humanoid: dict[str, int], children: dict[str, int]) -> dict[int, np.ndarray]:
    """Local rotations (joint -> (3, 3)) of the joints the clip moves at time t."""
    targets = {humanoid[r]: (r, v) for r, v in _targets(clip, t).items() if r in humanoid}
    world: dict[int, np.ndarray] = {}
    local: dict[int, np.ndarray] = {}

    def q_of(j: int) -> np.ndarray:  # world rotation of joint j relative to the bind pose
        if j < 0:
            return np.eye(3)
        if j not in world:
            parent_q = q_of(int(parents[j]))
            if j in targets:
                role, (kind, value, amount) = targets[j]
                if kind == "rot":  # a turn in the body's axes, carried along by the parent
                    world[j] = parent_q @ body_axes @ value @ body_axes.T
                else:  # aim the bone (as the parent carried it) toward a direction in the body's axes
                    bone = _unit(parent_q @ (bind_joints[children[role]] - bind_joints[j]))
                    goal = (1 - amount) * bone + amount * _unit(body_axes @ value)
                    turn = min_rotation(bone, goal).as_matrix() if np.linalg.norm(goal) > 1e-6 else np.eye(3)
                    world[j] = turn @ parent_q
                local[j] = parent_q.T @ world[j]
            else:
                world[j] = parent_q
        return world[j]

    for j in targets:
        q_of(j)
    return local


#: role -> the role whose joint its bone points at (for aiming a limb)
AIM_CHILD: dict[str, str] = {}
for _side in ("left", "right"):
    AIM_CHILD.update({f"{_side}UpperArm": f"{_side}LowerArm", f"{_side}LowerArm": f"{_side}Hand",
                      f"{_side}UpperLeg": f"{_side}LowerLeg", f"{_side}LowerLeg": f"{_side}Foot"})


def sample_clip(times: np.ndarray, rotations: np.ndarray, t: float) -> np.ndarray:
    """(A, 4) xyzw rotations of a clip at time ``t`` (looped), linear interpolation with normalisation (nlerp:
    what glTF's LINEAR rotation sampling is, to within a fraction of a degree between close keys)."""
    duration = float(times[-1])
    t = t % duration if duration > 0 else 0.0
    k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    a = (t - times[k]) / max(float(times[k + 1] - times[k]), 1e-9)
    q = (1 - a) * rotations[k] + a * rotations[k + 1]
    return q / np.linalg.norm(q, axis=1, keepdims=True)

