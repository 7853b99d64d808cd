"""Rendering what carving compares: world-frame normal maps and masks of a mesh in a list of orthographic views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from human3d.cameras import OrthoCamera
from human3d.ops.mesh import vertex_normals
from human3d.render.base import Fragments, Rasterizer


@dataclass(frozen=True)
class NormalRender:
    """normals: (B, R, R, 3) world-frame normals (antialiased, background 0); mask: (B, R, R) coverage in [0, 1];
    frags: the rasterizer's fragments."""

    normals: torch.Tensor
    mask: torch.Tensor
    frags: Fragments


def render_normals(vertices: torch.Tensor, faces: torch.Tensor, cameras: Sequence[OrthoCamera],
                   rasterizer: Rasterizer, antialias: bool = True) -> NormalRender:
    """Render vertex normals (world frame, interpolated then re-normalised) and the coverage mask of a mesh.

    vertices (V, 3) and faces (F, 3); every camera must have the same resolution. With ``antialias`` both carry
    gradients to silhouette vertices.
    """
    frags = rasterizer.rasterize(vertices, faces, cameras)
    normals = vertex_normals(vertices, frags.faces)
    ones = torch.ones_like(normals[:, :1])
    image = rasterizer.interpolate(torch.cat([normals, ones], -1), frags)  # (B, R, R, 4)
    n = torch.nn.functional.normalize(image[..., :3], dim=-1, eps=1e-12)
    image = torch.cat([n, image[..., 3:]], -1)
    if antialias:
        image = rasterizer.antialias(image, frags)
    return NormalRender(normals=image[..., :3], mask=image[..., 3], frags=frags)


def render_masks(vertices: torch.Tensor, faces: torch.Tensor, cameras: Sequence[OrthoCamera],
                 rasterizer: Rasterizer, antialias: bool = True) -> torch.Tensor:
    """(B, R, R) coverage masks of a mesh in every camera (antialiased: differentiable at silhouettes)."""
    frags = rasterizer.rasterize(vertices, faces, cameras)
    ones = torch.ones_like(vertices[:, :1])
    image = rasterizer.interpolate(ones, frags)
    if antialias:
        image = rasterizer.antialias(image, frags)
    return image[..., 0]
