"""The dataclasses the stages exchange: ``LoadedImage`` -> ``Cutout`` -> ``Framed`` -> ``BodyFit`` -> ``MultiView``
-> ``Mesh`` -> ``TexturedMesh`` (DESIGN.md §1).

Arrays are numpy, in the canonical frame of :mod:`human3d.cameras` unless a field says otherwise. Every result can
be written to and read from a folder (``save``/``load``: arrays in ``arrays.npz``, everything else in
``meta.json``), which is how the pipeline caches a stage in the work dir.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

T = TypeVar("T", bound="StageResult")


class StageResult:
    """Mixin: folder round trip for a dataclass whose fields are arrays, None or JSON values."""

    ARRAYS_FILE: ClassVar[str] = "arrays.npz"
    META_FILE: ClassVar[str] = "meta.json"

    def save(self, folder: str | Path) -> None:
        from human3d.io.atomic import atomic_write_bytes, atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, StageResult):  # a nested result (e.g. TexturedMesh.skin) gets its own sub-folder
                value.save(folder / f.name)
                meta[f.name] = {"$result": type(value).__name__}
            elif isinstance(value, np.ndarray):
                arrays[f.name] = value
            else:
                meta[f.name] = value
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(folder / self.ARRAYS_FILE, buf.getvalue())
        atomic_write_text(folder / self.META_FILE, json.dumps(meta, indent=1, default=_json_default))

    @classmethod
    def load(cls: type[T], folder: str | Path) -> T:
        folder = Path(folder)
        meta = json.loads((folder / cls.META_FILE).read_text())
        if meta.pop("type", cls.__name__) != cls.__name__:
            raise ValueError(f"{folder} holds a different result type")
        with np.load(folder / cls.ARRAYS_FILE, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in arrays:
                kwargs[f.name] = arrays[f.name]
            elif f.name in meta:
                value = meta[f.name]
                if isinstance(value, dict) and "$result" in value:
                    kwargs[f.name] = globals()[value["$result"]].load(folder / f.name)
                    continue
                kwargs[f.name] = tuple(value) if isinstance(f.default, tuple) and isinstance(value, list) else value
        return cls(**kwargs)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in meta.json")


@dataclass
class LoadedImage(StageResult):
    """A validated photo.

    rgb: (H, W, 3) uint8, sRGB, EXIF orientation applied.
    alpha: (H, W) uint8 or None when the file had no alpha channel.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    source: str = ""
    original_size: tuple[int, int] = (0, 0)  # (width, height) as stored in the file, before any downscale
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


@dataclass
class Cutout(StageResult):
    """The person separated from the background, in photo pixels.

    rgb: (H, W, 3) uint8 photo; mask: (H, W) bool, one cleaned person component;
    bbox: (x0, y0, x1, y1) of the mask, half-open pixel bounds; backend: which segmenter made the mask.
    """

    rgb: np.ndarray
    mask: np.ndarray
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    backend: str = ""
    warnings: list[str] = field(default_factory=list)


def canvas_to_source(xy: np.ndarray, scale: float, offset: Any) -> np.ndarray:
    """(..., 2) canvas pixel coordinates -> pixels of the image mapped by canvas = scale * pixel + offset."""
    return (np.asarray(xy, dtype=np.float64) - np.asarray(offset)) / scale


