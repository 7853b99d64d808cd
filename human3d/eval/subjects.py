"""Clothed people with known geometry and colours, made here, for the embedded-quality benchmark and its tests.

An Anny subject is a posed Anny body (metres) united with generated garments, all as signed distance fields on one
grid and meshed by marching cubes into one closed mesh: a flared skirt with folds, a coat (a layer of cloth over the
torso and arms, with a tail that bridges the thighs), hair volume over the back and top of the head falling behind
the neck, a hood that stands off the head and is open at the face. Vertices are coloured by garment, or by body part
where the body shows (:func:`human3d.body.synthetic.part_colours`). The other kind is the shared CesiumMan (glTF
sample model, CC-BY 4.0, (c) 2017 Cesium), read as it is.

Every subject is in the export frame of :mod:`human3d.io.meshes`: metres, +Y up, facing +Z, feet on y = 0, centred
on x = z = 0. :func:`subject_photo` renders one as an RGB photo on a plain background.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from human3d.errors import BadInputError, MissingBackendError, UsageError
from human3d.types import TexturedMesh

#: Poses of the Anny subjects, in the form of :data:`human3d.body.synthetic.POSES` (radians; Anny's rest pose has
#: the arms about 35 degrees from the sides).
SUBJECT_POSES: dict[str, dict[str, Any]] = {
    "relaxed": {"left_shoulder": (0.0, 0.0, -0.15), "right_shoulder": (0.0, 0.0, 0.15), "left_elbow": 0.25,
                "right_elbow": 0.3, "head": (0.05, 0.0, 0.0)},
    "step": {"left_hip": (-0.3, 0.0, 0.05), "left_knee": 0.35, "right_hip": (0.15, 0.0, -0.05),
             "left_shoulder": (0.2, 0.0, 0.0), "right_shoulder": (-0.25, 0.0, 0.0), "left_elbow": 0.5,
             "right_elbow": 0.4},
}


@dataclass(frozen=True)
class Outfit:
    """What an Anny subject wears and how it stands."""

    pose: str
    """A key of :data:`SUBJECT_POSES`."""
    phenotype: dict[str, float] = field(default_factory=dict)
    """Anny phenotype values (0..1) replacing the average body's (e.g. ``{"gender": 1.0}``)."""
    skirt: bool = False
    """A flared, folded skirt from the waist to the knees."""
    coat: float = 0.0
    """Thickness (m) of a coat over the torso and arms; 0 for none (the shirt is then painted on the body)."""
    coat_tail: bool = False
    """The coat goes on below the waist to above the knees, bridging the thighs."""
    hair: bool = False
    """Hair volume over the back and top of the head, falling behind the neck to the shoulder blades."""
    hood: bool = False
    """A hood standing off the back and top of the head, open at the face."""
    colours: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Garment colours by name (skirt, coat, hair, hood)."""


#: The Anny subjects of the benchmark.
OUTFITS: dict[str, Outfit] = {
    "skirt": Outfit(pose="relaxed", phenotype={"gender": 1.0}, skirt=True, hair=True,
                    colours={"skirt": (170, 40, 60), "hair": (70, 45, 25)}),
    "coat": Outfit(pose="relaxed", phenotype={"gender": 0.0, "weight": 0.6}, coat=0.03, coat_tail=True,
                   colours={"coat": (150, 110, 70)}),
    "hood": Outfit(pose="step", coat=0.02, hood=True, colours={"coat": (70, 120, 80), "hood": (70, 120, 80)}),
}
#: Every subject: the Anny ones, then the shared CesiumMan.
SUBJECTS: tuple[str, ...] = (*OUTFITS, "cesium")
#: The photos' background (a plain, light warm grey) and the person's default height in pixels.
BACKGROUND = (232, 230, 226)
PHOTO_HEIGHT = 1024


@dataclass
class Subject:
    """A ground truth in the export frame and, for Anny subjects, the bare body it was built on (same frame)."""

    name: str
    mesh: TexturedMesh
    body: tuple[np.ndarray, np.ndarray] | None = None
    """(V, 3) vertices and (F, 3) faces of the bare posed body, or None (CesiumMan)."""


def make_subject(name: str, model: Any = None, *, spacing: float = 0.008,
                 shared: Path | str = "../shared/data") -> Subject:
    """The subject ``name`` (see :data:`SUBJECTS`); ``model``: an AnnyBody (loaded when None) for Anny subjects;
    ``spacing``: the marching-cubes grid step in metres; ``shared``: the folder holding CesiumMan.glb."""
    if name not in SUBJECTS:
        raise UsageError(f"unknown subject {name!r}; choose from {', '.join(SUBJECTS)}")
    if name == "cesium":
        return Subject(name, cesium_man(Path(shared) / "CesiumMan.glb"))
    if model is None:
        from human3d.body.models import AnnyBody

        model = AnnyBody("cpu")
    return anny_subject(name, OUTFITS[name], model, spacing)


def cesium_man(path: Path) -> TexturedMesh:
    """The shared CesiumMan (textured, Y up, facing +Z) moved to feet on y = 0, centred on x = z = 0."""
    from human3d.io.meshes import read_mesh

    if not path.is_file():
        raise BadInputError(f"{path} does not exist; the cesium subject needs the shared CesiumMan.glb")
    mesh = read_mesh(path)
    mesh.vertices = to_export_frame(mesh.vertices)
    mesh.normals = None
    return mesh


def to_export_frame(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) metres -> feet on y = 0, bounding box centred on x = z = 0 (float32)."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    return (v - np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2])).astype(np.float32)


# -- the posed body and its landmarks -----------------------------------------------------------------------------
@dataclass
class PosedBody:
    """A posed body in metres, canonical axes: (V, 3) vertices, (F, 3) faces, (F,) the closed shell each face is on
    (Anny: the skin, two eyes, the teeth), (V, 3) colours (0..255), (V,) dominant-bone names, keypoints by name,
    joints by name."""

    vertices: np.ndarray
    faces: np.ndarray
    shells: np.ndarray
    colours: np.ndarray
    bones: np.ndarray
    keypoints: dict[str, np.ndarray]
    joints: dict[str, np.ndarray]


def pose_body(model: Any, outfit: Outfit) -> PosedBody:
    """Pose ``model`` as ``outfit`` says."""
    from human3d.body.models import KEYPOINT_NAMES
    from human3d.body.synthetic import part_colours, pose_rotvecs
    from human3d.carve.meshing import count_components

    shape = model.shape_mean.clone().float()
    for key, value in outfit.phenotype.items():
        shape[model.phenotype_labels.index(key)] = float(value)
    rv = {j: torch.as_tensor(np.asarray(v), dtype=torch.float32)[None]
          for j, v in pose_rotvecs(model, SUBJECT_POSES[outfit.pose]).items()}
    with torch.no_grad():
        out = model.forward(rv, shape[None])
    v = out.vertices[0].numpy().astype(np.float64)
    kp, jn = out.keypoints[0].numpy().astype(np.float64), out.joints[0].numpy().astype(np.float64)
    bones = np.asarray(model.joint_names)[model.skinning_weights.argmax(1)]
    return PosedBody(vertices=v, faces=model.faces.copy(), shells=count_components(len(v), model.faces),
                     colours=part_colours(model, v, kp, jn), bones=bones,
                     keypoints=dict(zip(KEYPOINT_NAMES, kp)), joints=dict(zip(model.joint_names, jn)))


def on_bones(body: PosedBody, prefixes: tuple[str, ...]) -> np.ndarray:
    """(V,) bool: the vertex's dominant bone's name starts with one of ``prefixes``."""
    names, index = np.unique(body.bones, return_inverse=True)
    return np.array([str(n).startswith(prefixes) for n in names], bool)[index]


def head_frame(body: PosedBody) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The head as an ellipsoid: ((3,) centre, (3, 3) rows right/up/forward, (3,) radii along them), from the
    vertices skinned mostly to the head."""
    kp = body.keypoints
    ears = (kp["left_ear"] + kp["right_ear"]) / 2
    fwd = kp["nose"] - ears
    fwd /= np.linalg.norm(fwd)
    up = body.joints["head"] - body.joints["neck01"]
    up -= np.dot(up, fwd) * fwd
    up /= np.linalg.norm(up)
    axes = np.stack([np.cross(up, fwd), up, fwd])
    local = (body.vertices[body.bones == "head"] - ears) @ axes.T
    lo, hi = local.min(0), local.max(0)
    return ears + ((lo + hi) / 2) @ axes, axes, (hi - lo) / 2


