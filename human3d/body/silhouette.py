"""Silhouettes for the body fit: a small exact rasteriser (numpy, front view) for masks, depth and test images, and a
differentiable silhouette loss (torch) that pulls projected vertices into a mask and makes them cover it.

The rasteriser here is deliberately minimal (orthographic front view, no attributes beyond face id and depth); the
pipeline's general renderer lives in :mod:`human3d.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def canonical_to_pixels_t(xy: torch.Tensor, resolution: int) -> torch.Tensor:
    """(..., 2) canonical front-view x, y -> continuous canvas pixels (u right, v down; pixel edges at integers)."""
    return torch.stack([(xy[..., 0] + 1.0) * (resolution / 2.0), (1.0 - xy[..., 1]) * (resolution / 2.0)], -1)


def rasterize(pixels: np.ndarray, depth: np.ndarray, faces: np.ndarray, resolution: int,
              max_patch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffered face ids of a triangle mesh seen by an orthographic camera.

    pixels: (V, 2) continuous pixel coordinates (u right, v down); depth: (V,) larger is closer (camera-space z);
    faces: (F, 3). Returns ((R, R) int64 face id, -1 where empty; (R, R) float32 depth, -inf where empty).
    A pixel is covered when its centre lies inside a triangle (either winding).
    """
    r = resolution
    face_id = np.full(r * r, -1, dtype=np.int64)
    zbuf = np.full(r * r, -np.inf, dtype=np.float32)
    tri = pixels[faces].astype(np.float64)  # (F, 3, 2)
    tz = depth[faces].astype(np.float64)  # (F, 3)
    # pixel centres (i + 0.5) inside the triangle's bounding box
    lo = np.ceil(tri.min(1) - 0.5).astype(np.int64)
    hi = np.floor(tri.max(1) - 0.5).astype(np.int64)
    lo = np.clip(lo, 0, r)
    hi = np.clip(hi, -1, r - 1)
    size = np.maximum(hi - lo + 1, 0).max(1)  # (F,)
    keep = size > 0
    all_pix: list[np.ndarray] = []
    all_z: list[np.ndarray] = []
    all_f: list[np.ndarray] = []
    patch = 2
    remaining = keep.copy()
    while remaining.any():
        if patch >= max_patch:  # the few big triangles left: one grid as large as the largest of them
            sel = np.nonzero(remaining)[0]
            patch = int(size[sel].max())
        else:
            sel = np.nonzero(remaining & (size <= patch))[0]
        remaining[sel] = False
        if len(sel):
            _raster_bucket(tri[sel], tz[sel], lo[sel], sel, patch, r, all_pix, all_z, all_f)
        patch *= 2
    if all_pix:
        pix = np.concatenate(all_pix)
        z = np.concatenate(all_z)
        f = np.concatenate(all_f)
        order = np.lexsort((z, pix))  # by pixel, then depth ascending: the last of each pixel is the closest
        pix, z, f = pix[order], z[order], f[order]
        last = np.r_[pix[1:] != pix[:-1], True]
        face_id[pix[last]] = f[last]
        zbuf[pix[last]] = z[last]
    return face_id.reshape(r, r), zbuf.reshape(r, r)


