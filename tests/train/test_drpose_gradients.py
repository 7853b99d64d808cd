"""DRPose's gradient paths, checked against quantities derived by hand (tools/drpose_mutations.py runs these
tests against deliberately wrong implementations: each must fail at least one).

With every UNet call seeing stop_grad(x_t) and the non-training outputs detached, x0_hat at t_min is linear in the
training steps' outputs: the live x_t passes through each DDIM update with factor alpha_{t-1} / alpha_t, so
d x0_hat / d x_t = 1 / alpha_t, and d x0_hat / d eps_hat_t = sigma_{t-1} / alpha_{t-1} - sigma_t / alpha_t
(t > t_min) or -sigma_t / alpha_t (t = t_min). The reward's gradient at a training output is that coefficient
times d eps_hat / d out (1 for epsilon-, alpha_t for v-prediction) times d r / d x0_hat.
"""

import collections
import contextlib
import copy
import random

import pytest
import torch
from diffusers import DDIMScheduler

from human3d.train.data import PoseImageSample
from human3d.train.drpose import (
    DRPoseConfig,
    _conditions,
    drpose_loss,
    make_reference,
    reward_views_of,
    sample_schedule,
)
from human3d.train.posescore import PoseScore, SkeletonDistance
from human3d.train.skel_predictor import split_view_latents
from human3d.train.skeleton import SKELETON_JOINTS
from tests.multiview.tiny import tiny_inputs
from tests.train.poses import random_poses
from tests.train.test_drpose import RES, tiny_gskel, tiny_pipeline

T = 5


def _setup(prediction: str, guidance: float):
    pipe = tiny_pipeline()
    if prediction != pipe.scheduler.config.prediction_type:
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, prediction_type=prediction)
    frozen = copy.deepcopy(pipe.unet).requires_grad_(False)
    with torch.no_grad():  # the tuned UNet has moved away from the initial one: L_KL > 0
        g = torch.Generator().manual_seed(1)
        for p in pipe.unet.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    views, cams, flipped = reward_views_of(pipe)
    reward = PoseScore(tiny_gskel(), SkeletonDistance(None), cams, flipped)
    image, face = tiny_inputs(0)
    from PIL import Image

    sample = PoseImageSample(Image.fromarray(image).resize((RES, RES)), Image.fromarray(face).resize((RES, RES)),
                             random_poses(1, seed=3, spread=0.1)[0], list(SKELETON_JOINTS), "s0")
    cfg = DRPoseConfig(num_steps=T, train_steps=2, max_early_stop=3, guidance_scale=guidance, kl_weight=0.01,
                       use_lpips=False, gradient_checkpointing=False)
    gen = torch.Generator().manual_seed(0)
    cond = _conditions(pipe, sample, cfg, gen)
    h = RES // pipe.vae_scale_factor
    target = reward.targets(sample.joints[None], sample.joint_names, h)
    noise = torch.randn(2 * pipe.unet.config.num_views, 4, h, h, generator=gen)
    return pipe, frozen, reward, views, cfg, cond, target, noise


def _levels(scheduler, t: int) -> tuple[float, float]:
    """(alpha, sigma) of loop step t (T..1, 0 = the clean end) from the scheduler's own tables."""
    ts = scheduler.timesteps
    abar = scheduler.final_alpha_cumprod if t == 0 else scheduler.alphas_cumprod[int(ts[T - t])]
    return float(abar) ** 0.5, float(1 - abar) ** 0.5


def _by_hand_x0(pipe, cond, noise, guidance: float, t_min: int) -> torch.Tensor:
    """x0_hat at t_min by diffusers' DDIMScheduler.step (eta 0) on the pipeline's guided predictions."""
    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(T)
    x = noise * sched.init_noise_sigma
    with torch.no_grad():
        for i, ts in enumerate(sched.timesteps):
            out = pipe.predict_noise(x, ts, cond, guidance).float()
            step = sched.step(out, ts, x, eta=0.0)
            if T - i == t_min:
                return step.pred_original_sample
            x = step.prev_sample
    raise AssertionError("t_min not reached")


CASES = [
    ("epsilon", 3.0, ((2, 4), 1)),
    ("v_prediction", 3.0, ((2, 4), 1)),
    ("v_prediction", 1.0, ((1, 3), 1)),  # no guidance; the lower training step is the early stop itself
]


