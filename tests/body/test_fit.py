"""The body fit against bodies of known pose and shape, the stage's outputs, and bad inputs.

Stated bound: after Procrustes alignment the mean 3D keypoint error stays under 40 mm (the world landmarks given to
the fit carry 2 cm of noise, like mediapipe's; measured ~10-30 mm).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from human3d.body.fit import (
    KP,
    FitSettings,
    Observations,
    damped_shin_depth,
    damped_upper_arm_depth,
    fit_body,
    fit_observations,
)
from human3d.body.keypoints import canonical_to_pixels
from human3d.body.synthetic import make_body, random_pose, shaded_image
from human3d.config import BodyConfig
from human3d.context import StageContext
from human3d.errors import BadInputError
from tests.body.conftest import frame_rgba

R = 256


def procrustes_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean distance after the similarity transform that best aligns ``pred`` to ``gt`` (both (N, 3))."""
    p0, g0 = pred - pred.mean(0), gt - gt.mean(0)
    u, s, vt = np.linalg.svd(p0.T @ g0)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = (s * np.diag(d)).sum() / (p0 ** 2).sum()
    return float(np.linalg.norm(scale * p0 @ rot - g0, axis=1).mean())


@pytest.mark.parametrize("pose, seed", [("arms_raised", 1), ("lunge", 2), ("sitting", 3)])
def test_fit_recovers_known_pose(anny_model, pose, seed):
    rng = np.random.default_rng(seed)
    shape = np.clip(0.5 + rng.normal(0.0, 0.1, 6), 0.0, 1.0)
    body = make_body(anny_model, random_pose(pose, seed), shape=shape, yaw_deg=rng.uniform(-20, 20), resolution=R)
    obs = body.observations(world_noise_m=0.02, seed=seed)
    # these world landmarks are the truth plus noise, not mediapipe's: their limbs' depth is believed in full
    res = fit_observations(anny_model, obs, FitSettings(iterations=100, shin_depth=1.0, upper_arm_depth=1.0),
                           StageContext(seed=seed))
    err_px = np.linalg.norm(canonical_to_pixels(res.keypoints[:, :2], R) - canonical_to_pixels(obs.keypoints, R),
                            axis=1).mean()
    assert err_px < 0.02 * R
    assert res.report["keypoint_error_px"] == pytest.approx(err_px, abs=1e-2)
    assert res.report["mask_iou"] > 0.90
    metres_per_unit = 1.0 / res.scale
    assert procrustes_error(res.keypoints, body.keypoints) * metres_per_unit < 0.040
    assert res.vertices.shape == body.vertices.shape and np.isfinite(res.vertices).all()


def _shin_lean_deg(keypoints: np.ndarray, side: str) -> float:
    """How far the ankle is behind the knee, in degrees from the vertical (positive: behind)."""
    d = keypoints[KP[f"{side}_ankle"]] - keypoints[KP[f"{side}_knee"]]
    return float(np.degrees(np.arctan2(-d[2], -d[1])))


