"""Appearance: fuse the views' colours onto the carved mesh and bake a UV texture (the 'texture' stage)."""

from __future__ import annotations

import numpy as np

from human3d.cameras import OrthoCamera, camera_for_view
from human3d.config import TextureConfig
from human3d.context import StageContext
from human3d.errors import InternalError
from human3d.texture.bake import bake_texture
from human3d.texture.decimate import check_face_options, decimate
from human3d.texture.fuse import ColorSource, depth_maps, fuse_colors, propagate_colors
from human3d.texture.normal_map import bake_normal_map
from human3d.texture.shading import smooth_normals
from human3d.types import Mesh, MultiView, TexturedMesh


def color_sources(views: MultiView, front_from_photo: bool = True, photo_erode_px: int = 2) -> list[ColorSource]:
    """One colour source per view with a positive colour weight; the front view's colours come from the photo at
    full resolution (``views.photo``) when ``front_from_photo`` and the views carry it."""
    from scipy import ndimage

    weights = views.color_weights if views.color_weights is not None else views.view_weights
    res = int(views.colors.shape[1])
    sources = []
    for i, name in enumerate(views.view_names):
        w = float(weights[i])
        if w <= 0:
            continue
        photo = views.photo
        if name == "front" and front_from_photo and photo is not None:
            # the photo is the front view at its own resolution: canvas pixel -> photo pixel by the framing map
            cam = OrthoCamera("front", 0.0, photo.resolution)
            mask = ndimage.binary_erosion(photo.mask, iterations=photo_erode_px) if photo_erode_px else photo.mask
            sources.append(ColorSource(cam, photo.rgb.astype(np.float32) / 255.0, mask, w,
                                       to_image=photo.canvas_to_photo))
            continue
        sources.append(ColorSource(camera_for_view(name, res), views.colors[i].astype(np.float32), views.masks[i], w))
    return sources


def texture_mesh(mesh: Mesh, views: MultiView, cfg: TextureConfig, ctx: StageContext) -> TexturedMesh:
    """The pipeline stage: the carved mesh decimated to ``cfg.faces`` triangles when set, colours from the views
    (front from the photo they carry) baked into a UV texture, and with ``cfg.normal_map`` the full mesh's detail
    baked into a normal map. The mesh's metric transform (height) passes through to the export."""
    check_face_options(cfg.faces, cfg.normal_map)
    sources = color_sources(views, cfg.front_from_photo)
    if not sources:
        raise InternalError(f"the multi-view backend '{views.backend}' gave no view with colour")
    full = mesh
    if cfg.faces is not None:
        ctx.progress(0.02, f"decimating {len(mesh.faces)} triangles to {cfg.faces}")
        dv, df, note = decimate(mesh.vertices, mesh.faces, cfg.faces)
        if note:
            ctx.warn(note)
        mesh = Mesh(dv, df)
    ctx.progress(0.05, "visibility")
    depths = depth_maps(mesh.vertices, mesh.faces, [s.camera for s in sources], cfg.renderer, ctx.device)
    ctx.progress(0.2, f"unwrapping {len(mesh.faces)} faces and baking a {cfg.texture_size}px texture")
    v, f, uv, tex, vcol = bake_texture(mesh.vertices, mesh.faces, sources, depths, size=cfg.texture_size,
                                       cos_power=cfg.cos_power, padding=cfg.padding, renderer=cfg.renderer,
                                       device=ctx.device)
    normal_texture = None
    if cfg.normal_map:
        ctx.progress(0.8, f"baking the detail of {len(full.faces)} triangles into a normal map")
        # against the normals the export computes from this geometry (smooth_normals: welded, so seam-free)
        normal_texture = bake_normal_map(full.vertices, full.faces, v, f, uv, smooth_normals(v, f),
                                         cfg.texture_size, cfg.renderer, device=ctx.device)
    ctx.progress(1.0, "done")
    # normals stay None: the export computes them from the final geometry, so a later stage that moves vertices
    # (the rig's rest pose) never leaves stale ones; a tangent-space map follows the surface as it moves
    return TexturedMesh(vertices=v, faces=f, uvs=uv, texture=tex, vertex_colors=vcol, height_m=full.height_m,
                        canonical_height=full.canonical_height, normal_texture=normal_texture,
                        facing_away=full.facing_away)


__all__ = ["texture_mesh", "color_sources", "bake_texture", "fuse_colors", "propagate_colors", "depth_maps",
           "ColorSource"]
