"""How much a reconstruction improves on the fitted body it started from, against a ground truth.

Both meshes are scored the way ``human3d eval`` scores a prediction (:func:`human3d.eval.metrics.evaluate`, fair
alignment: same height and bounding-box centre, then rigid ICP): Chamfer distance as a percentage of the ground
truth's height, normal consistency and F-score. A row holds both and the gains: the Chamfer improvement ratio
``1 - final / body`` (positive when the final mesh is closer) and the normal-consistency difference ``final - body``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from human3d.eval.metrics import DEFAULT_POINTS, EvalSettings, evaluate
from human3d.types import BodyFit, TexturedMesh


@dataclass(frozen=True)
class Scores:
    """One mesh against the ground truth after fair alignment."""

    chamfer_pct: float
    """Chamfer distance in % of the ground truth's height."""
    normal_consistency: float
    fscore: float
    """F-score in percent at the threshold of :class:`~human3d.eval.metrics.EvalSettings` (1 cm)."""


@dataclass(frozen=True)
class Row:
    """One subject: the bare body's and the final mesh's scores, and seconds spent reconstructing it."""

    name: str
    body: Scores
    final: Scores
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    bare: Scores | None = None
    """The body model's own surface, without the fit's clothing offsets (``body`` carries them), when known."""

    @property
    def chamfer_gain(self) -> float:
        """1 - final / body Chamfer: 0.3 means the final mesh is 30% closer to the ground truth than the body."""
        return 1.0 - self.final.chamfer_pct / self.body.chamfer_pct if self.body.chamfer_pct > 0 else 0.0

    @property
    def nc_gain(self) -> float:
        return self.final.normal_consistency - self.body.normal_consistency


def fair_scores(vertices: np.ndarray, faces: np.ndarray, gt: TexturedMesh, n_points: int = DEFAULT_POINTS,
                seed: int = 0) -> Scores:
    """(V, 3) vertices and (F, 3) faces of a mesh (metres, +Y up, facing +Z) scored against ``gt`` (metres)."""
    pred = TexturedMesh(vertices=np.asarray(vertices, np.float32), faces=np.asarray(faces, np.int64))
    settings = EvalSettings(alignment="icp", n_points=n_points, appearance=False, seed=seed)
    g = evaluate(pred, gt, settings).geometry
    height_cm = 100.0 * float(np.ptp(np.asarray(gt.vertices)[:, 1]))
    return Scores(chamfer_pct=100.0 * g.chamfer_cm / height_cm, normal_consistency=g.normal_consistency,
                  fscore=g.fscore)


def in_export_frame(body: BodyFit, final: TexturedMesh) -> tuple[np.ndarray, np.ndarray]:
    """The fitted body's and the final mesh's vertices ((V_b, 3), (V_f, 3)) under the export transform of the
    final mesh (:func:`human3d.io.meshes.export_affine`), so that both are in one metric frame."""
    from human3d.io.meshes import export_affine

    s, offset = export_affine(final.vertices, final.height_m, final.canonical_height)
    return tuple((np.asarray(v, np.float64) * s + offset).astype(np.float32)  # type: ignore[return-value]
                 for v in (body.vertices, final.vertices))


def subject_row(name: str, gt: TexturedMesh, body: tuple[np.ndarray, np.ndarray],
                final: tuple[np.ndarray, np.ndarray], *, seconds: float = 0.0, notes: tuple[str, ...] = (),
                n_points: int = DEFAULT_POINTS, bare: tuple[np.ndarray, np.ndarray] | None = None) -> Row:
    """Score the fitted body, the final mesh and optionally the body without its clothing offsets (each
    (vertices, faces), metric frame) against ``gt``."""
    return Row(name=name, body=fair_scores(*body, gt, n_points), final=fair_scores(*final, gt, n_points),
               seconds=seconds, notes=tuple(notes), bare=None if bare is None else fair_scores(*bare, gt, n_points))


def bare_vertices(body: BodyFit) -> np.ndarray:
    """(V, 3) the body model's own surface: the fit's vertices without their clothing offsets (``body.offsets``,
    which lie along the bare surface's normals: the fixed point x = v - offsets * n(x), found by damped iteration,
    since plain iteration oscillates where an offset is large for the surface's curvature); the vertices when it
    has none."""
    from human3d.ops.mesh import vertex_normals

    v = np.asarray(body.vertices, np.float64)
    if body.offsets is None or len(body.offsets) != len(v):
        return v.astype(np.float32)
    o = np.asarray(body.offsets, np.float64)[:, None]
    faces = np.asarray(body.faces)
    bare = v - o * vertex_normals(v, faces)
    for _ in range(20):
        bare = 0.5 * bare + 0.5 * (v - o * vertex_normals(bare, faces))
    return bare.astype(np.float32)


HEADER = ("| subject | body CD % | final CD % | CD gain | body NC | final NC | NC diff | body F | final F | s "
          "| bare CD % | bare NC |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def _cells(name: str, body: Scores, final: Scores, cd_gain: float, nc_gain: float, seconds: float,
           bare: Scores | None = None) -> str:
    bare_cells = "| |" if bare is None else f"| {bare.chamfer_pct:.3f} | {bare.normal_consistency:.4f} |"
    return (f"| {name} | {body.chamfer_pct:.3f} | {final.chamfer_pct:.3f} | {100 * cd_gain:+.1f}% | "
            f"{body.normal_consistency:.4f} | {final.normal_consistency:.4f} | {nc_gain:+.4f} | {body.fscore:.2f} | "
            f"{final.fscore:.2f} | {seconds:.0f} {bare_cells}")


def _mean_scores(scores: list[Scores]) -> Scores:
    return Scores(*(float(np.mean([getattr(s, k) for s in scores]))
                    for k in ("chamfer_pct", "normal_consistency", "fscore")))


def table(rows: list[Row]) -> str:
    """A Markdown table of ``rows`` and their means, then a line naming the mean Chamfer improvement."""
    lines = list(HEADER)
    for r in rows:
        name = r.name + (f" ({'; '.join(r.notes)})" if r.notes else "")
        lines.append(_cells(name, r.body, r.final, r.chamfer_gain, r.nc_gain, r.seconds, r.bare))
    if not rows:
        return "\n".join(lines + ["", "no subjects"])
    cd_gain = float(np.mean([r.chamfer_gain for r in rows]))
    bare = _mean_scores([r.bare for r in rows]) if all(r.bare is not None for r in rows) else None
    lines.append(_cells("mean", _mean_scores([r.body for r in rows]), _mean_scores([r.final for r in rows]), cd_gain,
                        float(np.mean([r.nc_gain for r in rows])), sum(r.seconds for r in rows), bare))
    worse = sum(r.chamfer_gain < 0 for r in rows)
    nc_up = sum(r.nc_gain > 0 for r in rows)
    over_bare = ""
    if bare is not None:
        gain = float(np.mean([1.0 - r.final.chamfer_pct / max(r.bare.chamfer_pct, 1e-12) for r in rows]))
        over_bare = f"; over the bare body model without them: {100 * gain:+.1f}%"
    lines += ["", f"mean Chamfer improvement over the fitted body (with its clothing offsets): {100 * cd_gain:+.1f}% "
              f"(worse than the body on {worse} of {len(rows)} subjects; higher normal consistency on {nc_up} of "
              f"{len(rows)}){over_bare}"]
    return "\n".join(lines)
