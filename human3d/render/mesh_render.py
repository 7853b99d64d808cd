"""Rendering what carving compares: world-frame normal maps and masks of a mesh in a list of orthographic views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from human3d.cameras import OrthoCamera
from human3d.render.base import Fragments, Rasterizer


def face_normals(vertices: torch.Tensor, faces: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """(V, 3), (F, 3) -> (F, 3) face normals (counter-clockwise = outward); unnormalised ones have |n| = 2 area."""
    tri = vertices[faces]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    return torch.nn.functional.normalize(n, dim=-1, eps=1e-20) if normalize else n


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3) unit vertex normals: area-weighted sums of the incident face normals (differentiable)."""
    n = face_normals(vertices, faces, normalize=False)
    acc = torch.zeros_like(vertices).index_add(0, faces.reshape(-1), n.repeat_interleave(3, 0))
    return torch.nn.functional.normalize(acc, dim=-1, eps=1e-20)


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
