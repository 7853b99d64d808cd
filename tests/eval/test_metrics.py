"""Metrics against known answers (identical meshes, offset spheres, a scaled copy) and against independent
computations (open3d distances, trimesh sampling) on random meshes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from human3d.errors import UsageError
from human3d.eval.metrics import (
    EvalSettings,
    appearance_scores,
    evaluate,
    geometry_scores,
    point_scores,
    sample_surface,
)
from human3d.types import TexturedMesh
from tests.eval.shapes import sphere

N = 20_000


def _geo_only(**kw) -> EvalSettings:
    return EvalSettings(n_points=N, appearance=False, **kw)


def offset_sphere_expectations(r: float, d: float, tau: float) -> tuple[float, float]:
    """Exact one-sided mean distance from a sphere of radius r to the same sphere moved by d, and the fraction of
    its points within tau of the other: |p - c'| = sqrt(r^2 + d^2 - 2 r d t), t = cos(angle) uniform on [-1, 1]
    (Archimedes), integrated numerically."""
    t = np.linspace(-1.0, 1.0, 2_000_001)
    dist = np.abs(np.sqrt(r * r + d * d - 2 * r * d * t) - r)
    return float(dist.mean()), float((dist <= tau).mean())


def test_identical_meshes_score_perfectly() -> None:
    m = sphere(color=(200, 100, 50))
    r = evaluate(m, m, EvalSettings(n_points=N, resolution=64))
    assert r.geometry.chamfer_cm == 0.0
    assert r.geometry.normal_consistency == pytest.approx(1.0, abs=1e-12)
    assert r.geometry.fscore == 100.0
    assert r.appearance is not None
    assert r.appearance.psnr == float("inf") and r.appearance.ssim == pytest.approx(1.0)
    assert r.appearance.lpips is None and any("LPIPS" in n for n in r.appearance.notes)


def test_two_spheres_of_known_offset() -> None:
    radius, d = 0.5, 0.1  # metres; the sphere is 1 m tall, so its own extent is metric
    gt = sphere(radius)
    pred = sphere(radius, centre=(d, 0.0, 0.0))
    r = evaluate(pred, gt, _geo_only(alignment="none", threshold_cm=2.0))
    mean_m, frac = offset_sphere_expectations(radius, d, 0.02)
    # point-to-sample distances exceed point-to-surface ones by a sampling floor of a few millimetres
    assert r.geometry.chamfer_cm == pytest.approx(100 * mean_m, abs=0.25)
    assert r.geometry.accuracy_cm == pytest.approx(r.geometry.completeness_cm, rel=0.05)  # symmetric by construction
    assert r.geometry.fscore == pytest.approx(100 * frac, abs=3.0)
    assert 0.9 < r.geometry.normal_consistency < 0.999
    # a known real height scales every distance: the same spheres as a 2 m tall ground truth double the CD
    r2 = evaluate(pred, gt, _geo_only(alignment="none", threshold_cm=2.0, gt_height_m=2.0))
    assert r2.metric_scale == pytest.approx(2.0)
    assert r2.geometry.chamfer_cm == pytest.approx(2 * r.geometry.chamfer_cm, rel=1e-6)
    # scale + translation alignment removes a pure offset
    r3 = evaluate(pred, gt, _geo_only(alignment="scale"))
    assert r3.geometry.chamfer_cm < 1e-4 and r3.geometry.fscore == 100.0  # float32 vertices


def test_scaled_copy() -> None:
    gt = sphere(0.5)
    pred = dataclasses.replace(gt, vertices=gt.vertices * 1.2 + np.float32([0.0, 0.3, 0.0]))
    none = evaluate(pred, gt, _geo_only(alignment="none"))
    scaled = evaluate(pred, gt, _geo_only(alignment="scale"))
    assert none.geometry.chamfer_cm > 5.0
    assert scaled.geometry.chamfer_cm < 1e-4
    assert scaled.geometry.normal_consistency == pytest.approx(1.0, abs=1e-9)
    m = np.asarray(scaled.transform)
    assert np.allclose(np.diag(m)[:3], 1 / 1.2) and np.allclose(m[:3, 3], [0.0, -0.3 / 1.2, 0.0], atol=1e-6)


def test_icp_recovers_a_small_rotation() -> None:
    import trimesh

    box = trimesh.creation.box(extents=(0.4, 1.6, 0.25))
    v, f = trimesh.remesh.subdivide_to_size(box.vertices, box.faces, 0.05)
    gt = TexturedMesh(vertices=np.asarray(v, np.float32), faces=np.asarray(f, np.int64))
    rot = trimesh.transformations.rotation_matrix(np.radians(6), [0, 1, 0])[:3, :3]
    pred = dataclasses.replace(gt, vertices=(gt.vertices @ rot.T + np.float32([0.05, 0.0, 0.02])).astype(np.float32))
    scale = evaluate(pred, gt, _geo_only(alignment="scale"))
    icp = evaluate(pred, gt, _geo_only(alignment="icp"))
    assert icp.geometry.chamfer_cm < 0.3 < scale.geometry.chamfer_cm
    assert icp.geometry.fscore > 95.0


def test_sampling_is_uniform_by_area() -> None:
    # two triangles with areas 1 and 3: a quarter of the points on the first, every point inside its triangle
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [5, 0, 0], [8, 0, 0], [5, 2, 0]], np.float64)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    p, n = sample_surface(v, f, 40_000, seed=3)
    first = p[:, 0] < 2.5
    assert first.mean() == pytest.approx(0.25, abs=0.01)
    assert np.all(p[first, 0] + p[first, 1] / 2 <= 1 + 1e-9) and np.all(p[:, :2] >= -1e-9)
    assert np.allclose(n, [0, 0, 1])
    # within the first triangle the density is uniform: the half nearer the right angle (area 1/4 of it... by a
    # line x + y/2 = 0.5 cutting off a similar triangle of a quarter of the area) holds a quarter of its points
    small = p[first][:, 0] + p[first][:, 1] / 2 <= 0.5
    assert small.mean() == pytest.approx(0.25, abs=0.015)
    with pytest.raises(UsageError):
        sample_surface(v, np.array([[0, 0, 0]]), 10)


def _random_mesh(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random blob: an icosphere with seeded low-frequency radial bumps, about 1.5 m tall."""
    import trimesh

    rng = np.random.default_rng(seed)
    s = trimesh.creation.icosphere(subdivisions=3)
    v = np.asarray(s.vertices)
    bumps = 1 + 0.2 * np.sin(v @ rng.normal(size=(3, 4)) * 2 + rng.uniform(0, 6, 4)).sum(1) / 4
    v = v * bumps[:, None] * np.array([0.4, 0.75, 0.3]) + rng.normal(0, 0.02, 3)
    return v, np.asarray(s.faces)


