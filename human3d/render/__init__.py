"""Differentiable rendering backends for the orthographic views of :mod:`human3d.cameras`.

``get_rasterizer('auto' | 'torch' | 'open3d' | 'nvdiffrast', device)`` returns a :class:`Rasterizer`;
every backend rasterizes (triangle id, barycentrics, depth per pixel), interpolates vertex attributes and
antialiases silhouettes with gradients to vertex positions.
"""

from __future__ import annotations

import torch

from human3d.context import log
from human3d.errors import UsageError
from human3d.render.base import Fragments, Rasterizer, project_vertices
from human3d.render.mesh_render import NormalRender, render_masks, render_normals
from human3d.render.open3d_backend import Open3DRasterizer, open3d_available
from human3d.render.torch_backend import TorchRasterizer

RENDERERS = ("auto", "torch", "open3d", "nvdiffrast")


def get_rasterizer(name: str = "auto", device: str | torch.device = "cpu") -> Rasterizer:
    """The rasterizer called ``name`` for tensors on ``device``.

    auto: nvdiffrast on a CUDA device when it is importable, else Open3D ray casting on the CPU when open3d
    imports, else the pure-torch reference (any device).
    """
    from human3d.render.nvdiffrast_backend import NvdiffrastRasterizer, nvdiffrast_available

    if name not in RENDERERS:
        raise UsageError(f"unknown renderer {name!r}; choose one of {', '.join(RENDERERS)}")
    on_cuda = torch.device(device).type == "cuda"
    if name == "auto":
        if on_cuda:
            name = "nvdiffrast" if nvdiffrast_available() else "torch"
        else:
            name = "open3d" if open3d_available() else "torch"
        if name == "torch":
            log.warning("renderer 'auto' fell back to the pure-torch rasterizer (%s); it is correct but slower",
                        "nvdiffrast is not installed" if on_cuda else "open3d does not import")
        else:
            log.info("renderer 'auto': %s (%s)", name, "CUDA device, nvdiffrast installed" if on_cuda
                     else "CPU device, open3d imports")
    if name == "nvdiffrast":
        return NvdiffrastRasterizer(device)
    if name == "open3d":
        return Open3DRasterizer()
    return TorchRasterizer()


__all__ = [
    "Fragments", "Rasterizer", "TorchRasterizer", "Open3DRasterizer", "NormalRender", "RENDERERS",
    "get_rasterizer", "project_vertices", "render_normals", "render_masks",
]
