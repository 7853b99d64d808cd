"""The embedded multi-view backend (no weights): views made from the fitted body and the input silhouette.

A Photo-Wake-Up-like proxy: over the photo's silhouette S (front view), a front and a back depth sheet. Their mid
depth and half-thickness come from the fitted body (front and back depth maps of the body mesh), carried by
nearest-neighbour extension into the parts of S the body does not cover (loose clothes, hair) and rounded off toward
the border of S. The two sheets are stitched into one closed mesh and rendered in the six body views, so the targets
of carving agree with each other by construction: the front mask is S, the back mask S mirrored, and the side views
show the body's depth profile. Colours: the photo in the front view; the back and sides by body region from the
photo (:mod:`human3d.multiview.back_colors`), with lower colour weights so that the photo wins where it sees.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from human3d.cameras import BODY_VIEW_AZIMUTHS, BODY_VIEW_NAMES, BODY_VIEW_WEIGHTS, OrthoCamera, body_cameras
from human3d.config import MultiViewConfig
from human3d.context import StageContext
from human3d.errors import NoPersonFoundError
from human3d.multiview.back_colors import prior_colors
from human3d.render import get_rasterizer, render_normals
from human3d.types import BodyFit, Framed, MultiView

#: Carving weight of each body view (PSHuman's body-refinement weights).
VIEW_WEIGHTS = BODY_VIEW_WEIGHTS


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if mask.shape[0] == size:
        return mask.astype(bool)
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.BILINEAR)
    return np.asarray(img) >= 128


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if rgb.shape[0] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.LANCZOS))


def body_depth_sheets(body: BodyFit, resolution: int, renderer: str = "auto", device: str = "cpu"
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front-view maps of the body: (z_front, z_back, covered), world z of its nearest and farthest surface."""
    raster = get_rasterizer(renderer, device)
    v = torch.as_tensor(body.vertices, dtype=torch.float32, device=device)
    f = torch.as_tensor(body.faces, dtype=torch.int64, device=device)
    front, back = OrthoCamera("front", 0.0, resolution), OrthoCamera("back", 180.0, resolution)
    with torch.no_grad():
        frags = raster.rasterize(v, f, [front, back])
    depth, mask = frags.depth.cpu().numpy(), frags.mask.cpu().numpy()
    z_front = depth[0]
    z_back = -depth[1][:, ::-1]  # back camera: depth = -z, columns mirrored
    covered = mask[0] & mask[1][:, ::-1]
    return z_front, z_back, covered


