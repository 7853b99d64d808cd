"""Mesh checks and clean-up of the carving output: each defect made on purpose is found, and fixed."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from human3d.carve import meshing as M


def _sphere(subdivisions: int = 3, center=(0.0, 0.0, 0.0), radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    return M.icosphere(subdivisions, radius, center)


def _join(*meshes: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    vs, fs, n = [], [], 0
    for v, f in meshes:
        vs.append(v)
        fs.append(f + n)
        n += len(v)
    return np.concatenate(vs), np.concatenate(fs)


def _pinched() -> tuple[np.ndarray, np.ndarray]:
    """Two spheres touching at one shared vertex (edge-manifold, not vertex-manifold)."""
    a, fa = _sphere(2)
    b, fb = _sphere(2)
    top = int(np.argmax(a[:, 1]))
    bottom = int(np.argmin(b[:, 1]))
    b = b + (a[top] - b[bottom])
    v = np.concatenate([a, np.delete(b, bottom, 0)])
    remap = np.arange(len(b))
    remap[bottom] = -1
    remap[bottom + 1:] -= 1
    fb = np.where(fb == bottom, top - len(a), remap[fb]) + len(a)
    return v.astype(np.float32), np.concatenate([fa, fb])


def test_a_clean_sphere_passes_every_check():
    c = M.check_mesh(*_sphere())
    assert c.clean and c.watertight and c.components == 1 and c.volume > 0, c


def test_defects_are_found():
    v, f = _sphere()
    assert M.check_mesh(v, f[:, ::-1]).volume < 0
    assert M.check_mesh(v, f[1:]).bad_edges == 3  # a hole
    assert M.check_mesh(*_join((v, f), _sphere(1, (3, 0, 0), 0.1))).components == 2
    assert M.check_mesh(*_pinched()).non_manifold_vertices == 1
    flat = v.copy()
    flat[f[0, 0]] = 0.5 * (flat[f[0, 1]] + flat[f[0, 2]])  # on the opposite edge: zero area
    assert M.check_mesh(flat, f).degenerate_faces >= 1


def test_self_intersections_agree_with_open3d_pairwise_test():
    """Two interpenetrating spheres in one mesh: the ray-cast test marks the same faces as Open3D's pairwise
    (quadratic) test on a small mesh."""
    o3d = pytest.importorskip("open3d")
    v, f = _join(_sphere(2), _sphere(2, (0.9, 0.2, 0.1)))
    ours = M.self_intersecting_faces(v, f)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v.astype(np.float64)),
                                     o3d.utility.Vector3iVector(f.astype(np.int32)))
    pairs = np.asarray(mesh.get_self_intersecting_triangles())
    reference = np.zeros(len(f), bool)
    reference[pairs.reshape(-1)] = True
    assert reference.sum() > 10
    assert (ours == reference).mean() > 0.99, (ours.sum(), reference.sum())
    assert M.self_intersecting_faces(*_sphere(3)).sum() == 0


def test_clean_mesh_removes_debris_splits_pinches_and_orients_outward():
    v, f = _join(_pinched(), _sphere(1, (0.0, -3.0, 0.0), 0.05))  # plus a speck of debris
    v2, f2, done = M.clean_mesh(v, f[:, ::-1].copy())  # and inside-out
    c = M.check_mesh(v2, f2)
    # the pinch was all that joined the two spheres: one of them goes with the debris
    assert done["components_removed"] == 2 and done["pinched_vertices_split"] == 1 and done["winding_flipped"] == 1
    assert len(f2) == len(f) // 2 - 40
    assert c.components == 1 and c.non_manifold_vertices == 0 and c.watertight and c.volume > 0, c


def test_clean_mesh_smooths_a_fold_away():
    """A sphere with a patch pushed through the opposite side: the self-intersection is resolved locally."""
    m = trimesh.creation.icosphere(4)
    v = np.asarray(m.vertices, np.float32)
    f = np.asarray(m.faces, np.int64)
    dent = v[:, 2] > 0.97
    v[dent] = v[dent] * np.array([1.0, 1.0, -1.05], np.float32)  # through the back
    before = M.self_intersecting_faces(v, f).sum()
    v2, f2, done = M.clean_mesh(v, f)
    assert before > 0 and done["self_intersecting_faces_before"] == before
    assert done["self_intersecting_faces_after"] == M.self_intersecting_faces(v2, f2).sum() == 0
    moved = np.linalg.norm(v2 - v, axis=1) > 1e-6
    assert moved.mean() < 0.25  # local: most of the sphere is untouched


def test_clean_mesh_collapses_degenerate_faces():
    v, f = _sphere(3)
    v = v.copy()
    v[f[0, 0]] = 0.5 * (v[f[0, 1]] + v[f[0, 2]])  # a cap: zero area
    v[f[50, 1]] = v[f[50, 2]] + 1e-7  # a needle
    assert M.check_mesh(v, f).degenerate_faces >= 2
    v2, f2, done = M.clean_mesh(v, f)
    c = M.check_mesh(v2, f2)
    assert done["degenerate_faces_collapsed"] >= 2 and c.clean, c
