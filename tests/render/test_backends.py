"""Rasterizer backends: agreement, camera conventions, and gradients against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from human3d.cameras import OrthoCamera, body_cameras
from human3d.render import (
    Open3DRasterizer,
    TorchRasterizer,
    get_rasterizer,
    open3d_available,
    render_masks,
    render_normals,
)


def _blobby_sphere(subdiv: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed, non-convex mesh (sphere with smooth radial bumps) so views have self-occlusion."""
    m = trimesh.creation.icosphere(subdiv, radius=1.0)
    v = np.asarray(m.vertices)
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(6, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    bump = sum(0.25 * np.exp(-8.0 * (1 - v @ d)) for d in dirs)
    v = v * (0.55 + bump)[:, None] * np.array([0.8, 1.0, 0.7])
    return torch.tensor(v, dtype=torch.float64), torch.tensor(np.asarray(m.faces), dtype=torch.long)


def _two_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping, rotated boxes: occlusion boundaries between two separate surfaces."""
    a = trimesh.creation.box((0.8, 1.2, 0.6))
    b = trimesh.creation.box((0.5, 0.5, 1.4))
    b.apply_transform(trimesh.transformations.rotation_matrix(0.5, [0.3, 1, 0.2]))
    b.apply_translation([0.35, -0.2, 0.3])
    m = trimesh.util.concatenate([a, b])
    return torch.tensor(m.vertices, dtype=torch.float64), torch.tensor(m.faces, dtype=torch.long)


needs_open3d = pytest.mark.skipif(not open3d_available(), reason="open3d does not import")


@needs_open3d
@pytest.mark.parametrize("scene", [_blobby_sphere, _two_boxes])
def test_torch_and_open3d_see_the_same_triangles(scene):
    v, f = scene()
    cams = body_cameras(160)
    ref = TorchRasterizer().rasterize(v.float(), f, cams)
    o3d = Open3DRasterizer().rasterize(v.float(), f, cams)
    covered = ref.mask | o3d.mask
    assert covered.sum() > 0.1 * covered.numel()
    agree = (ref.tri_id == o3d.tri_id)[covered].double().mean().item()
    assert agree >= 0.995, agree
    # Where they disagree it is about which of two triangles sharing an edge owns a pixel centre on it: the
    # visible depth there is still the same surface.
    both = ref.mask & o3d.mask
    assert torch.allclose(ref.depth[both], o3d.depth[both], atol=1e-3)
    assert (ref.bary[ref.mask] >= -1e-5).all() and torch.allclose(ref.bary[ref.mask].sum(-1), torch.tensor(1.0))


def test_rasterizer_follows_the_camera_conventions():
    """A sphere's rendered normals equal the analytic ones, in the world frame, in every body view."""
    m = trimesh.creation.icosphere(4, radius=0.7)
    v = torch.tensor(m.vertices, dtype=torch.float32) + torch.tensor([0.1, -0.05, 0.0])
    f = torch.tensor(m.faces)
    cams = body_cameras(64)
    out = render_normals(v, f, cams, TorchRasterizer(), antialias=False)
    for i, cam in enumerate(cams):
        inner = out.frags.mask[i].clone()
        inner = inner & inner.roll(1, 0) & inner.roll(-1, 0) & inner.roll(1, 1) & inner.roll(-1, 1)
        xy = torch.tensor(cam.pixel_centers_camera(), dtype=torch.float32)  # (R, R, 2) camera x, y
        center_cam = torch.tensor(cam.world_to_camera(np.array([0.1, -0.05, 0.0])), dtype=torch.float32)
        d = xy - center_cam[:2]
        z = torch.sqrt((0.7**2 - (d**2).sum(-1)).clamp_min(0))
        n_cam = torch.cat([d, z[..., None]], -1) / 0.7
        n_world = torch.tensor(cam.camera_to_world(n_cam.numpy()), dtype=torch.float32)
        err = (out.normals[i] - n_world).norm(dim=-1)[inner]
        assert err.mean() < 0.03, (cam.name, err.mean())
    # azimuth 90 looks at the subject's left side (+X): the visible normals point to +X.
    right = [c.name for c in cams].index("right")
    assert out.normals[right][out.frags.mask[right]][:, 0].mean() > 0.5


def test_auto_backend_and_unknown_name():
    from human3d.errors import MissingBackendError, UsageError
    from human3d.render.nvdiffrast_backend import nvdiffrast_available

    assert get_rasterizer("auto", "cpu").name == ("open3d" if open3d_available() else "torch")
    assert get_rasterizer("torch", "cpu").name == "torch"
    with pytest.raises(UsageError):
        get_rasterizer("opengl")
    if not nvdiffrast_available():
        with pytest.raises(MissingBackendError):
            get_rasterizer("nvdiffrast", "cpu")


def test_antialiased_mask_measures_area_better_than_the_hard_mask():
    """A rotated square's antialiased coverage sums to its analytic area within a fraction of a pixel per edge."""
    r = 48
    half = 0.55
    ang = 0.3
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    xy = corners @ rot.T
    v = torch.tensor(np.concatenate([xy, np.zeros((4, 1))], 1), dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    cam = [OrthoCamera("front", 0.0, r)]
    hard = render_masks(v, f, cam, TorchRasterizer(), antialias=False)
    soft = render_masks(v, f, cam, TorchRasterizer(), antialias=True)
    exact = (2 * half) ** 2 * (r / 2.0) ** 2  # area in pixels
    assert abs(soft.sum().item() - exact) < 0.5 * abs(hard.sum().item() - exact) + 1.0
    assert abs(soft.sum().item() - exact) < 0.01 * exact


def _finite_difference_check(loss_fn, x: torch.Tensor, indices: list[tuple[int, int]], eps: float = 1e-5):
    x = x.clone().requires_grad_(True)
    loss = loss_fn(x)
    (grad,) = torch.autograd.grad(loss, x)
    for vi, ci in indices:
        xp = x.detach().clone()
        xm = x.detach().clone()
        xp[vi, ci] += eps
        xm[vi, ci] -= eps
        fd = (loss_fn(xp) - loss_fn(xm)).item() / (2 * eps)
        assert fd == pytest.approx(grad[vi, ci].item(), rel=1e-3, abs=1e-6), (vi, ci, fd, grad[vi, ci].item())
    return grad


def test_interpolate_and_antialias_gradients_match_finite_differences():
    v, f = _blobby_sphere(2, seed=3)
    cams = body_cameras(24)[:3]
    rast = TorchRasterizer()
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(len(cams), 24, 24, 4, generator=gen, dtype=torch.float64)
    attr = torch.rand(v.shape[0], 3, generator=gen, dtype=torch.float64)
    ids0 = rast.rasterize(v, f, cams).tri_id

    def loss_positions(x: torch.Tensor) -> torch.Tensor:
        frags = rast.rasterize(x, f, cams)
        assert torch.equal(frags.tri_id, ids0), "the perturbation changed visibility; use a smaller eps"
        a = torch.cat([attr, torch.ones_like(attr[:, :1])], -1)
        img = rast.antialias(rast.interpolate(a, frags), frags)
        return (img * weights).sum()

    # Silhouette vertices of the front view carry the antialiasing gradient; test some of them and some others.
    frags = rast.rasterize(v, f, cams)
    grad = _finite_difference_check(loss_positions, v, [(i, c) for i in (0, 5, 17, 40) for c in range(3)])
    silhouette = torch.unique(f[frags.tri_id[0][frags.mask[0]]].reshape(-1))
    x = v.clone().requires_grad_(True)
    fr = rast.rasterize(x, f, cams)
    mask_only = rast.antialias(rast.interpolate(torch.ones_like(x[:, :1]), fr), fr)
    (g_mask,) = torch.autograd.grad((mask_only * weights[..., :1]).sum(), x)
    moving = torch.nonzero(g_mask.abs().sum(1) > 0)[:, 0]
    assert moving.numel() > 10 and set(moving.tolist()) <= set(range(v.shape[0]))
    assert grad.abs().sum() > 0 and silhouette.numel() > 0
    _finite_difference_check(loss_positions, v, [(int(i), c) for i in moving[:4] for c in range(2)])

    def loss_attr(a: torch.Tensor) -> torch.Tensor:
        frags = rast.rasterize(v, f, cams)
        img = rast.antialias(rast.interpolate(a, frags), frags)
        return (img * weights[..., :3]).sum()

    _finite_difference_check(loss_attr, attr, [(0, 0), (7, 1), (30, 2)])


@pytest.mark.cuda
def test_nvdiffrast_agrees_with_torch():
    from human3d.render.nvdiffrast_backend import NvdiffrastRasterizer, nvdiffrast_available

    if not nvdiffrast_available():
        pytest.skip("nvdiffrast is not installed")
    v, f = _blobby_sphere()
    cams = body_cameras(160)
    ref = TorchRasterizer().rasterize(v.float(), f, cams)
    nv = NvdiffrastRasterizer("cuda").rasterize(v.float().cuda(), f.cuda(), cams)
    covered = ref.mask | nv.mask.cpu()
    assert (ref.tri_id == nv.tri_id.cpu())[covered].double().mean() >= 0.995
