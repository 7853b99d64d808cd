"""Open3D ray-casting visibility (Embree BVH): the fast CPU backend.

One scene is built per call and one ray is cast through every pixel centre of every view, along the view direction.
Only the triangle ids come from Open3D; barycentrics, depth and everything differentiable are recomputed in torch
by :class:`~human3d.render.base.Rasterizer`, so gradients are the same as with the reference backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from human3d.cameras import OrthoCamera
from human3d.errors import MissingBackendError
from human3d.render.base import Rasterizer


def open3d_available() -> bool:
    try:
        import open3d  # noqa: F401
    except Exception:  # open3d fails with OSError when a system library (libusb) is missing
        return False
    return True


def import_open3d(purpose: str) -> Any:
    """The open3d module, or :class:`MissingBackendError` saying that ``purpose`` needs it and how to install it."""
    try:
        import open3d
    except Exception as err:  # ImportError, or OSError for a missing system library (libusb)
        raise MissingBackendError(f"{purpose} needs open3d, which does not import ({type(err).__name__}: {err}); "
                                  "pip install open3d==0.20.0 (on Debian also apt-get install libusb-1.0-0)") from err
    return open3d


class Open3DRasterizer(Rasterizer):
    """Visibility by Open3D's ``RaycastingScene`` (CPU). threads: 0 lets Open3D use every core."""

    name = "open3d"

    def __init__(self, threads: int = 0) -> None:
        if not open3d_available():
            raise MissingBackendError("the open3d renderer needs open3d (pip install open3d==0.20.0; on Debian also "
                                      "apt-get install libusb-1.0-0); or choose renderer 'torch'")
        import open3d

        self._o3d = open3d
        self.threads = int(threads)
        self._rays_cache: dict[tuple, np.ndarray] = {}

    def _rays(self, cameras: Sequence[OrthoCamera], z_start: float) -> np.ndarray:
        """(B*R*R, 6) float32 rays: origins in front of the mesh at camera depth ``z_start``, directions inward."""
        key = tuple((c.azimuth_deg, c.resolution, c.center, c.half_extent) for c in cameras) + (round(z_start, 3),)
        rays = self._rays_cache.get(key)
        if rays is None:
            out = []
            for cam in cameras:
                xy = cam.pixel_centers_camera().reshape(-1, 2)  # rows top to bottom, columns left to right
                origin_cam = np.concatenate([xy, np.full((xy.shape[0], 1), z_start)], 1)
                origin = cam.camera_to_world(origin_cam)
                direction = np.broadcast_to(-cam.direction, origin.shape)
                out.append(np.concatenate([origin, direction], 1))
            rays = np.ascontiguousarray(np.concatenate(out, 0), dtype=np.float32)
            self._rays_cache = {key: rays}  # one entry: carving reuses the same cameras every iteration
        return rays

    def _visibility(self, vertices: torch.Tensor, faces: torch.Tensor, screen: torch.Tensor,
                    cameras: Sequence[OrthoCamera]) -> torch.Tensor:
        o3d = self._o3d
        b, r = screen.shape[0], cameras[0].resolution
        v = vertices.detach().cpu().to(torch.float32).numpy()  # Open3D ray casting runs on the host
        f = faces.detach().cpu().numpy().astype(np.uint32)
        scene = o3d.t.geometry.RaycastingScene(nthreads=self.threads)
        scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(v)), o3d.core.Tensor(np.ascontiguousarray(f)))
        # Origins one radius outside the bounding sphere, so every ray starts in front of the whole mesh.
        z_start = float(np.linalg.norm(v, axis=1).max()) + 1.0 if v.size else 1.0
        z_start = float(np.ceil(z_start))
        ans = scene.cast_rays(o3d.core.Tensor(self._rays(cameras, z_start)), nthreads=self.threads)
        ids = ans["primitive_ids"].numpy().astype(np.int64)
        ids[ids == int(o3d.t.geometry.RaycastingScene.INVALID_ID)] = -1
        return torch.from_numpy(ids.reshape(b, r, r)).to(screen.device)

