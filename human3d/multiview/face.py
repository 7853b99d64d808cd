"""Face relief for the embedded views: mediapipe's face mesh (468 landmarks with relative depth, the model inside the
0.10.21 wheel) on a crop of the head, turned into a depth surface on the canvas and blended into the proxy's front.

mediapipe gives each landmark x, y normalised by the crop's width and height and a depth z "of roughly the same scale
as x" (smaller = closer). On the square crop one scale carries all three to canonical units: the relief is as deep
as the landmarks' own x-y extent says, which makes it metric with the rest of the canvas (the body's height).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from human3d.context import StageContext
from human3d.errors import MissingBackendError
from human3d.types import BodyFit, Framed

#: Side of the square the head crop is resized to before the face mesh runs.
CROP_PX = 256
#: Crop side as a multiple of the body's ear-to-ear distance (the head and some margin for the detector).
CROP_HEAD_WIDTHS = 2.6
#: Smallest face (ear-to-ear width on the canvas, pixels) worth a relief: below it the landmarks are noise.
MIN_FACE_PX = 12.0
#: Width of the blend from the body's head into the face surface, as a fraction of the face's width.
BLEND_FRACTION = 0.18
#: Gaussian smoothing of the face's depth, as a fraction of its width (about a pixel on a 768 canvas).
SMOOTH_FRACTION = 0.015


@dataclass(frozen=True)
class FaceLandmarks:
    """pixels: (468, 2) continuous canvas pixels (u right, v down); depth: (468,) canonical z relative to the face
    centre (larger = closer to the front camera); resolution: the canvas side R."""

    pixels: np.ndarray
    depth: np.ndarray
    resolution: int


@dataclass(frozen=True)
class FaceSurface:
    """depth: (R, R) canonical z of the face surface (NaN outside the face oval, up to a constant offset);
    weight: (R, R) blend weight in [0, 1], 0 outside the oval rising to 1 inside it."""

    depth: np.ndarray
    weight: np.ndarray


def face_oval_loop() -> np.ndarray:
    """(N,) landmark indices of mediapipe's face oval, in order around it."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    nxt = dict(FACEMESH_FACE_OVAL)
    start = min(nxt)
    loop = [start]
    while nxt[loop[-1]] != start and len(loop) <= len(nxt):
        loop.append(nxt[loop[-1]])
    return np.asarray(loop, dtype=np.int64)


def head_crop(body: BodyFit, resolution: int) -> tuple[float, float, float] | None:
    """(u0, v0, side) of a square canvas-pixel crop around the fitted head, or None when the fit has no head
    keypoints (or the head is too small on the canvas to carry a face)."""
    kp = body.params.get("keypoints") or {}
    names = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    if any(n not in kp for n in names):
        return None
    pts = np.asarray([kp[n] for n in names], dtype=np.float64)
    width = float(np.linalg.norm(pts[3] - pts[4])) * resolution / 2.0  # ear to ear, canvas pixels
    if width < MIN_FACE_PX:
        return None
    cu = (pts[:, 0].mean() + 1.0) * resolution / 2.0
    cv = (1.0 - pts[:, 1].mean()) * resolution / 2.0
    side = CROP_HEAD_WIDTHS * width
    return cu - side / 2.0, cv - side / 2.0, side


def _crop(rgb: np.ndarray, u0: float, v0: float, side: float) -> np.ndarray:
    """(CROP_PX, CROP_PX, 3) uint8: the square canvas region, white where it leaves the canvas."""
    from PIL import Image

    pad = int(np.ceil(side)) + 2
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), constant_values=255)
    box = (u0 + pad, v0 + pad, u0 + pad + side, v0 + pad + side)
    img = Image.fromarray(padded).resize((CROP_PX, CROP_PX), Image.BILINEAR, box=box)
    return np.ascontiguousarray(np.asarray(img))


