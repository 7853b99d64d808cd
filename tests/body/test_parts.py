"""Body parts from skinning weights: bone names of both models, dominant weights, the face split."""

from __future__ import annotations

import numpy as np

from human3d.body.parts import FACE, HEAD, PART_NAMES, bone_parts, split_face, vertex_parts


def _names(labels: np.ndarray) -> list[str]:
    return [PART_NAMES[i] for i in labels]


def test_anny_and_smplx_bone_names_group_into_sided_parts():
    anny = ["root", "pelvis.L", "upperleg01.L", "lowerleg02.R", "foot.R", "toe1-1.L", "spine03", "clavicle.R",
            "shoulder01.L", "upperarm02.R", "lowerarm01.L", "wrist.R", "finger2-3.L", "metacarpal1.R", "neck02",
            "head", "eye.L"]
    assert _names(bone_parts(anny)) == [
        "hips", "hips", "upper_leg_l", "lower_leg_r", "foot_r", "foot_l", "torso", "torso", "torso", "upper_arm_r",
        "forearm_l", "hand_r", "hand_l", "hand_r", "neck", "head", "head"]
    smplx = ["pelvis", "left_hip", "right_knee", "left_ankle", "right_foot", "spine2", "left_collar",
             "right_shoulder", "left_elbow", "right_wrist", "left_index1", "right_thumb3", "neck", "jaw",
             "left_eye_smplhf"]
    assert _names(bone_parts(smplx)) == [
        "hips", "upper_leg_l", "lower_leg_r", "foot_l", "foot_r", "torso", "torso", "upper_arm_r", "forearm_l",
        "hand_r", "hand_l", "hand_r", "neck", "head", "head"]


def test_a_vertex_takes_the_part_of_its_dominant_bone():
    names = ["spine01", "upperarm01.L", "lowerarm01.L"]
    w = np.array([[0.6, 0.4, 0.0], [0.2, 0.7, 0.1], [0.0, 0.45, 0.55]], np.float32)
    assert _names(vertex_parts(w, names)) == ["torso", "upper_arm_l", "forearm_l"]


def test_the_face_is_the_front_of_the_head_below_the_hairline():
    # a unit-sphere head facing +z, eyes ahead of the head joint, the neck below
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    joints = np.array([[0.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.3, 0.1, 0.8], [-0.3, 0.1, 0.8]])
    parts = split_face(v, np.full(len(v), HEAD, np.int8), joints, ["head", "neck01", "eye.L", "eye.R"])
    face = parts == FACE
    assert 0.1 < face.mean() < 0.4
    assert (v[face, 2] > 0.3).all()  # only the front
    assert (v[face, 1] < 0.7).all()  # not the crown
    assert not face[(v[:, 2] < 0)].any()  # nothing on the back of the head
    # a model that names no eyes keeps its head whole
    same = split_face(v, np.full(len(v), HEAD, np.int8), joints[:2], ["head", "neck01"])
    assert (same == HEAD).all()
