"""Body-model adapters: the protocol's shapes and invariants, canonical axes, the vertex subset, model choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from human3d.body.models import KEYPOINT_NAMES, anny_cache_dir, load_body_model
from human3d.errors import MissingWeightsError, UsageError


def test_anny_protocol_shapes_and_invariants(anny_model):
    m = anny_model
    out = m.forward({}, m.shape_mean[None])
    v, j, k = out.vertices[0].numpy(), out.joints[0].numpy(), out.keypoints[0].numpy()
    assert v.shape == (13718, 3) and j.shape == (104, 3) and k.shape == (len(KEYPOINT_NAMES), 3)
    assert len(m.joint_names) == 104 and len(m.joint_parents) == 104 and m.joint_parents[0] == -1
    assert m.faces.dtype == np.int64 and m.faces.min() == 0 and m.faces.max() == len(v) - 1
    w = m.skinning_weights
    assert w.shape == (len(v), 104)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-4)
    # faces wound counter-clockwise seen from outside: positive signed volume
    t = v[m.faces]
    assert np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() > 0
    # canonical axes: +Y up (head above feet), facing +Z (nose in front of the ears), subject's left on +X
    kp = dict(zip(KEYPOINT_NAMES, k))
    assert kp["nose"][1] > kp["left_hip"][1] > kp["left_ankle"][1]
    assert kp["nose"][2] > kp["left_ear"][2]
    assert kp["left_shoulder"][0] > 0 > kp["right_shoulder"][0]
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.4 < height < 1.9  # an average adult, in metres


def test_anny_rotation_convention(anny_model):
    """A rotation about +Z at the left shoulder raises the left arm sideways; about -X at the hip swings the thigh
    forward (world-aligned axes, composed along the chain)."""
    m = anny_model
    s = m.shape_mean[None]
    i_w, i_k = KEYPOINT_NAMES.index("left_wrist"), KEYPOINT_NAMES.index("left_knee")
    rest = m.forward({}, s).keypoints[0]
    raised = m.forward({"left_shoulder": torch.tensor([[0.0, 0.0, 1.5]])}, s).keypoints[0]
    assert raised[i_w, 1] > rest[i_w, 1] + 0.3
    forward = m.forward({"left_hip": torch.tensor([[-1.2, 0.0, 0.0]])}, s).keypoints[0]
    assert forward[i_k, 2] > rest[i_k, 2] + 0.2 and forward[i_k, 1] > rest[i_k, 1]


def test_anny_subset_matches_full_model(anny_model):
    m = anny_model
    rng = np.random.default_rng(0)
    sub = m.subset(np.sort(rng.choice(13718, 500, replace=False)))
    rv = {"left_elbow": torch.tensor([[0.3, 0.1, -0.2]]), "spine2": torch.tensor([[0.1, 0.2, 0.0]])}
    shape = torch.tensor([[0.3, 0.6, 0.5, 0.7, 0.4, 0.5]])
    full, part = m.forward(rv, shape), sub.forward(rv, shape)
    torch.testing.assert_close(part.vertices[0], full.vertices[0, sub.subset_index], atol=1e-5, rtol=0)
    torch.testing.assert_close(part.keypoints, full.keypoints, atol=1e-5, rtol=0)
    torch.testing.assert_close(part.joints, full.joints, atol=1e-5, rtol=0)
    # the cached shape state gives the same body
    again = sub.forward(rv, shape, sub.shape_state(shape))
    torch.testing.assert_close(again.vertices, part.vertices)


def test_anny_shape_changes_height(anny_model):
    m = anny_model
    lo = m.shape_mean.clone()
    hi = m.shape_mean.clone()
    k = m.phenotype_labels.index("height")
    lo[k], hi[k] = 0.1, 0.9
    h = [float(np.ptp(m.forward({}, s[None]).vertices[0, :, 1].numpy())) for s in (lo, hi)]
    assert h[1] > h[0] + 0.3
    assert set(m.shape_params(hi[None])["phenotype"]) == set(m.phenotype_labels)


def test_anny_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ANNY_CACHE_DIR", str(tmp_path / "anny"))
    assert anny_cache_dir() == tmp_path / "anny"
    monkeypatch.delenv("ANNY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert anny_cache_dir() == tmp_path / "xdg" / "human3d" / "anny"


def test_smplx_missing_files_says_where(tmp_path, monkeypatch):
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingWeightsError) as err:
        load_body_model("smplx", weights_dir=tmp_path / "w")
    msg = str(err.value)
    assert str(tmp_path / "w" / "smplx") in msg and "smpl-x.is.tue.mpg.de" in msg


def test_model_choice(tmp_path, monkeypatch, anny_model):
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_body_model("auto", weights_dir=tmp_path).name == "anny"
    with pytest.raises(UsageError):
        load_body_model("smpl", weights_dir=tmp_path)


def _tiny_smplx_file(folder: Path) -> None:
    """A random SMPL-X-format npz: real topology sizes (so smplx's fixed vertex ids are valid), random values."""
    rng = np.random.default_rng(0)
    v, j = 10475, 55
    parents = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
                       + [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
                       + [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53])
    joints = rng.normal(0, 0.3, (j, 3))
    template = joints[rng.integers(0, j, v)] + rng.normal(0, 0.02, (v, 3))
    weights = np.zeros((v, j))
    weights[np.arange(v), rng.integers(0, j, v)] = 1.0
    reg = np.zeros((j, v))
    reg[np.arange(j), rng.choice(v, j, replace=False)] = 1.0
    np.savez(folder / "SMPLX_NEUTRAL.npz", v_template=template, f=rng.integers(0, v, (20000, 3)),
             shapedirs=rng.normal(0, 1e-3, (v, 3, 20)), posedirs=rng.normal(0, 1e-4, (v, 3, 486)),
             J_regressor=reg, weights=weights, kintree_table=np.stack([parents, np.arange(j)]),
             hands_componentsl=np.eye(45), hands_componentsr=np.eye(45), hands_meanl=np.zeros(45),
             hands_meanr=np.zeros(45), lmk_faces_idx=np.zeros(51, np.int64), lmk_bary_coords=np.full((51, 3), 1 / 3))


def test_smplx_adapter_with_tiny_random_model(tmp_path, monkeypatch):
    pytest.importorskip("smplx")
    folder = tmp_path / "w" / "smplx"
    folder.mkdir(parents=True)
    _tiny_smplx_file(folder)
    m = load_body_model("auto", weights_dir=tmp_path / "w")
    assert m.name == "smplx"
    out = m.forward({"left_elbow": torch.tensor([[0.0, 0.5, 0.0]])}, torch.zeros(1, 10))
    assert out.vertices.shape == (1, 10475, 3) and out.joints.shape == (1, 55, 3)
    assert out.keypoints.shape == (1, len(KEYPOINT_NAMES), 3)
    assert m.skinning_weights.shape == (10475, 55)
    sub = m.subset(np.array([3, 7, 11]))
    torch.testing.assert_close(sub.forward({}, torch.zeros(1, 10)).vertices[0],
                               m.forward({}, torch.zeros(1, 10)).vertices[0, [3, 7, 11]])
