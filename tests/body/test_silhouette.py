"""The fit's rasteriser and soft silhouette: against a naive per-triangle loop, and the gradient's direction."""

from __future__ import annotations

import numpy as np
import torch

from human3d.body.keypoints import canonical_to_pixels
from human3d.body.silhouette import (
    SOFT_REACH,
    downsample_mask,
    front_facing,
    mask_iou,
    prepare_silhouette,
    rasterize,
    render_mask,
    silhouette_band,
    silhouette_loss,
    soft_silhouette,
)


def _random_mesh(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    v = rng.uniform(-0.9, 0.9, (n, 3))
    f = rng.integers(0, n, (n * 2, 3))
    return v, f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]


def _naive(px: np.ndarray, depth: np.ndarray, faces: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel centre against every triangle, one at a time."""
    fid = np.full((r, r), -1)
    z = np.full((r, r), -np.inf)
    for i, (a, b, c) in enumerate(faces):
        p0, p1, p2 = px[a], px[b], px[c]
        area = (p1[0] - p0[0]) * (p2[1] - p0[1]) - (p1[1] - p0[1]) * (p2[0] - p0[0])
        if abs(area) < 1e-12:
            continue
        for v in range(r):
            for u in range(r):
                q = np.array([u + 0.5, v + 0.5])
                w0 = ((p1[0] - q[0]) * (p2[1] - q[1]) - (p1[1] - q[1]) * (p2[0] - q[0])) / area
                w1 = ((p2[0] - q[0]) * (p0[1] - q[1]) - (p2[1] - q[1]) * (p0[0] - q[0])) / area
                w2 = 1 - w0 - w1
                if min(w0, w1, w2) >= -1e-9:
                    d = w0 * depth[a] + w1 * depth[b] + w2 * depth[c]
                    if d > z[v, u]:
                        z[v, u], fid[v, u] = d, i
    return fid, z


def test_rasterize_matches_naive_loop():
    for seed in range(3):
        v, f = _random_mesh(seed)
        r = 24
        px = canonical_to_pixels(v[:, :2], r)
        fid, z = rasterize(px, v[:, 2], f, r)
        ref_fid, ref_z = _naive(px, v[:, 2], f, r)
        np.testing.assert_array_equal(fid >= 0, ref_fid >= 0)
        np.testing.assert_allclose(z[fid >= 0], ref_z[fid >= 0], atol=1e-5)


def test_soft_silhouette_approximates_hard_mask(anny_model):
    out = anny_model.forward({}, anny_model.shape_mean[None])
    v = out.vertices[0] * 1.1
    faces = torch.as_tensor(anny_model.faces)
    hard = render_mask(v.numpy(), anny_model.faces, 256)
    front = faces[front_facing(v[:, :2], faces)]  # as in the fit: one layer covers a closed mesh's silhouette
    soft = soft_silhouette(v[:, :2], front, 256, sigma=0.3).numpy()
    assert mask_iou(soft > 0.5, hard) > 0.9
    assert abs(soft.sum() / hard.sum() - 1.0) < 0.05  # no systematic dilation or erosion
    assert soft[~hard].mean() < 0.02 and soft[hard].mean() > 0.85


def _naive_soft(xy: torch.Tensor, faces: np.ndarray, r: int, sigma: float, pixels: np.ndarray) -> torch.Tensor:
    """soft_silhouette's definition, one triangle at a time against every pixel centre, by autograd: a pixel within
    the reach of the triangle's box adds log(1 - p) = logsigmoid(d / sigma), d the exact signed distance (a
    constant when the pixel lies deeper inside than the reach)."""
    reach = SOFT_REACH * sigma
    v, u = np.nonzero(pixels)
    c = torch.as_tensor(np.stack([u, v], 1) + 0.5, dtype=torch.float32)  # (P, 2)
    p = torch.stack([(xy[:, 0] + 1.0) * (r / 2.0), (1.0 - xy[:, 1]) * (r / 2.0)], -1)
    log_empty = [torch.zeros(())] * len(c)
    for f in faces:
        t = p[f]  # (3, 2)
        near_box = ((c >= t.min(0).values - reach) & (c <= t.max(0).values + reach)).all(1)
        orient = 1.0 if float(_cross2(t[1] - t[0], t[2] - t[0]).detach()) >= 0 else -1.0
        dists, inside = [], torch.ones(len(c), dtype=torch.bool)
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            inside &= _cross2(b - a, c - a) * orient >= 0
            s_ = (((c - a) * (b - a)).sum(1) / ((b - a) ** 2).sum().clamp_min(1e-12)).clamp(0.0, 1.0)
            dists.append(((c - a - s_[:, None] * (b - a)) ** 2).sum(1).clamp_min(1e-12).sqrt())
        dist = torch.stack(dists, 1).min(1).values
        d = torch.where(inside, -dist, dist)
        for i in np.nonzero(near_box.numpy())[0]:
            term = torch.nn.functional.logsigmoid(d[i] / sigma)
            log_empty[i] = log_empty[i] + (term if d[i] > -reach else term.detach())
    out = torch.zeros(r, r)
    out[torch.as_tensor(v), torch.as_tensor(u)] = 1.0 - torch.exp(torch.stack(log_empty))
    return out


def _cross2(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]


def test_soft_silhouette_matches_naive_loop():
    """Values and gradients equal the definition's, for triangles of any size and winding, with and without a
    pixel selection."""
    r, sigma = 24, 0.5
    rng = np.random.default_rng(3)
    xy0 = torch.as_tensor(rng.uniform(-1.1, 1.1, (12, 2)), dtype=torch.float32)
    faces = np.array([[0, 1, 2], [3, 4, 5], [2, 1, 0], [6, 7, 8], [9, 10, 11], [0, 5, 9]])
    weight = torch.as_tensor(rng.uniform(0.0, 1.0, (r, r)), dtype=torch.float32)
    for pixels in (np.ones((r, r), bool), rng.uniform(size=(r, r)) < 0.4):
        xy_ref, xy = xy0.clone().requires_grad_(True), xy0.clone().requires_grad_(True)
        ref = _naive_soft(xy_ref, faces, r, sigma, pixels)
        occ = soft_silhouette(xy, torch.as_tensor(faces), r, sigma, pixels=torch.as_tensor(pixels))
        np.testing.assert_allclose(occ.detach().numpy(), ref.detach().numpy(), atol=1e-5)
        assert bool((occ[torch.as_tensor(~pixels)] == 0).all()) and 0.05 < float(occ.detach().mean()) < 0.95
        (weight * ref).sum().backward()
        (weight * occ).sum().backward()
        torch.testing.assert_close(xy.grad, xy_ref.grad, atol=1e-3, rtol=1e-3)
        assert float(xy_ref.grad.abs().max()) > 1e-2


def test_silhouette_gradient_moves_toward_mask():
    """A square offset to the left of its target mask is pulled right by the silhouette loss."""
    r = 64
    sq = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    target_mask = render_mask(np.c_[sq.numpy() + [0.1, 0.0], np.zeros(4)], faces, r)
    target = prepare_silhouette(target_mask, None, r, "cpu")
    shift = torch.tensor([-0.05, 0.0], requires_grad=True)
    xy = sq + shift
    band = silhouette_band(xy.detach().numpy(), faces, target, band_px=8.0)
    assert len(band.faces) == 2
    loss = silhouette_loss(xy, torch.as_tensor(faces[band.faces]), target, band.weight)
    loss.backward()
    assert shift.grad[0] < 0 and abs(float(shift.grad[1])) < abs(float(shift.grad[0])) * 0.1


def test_downsample_mask():
    m = np.zeros((8, 8), bool)
    m[:4, :4] = True
    np.testing.assert_array_equal(downsample_mask(m, 2), np.array([[True, False], [False, False]]))
    assert downsample_mask(m, 3).shape == (3, 3)
