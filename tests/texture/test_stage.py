"""The texture stage looks only forward: the carved mesh and the views (which carry the full-resolution front
photo) are all it takes, and the mesh's metric transform passes through to the export."""

from __future__ import annotations

import dataclasses

import numpy as np
import trimesh

from human3d.cameras import BODY_VIEW_NAMES, body_cameras
from human3d.carve.synthetic import render_views
from human3d.config import FrameConfig, TextureConfig
from human3d.context import StageContext
from human3d.frame import frame_cutout
from human3d.texture import texture_mesh
from human3d.types import Cutout, Mesh


def _photo(size: int = 300) -> Cutout:
    """A red disc on a 300 px photo: the person."""
    yy, xx = np.mgrid[0:size, 0:size]
    mask = (xx - 150) ** 2 + (yy - 140) ** 2 < 100**2
    rgb = np.full((size, size, 3), 255, np.uint8)
    rgb[mask] = (220, 30, 30)
    ys, xs = np.nonzero(mask)
    return Cutout(rgb=rgb, mask=mask, bbox=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))


def test_framed_photo_maps_canvas_pixels_to_the_photo_like_the_framing():
    cutout = _photo()
    framed = frame_cutout(cutout, FrameConfig(resolution=64), StageContext())
    photo = framed.photo
    assert photo is not None and photo.resolution == 64 and photo.rgb.shape[:2] == photo.mask.shape
    assert photo.rgb.shape[0] < cutout.rgb.shape[0]  # a crop around the person, not the whole photo
    xy = np.array([[10.3, 20.7], [32.0, 32.0], [50.5, 40.25]])
    crop_xy = photo.canvas_to_photo(xy)
    full_xy = framed.canvas_to_photo(xy)
    x0, y0 = np.round(full_xy[0] - crop_xy[0]).astype(int)
    np.testing.assert_allclose(crop_xy + (x0, y0), full_xy, atol=1e-9)
    assert np.array_equal(photo.rgb, cutout.rgb[y0:y0 + photo.rgb.shape[0], x0:x0 + photo.rgb.shape[1]])


def test_texture_takes_the_mesh_and_the_views_and_keeps_the_mesh_height():
    cutout = _photo()
    framed = frame_cutout(cutout, FrameConfig(resolution=64), StageContext())
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
    v, f = np.asarray(s.vertices, np.float32), np.asarray(s.faces, np.int64)
    views = render_views(v, f, body_cameras(64))
    views = dataclasses.replace(views, colors=np.zeros_like(views.colors) + (0.1, 0.2, 0.9), photo=framed.photo,
                                view_names=list(BODY_VIEW_NAMES), color_weights=np.eye(6, dtype=np.float32)[0])
    mesh = Mesh(vertices=v, faces=f, height_m=1.83, canonical_height=1.2, facing_away=True)
    cfg = TextureConfig(texture_size=128, renderer="torch")
    out = texture_mesh(mesh, views, cfg, StageContext())
    assert (out.height_m, out.canonical_height, out.facing_away) == (1.83, 1.2, True)
    front = out.vertices[:, 2] > 0.55  # seen squarely by the front view only
    red = out.vertex_colors[front].astype(float).mean(0)
    assert red[0] > 180 and red[2] < 60, red  # the photo's red, not the front view's blue
    cfg.front_from_photo = False
    blue = texture_mesh(mesh, views, cfg, StageContext()).vertex_colors
    assert blue[front].astype(float).mean(0)[2] > 150  # now the front view's own blue
