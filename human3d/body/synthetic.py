"""Known posed bodies for tests and benchmarks: named poses with seeded variation, framed like a photo, with their
exact mask, projected keypoints, 3D landmarks and a shaded image.

A pose is a dict of articulated-joint rotation vectors (canonical world-aligned rest axes, see
:mod:`human3d.body.models`); ``make_body`` applies one to a model, orients it, and frames it on an R x R canvas the way
the framing stage does (the bounding box's long side is CROP_SIZE/CANVAS_SIZE of R, centred).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from human3d.body.fit import HINGES, Observations, hinge_geometry
from human3d.body.keypoints import canonical_to_pixels
from human3d.body.models import ARTICULATED_JOINTS, BodyModel
from human3d.body.parts import FACE, HEAD, PART_NAMES, SHIRT_PARTS, TROUSER_PARTS, vertex_parts
from human3d.body.silhouette import rasterize
from human3d.cameras import CANVAS_SIZE, CROP_SIZE

#: Named poses (radians). Ball joints: rotation vectors; elbows and knees (hinges, as in the fit): the change of
#: flexion from the rest pose about the hinge axis of ``fit.hinge_geometry``. +X is the subject's left, +Y up, +Z
#: forward: raising the left arm sideways turns it about +Z, swinging a thigh forward turns it about -X.
POSES: dict[str, dict[str, Any]] = {
    "standing": {},
    "arms_raised": {"left_shoulder": (0.0, 0.0, 2.3), "right_shoulder": (0.0, 0.0, -2.3),
                    "left_elbow": -0.4, "right_elbow": -0.3, "head": (-0.2, 0.0, 0.0)},
    "lunge": {"left_hip": (-1.1, 0.0, 0.15), "left_knee": 1.2, "right_hip": (0.45, 0.0, -0.1),
              "right_knee": 0.5, "spine1": (-0.1, 0.0, 0.0), "left_shoulder": (0.0, 0.0, 0.5),
              "right_shoulder": (0.0, 0.0, -0.5)},
    "sitting": {"left_hip": (-1.45, 0.0, 0.1), "right_hip": (-1.45, 0.0, -0.1), "left_knee": 1.5,
                "right_knee": 1.5, "left_shoulder": (-0.6, 0.0, -0.3), "right_shoulder": (-0.6, 0.0, 0.3),
                "left_elbow": 0.6, "right_elbow": 0.6},
    # the hard poses of the body-fit benchmark (benchmarks/body_fit.py)
    "t_pose": {"left_shoulder": (0.0, 0.0, 0.86), "right_shoulder": (0.0, 0.0, -0.86), "left_elbow": -0.6,
               "right_elbow": -0.6},
    "a_pose": {"left_shoulder": (0.0, 0.0, 0.1), "right_shoulder": (0.0, 0.0, -0.1), "left_elbow": -0.5,
               "right_elbow": -0.5},
    "seated": {"left_hip": (-1.5, 0.0, 0.15), "right_hip": (-1.5, 0.0, -0.15), "left_knee": 1.55,
               "right_knee": 1.55, "left_shoulder": (-0.5, 0.0, -0.2), "right_shoulder": (-0.5, 0.0, 0.2),
               "left_elbow": 0.9, "right_elbow": 0.9, "spine1": (0.1, 0.0, 0.0)},
    "leg_raised": {"left_hip": (-1.3, 0.0, 0.0), "left_knee": 1.4, "left_shoulder": (0.0, 0.0, 0.6),
                   "right_shoulder": (0.0, 0.0, -0.6)},
    "arms_crossed": {"left_shoulder": (-0.3, -1.0, -0.55), "right_shoulder": (-0.3, 1.0, 0.55),
                     "left_elbow": 1.2, "right_elbow": 1.2},
    "crouching": {"left_hip": (-2.0, 0.0, 0.3), "right_hip": (-2.0, 0.0, -0.3), "left_knee": 2.2,
                  "right_knee": 2.2, "left_ankle": (-0.3, 0.0, 0.0), "right_ankle": (-0.3, 0.0, 0.0),
                  "spine1": (0.35, 0.0, 0.0), "spine2": (0.2, 0.0, 0.0), "left_shoulder": (-0.5, 0.0, 0.0),
                  "right_shoulder": (-0.5, 0.0, 0.0), "left_elbow": 0.6, "right_elbow": 0.6},
}


@dataclass
class SyntheticBody:
    """A posed body framed on an R x R canvas, with everything a fit observes and its ground truth.

    vertices: (V, 3) canonical frame; keypoints: (K, 3) canonical; joints: (J, 3); mask: (R, R) bool;
    world: (K, 3) keypoints in metres, canonical axes, origin between the hips (what mediapipe's world landmarks
    estimate); shape: (S,) model shape parameters; rotvecs: the pose.
    """

    vertices: np.ndarray
    faces: np.ndarray
    keypoints: np.ndarray
    joints: np.ndarray
    mask: np.ndarray
    world: np.ndarray
    shape: np.ndarray
    rotvecs: dict[str, np.ndarray]
    resolution: int

    def observations(self, world_noise_m: float = 0.0, seed: int = 0) -> Observations:
        """Exact 2D keypoints (confidence 1), the mask, and world landmarks with optional Gaussian noise."""
        rng = np.random.default_rng(seed)
        world = self.world + rng.normal(0.0, world_noise_m, self.world.shape) if world_noise_m else self.world
        return Observations(mask=self.mask.copy(), keypoints=self.keypoints[:, :2].copy(),
                            confidence=np.ones(len(self.keypoints), dtype=np.float32), world=world.copy())


def random_pose(name: str, seed: int, jitter: float = 0.12) -> dict[str, Any]:
    """The named pose with every joint perturbed by N(0, jitter) radians per axis (seeded); hinges stay hinges and
    never bend backward past straight."""
    rng = np.random.default_rng(seed)
    base = POSES[name]
    out: dict[str, Any] = {}
    for j in ARTICULATED_JOINTS:
        if j in HINGES:
            out[j] = max(float(base.get(j, 0.0)) + float(rng.normal(0.0, jitter)), 0.0 if "knee" in j else -0.5)
            continue
        rv = np.asarray(base.get(j, (0.0, 0.0, 0.0)), dtype=np.float64)
        scale = jitter * (0.3 if j.startswith(("spine", "neck", "left_collar", "right_collar")) else 1.0)
        out[j] = rv + rng.normal(0.0, scale, 3)
    return out


def pose_rotvecs(model: BodyModel, pose: dict[str, Any]) -> dict[str, np.ndarray]:
    """A pose of :data:`POSES`' form -> rotation vectors of every articulated joint (hinges about their axes)."""
    with torch.no_grad():
        rest = model.forward({}, model.shape_mean[None].float())
    axes, _ = hinge_geometry(rest.keypoints[0].cpu().numpy().astype(np.float64))
    return {j: (axes[j] * float(v) if j in HINGES else np.asarray(v, dtype=np.float64)) for j, v in pose.items()}


