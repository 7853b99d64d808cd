import contextlib
import csv
import random

import numpy as np
import pytest
import torch

from human3d.errors import UsageError
from human3d.multiview.loading import load_pipeline
from human3d.multiview.pipeline import PSHumanMVPipeline
from human3d.train.data import PoseImageDataset, write_pose_sample
from human3d.train.drpose import (
    DRPoseConfig,
    _conditions,
    drpose_loss,
    evaluate_reward,
    reward_views_of,
    sample_schedule,
    train_drpose,
)
from human3d.train.posescore import PoseScore, SkeletonDistance
from human3d.train.skel_predictor import SkeletalImagePredictor
from human3d.train.skeleton import SKELETON_JOINTS
from tests.multiview.tiny import tiny_components, tiny_inputs, tiny_unet
from tests.train.poses import random_poses

RES = 32  # images; latents 8 x 8 (the multi-view tests' 64 is ~50x slower per UNet call here)
SMALL = (8, 16, 16, 16)


def tiny_pipeline(seed: int = 0) -> PSHumanMVPipeline:
    pipe = PSHumanMVPipeline(**{**tiny_components(seed), "unet": tiny_unet(seed, sample_size=RES // 4)})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_gskel(seed: int = 0) -> SkeletalImagePredictor:
    """A random g_skel whose logits depend strongly on the latents (a fresh one barely does), so the reward
    responds to the UNet."""
    torch.manual_seed(seed)
    model = SkeletalImagePredictor(num_views=3, block_out_channels=SMALL).eval()
    with torch.no_grad():
        model.out.weight.mul_(20.0)
    return model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drpose_data")
    joints = random_poses(1, seed=3, spread=0.1)
    image, _ = tiny_inputs(0)
    write_pose_sample(folder, "s0", image, joints[0].numpy(), SKELETON_JOINTS)
    return PoseImageDataset(folder, RES)


def _cfg(**kw) -> DRPoseConfig:
    base = dict(num_steps=5, train_steps=2, max_early_stop=3, use_lpips=False, gradient_checkpointing=False,
                batch_size=1, gradient_accumulation=1)
    return DRPoseConfig(**{**base, **kw})


def test_schedule_has_k_spaced_steps_above_the_early_stop():
    seen_min, seen_s = set(), set()
    for seed in range(300):
        t_train, t_min = sample_schedule(random.Random(seed), 20, 2, 8)
        assert len(t_train) == 2 and t_train[1] - t_train[0] == 10
        assert 1 <= t_min <= 8 and t_min <= t_train[0] and t_train[1] <= 20
        seen_min.add(t_min)
        seen_s.add(t_train[0])
    assert seen_min == set(range(1, 9)) and seen_s == set(range(1, 11))
    with pytest.raises(UsageError):
        sample_schedule(random.Random(0), 20, 2, 11)


def _one_step(pipe, unet, reference, dataset, cfg, seed):
    views, cams, flipped = reward_views_of(pipe)
    reward = PoseScore(tiny_gskel(), SkeletonDistance(None), cams, flipped)
    sample = dataset[0]
    gen = torch.Generator().manual_seed(seed)
    cond = _conditions(pipe, sample, cfg, gen)
    target = reward.targets(sample.joints[None], sample.joint_names, RES // pipe.vae_scale_factor)
    return drpose_loss(pipe, unet, reference, reward, cond, target, views, cfg, random.Random(seed), gen)


@pytest.mark.parametrize("seed", [0, 5])
def test_exactly_k_gradient_steps_early_stop_and_zero_kl_at_start(dataset, seed):
    import copy

    pipe = tiny_pipeline()
    unet = pipe.unet
    frozen = copy.deepcopy(unet).requires_grad_(False)
    calls = []

    def hook(module, args, kwargs, output):
        calls.append(dict(t=int(args[1]), grad=torch.is_grad_enabled(), input_grad=args[0].requires_grad,
                          output_grad=output[0].requires_grad))

    handle = unet.register_forward_hook(hook, with_kwargs=True)
    cfg = _cfg()
    loss, r, kl, info = _one_step(pipe, unet, lambda: contextlib.nullcontext(frozen), dataset, cfg, seed)
    handle.remove()
    timesteps = pipe.scheduler.timesteps.tolist()
    # the trajectory runs t = T .. t_min and stops there
    assert info.steps_run == list(range(cfg.num_steps, info.t_min - 1, -1))
    assert [c["t"] for c in calls] == [timesteps[cfg.num_steps - t] for t in info.steps_run]
    # gradient-bearing evaluations: exactly K, at the training steps; the UNet never sees a graph-carrying x_t
    grad_steps = [t for t, c in zip(info.steps_run, calls) if c["output_grad"]]
    assert sorted(grad_steps) == sorted(info.t_train) and len(grad_steps) == cfg.train_steps
    assert not any(c["input_grad"] for c in calls)
    assert float(kl) == 0.0  # the trainable UNet is still the initial one
    loss.backward()
    grads = [p.grad for p in unet.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert float(loss.detach()) == pytest.approx(1.0 - float(r), rel=1e-6)


def test_kl_grows_once_the_unet_moves(dataset):
    import copy

    pipe = tiny_pipeline()
    frozen = copy.deepcopy(pipe.unet).requires_grad_(False)
    with torch.no_grad():
        for p in pipe.unet.parameters():
            p.add_(0.01 * torch.randn_like(p))
    _, _, kl, _ = _one_step(pipe, pipe.unet, lambda: contextlib.nullcontext(frozen), dataset, _cfg(), 0)
    assert float(kl) > 0


def test_toy_run_raises_the_reward_and_the_unet_loads_back(dataset, tmp_path):
    pipe = tiny_pipeline()
    saved = tmp_path / "pipe"
    pipe.save_pretrained(saved)
    views, cams, flipped = reward_views_of(pipe)
    g_skel = tiny_gskel()
    reward = PoseScore(g_skel, SkeletonDistance(None), cams, flipped)
    samples = [dataset[i] for i in range(len(dataset))]
    before = evaluate_reward(pipe, reward, samples, num_steps=4)
    cfg = _cfg(iterations=6, learning_rate=1e-2, save_every=3, max_grad_norm=0.0, num_steps=4, max_early_stop=2)
    out = train_drpose(pipe, g_skel, dataset, tmp_path / "run", cfg, distance=SkeletonDistance(None))
    after = evaluate_reward(pipe, reward, samples, num_steps=4)
    # fixed-noise full-trajectory PoseScore: about -2.58 -> -2.44 here (deterministic on CPU)
    assert after > before + 0.05, (before, after)
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert all(np.isfinite(float(r["reward"])) and float(r["kl"]) >= 0 for r in rows)
    # the UNet folder loads through the multi-view pipeline and generates with the tuned weights
    loaded = load_pipeline(saved, unet_path=out)
    for (name, p), q in zip(pipe.unet.state_dict().items(), loaded.unet.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    image, face = tiny_inputs(0)
    res = loaded(image, face, num_inference_steps=2, seed=0, guidance_scale=1.0)
    assert res.normals.shape == (4, RES, RES, 3)


def test_lora_checkpointing_resume_and_merged_output(dataset, tmp_path):
    from safetensors.torch import load_file

    from human3d.multiview.unet_mv import UNetMV2DConditionModel

    pipe = tiny_pipeline()
    initial = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    cfg = _cfg(iterations=2, learning_rate=1e-2, lora_rank=2, gradient_checkpointing=True, save_every=1,
               num_steps=4, max_early_stop=2)
    train_drpose(pipe, tiny_gskel(), dataset, tmp_path / "run", cfg, distance=SkeletonDistance(None))
    assert all("lora_" in n for n, p in pipe.unet.named_parameters() if p.requires_grad)
    # resume in a fresh process-like set-up: a new pipeline continues from the checkpoint at update 2
    pipe2 = tiny_pipeline()
    cfg3 = _cfg(**{**cfg.__dict__, "iterations": 3})
    out = train_drpose(pipe2, tiny_gskel(), dataset, tmp_path / "run", cfg3, distance=SkeletonDistance(None))
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert float(rows[0]["kl"]) == 0.0  # LoRA starts as the identity: the tuned UNet equals the initial one
    state = load_file(str(out / "diffusion_pytorch_model.safetensors"))
    assert set(state) == set(initial) and not any("lora" in k for k in state)
    loaded = UNetMV2DConditionModel.from_pretrained(out)
    torch.testing.assert_close(loaded.conv_in.weight, initial["conv_in.weight"])  # untouched by LoRA
    q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    assert not torch.allclose(state[q], initial[q])  # the adapters are merged in


def test_unsupported_prediction_type_is_a_user_error(dataset):
    from human3d.train.drpose import _eps_x0

    with pytest.raises(UsageError, match="prediction_type"):
        _eps_x0(torch.zeros(1), torch.zeros(1), 1.0, 0.0, "flow")
