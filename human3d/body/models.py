"""Parametric body models behind one protocol: parameters -> vertices, joints, keypoints, faces, skinning weights.

Every adapter works in the *canonical axes* of :mod:`human3d.cameras` (+Y up, the body faces +Z, the subject's left
is +X) and in metres, before the fit's global rotation, scale and translation. Poses are given per *articulated
joint* (:data:`ARTICULATED_JOINTS`, names shared by every model) as axis-angle vectors in world-aligned axes of the
rest pose, composed along the kinematic chain: a joint's rotation turns its subtree about its pivot, after its
parent's. That is SMPL-X's own convention; Anny's ``local-ref`` pose parameterisation is the same in Anny's axes.

Adapters:

* :class:`AnnyBody` -- the embedded default (PyPI ``anny``: Apache-2.0 code, CC0 assets, works offline). Its first
  construction builds a ~0.8 GB cache (about a minute on a laptop CPU) in :func:`anny_cache_dir`.
* :class:`SmplxBody` -- SMPL-X through the ``smplx`` package and the user's model files (``weights.require('smplx')``).

:func:`load_body_model` picks one from ``BodyConfig.model`` (``auto`` prefers SMPL-X when its files are present).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from human3d.context import log
from human3d.errors import MissingBackendError, UsageError

if TYPE_CHECKING:
    from human3d.context import StageContext

#: Joints the fit articulates, in SMPL-X's names. Their rotations are the pose parameters of every model.
ARTICULATED_JOINTS: tuple[str, ...] = (
    "spine1", "spine2", "spine3", "neck", "head",
    "left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: Finger joints (SMPL-X's names), three per finger from the knuckle out (the thumb's first is its base, at the
#: wrist). Posed like :data:`ARTICULATED_JOINTS` by the models that have finger bones (Anny); the fit sets them
#: from hand landmarks (:mod:`human3d.body.fingers`) and never optimises them.
FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
FINGER_JOINTS: tuple[str, ...] = tuple(f"{side}_{finger}{k}" for side in ("left", "right") for finger in FINGERS
                                       for k in (1, 2, 3))

#: Keypoints every model regresses, in this order (mediapipe's names; see :mod:`human3d.body.keypoints`).
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
    "left_index", "right_index", "left_pinky", "right_pinky", "left_thumb", "right_thumb",
)


@dataclass
class BodyOutput:
    """One evaluation of a body model, canonical axes, metres.

    vertices: (B, V, 3); joints: (B, J, 3) skeleton joints named by the model's ``joint_names``;
    keypoints: (B, K, 3) in the order of :data:`KEYPOINT_NAMES`.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    keypoints: torch.Tensor


class BodyModel(Protocol):
    """What the fit needs from a body model."""

    name: str
    joint_names: list[str]
    """Skeleton joints (J), the rows of ``BodyOutput.joints`` and the columns of ``skinning_weights``."""
    joint_parents: list[int]
    """(J,) parent index of every skeleton joint, -1 for the root."""
    faces: np.ndarray
    """(F, 3) int64 triangles, counter-clockwise seen from outside."""
    skinning_weights: np.ndarray
    """(V, J) float32 linear-blend-skinning weights, rows summing to 1."""
    pivots: dict[str, int]
    """Articulated joint name (and finger joint name, :data:`FINGER_JOINTS`, for a model with finger bones) -> index
    into ``joint_names`` of the joint it rotates about."""
    shape_dim: int
    shape_mean: torch.Tensor
    """(S,) the shape parameters of an average body (the shape prior's centre)."""
    shape_scale: torch.Tensor
    """(S,) the prior's standard deviation of each shape parameter."""
    shape_bounds: tuple[float, float] | None
    """Box the shape parameters must stay in (None: unbounded)."""
    subset_index: np.ndarray | None
    """On a model made by :meth:`subset`: (V_s,) the full model's indices of the vertices it returns; else None."""
    device: torch.device

    def shape_state(self, shape: torch.Tensor) -> Any:
        """Whatever depends on the shape (B, S) only, for :meth:`forward` to reuse while the shape is fixed."""
        ...

    def forward(self, rotvecs: dict[str, torch.Tensor], shape: torch.Tensor, state: Any = None) -> BodyOutput:
        """Pose and shape a batch of bodies.

        rotvecs: articulated (or finger, when in ``pivots``) joint name -> (B, 3) axis-angle in world-aligned rest
        axes (absent joints: identity; a name the model lacks is ignored);
        shape: (B, S) shape parameters; state: ``shape_state(shape)`` when already computed (None: computed here).
        """
        ...

    def subset(self, vertex_index: np.ndarray) -> BodyModel:
        """The same body evaluating only some vertices, ``subset_index`` of the full model (a superset of
        ``vertex_index``); joints and keypoints stay exact. Used to make optimisation steps cheap."""
        ...

    def shape_params(self, shape: torch.Tensor) -> dict[str, Any]:
        """(S,) or (1, S) shape parameters -> JSON values with the model's own names."""
        ...


