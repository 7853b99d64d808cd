"""The datasets DRPose trains on, and the DRPose15K pose sampling.

Poses are joint positions in the canonical frame of :mod:`human3d.cameras` (x, y in [-1, 1] on the front view of
the framed image, +Y up, the subject facing +Z), named by SMPL-X (or Anny) joint names; only the 24 joints of
:data:`~human3d.train.skeleton.SKELETON_JOINTS` are read.

**g_skel dataset** (``human3d train skel --data DIR``): ``DIR/*.npz``, one scan render per file, holding

* ``joints`` (J, 3) float, ``joint_names`` (J,) str: the scan's body fit, canonical frame;
* either ``latents`` (V, 8, h, w) float: per body view the VAE latent of the normal map (4 channels) then of the
  colour image (4), scaled by the VAE's scaling factor, views in the diffusion model's order and convention (the
  ``flipped_views`` mirrored, as the model predicts them);
* or ``normals`` and ``colors`` (V, R, R, 3) uint8: the renders of the body views (DESIGN.md §3, white background,
  *not* mirrored), as ``human3d train prepare-skel`` writes them from scans (:mod:`human3d.train.prepare`);
  :func:`encode_render_folder` turns them into ``latents`` with the pipeline's VAE.

**DRPose dataset** (``human3d train drpose --data DIR``): per sample ``NAME.png`` (the framed cutout: the person on
white in the canonical canvas, square; any size, resized to the model's; :func:`frame_image` makes it from an image
and a mask with inference's own framing) and ``NAME.json``::

    {"joint_names": [...], "joints": [[x, y, z], ...], "face": "NAME_face.png" (optional),
     "smplx": {...} (optional, kept for reference), "source": "..." (optional)}

Without ``face`` the face view's condition is the canvas's face box (:func:`human3d.cameras.face_box`) upscaled;
inference (and :func:`frame_image`) renders it from the photo instead, so give ``face`` where the photo exists.

**DRPose15K sampling** (:func:`sample_drpose_poses`): farthest point sampling over all frames of a set of motion
sequences (SMPL-X parameters per frame; distance between root-aligned joint positions), then each sampled frame's
9 temporal neighbours, giving 10-frame pose sequences. Images for them come from a pose-conditioned video model
(MIMO in the paper), which is not part of this project: :func:`import_video_model_output` takes its frames and the
poses it was driven with and writes DRPose samples (see :class:`VideoModelOutput`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from human3d.errors import BadInputError, InternalError, UsageError
from human3d.train.skeleton import select_skeleton_joints
from human3d.types import Cutout, Framed

# ------------------------------------------------------------------------------------------------------------------
# g_skel dataset


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise BadInputError(f"{path} is not a readable .npz ({err}); see human3d.train.data for the format") from err


def _pose(data: dict[str, Any], path: Path) -> tuple[torch.Tensor, list[str]]:
    """(24, 3) skeleton joints and their names from a sample's ``joints`` / ``joint_names``."""
    if "joints" not in data or "joint_names" not in data:
        raise BadInputError(f"{path} lacks 'joints' and 'joint_names'; see human3d.train.data for the format")
    joints = torch.as_tensor(np.asarray(data["joints"], dtype=np.float32))
    names = [str(n) for n in np.asarray(data["joint_names"]).tolist()]
    if joints.ndim != 2 or joints.shape != (len(names), 3):
        raise BadInputError(f"{path}: joints must be (J, 3) with J = len(joint_names), got {tuple(joints.shape)}")
    try:
        joints = select_skeleton_joints(joints, names)
    except UsageError as err:
        raise BadInputError(f"{path}: {err}") from err
    from human3d.train.skeleton import SKELETON_JOINTS

    return joints, list(SKELETON_JOINTS)


