"""Weight transfer onto a carved-like mesh: every vertex weighted, seams agree, hair and loose parts follow the
right bones, and nothing leaks where arms touch the torso or the thighs touch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from human3d.config import RigConfig
from human3d.ops.mesh import inverse_length_laplacian
from human3d.rig import transfer_mesh_weights
from human3d.rig.transfer import bone_neighbourhood, inpaint, separate_fused_parts, top_k
from tests.rig.regions import region_weight, subtree


@pytest.fixture(scope="module")
def transferred(arms_down):
    fit, mesh, skel, truth = arms_down
    return transfer_mesh_weights(mesh, fit, skel, RigConfig())


def _dense(tr, n_joints):
    out = np.zeros((len(tr.joints), n_joints))
    np.add.at(out, (np.arange(len(tr.joints))[:, None].repeat(tr.joints.shape[1], 1), tr.joints), tr.weights)
    return out


def test_every_vertex_has_at_most_four_normalised_weights_and_seam_copies_agree(transferred, arms_down):
    _, mesh, _, _ = arms_down
    tr = transferred
    assert tr.joints.shape == tr.weights.shape == (len(mesh.vertices), 4)
    assert np.all(tr.weights >= 0) and np.abs(tr.weights.sum(1) - 1).max() < 1e-9
    _, first, inverse = np.unique(mesh.vertices, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    assert len(first) < len(mesh.vertices)  # the fixture has a seam
    assert tr.cut.sum() <= 0.002 * len(mesh.faces)  # nothing is fused in it: (almost) no face is cut
    np.testing.assert_array_equal(tr.joints, tr.joints[first][inverse])
    np.testing.assert_array_equal(tr.weights, tr.weights[first][inverse])


def test_hair_follows_the_head_and_the_loose_pendant_the_torso(transferred, arms_down, anny):
    fit, mesh, _, truth = arms_down
    names, parents = anny.joint_names, anny.joint_parents
    dense = _dense(transferred, len(names))
    per_m = fit.canonical_height / fit.height_m
    gap, _ = cKDTree(fit.vertices).query(mesh.vertices)
    hair = (region_weight(truth, names, parents, "head") > 0.99) & (gap > 0.03 * per_m)
    assert hair.sum() > 100
    far = gap > RigConfig().trust_distance_m * per_m
    assert (hair & far).sum() > 20 and np.all(transferred.source[hair & far] == 1)  # too far to trust: inpainted
    assert dense[hair][:, subtree(names, parents, "neck01")].sum(1).min() > 0.99  # head and neck, nothing else
    pendant = truth.sum(1) == 0
    assert pendant.sum() > 20 and np.all(transferred.source[pendant] == 2)
    torso = [names.index(b) for b in names if b.startswith(("spine", "root", "pelvis", "clavicle"))]
    assert dense[pendant][:, torso].sum(1).min() > 0.9


@pytest.mark.parametrize("part, other", [("upperarm01.L", "spine05"), ("upperarm01.R", "spine05"),
                                         ("upperleg01.L", "upperleg01.R"), ("upperleg01.R", "upperleg01.L")])
def test_no_weight_leaks_where_body_parts_touch(transferred, arms_down, anny, part, other):
    """Vertices the body gives no weight on ``part`` get (almost) none, although the fixture's surface overlaps
    itself there: a nearest-vertex transfer leaks, ours does not."""
    fit, mesh, _, truth = arms_down
    names, parents = anny.joint_names, anny.joint_parents
    bones = subtree(names, parents, part)
    if other == "spine05":  # the torso: spine bones without the arms, neck and head
        exclude = set(subtree(names, parents, "clavicle.L")) | set(subtree(names, parents, "clavicle.R")) | set(
            subtree(names, parents, "neck01"))
        region = [j for j in subtree(names, parents, "spine05") if j not in exclude]
    else:
        region = subtree(names, parents, other)
    clean = (truth[:, region].sum(1) > 0.99) & (truth[:, bones].sum(1) == 0)
    assert clean.sum() > 300
    ours = _dense(transferred, len(names))[:, bones].sum(1)
    _, nn = cKDTree(fit.vertices).query(mesh.vertices)
    naive = np.asarray(anny.skinning_weights, np.float64)[nn][:, bones].sum(1)
    assert naive[clean].max() > 0.5  # the parts do touch: a naive transfer leaks
    assert ours[clean].max() < 0.02, ours[clean].max()


def test_inpainting_is_harmonic_between_constraints():
    # a strip of 11 x 2 vertices: weights fixed at the two ends, the middle interpolates linearly
    xs = np.arange(11, dtype=np.float64)
    v = np.concatenate([np.stack([xs, np.zeros(11), np.zeros(11)], 1), np.stack([xs, np.ones(11), np.zeros(11)], 1)])
    f = np.concatenate([[[i, i + 1, 11 + i], [i + 1, 12 + i, 11 + i]] for i in range(10)])
    known = np.isin(np.arange(22), [0, 11, 10, 21])
    values = np.zeros((22, 2))
    values[[0, 11], 0] = 1.0
    values[[10, 21], 1] = 1.0
    out = inpaint(inverse_length_laplacian(v, f), known, values)
    np.testing.assert_allclose(out[:11, 1], xs / 10, atol=0.03)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-9)


def test_top_k_keeps_the_strongest_and_renormalises():
    w = np.array([[0.1, 0.5, 0.05, 0.2, 0.15, 0.0], [1.0, 0, 0, 0, 0, 0]])
    j, k = top_k(w, 4)
    assert list(j[0]) == [1, 3, 4, 0] and k[0].sum() == pytest.approx(1.0)
    assert list(k[1]) == [1.0, 0.0, 0.0, 0.0] and list(j[1]) == [0, 0, 0, 0]


def test_a_bridge_between_parts_that_never_touch_on_the_body_is_cut():
    # a body of three bones in a row (0-1-2, regions 0 and 2 two hops apart with hops=1: incompatible) and a mesh
    # strip from bone 0 to bone 2 whose middle blends them, as inpainting over a fused bridge would
    body_faces = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 4], [3, 5, 4]])
    body_w = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    compatible = bone_neighbourhood(body_faces, body_w, hops=1)
    assert compatible[0, 1] and compatible[1, 2] and not compatible[0, 2]
    t = np.linspace(0, 1, 11)
    dense = np.zeros((22, 3))
    dense[:, 0] = np.r_[1 - t, 1 - t]
    dense[:, 2] = np.r_[t, t]
    f = np.concatenate([[[i, i + 1, 11 + i], [i + 1, 12 + i, 11 + i]] for i in range(10)])
    kept, cut = separate_fused_parts(dense, f, compatible)
    assert np.all((kept == 0) | (kept == 1))  # every vertex on one side only
    assert 1 <= cut.sum() <= 3  # only the faces across the middle
