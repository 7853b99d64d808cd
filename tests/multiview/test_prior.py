"""The embedded multi-view backend, on a generated body and a generated (wider, 'clothed') silhouette."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from human3d.config import MultiViewConfig
from human3d.context import StageContext
from human3d.errors import NoPersonFoundError
from human3d.multiview.prior import generate_prior_views, proxy_mesh, sheets_to_mesh
from human3d.types import BodyFit, Framed

R = 128


def _body(radius=0.3) -> BodyFit:
    m = trimesh.creation.capsule(height=1.2, radius=radius)
    m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # long axis along y
    return BodyFit(vertices=np.asarray(m.vertices, np.float32), faces=np.asarray(m.faces),
                   joints=np.zeros((1, 3), np.float32))


def _framed(half_width=0.45) -> Framed:
    yy, xx = np.mgrid[0:R, 0:R]
    x, y = 2 * (xx + 0.5) / R - 1, 1 - 2 * (yy + 0.5) / R
    sil = (np.abs(x) < half_width) & (np.abs(y) < 0.85) & ~((x > 0.2) & (y > 0.5))  # asymmetric: a notch
    rgb = np.full((R, R, 3), 255, np.uint8)
    rgb[sil] = (200, 50, 20)
    return Framed(rgb=rgb, mask=sil, face_rgb=rgb, face_mask=sil)


def test_views_follow_the_silhouette_front_and_mirrored_back():
    fr = _framed()
    mv = generate_prior_views(fr, _body(), MultiViewConfig(resolution=R), StageContext())
    assert mv.normals.shape == (6, R, R, 3) and mv.masks.shape == (6, R, R) and mv.backend == "prior"
    np.testing.assert_array_equal(mv.masks[0], fr.mask)
    np.testing.assert_array_equal(mv.masks[3], fr.mask[:, ::-1])
    n = mv.normals[mv.masks]
    assert np.abs(np.linalg.norm(n, axis=-1) - 1).max() < 1e-3
    assert (mv.normals[~mv.masks] == 0).all()
    # front normals face the front camera (+z), the 90-degree view sees normals toward +x, the back toward -z
    assert mv.normals[0][mv.masks[0]].mean(0)[2] > 0.6
    assert mv.normals[2][mv.masks[2]].mean(0)[0] > 0.6
    assert mv.normals[3][mv.masks[3]].mean(0)[2] < -0.6
    # a body with no part labels (no skinning weights to take them from): colours only from the front view
    np.testing.assert_array_equal(mv.color_weights, [1, 0, 0, 0, 0, 0])
    assert np.allclose(mv.colors[0][fr.mask], np.array([200, 50, 20]) / 255, atol=0.02)


def test_side_views_take_their_depth_from_the_body():
    # tight clothes (the silhouette a little wider than the body): the side-view (90 degrees) silhouette grows with
    # the body's thickness (loose ones, a silhouette much wider than the body, take their depth from the silhouette)
    thin, thick = (generate_prior_views(_framed(r + 0.03), _body(r), MultiViewConfig(resolution=R), StageContext())
                   for r in (0.2, 0.4))
    assert thick.masks[2].sum() > 1.3 * thin.masks[2].sum()


def test_proxy_mesh_is_consistently_oriented_and_closed():
    v, f, sil = proxy_mesh(_framed(), _body(), R)
    tm = trimesh.Trimesh(v, f, process=False)
    assert tm.is_winding_consistent and tm.volume > 0
    from human3d.carve.meshing import is_closed_manifold

    assert is_closed_manifold(v, f)  # every edge has two faces running opposite ways (pinches are filled)


def test_sheets_grid_orientation_on_a_flat_square():
    zf = np.full((8, 8), np.nan)
    zf[2:6, 2:6] = 0.1
    v, f = sheets_to_mesh(zf, -zf, step=1)
    tri = v[f]
    nz = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])[:, 2]
    top = tri[:, :, 2].mean(1) > 0.05
    assert (nz[top] > 0).all() and (nz[tri[:, :, 2].mean(1) < -0.05] < 0).all()


def test_a_body_that_misses_the_silhouette_is_an_error():
    body = _body()
    body.vertices = body.vertices + np.array([5.0, 0, 0], np.float32)  # outside the canvas
    with pytest.raises(NoPersonFoundError):
        generate_prior_views(_framed(), body, MultiViewConfig(resolution=R), StageContext())


def test_an_outline_pinched_at_a_corner_still_gives_a_closed_manifold_proxy():
    from human3d.carve.meshing import check_mesh, is_closed_manifold

    zf = np.full((16, 16), np.nan)
    zf[2:8, 2:8] = 0.1
    zf[7:13, 7:13] = 0.1  # two squares of grid points sharing the corner point (7, 7): their cells touch there only
    zf[2:5, 2:13] = 0.1
    zf[2:13, 10:13] = 0.1  # ... and a band joining them elsewhere, so the whole is one piece
    v, f = sheets_to_mesh(zf, -zf, step=1)
    assert is_closed_manifold(v, f)
    check = check_mesh(v, f, self_intersections=False)
    assert check.components == 1 and check.non_manifold_vertices == 0 and check.volume > 0
