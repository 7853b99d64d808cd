"""Skeletal images R(J(theta)): the 23 bones of a posed body drawn into the multi-view cameras, one channel per bone.

The bones are SMPL's kinematic tree (24 joints, 23 bones), stated over SMPL-X joint names (:data:`BONES`); SMPL's
``left_hand``/``right_hand`` joints, which SMPL-X replaces by finger joints, are SMPL-X's ``left_middle1`` /
``right_middle1`` (the base of the middle finger). Joints of other body models are looked up through a name map:
:data:`ANNY_JOINTS` for Anny's bone heads.

Joints are points of the canonical frame of :mod:`human3d.cameras` (the framed image's canvas spans x, y in
[-1, 1] on the front view). They are projected orthographically into each view at the *latent* resolution (96^2
for 768^2 images) and every bone is drawn as a soft line: a pixel's value is exp(-d^2 / (2 sigma^2)), d being its
distance in pixels to the projected segment. Views the diffusion model predicts mirrored (PSHuman's back and left,
``flipped_views``) are mirrored left-right too, so each skeletal image lines up with the latent it is compared to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from human3d.cameras import OrthoCamera, body_cameras
from human3d.errors import UsageError

#: Joints the skeleton reads, SMPL-X names; the hands are the middle-finger bases (SMPL's hand joints).
SKELETON_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_middle1", "right_middle1",
)

#: The 23 bones (parent joint, child joint), one skeletal-image channel each, in this order.
BONES: tuple[tuple[str, str], ...] = (
    ("pelvis", "left_hip"), ("pelvis", "right_hip"), ("pelvis", "spine1"),
    ("left_hip", "left_knee"), ("right_hip", "right_knee"), ("spine1", "spine2"),
    ("left_knee", "left_ankle"), ("right_knee", "right_ankle"), ("spine2", "spine3"),
    ("left_ankle", "left_foot"), ("right_ankle", "right_foot"),
    ("spine3", "neck"), ("spine3", "left_collar"), ("spine3", "right_collar"), ("neck", "head"),
    ("left_collar", "left_shoulder"), ("right_collar", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
    ("left_wrist", "left_middle1"), ("right_wrist", "right_middle1"),
)
NUM_BONES = len(BONES)

#: SMPL-X joint name -> Anny bone whose head stands in for it (Anny's ``.L`` is the subject's left). Approximate
#: where the rigs differ: Anny's ``root`` for the pelvis, the middle toe's base for the foot joint.
ANNY_JOINTS: dict[str, str] = {
    "pelvis": "root", "left_hip": "upperleg01.L", "right_hip": "upperleg01.R",
    "spine1": "spine05", "spine2": "spine03", "spine3": "spine01",
    "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R", "left_ankle": "foot.L", "right_ankle": "foot.R",
    "left_foot": "toe3-1.L", "right_foot": "toe3-1.R", "neck": "neck01", "head": "head",
    "left_collar": "clavicle.L", "right_collar": "clavicle.R",
    "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L", "right_elbow": "lowerarm01.R", "left_wrist": "wrist.L", "right_wrist": "wrist.R",
    "left_middle1": "finger3-1.L", "right_middle1": "finger3-1.R",
}

#: Default line width: sigma in latent pixels (a 768 image's bone is then ~16 image pixels wide at half height).
DEFAULT_SIGMA = 1.0

_BONE_INDEX = np.array([[SKELETON_JOINTS.index(a), SKELETON_JOINTS.index(b)] for a, b in BONES])


def skeleton_joint_indices(joint_names: Sequence[str]) -> list[int]:
    """Rows of a body model's joint array holding :data:`SKELETON_JOINTS`, by SMPL-X name or Anny's bone name.

    Raises UsageError naming the joints the list lacks.
    """
    index = {n: i for i, n in enumerate(joint_names)}
    rows, missing = [], []
    for name in SKELETON_JOINTS:
        row = index.get(name, index.get(ANNY_JOINTS[name]))
        if row is None:
            missing.append(name)
        else:
            rows.append(row)
    if missing:
        raise UsageError(f"the pose lacks joints {missing} (SMPL-X names, or Anny's: "
                         f"{[ANNY_JOINTS[m] for m in missing]}); give SMPL-X or Anny joints")
    return rows


def select_skeleton_joints(joints: torch.Tensor, joint_names: Sequence[str]) -> torch.Tensor:
    """(..., J, 3) joints named ``joint_names`` -> (..., 24, 3) in the order of :data:`SKELETON_JOINTS`."""
    rows = torch.as_tensor(skeleton_joint_indices(joint_names), device=joints.device)
    return joints.index_select(-2, rows)


def latent_cameras(resolution: int = 96, views: Sequence[OrthoCamera] | None = None) -> list[OrthoCamera]:
    """The body views (or ``views``) at ``resolution`` pixels: skeletal images live at latent resolution."""
    base = views if views is not None else body_cameras(resolution)
    return [OrthoCamera(c.name, c.azimuth_deg, resolution, c.center, c.half_extent) for c in base]


def project_skeleton(joints: torch.Tensor, cameras: Sequence[OrthoCamera],
                     flipped_views: Sequence[int] = ()) -> torch.Tensor:
    """(B, 24, 3) canonical-frame joints -> (B, V, 24, 2) pixel coordinates (u right, v down, centres at +0.5).

    Views in ``flipped_views`` are mirrored left-right (u -> R - u), as the diffusion model predicts them.
    """
    uvs = []
    for i, cam in enumerate(cameras):
        uv, _ = cam.project(joints)
        if i in flipped_views:
            uv = torch.stack([cam.resolution - uv[..., 0], uv[..., 1]], -1)
        uvs.append(uv)
    return torch.stack(uvs, 1)


def draw_bones(uv: torch.Tensor, resolution: int, sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """(B, V, 24, 2) projected joints -> (B, V, 23, R, R) soft lines in [0, 1], one channel per bone.

    Differentiable in ``uv``. Value = exp(-d^2 / (2 sigma^2)), d = distance from the pixel centre to the segment.
    """
    idx = torch.as_tensor(_BONE_INDEX, device=uv.device)
    a, b = uv[..., idx[:, 0], :], uv[..., idx[:, 1], :]  # (B, V, 23, 2)
    centres = torch.arange(resolution, device=uv.device, dtype=uv.dtype) + 0.5
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    p = torch.stack([xx, yy], -1).reshape(1, 1, 1, -1, 2)  # (1, 1, 1, R*R, 2)
    ab = (b - a).unsqueeze(-2)  # (B, V, 23, 1, 2)
    ap = p - a.unsqueeze(-2)
    # nearest point of the segment; a zero-length bone degenerates to its joint
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
    d2 = ((ap - t.unsqueeze(-1) * ab) ** 2).sum(-1)
    img = torch.exp(-d2 / (2.0 * sigma * sigma))
    return img.reshape(*uv.shape[:2], len(BONES), resolution, resolution)


def render_skeleton(
    joints: torch.Tensor,
    joint_names: Sequence[str] = SKELETON_JOINTS,
    resolution: int = 96,
    cameras: Sequence[OrthoCamera] | None = None,
    flipped_views: Sequence[int] = (),
    sigma: float = DEFAULT_SIGMA,
) -> torch.Tensor:
    """R(J): (B, J, 3) or (J, 3) canonical joints -> (B, V, 23, R, R) (or (V, 23, R, R)) skeletal images.

    cameras: the views (default: the six body views of DESIGN.md §3), re-made at ``resolution``.
    """
    single = joints.ndim == 2
    j = select_skeleton_joints(joints[None] if single else joints, joint_names)
    cams = latent_cameras(resolution, cameras)
    img = draw_bones(project_skeleton(j, cams, flipped_views), resolution, sigma)
    return img[0] if single else img