class SkelDataset(torch.utils.data.Dataset):
    """``DIR/*.npz`` with ``latents`` -> items ``(latents (V, 8, h, w) float32, joints (24, 3), joint names)``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UsageError(f"{self.folder} is not a folder; give --data DIR with one .npz per render")
        self.files = sorted(self.folder.glob("*.npz"))
        if not self.files:
            raise UsageError(f"{self.folder} holds no .npz files; see human3d.train.data for the format")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        path = self.files[i]
        data = _read_npz(path)
        if "latents" not in data:
            raise BadInputError(f"{path} has no 'latents'; encode its renders first (human3d train skel "
                                "--pipeline DIR does it)")
        latents = torch.as_tensor(np.asarray(data["latents"], dtype=np.float32))
        if latents.ndim != 4:
            raise BadInputError(f"{path}: latents must be (V, 8, h, w), got {tuple(latents.shape)}")
        joints, names = _pose(data, path)
        return latents, joints, names


def collate_pose_batch(items: Sequence[tuple[torch.Tensor, torch.Tensor, list[str]]]
                       ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack ``(x, joints (24, 3), names)`` items -> ``(X, (B, 24, 3), names)``; every item has the skeleton order."""
    xs, joints, names = zip(*items)
    return torch.stack(list(xs)), torch.stack(list(joints)), list(names[0])


@torch.no_grad()
def encode_views(vae: Any, normals: np.ndarray, colors: np.ndarray, flipped_views: Sequence[int] = (),
                 resolution: int | None = None) -> torch.Tensor:
    """(V, R, R, 3) uint8 renders of normals and colours -> (V, 8, h, w) scaled VAE latents (distribution mode).

    Views in ``flipped_views`` are mirrored first (the diffusion model's convention); ``resolution`` resizes.
    """
    param = next(vae.parameters())

    def encode(images: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images, dtype=np.float32) / 255.0).permute(0, 3, 1, 2)
        if resolution is not None and x.shape[-1] != resolution:
            x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True,
                                                align_corners=False)
        if flipped_views:
            x = x.clone()
            idx = list(flipped_views)
            x[idx] = x[idx].flip(-1)
        x = (x * 2.0 - 1.0).to(param.device, param.dtype)
        return (vae.encode(x).latent_dist.mode() * vae.config.scaling_factor).float().cpu()

    return torch.cat([encode(normals), encode(colors)], 1)


def encode_render_folder(src: str | Path, dst: str | Path, vae: Any, flipped_views: Sequence[int] = (),
                         resolution: int | None = None) -> int:
    """Write ``dst/NAME.npz`` with ``latents`` for every ``src/NAME.npz`` (renders are encoded, latents copied).

    Files already in ``dst`` are kept (a rerun resumes). Returns how many files ``dst`` holds.
    """
    src, dst = Path(src), Path(dst)
    files = sorted(src.glob("*.npz"))
    if not files:
        raise UsageError(f"{src} holds no .npz files; see human3d.train.data for the format")
    dst.mkdir(parents=True, exist_ok=True)
    for path in files:
        out = dst / path.name
        if out.is_file():
            continue
        data = _read_npz(path)
        if "latents" not in data:
            if "normals" not in data or "colors" not in data:
                raise BadInputError(f"{path} has neither 'latents' nor 'normals' + 'colors'")
            data["latents"] = encode_views(vae, data.pop("normals"), data.pop("colors"), flipped_views,
                                           resolution).numpy().astype(np.float16)
        tmp = out.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: data[k] for k in ("latents", "joints", "joint_names")})
        tmp.replace(out)
    return len(list(dst.glob("*.npz")))


# ------------------------------------------------------------------------------------------------------------------
# DRPose dataset


@dataclass
class PoseImageSample:
    """One DRPose training pair: the framed image, its face crop and the pose (24 skeleton joints, canonical)."""

    image: Image.Image
    face: Image.Image
    joints: torch.Tensor
    joint_names: list[str]
    name: str


class PoseImageDataset(torch.utils.data.Dataset):
    """``DIR/NAME.png`` + ``DIR/NAME.json`` pairs (format in the module docstring) at ``resolution``."""

    def __init__(self, folder: str | Path, resolution: int) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UsageError(f"{self.folder} is not a folder; give --data DIR with NAME.png + NAME.json pairs")
        self.items = sorted(p.with_suffix("") for p in self.folder.glob("*.json")
                            if p.with_suffix(".png").is_file())
        if not self.items:
            raise UsageError(f"{self.folder} holds no NAME.png + NAME.json pairs; see human3d.train.data")
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> PoseImageSample:
        from human3d.cameras import face_box

        stem = self.items[i]
        meta_path = stem.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            raise BadInputError(f"{meta_path} is not valid JSON ({err})") from err
        joints, names = _pose(meta, meta_path)
        r = self.resolution
        image = _load_rgb(stem.with_suffix(".png")).resize((r, r), Image.BICUBIC)
        if meta.get("face"):
            face = _load_rgb(self.folder / meta["face"]).resize((r, r), Image.BICUBIC)
        else:
            face = image.crop(face_box(r)).resize((r, r), Image.BICUBIC)
        return PoseImageSample(image, face, joints, names, stem.name)


