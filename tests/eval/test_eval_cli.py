"""`human3d eval`: table on stderr, every figure as JSON on stdout, one-line errors with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from human3d.cli import app
from human3d.io.meshes import export_mesh
from tests.eval.shapes import sphere


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def test_eval_prints_json_and_a_table(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt.ply", tmp_path / "pred.ply"
    export_mesh(sphere(0.5, subdivisions=3, color=(180, 90, 40)), gt)
    moved = sphere(0.5, centre=(0.04, 0.0, 0.0), subdivisions=3, color=(150, 90, 40))
    export_mesh(moved, pred)  # the export transform re-centres it: only the colour differs after export
    res = _runner().invoke(app, ["eval", str(pred), str(gt), "--json", "--points", "3000", "--size", "48",
                                 "--align", "none", "--threshold", "2"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    g, a = d["geometry"], d["appearance"]
    assert g["chamfer_cm"] < 1e-3 and g["fscore"] == 100.0 and g["threshold_cm"] == 2.0 and g["n_points"] == 3000
    assert np.isfinite(a["psnr"]) and 0 < a["ssim"] < 1 and a["lpips"] is None
    assert any("LPIPS unavailable" in n for n in a["notes"])
    assert "Chamfer distance (cm)" in res.stderr and "F-score @ 2 cm" in res.stderr


def test_eval_errors_are_one_line(tmp_path: Path) -> None:
    gt = tmp_path / "gt.ply"
    export_mesh(sphere(0.5, subdivisions=1), gt)
    res = _runner().invoke(app, ["eval", str(tmp_path / "missing.glb"), str(gt)])
    assert res.exit_code == 3 and res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1
    res = _runner().invoke(app, ["eval", str(gt), str(gt), "--align", "rotate"])
    assert res.exit_code == 2 and "--align" in res.stderr
    res = _runner().invoke(app, ["eval", str(gt), str(gt), "--lpips-dir", str(tmp_path)])
    assert res.exit_code == 4 and "LPIPS weights not found" in res.stderr
    res = _runner().invoke(app, ["bench", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "not a folder" in res.stderr


def test_eval_device_reaches_the_renders_and_is_checked_before_any_work(tmp_path: Path, monkeypatch) -> None:
    import torch

    import human3d.eval.metrics as metrics

    gt = tmp_path / "gt.ply"
    export_mesh(sphere(0.5, subdivisions=2, color=(180, 90, 40)), gt)
    seen: list[str] = []
    real = metrics.render_albedo

    def spy(*args, device, **kwargs):
        seen.append(device)
        return real(*args, device=device, **kwargs)

    monkeypatch.setattr(metrics, "render_albedo", spy)
    res = _runner().invoke(app, ["eval", str(gt), str(gt), "--json", "--points", "500", "--size", "32",
                                 "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert seen == ["cpu", "cpu"] and json.loads(res.stdout)["appearance"]["psnr"] == "inf"
    seen.clear()
    res = _runner().invoke(app, ["eval", str(tmp_path / "missing.glb"), str(gt), "--device", "tpu"])
    assert res.exit_code == 2 and "unknown device 'tpu'" in res.stderr  # before the missing mesh is noticed
    if not torch.cuda.is_available():
        res = _runner().invoke(app, ["eval", str(gt), str(gt), "--device", "cuda"])
        assert res.exit_code == 4 and "no CUDA GPU" in res.stderr
    assert seen == []


@pytest.mark.cuda
def test_eval_on_cuda_agrees_with_the_cpu(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt.ply", tmp_path / "pred.ply"
    export_mesh(sphere(0.5, subdivisions=3, color=(180, 90, 40)), gt)
    export_mesh(sphere(0.5, subdivisions=3, color=(150, 90, 40)), pred)
    scores = {}
    for device in ("cpu", "cuda"):
        res = _runner().invoke(app, ["eval", str(pred), str(gt), "--json", "--points", "2000", "--size", "64",
                                     "--device", device])
        assert res.exit_code == 0, res.output
        scores[device] = json.loads(res.stdout)
    assert scores["cpu"]["geometry"] == scores["cuda"]["geometry"]  # geometry does not render
    assert abs(scores["cpu"]["appearance"]["psnr"] - scores["cuda"]["appearance"]["psnr"]) < 1.0
