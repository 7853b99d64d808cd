"""Body parts of a body model's vertices, from its skinning weights: the one grouping of bones the code uses.

Every vertex takes the part of the bone that moves it most (its dominant skinning weight); a bone's part comes from
its name (Anny's and SMPL-X's names both). The head is split into the face (its front below the hairline) and the
rest of the head (top, sides and back: where hair grows), from the posed eyes, head and neck joints. Left and right
limbs are separate parts (the subject's left is +X).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Part names, indexed by the labels :func:`vertex_parts` returns.
PART_NAMES: tuple[str, ...] = (
    "face", "head", "neck", "torso", "hips",
    "upper_arm_l", "upper_arm_r", "forearm_l", "forearm_r", "hand_l", "hand_r",
    "upper_leg_l", "upper_leg_r", "lower_leg_l", "lower_leg_r", "foot_l", "foot_r",
)
FACE, HEAD, NECK, TORSO, HIPS = range(5)

#: Bone-name fragments of each part, tried in this order (the first match wins: Anny's ``shoulder01`` is the
#: top of the torso, SMPL-X's ``left_shoulder`` turns the upper arm). A bone matching none is torso.
_PART_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("head", ("head", "eye", "jaw")),
    ("neck", ("neck",)),
    ("hand", ("wrist", "finger", "metacarpal", "index", "middle", "ring", "pinky", "thumb")),
    ("forearm", ("lowerarm", "elbow")),
    ("torso", ("spine", "clavicle", "collar", "shoulder01")),
    ("upper_arm", ("upperarm", "shoulder")),
    ("foot", ("foot", "toe", "ankle")),
    ("lower_leg", ("lowerleg", "knee")),
    ("upper_leg", ("upperleg", "hip")),
    ("hips", ("pelvis", "root")),
)

#: Parts a garment usually covers (the synthetic bodies' shirt and trousers; what must not look like skin).
SHIRT_PARTS: tuple[str, ...] = ("torso", "upper_arm_l", "upper_arm_r")
TROUSER_PARTS: tuple[str, ...] = ("hips", "upper_leg_l", "upper_leg_r", "lower_leg_l", "lower_leg_r")


def _side(bone: str) -> str:
    b = bone.lower()
    if b.endswith(".l") or b.startswith("left") or "_l_" in b:
        return "_l"
    if b.endswith(".r") or b.startswith("right") or "_r_" in b:
        return "_r"
    return ""


def bone_parts(joint_names: Sequence[str]) -> np.ndarray:
    """(J,) int64 part label (an index into :data:`PART_NAMES`) of every bone, by its name. Head bones get
    ``HEAD``; :func:`vertex_parts` splits the face off by position. A limb bone with no side in its name goes left."""
    out = np.full(len(joint_names), TORSO, np.int64)
    for j, bone in enumerate(joint_names):
        low = bone.lower()
        for part, words in _PART_WORDS:
            if any(w in low for w in words):
                name = part if part in PART_NAMES else part + (_side(bone) or "_l")
                out[j] = PART_NAMES.index(name)
                break
    return out


def vertex_parts(skinning_weights: np.ndarray, joint_names: Sequence[str], vertices: np.ndarray | None = None,
                 joints: np.ndarray | None = None) -> np.ndarray:
    """(V,) int8 part label of every vertex: the part of its dominant bone.

    skinning_weights: (V, J); joint_names: (J,). With the posed ``vertices`` (V, 3) and ``joints`` (J, 3) (canonical
    axes), the front of the head below the hairline becomes ``FACE`` (see :func:`split_face`).
    """
    parts = bone_parts(joint_names)[np.asarray(skinning_weights).argmax(1)].astype(np.int8)
    if vertices is not None and joints is not None:
        parts = split_face(np.asarray(vertices, np.float64), parts, np.asarray(joints, np.float64), joint_names)
    return parts


def head_frame(joints: np.ndarray, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(eyes midpoint (3,), up (3,), forward (3,)) of the head from its joints, or None when the model names no
    eyes, head and neck. Up runs from the neck to the head joint; forward from the head joint to the eyes."""
    low = [n.lower() for n in joint_names]
    eyes = [i for i, n in enumerate(low) if "eye" in n]
    head = [i for i, n in enumerate(low) if n == "head"]
    neck = [i for i, n in enumerate(low) if n.startswith("neck")]
    if not eyes or not head or not neck:
        return None
    centre = joints[eyes].mean(0)
    up = joints[head[0]] - joints[neck[0]]
    up /= np.linalg.norm(up) + 1e-12
    fwd = centre - joints[head[0]]
    fwd -= (fwd @ up) * up
    norm = np.linalg.norm(fwd)
    if norm < 1e-9:
        return None
    return centre, up, fwd / norm


def split_face(vertices: np.ndarray, parts: np.ndarray, joints: np.ndarray, joint_names: Sequence[str]
               ) -> np.ndarray:
    """``parts`` with the head's face relabelled ``FACE``: head vertices in front of the head's centre (more than a
    third of its depth forward of it) and below the hairline (a third of the way from the eyes to the crown)."""
    frame = head_frame(joints, joint_names)
    head = parts == HEAD
    if frame is None or head.sum() < 10:
        return parts
    eyes, up, fwd = frame
    d = vertices[head] - eyes
    high, ahead = d @ up, d @ fwd
    centre = 0.5 * (ahead.max() + ahead.min())
    depth = ahead.max() - ahead.min()
    crown = high.max()
    face = (ahead > centre + depth / 6) & (high < crown / 3)
    out = parts.copy()
    idx = np.nonzero(head)[0]
    out[idx[face]] = FACE
    return out


def part_palette() -> np.ndarray:
    """(P, 3) uint8 distinct colours of the parts, to look at label maps (left limbs warm, right limbs cool)."""
    return np.array([
        (250, 200, 170), (90, 60, 40), (220, 160, 130), (200, 40, 40), (120, 40, 120),
        (250, 150, 0), (0, 150, 250), (250, 220, 0), (0, 220, 220), (250, 100, 160), (100, 100, 250),
        (40, 160, 40), (20, 90, 160), (150, 220, 60), (60, 60, 220), (120, 80, 20), (20, 60, 100),
    ], np.uint8)
