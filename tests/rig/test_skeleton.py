"""The fitted skeleton rebuilt from BodyFit.params, the humanoid bone map, rest poses and the Skin's round trip."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from human3d.errors import InternalError
from human3d.rig.humanoid import MAPPINGS, REQUIRED_BONES, humanoid_map
from human3d.rig.rest_pose import standard_pose, unpose_transforms
from human3d.rig.skeleton import blend, pose_transforms, skeleton_from_fit
from human3d.types import Skin, TexturedMesh


def test_skeleton_reproduces_the_fit_and_refuses_parameters_that_do_not(arms_down, anny):
    fit, _, skel, _ = arms_down
    posed = blend(skel.place @ pose_transforms(skel, skel.pose), skel.weights, skel.rest_vertices)
    assert np.abs(posed - fit.vertices).max() < 2e-3 * fit.canonical_height / fit.height_m  # 2 mm
    bad = copy.deepcopy(fit)
    bad.params["body_pose"]["left_elbow"] = [1.0, 0.0, 0.0]
    with pytest.raises(InternalError, match="do not reproduce"):
        skeleton_from_fit(anny, bad)


def _ancestors(parents, j):
    out = []
    while j >= 0:
        out.append(j)
        j = parents[j]
    return out


def test_anny_humanoid_map_has_every_required_bone_in_a_valid_hierarchy(anny):
    roles = humanoid_map("anny", anny.joint_names)
    assert set(REQUIRED_BONES) <= set(roles)
    index = {r: anny.joint_names.index(n) for r, n in roles.items()}
    chains = [("hips", "spine", "chest", "upperChest", "neck", "head")] + [
        (f"{s}Shoulder", f"{s}UpperArm", f"{s}LowerArm", f"{s}Hand") for s in ("left", "right")] + [
        (f"{s}UpperLeg", f"{s}LowerLeg", f"{s}Foot", f"{s}Toes") for s in ("left", "right")] + [
        (f"{s}Hand", f"{s}{f}Proximal") for s in ("left", "right") for f in ("Index", "Middle", "Ring", "Little")]
    for chain in chains:
        for parent, child in zip(chain, chain[1:]):
            assert index[parent] in _ancestors(anny.joint_parents, index[child]), (parent, child)
    assert len(set(roles.values())) == len(roles)  # one joint per role
    # left is +X (the subject's left)
    j = np.asarray(anny.forward({}, anny.shape_mean[None]).joints[0])
    assert j[index["leftHand"], 0] > 0 > j[index["rightHand"], 0]


def test_smplx_humanoid_map_uses_smplx_joint_names():
    smplx = pytest.importorskip("smplx")
    from smplx.joint_names import JOINT_NAMES

    names = list(JOINT_NAMES[:55])
    roles = humanoid_map("smplx", names)
    assert set(REQUIRED_BONES) <= set(roles) and len(roles) == len(MAPPINGS["smplx"])
    assert smplx is not None


def test_t_pose_puts_both_arms_horizontal(arms_down):
    fit, _, skel, _ = arms_down
    _, joints = unpose_transforms(skel, "t-pose")
    for side in ("left", "right"):
        s, w = skel.pivots[f"{side}_shoulder"], skel.pivots[f"{side}_wrist"]
        d = joints[w] - joints[s]
        assert abs(np.degrees(np.arcsin(d[1] / np.linalg.norm(d)))) < 1.0
    assert set(standard_pose(skel, "a-pose")) == {"left_shoulder", "right_shoulder", "left_elbow", "right_elbow"}


def test_skin_round_trips_through_the_textured_mesh_folder(tmp_path):
    skin = Skin(joint_names=["a", "b"], parents=np.array([-1, 0]), bind_matrices=np.tile(np.eye(4), (2, 1, 1)),
                joints=np.zeros((3, 4), np.int64), weights=np.tile([1.0, 0, 0, 0], (3, 1)).astype(np.float32),
                humanoid={"hips": "a"}, clip_name="idle", clip_times=np.array([0.0, 1.0], np.float32),
                clip_joints=np.array([1]), clip_rotations=np.tile([0, 0, 0, 1.0], (2, 1, 1)).astype(np.float32),
                report={"closest_surface": 0.9})
    mesh = TexturedMesh(vertices=np.zeros((3, 3), np.float32), faces=np.array([[0, 1, 2]]), skin=skin)
    mesh.save(tmp_path / "m")
    back = TexturedMesh.load(tmp_path / "m")
    assert back.skin is not None and back.skin.joint_names == ["a", "b"] and back.skin.humanoid == {"hips": "a"}
    np.testing.assert_array_equal(back.skin.clip_rotations, skin.clip_rotations)
    assert TexturedMesh.load(_static(tmp_path)).skin is None


def _static(tmp_path):
    TexturedMesh(vertices=np.zeros((3, 3), np.float32), faces=np.array([[0, 1, 2]])).save(tmp_path / "s")
    return tmp_path / "s"