@pytest.mark.parametrize("prediction,guidance,schedule", CASES)
def test_gradients_reach_exactly_the_training_outputs(prediction, guidance, schedule):
    pipe, frozen, reward, views, cfg, cond, target, noise = _setup(prediction, guidance)
    calls = collections.defaultdict(list)

    def recorder(name):
        def hook(module, args, kwargs, output):
            calls[name].append((args[0].requires_grad, output[0].requires_grad))
        return hook

    handles = [pipe.unet.register_forward_hook(recorder("tuned"), with_kwargs=True),
               frozen.register_forward_hook(recorder("frozen"), with_kwargs=True)]
    terms = drpose_loss(pipe, pipe.unet, lambda: contextlib.nullcontext(frozen), reward, cond, target, views, cfg,
                        schedule, noise)
    for h in handles:
        h.remove()
    t_train, t_min = schedule
    assert terms.info.steps_run == list(range(T, t_min - 1, -1))
    assert terms.info.grad_steps == sorted(t_train, reverse=True) == sorted(terms.outputs, reverse=True)
    # one tuned call per step run, graph-carrying outputs exactly at the training steps; no call sees a graph input
    assert [o for _, o in calls["tuned"]] == [t in t_train for t in terms.info.steps_run]
    assert len(calls["frozen"]) == len(t_train) and not any(o for _, o in calls["frozen"])
    assert not any(i for name in calls for i, _ in calls[name])

    # the reward is PoseScore of x0_hat at t_min, which equals diffusers' DDIM run by hand
    x0_hand = _by_hand_x0(pipe, cond, noise, guidance, t_min)
    torch.testing.assert_close(terms.x0.detach(), x0_hand, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        r_hand = reward(split_view_latents(x0_hand, views), target)[0]
    assert float(terms.reward.detach()) == pytest.approx(float(r_hand), abs=1e-5)

    # reward gradient at each training output: the coefficient derived by hand times d r / d x0_hat
    assert terms.reward.requires_grad, "the reward carries no gradient at all"
    leaf = terms.x0.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(reward(split_view_latents(leaf, views), target)[0], leaf)
    steps = sorted(terms.outputs, reverse=True)
    grads = torch.autograd.grad(terms.reward, [terms.outputs[t] for t in steps], retain_graph=True,
                                allow_unused=True)
    for t, got in zip(steps, grads):
        assert got is not None, f"the reward does not reach the output at training step {t}"
        a, s = _levels(pipe.scheduler, t)
        coef = -s / a if t == t_min else (lambda ap, sp: sp / ap - s / a)(*_levels(pipe.scheduler, t - 1))
        d_eps = a if prediction == "v_prediction" else 1.0
        assert float(got.abs().sum()) > 0, f"no reward gradient at training step {t}"
        torch.testing.assert_close(got, coef * d_eps * g, rtol=1e-4, atol=1e-8, msg=f"step {t}")

    # L_KL = sum over training steps of MSE(tuned output, frozen output); its gradient stays at its own step
    kl_hand = sum(((terms.outputs[t] - terms.reference[t]) ** 2).mean() for t in steps)
    kl = float(terms.kl.detach())
    assert kl == pytest.approx(float(kl_hand.detach()), rel=1e-6) and kl > 0
    grads = torch.autograd.grad(terms.kl, [terms.outputs[t] for t in steps], retain_graph=True)
    for t, got in zip(steps, grads):
        want = 2.0 * (terms.outputs[t] - terms.reference[t]).detach() / got.numel()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-10, msg=f"KL gradient at step {t}")
    assert float(terms.loss.detach()) == pytest.approx(1.0 - float(terms.reward.detach()) + cfg.kl_weight * kl, rel=1e-6)


def test_training_steps_below_the_early_stop_are_skipped():
    pipe, frozen, reward, views, cfg, cond, target, noise = _setup("v_prediction", 1.0)
    ref = lambda: contextlib.nullcontext(frozen)  # noqa: E731
    terms = drpose_loss(pipe, pipe.unet, ref, reward, cond, target, views, cfg, ((1, 3), 2), noise)
    assert terms.info.steps_run == [5, 4, 3, 2] and terms.info.grad_steps == [3] and terms.loss.requires_grad
    one = DRPoseConfig(**{**cfg.__dict__, "train_steps": 1})
    none = drpose_loss(pipe, pipe.unet, ref, reward, cond, target, views, one, ((1,), 3), noise)
    assert none.info.grad_steps == [] and not none.loss.requires_grad and float(none.kl.detach()) == 0.0


def test_schedule_distribution_over_many_draws():
    rng = random.Random(0)
    n = 40_000
    draws = [sample_schedule(rng, 20, 2, 8) for _ in range(n)]
    s = collections.Counter(t[0] for t, _ in draws)
    t_min = collections.Counter(m for _, m in draws)
    assert all(t[1] - t[0] == 10 for t, _ in draws)
    # s uniform on 1..10 and t_min on 1..8 (5 sigma of a frequency is < 0.008 here), drawn independently
    assert set(s) == set(range(1, 11)) and all(abs(c / n - 0.1) < 0.008 for c in s.values())
    assert set(t_min) == set(range(1, 9)) and all(abs(c / n - 0.125) < 0.008 for c in t_min.values())
    joint = collections.Counter((t[0], m) for t, m in draws)
    assert all(abs(c / n - 1 / 80) < 0.004 for c in joint.values()) and len(joint) == 80
    # the lower step is skipped when s < t_min: 28/80 of the trajectories keep one gradient step, 52/80 two
    two = sum(1 for t, m in draws if t[0] >= m) / n
    assert abs(two - 52 / 80) < 0.012
    with pytest.raises(Exception, match="1 <= m <= T"):
        sample_schedule(rng, 20, 2, 21)


def test_frozen_reference_keeps_the_tuned_unets_precision():
    pipe = tiny_pipeline()
    for dtype in (torch.float32, torch.bfloat16):
        unet = pipe.unet.to(dtype)
        with make_reference(unet)() as ref:
            assert ref is not unet and {p.dtype for p in ref.parameters()} == {dtype}
            assert not any(p.requires_grad for p in ref.parameters()) and ref.training == unet.training
