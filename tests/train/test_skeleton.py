import numpy as np
import pytest
import torch

from human3d.errors import UsageError
from human3d.train.skeleton import (
    ANNY_JOINTS,
    BONES,
    NUM_BONES,
    SKELETON_JOINTS,
    latent_cameras,
    project_skeleton,
    render_skeleton,
    select_skeleton_joints,
)
from tests.train.poses import standing_joints

R = 48


def test_bone_list_is_a_tree_over_the_skeleton_joints():
    assert NUM_BONES == 23 and len(SKELETON_JOINTS) == 24
    children = [c for _, c in BONES]
    assert len(set(children)) == 23 and set(children) | {"pelvis"} == set(SKELETON_JOINTS)
    assert set(ANNY_JOINTS) == set(SKELETON_JOINTS)


def test_skeleton_images_line_up_with_projected_joints():
    joints = standing_joints()
    img = render_skeleton(joints, resolution=R)  # (6, 23, R, R)
    assert img.shape == (6, NUM_BONES, R, R) and float(img.min()) >= 0 and float(img.max()) <= 1
    uv = project_skeleton(joints[None], latent_cameras(R))[0]  # (6, 24, 2)
    for bone, (a, b) in enumerate(BONES):
        ia, ib = SKELETON_JOINTS.index(a), SKELETON_JOINTS.index(b)
        mid = (uv[0, ia] + uv[0, ib]) / 2  # front view
        u, v = int(mid[0]), int(mid[1])
        assert img[0, bone, v, u] > 0.6, (a, b)
        # far from the bone's segment (more than 4 sigma) the channel is dark
        seg = torch.stack([uv[0, ia], uv[0, ib]])
        far = (seg.mean(0) + torch.tensor([0.0, R / 2])) % R
        if torch.linalg.norm(seg - far, dim=1).min() > 8 and abs(float(far[0] - mid[0])) > 6:
            assert img[0, bone, int(far[1]), int(far[0])] < 0.01


def test_front_view_geometry_matches_the_canvas_convention():
    # the subject's left wrist (+X) lies on the right of the front image, at u = (x + 1) R / 2
    joints = standing_joints()
    img = render_skeleton(joints, resolution=R)
    forearm = BONES.index(("left_elbow", "left_wrist"))
    rows, cols = np.nonzero(img[0, forearm].numpy() > 0.8)
    assert cols.min() >= (0.45 + 1) * R / 2 - 1 and cols.max() <= (0.7 + 1) * R / 2 + 1
    assert np.all(np.abs(rows + 0.5 - (1 - 0.5) * R / 2) <= 1.0)
    # the right view (azimuth 90) looks at the subject's left side: the arm pointing at it collapses to a dot
    # near the image centre column, while the feet (+Z, toward the front) lie left of the ankles
    right = 2
    assert img[right, forearm].sum() < img[0, forearm].sum() / 3
    uv = project_skeleton(joints[None], latent_cameras(R))[0]
    assert uv[right, SKELETON_JOINTS.index("left_foot"), 0] < uv[right, SKELETON_JOINTS.index("left_ankle"), 0]


def test_flipped_views_are_mirrored():
    joints = standing_joints()
    plain = render_skeleton(joints, resolution=R)
    flipped = render_skeleton(joints, resolution=R, flipped_views=(3,))
    torch.testing.assert_close(flipped[3], plain[3].flip(-1))
    torch.testing.assert_close(flipped[:3], plain[:3])


def test_joint_selection_by_anny_names_and_missing_joints():
    joints = standing_joints()
    anny_names = [ANNY_JOINTS[n] for n in SKELETON_JOINTS]
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    picked = select_skeleton_joints(joints[perm], [anny_names[i] for i in perm])
    torch.testing.assert_close(picked, joints)
    with pytest.raises(UsageError, match="left_middle1"):
        select_skeleton_joints(joints[:22], list(SKELETON_JOINTS[:22]))


def test_drawing_is_differentiable_in_the_joints():
    joints = standing_joints().requires_grad_(True)
    render_skeleton(joints, resolution=16).sum().backward()
    assert joints.grad is not None and torch.isfinite(joints.grad).all() and joints.grad.abs().sum() > 0
