from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from human3d.cameras import body_cameras
from human3d.io.meshes import sample_texture
from human3d.render import get_rasterizer
from human3d.texture import ColorSource, bake_texture, depth_maps, fuse_colors, propagate_colors
from human3d.texture.bake import dilate, rasterize_uv


def colour_of(p: np.ndarray) -> np.ndarray:
    """A smooth, view-independent colour field: what every view must agree on."""
    return np.clip(np.stack([0.5 + 0.4 * p[:, 0], 0.5 + 0.4 * p[:, 1], 0.5 + 0.4 * p[:, 2]], -1), 0, 1)


def _scene(resolution=96):
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    v, f = np.asarray(s.vertices, np.float32), np.asarray(s.faces, np.int64)
    cams = body_cameras(resolution)
    raster = get_rasterizer("torch")
    frags = raster.rasterize(torch.as_tensor(v), torch.as_tensor(f), cams)
    pos = raster.interpolate(torch.as_tensor(v), frags).numpy()  # (B, R, R, 3) surface positions
    mask = frags.mask.numpy()
    sources = []
    for i, cam in enumerate(cams):
        img = colour_of(pos[i].reshape(-1, 3)).reshape(resolution, resolution, 3).astype(np.float32)
        img[~mask[i]] = 1.0  # white background must not leak in
        sources.append(ColorSource(cam, img, mask[i], 1.0))
    return v, f, sources


def test_fused_vertex_colours_match_the_colour_field():
    v, f, sources = _scene()
    n = v / np.linalg.norm(v, axis=1, keepdims=True)
    depths = depth_maps(v, f, [s.camera for s in sources])
    col, w = fuse_colors(v, n, sources, depths)
    # six views around the equator see every vertex except the poles, whose normals are at 90 degrees to all views
    assert (w[np.abs(v[:, 1]) < 0.79] > 0).all() and (w[np.abs(v[:, 1]) > 0.799] == 0).all()
    err = np.abs(col - colour_of(v))[w > 0].mean()
    assert err < 0.02, err


def test_hidden_points_get_no_weight_from_a_view():
    v, f, sources = _scene()
    n = v / np.linalg.norm(v, axis=1, keepdims=True)
    front = sources[0]
    depths = depth_maps(v, f, [front.camera])
    # a point inside the sphere facing the camera is hidden by the front surface
    _, w = fuse_colors(np.array([[0, 0, 0.3]], np.float32), np.array([[0, 0, 1]], np.float32), [front], depths)
    assert w[0] == 0
    _, w = fuse_colors(v, n, [front], depths)
    assert (w[v[:, 2] < -0.1] == 0).all() and (w[v[:, 2] > 0.3] > 0).all()


def test_baked_texture_reproduces_colours_at_the_vertices():
    v, f, sources = _scene()
    depths = depth_maps(v, f, [s.camera for s in sources])
    v2, f2, uv, tex, vcol = bake_texture(v, f, sources, depths, size=256)
    assert tex.shape == (256, 256, 3) and tex.dtype == np.uint8 and len(uv) == len(v2) and f2.max() < len(v2)
    sampled = sample_texture(tex, uv).astype(np.float32) / 255
    err = np.abs(sampled - colour_of(v2)).mean()
    assert err < 0.04, err
    assert np.abs(vcol / 255.0 - colour_of(v2)).mean() < 0.03


def test_unseen_side_is_filled_from_the_seen_side_never_black():
    v, f, sources = _scene()
    front_only = [sources[0]]
    depths = depth_maps(v, f, [s.camera for s in front_only])
    v2, f2, uv, tex, vcol = bake_texture(v, f, front_only, depths, size=128)
    back = v2[:, 2] < -0.5
    assert back.any()
    assert vcol[back].min() > 40  # plausible colours propagated from the front, not black
    seen = colour_of(v)[v[:, 2] > 0].mean(0)
    assert np.abs(vcol[back] / 255.0 - seen).mean() < 0.25


def test_propagation_matches_a_naive_breadth_first_fill():
    rng = np.random.default_rng(0)
    s = trimesh.creation.icosphere(subdivisions=1)
    f = np.asarray(s.faces)
    colors = rng.random((len(s.vertices), 3)).astype(np.float32)
    known = rng.random(len(colors)) < 0.2
    out = propagate_colors(colors, known, f)
    # naive: ring by ring, each new vertex = mean of its already-known neighbours
    nbrs = [set() for _ in colors]
    for a, b, c in f:
        nbrs[a] |= {b, c}
        nbrs[b] |= {a, c}
        nbrs[c] |= {a, b}
    ref, k = colors.astype(np.float64).copy(), known.copy()
    while not k.all():
        new = {i: np.mean([ref[j] for j in nbrs[i] if k[j]], 0) for i in range(len(ref))
               if not k[i] and any(k[j] for j in nbrs[i])}
        for i, c in new.items():
            ref[i] = c
            k[i] = True
    np.testing.assert_allclose(out, ref, atol=1e-6)
    np.testing.assert_array_equal(out[known], colors[known])


def test_uv_raster_texel_convention_and_dilation():
    uvs = np.array([[0, 0], [1, 0], [0, 1]], np.float32)  # lower-left half of the texture
    tri, bary = rasterize_uv(uvs, np.array([[0, 1, 2]]), 8)
    assert tri[7, 0] == 0 and tri[0, 7] == -1  # bottom-left texel covered, top-right not
    np.testing.assert_allclose(bary[tri >= 0].sum(-1), 1.0, atol=1e-5)
    tex = np.zeros((8, 8, 3), np.float32)
    tex[tri >= 0] = 1.0
    out = dilate(tex, tri >= 0)
    assert (out == 1.0).all()


@pytest.mark.parametrize("renderer", ["torch", "open3d"])
def test_depth_maps_agree_across_backends(renderer):
    v, f, sources = _scene(64)
    d = depth_maps(v, f, [sources[0].camera], renderer)[0]
    ref = depth_maps(v, f, [sources[0].camera], "torch")[0]
    both = np.isfinite(d) & np.isfinite(ref)
    assert (np.isfinite(d) == np.isfinite(ref)).mean() > 0.995
    np.testing.assert_allclose(d[both], ref[both], atol=1e-4)
