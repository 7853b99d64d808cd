import json

import numpy as np
import pytest
import torch

from human3d.errors import BadInputError, MissingWeightsError, UsageError
from human3d.train.data import SkelDataset
from human3d.train.posescore import SkeletonDistance, load_skeleton_distance
from human3d.train.skel_predictor import SkeletalImagePredictor, SkelTrainConfig, split_view_latents, train_skel
from tests.train.synthetic import LATENT_RES, write_skel_dataset

SMALL = (8, 16, 16, 32, 32)


def test_paper_architecture_shapes():
    model = SkeletalImagePredictor()  # 6 views x 8 latent channels, 32 -> 512
    widths = [lvl["sample"].out_channels for lvl in model.down]
    assert widths == [64, 128, 256, 512] and model.stem[0].out_channels == 32
    x = torch.randn(2, 6, 8, 64, 64)
    feats = []
    h = model.stem(x.reshape(2, 48, 64, 64))
    for lvl in model.down:
        h = lvl["sample"](lvl["block"](h))
        feats.append(tuple(h.shape[-3:]))
    assert feats[-1] == (512, 4, 4)  # 64^2 -> 4^2 after the four down blocks
    with torch.no_grad():
        assert model(x).shape == (2, 6, 23, 64, 64)
        assert model(torch.randn(1, 6, 8, 96, 96)).shape == (1, 6, 23, 96, 96)  # 768 images
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 6, 8, 40, 40))


def test_split_view_latents_pairs_normal_and_colour_of_each_view():
    lat = torch.arange(14 * 4 * 2 * 2, dtype=torch.float32).reshape(14, 4, 2, 2)  # 7 views, [normals; colours]
    x = split_view_latents(lat, range(6))
    assert x.shape == (1, 6, 8, 2, 2)
    torch.testing.assert_close(x[0, 2, :4], lat[2])
    torch.testing.assert_close(x[0, 2, 4:], lat[9])


def test_a_few_steps_reduce_the_loss_and_the_model_reloads(tmp_path):
    data = SkelDataset(write_skel_dataset(tmp_path / "data", n=8))
    cfg = SkelTrainConfig(iterations=12, batch_size=2, learning_rate=3e-3, use_lpips=False,
                          block_out_channels=SMALL, save_every=100, log_every=4)
    losses = train_skel(data, tmp_path / "gskel", cfg)
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.8 * first, (first, last)
    model = SkeletalImagePredictor.from_pretrained(tmp_path / "gskel")
    assert model.config.block_out_channels == list(SMALL)
    rows = (tmp_path / "gskel" / "log.csv").read_text().splitlines()
    assert rows[0] == "step,loss" and len(rows) == 1 + 3
    assert json.loads((tmp_path / "gskel" / "train_config.json").read_text())["iterations"] == 12
    latents, joints, names = data[0]
    with torch.no_grad():
        assert model(latents[None]).shape == (1, 6, 23, LATENT_RES, LATENT_RES)


def test_lpips_is_never_faked(tmp_path):
    with pytest.raises(MissingWeightsError):
        load_skeleton_distance(True, lpips_weights=str(tmp_path))
    assert load_skeleton_distance(False).lpips is None


def test_lpips_term_uses_the_given_network():
    from human3d.eval.lpips import LPIPS

    torch.manual_seed(0)
    dist = SkeletonDistance(LPIPS(), lpips_weight=1.0)
    logits = torch.randn(1, 2, 3, 16, 16)
    target = torch.rand(1, 2, 3, 16, 16)
    bce_only = SkeletonDistance(None)(logits, target)
    both = dist(logits, target)
    assert both.shape == (1,) and float(both) != pytest.approx(float(bce_only))
    # identical images: the perceptual term vanishes
    assert float(dist.perceptual(target, target)) == pytest.approx(0.0, abs=1e-6)


def test_dataset_errors_are_one_line_user_errors(tmp_path):
    with pytest.raises(UsageError, match="no .npz"):
        SkelDataset(tmp_path)
    np.savez(tmp_path / "bad.npz", joints=np.zeros((3, 3)), joint_names=np.asarray(["a", "b", "c"]))
    with pytest.raises(BadInputError, match="lacks joints|latents"):
        SkelDataset(tmp_path)[0]