def test_point_scores_match_open3d_distances() -> None:
    import open3d as o3d

    p, pn = sample_surface(*_random_mesh(1), 3000, seed=0)
    q, qn = sample_surface(*_random_mesh(2), 3500, seed=1)
    ours = point_scores(p, pn, q, qn, threshold_cm=1.5)
    pc_p, pc_q = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
    pc_p.points, pc_q.points = o3d.utility.Vector3dVector(p), o3d.utility.Vector3dVector(q)
    d_pq = np.asarray(pc_p.compute_point_cloud_distance(pc_q)) * 100
    d_qp = np.asarray(pc_q.compute_point_cloud_distance(pc_p)) * 100
    assert ours.chamfer_cm == pytest.approx(0.5 * (d_pq.mean() + d_qp.mean()), rel=1e-9)
    prec, rec = (d_pq <= 1.5).mean(), (d_qp <= 1.5).mean()
    assert ours.fscore == pytest.approx(100 * 2 * prec * rec / (prec + rec), rel=1e-9)
    # normal consistency by brute force (a naive loop over all pairs, in blocks)
    def nc(a, an, b, bn):
        total = 0.0
        for i in range(0, len(a), 1000):
            j = np.argmin(((a[i:i + 1000, None] - b[None]) ** 2).sum(-1), 1)
            total += np.abs((an[i:i + 1000] * bn[j]).sum(1)).sum()
        return total / len(a)
    assert ours.normal_consistency == pytest.approx(0.5 * (nc(p, pn, q, qn) + nc(q, qn, p, pn)), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_geometry_scores_agree_with_trimesh_sampling(seed: int) -> None:
    import open3d as o3d
    import trimesh

    (va, fa), (vb, fb) = _random_mesh(10 + seed), _random_mesh(20 + seed)
    ours = geometry_scores(va, fa, vb, fb, n_points=N, threshold_cm=5.0, seed=seed)
    ta, tb = trimesh.Trimesh(va, fa, process=False), trimesh.Trimesh(vb, fb, process=False)
    pa, _ = trimesh.sample.sample_surface(ta, N, seed=seed)
    pb, _ = trimesh.sample.sample_surface(tb, N, seed=seed + 100)
    pc_a, pc_b = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
    pc_a.points, pc_b.points = o3d.utility.Vector3dVector(pa), o3d.utility.Vector3dVector(pb)
    d_ab = np.asarray(pc_a.compute_point_cloud_distance(pc_b)) * 100
    d_ba = np.asarray(pc_b.compute_point_cloud_distance(pc_a)) * 100
    ref_cd = 0.5 * (d_ab.mean() + d_ba.mean())
    assert ours.chamfer_cm == pytest.approx(ref_cd, rel=0.05)
    prec, rec = (d_ab <= 5).mean(), (d_ba <= 5).mean()
    assert ours.fscore == pytest.approx(100 * 2 * prec * rec / (prec + rec), abs=2.0)


def test_appearance_known_colour_difference() -> None:
    # same geometry, uniform colours 0.75 vs 0.5 grey: the error is (0.25)^2 on covered pixels only
    gt = sphere(0.5, subdivisions=3, color=(191, 191, 191))
    pred = dataclasses.replace(gt, vertex_colors=np.full_like(gt.vertex_colors, 127))
    from human3d.eval.metrics import render_albedo

    _, mask = render_albedo(gt, gt.vertices, [30.0], 64, 0.525)
    coverage = float(mask.mean())
    a = appearance_scores(pred, pred.vertices, gt, gt.vertices, resolution=64)
    mse = ((191 - 127) / 255.0) ** 2 * coverage
    assert a.psnr == pytest.approx(10 * np.log10(1 / mse), abs=0.05)
    assert a.per_view["psnr"][0] == pytest.approx(a.psnr, abs=0.05)  # a sphere looks the same from every side
    assert 0.0 < a.ssim < 1.0 and len(a.per_view["ssim"]) == 6
    assert a.azimuths == [30.0, 90.0, 150.0, 210.0, 270.0, 330.0]


def test_result_is_valid_json_and_options_are_checked() -> None:
    m = sphere(subdivisions=2)
    d = evaluate(m, m, EvalSettings(n_points=500, resolution=32)).to_dict()
    text = json.dumps(d, allow_nan=False)  # inf PSNR is written as a string, never as a bare Infinity
    assert json.loads(text)["appearance"]["psnr"] == "inf"
    with pytest.raises(UsageError):
        evaluate(m, m, EvalSettings(alignment="bogus", appearance=False))
    with pytest.raises(UsageError):
        evaluate(m, m, EvalSettings(n_points=500, threshold_cm=0.0, appearance=False))
    with pytest.raises(UsageError):
        evaluate(m, m, EvalSettings(n_points=500, gt_height_m=-1.0, appearance=False))