def test_mediapipes_backward_shins_are_not_believed_in_full(anny_model):
    """mediapipe puts the ankles of a person standing straight ~18 degrees behind the knees; the fit believes
    only ``shin_depth`` of that, so the fitted shins stay near the truth's."""
    body = make_body(anny_model, random_pose("standing", 0, jitter=0.0), resolution=R)
    obs = body.observations()
    world = obs.world.copy()
    for side in ("left", "right"):
        shin = np.linalg.norm(world[KP[f"{side}_ankle"]] - world[KP[f"{side}_knee"]])
        for part in ("ankle", "heel", "foot_index"):
            world[KP[f"{side}_{part}"], 2] -= np.tan(np.radians(18.0)) * shin
    obs.world = world
    truth = np.mean([_shin_lean_deg(body.keypoints, s) for s in ("left", "right")])
    lean = {}
    for keep in (1.0, FitSettings.shin_depth):
        # the arms' landmarks are exact here: believed in full
        res = fit_observations(anny_model, obs, FitSettings(iterations=60, offset_share=0.0, shin_depth=keep,
                                                             upper_arm_depth=1.0), StageContext())
        lean[keep] = np.mean([_shin_lean_deg(res.keypoints, s) for s in ("left", "right")])
    assert lean[1.0] - truth > 5.0  # believed in full, the bias shows
    assert abs(lean[FitSettings.shin_depth] - truth) < 0.6 * (lean[1.0] - truth)
    damped = damped_shin_depth(world, 0.0)  # at 0 the ankles are level in depth with the knees, feet unchanged
    for side in ("left", "right"):
        assert damped[KP[f"{side}_ankle"], 2] == pytest.approx(damped[KP[f"{side}_knee"], 2])
        foot = world[KP[f"{side}_foot_index"]] - world[KP[f"{side}_heel"]]
        np.testing.assert_allclose(damped[KP[f"{side}_foot_index"]] - damped[KP[f"{side}_heel"]], foot, atol=1e-9)


def _upper_arm_lean_deg(keypoints: np.ndarray, side: str) -> float:
    """How far the elbow is in front of the shoulder, in degrees from the image plane (positive: toward the camera)."""
    d = keypoints[KP[f"{side}_elbow"]] - keypoints[KP[f"{side}_shoulder"]]
    return float(np.degrees(np.arctan2(d[2], np.hypot(d[0], d[1]))))


def test_upper_arms_leaning_toward_the_camera_are_not_believed_in_full(anny_model):
    """On clothed people mediapipe puts hanging upper arms 17-35 degrees toward the camera; the fit believes
    ``upper_arm_depth`` of that, so the fitted arms stay nearer the truth's."""
    body = make_body(anny_model, random_pose("standing", 0, jitter=0.0), resolution=R)
    obs = body.observations()
    world = obs.world.copy()
    for side in ("left", "right"):
        arm = np.linalg.norm(world[KP[f"{side}_elbow"]] - world[KP[f"{side}_shoulder"]])
        for part in ("elbow", "wrist", "index", "pinky", "thumb"):
            world[KP[f"{side}_{part}"], 2] += np.tan(np.radians(25.0)) * arm
    obs.world = world
    truth = np.mean([_upper_arm_lean_deg(body.keypoints, s) for s in ("left", "right")])
    lean = {}
    for keep in (1.0, FitSettings.upper_arm_depth):
        res = fit_observations(anny_model, obs, FitSettings(iterations=60, offset_share=0.0, upper_arm_depth=keep,
                                                             shin_depth=1.0), StageContext())  # exact legs
        lean[keep] = np.mean([_upper_arm_lean_deg(res.keypoints, s) for s in ("left", "right")])
    assert lean[1.0] - truth > 5.0  # believed in full, the bias shows
    assert abs(lean[FitSettings.upper_arm_depth] - truth) < 0.6 * (lean[1.0] - truth)
    damped = damped_upper_arm_depth(world, 0.0)  # at 0 the elbows are level in depth with the shoulders
    for side in ("left", "right"):
        assert damped[KP[f"{side}_elbow"], 2] == pytest.approx(damped[KP[f"{side}_shoulder"], 2])
        forearm = world[KP[f"{side}_wrist"]] - world[KP[f"{side}_elbow"]]
        np.testing.assert_allclose(damped[KP[f"{side}_wrist"]] - damped[KP[f"{side}_elbow"]], forearm, atol=1e-9)


def _framed_body(anny_model, pose="standing", seed=0, resolution=384, cut_at=None):
    body = make_body(anny_model, random_pose(pose, seed), resolution=resolution)
    rgba = np.concatenate([shaded_image(body, anny_model), (body.mask * 255).astype(np.uint8)[..., None]], -1)
    if cut_at is not None:  # a photo whose bottom edge cuts the person at this fraction of the canvas
        rgba = rgba[: int(cut_at * resolution)]
    return body, frame_rgba(rgba, resolution)


