"""The carving benchmark (benchmarks/carve.py scores with carve.synthetic.oracle_scores) and `human3d eval` measure
the same pair of meshes the same way: one sampler, one Chamfer, one normal consistency."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from human3d.cameras import body_cameras
from human3d.carve.synthetic import humanoid_mesh, oracle_scores
from human3d.cli import app
from human3d.io.meshes import read_mesh


def test_carving_benchmark_and_eval_agree_on_chamfer_and_normal_consistency(tmp_path):
    truth = humanoid_mesh(clothed=True, spacing=0.03)
    body = humanoid_mesh(clothed=False, spacing=0.04)  # the undisplaced body the benchmark starts from
    paths = {}
    for name, (v, f) in (("pred", body), ("gt", truth)):
        paths[name] = tmp_path / f"{name}.ply"
        trimesh.Trimesh(v, f, process=False).export(paths[name])
    # what each side reads: the same float32 vertices the files hold
    pred, gt = read_mesh(paths["pred"]), read_mesh(paths["gt"])
    points = 4000
    bench = oracle_scores((pred.vertices, pred.faces), (gt.vertices, gt.faces), body_cameras(48), count=points)

    res = CliRunner().invoke(app, ["eval", str(paths["pred"]), str(paths["gt"]), "--json", "--no-appearance",
                                   "--align", "none", "--points", str(points)])
    assert res.exit_code == 0, res.output
    g = json.loads(res.stdout[res.stdout.index("{"):])["geometry"]
    height = float(np.ptp(gt.vertices[:, 1]))  # eval takes the ground truth's units as metres without --gt-height
    assert g["n_points"] == points
    assert bench.chamfer_pct_height > 0.1  # the two meshes really differ
    assert g["chamfer_cm"] == pytest.approx(bench.chamfer_pct_height * height, rel=1e-9)
    assert g["normal_consistency"] == pytest.approx(bench.normal_consistency, rel=1e-12)
