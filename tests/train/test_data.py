import numpy as np
import pytest
import torch

from human3d.errors import UsageError
from human3d.train.data import (
    PoseImageDataset,
    SkelDataset,
    VideoModelOutput,
    encode_render_folder,
    farthest_point_sampling,
    import_video_model_output,
    sample_drpose_poses,
)
from human3d.train.skeleton import SKELETON_JOINTS
from tests.train.poses import standing_joints


def test_farthest_point_sampling_spreads_out():
    rng = np.random.default_rng(0)
    clusters = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    points = np.concatenate([c + 0.1 * rng.standard_normal((50, 2)) for c in clusters])
    picked = farthest_point_sampling(points, 4, seed=1)
    assert sorted(set(picked // 50)) == [0, 1, 2, 3]  # one per cluster
    with pytest.raises(UsageError):
        farthest_point_sampling(points, 500)


def test_windows_hold_the_sampled_frame_and_nine_neighbours():
    rng = np.random.default_rng(0)
    seqs = [np.cumsum(rng.standard_normal((n, 24, 3)) * 0.01, 0) for n in (40, 12, 5)]
    windows = sample_drpose_poses(seqs, num_poses=6, neighbours=9, seed=0)
    assert len(windows) == 6
    for w in windows:
        assert w.sequence in (0, 1) and w.length == 10  # the 5-frame sequence is too short for a window
        assert w.start <= w.centre < w.start + 10 and 0 <= w.start <= len(seqs[w.sequence]) - 10
    assert len({(w.sequence, w.centre) for w in windows}) == 6


def test_video_model_frames_become_framed_samples_with_canonical_joints(tmp_path):
    # a 'video frame': a person-shaped box, its joints drawn through a weak-perspective camera
    h, w = 120, 90
    joints = standing_joints().numpy()
    cam = np.stack([joints[:, 0], -joints[:, 1], 3.0 - joints[:, 2]], -1)  # camera frame: y down, z away
    uv = cam[:, :2] * 40 + [45, 60]
    mask = np.zeros((h, w), bool)
    mask[20:100, 10:80] = True
    frame = np.full((h, w, 3), 90, np.uint8)
    out = VideoModelOutput(frame[None], mask[None], uv[None], cam[None], list(SKELETON_JOINTS))
    paths = import_video_model_output(out, tmp_path, "clip", resolution=64)
    sample = PoseImageDataset(tmp_path, 64)[0]
    assert sample.name == "clip_000" and sample.image.size == (64, 64)
    got = sample.joints.numpy()
    # canonical xy: the 2D joints through the crop (long side 80 px -> 740/768 of 64, centred at (45, 60))
    s = 64 * 740 / 768 / 80
    exp_u = (uv[:, 0] - 45) * s + 32
    np.testing.assert_allclose(got[:, 0], 2 * exp_u / 64 - 1, atol=1e-5)
    # depth recovered in the same canonical units as x, y (the pose's own geometry, scaled)
    k = 40 * s * 2 / 64
    np.testing.assert_allclose(got[:, 2], (joints[:, 2] - joints[:, 2].mean()) * k, atol=1e-4)
    px = np.asarray(sample.image)
    assert (px[0, 0] == 255).all() and (px[32, 32] == 90).all()  # white outside the person
    assert len(paths) == 1


def test_renders_are_encoded_into_latents(tmp_path):
    from tests.multiview.tiny import tiny_components

    vae = tiny_components()["vae"]
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, size=(2, 6, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "src").mkdir()
    np.savez(tmp_path / "src" / "a.npz", normals=imgs[0], colors=imgs[1], joints=standing_joints().numpy(),
             joint_names=np.asarray(SKELETON_JOINTS))
    assert encode_render_folder(tmp_path / "src", tmp_path / "lat", vae, flipped_views=(3, 4)) == 1
    latents, joints, _ = SkelDataset(tmp_path / "lat")[0]
    assert latents.shape == (6, 8, 8, 8)
    with torch.no_grad():
        x = torch.as_tensor(imgs[0][3, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
        ref = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
    torch.testing.assert_close(latents[3, :4], ref[0], atol=2e-3, rtol=1e-2)  # stored as float16, mirrored view


def test_training_frames_an_image_exactly_as_inference_does(tmp_path):
    """The same image + mask through inference's frame stage and through the DRPose sample import: identical
    canvas, face view and photo -> canvas map (premultiplied Lanczos on white, not a bilinear warp)."""
    from human3d.config import FrameConfig
    from human3d.context import StageContext
    from human3d.frame import frame_cutout
    from human3d.segment.clean import mask_bbox
    from human3d.types import Cutout

    rng = np.random.default_rng(3)
    h, w, r = 150, 110, 96
    mask = np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    mask[((xx - 55) / 30.0) ** 2 + ((yy - 80) / 60.0) ** 2 < 1] = True  # curved edges: every filter differs there
    mask[15:35, 45:65] = True
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)  # noise: the background's colour must not bleed in
    framed = frame_cutout(Cutout(rgb=rgb, mask=mask, bbox=mask_bbox(mask)), FrameConfig(resolution=r), StageContext())

    joints = standing_joints().numpy()
    cam = np.stack([joints[:, 0], -joints[:, 1], 3.0 - joints[:, 2]], -1)
    out = VideoModelOutput(rgb[None], mask[None], cam[None, :, :2] * 40 + [55, 80], cam[None], list(SKELETON_JOINTS))
    import_video_model_output(out, tmp_path, "same", resolution=r)
    sample = PoseImageDataset(tmp_path, r)[0]
    np.testing.assert_array_equal(np.asarray(sample.image), framed.rgb)
    np.testing.assert_array_equal(np.asarray(sample.face), framed.face_rgb)

    from human3d.train.data import frame_pose

    (scale, ox, oy), _ = frame_pose(mask, out.joints_2d[0], out.joints_3d[0], r)
    assert (scale, (ox, oy)) == (framed.scale, framed.offset)
