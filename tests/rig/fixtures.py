"""Test data for the rig: a body fit made directly from known parameters (no optimisation), and a carved-like mesh
around it (the body surface pushed out like clothing, subdivided, hair bulging behind the head, a loose pendant,
split along a UV-like seam)."""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy.spatial.transform import Rotation

from human3d.body.models import ARTICULATED_JOINTS, BodyModel
from human3d.body.synthetic import pose_rotvecs
from human3d.ops.mesh import vertex_normals
from human3d.types import BodyFit, TexturedMesh

#: Arms down, the upper arms against the ribs (2 mm apart), thighs 2.4 cm apart: the carved-like surface 1.2 cm
#: out from the skin overlaps itself there. Anny's rest pose holds the arms ~45 degrees out.
ARMS_DOWN = {"left_shoulder": (0.0, 0.0, -0.62), "right_shoulder": (0.0, 0.0, 0.62), "left_elbow": -0.5,
             "right_elbow": -0.5, "left_hip": (0.0, 0.0, -0.08), "right_hip": (0.0, 0.0, 0.08)}


def make_fit(model: BodyModel, pose: dict, *, scale: float = 1.1, yaw_deg: float = 8.0,
             height_m: float = 1.70) -> BodyFit:
    """A BodyFit laid out as ``body.fit`` writes it, from a pose of ``synthetic.POSES``' form."""
    rv = pose_rotvecs(model, pose)
    shape = model.shape_mean[None].float()
    t = {j: torch.as_tensor(np.asarray(v), dtype=torch.float32)[None] for j, v in rv.items()}
    with torch.no_grad():
        body = model.forward(t, shape)
        standing = model.forward({}, shape)
    glob = Rotation.from_euler("y", yaw_deg, degrees=True)
    rot = glob.as_matrix()
    origin = body.joints[0, 0].numpy().astype(np.float64)
    trans = np.array([0.02, -0.05, 0.0])

    def place(p):
        return scale * (p.astype(np.float64) - origin) @ rot.T + trans

    v, j = place(body.vertices[0].numpy()), place(body.joints[0].numpy())
    dz = j[0, 2]
    v[:, 2] -= dz
    j[:, 2] -= dz
    sv = standing.vertices[0].numpy()
    model_height = float(sv[:, 1].max() - sv[:, 1].min())
    params = {"global_orient": glob.as_rotvec().tolist(),
              "body_pose": {k: np.asarray(rv.get(k, np.zeros(3)), float).tolist() for k in ARTICULATED_JOINTS},
              "scale": scale, "translation": [trans[0], trans[1], -dz], "shape": model.shape_params(shape)}
    return BodyFit(vertices=v.astype(np.float32), faces=model.faces.astype(np.int64), joints=j.astype(np.float32),
                   joint_names=list(model.joint_names), model=model.name, params=params, height_m=height_m,
                   canonical_height=model_height * scale)


def carved_like(fit: BodyFit, model: BodyModel, offset_m: float = 0.012, trousers_m: float = 0.022,
                hair_m: float = 0.07,
                subdivide: bool = False) -> tuple[TexturedMesh, np.ndarray]:
    """A mesh around ``fit``'s body: the skin pushed out 1.2 cm (2.2 cm on the legs: the trousers' legs touch), hair
    bulging behind the head, a pendant in front of the chest, a seam (other topology with ``subdivide``), and the
    ground truth of its weights: (V, J), the body's weights where each vertex came from (zeros on the pendant)."""
    per_m = fit.canonical_height / fit.height_m
    v = fit.vertices.astype(np.float64)
    n = vertex_normals(v, fit.faces)
    push = np.full(len(v), offset_m * per_m)
    names = model.joint_names
    leg_bones = [j for j, b in enumerate(names) if b.startswith(("upperleg", "lowerleg"))]
    push[np.asarray(model.skinning_weights)[:, leg_bones].sum(1) > 0.5] = trousers_m * per_m  # baggy trousers
    head = np.isin(model.skinning_weights.argmax(1), [names.index(b) for b in names if b in ("head",)])
    behind = head & (n[:, 2] < -0.2) & (n[:, 1] > -0.3)
    push[behind] += hair_m * per_m * np.clip(-n[behind, 2], 0, 1)
    truth = np.asarray(model.skinning_weights, np.float64)
    sub_v, sub_f = v + n * push[:, None], fit.faces
    if subdivide:
        sub_v, sub_f, attrs = trimesh.remesh.subdivide(sub_v, sub_f, vertex_attributes={"w": truth})
        truth = attrs["w"]
    chest = fit.joints[names.index("spine01")].astype(np.float64) if "spine01" in names else sub_v.mean(0)
    near_chest = np.linalg.norm(sub_v[:, :2] - chest[:2], axis=1) < 0.12 * per_m
    front = sub_v[near_chest, 2].max()
    pendant = trimesh.creation.icosphere(subdivisions=1, radius=0.025 * per_m)
    pv = pendant.vertices + np.array([chest[0], chest[1] - 0.12 * per_m, front + 0.06 * per_m])
    verts = np.concatenate([sub_v, pv])
    faces = np.concatenate([sub_f, pendant.faces + len(sub_v)])
    truth = np.concatenate([truth, np.zeros((len(pv), truth.shape[1]))])
    # a UV-like seam: faces right of x = 0 get their own copies of their vertices
    right = verts[faces].mean(1)[:, 0] > 0
    used = np.unique(faces[right])
    copy = np.full(len(verts), -1)
    copy[used] = len(verts) + np.arange(len(used))
    faces = faces.copy()
    faces[right] = copy[faces[right]]
    verts = np.concatenate([verts, verts[used]])
    truth = np.concatenate([truth, truth[used]])
    keep = np.unique(faces)
    remap = np.full(len(verts), -1)
    remap[keep] = np.arange(len(keep))
    colours = np.full((len(keep), 3), 180, np.uint8)
    mesh = TexturedMesh(vertices=verts[keep].astype(np.float32), faces=remap[faces], vertex_colors=colours,
                        height_m=fit.height_m, canonical_height=fit.canonical_height)
    return mesh, truth[keep]
