"""The rig stage: a skeleton from the body fit, skinning weights on the carved mesh, a rest pose and a clip.

``rig_mesh(textured, body, cfg, ctx)`` returns the textured mesh with a :class:`~human3d.types.Skin` (canonical
frame; the export maps it into metres with the mesh). Parts: :mod:`.skeleton` (the fitted skeleton rebuilt from
``BodyFit.params``), :mod:`.transfer` (robust weight transfer), :mod:`.humanoid` (VRM/Unity bone roles),
:mod:`.rest_pose` (A/T-pose unposing), :mod:`.animation` (procedural clips).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from human3d.body.parts import HIPS, TORSO, bone_parts
from human3d.config import RigConfig
from human3d.context import StageContext
from human3d.errors import InternalError, UsageError
from human3d.types import BodyFit, Skin, TexturedMesh


def check_rig_config(cfg: RigConfig) -> None:
    """Refuse unknown rest poses or clips before any work."""
    from human3d.rig.animation import CLIPS
    from human3d.rig.rest_pose import REST_POSES

    if cfg.rest_pose not in REST_POSES:
        raise UsageError(f"unknown rest pose {cfg.rest_pose!r}; use one of {', '.join(REST_POSES)}")
    if cfg.animation not in CLIPS:
        raise UsageError(f"unknown animation {cfg.animation!r}; use one of {', '.join(CLIPS)}")
    if not 1 <= cfg.max_influences <= 4:
        raise UsageError("max_influences must be 1..4 (glTF JOINTS_0 holds four)")


def rig_mesh(textured: TexturedMesh, body: BodyFit, cfg: RigConfig, ctx: StageContext) -> TexturedMesh:
    """Pipeline stage: ``textured`` with a skin bound to the fitted body's skeleton (see module docstring)."""
    from human3d.body.models import load_body_model
    from human3d.rig.skeleton import skeleton_from_fit

    check_rig_config(cfg)
    if body.model not in ("anny", "smplx"):
        raise InternalError(f"the body fit names no known body model ({body.model!r}) to take a skeleton from; "
                            "pass --no-rig for a static GLB")
    t0 = time.perf_counter()
    ctx.progress(0.0, "loading body model")
    model = load_body_model(body.model, ctx.device, ctx.weights_dir, ctx)
    skel = skeleton_from_fit(model, body)
    t_model = time.perf_counter() - t0
    ctx.progress(0.3, "transferring skin weights")
    out = rig_with_skeleton(textured, body, skel, cfg, model=body.model)
    out.skin.report["seconds_model"] = round(t_model, 3)
    out.skin.report["seconds"] = round(time.perf_counter() - t0, 3)
    created = out.skin.report.get("self_intersections_created", 0)
    if created:
        ctx.warn(f"unposing to {cfg.rest_pose} made {created} pairs of torso triangles cross each other; look at "
                 "the result, or keep --rest-pose photo")
    ctx.progress(1.0, f"rigged: {len(out.skin.joint_names)} joints, {out.skin.report['closest_surface']:.0%} "
                      "of vertices from the body surface")
    return out