def make_body(model: BodyModel, pose: dict[str, np.ndarray], *, shape: np.ndarray | None = None,
              yaw_deg: float = 0.0, resolution: int = 256) -> SyntheticBody:
    """Pose ``model``, turn it by ``yaw_deg`` about +Y and frame it on a ``resolution`` canvas."""
    dev = model.device
    pose = pose_rotvecs(model, pose)
    s = model.shape_mean[None].float() if shape is None else torch.as_tensor(shape, dtype=torch.float32)[None]
    rv = {j: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=dev)[None] for j, v in pose.items()}
    with torch.no_grad():
        out = model.forward(rv, s.to(dev))
    rot = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    v = out.vertices[0].cpu().numpy().astype(np.float64) @ rot.T
    k = out.keypoints[0].cpu().numpy().astype(np.float64) @ rot.T
    jn = out.joints[0].cpu().numpy().astype(np.float64) @ rot.T
    from human3d.body.models import KEYPOINT_NAMES

    hips = (k[KEYPOINT_NAMES.index("left_hip")] + k[KEYPOINT_NAMES.index("right_hip")]) / 2
    world = k - hips
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    scale = (2.0 * CROP_SIZE / CANVAS_SIZE) / float((hi - lo).max())
    centre = np.r_[(lo + hi) / 2, 0.0]

    def place(p: np.ndarray) -> np.ndarray:
        return (p - centre) * scale

    v, k, jn = place(v), place(k), place(jn)
    face_id, _ = rasterize(canonical_to_pixels(v[:, :2], resolution), v[:, 2], model.faces, resolution)
    return SyntheticBody(vertices=v, faces=model.faces, keypoints=k, joints=jn, mask=face_id >= 0, world=world,
                         shape=s[0].cpu().numpy(), rotvecs=pose, resolution=resolution)


