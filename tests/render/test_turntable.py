from __future__ import annotations

import dataclasses

import numpy as np

from human3d.render.turntable import render_views
from tests.meshdata import textured_sphere


def _grey(**changes):
    m = textured_sphere(subdivisions=3)
    return dataclasses.replace(m, texture=None, uvs=None, vertex_colors=None, **changes)


def test_render_shades_with_the_meshs_own_normals():
    computed = next(render_views(_grey(), [0.0], 64)).astype(float)
    toward_camera = _grey(normals=np.tile(np.float32([0, 0, 1]), (len(_grey().vertices), 1)))
    flat = next(render_views(toward_camera, [0.0], 64)).astype(float)
    inside = flat[flat[..., 0] < 250]  # the sphere's pixels (the background is white)
    assert inside.std() < 1.0 and inside.mean() > 0.7 * 255  # every pixel lit head-on: one grey level
    assert computed[computed[..., 0] < 250].std() > 10  # smooth sphere normals: darker toward the rim


def test_render_applies_a_normal_map():
    m = textured_sphere(subdivisions=3)
    tilted = np.zeros((16, 16, 3), np.uint8)
    tilted[:] = (255, 128, 128)  # every normal turned 90 degrees toward the tangent
    plain = next(render_views(dataclasses.replace(m, texture=None, vertex_colors=None), [0.0], 64)).astype(float)
    mapped = next(render_views(dataclasses.replace(m, texture=None, vertex_colors=None, normal_texture=tilted),
                               [0.0], 64)).astype(float)
    assert np.abs(plain - mapped).mean() > 5
    flat = np.full((16, 16, 3), (128, 128, 255), np.uint8)  # the identity map changes nothing
    same = next(render_views(dataclasses.replace(m, texture=None, vertex_colors=None, normal_texture=flat),
                             [0.0], 64)).astype(float)
    assert np.abs(plain - same).max() <= 3