def _load_rgb(path: Path) -> Image.Image:
    """An image file as RGB on white (transparent pixels become white, as the framed cutout is)."""
    try:
        im = Image.open(path)
        im.load()
    except (OSError, ValueError) as err:
        raise BadInputError(f"{path} is not a readable image ({err})") from err
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im.convert("RGB")


def write_pose_sample(folder: str | Path, name: str, image: np.ndarray | Image.Image, joints: np.ndarray,
                      joint_names: Sequence[str], extra: dict[str, Any] | None = None) -> Path:
    """Write one DRPose sample (``NAME.png`` + ``NAME.json``); joints (J, 3) canonical frame. Returns the JSON path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    im.save(folder / f"{name}.png")
    meta = {"joint_names": list(joint_names), "joints": np.asarray(joints, dtype=float).round(6).tolist(),
            **(extra or {})}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(meta))
    return path


# ------------------------------------------------------------------------------------------------------------------
# DRPose15K pose sampling


def farthest_point_sampling(features: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """(N, D) features -> (k,) indices: a random first point, then repeatedly the point farthest from those chosen."""
    n = len(features)
    if not 1 <= k <= n:
        raise UsageError(f"cannot pick {k} poses out of {n}")
    x = np.asarray(features, dtype=np.float64).reshape(n, -1)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = np.random.default_rng(seed).integers(n)
    dist = np.linalg.norm(x - x[chosen[0]], axis=1)
    for i in range(1, k):
        chosen[i] = int(np.argmax(dist))
        dist = np.minimum(dist, np.linalg.norm(x - x[chosen[i]], axis=1))
    return chosen


@dataclass(frozen=True)
class PoseWindow:
    """A sampled pose and its temporal neighbours: frames ``start .. start + length - 1`` of sequence ``sequence``;
    ``centre`` is the frame farthest point sampling picked."""

    sequence: int
    centre: int
    start: int
    length: int


def pose_features(frames: np.ndarray) -> np.ndarray:
    """(F, J, 3) joints -> (F, 3J) root-relative (joint 0 subtracted); (F, D) parameters pass through flattened."""
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 3:
        x = x - x[:, :1]
    return x.reshape(len(x), -1)


def sample_drpose_poses(sequences: Sequence[np.ndarray], num_poses: int = 1500, neighbours: int = 9,
                        seed: int = 0) -> list[PoseWindow]:
    """DRPose15K: farthest point sampling of ``num_poses`` frames over all frames of ``sequences``, each extended
    by its ``neighbours`` temporal neighbours into a window of consecutive frames (centred where the sequence
    allows, shifted at its ends); paper: 1.5K poses x 10 frames = 15K.

    sequences: per motion sequence (F_i, J, 3) joint positions (e.g. SMPL-X forward of its per-frame parameters;
    distances are root-relative) or (F_i, D) pose parameters. Sequences shorter than a window are skipped.
    """
    length = neighbours + 1
    owners, frames, feats = [], [], []
    for s, seq in enumerate(sequences):
        if len(seq) < length:
            continue
        f = pose_features(seq)
        feats.append(f)
        owners.extend([s] * len(f))
        frames.extend(range(len(f)))
    if not feats:
        raise UsageError(f"no motion sequence has the {length} frames a window needs")
    picked = farthest_point_sampling(np.concatenate(feats), num_poses, seed)
    windows = []
    for i in picked:
        s, f = owners[i], frames[i]
        n = len(sequences[s])
        start = min(max(f - neighbours // 2, 0), n - length)
        windows.append(PoseWindow(s, f, start, length))
    return windows


# ------------------------------------------------------------------------------------------------------------------
# pose-conditioned video model (MIMO) outputs -> DRPose samples


@dataclass
class VideoModelOutput:
    """What a pose-conditioned video model (MIMO in the paper) returns for one :class:`PoseWindow`, driven by the
    window's poses seen through the model's camera.

    frames: (N, H, W, 3) uint8, the animated person; masks: (N, H, W) bool, the person (MIMO decomposes human
    and scene; else run a segmenter); joints_2d: (N, J, 2) where the driving joints were drawn in the frames
    (pixels, u right, v down, pixel centres at +0.5); joints_3d: (N, J, 3) the same joints in the camera frame
    (x right, y down, z away from the camera, any unit); joint_names: the J names (SMPL-X).
    """

    frames: np.ndarray
    masks: np.ndarray
    joints_2d: np.ndarray
    joints_3d: np.ndarray
    joint_names: list[str]


def frame_pose(mask: np.ndarray, joints_2d: np.ndarray, joints_3d: np.ndarray, resolution: int
               ) -> tuple[tuple[float, float, float], np.ndarray]:
    """The crop inference makes of a photo (:func:`human3d.frame.canvas_transform` of the mask's bounding box with
    the default :class:`~human3d.config.FrameConfig`: long side CROP_SIZE/CANVAS_SIZE of R, centred) and the joints
    in the canonical frame of the framed image -> ((scale, ox, oy): canvas = image * scale + (ox, oy), (J, 3)).

    x, y come from the 2D joints through the crop; z from the 3D joints' depth relative to their mean, in the
    same canonical units (weak perspective: the 3D->2D scale is fitted by least squares).
    """
    from human3d.config import FrameConfig
    from human3d.frame import canvas_transform
    from human3d.segment.clean import mask_bbox

    if not np.asarray(mask).any():
        raise BadInputError("a video frame's person mask is empty")
    scale, (ox, oy) = canvas_transform(mask_bbox(np.asarray(mask, bool)), resolution, FrameConfig().crop_size)
    uv = np.asarray(joints_2d, dtype=np.float64) * scale + [ox, oy]
    xy = np.stack([2 * uv[:, 0] / resolution - 1, 1 - 2 * uv[:, 1] / resolution], -1)
    p = np.asarray(joints_3d, dtype=np.float64)
    src = np.stack([p[:, 0], -p[:, 1]], -1)
    src_c, xy_c = src - src.mean(0), xy - xy.mean(0)
    k = float((src_c * xy_c).sum() / max((src_c ** 2).sum(), 1e-12))
    z = -(p[:, 2] - p[:, 2].mean()) * k
    return (float(scale), float(ox), float(oy)), np.concatenate([xy, z[:, None]], -1).astype(np.float32)


def frame_image(rgb: np.ndarray, mask: np.ndarray, resolution: int) -> Framed:
    """(H, W, 3) uint8 image + (H, W) bool person mask -> the :class:`~human3d.types.Framed` canvas and face view,
    made by inference's own frame stage (:func:`human3d.frame.frame_cutout`: premultiplied Lanczos on white) with
    the default :class:`~human3d.config.FrameConfig` at ``resolution``, so training sees what inference sees."""
    from human3d.config import FrameConfig
    from human3d.context import StageContext
    from human3d.frame import frame_cutout
    from human3d.segment.clean import mask_bbox

    mask = np.asarray(mask, bool)
    if not mask.any():
        raise BadInputError("a video frame's person mask is empty")
    cutout = Cutout(rgb=np.ascontiguousarray(rgb, np.uint8), mask=mask, bbox=mask_bbox(mask), backend="given")
    return frame_cutout(cutout, FrameConfig(resolution=resolution), StageContext())


def import_video_model_output(output: VideoModelOutput, folder: str | Path, name: str, resolution: int = 768
                              ) -> list[Path]:
    """Frame every frame as inference frames a photo (:func:`frame_image`) and write DRPose samples
    ``NAME_000.png/json`` with their face views ``NAME_000_face.png``...; returns the JSON paths."""
    paths = []
    folder = Path(folder)
    for i, (frame, mask) in enumerate(zip(output.frames, output.masks)):
        framed = frame_image(frame, mask, resolution)
        (scale, ox, oy), joints = frame_pose(mask, output.joints_2d[i], output.joints_3d[i], resolution)
        if (scale, (ox, oy)) != (framed.scale, framed.offset):
            raise InternalError("the joints and the image of a video frame were framed differently")
        stem = f"{name}_{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(framed.face_rgb).save(folder / f"{stem}_face.png")
        paths.append(write_pose_sample(folder, stem, framed.rgb, joints, output.joint_names,
                                       {"source": "video model", "face": f"{stem}_face.png"}))
    return paths
