"""Projection charts: every face keeps its orientation in its chart and no two faces share a texel of the packed
atlas, even where one connected surface folds over itself in its projection."""

from __future__ import annotations

import numpy as np

from human3d.carve.meshing import icosphere
from human3d.texture.bake import unwrap
from human3d.texture.charts import chart_folds, projection_charts


def _ramp(turns: float = 1.5, n_theta: int = 90, n_r: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A spiral ramp around +y (normals within ~20 degrees of +y) that covers its own projection 1.5 times."""
    theta = np.linspace(0.0, 2 * np.pi * turns, n_theta)
    r = np.linspace(0.3, 1.0, n_r)
    t, rr = np.meshgrid(theta, r, indexing="ij")
    v = np.stack([rr * np.cos(t), 0.06 * t, -rr * np.sin(t)], -1).reshape(-1, 3)
    idx = np.arange(n_theta * n_r).reshape(n_theta, n_r)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    f = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    up = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])[:, 1] > 0
    f[~up] = f[~up][:, ::-1]
    return v.astype(np.float32), f.astype(np.int64)


def _texel_coverage(uv: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """(size, size) how many UV triangles cover each texel centre (brute force, one triangle at a time)."""
    count = np.zeros((size, size), np.int32)
    px = uv * size - 0.5
    for tri in px[faces]:
        lo = np.maximum(np.floor(tri.min(0)).astype(int), 0)
        hi = np.minimum(np.ceil(tri.max(0)).astype(int), size - 1)
        ys, xs = np.mgrid[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
        p = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float64)
        e = [np.cross(tri[(k + 1) % 3] - tri[k], p - tri[k]) for k in range(3)]
        inside = ((e[0] > 0) & (e[1] > 0) & (e[2] > 0)) | ((e[0] < 0) & (e[1] < 0) & (e[2] < 0))
        count[ys.reshape(-1)[inside], xs.reshape(-1)[inside]] += 1
    return count


def _uv_area(uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    t = uv[faces]
    return np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])


def test_a_ramp_that_folds_in_projection_is_split_until_it_does_not():
    v, f = _ramp()
    chart, corner_uv = projection_charts(v, f)
    assert chart_folds(f, corner_uv)  # the ramp as one chart would overlap itself
    assert chart.max() >= 1
    for c in range(int(chart.max()) + 1):
        assert not chart_folds(f[chart == c], corner_uv[chart == c])
    vmap, faces, uv = unwrap(v, f, 256, padding=2)
    assert (_uv_area(corner_uv.reshape(-1, 2), np.arange(3 * len(f)).reshape(-1, 3)) > 0).all()  # orientation
    assert (np.abs(_uv_area(uv, faces)) > 0).all()  # packing may mirror a chart (xatlas swaps u and v), never fold it
    assert _texel_coverage(uv, faces, 256).max() == 1
    np.testing.assert_array_equal(vmap[faces], f)  # same triangles, same corners


def test_sphere_unwrap_is_one_to_one_with_few_charts():
    v, f = icosphere(3, 1.0)
    chart, corner_uv = projection_charts(v, f)
    assert 6 <= chart.max() + 1 <= 40
    assert not chart_folds(f[chart == 0], corner_uv[chart == 0])
    vmap, faces, uv = unwrap(v, f, 512, padding=2)
    assert (np.abs(_uv_area(uv, faces)) > 0).all()
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    assert _texel_coverage(uv, faces, 512).max() == 1
    assert np.allclose(np.sort(v[vmap[faces]].reshape(-1)), np.sort(v[f].reshape(-1)))