def detect_face_landmarks(rgb: np.ndarray, box: tuple[float, float, float]) -> FaceLandmarks | None:
    """mediapipe's face mesh (static image, no iris refinement) on the ``box`` crop of an (R, R, 3) uint8 canvas;
    None when it finds no face there."""
    try:
        from mediapipe.python.solutions import face_mesh
    except ImportError as err:
        raise MissingBackendError("face relief needs mediapipe: pip install mediapipe==0.10.21") from err
    u0, v0, side = box
    crop = _crop(rgb, u0, v0, side)
    with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                            min_detection_confidence=0.5) as mesh:
        result = mesh.process(crop)
    if not result.multi_face_landmarks:
        return None
    lm = np.array([[p.x, p.y, p.z] for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)
    r = rgb.shape[0]
    pixels = np.stack([u0 + lm[:, 0] * side, v0 + lm[:, 1] * side], 1)
    depth = -lm[:, 2] * side * (2.0 / r)  # z is in crop widths, smaller = closer; canonical: larger = closer
    return FaceLandmarks(pixels=pixels, depth=depth, resolution=r)


def face_surface(landmarks: FaceLandmarks, resolution: int) -> FaceSurface:
    """Triangulate the landmarks in 2D (Delaunay) and sample their depth at every canvas pixel inside the face
    oval; the blend weight rises smoothly from the oval inward over ``BLEND_FRACTION`` of the face's width."""
    from PIL import Image, ImageDraw
    from scipy.spatial import Delaunay

    from human3d.body.silhouette import rasterize

    s = resolution / landmarks.resolution
    pix = landmarks.pixels * s
    depth_lm = landmarks.depth  # canonical units do not scale with R
    oval = pix[face_oval_loop()]
    img = Image.new("1", (resolution, resolution), 0)
    ImageDraw.Draw(img).polygon([(float(u) - 0.5, float(v) - 0.5) for u, v in oval], fill=1)
    inside = np.array(img, dtype=bool)
    _, zbuf = rasterize(pix, depth_lm, Delaunay(pix).simplices, resolution)
    depth = np.where(inside & np.isfinite(zbuf), zbuf, np.nan).astype(np.float64)
    inside &= np.isfinite(depth)
    width = float(np.ptp(pix[:, 0])) if len(pix) else 0.0
    if inside.any():  # the linear facets of 468 points would show as creases in the normals
        w = ndimage.gaussian_filter(inside.astype(np.float64), SMOOTH_FRACTION * width)
        depth = ndimage.gaussian_filter(np.where(inside, depth, 0.0), SMOOTH_FRACTION * width) / np.maximum(w, 1e-9)
    dist = ndimage.distance_transform_edt(inside)
    t = np.clip(dist / max(BLEND_FRACTION * width, 1.0), 0.0, 1.0)
    weight = np.where(inside, t * t * (3.0 - 2.0 * t), 0.0)
    return FaceSurface(depth=np.where(inside, depth, np.nan), weight=weight)


def find_face(framed: Framed, body: BodyFit, resolution: int, ctx: StageContext) -> FaceSurface | None:
    """The face surface at ``resolution`` from the framed photo, or None (said through ``ctx``) when the body fit
    faces away, has no head keypoints, or the face mesh finds no face at the head."""
    if body.report.get("facing") == "away":
        ctx.warn("face relief: the person faces away from the camera; the head keeps the body model's face")
        return None
    box = head_crop(body, framed.rgb.shape[0])
    if box is None:
        ctx.warn("face relief: the head is too small on the canvas or the body fit has no head keypoints; the head "
                 "keeps the body model's face")
        return None
    landmarks = detect_face_landmarks(framed.rgb, box)
    if landmarks is None:
        ctx.warn("face relief: no face found at the head; the head keeps the body model's face")
        return None
    return face_surface(landmarks, resolution)


def blend_face_depth(zf: np.ndarray, zb: np.ndarray, face: FaceSurface) -> np.ndarray:
    """The front sheet (R, R) with the face blended in.

    The face surface is first placed on the sheet: the plane (offset and tilt) that best carries it onto the sheet
    over the blend ring is added to it, so the face takes the head's depth and orientation and keeps its own
    relief; it is then mixed in by the blend weight, and kept in front of the back sheet ``zb``.
    """
    w = face.weight
    ring = (w > 0) & (w < 0.5) & np.isfinite(zf)
    if ring.sum() < 3:
        return zf
    vv, uu = np.nonzero(ring)
    design = np.stack([np.ones(len(uu)), uu, vv], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, (zf - face.depth)[ring], rcond=None)
    v_all, u_all = np.mgrid[0:zf.shape[0], 0:zf.shape[1]]
    target = face.depth + coef[0] + coef[1] * u_all + coef[2] * v_all
    use = np.isfinite(zf) & (w > 0)
    out = np.where(use, zf + w * (np.where(use, target, 0.0) - zf), zf)
    floor = zb + 0.25 * (zf - zb)  # never let the face pass through the back of the head
    return np.where(use, np.maximum(out, floor), out)


def depth_normals(depth: np.ndarray) -> np.ndarray:
    """(R, R, 3) front-view unit normals of a canonical depth map z(u, v) (NaN where undefined)."""
    r = depth.shape[0]
    px = 2.0 / r
    known = np.isfinite(depth)
    if known.any() and not known.all():  # the nearest defined depth outside, so the edge has no false cliff
        _, (iy, ix) = ndimage.distance_transform_edt(~known, return_indices=True)
        depth = depth[iy, ix]
    dz_dv, dz_du = np.gradient(np.where(np.isfinite(depth), depth, 0.0))
    n = np.stack([-dz_du / px, dz_dv / px, np.ones_like(depth)], -1)  # y = 1 - 2(v + 0.5)/R: dy = -px dv
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def paste_face_normals(normals: np.ndarray, mask: np.ndarray, face: FaceSurface, zf: np.ndarray) -> np.ndarray:
    """The front normal view (R, R, 3) with the pixel-resolution normals of the front sheet ``zf`` (R, R; the face
    blended in) mixed in by the face's weight: the proxy's grid is coarser than a nose."""
    w = np.where(mask, face.weight, 0.0)[..., None]
    fine = depth_normals(zf)
    mixed = (1.0 - w) * normals + w * fine
    mixed /= np.maximum(np.linalg.norm(mixed, axis=-1, keepdims=True), 1e-12)
    return np.where(w > 0, mixed, normals).astype(normals.dtype)
