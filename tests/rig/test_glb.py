"""Rigged GLBs read back with the tests' own glTF reader: the Khronos validator, the bind pose, a shoulder turned
by 60 degrees, the T-pose, the clips, and the turntable playing one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from human3d.config import RigConfig
from human3d.io.meshes import export_mesh
from human3d.rig import rig_with_skeleton, transfer_mesh_weights
from tests.rig.gltf_reader import Glb
from tests.rig.regions import region_weight

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = REPO / ".tools" / "node_modules" / "gltf-validator"
if not VALIDATOR.is_dir():
    VALIDATOR = Path("/work/main/.tools/node_modules/gltf-validator")
VARIANTS = [("photo", "none"), ("photo", "wave"), ("t-pose", "walk"), ("a-pose", "idle")]


@pytest.fixture(scope="module")
def rigged(arms_down, tmp_path_factory):
    """variant -> (rigged TexturedMesh, path of its GLB)."""
    fit, mesh, skel, _ = arms_down
    tmp = tmp_path_factory.mktemp("rig")
    transfer = transfer_mesh_weights(mesh, fit, skel, RigConfig())
    out = {}
    for rest, clip in VARIANTS:
        result = rig_with_skeleton(mesh, fit, skel, RigConfig(rest_pose=rest, animation=clip), "anny", transfer)
        out[(rest, clip)] = (result, export_mesh(result, tmp / f"{rest}_{clip}.glb"))
    return out


def _regions(arms_down, anny):
    truth = arms_down[3]

    def region(root):
        return region_weight(truth, anny.joint_names, anny.joint_parents, root)

    return {"left_arm": region("upperarm01.L"), "right_arm": region("upperarm01.R"),
            "legs": region("pelvis.L") + region("pelvis.R"), "head": region("neck02")}


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(v))
def test_khronos_validator_reports_no_error_and_no_warning(rigged, variant):
    if shutil.which("node") is None or not VALIDATOR.is_dir():
        pytest.skip("node or the gltf-validator npm package is absent")
    out = subprocess.run(["node", str(REPO / "tools" / "gltf_validate.js"), str(VALIDATOR), str(rigged[variant][1])],
                         capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout)
    assert report["errors"] == 0 and report["warnings"] == 0, report["messages"]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(v))
def test_bind_pose_skinning_reproduces_the_file_vertices(rigged, variant):
    glb = Glb(rigged[variant][1])
    v = glb.positions()
    assert len(v) == len(rigged[variant][0].vertices)
    assert np.abs(glb.skinned() - v).max() < 1e-5
    attrs = glb.primitive()["attributes"]
    w = glb.accessor(attrs["WEIGHTS_0"]).astype(np.float64)
    j = glb.accessor(attrs["JOINTS_0"])
    assert w.shape[1] == 4 and np.all(w >= 0) and np.abs(w.sum(1) - 1).max() < 1e-6
    assert np.all(j[w == 0] == 0)  # unused slots: joint 0, weight 0
    assert v[:, 1].min() == pytest.approx(0.0, abs=1e-6)  # feet on the ground, metres
    assert 1.5 < float(np.ptp(v[:, 1])) < 2.0 or variant[0] == "t-pose"


def _turn_shoulder(glb: Glb, role: str, degrees: float, axis=(0.0, 0.0, 1.0)) -> np.ndarray:
    node = glb.joint_node(glb.doc["skins"][0]["extras"]["humanoid"][role])
    q = Rotation.from_rotvec(np.radians(degrees) * np.asarray(axis)).as_quat()
    return glb.skinned({node: q})


def test_turning_one_shoulder_moves_that_arm_only(rigged, arms_down, anny):
    glb = Glb(rigged[("photo", "none")][1])
    v = glb.positions()
    posed = _turn_shoulder(glb, "leftUpperArm", 60.0)  # raise the left arm sideways (+Z turns +X's arm up)
    moved = np.linalg.norm(posed - v, axis=1)
    r = _regions(arms_down, anny)
    arm = r["left_arm"] > 0.99
    assert arm.sum() > 1000
    assert (moved[arm] > 0.05).mean() >= 0.95, (moved[arm] > 0.05).mean()
    for name in ("right_arm", "legs", "head"):
        others = r[name] > 0.99
        assert others.sum() > 500 and moved[others].max() < 1e-3, (name, moved[others].max())
    # and no triangle of the whole mesh stretches more than 3x (weights do not leak from arm to torso)
    faces = glb.faces()

    def edges(x):
        t = x[faces]
        return np.linalg.norm(t - np.roll(t, 1, axis=1), axis=2)

    stretch = edges(posed) / np.maximum(edges(v), 1e-9)
    assert stretch.max() < 3.0, stretch.max()


def test_t_pose_arms_are_horizontal_and_report_torso_intersections(rigged, arms_down, anny):
    mesh, path = rigged[("t-pose", "walk")]
    glb = Glb(path)
    v = glb.positions()
    r = _regions(arms_down, anny)  # regions follow the vertex order, which unposing keeps
    for side in ("left", "right"):
        hand = r[f"{side}_arm"] > 0.99
        roles = glb.doc["skins"][0]["extras"]["humanoid"]
        world = glb.world_matrices()
        shoulder = world[glb.joint_node(roles[f"{side}UpperArm"])][:3, 3]
        wrist = world[glb.joint_node(roles[f"{side}Hand"])][:3, 3]
        for d in (wrist - shoulder, v[hand].mean(0) - shoulder):  # the skeleton and the mesh's arm
            elevation = np.degrees(np.arcsin(abs(d[1]) / np.linalg.norm(d)))
            assert elevation < 10.0, (side, elevation)
        assert np.sign(wrist[0] - shoulder[0]) == (1 if side == "left" else -1)
    report = mesh.skin.report
    print("torso self-intersections before/after unposing:", report["self_intersections_torso_before"],
          report["self_intersections_torso_after"])
    assert report["self_intersections_created"] == 0


def test_a_pose_arms_are_45_degrees_down(rigged):
    glb = Glb(rigged[("a-pose", "idle")][1])
    roles = glb.doc["skins"][0]["extras"]["humanoid"]
    world = glb.world_matrices()
    d = world[glb.joint_node(roles["leftHand"])][:3, 3] - world[glb.joint_node(roles["leftUpperArm"])][:3, 3]
    assert np.degrees(np.arctan2(-d[1], d[0])) == pytest.approx(45.0, abs=3.0)


def test_wave_raises_the_right_hand_above_the_head_mid_clip(rigged):
    glb = Glb(rigged[("photo", "wave")][1])
    anim = glb.doc["animations"][0]
    assert anim["name"] == "wave"
    roles = glb.doc["skins"][0]["extras"]["humanoid"]
    hand, head = glb.joint_node(roles["rightHand"]), glb.joint_node(roles["head"])
    times = glb.accessor(anim["samplers"][0]["input"]).ravel()
    k = int(np.argmin(np.abs(times - times[-1] / 2)))
    rot = {ch["target"]["node"]: glb.accessor(anim["samplers"][ch["sampler"]]["output"])[k].astype(np.float64)
           for ch in anim["channels"]}
    first = {ch["target"]["node"]: glb.accessor(anim["samplers"][ch["sampler"]]["output"])[0].astype(np.float64)
             for ch in anim["channels"]}
    mid, start = glb.world_matrices(rot), glb.world_matrices(first)
    bind = glb.world_matrices()
    assert mid[hand][1, 3] > mid[head][1, 3] + 0.1
    assert np.abs(start[hand][:3, 3] - bind[hand][:3, 3]).max() < 1e-4  # the clip starts in the bind pose


@pytest.mark.parametrize("variant", [("t-pose", "walk"), ("a-pose", "idle")], ids=lambda v: "-".join(v))
def test_clips_loop_and_keep_unit_rotations(rigged, variant):
    glb = Glb(rigged[variant][1])
    anim = glb.doc["animations"][0]
    assert len(anim["channels"]) >= 4
    for s in anim["samplers"]:
        q = glb.accessor(s["output"]).astype(np.float64)
        assert np.abs(np.linalg.norm(q, axis=1) - 1).max() < 1e-5
        assert abs(abs(float(q[0] @ q[-1])) - 1) < 1e-4  # last key = first key: it loops


def test_turntable_plays_the_clip(rigged, tmp_path):
    from human3d.io.gltf_skin import read_glb_skin
    from human3d.io.meshes import read_mesh
    from human3d.render.turntable import _clip_poses, render_views

    path = rigged[("photo", "wave")][1]
    m = read_mesh(path)
    m.skin = read_glb_skin(path)
    poses = _clip_poses(m, frames=2, fps=1)
    assert len(poses) == 2 and np.abs(poses[0] - m.vertices).max() < 1e-4
    assert np.abs(poses[1] - m.vertices).max() > 0.3  # 1 s in: the arm is up
    frames = list(render_views(m, [0.0, 0.0], resolution=96, poses=poses))
    assert (np.abs(frames[0].astype(int) - frames[1].astype(int)).sum(-1) > 30).sum() > 50


def test_render_cli_plays_a_glb_clip(rigged, tmp_path):
    import imageio.v2 as imageio
    from typer.testing import CliRunner

    from human3d.cli import app

    frames = {}
    for variant in (("photo", "wave"), ("photo", "none")):  # the same mesh with and without the clip
        out = tmp_path / f"{variant[1]}.gif"
        r = CliRunner().invoke(app, ["render", str(rigged[variant][1]), "--turntable", str(out), "--frames", "2",
                                     "--fps", "1", "--size", "64"])
        assert r.exit_code == 0, r.output
        frames[variant[1]] = [np.asarray(f, int) for f in imageio.mimread(out)]

    def top_column(frame):  # where the highest non-white pixel is, relative to the centre column
        rows, cols = np.nonzero((frame[..., :3] < 200).any(-1))
        return abs(float(cols[rows == rows.min()].mean()) - frame.shape[1] / 2)

    # the second frame (t = 1 s, seen from behind): the waving hand is the top of the figure, off to one side;
    # without the clip the head is, in the middle
    assert top_column(frames["wave"][1]) > 8 > 4 > top_column(frames["none"][1])


def test_turning_a_rigged_mesh_around_turns_its_skin_and_clip_with_it(rigged):
    """A person seen from behind is exported turned by 180 degrees: skinning the turned mesh must equal turning the
    skinned one, in the bind pose and through the clip."""
    from human3d.io.gltf_skin import posed_vertices
    from human3d.rig import turn_around

    result, _ = rigged[("photo", "wave")]
    turned = turn_around(result)
    flip = np.array([-1.0, 1.0, -1.0])
    assert np.allclose(turned.vertices, result.vertices * flip)
    for t in (0.0, 0.5 * float(result.skin.clip_times[-1]), float(result.skin.clip_times[-1])):
        expected = posed_vertices(result.skin, result.vertices, t) * flip
        got = posed_vertices(turned.skin, turned.vertices, t)
        assert np.abs(got - expected).max() < 1e-5, t
    moved = posed_vertices(result.skin, result.vertices, 0.5 * float(result.skin.clip_times[-1]))
    assert np.abs(moved - result.vertices).max() > 0.05  # the clip does move the mesh: the check above means something