# -- garments as signed distances (negative inside), on (N, 3) points ----------------------------------------------
def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _ellipsoid(points: np.ndarray, centre: np.ndarray, axes: np.ndarray, radii: np.ndarray) -> np.ndarray:
    q = ((points - centre) @ axes.T) / radii
    return (np.linalg.norm(q, axis=1) - 1.0) * float(radii.min())


def _section(body: PosedBody, y: float, centre: np.ndarray) -> np.ndarray:
    """(2,) half-widths in x and z, about the (2,) x, z ``centre``, of the torso and thighs at height ``y``."""
    near = on_bones(body, ("spine", "pelvis", "root", "upperleg")) & (np.abs(body.vertices[:, 1] - y) < 0.015)
    if not near.any():
        return np.zeros(2)
    return np.abs(body.vertices[near][:, [0, 2]] - centre).max(0)


def flared_sdf(points: np.ndarray, body: PosedBody, top: float, bottom: float, flare: tuple[float, float],
               folds: float, margin: float = 0.015) -> np.ndarray:
    """A skirt-like solid from height ``top`` (hugging the torso there) down to ``bottom``, widening by ``flare``
    (x, z metres) at the hem, centred between the knees there, and at every height at least ``margin`` clear of
    the torso and thighs; ``folds``: relative depth of 9 vertical folds, growing toward the hem."""
    kp = body.keypoints
    c0 = ((kp["left_hip"] + kp["right_hip"]) / 2)[[0, 2]]
    c1 = ((kp["left_knee"] + kp["right_knee"]) / 2)[[0, 2]]
    levels = np.linspace(0.0, 1.0, 12)
    r0 = _section(body, top, c0)
    clear = np.array([_section(body, top + t * (bottom - top), c0 + t * (c1 - c0)) for t in levels]) + margin
    radii_at = np.maximum(r0 + levels[:, None] * np.asarray(flare), clear)  # (12, 2)
    t = np.clip((top - points[:, 1]) / (top - bottom), 0.0, 1.0)
    centre = c0 + t[:, None] * (c1 - c0)
    radii = np.stack([np.interp(t, levels, radii_at[:, k]) for k in range(2)], 1)
    d = (points[:, [0, 2]] - centre) / radii
    scale = 1.0 + folds * t * np.sin(9.0 * np.arctan2(d[:, 1], d[:, 0]))
    radial = (np.linalg.norm(d, axis=1) / scale - 1.0) * radii.min(1)
    return np.maximum(radial, np.maximum(points[:, 1] - top, bottom - points[:, 1]))