def proxy_depths(silhouette: np.ndarray, z_front: np.ndarray, z_back: np.ndarray, covered: np.ndarray,
                 smooth_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Front and back depth sheets over ``silhouette`` (R, R): body depths extended to S and rounded at its
    border. Outside S both are NaN."""
    core = ndimage.binary_erosion(covered, iterations=2)  # the body's rim has no thickness: take depths inside it
    if not core.any():
        core = covered
    if not core.any():
        raise NoPersonFoundError("the fitted body does not overlap the person's silhouette; try another photo or "
                                 "give --mask")
    zf_c = np.where(covered, z_front, 0.0)  # background depth is -inf: keep it out of the arithmetic
    zb_c = np.where(covered, z_back, 0.0)
    mid = 0.5 * (zf_c + zb_c)
    half = 0.5 * (zf_c - zb_c)
    _, (iy, ix) = ndimage.distance_transform_edt(~core, return_indices=True)
    mid, half = mid[iy, ix], half[iy, ix]
    mid = ndimage.gaussian_filter(mid, smooth_px)
    half = ndimage.gaussian_filter(half, smooth_px)
    # round the sheets off toward the silhouette border: a circular profile over a ramp as wide as the thickness
    r = silhouette.shape[0]
    px = 2.0 / r  # canonical units per pixel
    dist = ndimage.distance_transform_edt(silhouette) * px  # distance to the border of S, canonical units
    t = np.clip(dist / np.maximum(half, 2 * px), 0.0, 1.0)
    half = half * np.sqrt(1.0 - (1.0 - t) ** 2)
    zf = np.where(silhouette, mid + half, np.nan)
    zb = np.where(silhouette, mid - half, np.nan)
    return zf, zb


def sheets_to_mesh(zf: np.ndarray, zb: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed mesh from front/back depth sheets sampled every ``step`` pixels: two grids sharing their border
    vertices. Returns (vertices (V, 3) float32, faces (F, 3) int64), counter-clockwise seen from outside."""
    r = zf.shape[0]
    ys = np.arange(step // 2, r, step)
    xs = np.arange(step // 2, r, step)
    inside = np.isfinite(zf[np.ix_(ys, xs)])
    inside = ndimage.binary_opening(inside) if inside.sum() > 50 else inside
    h, w = inside.shape
    border = inside & ~ndimage.binary_erosion(inside, border_value=0)
    gx = 2.0 * (xs + 0.5) / r - 1.0
    gy = 1.0 - 2.0 * (ys + 0.5) / r
    zf_g, zb_g = zf[np.ix_(ys, xs)], zb[np.ix_(ys, xs)]
    mid = 0.5 * (zf_g + zb_g)
    front_id = -np.ones((h, w), np.int64)
    back_id = -np.ones((h, w), np.int64)
    n_front = int(inside.sum())
    front_id[inside] = np.arange(n_front)
    back_only = inside & ~border
    back_id[back_only] = n_front + np.arange(int(back_only.sum()))
    back_id[border] = front_id[border]  # stitched: border vertices are shared by both sheets
    yy, xx = np.nonzero(inside)
    z_front = np.where(border[yy, xx], mid[yy, xx], zf_g[yy, xx])
    verts_front = np.stack([gx[xx], gy[yy], z_front], 1)
    by, bx = np.nonzero(back_only)
    verts_back = np.stack([gx[bx], gy[by], zb_g[by, bx]], 1)
    vertices = np.concatenate([verts_front, verts_back]).astype(np.float32)
    # two triangles per grid cell whose four corners are inside; rows go down (y decreases) in the grid
    a, b = front_id[:-1, :-1], front_id[:-1, 1:]
    c, d = front_id[1:, :-1], front_id[1:, 1:]
    ok = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    # seen from +z with y up: (a, c, b) and (b, c, d) are counter-clockwise
    front_faces = np.concatenate([np.stack([a[ok], c[ok], b[ok]], 1), np.stack([b[ok], c[ok], d[ok]], 1)])
    a, b = back_id[:-1, :-1], back_id[:-1, 1:]
    c, d = back_id[1:, :-1], back_id[1:, 1:]
    back_faces = np.concatenate([np.stack([a[ok], b[ok], c[ok]], 1), np.stack([b[ok], d[ok], c[ok]], 1)])
    faces = np.concatenate([front_faces, back_faces]).astype(np.int64)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    return vertices, faces


def proxy_mesh(framed: Framed, body: BodyFit, resolution: int, renderer: str = "auto", step: int = 2,
               device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces) of the proxy, and the silhouette at ``resolution`` (the body rendered on ``device``)."""
    silhouette = resize_mask(framed.mask, resolution)
    z_front, z_back, covered = body_depth_sheets(body, resolution, renderer, device)
    zf, zb = proxy_depths(silhouette, z_front, z_back, covered, smooth_px=resolution / 192)
    v, f = sheets_to_mesh(zf, zb, step=max(1, int(step * resolution / 384)))
    return v, f, silhouette


def generate_prior_views(framed: Framed, body: BodyFit, cfg: MultiViewConfig, ctx: StageContext) -> MultiView:
    """The six body views (normals, masks; colours in the front, back and side views) from the body and the
    silhouette."""
    r = int(cfg.resolution)
    ctx.progress(0.1, "building the silhouette proxy from the body fit")
    v, f, silhouette = proxy_mesh(framed, body, r, device=ctx.device)
    ctx.progress(0.5, f"rendering {len(BODY_VIEW_NAMES)} views of the proxy ({len(f)} faces)")
    raster = get_rasterizer("auto", ctx.device)
    with torch.no_grad():
        out = render_normals(torch.as_tensor(v, device=ctx.device), torch.as_tensor(f, device=ctx.device),
                             body_cameras(r), raster, antialias=False)
    normals = out.normals.cpu().numpy().astype(np.float32)
    masks = out.frags.mask.cpu().numpy()
    # the photo decides the front and back outlines exactly; the proxy's grid only approximates them, so pixels of
    # the outline it misses take the normal of the nearest pixel it covers
    for i, target in ((0, silhouette), (3, silhouette[:, ::-1])):
        rendered = masks[i]
        if rendered.any():
            _, (iy, ix) = ndimage.distance_transform_edt(~rendered, return_indices=True)
            normals[i] = normals[i][iy, ix]
        masks[i] = target
    normals[~masks] = 0.0
    ctx.progress(0.8, "colouring the back and sides by body region")
    colors, color_weights = prior_colors(resize_rgb(framed.rgb, r).astype(np.float32) / 255.0, silhouette, body,
                                         masks, out.frags.depth.cpu().numpy(), ctx)
    ctx.progress(1.0, "done")
    return MultiView(normals=normals, colors=colors, masks=masks, view_weights=np.asarray(VIEW_WEIGHTS, np.float32),
                     view_names=list(BODY_VIEW_NAMES), azimuths=list(BODY_VIEW_AZIMUTHS), backend="prior",
                     color_weights=color_weights)