def _raster_bucket(tri: np.ndarray, tz: np.ndarray, lo: np.ndarray, ids: np.ndarray, patch: int, r: int,
                   out_pix: list[np.ndarray], out_z: list[np.ndarray], out_f: list[np.ndarray]) -> None:
    """Test a patch x patch grid of pixel centres from each triangle's bounding-box corner; append the hits."""
    chunk = max(1, 2_000_000 // (patch * patch))
    grid = np.stack(np.meshgrid(np.arange(patch), np.arange(patch), indexing="xy"), -1).reshape(-1, 2)
    for s in range(0, len(ids), chunk):
        t = tri[s:s + chunk]
        px = lo[s:s + chunk, None, :] + grid[None]  # (n, P*P, 2) integer pixel
        c = px + 0.5
        a, b, d = t[:, 0, None], t[:, 1, None], t[:, 2, None]
        area = _cross(b - a, d - a)  # (n, 1)
        ok = np.abs(area) > 1e-12
        area = np.where(ok, area, 1.0)
        w0 = _cross(b - c, d - c) / area
        w1 = _cross(d - c, a - c) / area
        w2 = 1.0 - w0 - w1
        eps = -1e-9
        inside = ok & (w0 >= eps) & (w1 >= eps) & (w2 >= eps) & (px[..., 0] < r) & (px[..., 1] < r)
        z = w0 * tz[s:s + chunk, 0, None] + w1 * tz[s:s + chunk, 1, None] + w2 * tz[s:s + chunk, 2, None]
        n_idx, p_idx = np.nonzero(inside)
        out_pix.append(px[n_idx, p_idx, 1] * r + px[n_idx, p_idx, 0])
        out_z.append(z[n_idx, p_idx].astype(np.float32))
        out_f.append(ids[s:s + chunk][n_idx])


def _cross(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]


def render_mask(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R) bool silhouette of canonical-frame ``vertices`` (V, 3) on the front view."""
    from human3d.body.keypoints import canonical_to_pixels

    face_id, _ = rasterize(canonical_to_pixels(vertices[:, :2], resolution), vertices[:, 2], faces, resolution)
    return face_id >= 0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def downsample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(R, R) bool -> (size, size) bool by area coverage >= 0.5 (R a multiple of size), else nearest sampling."""
    r = mask.shape[0]
    if r == size:
        return mask.astype(bool)
    if r % size == 0:
        k = r // size
        return mask.reshape(size, k, size, k).mean((1, 3)) >= 0.5
    idx = ((np.arange(size) + 0.5) * r / size).astype(np.int64)
    return mask[idx][:, idx].astype(bool)


def front_facing(xy: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(F,) bool: triangles whose projection is counter-clockwise in canonical x, y (they face the front camera).

    For a closed mesh the front-facing triangles alone cover its silhouette, so the soft silhouette needs only them.
    """
    t = xy[faces]
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    return e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0


#: Reach of a triangle in the soft silhouette, in sigmas: the pixels within it of the triangle's bounding box see
#: the triangle (beyond, p is taken as 0; deeper inside than it, p has no gradient). 4.5 keeps the loss's gradient
#: within 6% of the untruncated one on a body fit.
SOFT_REACH = 4.5


def soft_silhouette(xy: torch.Tensor, faces: torch.Tensor, resolution: int, sigma: float = 0.5,
                    pixels: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable front-view silhouette: (S, S) occupancy in [0, 1] of triangles ``faces`` (F, 3) whose
    vertices project to canonical ``xy`` (V, 2).

    Each pixel centre gets from each nearby triangle the probability sigmoid(-d / sigma) of being inside it, d its
    signed distance to the triangle in pixels (negative inside); a pixel is empty only if no triangle covers it,
    occupancy = 1 - prod(1 - p) (SoftRas's silhouette). A triangle is only tested against the pixel centres within
    ``SOFT_REACH`` sigma of its bounding box (deeper inside it than that, p is a constant to the optimiser: its
    derivative vanishes), so the cost follows the number of triangles, not triangles x pixels.
    ``pixels`` (S, S) bool, when given, limits the work to those pixels (the others read 0): a loss that compares
    only some pixels needs only them.
    """
    s = resolution
    tri = canonical_to_pixels_t(xy, s)[faces]  # (F, 3, 2)
    reach = SOFT_REACH * sigma
    with torch.no_grad():
        k, pix = _nearby_pixels(tri.detach(), s, reach, pixels)
    centre = torch.stack([pix % s, torch.div(pix, s, rounding_mode="floor")], -1).to(tri.dtype) + 0.5  # (M, 2)
    d = _TriangleDistance.apply(tri, k, centre, reach)
    log_empty = xy.new_zeros(s * s).index_add(0, pix, F.logsigmoid(d / sigma))  # log(1 - sigmoid(-d / sigma))
    return (1.0 - torch.exp(log_empty)).reshape(s, s)


def _nearby_pixels(tri: torch.Tensor, s: int, reach: float, pixels: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (triangle, pixel) pair whose pixel centre lies on the S x S canvas within ``reach`` pixels of the
    triangle's bounding box (and in ``pixels`` (S, S) bool when given): (M,) triangle indices into ``tri`` (F, 3, 2)
    and (M,) flat pixel indices (row-major)."""
    lo = torch.ceil(tri.min(1).values - reach - 0.5).int().clamp_min(0)  # (F, 2) first pixel (u, v)
    hi = torch.floor(tri.max(1).values + reach - 0.5).int().clamp_max(s - 1)
    size = (hi - lo + 1).clamp_min(0)  # (F, 2)
    width = size[:, 0]
    count = width * size[:, 1]
    k = torch.repeat_interleave(torch.arange(len(tri), device=tri.device, dtype=torch.int32), count)  # (M,)
    local = torch.arange(len(k), device=tri.device, dtype=torch.int32) - (torch.cumsum(count, 0) - count)[k]
    width = width[k]
    # the box's first pixel, then ``local`` steps along its rows (each row skips the s - width pixels beside it)
    pix = (lo[:, 1] * s + lo[:, 0])[k] + torch.div(local, width, rounding_mode="floor") * (s - width) + local
    if pixels is not None:
        keep = torch.nonzero(pixels.reshape(-1).to(tri.device)[pix]).squeeze(1)
        k, pix = k[keep], pix[keep]
    return k.long(), pix.long()


class _TriangleDistance(torch.autograd.Function):
    """(M,) signed distances (pixels, negative inside) from points ``c`` (M, 2) to triangles ``tri[k]``
    (``tri`` (F, 3, 2)), with the gradient with respect to ``tri`` written out: the distance is that to the
    closest point of the nearest edge, which moves with that edge's two corners (in the shares of its position
    along the edge). Points deeper inside than ``reach`` get no gradient (see :func:`soft_silhouette`)."""

    @staticmethod
    def forward(ctx: Any, tri: torch.Tensor, k: torch.Tensor, c: torch.Tensor, reach: float) -> torch.Tensor:
        t = tri.transpose(1, 2)[k]  # (M, 2, 3): x and y of the corners
        x, y = t[:, 0], t[:, 1]
        ex, ey = x.roll(-1, 1) - x, y.roll(-1, 1) - y  # (M, 3) edges from each corner to the next
        wx, wy = c[:, :1] - x, c[:, 1:] - y
        side = ex * wy - ey * wx  # (M, 3) > 0 left of each edge
        left = (ex[:, :1] * ey[:, 2:] - ey[:, :1] * ex[:, 2:]) <= 0  # (M, 1) inside is left of the edges
        inside = torch.where(left, side >= 0, side <= 0).all(1)  # either winding
        share = ((wx * ex + wy * ey) / (ex * ex + ey * ey).clamp_min(1e-12)).clamp(0.0, 1.0)  # (M, 3)
        dx, dy = wx - share * ex, wy - share * ey  # from each edge's closest point to c
        sq, edge = (dx * dx + dy * dy).clamp_min(1e-12).min(1)
        dist = sq.sqrt()
        pick = edge[:, None]
        unit = torch.cat([dx.gather(1, pick), dy.gather(1, pick)], 1) / dist[:, None]  # (M, 2)
        live = (sq > 1e-12) & ~(inside & (dist >= reach))
        ctx.save_for_backward(k, edge, share.gather(1, pick).squeeze(1), unit, torch.where(inside, -1.0, 1.0) * live)
        ctx.faces = len(tri)
        return torch.where(inside, -dist, dist)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        k, edge, share, unit, factor = ctx.saved_tensors
        g = -(grad * factor)[:, None] * unit  # (M, 2) d distance / d closest point, times the incoming gradient
        out = grad.new_zeros(ctx.faces * 3, 2)
        out.index_add_(0, k * 3 + edge, (1.0 - share)[:, None] * g)
        out.index_add_(0, k * 3 + (edge + 1) % 3, share[:, None] * g)
        return out.reshape(ctx.faces, 3, 2), None, None, None


@dataclass
class SilhouetteTarget:
    """A mask prepared for :func:`silhouette_loss` at a working resolution S.

    mask: (S, S) float32 tensor (1 = person); care: (S, S) bool, False where the body may extend beyond the mask
    because the photo was cut there; boundary_distance: (S, S) distance in pixels to the mask's outline.
    """

    mask: torch.Tensor
    care: np.ndarray
    boundary_distance: np.ndarray
    resolution: int


def prepare_silhouette(mask: np.ndarray, open_region: np.ndarray | None, resolution: int,
                       device: torch.device | str) -> SilhouetteTarget:
    """``mask`` (R, R) bool at working resolution ``resolution``, with its outline distance field."""
    from scipy.ndimage import binary_erosion, distance_transform_edt

    m = downsample_mask(mask, resolution)
    care = np.ones_like(m) if open_region is None else ~downsample_mask(open_region, resolution)
    outline = m & ~binary_erosion(m)
    dist = distance_transform_edt(~outline) if outline.any() else np.full(m.shape, np.inf)
    return SilhouetteTarget(mask=torch.from_numpy(m.astype(np.float32)).to(device), care=care,
                            boundary_distance=dist.astype(np.float32), resolution=resolution)


@dataclass
class SilhouetteBand:
    """The part of the silhouette problem that matters now: triangles near the mask's or the body's outline.

    faces: (F_a,) indices of the active (front-facing, near an outline) triangles; weight: (S, S) float32 tensor of
    the pixels the loss compares (near an outline, where the active triangles decide the occupancy).
    """

    faces: np.ndarray
    weight: torch.Tensor


def silhouette_band(vertices_xy: np.ndarray, faces: np.ndarray, target: SilhouetteTarget,
                    band_px: float) -> SilhouetteBand:
    """Select the triangles and pixels within ``band_px`` of the mask outline or of the body's current outline.

    Triangles farther inside both outlines are covered by their neighbours: they neither change the silhouette nor
    its gradient, so leaving them out makes each step several times cheaper without changing the optimum.
    """
    from scipy.ndimage import binary_erosion, distance_transform_edt

    from human3d.body.keypoints import canonical_to_pixels

    s = target.resolution
    px = canonical_to_pixels(vertices_xy, s)
    face_id, _ = rasterize(px, np.zeros(len(px)), faces, s)
    body = face_id >= 0
    outline = body & ~binary_erosion(body)
    d_body = distance_transform_edt(~outline) if outline.any() else np.full(body.shape, np.inf)
    near = np.minimum(d_body, target.boundary_distance)  # (S, S) pixels to the nearest outline
    # a triangle is near an outline when its centre or a corner is
    corners = np.concatenate([px[faces], px[faces].mean(1, keepdims=True)], 1)  # (F, 4, 2)
    iu = np.clip(corners[..., 0].astype(np.int64), 0, s - 1)
    iv = np.clip(corners[..., 1].astype(np.int64), 0, s - 1)
    centre = corners[:, 3]
    t = vertices_xy[faces]
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    front = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0
    outside = (centre[:, 0] < 0) | (centre[:, 0] >= s) | (centre[:, 1] < 0) | (centre[:, 1] >= s)
    active = front & ((near[iv, iu].min(1) <= band_px) | outside)
    weight = (near <= band_px - 2.0) & target.care
    return SilhouetteBand(faces=np.nonzero(active)[0], weight=torch.from_numpy(weight.astype(np.float32)))


def silhouette_loss(xy: torch.Tensor, faces: torch.Tensor, target: SilhouetteTarget, weight: torch.Tensor,
                    sigma: float = 0.3) -> torch.Tensor:
    """Mean squared difference between the soft silhouette of ``faces`` over ``xy`` and the mask, over ``weight``.

    Normalised by the mask's area, so it is about the fraction of the person's pixels that disagree.
    """
    w = weight.to(xy.device)
    occ = soft_silhouette(xy, faces, target.resolution, sigma, pixels=w > 0)
    return (w * (occ - target.mask) ** 2).sum() / target.mask.sum().clamp_min(1.0)
