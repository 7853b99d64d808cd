"""The canonical frame and the view set: the single source of truth for projection (DESIGN.md §3).

World frame = front camera frame: right-handed, +Y up, the subject faces +Z (toward the front camera), so the
subject's left side is +X and appears on the right of the front image. On the front view the canvas spans
x, y in [-1, 1]; pixel (u, v), v down, maps to x = 2(u+0.5)/R - 1, y = 1 - 2(v+0.5)/R.

Every view is orthographic with elevation 0; a view of azimuth ``a`` looks at the origin from direction
``(sin a, 0, cos a)``. Its camera frame is right-handed with x to the image right, y up and z toward the camera, so
a larger camera-space z is closer to the camera. The face view is the front view zoomed onto the canvas region
x in [256, 512), y in [0, 256) of a 768 canvas (scaled with R).

Functions accept numpy arrays or torch tensors and return the same kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: PSHuman's body views, in its order, and their azimuths in degrees.
BODY_VIEW_NAMES: tuple[str, ...] = ("front", "front_right", "right", "back", "left", "front_left")
BODY_VIEW_AZIMUTHS: tuple[float, ...] = (0.0, 45.0, 90.0, 180.0, 270.0, 315.0)
#: PSHuman's weight of each body view (in BODY_VIEW_NAMES order) in carving and colour fusion: the front and back
#: count most, the 45-degree views least. Defined once here; the prior, the PSHuman backend and carving use it.
BODY_VIEW_WEIGHTS: tuple[float, ...] = (1.0, 0.4, 0.8, 1.0, 0.8, 0.4)
FACE_VIEW_NAME = "face"

#: Canvas of the diffusion backend and PSHuman's crop: the person's long side is CROP_SIZE/CANVAS_SIZE of R.
CANVAS_SIZE = 768
CROP_SIZE = 740

#: Face crop on a 768 canvas: (x0, y0, x1, y1) in pixels, half-open.
FACE_CROP_768 = (256, 0, 512, 256)


def rotation_world_to_camera(azimuth_deg: float) -> np.ndarray:
    """(3, 3) rotation R with p_cam = R @ p_world for a camera at azimuth ``azimuth_deg`` (elevation 0)."""
    a = math.radians(azimuth_deg)
    z = np.array([math.sin(a), 0.0, math.cos(a)])  # toward the camera
    y = np.array([0.0, 1.0, 0.0])
    x = np.cross(y, z)
    return np.stack([x, y, z]).astype(np.float64)


def _like(array: np.ndarray, ref: Any) -> Any:
    """``array`` as the same kind (numpy / torch, dtype, device) as ``ref``."""
    if isinstance(ref, np.ndarray):
        return array.astype(ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.float64)
    import torch

    return torch.as_tensor(array, dtype=ref.dtype if ref.is_floating_point() else torch.float32, device=ref.device)


@dataclass(frozen=True)
class OrthoCamera:
    """An orthographic view of the canonical frame.

    The camera sees camera-space x in ``[cx - half_extent, cx + half_extent]`` and y likewise around ``cy``, on a
    ``resolution`` x ``resolution`` image.
    """

    name: str
    azimuth_deg: float
    resolution: int
    center: tuple[float, float] = (0.0, 0.0)
    half_extent: float = 1.0

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) world-to-camera rotation."""
        return rotation_world_to_camera(self.azimuth_deg)

    @property
    def direction(self) -> np.ndarray:
        """(3,) unit vector from the origin toward the camera."""
        return self.rotation[2].copy()

    def world_to_camera(self, points: Any) -> Any:
        """(..., 3) world points or directions -> (..., 3) camera-space (x right, y up, z toward camera)."""
        return points @ _like(self.rotation, points).T

    def camera_to_world(self, points: Any) -> Any:
        """Inverse of :meth:`world_to_camera` for points or directions."""
        return points @ _like(self.rotation, points)

    def camera_to_ndc(self, xy: Any) -> Any:
        """(..., 2) camera-space x, y -> (..., 2) normalised image coordinates in [-1, 1] (x right, y up)."""
        c = _like(np.asarray(self.center, dtype=np.float64), xy)
        return (xy - c) / self.half_extent

    def project(self, points: Any) -> tuple[Any, Any]:
        """(..., 3) world points -> ((..., 2) pixel coords (u right, v down, pixel centres at +0.5), (...) depth).

        Depth is camera-space z: larger is closer to the camera.
        """
        cam = self.world_to_camera(points)
        ndc = self.camera_to_ndc(cam[..., :2])
        r = self.resolution
        u = (ndc[..., 0] + 1.0) * (r / 2.0)
        v = (1.0 - ndc[..., 1]) * (r / 2.0)
        stack = np.stack if isinstance(points, np.ndarray) else _torch_stack
        return stack([u, v], -1), cam[..., 2]

    def pixel_centers_ndc(self) -> np.ndarray:
        """(R, R, 2) normalised x, y of every pixel centre, rows top to bottom."""
        return pixel_centers_ndc(self.resolution)

    def pixel_centers_camera(self) -> np.ndarray:
        """(R, R, 2) camera-space x, y of every pixel centre."""
        return self.pixel_centers_ndc() * self.half_extent + np.asarray(self.center)


