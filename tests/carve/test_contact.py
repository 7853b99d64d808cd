"""Interpenetrating parts of one carved mesh are pressed apart, not smoothed flat (human3d.carve.contact)."""

from __future__ import annotations

import numpy as np
import pytest

from human3d.carve import meshing as M

pytest.importorskip("open3d")

SLAB = np.array([0.3, 0.05, 0.12])  # half extents of a box centred at the origin
RADIUS = 0.02  # of the finger: two marching-cubes cells, as thin as a finger in a fast-preset carve


def _box(p: np.ndarray, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(p - centre) - half
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


def finger_on_slab(press: float, spacing: float = 0.01) -> tuple[np.ndarray, np.ndarray, float]:
    """One closed mesh, like a hand resting on a knee: a slab with a post at one end, and from the top of the post a
    finger (a capsule) lying clear above the slab; then the finger is lowered until it goes ``press`` radii into the
    slab (ramped near the post). Returns vertices, faces and the height of the finger's top after lowering."""
    lo, hi = np.array([-0.36, -0.1, -0.18]), np.array([0.42, 0.2, 0.18])
    p = np.stack(np.meshgrid(*[np.arange(lo[i], hi[i] + spacing, spacing) for i in range(3)], indexing="ij"), -1)
    axis_y = SLAB[1] + RADIUS + 2.5 * spacing
    post = _box(p, np.array([0.32, 0.5 * (axis_y - SLAB[1]), 0.0]),
                np.array([0.04, 0.5 * (axis_y + SLAB[1]) + RADIUS, 0.04]))
    a, b = np.array([0.32, axis_y, 0.0]), np.array([-0.2, axis_y, 0.0])
    t = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
    finger = np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1) - RADIUS
    v, f = M.marching_cubes_surface(np.minimum(np.minimum(_box(p, np.zeros(3), SLAB), post), finger), lo, spacing)
    # jittered: a carved surface has no flat, grid-aligned runs of faces (whose grazing contacts are ambiguous)
    v = v.astype(np.float64) + np.random.default_rng(0).normal(0.0, 0.05 * spacing, v.shape)
    drop = axis_y - RADIUS - SLAB[1] + press * RADIUS
    above = v[:, 1] > SLAB[1] + 0.5 * spacing
    v[:, 1] -= np.where(above, np.clip((0.26 - v[:, 0]) / 0.06, 0, 1) * drop, 0.0)
    return v.astype(np.float32), f, axis_y - drop + RADIUS


def _section(v: np.ndarray, x: float = -0.05) -> np.ndarray:
    """Heights of the vertices above the slab's middle in a thin slice across the finger at ``x``."""
    s = v[(np.abs(v[:, 0] - x) < 0.012) & (np.abs(v[:, 2]) < 0.005)]
    return s[s[:, 1] > 0, 1]


def test_a_finger_pressed_into_a_slab_is_pressed_back_out_and_keeps_its_shape():
    v, f, top = finger_on_slab(press=1.0)  # half the finger's thickness inside the slab
    assert M.check_mesh(v, f).components == 1 and M.self_intersecting_faces(v, f).sum() > 100
    v2, f2, done = M.clean_mesh(v, f)
    check = M.check_mesh(v2, f2)
    assert check.clean, check  # one component, manifold, watertight, outward, nothing crossing
    assert done["self_intersecting_faces_after"] == 0 and done["vertices_pressed"] > 0
    assert len(f2) == len(f) and done["crumples_filled"] == 0  # a press: no face added or removed
    # The finger is still there above the contact (smoothing alone squashes it flat into the slab).
    section = _section(v2)
    assert section.max() > top - 0.25 * RADIUS, (section.max(), top)
    # The two sides met between them: the slab under the finger gave way by less than the finger's radius.
    assert section.min() > SLAB[1] - RADIUS
    # Local: nothing moves away from the finger's footprint.
    moved = np.linalg.norm(v2.astype(np.float64) - v, axis=1) > 1e-7
    assert not moved[np.abs(v[:, 2]) > 4 * RADIUS].any()
    assert moved.mean() < 0.25  # the finger's underside and the slab under it (smoothing alone moves 31%)


def test_a_mesh_without_intersections_is_left_as_it_is():
    v, f, _ = finger_on_slab(press=-0.5)  # the finger rests just above the slab
    assert M.self_intersecting_faces(v, f).sum() == 0
    v2, f2, done = M.clean_mesh(v, f)
    assert np.array_equal(v2, v) and np.array_equal(f2, f)
    assert done["vertices_pressed"] == 0 and done["crumples_filled"] == 0 and done["self_intersecting_faces_after"] == 0


def test_a_crumpled_patch_is_replaced_by_a_fan_over_its_boundary():
    """A sphere's cap crushed into its base plane with its vertices shuffled: a zero-thickness patch folded through
    itself, as smoothing leaves a thin part. The fill replaces exactly that patch and leaves a clean mesh."""
    from human3d.carve import contact as C

    v, f = M.icosphere(4)
    v = v.astype(np.float64)
    rng = np.random.default_rng(0)
    cap = v[:, 2] > 0.93
    v[cap, :2] = v[cap, :2][rng.permutation(cap.sum())]
    v[cap, 2] = 0.93 + rng.normal(0.0, 0.002, cap.sum())
    inter = M.self_intersecting_faces(v, f)
    assert inter.sum() > 100 and C.folded_vertices(v, f)[cap].mean() > 0.5
    v2, f2, filled = C.fill_crumples(v, f, inter)
    assert filled == 1 and M.check_mesh(v2, f2).clean
    assert len(v) - len(v2) >= cap.sum() - 1  # the cap's vertices gave way to one centre
    # the faces away from the cap are all still there, at the same places
    far = v[f][(v[f][:, :, 2] < 0.8).all(1)]
    now = {tuple(t) for t in np.round(v2[f2], 9).reshape(-1, 9)}
    assert all(tuple(t) in now for t in np.round(far, 9).reshape(-1, 9))