#: Colours of :func:`shaded_image`: skin, a shirt (torso and upper arms) and trousers (hips and legs).
DEFAULT_PALETTE: dict[str, tuple[int, int, int]] = {"skin": (224, 172, 140), "shirt": (40, 90, 170),
                                                    "trousers": (50, 50, 60)}


def shaded_image(body: SyntheticBody, model: BodyModel, palette: dict[str, tuple[int, int, int]] | None = None
                 ) -> np.ndarray:
    """(R, R, 3) uint8 image of the body on white: skin, a shirt and trousers coloured by body part
    (:mod:`human3d.body.parts`), Lambert-shaded. ``palette`` overrides colours of :data:`DEFAULT_PALETTE`.

    Gives landmark detectors a person-like picture with the ground truth known.
    """
    r = body.resolution
    v = body.vertices
    face_id, _ = rasterize(canonical_to_pixels(v[:, :2], r), v[:, 2], body.faces, r)
    tri = v[body.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, 0.5, 1.0])
    light /= np.linalg.norm(light)
    lambert = np.clip(np.abs(n @ light), 0.0, 1.0)
    fc = part_colours(model, body.vertices, body.keypoints, body.joints, palette)[body.faces].mean(1)
    img = np.full((r, r, 3), 255.0)
    hit = face_id >= 0
    img[hit] = fc[face_id[hit]] * (0.35 + 0.65 * lambert[face_id[hit], None])
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def part_colours(model: BodyModel, vertices: np.ndarray, keypoints: np.ndarray, joints: np.ndarray,
                 palette: dict[str, tuple[int, int, int]] | None = None) -> np.ndarray:
    """(V, 3) float vertex colours in 0..255 of a posed body (any frame with canonical axes: (V, 3) vertices,
    (K, 3) keypoints, (J, 3) joints): a shirt on torso and upper arms, trousers on hips and legs, skin elsewhere (by
    body part, :mod:`human3d.body.parts`), hair on the back and top of the head, dark eyes and a red mouth.
    ``palette`` overrides colours of :data:`DEFAULT_PALETTE`."""
    colours = {**DEFAULT_PALETTE, **(palette or {})}
    parts = vertex_parts(model.skinning_weights, model.joint_names)
    garment = {PART_NAMES.index(p): colours["shirt"] for p in SHIRT_PARTS}
    garment.update({PART_NAMES.index(p): colours["trousers"] for p in TROUSER_PARTS})
    colour_of_part = np.array([garment.get(i, colours["skin"]) for i in range(len(PART_NAMES))], dtype=np.float64)
    return _paint_head(vertices, keypoints, joints, model.joint_names, np.isin(parts, (FACE, HEAD)),
                       colour_of_part[parts])


def _paint_head(vertices: np.ndarray, keypoints: np.ndarray, joints: np.ndarray, names: list[str],
                on_head: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(V, 3) vertex colours with hair on the back and top of the head, dark eyes and a red mouth on the face, so
    that a picture tells front from back (as a photo does)."""
    from human3d.body.models import KEYPOINT_NAMES

    kp = {n: keypoints[i] for i, n in enumerate(KEYPOINT_NAMES)}
    ears = (kp["left_ear"] + kp["right_ear"]) / 2
    fwd = kp["nose"] - ears
    length = float(np.linalg.norm(fwd))
    fwd = fwd / length
    up = joints[names.index("head")] - joints[names.index("neck01")]
    up = up - np.dot(up, fwd) * fwd
    up = up / np.linalg.norm(up)
    out = colours.copy()
    d = vertices - ears
    along, high = d @ fwd, d @ up
    hair = on_head & ((high > 0.55 * length) | ((along < 0.1 * length) & (high > -0.6 * length)))
    out[hair] = (60, 40, 25)
    for eye in ("left_eye", "right_eye"):
        out[on_head & (np.linalg.norm(vertices - kp[eye], axis=1) < 0.16 * length) & (along > 0.6 * length)] = 25
    mouth = kp["nose"] - 0.45 * length * up
    out[on_head & (np.linalg.norm(vertices - mouth, axis=1) < 0.22 * length) & (along > 0.6 * length)] = (
        160, 50, 50)
    return out