# --------------------------------------------------------------------------------------------------------------
# Anny

#: Anny's axes are Z up, the body facing -Y, the subject's left +X; this rotation maps them to canonical axes.
ANNY_TO_CANONICAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

_ANNY_BONES = {
    "spine1": "spine05", "spine2": "spine03", "spine3": "spine01", "neck": "neck01", "head": "head",
    "left_collar": "clavicle.L", "right_collar": "clavicle.R",
    "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L", "right_elbow": "lowerarm01.R",
    "left_wrist": "wrist.L", "right_wrist": "wrist.R",
    "left_hip": "upperleg01.L", "right_hip": "upperleg01.R",
    "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R",
    "left_ankle": "foot.L", "right_ankle": "foot.R",
}
_ANNY_BONES.update({f"{side}_{finger}{k}": f"finger{i + 1}-{k}.{side[0].upper()}" for side in ("left", "right")
                    for i, finger in enumerate(FINGERS) for k in (1, 2, 3)})
# Keypoints Anny's COCO regressor does not give: the bone heads closest to mediapipe's hand landmarks
# (index and pinky knuckles, thumb's second knuckle).
_ANNY_BONE_KEYPOINTS = {
    "left_index": "finger2-1.L", "right_index": "finger2-1.R",
    "left_pinky": "finger5-1.L", "right_pinky": "finger5-1.R",
    "left_thumb": "finger1-3.L", "right_thumb": "finger1-3.R",
}
_KEYPOINT_SUPPORT = 64
_ANNY_COCO_ALIASES = {"left_foot_index": "left_big_toe", "right_foot_index": "right_big_toe"}

#: Anny phenotype prior: centre and spread (age 0.5 is a young adult's proportions in Anny's scale).
_ANNY_SHAPE_PRIOR = {
    "gender": (0.5, 0.5), "age": (0.55, 0.25), "muscle": (0.5, 0.3), "weight": (0.5, 0.3),
    "height": (0.5, 0.35), "proportions": (0.5, 0.3),
}


def _outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``faces`` wound counter-clockwise seen from outside (flipped when the mesh's signed volume is negative)."""
    if len(faces) == 0:
        return faces
    t = vertices[faces]
    volume = float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum()) / 6.0
    return faces if volume >= 0 else faces[:, [0, 2, 1]].copy()