def _torch_stack(tensors: list[Any], dim: int) -> Any:
    import torch

    return torch.stack(tensors, dim)


def pixel_centers_ndc(resolution: int) -> np.ndarray:
    """(R, R, 2) x = 2(u+0.5)/R - 1, y = 1 - 2(v+0.5)/R for every pixel (v rows, u columns)."""
    c = (np.arange(resolution, dtype=np.float64) + 0.5) * (2.0 / resolution)
    x = c - 1.0
    y = 1.0 - c
    xx, yy = np.meshgrid(x, y)
    return np.stack([xx, yy], -1)


def body_cameras(resolution: int = CANVAS_SIZE) -> list[OrthoCamera]:
    """The six body views of DESIGN.md §3 in PSHuman's order."""
    return [OrthoCamera(n, a, resolution) for n, a in zip(BODY_VIEW_NAMES, BODY_VIEW_AZIMUTHS)]


def face_box(resolution: int = CANVAS_SIZE) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the face crop on an R canvas (FACE_CROP_768 scaled by R/768)."""
    s = resolution / CANVAS_SIZE
    return tuple(int(round(c * s)) for c in FACE_CROP_768)  # type: ignore[return-value]


def face_camera(resolution: int = CANVAS_SIZE) -> OrthoCamera:
    """The front view zoomed onto the face crop, rendered at R x R."""
    x0, y0, x1, y1 = face_box(resolution)
    r = resolution
    # pixel edges -> ndc: x = 2u/R - 1, y = 1 - 2v/R
    nx0, nx1 = 2 * x0 / r - 1, 2 * x1 / r - 1
    ny0, ny1 = 1 - 2 * y0 / r, 1 - 2 * y1 / r
    center = ((nx0 + nx1) / 2, (ny0 + ny1) / 2)
    return OrthoCamera(FACE_VIEW_NAME, 0.0, resolution, center=center, half_extent=(nx1 - nx0) / 2)


def all_cameras(resolution: int = CANVAS_SIZE, include_face: bool = True) -> list[OrthoCamera]:
    """The body views and, optionally, the face view last (PSHuman's 7-view order)."""
    cams = body_cameras(resolution)
    return cams + [face_camera(resolution)] if include_face else cams


def camera_for_view(name: str, resolution: int = CANVAS_SIZE) -> OrthoCamera:
    """The camera of a named view (a body view or 'face')."""
    if name == FACE_VIEW_NAME:
        return face_camera(resolution)
    if name not in BODY_VIEW_NAMES:
        raise KeyError(f"unknown view {name!r}")
    return OrthoCamera(name, BODY_VIEW_AZIMUTHS[BODY_VIEW_NAMES.index(name)], resolution)
