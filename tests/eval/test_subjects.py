"""The clothed subjects of benchmarks/embedded_quality.py (coarse grids: quick) and the table that scores them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from human3d.carve.meshing import count_components, is_closed_manifold, signed_volume
from human3d.eval.improvement import Row, Scores, in_export_frame, subject_row, table
from human3d.types import BodyFit, TexturedMesh
from tests.eval.shapes import person

SPACING = 0.015  # 1.5 cm grid: a few seconds per subject, fine enough for the hood's shell


@pytest.fixture(scope="module")
def anny():
    from human3d.body.models import AnnyBody
    from human3d.context import torch_threads

    with torch_threads(1):
        yield AnnyBody("cpu")


def _width(vertices: np.ndarray, y: float, axis: int = 0) -> float:
    near = vertices[np.abs(vertices[:, 1] - y) < 0.02]
    return float(np.ptp(near[:, axis]))


def _check_closed(subject) -> None:
    v, f = subject.mesh.vertices, subject.mesh.faces
    assert is_closed_manifold(v, f)
    assert len(np.unique(count_components(len(v), f))) == 1
    assert signed_volume(v, f) > signed_volume(*subject.body)  # clothes add volume, never take it
    assert subject.mesh.vertex_colors.shape == (len(v), 3)
    # the export frame: feet on y = 0, centred on x = z = 0, the body in the same frame
    lo, hi = v.min(0), v.max(0)
    assert abs(lo[1]) < 1e-5 and abs(lo[0] + hi[0]) < 1e-5 and abs(lo[2] + hi[2]) < 1e-5
    assert 1.5 < hi[1] < 1.9
    assert abs(subject.body[0][:, 1].min() - lo[1]) < 0.03


def test_skirt_subject_flares_and_has_hair(anny) -> None:
    from human3d.eval.subjects import make_subject

    s = make_subject("skirt", anny, spacing=SPACING)
    _check_closed(s)
    body_v, v = s.body[0], s.mesh.vertices
    knee_y = 0.33 * float(np.ptp(body_v[:, 1]))  # a little above the knees, inside the skirt
    assert _width(v, knee_y) > _width(body_v, knee_y) + 0.15  # the skirt spans and flares past both legs
    head_y = float(body_v[:, 1].max()) - 0.12
    assert v[np.abs(v[:, 1] - head_y) < 0.02][:, 2].min() < body_v[np.abs(body_v[:, 1] - head_y) < 0.02][:, 2].min() \
        - 0.02  # hair volume behind the head
    red = np.all(s.mesh.vertex_colors == (170, 40, 60), axis=1)
    assert red.mean() > 0.05


def test_hood_subject_stands_off_the_head(anny) -> None:
    from human3d.eval.subjects import make_subject

    s = make_subject("hood", anny, spacing=SPACING)
    _check_closed(s)
    body_v, v = s.body[0], s.mesh.vertices
    assert v[:, 1].max() > body_v[:, 1].max() + 0.03  # the hood rises over the head
    waist_y = 0.6 * float(np.ptp(body_v[:, 1]))
    assert _width(v, waist_y, 2) > _width(body_v, waist_y, 2) + 0.02  # a coat's thickness front and back


def test_unknown_subject_is_a_usage_error() -> None:
    from human3d.errors import UsageError
    from human3d.eval.subjects import make_subject

    with pytest.raises(UsageError, match="unknown subject"):
        make_subject("mermaid")


def _scaled(mesh: TexturedMesh, k: float) -> tuple[np.ndarray, np.ndarray]:
    """The mesh thinned (x, z scaled by k about its axis): a bare body under clothes."""
    v = np.asarray(mesh.vertices, np.float64).copy()
    v[:, [0, 2]] *= k
    return v.astype(np.float32), mesh.faces


def test_table_rows_on_a_tiny_case() -> None:
    gt = person()
    body, good = _scaled(gt, 0.7), _scaled(gt, 0.95)
    row = subject_row("good", gt, body, good, seconds=3.0, n_points=4000)
    assert row.final.chamfer_pct < row.body.chamfer_pct and row.chamfer_gain > 0.3
    assert row.final.fscore > row.body.fscore
    # the truth itself as the final mesh: Chamfer ~0, normals agree, gain ~100%
    exact = subject_row("exact", gt, body, (gt.vertices, gt.faces), n_points=4000)
    assert exact.body == row.body
    assert exact.final.chamfer_pct < 0.01 and exact.final.normal_consistency > 0.999 and exact.chamfer_gain > 0.99
    worse = Row("worse", Scores(2.0, 0.80, 30.0), Scores(2.5, 0.78, 25.0), seconds=5.0)
    rows = [row, worse]
    text = table(rows)
    mean_gain = 100 * (row.chamfer_gain + worse.chamfer_gain) / 2
    assert text.splitlines()[-1].startswith(
        f"mean Chamfer improvement over the fitted body (with its clothing offsets): {mean_gain:+.1f}%")
    assert "worse than the body on 1 of 2 subjects; higher normal consistency on 1 of 2" in text
    assert "over the bare body" not in text  # no bare scores given
    with_bare = [dataclasses.replace(worse, bare=Scores(5.0, 0.7, 10.0)),
                 dataclasses.replace(worse, bare=Scores(2.5, 0.7, 10.0))]
    assert table(with_bare).endswith("; over the bare body model without them: +25.0%")  # (1 - 2.5/5 + 0) / 2
    assert "| worse | 2.000 | 2.500 | -25.0% | 0.8000 | 0.7800 | -0.0200 | 30.00 | 25.00 | 5 |" in text
    assert "| good |" in text and "| mean |" in text


def test_row_gains_and_export_frame() -> None:
    row = Row("x", Scores(2.0, 0.80, 30.0), Scores(1.5, 0.82, 40.0))
    assert row.chamfer_gain == pytest.approx(0.25) and row.nc_gain == pytest.approx(0.02)
    v = np.array([[0.0, -1.0, 0.0], [0.2, 1.0, 0.1], [-0.2, 0.0, -0.1]], np.float32)
    f = np.array([[0, 1, 2]])
    final = TexturedMesh(vertices=v, faces=f, height_m=1.7, canonical_height=2.0)
    body = BodyFit(vertices=v * 0.5, faces=f, joints=np.zeros((1, 3), np.float32))
    b, m = in_export_frame(body, final)
    assert m[:, 1].min() == pytest.approx(0.0) and np.ptp(m[:, 1]) == pytest.approx(1.7)
    # the body under the same transform: half the size, the same centre
    assert np.ptp(b[:, 1]) == pytest.approx(0.85) and b[:, 1].mean() == pytest.approx(m[:, 1].mean())


def test_narrow_band_field_matches_the_dense_field_where_it_matters() -> None:
    from human3d.eval.subjects import narrow_band_field

    def spheres(p: np.ndarray) -> np.ndarray:  # two balls: a union with a thin gap between them
        return np.minimum(np.linalg.norm(p - (-0.3, 0.0, 0.0), axis=1) - 0.25,
                          np.linalg.norm(p - (0.24, 0.05, 0.0), axis=1) - 0.25)

    field, origin = narrow_band_field(spheres, np.full(3, -0.7), np.full(3, 0.7), 0.02)
    index = np.argwhere(np.ones(field.shape, bool))
    dense = spheres(origin + 0.02 * index).reshape(field.shape)
    assert np.array_equal(np.sign(field), np.sign(dense))  # what marching cubes sees is the same
    near = np.abs(dense) < 0.04
    assert np.array_equal(field[near], dense[near])  # exact next to the surface
    assert (origin + 0.02 * (np.asarray(field.shape) - 1) >= 0.7).all()


def test_cesium_man_is_textured_in_the_export_frame() -> None:
    from human3d.eval.subjects import make_subject
    from tests.conftest import shared_file

    s = make_subject("cesium", shared=shared_file("CesiumMan.glb").parent)
    v = s.mesh.vertices
    assert s.body is None and s.mesh.texture is not None and s.mesh.uvs is not None
    assert abs(v[:, 1].min()) < 1e-6 and abs(v[:, 0].min() + v[:, 0].max()) < 1e-5
    assert 1.4 < np.ptp(v[:, 1]) < 1.6  # metres, standing
    feet = v[v[:, 1] < 0.04]
    assert feet[:, 2].max() > -feet[:, 2].min() + 0.03  # the toes reach further forward (+Z) than the heels back


def test_bare_vertices_take_the_clothing_offsets_off():
    import dataclasses

    from human3d.carve.meshing import icosphere
    from human3d.eval.improvement import bare_vertices
    from human3d.types import BodyFit

    v, f = icosphere(3, 0.5)
    offsets = np.where(v[:, 0] > 0, 0.05, 0.0).astype(np.float32)
    from human3d.ops.mesh import vertex_normals

    clothed = (v + offsets[:, None] * vertex_normals(v.astype(np.float64), f)).astype(np.float32)
    fit = BodyFit(vertices=clothed, faces=f, joints=np.zeros((0, 3), np.float32), offsets=offsets)
    bare = bare_vertices(fit)
    assert np.abs(np.linalg.norm(bare, axis=1) - 0.5).max() < 0.01 < np.abs(np.linalg.norm(clothed, axis=1) - 0.5).max()
    np.testing.assert_array_equal(bare_vertices(dataclasses.replace(fit, offsets=None)), clothed)
