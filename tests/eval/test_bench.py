"""The benchmark protocol: input photos, frames, resume and the tables, with an oracle reconstructor (exact answer
known), and end to end through the real pipeline when every stage is available."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from human3d.eval.bench import Benchmark, BenchSettings, render_photo
from human3d.eval.metrics import EvalSettings
from human3d.io.meshes import export_mesh, read_mesh
from human3d.types import TexturedMesh
from tests.eval.shapes import person


def _settings(**kw) -> BenchSettings:
    ev = EvalSettings(n_points=4000, resolution=64)
    return BenchSettings(photo_height=192, evaluation=ev, **kw)


class Oracle:
    """Reconstructs a photo perfectly: the ground truth turned so that the photo's camera looks along -Z (computed
    here with scipy, independently of the bench's cameras), exported like the pipeline (metres, feet on y = 0)."""

    def __init__(self, gt: TexturedMesh, turn: bool = True) -> None:
        self.gt, self.turn, self.calls = gt, turn, 0

    def __call__(self, photo: Path, output: Path, work_dir: Path) -> dict:
        self.calls += 1
        assert photo.is_file()
        azimuth = float(photo.parent.name.split("_")[1])
        rot = Rotation.from_euler("y", -azimuth if self.turn else 0.0, degrees=True).as_matrix()
        v = (self.gt.vertices.astype(np.float64) @ rot.T).astype(np.float32)
        mesh = TexturedMesh(vertices=v, faces=self.gt.faces, vertex_colors=self.gt.vertex_colors, height_m=1.75)
        export_mesh(mesh, output, overwrite=True)
        return {"backends": {"oracle": "yes"}}


@pytest.fixture()
def gt_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "gt"
    folder.mkdir()
    export_mesh(person(), folder / "figure.ply")
    return folder


def test_input_photo_is_a_framed_rgba_portrait() -> None:
    img = render_photo(person(), 0.0, 300)
    assert img.shape == (300, 200, 4) and img.dtype == np.uint8
    alpha = img[..., 3] > 0
    rows = np.nonzero(alpha.any(1))[0]
    assert (rows.max() - rows.min() + 1) / 300 == pytest.approx(0.85, abs=0.02)  # the person spans 85% of it
    assert abs((rows.max() + rows.min()) / 2 - 150) < 3
    assert (img[~alpha][:, 3] == 0).all() and img[alpha][:, :3].std() > 10  # transparent around, coloured inside


def test_oracle_scores_perfectly_and_reruns_resume(gt_folder: Path, tmp_path: Path) -> None:
    gt = read_mesh(gt_folder / "figure.ply")
    oracle = Oracle(gt)
    out = tmp_path / "out"
    summary = Benchmark(_settings(), reconstruct=oracle).run(gt_folder, out)
    assert oracle.calls == 3
    views = summary["meshes"][0]["views"]
    assert [v["azimuth"] for v in views] == [0.0, 120.0, 240.0]
    for v in views:
        assert v["status"] == "ok", v
        assert v["scores"]["chamfer_cm"] < 1e-3 and v["scores"]["fscore"] == 100.0
        assert v["scores"]["normal_consistency"] > 0.9999
        assert v["scores"]["ssim"] > 0.99
    assert summary["mean"]["chamfer_cm"] < 1e-3 and summary["failed_views"] == 0
    assert (out / "figure" / "view_120" / "input.png").is_file()
    md = (out / "results.md").read_text()
    assert "| figure |" in md and "| **mean** |" in md and "CD↓" in md and "LPIPS↓" in md and "n/a" in md
    assert json.loads((out / "results.json").read_text())["protocol"]["eval_azimuths"][0] == 30.0

    again = Benchmark(_settings(), reconstruct=oracle).run(gt_folder, out)
    assert oracle.calls == 3 and all(v["reused"] for v in again["meshes"][0]["views"])
    assert again["mean"] == summary["mean"]
    # new scoring settings re-score the kept reconstructions without reconstructing again
    rescored = Benchmark(_settings(), reconstruct=oracle)
    rescored.settings.evaluation.threshold_cm = 0.5
    rescored.run(gt_folder, out)
    assert oracle.calls == 3


def test_a_reconstruction_in_the_wrong_frame_scores_worse(gt_folder: Path, tmp_path: Path) -> None:
    # the figure has no 120-degree symmetry: leaving the prediction unturned must cost at the side views
    summary = Benchmark(_settings(), reconstruct=Oracle(read_mesh(gt_folder / "figure.ply"), turn=False)).run(
        gt_folder, tmp_path / "out")
    cd = [v["scores"]["chamfer_cm"] for v in summary["meshes"][0]["views"]]
    assert cd[0] < 1e-3 and cd[1] > 1.0 and cd[2] > 1.0


def test_failures_are_recorded_per_view(gt_folder: Path, tmp_path: Path) -> None:
    from human3d.errors import MissingBackendError, NoPersonFoundError

    def refuse(photo: Path, output: Path, work: Path) -> dict:
        raise NoPersonFoundError("no person found")

    summary = Benchmark(_settings(), reconstruct=refuse).run(gt_folder, tmp_path / "a")
    assert summary["failed_views"] == 3 and summary["mean"]["chamfer_cm"] is None
    assert "n/a" in summary["markdown"]

    def missing(photo: Path, output: Path, work: Path) -> dict:
        raise MissingBackendError("the 'carve' stage needs the Python package 'scipy', which is not installed")

    with pytest.raises(MissingBackendError):  # a missing package stops the run: nothing could succeed
        Benchmark(_settings(), reconstruct=missing).run(gt_folder, tmp_path / "b")


@pytest.mark.slow
def test_bench_end_to_end_with_the_pipeline(gt_folder: Path, tmp_path: Path) -> None:
    """`human3d bench` on one generated mesh, the fast preset and the embedded (prior) backend on the CPU."""
    from typer.testing import CliRunner

    from human3d.cli import app

    out = tmp_path / "bench"
    # the fast preset, reduced further (one view, few iterations, small images) to fit the test budget
    reduced = ["--set", "frame.resolution=256", "--set", "multiview.resolution=256", "--set", "body.iterations=15",
               "--set", "carve.resolution=128", "--set", "carve.body_refine_steps=5", "--set", "carve.iterations=8",
               "--set", "texture.texture_size=128"]
    res = CliRunner().invoke(app, ["bench", str(gt_folder), "-o", str(out), "--preset", "fast", "--mv-backend",
                                   "prior", "--device", "cpu", "--views", "1", "--photo-size", "512", "--points",
                                   "5000", "--size", "64", "--json", *reduced])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    view = summary["meshes"][0]["views"][0]
    assert view["status"] == "ok", view
    assert (out / "figure" / "view_000" / "pred.glb").is_file()
    # a coarse reconstruction (a few iterations; the capsule figure is hard for the body fit) of a 1.7 m figure,
    # scored in the right frame: tens of centimetres at most (a mesh in a wrong frame or scale scores worse)
    assert 0.0 < view["scores"]["chamfer_cm"] < 35.0
    assert 0.0 <= view["scores"]["fscore"] <= 100.0 and 0.0 < view["scores"]["normal_consistency"] <= 1.0
    assert view["info"]["backends"]["multiview"] == "prior"
