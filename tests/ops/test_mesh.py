"""human3d.ops.mesh against naive per-face / per-vertex loops on tiny meshes (numpy and torch alike)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from human3d.errors import UsageError
from human3d.ops import mesh as ops


def _tiny(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A jittered icosphere (42 vertices, 80 faces) plus one unreferenced vertex."""
    s = trimesh.creation.icosphere(subdivisions=1)
    rng = np.random.default_rng(seed)
    v = np.asarray(s.vertices) * (1.0 + 0.2 * rng.random((len(s.vertices), 1)))
    return np.vstack([v, [[5.0, 5.0, 5.0]]]), np.asarray(s.faces, np.int64)


def _naive_edges(faces: np.ndarray) -> list[tuple[int, int]]:
    out = set()
    for f in faces:
        for k in range(3):
            a, b = int(f[k]), int(f[(k + 1) % 3])
            out.add((min(a, b), max(a, b)))
    return sorted(out)


def _naive_neighbours(faces: np.ndarray, n: int) -> list[set[int]]:
    nb: list[set[int]] = [set() for _ in range(n)]
    for a, b in _naive_edges(faces):
        nb[a].add(b)
        nb[b].add(a)
    return nb


@pytest.mark.parametrize("as_tensor", [False, True])
def test_unique_edges_and_the_edge_of_each_side(as_tensor):
    _, f = _tiny()
    faces = torch.as_tensor(f) if as_tensor else f
    edges, side_edge = ops.unique_edges(faces)
    edges, side_edge = np.asarray(edges), np.asarray(side_edge)
    assert [tuple(e) for e in edges.tolist()] == _naive_edges(f)
    sides = np.asarray(ops.face_sides(faces))
    for s, (a, b) in enumerate(sides):
        assert (a, b) == (f[s // 3, s % 3], f[s // 3, (s % 3 + 1) % 3])
        assert tuple(edges[side_edge[s]]) == (min(a, b), max(a, b))


def test_edge_faces_lists_the_two_faces_of_every_edge():
    _, f = _tiny()
    side_edge, edge_faces = ops.edge_faces(torch.as_tensor(f))
    edges, _ = ops.unique_edges(f)
    for e, (a, b) in enumerate(edges):
        naive = [i for i, face in enumerate(f) if a in face and b in face]
        assert sorted(edge_faces[e].tolist()) == naive
    for i in range(len(f)):
        for k in range(3):
            a, b = f[i, k], f[i, (k + 1) % 3]
            assert tuple(edges[side_edge[i, k]]) == (min(a, b), max(a, b))


@pytest.mark.parametrize("as_tensor", [False, True])
def test_area_weighted_vertex_normals(as_tensor):
    v, f = _tiny(1)
    naive = np.zeros_like(v)
    for face in f:
        a, b, c = v[face]
        for i in face:
            naive[i] += np.cross(b - a, c - a)  # twice the area times the unit normal
    length = np.linalg.norm(naive, axis=1, keepdims=True)
    naive = np.where(length > 0, naive / np.maximum(length, 1e-30), 0.0)
    got = ops.vertex_normals(torch.as_tensor(v), torch.as_tensor(f)) if as_tensor else ops.vertex_normals(v, f)
    np.testing.assert_allclose(np.asarray(got), naive, atol=1e-6)
    assert np.allclose(np.asarray(got)[-1], 0.0)  # the unreferenced vertex


def test_angle_weighted_vertex_normals():
    v, f = _tiny(2)
    naive = np.zeros_like(v)
    for face in f:
        p = v[face]
        n = np.cross(p[1] - p[0], p[2] - p[0])
        n /= np.linalg.norm(n)
        for k in range(3):
            a, b = p[(k + 1) % 3] - p[k], p[(k + 2) % 3] - p[k]
            naive[face[k]] += n * math.acos(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
    naive[:-1] /= np.linalg.norm(naive[:-1], axis=1, keepdims=True)
    naive[-1] = (0.0, 1.0, 0.0)  # no face: up
    np.testing.assert_allclose(ops.vertex_normals(v, f, weighting="angle"), naive, atol=1e-6)


def test_angle_weighting_ignores_how_a_face_is_triangulated():
    box = trimesh.creation.box()
    n = ops.vertex_normals(box.vertices, box.faces, weighting="angle")
    # every corner touches one or two triangles of each square face; the angle weights still sum to 90 deg per face
    np.testing.assert_allclose(n, np.sign(box.vertices) / np.sqrt(3.0), atol=1e-6)


def test_face_areas_normals():
    v, f = _tiny(3)
    areas, normals = ops.face_areas_normals(v, f)
    for i, face in enumerate(f):
        c = np.cross(v[face[1]] - v[face[0]], v[face[2]] - v[face[0]])
        assert areas[i] == pytest.approx(0.5 * np.linalg.norm(c))
        np.testing.assert_allclose(normals[i], c / np.linalg.norm(c), atol=1e-12)


def test_uniform_laplacian_and_mean_edge_length():
    v, f = _tiny(4)
    nb = _naive_neighbours(f, len(v))
    vt, ft = torch.as_tensor(v), torch.as_tensor(f)
    lap = ops.uniform_laplacian(vt, ft).numpy()
    mel = ops.mean_edge_length(vt, ft).numpy()
    for i, ring in enumerate(nb):
        if not ring:
            np.testing.assert_allclose(lap[i], v[i])  # an isolated vertex keeps itself
            assert mel[i] == 0.0
            continue
        np.testing.assert_allclose(lap[i], v[i] - v[sorted(ring)].mean(0), atol=1e-12)
        assert mel[i] == pytest.approx(np.mean([np.linalg.norm(v[i] - v[j]) for j in ring]))


def test_inverse_length_laplacian_and_adjacency():
    v, f = _tiny(5)
    n = len(v)
    lap = ops.inverse_length_laplacian(v, f).toarray()
    adj = ops.adjacency_matrix(f, n).toarray()
    naive = np.zeros((n, n))
    for a, b in _naive_edges(f):
        w = 1.0 / np.linalg.norm(v[a] - v[b])
        naive[a, b] = naive[b, a] = -w
        naive[a, a] += w
        naive[b, b] += w
        assert adj[a, b] == adj[b, a] == 1.0
    np.testing.assert_allclose(lap, naive, atol=1e-12)
    assert adj.sum() == 2 * len(_naive_edges(f))


def test_sample_surface_is_uniform_by_area_and_on_the_surface():
    # two unit-normal squares side by side, the right one 3x the area: ~3/4 of the points land on it
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0], [4, 0, 0], [4, 1, 0], [1, 1, 0]], float)
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    p, n = ops.sample_surface(v, f, 20_000, seed=1)
    assert np.allclose(p[:, 2], 0.0) and np.allclose(n, [0, 0, 1])
    assert (p[:, 0] > 1).mean() == pytest.approx(0.75, abs=0.01)
    np.testing.assert_array_equal(ops.sample_surface(v, f, 100, seed=3)[0], ops.sample_surface(v, f, 100, seed=3)[0])
    with pytest.raises(UsageError):
        ops.sample_surface(v, np.array([[0, 0, 0]]), 10)
    with pytest.raises(UsageError):
        ops.sample_surface(v, f, 0)


