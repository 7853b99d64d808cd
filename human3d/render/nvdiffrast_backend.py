"""nvdiffrast backend (CUDA only; optional): hardware-speed rasterization, interpolation and antialiasing.

Written against nvdiffrast's public torch API (``RasterizeCudaContext``, ``rasterize``, ``interpolate``,
``antialias``); it cannot be exercised on a CPU machine, so its tests are marked ``cuda``.

Mapping onto nvdiffrast's clip space: nvdiffrast's image row 0 is clip y = -1, so setting clip y from our screen
row (``2 (sy + 0.5) / R - 1``) puts our row i on its row i without a flip. Its depth test keeps the smallest
z/w, ours the largest camera depth, so clip z is the negated depth scaled into [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from human3d.cameras import OrthoCamera
from human3d.errors import MissingBackendError, UsageError
from human3d.render.base import Fragments, Rasterizer, project_vertices


def nvdiffrast_available() -> bool:
    try:
        import nvdiffrast.torch  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


class NvdiffrastRasterizer(Rasterizer):
    """Rasterizer on nvdiffrast's CUDA context. Vertices must be on a CUDA device."""

    name = "nvdiffrast"

    def __init__(self, device: str | torch.device | None = None) -> None:
        if not nvdiffrast_available():
            raise MissingBackendError("the nvdiffrast renderer needs a CUDA GPU and nvdiffrast "
                                      "(pip install git+https://github.com/NVlabs/nvdiffrast); or choose 'torch'")
        import nvdiffrast.torch as dr

        self._dr = dr
        self._ctx = dr.RasterizeCudaContext(device=torch.device(device) if device is not None else None)

    def rasterize(self, vertices: torch.Tensor, faces: torch.Tensor, cameras: Sequence[OrthoCamera]) -> Fragments:
        if vertices.device.type != "cuda":
            raise UsageError("the nvdiffrast renderer needs the mesh on a CUDA device; use --device cuda")
        r = cameras[0].resolution
        faces = faces.to(device=vertices.device, dtype=torch.long)
        screen = project_vertices(vertices, cameras)  # (B, V, 3)
        zscale = screen[..., 2].detach().abs().max() + 1.0
        clip = torch.stack([
            2.0 * (screen[..., 0] + 0.5) / r - 1.0,
            2.0 * (screen[..., 1] + 0.5) / r - 1.0,
            -screen[..., 2] / zscale,
            torch.ones_like(screen[..., 0]),
        ], -1).contiguous()
        tri = faces.to(torch.int32).contiguous()
        rast, _ = self._dr.rasterize(self._ctx, clip, tri, resolution=[r, r])
        tri_id = rast[..., 3].round().long() - 1  # nvdiffrast stores triangle id + 1, 0 for background
        frags = self._fragments_from_ids(tri_id, screen, faces)
        return Fragments(tri_id=frags.tri_id, bary=frags.bary, depth=frags.depth, screen=screen, faces=faces,
                         native=(rast, clip, tri))

    def interpolate(self, attributes: torch.Tensor, frags: Fragments) -> torch.Tensor:
        rast, _, tri = frags.native
        # Instanced mode (one rasterization per view) wants (B, V, C) or (1, V, C) attributes.
        attr = (attributes[None] if attributes.ndim == 2 else attributes).contiguous()
        out, _ = self._dr.interpolate(attr, rast, tri)
        return out

    def antialias(self, color: torch.Tensor, frags: Fragments) -> torch.Tensor:
        rast, clip, tri = frags.native
        return self._dr.antialias(color.contiguous(), rast, clip, tri)