@dataclass
class FrontPhoto(StageResult):
    """The front view at the photo's own resolution, for colour: the photo around the person and its mask.

    rgb: (h, w, 3) uint8 crop of the photo; mask: (h, w) bool, the person in it;
    scale, offset: canvas_pixel = scale * crop_pixel + offset (pixel-edge coordinates, both axes) on the
    canonical canvas of ``resolution`` pixels.
    """

    rgb: np.ndarray
    mask: np.ndarray
    scale: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)
    resolution: int = 768

    def canvas_to_photo(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) canvas pixel coordinates -> pixel coordinates of ``rgb``."""
        return canvas_to_source(xy, self.scale, self.offset)


@dataclass
class Framed(StageResult):
    """The cutout placed in the canonical canvas (DESIGN.md §3).

    rgb: (R, R, 3) uint8 on a white background; mask: (R, R) bool;
    face_rgb / face_mask: the face crop (cameras.face_box) upscaled to (R, R);
    scale, offset: canvas_pixel = scale * photo_pixel + offset (pixel-edge coordinates, both axes).
    photo_size: (width, height) of the photo the cutout came from.
    photo: the person's part of the photo at full resolution (for colour), or None.
    """

    rgb: np.ndarray
    mask: np.ndarray
    face_rgb: np.ndarray
    face_mask: np.ndarray
    scale: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)
    photo_size: tuple[int, int] = (0, 0)
    photo: FrontPhoto | None = None

    @property
    def resolution(self) -> int:
        return int(self.rgb.shape[0])

    def photo_to_canvas(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) photo pixel coordinates -> canvas pixel coordinates."""
        return np.asarray(xy, dtype=np.float64) * self.scale + np.asarray(self.offset)

    def canvas_to_photo(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) canvas pixel coordinates -> photo pixel coordinates."""
        return canvas_to_source(xy, self.scale, self.offset)


@dataclass
class BodyFit(StageResult):
    """A body model fitted in the canonical frame.

    vertices: (V, 3) float32; faces: (F, 3) int64; joints: (J, 3) float32 named by ``joint_names``;
    params: the model's parameters (JSON values); height_m: estimated standing height in metres;
    canonical_height: the same height in canonical units (so 1 canonical unit = height_m / canonical_height m);
    report: fit quality (e.g. ``keypoint_error_px``, ``mask_iou``); parts: (V,) int8 body part of every vertex
    (:data:`human3d.body.parts.PART_NAMES`, from the model's skinning weights), or None when unknown; offsets: (V,)
    float32 clothing and hair offsets along the body model's normals that the vertices carry (the clothed surface is
    ``vertices``; the bare body is ``vertices`` minus them), or None when the fit added none.
    """

    vertices: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    joint_names: list[str] = field(default_factory=list)
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    height_m: float = 1.70
    canonical_height: float = 2.0
    report: dict[str, Any] = field(default_factory=dict)
    parts: np.ndarray | None = None
    offsets: np.ndarray | None = None


@dataclass
class MultiView(StageResult):
    """Views of the subject in the view set of :mod:`human3d.cameras` (body views, then optionally the face).

    normals: (N, R, R, 3) float32 world-frame unit normals (0 where masked out);
    colors: (N, R, R, 3) float32 in [0, 1]; masks: (N, R, R) bool; view_names / azimuths: per view;
    view_weights: (N,) float32 weight of each view in carving (and in colour fusion unless color_weights is set);
    color_weights: (N,) float32 weight of each view's colours in colour fusion, or None (= view_weights); a backend
    whose colours are only known in some views (the prior) sets the others to 0.
    photo: the front view at the photo's resolution (from :class:`Framed`), which colour fusion prefers, or None.
    start_vertices (P, 3) float32, start_faces (Q, 3) int64: a closed mesh in the canonical frame whose renders are
    these views (the embedded prior's proxy), which carving may start from instead of the body fit; or None.
    """

    normals: np.ndarray
    colors: np.ndarray
    masks: np.ndarray
    view_weights: np.ndarray
    view_names: list[str] = field(default_factory=list)
    azimuths: list[float] = field(default_factory=list)
    backend: str = ""
    color_weights: np.ndarray | None = None
    photo: FrontPhoto | None = None
    start_vertices: np.ndarray | None = None
    start_faces: np.ndarray | None = None

    CONTACT_SHEET: ClassVar[str] = "contact_sheet.png"

    def save(self, folder: str | Path) -> None:
        """The arrays, and a contact sheet of every view (normals / colours / masks) to look at."""
        from human3d.io.atomic import atomic_write_bytes
        from human3d.io.meshes import png_bytes
        from human3d.io.previews import contact_sheet

        super().save(folder)
        sheet = contact_sheet(self.normals, self.colors, self.masks)
        atomic_write_bytes(Path(folder) / self.CONTACT_SHEET, png_bytes(sheet))


@dataclass
class Mesh(StageResult):
    """A triangle mesh in the canonical frame: vertices (V, 3) float32, faces (F, 3) int64, counter-clockwise
    seen from outside.

    height_m, canonical_height, facing_away: the export transform, which travels with the mesh: the subject's
    standing height in metres and in canonical units (see BodyFit; canonical_height None: the mesh's own y
    extent), and whether the person was seen from behind (the export then turns the mesh so their front is +Z).
    """

    vertices: np.ndarray
    faces: np.ndarray
    height_m: float = 1.70
    canonical_height: float | None = None
    facing_away: bool = False


@dataclass
class TexturedMesh(StageResult):
    """A mesh with colour, in the canonical frame.

    vertices (V, 3) float32 and faces (F, 3) int64; uvs (V, 2) float32 per vertex (vertices are split along UV
    seams) or None; texture (H, W, 3) uint8 sRGB or None; vertex_colors (V, 3) uint8 or None.
    height_m: real standing height, used by the export transform; canonical_height and facing_away likewise (see
    Mesh).
    skin: the rig (:class:`Skin`, same frame) or None for a static mesh.
    normals: (V, 3) float32 unit vertex normals (e.g. read from a file), or None: the export then computes them
    from the geometry with :func:`human3d.texture.shading.smooth_normals` (equal on the split copies of a
    position); the pipeline leaves None so that a stage moving vertices never leaves stale normals.
    normal_texture: (H, W, 3) uint8 tangent-space normal map (tangents from
    :func:`human3d.texture.shading.vertex_tangents`) or None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    height_m: float = 1.70
    canonical_height: float | None = None
    skin: Skin | None = None
    normals: np.ndarray | None = None
    normal_texture: np.ndarray | None = None
    facing_away: bool = False


@dataclass
class Skin(StageResult):
    """A linear-blend skin for a mesh, in the mesh's frame; the mesh as stored is the bind pose (human3d.rig).

    joint_names (J); parents: (J,) int64, -1 for the root, parents first; bind_matrices: (J, 4, 4) float64 world
    matrix of every joint in the bind pose (the inverse bind matrices are their inverses); joints: (V, 4) int64 and
    weights: (V, 4) float32 per vertex (rows sum to 1, unused slots weight 0); humanoid: VRM/Unity humanoid bone ->
    joint name; rest_pose: photo | a-pose | t-pose. An optional clip (clip_name non-empty): clip_times (K,) seconds,
    clip_joints (A,) int64 joints it turns, clip_rotations (K, A, 4) float32 local rotations (x, y, z, w quaternions).
    """

    joint_names: list[str]
    parents: np.ndarray
    bind_matrices: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    humanoid: dict[str, str] = field(default_factory=dict)
    rest_pose: str = "photo"
    clip_name: str = ""
    clip_times: np.ndarray | None = None
    clip_joints: np.ndarray | None = None
    clip_rotations: np.ndarray | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def inverse_bind_matrices(self) -> np.ndarray:
        """(J, 4, 4) float64."""
        return np.linalg.inv(self.bind_matrices)