def _naive_same_position(v: np.ndarray) -> list[list[bool]]:
    return [[bool(np.all(a == b)) for b in v] for a in v]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weld_merges_exactly_the_copies_of_a_position(dtype):
    v, f = _tiny()
    rng = np.random.default_rng(3)
    # a UV seam: 12 vertices split into copies that some faces use instead, three of them twice; -0.0 beside 0.0
    copied = rng.choice(len(v) - 1, 12, replace=False)
    v = np.vstack([v, v[copied], v[copied[:3]], [[0.0, 7.0, 0.0], [-0.0, 7.0, 0.0]]]).astype(dtype)
    f = f.copy()
    for k, c in enumerate(copied):
        users = np.nonzero(f == c)
        f[users[0][::2], users[1][::2]] = len(v) - 17 + k
    # ...and a vertex a step of float precision away from another one: a different position, kept apart
    v = np.vstack([v, np.nextafter(v[:1], np.asarray(np.inf, dtype))])
    welded, welded_faces, index = ops.weld(v, f)
    same = _naive_same_position(v)
    for i in range(len(v)):
        for j in range(len(v)):
            assert (index[i] == index[j]) == same[i][j], (i, j)
    assert len(welded) == len({tuple(row) for row in v.tolist()}) == len(v) - 12 - 3 - 1
    assert welded.dtype == dtype and np.array_equal(welded[index], v)
    assert np.array_equal(welded[welded_faces], v[f]) and welded_faces.shape == f.shape


def test_directed_edges_region_growth_and_neighbour_mean_against_loops():
    v, f = _tiny(4)
    n = len(v)
    src, dst = ops.directed_edges(f)
    nb = _naive_neighbours(f, n)
    assert {(int(a), int(b)) for a, b in zip(src, dst)} == {(a, b) for a in range(n) for b in nb[a]}
    region = np.zeros(n, bool)
    region[0] = True
    want = {0}
    for rings in range(1, 4):
        want |= {b for a in want for b in nb[a]}
        assert set(np.nonzero(ops.grow_region(region, src, dst, rings))[0]) == want
    mean = ops.neighbour_mean(src, dst, n) @ v
    for i in range(n):  # on a closed manifold every edge is two face sides: a plain mean of the neighbours
        expect = v[sorted(nb[i])].mean(0) if nb[i] else np.zeros(3)
        np.testing.assert_allclose(mean[i], expect, atol=1e-12)