def hair_sdf(points: np.ndarray, body: PosedBody, thickness: float = 0.03) -> np.ndarray:
    """Hair ``thickness`` thick over the back and top of the head (the face and the ears' front left bare), and a
    fall behind the neck down to the shoulder blades."""
    centre, axes, radii = head_frame(body)
    cap = _ellipsoid(points, centre - 0.01 * axes[2], axes, radii + thickness)
    local = (points - centre) @ axes.T
    # the hairline: far forward on top of the head, behind the ears at their height
    front = local[:, 2] - radii[2] * (0.05 + 0.8 * np.clip(local[:, 1] / radii[1], 0.0, 1.0))
    cap = np.maximum(cap, front)
    neck_y = float(body.keypoints["left_shoulder"][1] + body.keypoints["right_shoulder"][1]) / 2
    fall_centre = centre - (radii[2] + 0.01) * axes[2] * 0.75
    fall_centre[1] = (centre[1] + neck_y - 0.12) / 2
    fall_radii = np.array([radii[0] + 0.01, (centre[1] - neck_y + 0.12) / 2, 0.035 + thickness / 2])
    fall = _ellipsoid(points, fall_centre, np.eye(3), fall_radii)
    return _smooth_min(cap, fall, 0.03)


def hood_sdf(points: np.ndarray, body: PosedBody, gap: float = 0.03, thickness: float = 0.015) -> np.ndarray:
    """A hood: a shell ``thickness`` thick standing ``gap`` off the head, open at the face, down to the shoulders."""
    centre, axes, radii = head_frame(body)
    c = centre - 0.015 * axes[2]
    outer = _ellipsoid(points, c, axes, radii + gap + thickness)
    inner = _ellipsoid(points, c, axes, radii + gap)
    local = (points - centre) @ axes.T
    opening = local[:, 2] - radii[2] * (0.35 + 0.45 * np.clip(local[:, 1] / radii[1], 0.0, 1.0))
    neck_y = float(body.keypoints["left_shoulder"][1] + body.keypoints["right_shoulder"][1]) / 2
    return np.maximum(np.maximum(outer, -inner), np.maximum(opening, neck_y - 0.02 - points[:, 1]))


