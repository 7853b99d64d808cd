"""Carving: oracle tests against ground truth rendered in the test, body refinement, and the pipeline stage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import trimesh

from human3d.cameras import all_cameras, body_cameras
from human3d.carve.carve import (
    carve_from_views,
    carve_mesh,
    refine_similarity,
    targets_from_multiview,
    torch_threads,
)
from human3d.carve.meshing import icosphere, is_closed_manifold
from human3d.carve.synthetic import chamfer_and_normal_consistency, fit_to_canvas, humanoid_mesh, render_views
from human3d.config import CarveConfig
from human3d.context import StageContext
from human3d.errors import BadInputError
from human3d.render import get_rasterizer
from human3d.types import BodyFit, Mesh
from tests.conftest import shared_file


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are small: one torch thread is faster than two on a shared 2-core machine."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def humanoid():
    """(clothed ground truth, undisplaced body) meshes."""
    return humanoid_mesh(clothed=True, spacing=0.015), humanoid_mesh(clothed=False, spacing=0.03)


def _height(v: np.ndarray) -> float:
    return float(v[:, 1].max() - v[:, 1].min())


def test_oracle_carves_clothing_onto_the_body(humanoid):
    truth, body = humanoid
    height = _height(truth[0])
    start_chamfer, _ = chamfer_and_normal_consistency(body, truth, 20_000)
    assert start_chamfer > 0.01 * height  # the clothing is a real change the carving has to find
    targets = targets_from_multiview(render_views(*truth, body_cameras(128)), 128)
    cfg = CarveConfig(resolution=128, iterations=80, edge_length_min=0.02, edge_length_max=0.06,
                      coarse_fraction=0.3)
    v, f = carve_from_views(torch.as_tensor(body[0]), torch.as_tensor(body[1]), targets, cfg)
    chamfer, consistency = chamfer_and_normal_consistency((v.numpy(), f.numpy()), truth, 20_000)
    assert chamfer < 0.01 * height, chamfer / height
    assert chamfer < 0.5 * start_chamfer
    assert consistency > 0.90, consistency
    assert is_closed_manifold(v.numpy(), f.numpy())


def test_oracle_carves_cesium_man_from_an_ellipsoid():
    scene = trimesh.load(shared_file("CesiumMan.glb"))
    mesh = scene.to_geometry() if hasattr(scene, "to_geometry") else scene.dump(concatenate=True)
    mesh.merge_vertices()
    truth = (fit_to_canvas(np.asarray(mesh.vertices, np.float32)), np.asarray(mesh.faces, np.int64))
    height = _height(truth[0])
    sv, sf = icosphere(3, 1.0)
    sv = sv * np.array([0.6, 0.97, 0.2], np.float32)
    targets = targets_from_multiview(render_views(*truth, body_cameras(160)), 160)
    cfg = CarveConfig(resolution=160, iterations=150, edge_length_min=0.015, edge_length_max=0.06,
                      coarse_fraction=0.3)
    v, f = carve_from_views(torch.as_tensor(sv), torch.as_tensor(sf), targets, cfg)
    chamfer, consistency = chamfer_and_normal_consistency((v.numpy(), f.numpy()), truth, 20_000)
    assert chamfer < 0.01 * height, chamfer / height
    assert consistency > 0.90, consistency


def test_body_refinement_recovers_a_similarity_offset(humanoid):
    _, body = humanoid
    targets = targets_from_multiview(render_views(*body, body_cameras(96)), 96)
    v = torch.as_tensor(body[0])
    moved = (v - v.mean(0)) * 1.04 + v.mean(0) + torch.tensor([0.03, -0.025, 0.02])
    start_err = (moved - v).norm(dim=1).mean()
    refined = refine_similarity(moved, torch.as_tensor(body[1]), targets, get_rasterizer("auto"), steps=60)
    err = (refined - v).norm(dim=1).mean()
    assert err < 0.25 * start_err, (float(err), float(start_err))


def test_carve_stage_runs_on_an_open_body_mesh_with_face_view_and_poisson(humanoid, tmp_path):
    truth, body = humanoid
    views = render_views(*truth, all_cameras(96))  # six body views and the face view
    # an open, multi-part body mesh (as body models often are): a hole in the back and a separate eye
    v, f = body
    back = np.nonzero(v[f].mean(1)[:, 2] < -0.05)[0][:6]
    keep = np.setdiff1d(np.arange(len(f)), back)
    ev, ef = icosphere(1, 0.02, center=(0.03, 0.78, 0.08))
    body_fit = BodyFit(vertices=np.concatenate([v, ev]).astype(np.float32),
                       faces=np.concatenate([f[keep], ef + len(v)]), joints=np.zeros((0, 3), np.float32))
    assert not is_closed_manifold(body_fit.vertices, body_fit.faces)
    events: list[float] = []
    ctx = StageContext(stage="carve", stage_dir=tmp_path, progress_fn=lambda s, fr, m: events.append(fr))
    cfg = CarveConfig(resolution=96, body_refine_steps=5, body_refine_resolution=64, iterations=25,
                      edge_length_min=0.03, edge_length_max=0.06, poisson=True, poisson_depth=7)
    out = carve_mesh(views, body_fit, cfg, ctx)
    assert isinstance(out, Mesh) and out.vertices.dtype == np.float32 and out.faces.dtype == np.int64
    assert len(trimesh.Trimesh(out.vertices, out.faces, process=False).split(only_watertight=False)) == 1
    chamfer, _ = chamfer_and_normal_consistency((out.vertices, out.faces), truth, 10_000)
    assert chamfer < 0.02 * _height(truth[0])
    assert events and events[-1] == 1.0 and all(b >= a for a, b in zip(events, events[1:]))
    assert (tmp_path / "carve_report.json").is_file()


def test_carve_stage_rejects_empty_views(humanoid):
    truth, body = humanoid
    views = render_views(*truth, body_cameras(32))
    views = dataclasses.replace(views, masks=np.zeros_like(views.masks))
    fit = BodyFit(vertices=body[0], faces=body[1], joints=np.zeros((0, 3), np.float32))
    with pytest.raises(BadInputError):
        carve_mesh(views, fit, CarveConfig(resolution=32, iterations=1, body_refine_steps=0), StageContext())


def test_optimizer_converges_to_a_sphere_and_carries_state():
    """A pure geometric loss (distance to a sphere of radius 0.8) is minimised while the mesh is remeshed."""
    from human3d.carve.optimizer import MeshOptimizer, RemeshingSettings

    v, f = icosphere(2, 0.3)
    opt = MeshOptimizer(torch.as_tensor(v), torch.as_tensor(f),
                        RemeshingSettings(edge_len_lims=(0.05, 0.15), laplacian_weight=0.0))
    for _ in range(60):
        opt.zero_grad()
        loss = (opt.vertices.norm(dim=1) - 0.8).abs().mean()
        loss.backward()
        opt.step()
        assert opt.ref_len.shape[0] == opt.vertices.shape[0]
    radius = opt.vertices.detach().norm(dim=1)
    assert (radius - 0.8).abs().max() < 0.05
    assert opt.vertices.shape[0] > v.shape[0]  # the sphere grew and was refined by splits
    assert is_closed_manifold(opt.vertices.detach().numpy(), opt.faces.numpy())
