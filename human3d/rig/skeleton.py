"""The fitted body's skeleton: rest joints, per-bone transforms of a pose, and linear blend skinning.

A pose follows :mod:`human3d.body.models`: articulated joints rotate about their pivots by axis-angle vectors in
world-aligned rest axes, composed along the kinematic chain (SMPL-X's convention, Anny's ``local-ref``). The fit then
places the model: ``x -> s R (x - o) + t`` with ``o`` the root joint (see ``body.fit._Posed.forward``). Everything
here works from ``BodyFit.params`` and a reloaded body model, and checks that it reproduces the fit's own joints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from human3d.body.models import BodyModel
from human3d.errors import InternalError
from human3d.types import BodyFit


@dataclass
class FittedSkeleton:
    """A body model's skeleton as the fit shaped it, canonical axes.

    names (J); parents (J,) int64, -1 for the root, parents before children; rest_joints: (J, 3) metres, the shaped
    model in its zero pose (before placement); rest_vertices (V, 3) likewise; weights: (V, J) the model's skinning
    weights; pivots: articulated (and finger) joint name -> joint index; pose: joint name -> (3,) rotation vector of
    the fit; place: (4, 4) the fit's similarity (model metres -> canonical frame); fixed: the model's own rotations of
other joints (joint index -> rotation vector, see :func:`fixed_rotations`).
    """

    names: list[str]
    parents: np.ndarray
    rest_joints: np.ndarray
    rest_vertices: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    pivots: dict[str, int]
    pose: dict[str, np.ndarray]
    place: np.ndarray
    fixed: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """Canonical units per model metre of the fit's placement."""
        return float(np.cbrt(np.linalg.det(self.place[:3, :3])))


def shape_tensor(model: BodyModel, params: dict[str, Any]) -> torch.Tensor:
    """(1, S) shape parameters of ``model`` from a fit's ``params['shape']`` (Anny phenotype or SMPL-X betas)."""
    shape = params.get("shape", {})
    if "phenotype" in shape:
        labels = model.phenotype_labels  # type: ignore[attr-defined]  (Anny only)
        values = [float(shape["phenotype"][k]) for k in labels]
    elif "betas" in shape:
        values = [float(b) for b in shape["betas"]]
    else:
        raise InternalError("the body fit carries no shape parameters; rerun the body stage")
    return torch.tensor([values], dtype=torch.float32, device=model.device)


