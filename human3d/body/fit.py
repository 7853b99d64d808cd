"""The body-fit stage: a parametric body posed and shaped to the framed photo, in the canonical frame.

Observations (:class:`Observations`): the person mask, mediapipe's 2D landmarks with their visibility, and its 3D
world landmarks. The fit optimises global orientation, the articulated joints' rotations (elbows and knees as
hinges), shape, scale and translation so that, seen by the front camera (orthographic, the identity view of
:mod:`human3d.cameras`), the body's keypoints land on the landmarks and its silhouette matches the mask; a pose
prior (per-joint rotation penalties and hinge limits), agreement with the 3D landmarks' limb directions (which
decides what the front view cannot: depth, which limb is in front) and a shape prior keep it plausible.

It starts from an analytic solution: torso orientation and limb directions from the world landmarks, then scale
and translation from the 2D landmarks by least squares.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from human3d.body.fingers import finger_pose, rest_hands
from human3d.body.hands import HAND_KEYPOINTS, HAND_WRIST, Hand, detect_hands
from human3d.body.head import FRONTAL, head_rotation, head_segments
from human3d.body.keypoints import (
    KEYPOINT_WEIGHTS,
    MIRROR,
    Landmarks,
    canonical_to_pixels,
    detect_landmarks,
    face_visible,
    facing_camera,
    pixels_to_canonical,
    turned_around,
)
from human3d.body.models import ARTICULATED_JOINTS, KEYPOINT_NAMES, BodyModel, BodyOutput, load_body_model
from human3d.body.offsets import OffsetSettings, fit_offsets
from human3d.body.parts import vertex_parts
from human3d.body.silhouette import (
    SilhouetteBand,
    SilhouetteTarget,
    mask_iou,
    prepare_silhouette,
    render_mask,
    silhouette_band,
    silhouette_loss,
)
from human3d.config import BodyConfig
from human3d.context import StageContext, log, torch_threads
from human3d.errors import BadInputError
from human3d.ops.mesh import vertex_normals
from human3d.ops.rotation import min_rotation, orthonormal_frame
from human3d.types import BodyFit, Framed

KP = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
HINGES = ("left_elbow", "right_elbow", "left_knee", "right_knee")
BALLS = tuple(j for j in ARTICULATED_JOINTS if j not in HINGES)

#: Pose prior: penalty weight on each ball joint's rotation (rad^-2): the spine, neck and collars move little.
POSE_PRIOR = {"spine1": 4.0, "spine2": 6.0, "spine3": 6.0, "neck": 3.0, "head": 1.5, "left_collar": 10.0,
              "right_collar": 10.0, "left_shoulder": 0.05, "right_shoulder": 0.05, "left_wrist": 1.0,
              "right_wrist": 1.0, "left_hip": 0.05, "right_hip": 0.05, "left_ankle": 1.0, "right_ankle": 1.0}
#: Hinge range, total flexion in degrees (elbow and knee bend one way only).
HINGE_RANGE_DEG = (0.0, 150.0)
#: Limb segments whose 3D direction the world landmarks give: (from, to) keypoints.
SEGMENTS = (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
            ("right_elbow", "right_wrist"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
            ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_heel", "left_foot_index"),
            ("right_heel", "right_foot_index"), ("right_shoulder", "left_shoulder"), ("right_hip", "left_hip"),
            ("left_hip", "left_shoulder"), ("right_hip", "right_shoulder"))
#: Landmarks below this visibility count as not seen.
VISIBLE = 0.5
LOWER_BODY = ("left_knee", "right_knee", "left_ankle", "right_ankle")
#: A fitted standing height outside this range (metres) is not believed: the export falls back to the default.
PLAUSIBLE_HEIGHT_M = (0.8, 2.1)
#: Below this mask IoU the fit did not match the photo well enough to trust the height it implies.
HEIGHT_MIN_IOU = 0.8


@dataclass
class Observations:
    """What the fit matches, on an R x R canvas.

    mask: (R, R) bool; keypoints: (K, 2) canonical x, y in the order of ``models.KEYPOINT_NAMES`` or None;
    confidence: (K,) in [0, 1]; world: (K, 3) metric 3D landmarks in canonical axes (or None);
    open_region: (R, R) bool pixels beyond a photo edge that cut the person (the body may continue there) or None;
    facing: "camera" or "away" (the person's front toward or away from the camera) when the landmarks tell;
    hand_keypoints: indices of the keypoints a hand model set (their 3D directions from the wrist count);
    hands: the hands found (:mod:`human3d.body.hands`) by the subject's side as fitted (they set the fingers);
    head: (3, 3) the head's rotation from the face's landmarks (:mod:`human3d.body.head`) or None.
    """

    mask: np.ndarray
    keypoints: np.ndarray | None = None
    confidence: np.ndarray | None = None
    world: np.ndarray | None = None
    open_region: np.ndarray | None = None
    facing: str | None = None
    hand_keypoints: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hands: dict[str, Hand] = field(default_factory=dict)
    head: np.ndarray | None = None

    @property
    def resolution(self) -> int:
        return int(self.mask.shape[0])


@dataclass
class FitSettings:
    """Knobs of :func:`fit_observations`. What a user sets lives in :class:`BodyConfig` (the single source of those
    defaults; the stage passes them on); the rest are the fit's internal weights."""

    iterations: int = BodyConfig.iterations
    silhouette_resolution: int = 256
    """Working resolution of the silhouette term (the mask is downsampled to it)."""
    band_px: float = 6.0
    """Triangles and pixels within this many working pixels of an outline take part in the silhouette term."""
    band_refresh: int = 15
    """Steps between re-selections of that band."""
    sigma_px: float = 0.3
    """Softness of the silhouette edge, in working pixels."""
    lr: float = 0.03
    w_keypoints: float = 1.0
    keypoint_late: float = 0.2
    """Fraction of the keypoint weight left at the end: it ramps down linearly once the silhouette is on, so the
    detector's landmarks place the body and the exact mask refines it."""
    w_silhouette: float = 5.0
    w_world: float = 0.5
    shin_depth: float = 0.3
    """Share of mediapipe's knee-to-ankle depth the fit believes (:func:`damped_shin_depth`). Its world landmarks
    put the ankles of a person standing straight 15-20 degrees behind the knees: on the embedded benchmark's
    renders (benchmarks/embedded_quality.py) the fitted shins leaned back 15-22 degrees against a truth of 3-12, and a
    front view shows nothing that corrects it. The rest of the shins' depth comes from their foreshortening in the
    photo, the knee's hinge and the pose prior; 1 believes the landmarks in full (exact ones, as in tests)."""
    upper_arm_depth: float = 0.5
    """Share of mediapipe's shoulder-to-elbow depth the fit believes (:func:`damped_upper_arm_depth`). On the
    embedded benchmark's clothed renders mediapipe leaned upper arms that hang -5 to 13 degrees from the image
    plane 17-35 degrees toward the camera (and its 2D upper arms were 15-19% short, which a fit of the right arm
    length can only match by leaning them the same way); believing half of it made the fitted body 14-15% closer
    to the truth on two of the three Anny subjects and left the body-fit benchmark's hard poses
    (benchmarks/body_fit.py) as they were (median joint error 36 -> 34 mm). 1 believes the landmarks in full
    (exact ones, as in tests)."""
    world_feet: bool = True
    """Whether the feet's 3D directions (heel to toe) take part in the 3D term. Never in a back view: there
    mediapipe's feet mostly point at the camera, and following them twists the whole leg."""
    w_pose: float = 1e-3
    w_hinge: float = 1.0
    w_shape: float = 2e-4
    offset_share: float = 0.15
    """Share of the iterations spent on clothing and hair offsets after the body (:mod:`human3d.body.offsets`);
    0 leaves the surface the body model's."""
    offsets: OffsetSettings = field(default_factory=OffsetSettings)
    """The offsets' own knobs (their ``steps`` is set from ``offset_share``)."""


@dataclass
class FitResult:
    """Canonical-frame result of :func:`fit_observations` (numpy) and its parameters."""

    vertices: np.ndarray
    joints: np.ndarray
    keypoints: np.ndarray
    params: dict[str, Any]
    scale: float
    height_m: float
    canonical_height: float
    report: dict[str, Any] = field(default_factory=dict)
    offsets: np.ndarray | None = None
    """(V,) clothing and hair offsets the vertices carry along the body's normals, or None."""


# ---------------------------------------------------------------------------------------------------------------
# The stage


def fit_body(framed: Framed, cfg: BodyConfig, ctx: StageContext) -> BodyFit:
    """Pipeline stage: fit the body model chosen by ``cfg.model`` to the framed canvas (see module docstring)."""
    t0 = time.perf_counter()
    if not framed.mask.any():
        raise BadInputError("the framed person mask is empty, so there is no body to fit; check the segmentation "
                             "(or pass --mask)")
    ctx.progress(0.0, "loading body model")
    model = load_body_model(cfg.model, ctx.device, ctx.weights_dir, ctx)
    ctx.progress(0.05, "detecting landmarks")
    landmarks = detect_landmarks(framed.rgb)
    t_hands = time.perf_counter()
    hands = detect_hands(framed.rgb, landmarks) if landmarks is not None else {}
    t_hands = time.perf_counter() - t_hands
    obs = observations_from_framed(framed, landmarks, ctx, hands)
    settings = FitSettings(iterations=cfg.iterations, offset_share=FitSettings.offset_share if cfg.clothing else 0.0)
    with torch_threads(cfg.threads if torch.device(ctx.device).type == "cpu" else 0):
        result = fit_observations(model, obs, settings, ctx, height_m=cfg.height_m)
    result.report["seconds"] = round(time.perf_counter() - t0, 3)
    result.report["landmarks"] = landmarks is not None
    result.report["hands"] = sorted(hands)
    result.report["seconds_hands"] = round(t_hands, 3)
    if obs.facing is not None:
        result.report["facing"] = obs.facing
    if cfg.height_m is None:
        result.height_m = _trusted_height(result, ctx)
    fit = BodyFit(
        vertices=result.vertices.astype(np.float32), faces=model.faces.astype(np.int64),
        joints=result.joints.astype(np.float32), joint_names=list(model.joint_names), model=model.name,
        params=result.params, height_m=float(result.height_m),
        canonical_height=float(result.canonical_height), report=result.report,
        parts=vertex_parts(model.skinning_weights, model.joint_names, result.vertices, result.joints),
        offsets=None if result.offsets is None else result.offsets.astype(np.float32),
    )
    if ctx.stage_dir is not None:
        write_body_files(fit, Path(ctx.stage_dir))
    kp_error = result.report.get("keypoint_error_px")
    ctx.progress(1.0, f"body fitted ({model.name}; mask IoU {result.report['mask_iou']:.3f}"
                      + (f", keypoint error {kp_error:.1f} px)" if kp_error is not None else ", silhouette only)"))
    return fit


def _trusted_height(result: FitResult, ctx: StageContext) -> float:
    """The fitted standing height when the fit matched the photo and is plausible, else the default height (with a
    warning); records which in ``report["height_source"]``."""
    from human3d.config import ExportConfig

    # the height is the body's, not its clothes': judged by the body's own match when clothing offsets were added
    iou = float(result.report.get("mask_iou_body", result.report.get("mask_iou", 0.0)))
    lo, hi = PLAUSIBLE_HEIGHT_M
    if iou >= HEIGHT_MIN_IOU and lo <= result.height_m <= hi:
        result.report["height_source"] = "fit"
        return result.height_m
    default = ExportConfig().default_height_m
    why = f"mask IoU {iou:.2f}" if iou < HEIGHT_MIN_IOU else f"implausible height {result.height_m:.2f} m"
    ctx.warn(f"the body fit does not match the photo well ({why}): using the default height {default:.2f} m "
             "instead of the fitted one (pass --height to set it)")
    result.report["height_source"] = "default"
    result.report["fitted_height_m"] = round(result.height_m, 3)
    return default


def observations_from_framed(framed: Framed, landmarks: Landmarks | None, ctx: StageContext,
                             hands: dict[str, Hand] | None = None) -> Observations:
    """Turn the framed canvas, its landmarks and hands (:func:`~human3d.body.hands.detect_hands`, by the subject's
    side) into :class:`Observations`, warning about what is missing."""
    r = framed.resolution
    open_region = _cut_edges(framed)
    if landmarks is None:
        ctx.warn("no body landmarks found in the photo: fitting the body to the silhouette alone (pose may be "
                 "wrong; a photo showing the whole person from the front works best)")
        return Observations(mask=framed.mask.astype(bool), open_region=open_region)
    xy, conf, world = landmarks.for_model()
    conf = conf.astype(np.float32).copy()
    px = canonical_to_pixels(xy, r)
    # landmarks that mediapipe places outside the canvas cannot be matched by anything visible
    conf[(px[:, 0] < 0) | (px[:, 0] > r) | (px[:, 1] < 0) | (px[:, 1] > r)] = 0.0
    lower_seen = [conf[KP[n]] >= VISIBLE for n in LOWER_BODY]
    if open_region is not None or not all(lower_seen):
        ctx.warn("part of the body is not visible in the photo (e.g. legs cut off): fitting what is visible; the "
                 "rest of the body follows the pose prior")
    if not np.isfinite(world).all():
        return Observations(mask=framed.mask.astype(bool), keypoints=xy, confidence=conf, open_region=open_region)
    hands = hands or {}
    xy, conf, world, hand_kp = with_hands(xy, conf, world, hands, r)
    toward = facing_camera(world) > 0.0
    head = head_rotation(framed.rgb, landmarks)
    xy, conf, world, facing = _decide_facing(framed.rgb, landmarks, xy, conf, world, ctx, head)
    if toward != (facing == "camera"):  # turned around: the hand points moved to their partners' names
        hand_kp = MIRROR[hand_kp]
        hands = {("right" if side == "left" else "left"): hand for side, hand in hands.items()}
    return Observations(mask=framed.mask.astype(bool), keypoints=xy, confidence=conf, world=world,
                        open_region=open_region, facing=facing, hand_keypoints=hand_kp, hands=hands,
                        head=head if facing == "camera" else None)


def with_hands(xy: np.ndarray, conf: np.ndarray, world: np.ndarray, hands: dict[str, Hand], resolution: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model-order landmarks (K, 2), (K,), (K, 3) with each found hand's knuckles in place of the pose's hand
    points (2D from the hand's pixels, 3D as the wrist's world point plus the hand's metric wrist-to-knuckle
    vectors), and the indices of the keypoints so set."""
    xy, conf, world = xy.copy(), conf.copy(), world.copy()
    done: list[int] = []
    for side, hand in hands.items():
        wrist = KP[f"{side}_wrist"]
        for suffix, h in HAND_KEYPOINTS.items():
            k = KP[f"{side}_{suffix}"]
            xy[k] = pixels_to_canonical(hand.pixels[h], resolution)
            conf[k] = hand.score
            world[k] = world[wrist] + hand.world[h] - hand.world[HAND_WRIST]
            done.append(k)
    return xy, conf, world, np.array(sorted(done), dtype=np.int64)


def _decide_facing(rgb: np.ndarray, landmarks: Landmarks, xy: np.ndarray, conf: np.ndarray, world: np.ndarray,
                   ctx: StageContext, head: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Which way the person faces: mediapipe's 3D landmarks say, unless the face says otherwise. They face the
    camera while no face is found at the head (mediapipe then mostly read a back view as a front view), or they
    face away while the face detector finds a face and the face mesh (``head``, :func:`~human3d.body.head.
    head_rotation`) looks toward the camera (a frontal face is only seen from the front): the landmarks are turned
    around.

    Returns the (possibly turned) model-order landmarks and "camera" or "away"; warns when the front is unseen.
    """
    toward = facing_camera(world) > 0.0
    face = face_visible(rgb, landmarks.pixels, landmarks.visibility)
    if toward and face is False:
        xy, conf, world = turned_around(xy, conf, world)
        toward = False
        log.info("no face at the head although the landmarks face the camera: reading the photo as a back view")
    elif not toward and face is True and head is not None and head[2, 2] >= FRONTAL:
        xy, conf, world = turned_around(xy, conf, world)
        toward = True
        log.info("a frontal face at the head although the landmarks face away: reading the photo as a front view")
    if not toward:
        ctx.warn("the person is seen from behind: the body is fitted facing away from the camera and the "
                 "reconstruction keeps the person's front as its front, but that front is not in the photo "
                 "(it is guessed)")
    return xy, conf, world, "camera" if toward else "away"


def _cut_edges(framed: Framed) -> np.ndarray | None:
    """(R, R) bool region beyond each photo edge that the person's mask touches (the photo cut the person there)."""
    w, h = framed.photo_size
    if w <= 0 or h <= 0:
        return None
    r = framed.resolution
    (x0, y0), (x1, y1) = framed.photo_to_canvas(np.array([[0.0, 0.0], [float(w), float(h)]]))
    m = framed.mask
    rows, cols = np.nonzero(m)
    tol = max(2.0, framed.scale * 1.5)  # the mask touches an edge when it comes within ~1.5 photo pixels of it
    region = np.zeros_like(m, dtype=bool)
    u = np.arange(r) + 0.5
    touched = False
    # each side: is the mask within tol of the photo edge there, and is that edge inside the canvas?
    if y1 < r and rows.max() + 1 >= y1 - tol:
        region[u >= y1 - tol, :] = True
        touched = True
    if y0 > 0 and rows.min() <= y0 + tol:
        region[u <= y0 + tol, :] = True
        touched = True
    if x1 < r and cols.max() + 1 >= x1 - tol:
        region[:, u >= x1 - tol] = True
        touched = True
    if x0 > 0 and cols.min() <= x0 + tol:
        region[:, u <= x0 + tol] = True
        touched = True
    return region if touched else None


def write_body_files(fit: BodyFit, folder: Path) -> None:
    """``body.json`` (parameters, heights, report) and ``body.obj`` (the fitted mesh, canonical frame)."""
    from human3d.io.atomic import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    meta = {"model": fit.model, "height_m": fit.height_m, "canonical_height": fit.canonical_height,
            "params": fit.params, "report": fit.report,
            "joints": {n: [round(float(c), 6) for c in p] for n, p in zip(fit.joint_names, fit.joints)}}
    atomic_write_text(folder / "body.json", json.dumps(meta, indent=1))
    lines = [f"# human3d body fit ({fit.model}), canonical frame"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in fit.vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in fit.faces]
    atomic_write_text(folder / "body.obj", "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# The optimisation


class _Posed:
    """The fit's parameters and the map from them to a canonical-frame body."""

    def __init__(self, model: BodyModel, rest: BodyOutput, device: torch.device) -> None:
        self.model = model
        self.device = device
        axes, rest_angle = hinge_geometry(rest.keypoints[0].detach().cpu().numpy().astype(np.float64))
        self.hinge_axis = {k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in axes.items()}
        self.hinge_rest = rest_angle
        f32 = dict(dtype=torch.float32, device=device)
        self.ball = torch.zeros(len(BALLS), 3, **f32, requires_grad=True)
        self.hinge = torch.zeros(len(HINGES), **f32, requires_grad=True)
        self.glob = torch.zeros(3, **f32, requires_grad=True)
        self.log_scale = torch.zeros(1, **f32, requires_grad=True)
        self.trans = torch.zeros(2, **f32, requires_grad=True)
        self.shape = model.shape_mean.clone().float().to(device)[None].requires_grad_(True)
        self.fixed: dict[str, torch.Tensor] = {}
        """Rotations held as they are (the fingers, :mod:`human3d.body.fingers`): joint name -> (1, 3)."""

    def rotvecs(self) -> dict[str, torch.Tensor]:
        out = {j: self.ball[i][None] for i, j in enumerate(BALLS)} | self.fixed
        for i, j in enumerate(HINGES):
            out[j] = (self.hinge[i] * self.hinge_axis[j])[None]
        return out

    def forward(self, model: BodyModel | None = None, state: Any = None) -> BodyOutput:
        """The posed body in the canonical frame (vertices, joints, keypoints: (1, N, 3)) by ``model`` (default: the
        one the fit was built with; a vertex subset of it, or the full one), ``state`` its cached shape state."""
        import roma

        body = (model or self.model).forward(self.rotvecs(), self.shape, state)
        rot = roma.rotvec_to_rotmat(self.glob)
        s = torch.exp(self.log_scale)
        origin = body.joints[:, :1]  # rotate and scale about the root joint
        t = torch.cat([self.trans, self.trans.new_zeros(1)])

        def place(p: torch.Tensor) -> torch.Tensor:
            return s * (p - origin) @ rot.T + t

        return BodyOutput(place(body.vertices), place(body.joints), place(body.keypoints))

    def hinge_flexion(self) -> torch.Tensor:
        """(4,) total flexion of elbows and knees (radians)."""
        rest = torch.tensor([self.hinge_rest[j] for j in HINGES], dtype=torch.float32, device=self.device)
        return self.hinge + rest


def hinge_geometry(rest_keypoints: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Hinge axes (unit, rest axes) and rest flexion (radians) of elbows and knees from (K, 3) rest keypoints.

    Elbows keep bending in the plane their rest pose already bends in; knees bend backward (the body faces +Z, so
    the shin swings toward -Z). A positive rotation about an axis increases the flexion.
    """
    kp0 = rest_keypoints
    axes: dict[str, np.ndarray] = {}
    rest_angle: dict[str, float] = {}
    for side in ("left", "right"):
        u0 = kp0[KP[f"{side}_elbow"]] - kp0[KP[f"{side}_shoulder"]]
        l0 = kp0[KP[f"{side}_wrist"]] - kp0[KP[f"{side}_elbow"]]
        a = np.cross(u0, l0)
        if np.linalg.norm(a) < 1e-3 * np.linalg.norm(u0) * np.linalg.norm(l0):
            a = np.cross(u0, np.array([0.0, 0.0, 1.0]))
        axes[f"{side}_elbow"] = a / np.linalg.norm(a)
        rest_angle[f"{side}_elbow"] = _angle(u0, l0)
        u0 = kp0[KP[f"{side}_knee"]] - kp0[KP[f"{side}_hip"]]
        l0 = kp0[KP[f"{side}_ankle"]] - kp0[KP[f"{side}_knee"]]
        a = np.cross(l0, np.array([0.0, 0.0, -1.0]))
        axes[f"{side}_knee"] = a / np.linalg.norm(a)
        rest_angle[f"{side}_knee"] = math.atan2(float(np.dot(np.cross(u0, l0), axes[f"{side}_knee"])),
                                                float(np.dot(u0, l0)))
    return axes, rest_angle


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    return math.acos(min(1.0, max(-1.0, c)))


def _torso_frame(kp: np.ndarray) -> np.ndarray:
    """(3, 3) columns: the body's left (+X), up (+Y) and forward (+Z) directions from hips and shoulders."""
    x = (kp[KP["left_hip"]] - kp[KP["right_hip"]]) + (kp[KP["left_shoulder"]] - kp[KP["right_shoulder"]])
    up = (kp[KP["left_shoulder"]] + kp[KP["right_shoulder"]] - kp[KP["left_hip"]] - kp[KP["right_hip"]]) / 2
    return orthonormal_frame(x, up, eps=0.0)  # never None: a degenerate torso gives NaN, as it always did


def _initial_pose(posed: _Posed, rest_kp: np.ndarray, world: np.ndarray, conf: np.ndarray, limbs: bool = True
                  ) -> None:
    """Global orientation and (when ``limbs``) limb rotations from the world landmarks (analytic inverse
    kinematics)."""
    torso = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
    if any(conf[KP[n]] < 0.2 for n in torso):
        return
    r_glob = Rotation.from_matrix(_torso_frame(world) @ _torso_frame(rest_kp).T)
    local = r_glob.inv().apply(world)  # the world landmarks in the body's (rest-aligned) frame
    ball = posed.ball.detach().clone()
    hinge = posed.hinge.detach().clone()
    lo, hi = (math.radians(v) for v in HINGE_RANGE_DEG)
    for side in ("left", "right") if limbs else ():
        for root, mid, end, ball_j, hinge_j in (("shoulder", "elbow", "wrist", "shoulder", "elbow"),
                                               ("hip", "knee", "ankle", "hip", "knee")):
            a, b, c = (KP[f"{side}_{n}"] for n in (root, mid, end))
            if conf[a] < 0.2 or conf[b] < 0.2:
                continue
            u0, l0 = rest_kp[b] - rest_kp[a], rest_kp[c] - rest_kp[b]
            u, lt = local[b] - local[a], local[c] - local[b]
            r1 = min_rotation(u0, u)
            hj = f"{side}_{hinge_j}"
            phi = 0.0
            if conf[c] >= 0.2:
                flex = min(max(_angle(u, lt), lo), hi)
                phi = flex - posed.hinge_rest[hj]
                # twist about the upper segment so the lower one points the right way
                bend = Rotation.from_rotvec(posed.hinge_axis[hj].cpu().numpy() * phi)
                lp = r1.apply(bend.apply(l0))
                un = u / np.linalg.norm(u)
                lp_perp, lt_perp = lp - np.dot(lp, un) * un, lt - np.dot(lt, un) * un
                if np.linalg.norm(lp_perp) > 1e-6 and np.linalg.norm(lt_perp) > 1e-6:
                    psi = math.atan2(float(np.dot(un, np.cross(lp_perp, lt_perp))), float(np.dot(lp_perp, lt_perp)))
                    r1 = Rotation.from_rotvec(un * psi) * r1
            ball[BALLS.index(f"{side}_{ball_j}")] = torch.as_tensor(r1.as_rotvec(), dtype=torch.float32,
                                                                    device=ball.device)
            hinge[HINGES.index(hj)] = phi
    with torch.no_grad():
        posed.ball.copy_(ball)
        posed.hinge.copy_(hinge)
        posed.glob.copy_(torch.as_tensor(r_glob.as_rotvec(), dtype=torch.float32))


def _initial_placement(posed: _Posed, obs: Observations) -> None:
    """Scale and translation: least squares on the visible 2D keypoints, else the mask's bounding box."""
    with torch.no_grad():
        posed.log_scale.zero_()
        posed.trans.zero_()
        body = posed.forward()
        kp = body.keypoints[0, :, :2].cpu().numpy().astype(np.float64)
        c = np.zeros(len(kp)) if obs.confidence is None else obs.confidence.astype(np.float64)
        c = np.where(c >= VISIBLE, c, 0.0)
        if c.sum() > 0 and np.count_nonzero(c) >= 4:
            mp = (c[:, None] * kp).sum(0) / c.sum()
            mo = (c[:, None] * obs.keypoints).sum(0) / c.sum()
            s = float((c * ((kp - mp) * (obs.keypoints - mo)).sum(1)).sum() / (c * ((kp - mp) ** 2).sum(1)).sum())
            s = max(s, 1e-3)
            t = mo - s * mp
        else:
            r = obs.resolution
            rows, cols = np.nonzero(obs.mask)
            v = body.vertices[0, :, :2].cpu().numpy()
            ext = v.max(0) - v.min(0)
            mask_h = (rows.max() + 1 - rows.min()) * 2.0 / r
            s = mask_h / max(ext[1], 1e-6)
            centre = np.array([(cols.min() + cols.max() + 1) / r - 1.0, 1.0 - (rows.min() + rows.max() + 1) / r])
            t = centre - s * (v.max(0) + v.min(0)) / 2
        posed.log_scale.fill_(math.log(s))
        posed.trans.copy_(torch.as_tensor(t, dtype=torch.float32))


@dataclass
class _Targets:
    """What the loss compares the body with (torch, on the fit's device); see :func:`_loss`."""

    kp: torch.Tensor | None
    kp_w: torch.Tensor | None
    seg_idx: torch.Tensor | None
    seg_dirs: torch.Tensor | None
    prior_w: torch.Tensor
    pose_w: float


def _segment_targets(world: np.ndarray | None, conf: np.ndarray, device: torch.device, feet: bool = True,
                     hand_keypoints: np.ndarray | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(S, 2) keypoint index pairs and (S, 3) unit directions of the limb segments the world landmarks show
    (without the feet unless ``feet``; with wrist-to-knuckle segments for the ``hand_keypoints`` a hand set)."""
    if world is None:
        return None, None
    seg = [(KP[a], KP[b]) for a, b in SEGMENTS if feet or not a.endswith("_heel")]
    for k in () if hand_keypoints is None else hand_keypoints:
        name = KEYPOINT_NAMES[k]
        if not name.endswith("_thumb"):
            seg.append((KP[name.split("_")[0] + "_wrist"], int(k)))
    d = np.array([world[b] - world[a] for a, b in seg])
    ok = np.array([min(conf[a], conf[b]) >= VISIBLE for a, b in seg]) & (np.linalg.norm(d, axis=1) > 1e-6)
    if not ok.any():
        return None, None
    idx = torch.tensor([s for s, k in zip(seg, ok) if k], device=device)
    return idx, torch.as_tensor(d[ok] / np.linalg.norm(d[ok], axis=1, keepdims=True), dtype=torch.float32,
                                device=device)


def _loss(posed: _Posed, body: BodyOutput, tg: _Targets, settings: FitSettings, model: BodyModel,
          w_kp: float) -> torch.Tensor:
    """Pose prior, hinge limits, shape prior, 2D keypoints and 3D limb directions (the silhouette is added by the
    caller)."""
    lo, hi = (math.radians(v) for v in HINGE_RANGE_DEG)
    loss = tg.pose_w * (tg.prior_w * (posed.ball ** 2).sum(1)).sum()
    flex = posed.hinge_flexion()
    loss = loss + settings.w_hinge * (torch.relu(lo - flex) ** 2 + torch.relu(flex - hi) ** 2).sum()
    loss = loss + settings.w_shape * (((posed.shape[0] - model.shape_mean) / model.shape_scale) ** 2).sum()
    if tg.kp is not None:
        err = ((body.keypoints[0, :, :2] - tg.kp) ** 2).sum(1)
        loss = loss + w_kp * (tg.kp_w * err).sum() / 1e-3
    if tg.seg_dirs is not None:
        kp3 = body.keypoints[0]
        md = kp3[tg.seg_idx[:, 1]] - kp3[tg.seg_idx[:, 0]]
        md = md / md.norm(dim=1, keepdim=True).clamp_min(1e-6)
        loss = loss + settings.w_world * (1.0 - (md * tg.seg_dirs).sum(1)).sum()
    return loss


#: Limb chains whose depth the "mirrored limbs" hypothesis flips about their root: (root, members).
LIMB_CHAINS = (("left_shoulder", ("left_elbow", "left_wrist", "left_index", "left_pinky", "left_thumb")),
               ("right_shoulder", ("right_elbow", "right_wrist", "right_index", "right_pinky", "right_thumb")),
               ("left_hip", ("left_knee", "left_ankle", "left_heel", "left_foot_index")),
               ("right_hip", ("right_knee", "right_ankle", "right_heel", "right_foot_index")))


def mirrored_limbs(world: np.ndarray) -> np.ndarray:
    """(K, 3) world landmarks with every limb's depth mirrored about its root joint (the depth a single view
    cannot tell), the torso and head kept."""
    out = world.copy()
    for root, members in LIMB_CHAINS:
        z0 = world[KP[root], 2]
        for m in members:
            out[KP[m], 2] = 2 * z0 - world[KP[m], 2]
    return out


def damped_limb_depth(world: np.ndarray, keep: float, root: str, joint: str, moved: tuple[str, ...]) -> np.ndarray:
    """(K, 3) world landmarks whose ``joint`` (both sides' ``left_``/``right_`` names), with the ``moved`` points
    below it, keeps only ``keep`` of its depth relative to ``root`` (0: the segment lies in a plane facing the
    camera, 1: as mediapipe says)."""
    out = np.array(world, dtype=np.float64, copy=True)
    for side in ("left", "right"):
        dz = (keep - 1.0) * (out[KP[f"{side}_{joint}"], 2] - out[KP[f"{side}_{root}"], 2])
        for part in moved:
            out[KP[f"{side}_{part}"], 2] += dz
    return out.astype(np.asarray(world).dtype)


def damped_shin_depth(world: np.ndarray, keep: float) -> np.ndarray:
    """:func:`damped_limb_depth` of the ankles (with their heels and toes) relative to the knees."""
    return damped_limb_depth(world, keep, "knee", "ankle", ("ankle", "heel", "foot_index"))


def damped_upper_arm_depth(world: np.ndarray, keep: float) -> np.ndarray:
    """:func:`damped_limb_depth` of the elbows (with their forearms and hands) relative to the shoulders."""
    return damped_limb_depth(world, keep, "shoulder", "elbow", ("elbow", "wrist", "index", "pinky", "thumb"))


def _hypotheses(obs: Observations, conf: np.ndarray, have_kp: bool) -> list[tuple[str, np.ndarray | None, bool]]:
    """Starting points: (name, world landmarks the start is made from, whether the limbs start from them). All are
    then fitted to the same targets (mediapipe's landmarks): a start only decides which optimum is reached."""
    if not have_kp or obs.world is None:
        return [("upright", None, False)]
    return [("landmarks", obs.world, True), ("mirrored limbs", mirrored_limbs(obs.world), True),
            ("upright", obs.world, False)]


def _warm_up(model: BodyModel, rest: BodyOutput, rest_kp: np.ndarray, obs: Observations, conf: np.ndarray,
             tg: _Targets, settings: FitSettings, steps: int, hypothesis: tuple[str, np.ndarray | None, bool],
             device: torch.device, fixed: dict[str, torch.Tensor]) -> tuple[_Posed, float]:
    """One hypothesis: its start, then ``steps`` keypoint-only steps (frozen shape) on the common targets ``tg``.
    Returns the body and its final loss (keypoints, 3D directions, priors), by which hypotheses are compared."""
    name, world, limbs = hypothesis
    posed = _Posed(model.subset(np.zeros(0, dtype=np.int64)), rest, device)
    posed.fixed = fixed
    if world is not None:
        _initial_pose(posed, rest_kp, world, conf, limbs=limbs)
    _initial_placement(posed, obs)
    opt = torch.optim.Adam([{"params": [posed.ball, posed.hinge, posed.glob], "lr": settings.lr},
                            {"params": [posed.log_scale, posed.trans], "lr": settings.lr * 0.3}])
    with torch.no_grad():
        state = posed.model.shape_state(posed.shape.detach())
    value = float("inf")
    for _ in range(max(steps, 1)):
        opt.zero_grad(set_to_none=True)
        loss = _loss(posed, posed.forward(state=state), tg, settings, model, settings.w_keypoints)
        loss.backward()
        opt.step()
        value = float(loss.detach())
    return posed, value


def fit_observations(model: BodyModel, obs: Observations, settings: FitSettings, ctx: StageContext,
                     height_m: float | None = None) -> FitResult:
    """Optimise ``model`` to ``obs``; returns the canonical-frame body and a fit report.

    Several starts (:func:`_hypotheses`) are warmed up on the keypoints; the one with the lowest loss goes on with
    the silhouette; clothing and hair offsets (:mod:`human3d.body.offsets`) finish the surface. Raises
    BadInputError when the mask is empty (nothing to fit).
    """
    if not obs.mask.any():
        raise BadInputError("the person mask is empty, so there is no body to fit; check the segmentation")
    if obs.world is not None:
        world = damped_upper_arm_depth(damped_shin_depth(obs.world, settings.shin_depth), settings.upper_arm_depth)
        obs = dataclasses.replace(obs, world=world)
    device = torch.device(ctx.device)
    with torch.no_grad():
        rest = model.forward({}, model.shape_mean[None].float().to(device))
    rest_kp = rest.keypoints[0].cpu().numpy().astype(np.float64)
    have_kp = obs.keypoints is not None and obs.confidence is not None and float(obs.confidence.max()) >= VISIBLE
    conf = obs.confidence.astype(np.float64) if have_kp else np.zeros(len(KEYPOINT_NAMES))
    target = prepare_silhouette(obs.mask, obs.open_region, min(settings.silhouette_resolution, obs.resolution),
                                device)
    tg = _fit_targets(obs, conf, have_kp, settings, device, rest_kp)
    mean_shape = model.shape_mean[None].float().to(device)
    fingers = finger_pose(obs.hands, rest_hands(model, mean_shape, rest.joints[0].cpu().numpy())) if obs.hands else {}
    fixed = {j: torch.as_tensor(rv, dtype=torch.float32, device=device)[None] for j, rv in fingers.items()}

    n_it = max(int(settings.iterations), 1)
    n_offsets = int(round(settings.offset_share * n_it)) if n_it >= 10 else 0
    n_body = n_it - n_offsets
    warmup = int(0.3 * n_body) if have_kp else 0
    # --- warm-up: every start on the keypoints (cheap: only the keypoints' vertices are posed); the best goes on
    tried = [(h[0], *_warm_up(model, rest, rest_kp, obs, conf, tg, settings, warmup // 2, h, device, fixed))
             for h in _hypotheses(obs, conf, have_kp)]
    name, posed, _ = min(tried, key=lambda t: t[2])
    _refine(posed, model, tg, target, settings, (warmup // 2, warmup, n_body), ctx)

    result = _finish(posed, model, obs, conf if have_kp else None, height_m)
    if n_offsets:
        ctx.progress(0.9, "fitting clothing and hair")
        t0 = time.perf_counter()
        _add_offsets(result, model, obs, target, dataclasses.replace(settings.offsets, steps=n_offsets))
        result.report["seconds_offsets"] = round(time.perf_counter() - t0, 3)
    result.report["start"] = name
    result.report["fingers_posed"] = sorted({j.rsplit("_", 1)[0] for j in fingers})
    result.report["head_from_face"] = obs.head is not None
    result.report["starts_loss"] = {t[0]: round(t[2], 4) for t in tried}
    return result


def _fit_targets(obs: Observations, conf: np.ndarray, have_kp: bool, settings: FitSettings,
                 device: torch.device, rest_kp: np.ndarray | None = None) -> _Targets:
    """The loss's targets from the observations: visible keypoints (weights normalised), 3D limb directions (and
    the head's, from the face, given the (K, 3) rest keypoints), and the pose prior's weights (30x stronger without
    landmarks: then only the silhouette speaks, so the pose stays near the rest pose)."""
    kp_t = kp_w = None
    if have_kp:
        kp_t = torch.as_tensor(obs.keypoints, dtype=torch.float32, device=device)
        w = np.where(conf >= VISIBLE, conf, 0.0) * KEYPOINT_WEIGHTS
        kp_w = torch.as_tensor(w / max(w.sum(), 1e-6), dtype=torch.float32, device=device)
    prior_w = torch.tensor([POSE_PRIOR[j] for j in BALLS], dtype=torch.float32, device=device)
    feet = settings.world_feet and obs.facing != "away"
    seg_idx, seg_dirs = _segment_targets(obs.world if have_kp else None, conf, device, feet, obs.hand_keypoints)
    if obs.head is not None and rest_kp is not None:
        pairs, dirs = head_segments(obs.head, rest_kp)
        pairs_t = torch.as_tensor(pairs, device=device)
        dirs_t = torch.as_tensor(dirs, dtype=torch.float32, device=device)
        seg_idx = pairs_t if seg_idx is None else torch.cat([seg_idx, pairs_t])
        seg_dirs = dirs_t if seg_dirs is None else torch.cat([seg_dirs, dirs_t])
    return _Targets(kp_t, kp_w, seg_idx, seg_dirs, prior_w, settings.w_pose * (1.0 if have_kp else 30.0))


def _band_model(posed: _Posed, model: BodyModel, target: SilhouetteTarget, band_px: float
                ) -> tuple[SilhouetteBand, torch.Tensor]:
    """Select the silhouette band of the current body and make ``posed`` evaluate only its vertices (plus the
    keypoints'); returns the band and its faces (F_a, 3) indexed into that vertex subset."""
    faces_all = model.faces
    with torch.no_grad():
        full = posed.forward(model)
    band = silhouette_band(full.vertices[0, :, :2].cpu().numpy(), faces_all, target, band_px)
    small = model.subset(np.unique(faces_all[band.faces]))
    position = np.full(len(full.vertices[0]), -1, dtype=np.int64)
    position[small.subset_index] = np.arange(len(small.subset_index))
    posed.model = small
    return band, torch.as_tensor(position[faces_all[band.faces]], device=posed.device)


def _refine(posed: _Posed, model: BodyModel, tg: _Targets, target: SilhouetteTarget, settings: FitSettings,
            steps: tuple[int, int, int], ctx: StageContext) -> None:
    """The rest of the warm-up with the shape free, then the silhouette joins: iterations ``start`` to ``end``
    of ``steps`` = (start, warmup, end), the silhouette on from ``warmup`` (ramped in over 10% of the run)."""
    start, warmup, n_it = steps
    opt = torch.optim.Adam([
        {"params": [posed.ball, posed.hinge, posed.glob], "lr": settings.lr},
        {"params": [posed.log_scale, posed.trans], "lr": settings.lr * 0.3},
        {"params": [posed.shape], "lr": settings.lr * 0.5},
    ])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_it - start), eta_min=settings.lr * 0.05)
    band = band_faces = None
    for it in range(start, n_it):
        silhouette_on = it >= warmup
        if silhouette_on and (band is None or (it - warmup) % settings.band_refresh == 0):
            band, band_faces = _band_model(posed, model, target, settings.band_px)
        opt.zero_grad(set_to_none=True)
        body = posed.forward()
        late = (it - warmup) / max(1, n_it - warmup) if silhouette_on else 0.0
        loss = _loss(posed, body, tg, settings, model,
                     settings.w_keypoints * (1.0 - (1.0 - settings.keypoint_late) * late))
        if silhouette_on:
            ramp = min(1.0, (it - warmup + 1) / max(1, 0.1 * n_it))
            sil = silhouette_loss(body.vertices[0, :, :2], band_faces, target, band.weight, settings.sigma_px)
            loss = loss + ramp * settings.w_silhouette * sil
        loss.backward()
        opt.step()
        sched.step()
        if model.shape_bounds is not None:
            with torch.no_grad():
                posed.shape.clamp_(*model.shape_bounds)
        if it % 20 == 0:
            ctx.progress(0.1 + 0.8 * it / n_it, f"fitting body {it}/{n_it}")


def _add_offsets(result: FitResult, model: BodyModel, obs: Observations, target: SilhouetteTarget,
                 settings: OffsetSettings) -> None:
    """Clothing and hair offsets on ``result``'s body (in place): the vertices move out along their normals, the
    mask IoU is the clothed surface's, and ``mask_iou_body`` keeps the body's alone. Offsets that would match the
    mask worse than the bare body are dropped."""
    offsets = fit_offsets(result.vertices.astype(np.float64), model.faces, target, settings)
    normals = vertex_normals(result.vertices.astype(np.float64), model.faces)
    clothed = (result.vertices + offsets[:, None] * normals).astype(np.float32)
    iou = _mask_iou(clothed, model.faces, obs)
    result.report["mask_iou_body"] = result.report["mask_iou"]
    if iou < result.report["mask_iou"]:  # kept only when they match the photo better than the body did
        offsets[:] = 0.0
    else:
        result.vertices = clothed
        result.report["mask_iou"] = iou
    result.offsets = offsets
    result.report["offsets_max"] = round(float(offsets.max()), 4)
    result.report["offsets_mean"] = round(float(offsets.mean()), 5)


def _mask_iou(vertices: np.ndarray, faces: np.ndarray, obs: Observations) -> float:
    """Mask IoU of the body's front silhouette and the person's mask (beyond a photo edge that cut the person,
    the body's pixels count as the person's)."""
    mask = render_mask(vertices, faces, obs.resolution)
    person = obs.mask if obs.open_region is None else obs.mask | (mask & obs.open_region)
    return round(mask_iou(mask, person), 4)


def _finish(posed: _Posed, model: BodyModel, obs: Observations, conf: np.ndarray | None,
            height_m: float | None) -> FitResult:
    """Final body (all vertices of ``model``), heights, parameters and the fit report."""
    r = obs.resolution
    with torch.no_grad():
        body = posed.forward(model)
        standing = model.forward({}, posed.shape)
    v = body.vertices[0].cpu().numpy().astype(np.float64)
    kp = body.keypoints[0].cpu().numpy()
    # the root at depth 0 keeps the body centred for the other views
    dz = float(body.joints[0, 0, 2])
    v[:, 2] -= dz
    joints = body.joints[0].cpu().numpy()
    joints[:, 2] -= dz
    kp[:, 2] -= dz
    sv = standing.vertices[0].cpu().numpy()
    model_height = float(sv[:, 1].max() - sv[:, 1].min())
    scale = float(torch.exp(posed.log_scale.detach()))
    report: dict[str, Any] = {"model": model.name, "mask_iou": _mask_iou(v, model.faces, obs)}
    if conf is not None and obs.keypoints is not None:
        seen = conf >= VISIBLE
        e = np.linalg.norm(kp[seen, :2] - obs.keypoints[seen], axis=1) * (r / 2.0)
        report["keypoint_error_px"] = round(float(e.mean()), 3) if len(e) else None
        report["keypoints_used"] = int(seen.sum())
    flex = posed.hinge_flexion().detach().cpu().numpy()
    params: dict[str, Any] = {
        "global_orient": [round(float(c), 6) for c in posed.glob.detach().cpu()],
        "body_pose": {j: [round(float(c), 6) for c in rv[0].detach().cpu()] for j, rv in posed.rotvecs().items()},
        "hinge_flexion_deg": {j: round(math.degrees(float(f)), 3) for j, f in zip(HINGES, flex)},
        "scale": scale,
        "translation": [float(posed.trans[0].detach()), float(posed.trans[1].detach()), -dz],
        "shape": model.shape_params(posed.shape),
        "keypoints": {n: [round(float(c), 6) for c in p] for n, p in zip(KEYPOINT_NAMES, kp)},
        "model_height_m": model_height,
    }
    return FitResult(vertices=v.astype(np.float32), joints=joints.astype(np.float32), keypoints=kp,
                     params=params, scale=scale, height_m=float(height_m) if height_m else model_height,
                     canonical_height=model_height * scale,
                     report=report)