def coat_weights(body: PosedBody, rounds: int = 20) -> np.ndarray:
    """(V,) how much of the coat's thickness each body vertex carries: 1 on the torso, pelvis and arms, 0 on the
    hands, neck, head and legs, smoothed over the mesh so that cuffs and collar taper."""
    from scipy.sparse import coo_matrix

    words = ("spine", "pelvis", "root", "clavicle", "shoulder", "upperarm", "lowerarm")
    w = on_bones(body, words).astype(np.float64)
    f = body.faces
    rows, cols = f[:, [0, 1, 2, 1, 2, 0]].reshape(-1), f[:, [1, 2, 0, 0, 1, 2]].reshape(-1)
    adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(w),) * 2).tocsr()
    degree = np.asarray(adj.sum(1)).ravel()
    for _ in range(rounds):
        w = 0.5 * w + 0.5 * (adj @ w) / np.maximum(degree, 1)
    return w


class _BodyField:
    """The body's signed distance (the union of its closed shells; Open3D ray casting decides inside), optionally
    thickened by a coat."""

    def __init__(self, body: PosedBody, coat: float) -> None:
        from scipy.spatial import cKDTree

        try:
            import open3d as o3d
        except ImportError as err:  # a dependency that needs Debian's libusb-1.0-0 to import
            raise MissingBackendError(f"the clothed subjects need open3d, which does not import ({err})") from err

        # one scene per closed shell: inside is decided by ray parity, so eyes in their sockets must not cancel out
        self.scenes = []
        for shell in np.unique(body.shells):
            faces = body.faces[body.shells == shell]
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(body.vertices.astype(np.float32)),
                                o3d.core.Tensor(faces.astype(np.uint32)))
            corners = body.vertices[np.unique(faces)]
            self.scenes.append((scene, corners.min(0), corners.max(0)))
        self.tree = cKDTree(body.vertices)
        self.coat = coat
        self.weights = coat_weights(body) if coat > 0 else None

    def nearest(self, points: np.ndarray) -> np.ndarray:
        """(N,) index of each point's nearest body vertex."""
        return self.tree.query(points, k=1, workers=-1)[1]

    def __call__(self, points: np.ndarray) -> np.ndarray:
        import open3d as o3d

        d = np.full(len(points), np.inf)
        for scene, lo, hi in self.scenes:
            # beyond 5 cm of a shell's box, the distance to the box is a lower bound: enough for the union
            box = np.linalg.norm(np.maximum(np.maximum(lo - points, points - hi), 0.0), axis=1)
            near = box < 0.05
            box[near] = scene.compute_signed_distance(o3d.core.Tensor(points[near].astype(np.float32))).numpy()
            d = np.minimum(d, box)
        if self.weights is None:
            return d
        band = d < 3.0 * self.coat  # only near the body does the coat change the field
        folds = 1.0 + 0.3 * np.sin(30.0 * points[band, 1])
        d[band] -= self.coat * folds * self.weights[self.nearest(points[band])]
        return d


def garment_fields(points: np.ndarray, body: PosedBody, outfit: Outfit) -> dict[str, np.ndarray]:
    """(N,) signed distance of every garment ``outfit`` adds beside the body (skirt, coat tail, hair, hood)."""
    kp = body.keypoints
    hip_y = float(kp["left_hip"][1] + kp["right_hip"][1]) / 2
    knee_y = float(kp["left_knee"][1] + kp["right_knee"][1]) / 2
    out: dict[str, np.ndarray] = {}
    if outfit.skirt:
        out["skirt"] = flared_sdf(points, body, hip_y + 0.08, knee_y + 0.03, (0.13, 0.09), 0.06)
    if outfit.coat_tail:
        tail = flared_sdf(points, body, hip_y + 0.05, knee_y + 0.12, (0.06, 0.05), 0.03)
        out["coat"] = tail + 0.012 - outfit.coat  # as thick as the coat around the waist
    if outfit.hair:
        out["hair"] = hair_sdf(points, body)
    if outfit.hood:
        out["hood"] = hood_sdf(points, body)
    return out


