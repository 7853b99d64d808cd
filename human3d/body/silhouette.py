"""Silhouettes for the body fit: a small exact rasteriser (numpy, front view) for masks, depth and test images, and a
differentiable silhouette loss (torch) that pulls projected vertices into a mask and makes them cover it.

The rasteriser here is deliberately minimal (orthographic front view, no attributes beyond face id and depth); the
pipeline's general renderer lives in :mod:`human3d.render`.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def soft_silhouette(xy: torch.Tensor, faces: torch.Tensor, resolution: int, sigma: float = 0.5) -> torch.Tensor:
    """Differentiable front-view silhouette: (S, S) occupancy in [0, 1] of triangles ``faces`` (F, 3) whose
    vertices project to canonical ``xy`` (V, 2).

    Each pixel centre gets from each nearby triangle the probability sigmoid(-d / sigma) of being inside it, d its
    signed distance to the triangle in pixels (negative inside); a pixel is empty only if no triangle covers it,
    occupancy = 1 - prod(1 - p) (SoftRas's silhouette). Triangles are only tested against pixels within 4 sigma of
    their bounding box, so the cost follows the number of triangles, not triangles x pixels.
    """
    s = resolution
    p = canonical_to_pixels_t(xy, s)
    tri = p[faces]  # (F, 3, 2)
    margin = 4.0 * sigma
    with torch.no_grad():
        lo = torch.floor(tri.min(1).values - 0.5 - margin).long()
        hi = torch.ceil(tri.max(1).values - 0.5 + margin).long()
        size = (hi - lo + 1).max(1).values
        inside_canvas = (hi >= 0).all(1) & (lo < s).all(1)
    log_empty = xy.new_zeros(s * s)
    done = torch.zeros_like(size, dtype=torch.bool) | ~inside_canvas
    patch = 4
    while not bool(done.all()):
        sel = torch.nonzero(~done & (size <= patch)).squeeze(1) if patch < 32 else torch.nonzero(~done).squeeze(1)
        if patch >= 32:
            patch = int(size[sel].max())
        done[sel] = True
        if len(sel):
            log_empty = log_empty + _soft_bucket(tri[sel], lo[sel], patch, s, sigma)
        patch *= 2
    return (1.0 - torch.exp(log_empty)).reshape(s, s)


def _soft_bucket(tri: torch.Tensor, lo: torch.Tensor, patch: int, s: int, sigma: float) -> torch.Tensor:
    """(S*S,) sum over these triangles (n, 3, 2) of log(1 - p) per pixel, for the pixels of a patch x patch grid
    from each triangle's corner ``lo`` (n, 2)."""
    ar = torch.arange(patch, device=tri.device)
    gy, gx = torch.meshgrid(ar, ar, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)  # (P*P, 2) integer offsets (u, v)
    pix = lo[:, None, :] + grid[None]  # (n, P*P, 2)
    valid = (pix >= 0).all(-1) & (pix < s).all(-1)
    out = tri.new_zeros(s * s)
    with torch.no_grad():
        # Signed distances to the three edge *lines* (negative inside): their maximum is exact inside the
        # triangle and a lower bound of the distance outside it, enough to sort the pixels cheaply.
        c = pix.to(tri.dtype) + 0.5
        t = tri.detach()[:, None]
        a, b, d = t[..., 0, :], t[..., 1, :], t[..., 2, :]
        sign = torch.where(_cross_t(b - a, d - a) >= 0, -1.0, 1.0)
        line = torch.stack([_cross_t(q - p, c - p) * sign / (q - p).norm(dim=-1).clamp_min(1e-9)
                            for p, q in ((a, b), (b, d), (d, a))], -1)
        bound = line.max(-1).values
    # Only pixels within 4 sigma of an edge have a gradient worth computing; deeper inside, log(1 - p) is a
    # constant as far as the optimiser is concerned (its derivative vanishes), farther out it is 0.
    deep = valid & (bound <= -4.0 * sigma)
    near = valid & ~deep & (bound < 4.0 * sigma)
    index = pix[..., 1] * s + pix[..., 0]
    out = out.index_add(0, index[deep], F.logsigmoid(bound[deep] / sigma))
    ni, pi = torch.nonzero(near, as_tuple=True)
    if len(ni):
        c = pix[ni, pi].to(tri.dtype) + 0.5
        d = _signed_distance(c, tri[ni])
        out = out.index_add(0, index[ni, pi], F.logsigmoid(d / sigma))  # log(1 - sigmoid(-d / sigma))
    return out


def _signed_distance(c: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) from points ``c`` (..., 2) to triangles ``tri`` (..., 3, 2), broadcast."""
    a, b, d = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    sign = torch.where(_cross_t(b - a, d - a) >= 0, 1.0, -1.0)  # orientation-independent inside test
    inside = ((_cross_t(b - a, c - a) * sign >= 0) & (_cross_t(d - b, c - b) * sign >= 0)
              & (_cross_t(a - d, c - d) * sign >= 0))
    dist = torch.minimum(torch.minimum(_segment_distance(c, a, b), _segment_distance(c, b, d)),
                         _segment_distance(c, d, a))
    return torch.where(inside, -dist, dist)


def _cross_t(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]


def _segment_distance(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from points ``c`` (..., 2) to segments [a, b] (broadcast)."""
    ab = b - a
    t = ((c - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)
    q = a + t.clamp(0.0, 1.0)[..., None] * ab
    return ((c - q) ** 2).sum(-1).clamp_min(1e-12).sqrt()


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
    occ = soft_silhouette(xy, faces, target.resolution, sigma)
    w = weight.to(occ.device)
    return (w * (occ - target.mask) ** 2).sum() / target.mask.sum().clamp_min(1.0)