def anny_cache_dir() -> Path:
    """Where Anny's model cache lives: ``$ANNY_CACHE_DIR`` when set, else ``<user cache>/human3d/anny``."""
    env = os.environ.get("ANNY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "human3d" / "anny"


def anny_cache_ready(cache_dir: Path | None = None) -> bool:
    """True when Anny's built model data is already cached (the next construction takes about a second)."""
    from anny.models.model_data import CURRENT_DATA_VERSION

    folder = (cache_dir or anny_cache_dir()) / f"v{CURRENT_DATA_VERSION}"
    return any(folder.glob("build_compact_model_data_*.safetensors"))


_ANNY_MODELS: dict[tuple[str, torch.dtype], Any] = {}


def _load_anny_module(device: torch.device, ctx: StageContext | None) -> Any:
    """The ``anny.Anny`` module on ``device`` (float32, dense LBS), built once per process."""
    key = (str(device), torch.float32)
    if key in _ANNY_MODELS:
        return _ANNY_MODELS[key]
    try:
        import anny
        from anny.paths import set_anny_cache_path
    except ImportError as err:
        raise MissingBackendError("the Anny body model needs the 'anny' package: pip install anny==0.6.2") from err
    cache = anny_cache_dir()
    set_anny_cache_path(cache)
    if not anny_cache_ready(cache):
        message = (f"building the Anny body model cache in {cache} (first run only, about a minute and ~0.8 GB; "
                   "set ANNY_CACHE_DIR to put it elsewhere)")
        log.info(message)
        if ctx is not None:
            ctx.progress(0.0, message)
    # Dense LBS: on CPU it is ~50x faster than warp's kernels and needs no JIT compilation.
    try:
        model = anny.Anny(skinning_method="lbs")
    except OSError as err:
        raise MissingBackendError(f"cannot build the Anny body model cache in {cache} ({err}); set ANNY_CACHE_DIR "
                                  "to a writable folder with ~1 GB free") from err
    model = model.to(device=device, dtype=torch.float32)
    model.requires_grad_(False)
    _ANNY_MODELS[key] = model
    return model


class AnnyBody:
    """Anny (13,718 vertices, 104 bones, 6 phenotype controls) in canonical axes."""

    name = "anny"
    shape_bounds: tuple[float, float] | None = (0.0, 1.0)

    def __init__(self, device: str | torch.device = "cpu", ctx: StageContext | None = None,
                 module: Any | None = None, full: AnnyBody | None = None) -> None:
        import anny

        self.device = torch.device(device)
        self._m = module if module is not None else _load_anny_module(self.device, ctx)
        m = self._m
        self.joint_names = list(m.bone_labels)
        self.joint_parents = [int(p) for p in m.bone_parents]
        self.faces = _outward(m.template_vertices.detach().cpu().numpy(),
                              m.faces.detach().cpu().numpy().astype(np.int64).reshape(-1, 3))
        self.skinning_weights = m.dense_vertex_bone_weights.detach().cpu().numpy().astype(np.float32)
        self.pivots = {j: self.joint_names.index(b) for j, b in _ANNY_BONES.items()}  # with the fingers
        self.phenotype_labels = list(m.phenotype_labels)
        self.shape_dim = len(self.phenotype_labels)
        self.shape_mean = torch.tensor([_ANNY_SHAPE_PRIOR[k][0] for k in self.phenotype_labels], device=self.device)
        self.shape_scale = torch.tensor([_ANNY_SHAPE_PRIOR[k][1] for k in self.phenotype_labels], device=self.device)
        if full is None:
            # Anny's COCO regressor spreads each keypoint over ~50 vertices with tiny weights on thousands more;
            # its top 64 weights per keypoint (renormalised) place it within 0.2 mm and let a vertex subset
            # (see :meth:`subset`) regress keypoints without posing 9,000 vertices.
            coco = anny.KeypointsRegressor.coco(m)
            top = coco.regression_weights.topk(_KEYPOINT_SUPPORT, dim=1)
            self._coco_labels = list(coco.labels)
            self._reg_index = top.indices
            self._reg_weight = (top.values / top.values.sum(1, keepdim=True)).float()
        else:
            self._coco_labels = full._coco_labels
            self._reg_weight = full._reg_weight
        coco_index = {label: i for i, label in enumerate(self._coco_labels)}
        self._kp_sources: list[tuple[str, int]] = []
        for name in KEYPOINT_NAMES:
            label = _ANNY_COCO_ALIASES.get(name, name)
            if label in coco_index:
                self._kp_sources.append(("coco", coco_index[label]))
            else:
                self._kp_sources.append(("bone", self.joint_names.index(_ANNY_BONE_KEYPOINTS[name])))
        self._to_canonical = torch.tensor(ANNY_TO_CANONICAL, dtype=torch.float32, device=self.device)
        self.full = full
        self.subset_index: np.ndarray | None = None

    @property
    def keypoint_vertices(self) -> np.ndarray:
        """Indices of the vertices the keypoint regressor reads (a vertex subset must keep them)."""
        return np.unique(self._reg_index.cpu().numpy())

    def subset(self, vertex_index: np.ndarray) -> AnnyBody:
        """The same body evaluating only ``vertex_index`` (plus the keypoint regressor's vertices, appended).

        Its ``forward`` returns those vertices, in the order of :attr:`subset_index`; joints and keypoints are exact.
        Posing 3,000 instead of 13,718 vertices makes each fit step several times cheaper.
        """
        import dataclasses

        import anny

        keep = np.asarray(vertex_index, dtype=np.int64)
        extra = np.setdiff1d(self.keypoint_vertices, keep)
        index = np.concatenate([keep, extra])
        idx = torch.as_tensor(index, device=self.device)
        data = self._m.to_model_data()
        data = dataclasses.replace(
            data, template_vertices=data.template_vertices[idx], blendshapes=data.blendshapes[:, idx],
            faces=data.faces.new_zeros((0, 3)), texture_coordinates=None, face_texture_coordinate_indices=None,
            vertex_bone_weights=data.vertex_bone_weights[idx], vertex_bone_indices=data.vertex_bone_indices[idx],
            base_mesh_vertex_indices=data.base_mesh_vertex_indices[idx])
        module = anny.Anny.from_model_data(
            data, skinning_method="lbs", pose_parameterization=self._m.pose_parameterization,
            bone_orientation=self._m.bone_orientation, root_identity_orientation=self._m.root_identity_orientation,
            extrapolate_phenotypes=self._m.extrapolate_phenotypes)
        module.requires_grad_(False)
        sub = AnnyBody(self.device, module=module, full=self)
        sub.subset_index = index
        position = np.full(int(self._m.template_vertices.shape[0]), -1, dtype=np.int64)
        position[index] = np.arange(len(index))
        sub._reg_index = torch.as_tensor(position[self._reg_index.cpu().numpy()], device=self.device)
        return sub

    def shape_state(self, shape: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rest body of ``shape`` (B, S): pass it to :meth:`forward` to pose the same shape again cheaply."""
        m = self._m
        empty = shape.new_zeros(shape.shape[0], 0)
        coeffs = m._get_phenotype_blendshape_coefficients(shape, empty, empty)
        return m.get_rest_model(coeffs)

    def forward(self, rotvecs: dict[str, torch.Tensor], shape: torch.Tensor,
                state: dict[str, torch.Tensor] | None = None) -> BodyOutput:
        import roma

        batch = shape.shape[0]
        a = self._to_canonical
        deltas = torch.eye(4, dtype=torch.float32, device=self.device).repeat(batch, len(self.joint_names), 1, 1)
        if rotvecs:
            names = [j for j in rotvecs if j in self.pivots]
            rv = torch.stack([rotvecs[j] for j in names], 1)  # (B, n, 3) canonical axes
            rv = rv @ a  # rotation vectors are vectors: canonical -> Anny axes is a^T v, i.e. v @ a
            index = torch.tensor([self.pivots[j] for j in names], device=self.device)
            deltas[:, index, :3, :3] = roma.rotvec_to_rotmat(rv)
        m = self._m
        rest = state if state is not None else self.shape_state(shape)
        transforms, bone_poses = m.get_bone_transforms(deltas, rest["rest_bone_poses"])
        posed = m.get_skinned_vertices(rest["rest_vertices"].expand(transforms.shape[0], -1, -1), transforms)
        vertices = posed @ a.T
        joints = bone_poses[:, :, :3, 3] @ a.T
        coco = (vertices[:, self._reg_index] * self._reg_weight[None, :, :, None]).sum(2)  # (B, K_coco, 3)
        kp = [coco[:, i] if src == "coco" else joints[:, i] for src, i in self._kp_sources]
        return BodyOutput(vertices=vertices, joints=joints, keypoints=torch.stack(kp, 1))

    def bone_axes(self, shape: torch.Tensor) -> np.ndarray:
        """(J, 3) unit head-to-tail directions of the bones of the rest body of ``shape`` (1, S), canonical axes
        (a bone's local Y axis, Blender's convention); the last bone of a finger has no child joint to point at."""
        poses = self.shape_state(shape)["rest_bone_poses"][0, :, :3, 1].detach().cpu().numpy().astype(np.float64)
        return poses @ ANNY_TO_CANONICAL.T

    def shape_params(self, shape: torch.Tensor) -> dict[str, Any]:
        values = shape.detach().reshape(-1).cpu().tolist()
        return {"phenotype": dict(zip(self.phenotype_labels, values))}


# --------------------------------------------------------------------------------------------------------------
# SMPL-X

_SMPLX_KEYPOINTS = {"left_foot_index": "left_big_toe", "right_foot_index": "right_big_toe",
                    "left_index": "left_index1", "right_index": "right_index1",
                    "left_pinky": "left_pinky1", "right_pinky": "right_pinky1",
                    "left_thumb": "left_thumb3", "right_thumb": "right_thumb3"}
_SMPLX_BODY = {"spine1": 3, "spine2": 6, "spine3": 9, "neck": 12, "head": 15, "left_collar": 13, "right_collar": 14,
               "left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19, "left_wrist": 20,
               "right_wrist": 21, "left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_ankle": 7,
               "right_ankle": 8}


class SmplxBody:
    """SMPL-X (10,475 vertices, 55 joints, 10 betas) from the user's model files; already in canonical axes."""

    name = "smplx"
    shape_bounds: tuple[float, float] | None = None

    def __init__(self, model_dir: Path, device: str | torch.device = "cpu", gender: str = "neutral") -> None:
        try:
            import smplx
            from smplx.joint_names import JOINT_NAMES
        except ImportError as err:
            raise MissingBackendError("the SMPL-X body model needs the 'smplx' package: pip install smplx") from err
        self.device = torch.device(device)
        if not (Path(model_dir) / f"SMPLX_{gender.upper()}.npz").is_file():
            candidates = sorted(Path(model_dir).glob("SMPLX_*.npz"))
            if not candidates:
                raise MissingBackendError(
                    f"no SMPLX_*.npz in {model_dir}; human3d reads only the npz files (pickles can run code): "
                    "download 'SMPL-X v1.1 (NPZ+PKL)' and put SMPLX_NEUTRAL.npz there")
            gender = candidates[0].stem.split("_", 1)[1].lower()
        # flat_hand_mean=False keeps SMPL-X's relaxed mean hand, so unfitted hands look natural.
        self._m = smplx.SMPLX(str(model_dir), gender=gender, ext="npz", use_pca=False, flat_hand_mean=False,
                              num_betas=10, num_expression_coeffs=10).to(self.device)
        self._m.requires_grad_(False)
        n = int(self._m.J_regressor.shape[0])
        self.joint_names = list(JOINT_NAMES[:n])
        self.joint_parents = [int(p) for p in self._m.parents.cpu().tolist()]
        self.joint_parents[0] = -1
        self.faces = _outward(self._m.v_template.detach().cpu().numpy(), np.asarray(self._m.faces, dtype=np.int64))
        self.skinning_weights = self._m.lbs_weights.detach().cpu().numpy().astype(np.float32)
        self.pivots = dict(_SMPLX_BODY)
        self.shape_dim = 10
        self.shape_mean = torch.zeros(10, device=self.device)
        self.shape_scale = torch.full((10,), 1.5, device=self.device)
        all_names = list(JOINT_NAMES)
        self._kp_index = [all_names.index(_SMPLX_KEYPOINTS.get(k, k)) for k in KEYPOINT_NAMES]
        self.gender = gender
        self.subset_index: np.ndarray | None = None
        self._vertex_index: torch.Tensor | None = None

    def shape_state(self, shape: torch.Tensor) -> None:
        return None  # smplx's forward takes the betas directly; nothing worth caching

    def subset(self, vertex_index: np.ndarray) -> SmplxBody:
        """This model, returning only ``vertex_index`` vertices (SMPL-X is posed whole: no speed-up, same API)."""
        import copy

        sub = copy.copy(self)
        sub.subset_index = np.asarray(vertex_index, dtype=np.int64)
        sub._vertex_index = torch.as_tensor(sub.subset_index, device=self.device)
        return sub

    def forward(self, rotvecs: dict[str, torch.Tensor], shape: torch.Tensor, state: Any = None) -> BodyOutput:
        batch = shape.shape[0]
        body = torch.zeros(batch, 21, 3, device=self.device)
        for name, rv in rotvecs.items():
            if name in self.pivots:  # finger joints are not posed on SMPL-X (its hand pose stays the mean hand)
                body[:, self.pivots[name] - 1] = rv
        zeros3 = torch.zeros(batch, 3, device=self.device)
        out = self._m(betas=shape, global_orient=zeros3, body_pose=body.reshape(batch, 63),
                      left_hand_pose=torch.zeros(batch, 45, device=self.device),
                      right_hand_pose=torch.zeros(batch, 45, device=self.device),
                      jaw_pose=zeros3, leye_pose=zeros3, reye_pose=zeros3,
                      expression=torch.zeros(batch, 10, device=self.device), transl=zeros3, return_verts=True)
        joints = out.joints
        n = len(self.joint_names)
        vertices = out.vertices if self._vertex_index is None else out.vertices[:, self._vertex_index]
        return BodyOutput(vertices=vertices, joints=joints[:, :n], keypoints=joints[:, self._kp_index])

    def shape_params(self, shape: torch.Tensor) -> dict[str, Any]:
        return {"betas": shape.detach().reshape(-1).cpu().tolist(), "gender": self.gender}


# --------------------------------------------------------------------------------------------------------------

MODEL_CHOICES = ("auto", "anny", "smplx")


def load_body_model(choice: str, device: str | torch.device = "cpu", weights_dir: Path | None = None,
                    ctx: StageContext | None = None) -> BodyModel:
    """The body model for ``BodyConfig.model``: auto | anny | smplx (auto: SMPL-X when its files are present)."""
    from human3d import weights

    if choice not in MODEL_CHOICES:
        raise UsageError(f"unknown body model {choice!r}; use one of {', '.join(MODEL_CHOICES)}")
    if choice == "smplx":
        return SmplxBody(weights.require("smplx", weights_dir), device)
    if choice == "auto":
        found = weights.locate("smplx", weights_dir)
        if found is not None:
            try:
                import smplx  # noqa: F401
            except ImportError:
                log.info("SMPL-X files found but the smplx package is not installed; using Anny")
            else:
                return SmplxBody(found, device)
    return AnnyBody(device, ctx)