def narrow_band_field(fn: Any, lo: np.ndarray, hi: np.ndarray, spacing: float, levels: int = 3,
                      band: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``fn`` ((N, 3) points -> (N,) signed distance) on a grid of ``spacing`` from ``lo`` past ``hi``,
    coarse to fine: a grid ``2**levels`` times coarser first, then at each finer level only where the trilinear
    estimate from the level above is within ``band`` coarse steps of 0 (elsewhere only its sign matters to marching
    cubes). Returns ((X, Y, Z) field, (3,) origin)."""
    from scipy.ndimage import zoom

    lo = np.asarray(lo, np.float64)
    step = 2 ** levels
    coarse = np.ceil((np.asarray(hi) - lo) / (spacing * step)).astype(int) + 1  # samples per axis, coarsest
    axes = [lo[i] + spacing * step * np.arange(coarse[i]) for i in range(3)]
    field = fn(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)).reshape(tuple(coarse))
    while step > 1:
        step //= 2
        shape = np.asarray(field.shape) * 2 - 1
        # corner-aligned linear upsampling: fine sample i sits at coarse i / 2
        field = zoom(field, shape / np.asarray(field.shape), order=1, grid_mode=False)
        near = np.argwhere(np.abs(field) < band * 2 * step * spacing)  # (N, 3) indices
        field[tuple(near.T)] = fn(lo + spacing * step * near)
    return field, lo


def anny_subject(name: str, outfit: Outfit, model: Any, spacing: float = 0.008) -> Subject:
    """Pose ``model``, dress it in ``outfit`` and mesh the union on a grid of ``spacing`` metres (see module)."""
    from human3d.carve.meshing import marching_cubes_surface

    body = pose_body(model, outfit)
    field_of_body = _BodyField(body, outfit.coat)

    def clothed(points: np.ndarray) -> np.ndarray:
        field = field_of_body(points)
        for d in garment_fields(points, body, outfit).values():
            field = _smooth_min(field, d, 0.01)
        return field

    field, origin = narrow_band_field(clothed, body.vertices.min(0) - 0.15, body.vertices.max(0) + 0.15, spacing)
    v, f = marching_cubes_surface(field, origin, spacing)
    colours = surface_colours(v.astype(np.float64), body, outfit, field_of_body)
    shift = to_export_frame(v).astype(np.float64)[0] - v[0]
    mesh = TexturedMesh(vertices=(v + shift).astype(np.float32), faces=f, vertex_colors=colours,
                        height_m=float(np.ptp(v[:, 1])), canonical_height=float(np.ptp(v[:, 1])))
    return Subject(name, mesh, ((body.vertices + shift).astype(np.float32), body.faces.copy()))


def surface_colours(vertices: np.ndarray, body: PosedBody, outfit: Outfit, field_of_body: _BodyField) -> np.ndarray:
    """(V, 3) uint8 colours of the clothed surface: the garment nearest each vertex, else the body part under it
    (the coat's colour where the coat covers it), with a darker hem on the skirt and buttons down the coat."""
    d_body = field_of_body(vertices)
    garments = garment_fields(vertices, body, outfit)
    nearest = field_of_body.nearest(vertices)
    out = body.colours[nearest].copy()
    if field_of_body.weights is not None:
        covered = field_of_body.weights[nearest] > 0.25  # the coat's edge a little outside its full thickness
        out[covered] = outfit.colours["coat"]
        spine = body.joints["spine01"]
        front = covered & (np.abs(vertices[:, 0] - spine[0]) < 0.012) & (vertices[:, 2] > spine[2])
        out[front & (np.sin(40.0 * vertices[:, 1]) > 0.6)] = (40, 35, 30)
    for name, d in garments.items():
        own = d <= np.minimum(d_body, np.min([g for k, g in garments.items() if k != name] or [np.inf], 0)) + 1e-9
        out[own] = outfit.colours[name]
        if name == "skirt":
            knee_y = float(body.keypoints["left_knee"][1] + body.keypoints["right_knee"][1]) / 2
            out[own & (vertices[:, 1] < knee_y + 0.07)] *= 0.6
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def subject_photo(mesh: TexturedMesh, height: int = PHOTO_HEIGHT,
                  background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """(H, W, 3) uint8 photo of ``mesh`` from the front (azimuth 0) with head-light shading, the person 85% of the
    frame's height, on a plain ``background`` (portrait 2:3, widened when the pose is wider)."""
    from human3d.eval.bench import render_photo

    rgba = render_photo(mesh, 0.0, height).astype(np.float32)
    alpha = rgba[..., 3:] / 255.0
    rgb = rgba[..., :3] * alpha + np.asarray(background, np.float32) * (1.0 - alpha)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