def zero_pose(model: BodyModel, shape: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (J, 3) joints of the shaped model with every joint unrotated (metres, canonical axes).

    ``forward({})`` is that for Anny; SMPL-X's forward always adds its mean hand pose, so its zero pose is taken
    from the shaped template and the joint regressor directly.
    """
    with torch.no_grad():
        if fixed_rotations(model):
            from smplx.lbs import blend_shapes, vertices2joints

            m = model._m  # type: ignore[attr-defined]  (SmplxBody's smplx.SMPLX module)
            v = m.v_template[None] + blend_shapes(shape, m.shapedirs[..., :shape.shape[1]])
            j = vertices2joints(m.J_regressor, v)
            return v[0].cpu().numpy().astype(np.float64), j[0].cpu().numpy().astype(np.float64)
        rest = model.forward({}, shape)
    return rest.vertices[0].cpu().numpy().astype(np.float64), rest.joints[0].cpu().numpy().astype(np.float64)


def skeleton_from_fit(model: BodyModel, fit: BodyFit, tolerance: float = 2e-3) -> FittedSkeleton:
    """Rebuild the fitted skeleton of ``fit`` from ``model`` (the one the fit used, reloaded).

    Raises :class:`InternalError` when the rebuilt joints miss the fit's by more than ``tolerance`` (canonical units),
    i.e. when the fit's parameters no longer describe its body.
    """
    p = fit.params
    rest_vertices, rest_joints = zero_pose(model, shape_tensor(model, p))
    pose = {j: np.asarray(v, dtype=np.float64) for j, v in p.get("body_pose", {}).items() if j in model.pivots}
    place = np.eye(4)
    rot = Rotation.from_rotvec(np.asarray(p.get("global_orient", [0, 0, 0]), dtype=np.float64)).as_matrix()
    s = float(p.get("scale", 1.0))
    t = np.asarray(p.get("translation", [0.0, 0.0, 0.0]), dtype=np.float64)
    place[:3, :3] = s * rot
    place[:3, 3] = t - s * rot @ rest_joints[0]  # the root joint does not move with the articulated joints
    skel = FittedSkeleton(names=list(model.joint_names), parents=np.asarray(model.joint_parents, dtype=np.int64),
                          rest_joints=rest_joints, rest_vertices=rest_vertices,
                          weights=np.asarray(model.skinning_weights, dtype=np.float64), faces=model.faces,
                          pivots=dict(model.pivots), pose=pose, place=place, fixed=fixed_rotations(model))
    posed = apply_points(skel.place, posed_joints(skel, pose_transforms(skel, skel.pose)))
    err = float(np.abs(posed - fit.joints).max()) if len(fit.joints) == len(posed) else float("inf")
    if err > tolerance:
        raise InternalError(f"the body fit's parameters do not reproduce its joints (off by {err:.4f}), so it cannot "
                            "be rigged; pass --no-rig for a static GLB, and report it")
    return skel


def fixed_rotations(model: BodyModel) -> dict[int, np.ndarray]:
    """Joint index -> (3,) rotation vector a model applies in every pose besides the articulated joints: SMPL-X
    built with ``flat_hand_mean=False`` (as :class:`~human3d.body.models.SmplxBody` is) adds its mean hand pose to
    the fingers (joints 25..54, left hand then right). Anny: none."""
    m = getattr(model, "_m", None)
    left, right = getattr(m, "left_hand_mean", None), getattr(m, "right_hand_mean", None)
    if model.name != "smplx" or left is None or right is None:
        return {}
    hands = np.concatenate([np.asarray(left.detach().cpu()), np.asarray(right.detach().cpu())]).reshape(-1, 3)
    return {25 + i: rv.astype(np.float64) for i, rv in enumerate(hands)}


def local_rotations(skel: FittedSkeleton, pose: dict[str, np.ndarray]) -> np.ndarray:
    """(J, 3, 3) each joint's rotation in its parent's (world-aligned rest) axes: the pose's, the model's fixed
    rotations (:func:`fixed_rotations`), identity elsewhere."""
    rots = np.tile(np.eye(3), (len(skel.names), 1, 1))
    for j, rv in skel.fixed.items():
        rots[j] = Rotation.from_rotvec(rv).as_matrix()
    for name, rv in pose.items():
        rots[skel.pivots[name]] = Rotation.from_rotvec(np.asarray(rv, dtype=np.float64)).as_matrix()
    return rots


def pose_transforms(skel: FittedSkeleton, pose: dict[str, np.ndarray]) -> np.ndarray:
    """(J, 4, 4) skinning transforms of ``pose``: rest model space -> posed model space, per bone."""
    local = local_rotations(skel, pose)
    j0 = skel.rest_joints
    glob = np.zeros_like(local)
    head = np.zeros_like(j0)
    for j, parent in enumerate(skel.parents):
        if parent < 0:
            glob[j], head[j] = local[j], j0[j]
        else:
            glob[j] = glob[parent] @ local[j]
            head[j] = head[parent] + glob[parent] @ (j0[j] - j0[parent])
    out = np.tile(np.eye(4), (len(j0), 1, 1))
    out[:, :3, :3] = glob
    out[:, :3, 3] = head - np.einsum("jab,jb->ja", glob, j0)
    return out


def posed_joints(skel: FittedSkeleton, transforms: np.ndarray) -> np.ndarray:
    """(J, 3) joint positions under ``transforms`` (J, 4, 4) (each joint moves with its own bone)."""
    return np.einsum("jab,jb->ja", transforms[:, :3, :3], skel.rest_joints) + transforms[:, :3, 3]


def apply_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(4, 4) affine applied to (N, 3) points."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def blend(transforms: np.ndarray, weights: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Linear blend skinning: (J, 4, 4) transforms, (N, J) dense weights, (N, 3) points -> (N, 3)."""
    m = np.einsum("nj,jab->nab", weights, transforms[:, :3, :])  # (N, 3, 4)
    return np.einsum("nab,nb->na", m[:, :, :3], points) + m[:, :, 3]


def blend_sparse(transforms: np.ndarray, joints: np.ndarray, weights: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Linear blend skinning with K influences: joints (N, K) int, weights (N, K), points (N, 3) -> (N, 3)."""
    m = np.einsum("nk,nkab->nab", weights, transforms[joints][:, :, :3, :])
    return np.einsum("nab,nb->na", m[:, :, :3], points) + m[:, :, 3]