def rig_with_skeleton(textured: TexturedMesh, body: BodyFit, skel, cfg: RigConfig, model: str,
                      transfer=None) -> TexturedMesh:
    """The rig of ``textured`` for a rebuilt skeleton (``skeleton.FittedSkeleton``) of ``body``; ``transfer``: the
    mesh's weights when already transferred (:func:`transfer_mesh_weights`), else computed here."""
    from human3d.rig.animation import AIM_CHILD, make_clip
    from human3d.rig.humanoid import humanoid_map
    from human3d.rig.rest_pose import self_intersections, unpose_transforms
    from human3d.rig.skeleton import blend_sparse

    t0 = time.perf_counter()
    tr = transfer if transfer is not None else transfer_mesh_weights(textured, body, skel, cfg)
    report: dict = dict(tr.report)
    report["seconds_transfer"] = round(time.perf_counter() - t0, 3)
    # Faces bridging body parts that cannot touch (a hand carved onto a thigh) are cut only when the file itself
    # moves the mesh (an A/T rest pose or a clip), where they would tear into spikes; a photo-pose GLB stays one
    # closed surface, and those bridges simply stretch if the user poses the parts apart.
    moves = cfg.rest_pose != "photo" or cfg.animation != "none"
    cut = tr.cut if moves and tr.cut is not None else None
    report["fused_bridge_faces"] = report.pop("faces_cut", 0)
    report["faces_cut"] = int(cut.sum()) if cut is not None else 0
    vertices = np.asarray(textured.vertices, np.float64)
    joints = np.asarray(body.joints, np.float64)
    axes = skel.place[:3, :3] / skel.scale
    if cfg.rest_pose != "photo":
        maps, joints = unpose_transforms(skel, cfg.rest_pose)
        torso = np.isin(bone_parts(skel.names), (TORSO, HIPS))
        kept = textured.faces if cut is None else textured.faces[~cut]
        face_torso = torso[tr.joints[:, 0]][kept].all(1)
        before = self_intersections(vertices, kept, face_torso)
        vertices = blend_sparse(maps, tr.joints, tr.weights, vertices)
        after = self_intersections(vertices, kept, face_torso)
        report.update(self_intersections_torso_before=before, self_intersections_torso_after=after,
                      self_intersections_created=max(0, after - before))
        axes = np.eye(3)
    bind = np.tile(np.eye(4), (len(skel.names), 1, 1))
    bind[:, :3, 3] = joints
    roles = humanoid_map(model, skel.names)
    skin = Skin(joint_names=list(skel.names), parents=skel.parents.copy(), bind_matrices=bind,
                joints=tr.joints, weights=tr.weights.astype(np.float32), humanoid=roles, rest_pose=cfg.rest_pose,
                report=report)
    if cfg.animation != "none":
        index = {r: skel.names.index(n) for r, n in roles.items()}
        children = {r: index[c] for r, c in AIM_CHILD.items() if r in index and c in index}
        times, moved, rot = make_clip(cfg.animation, skel.parents, joints, axes, index, children)
        skin.clip_name, skin.clip_times, skin.clip_joints, skin.clip_rotations = cfg.animation, times, moved, rot
    faces = textured.faces if cut is None else textured.faces[~cut]
    return dataclasses.replace(textured, vertices=vertices.astype(np.float32), faces=faces, skin=skin)


def transfer_mesh_weights(textured: TexturedMesh, body: BodyFit, skel, cfg: RigConfig):
    """The body model's weights on ``textured`` (a :class:`~human3d.rig.transfer.TransferResult`)."""
    from human3d.rig.transfer import transfer_weights

    per_metre = (body.canonical_height / body.height_m) if body.height_m > 0 else 1.0
    torso = np.zeros(len(skel.names), bool)
    head = skel.names.index("head") if "head" in skel.names else 0
    while head >= 0:  # the root-to-head chain
        torso[head] = True
        head = int(skel.parents[head])
    return transfer_weights(textured.vertices, textured.faces, body.vertices, body.faces, skel.weights,
                            trust_distance=cfg.trust_distance_m * per_metre, trust_angle_deg=cfg.trust_angle_deg,
                            max_influences=cfg.max_influences, parents=skel.parents, torso=torso)


def turn_around(mesh: TexturedMesh) -> TexturedMesh:
    """``mesh`` turned 180 degrees about +Y (x, z -> -x, -z), with its skin: joint positions turned and every
    joint-frame rotation conjugated by the turn (bind orientations stay identity, a clip's quaternions (x, y, z, w)
    become (-x, y, -z, w)), so skinning the turned mesh equals turning the skinned one at every time of its clip.
    Used when the person was photographed from behind (the export's front is the person's front)."""
    v = np.array(mesh.vertices, copy=True)
    v[:, [0, 2]] *= -1.0
    normals = None
    if mesh.normals is not None:
        normals = np.array(mesh.normals, copy=True)
        normals[:, [0, 2]] *= -1.0
    skin = mesh.skin
    if skin is not None:
        turn = np.diag([-1.0, 1.0, -1.0, 1.0])
        bind = turn @ np.asarray(skin.bind_matrices, np.float64) @ turn  # the turn is its own inverse
        rotations = None
        if skin.clip_rotations is not None:
            rotations = np.array(skin.clip_rotations, copy=True)
            rotations[..., [0, 2]] *= -1.0
        skin = dataclasses.replace(skin, bind_matrices=bind, clip_rotations=rotations)
    return dataclasses.replace(mesh, vertices=v.astype(np.float32), normals=normals, skin=skin)