def test_fit_body_stage_writes_results(anny_model, tmp_path):
    body, framed = _framed_body(anny_model)
    ctx = StageContext(stage_dir=tmp_path / "3_body", seed=0)
    fit = fit_body(framed, BodyConfig(model="anny", iterations=40), ctx)
    assert fit.model == "anny" and fit.vertices.shape == (13718, 3) and fit.faces.shape[1] == 3
    assert fit.joints.shape == (104, 3) and len(fit.joint_names) == 104
    assert fit.report["landmarks"] and fit.report["mask_iou"] > 0.8
    assert fit.report["keypoint_error_px"] < 0.03 * framed.resolution
    assert 1.4 < fit.height_m < 2.0
    # a standing body framed like the photo spans ~740/768 of the canvas height (2 units)
    assert 1.7 < fit.canonical_height < 2.1
    meta = json.loads((tmp_path / "3_body" / "body.json").read_text())
    assert meta["model"] == "anny" and "phenotype" in meta["params"]["shape"]
    obj = (tmp_path / "3_body" / "body.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == 13718
    fit.save(tmp_path / "saved")  # the pipeline's own round trip
    loaded = type(fit).load(tmp_path / "saved")
    assert loaded.params == json.loads(json.dumps(fit.params))
    # every vertex carries its body part (the prior colours the back by them), the face on the head's front
    assert loaded.parts.shape == (13718,) and (loaded.parts == fit.parts).all()
    face = fit.vertices[fit.parts == 0]
    assert len(face) > 100 and face[:, 2].mean() > fit.vertices[fit.parts == 1][:, 2].mean()


def test_known_height_is_reported(anny_model):
    _, framed = _framed_body(anny_model, resolution=256)
    fit = fit_body(framed, BodyConfig(model="anny", iterations=10, height_m=1.82), StageContext())
    assert fit.height_m == pytest.approx(1.82)
    assert fit.report["mask_iou_body"] <= fit.report["mask_iou"]  # clothing offsets on by default
    # the fit keeps the offsets its vertices carry (the prior carries garments round from them)
    assert fit.offsets.shape == (len(fit.vertices),) and fit.offsets.min() >= 0
    assert round(float(fit.offsets.max()), 4) == fit.report["offsets_max"]
    bare = fit_body(framed, BodyConfig(model="anny", iterations=10, clothing=False), StageContext())
    assert "mask_iou_body" not in bare.report and "seconds_offsets" not in bare.report and bare.offsets is None


def test_no_landmarks_fits_the_silhouette_with_a_warning(anny_model):
    _, framed = _framed_body(anny_model, resolution=256)
    framed.rgb[:] = 255  # nothing for the landmark detector to see; the mask remains
    ctx = StageContext()
    fit = fit_body(framed, BodyConfig(model="anny", iterations=40), ctx)
    assert any("no body landmarks" in w for w in ctx.warnings)
    assert not fit.report["landmarks"] and fit.report["mask_iou"] > 0.75


def test_legs_cut_off_fits_what_is_visible(anny_model):
    body, framed = _framed_body(anny_model, cut_at=0.6)
    ctx = StageContext()
    fit = fit_body(framed, BodyConfig(model="anny", iterations=40), ctx)
    assert any("not visible" in w for w in ctx.warnings)
    # the legs continue below the photo's bottom edge instead of being squeezed into the visible part
    bottom = framed.photo_to_canvas(np.array([0.0, framed.photo_size[1]]))[1]
    bottom_y = 1.0 - 2.0 * bottom / framed.resolution
    assert fit.vertices[:, 1].min() < bottom_y - 0.3
    assert fit.report["mask_iou"] > 0.75


def test_empty_mask_is_a_bad_input(anny_model):
    with pytest.raises(BadInputError):
        fit_observations(anny_model, Observations(mask=np.zeros((64, 64), bool)), FitSettings(iterations=5),
                         StageContext())
