"""The embedded multi-view backend (no weights): views made from the fitted body and the input silhouette.

A Photo-Wake-Up-like proxy: over the photo's silhouette S (front view), a front and a back depth sheet, ``mid ±
half``. Where the fitted body is well inside S they are the body's (front and back depth maps of the body mesh,
rounded off toward the border of S); where S leaves the body (loose clothes, hair, hats, held objects) they are an
inflation of S (:mod:`.thickness`): round at the occluding contour, continuing the body's thickness and depth where
it meets it. The body itself first gets its garments as thick all round as at its sides, and a skirt or coat
between the legs hangs from the hips (:mod:`.thickness`). The face mesh of the photo's face (:mod:`.face`,
mediapipe's bundled model) is blended into the front sheet over the face. Where a view sees the body's own surface,
it takes the body's rendered normals (the proxy's grid facets steep sides). The proxy mesh travels with the views
(``MultiView.start_vertices``): carving starts from it. The two sheets are stitched into one closed mesh and rendered in the six body views, so the
targets of carving agree with each other by construction: the front mask is S, the back mask S mirrored, and the
side views show the body's and the inflation's depth profile. Colours: the photo in the front view; the back and
sides by body region from the photo (:mod:`human3d.multiview.back_colors`), with lower colour weights so that the
photo wins where it sees.
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
from human3d.multiview.face import FaceSurface, blend_face_depth, find_face, paste_face_normals
from human3d.multiview.thickness import (
    LOOSE_DEPTH,
    body_support,
    drape,
    even_garments,
    inflate,
    loose_ratio,
    loose_volume,
    smooth_inside,
)
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
                 smooth_px: float, legs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Front and back depth sheets over ``silhouette`` (R, R): the body's depths where it is well inside S, and an
    inflation of the rest (:mod:`.thickness`: round at the contour, continuing the body where it meets it); with
    ``legs`` (:func:`leg_labels`), a skirt or coat between the legs hangs from the hips (:func:`.thickness.drape`)
    and what covers the head is round (:func:`.thickness.loose_ratio`).
    Outside S both are NaN."""
    core = ndimage.binary_erosion(covered, iterations=2)  # the body's rim has no thickness: take depths inside it
    if not core.any():
        core = covered
    if not (core & silhouette).any():
        raise NoPersonFoundError("the fitted body does not overlap the person's silhouette; try another photo or "
                                 "give --mask")
    zf_c = np.where(covered, z_front, 0.0)  # background depth is -inf: keep it out of the arithmetic
    zb_c = np.where(covered, z_back, 0.0)
    mid = smooth_inside(0.5 * (zf_c + zb_c), core, smooth_px)
    half = smooth_inside(0.5 * (zf_c - zb_c), core, smooth_px)
    support, half = body_support(silhouette, core, half, covered)
    mid, half = inflate(silhouette, support, mid, half)
    half = loose_volume(silhouette, covered, half, ratio=LOOSE_DEPTH if legs is None else loose_ratio(legs))
    zf = np.where(silhouette, mid + half, np.nan)
    zb = np.where(silhouette, mid - half, np.nan)
    return (zf, zb) if legs is None else drape(silhouette, legs, zf, zb)


def leg_labels(body: BodyFit, resolution: int, renderer: str = "auto", device: str = "cpu") -> np.ndarray | None:
    """(R, R) int8: 1 where the front view of the body sees its left leg, 2 its right leg, 4 an arm or a hand, 5
    the head or face, 3 another part, 0 where it sees nothing; None when the fit has no part labels."""
    if body.parts is None or len(body.parts) != len(body.vertices):
        return None
    from human3d.body.parts import PART_NAMES
    from human3d.multiview.back_colors import render_part_labels

    labels = render_part_labels(body.vertices, body.faces, body.parts, [OrthoCamera("front", 0.0, resolution)],
                                renderer, device)[0]
    out = np.where(labels >= 0, 3, 0).astype(np.int8)
    for side, value in (("l", 1), ("r", 2)):
        ids = [PART_NAMES.index(f"{p}_{side}") for p in ("upper_leg", "lower_leg")]
        out[np.isin(labels, ids)] = value
    arms = [i for i, n in enumerate(PART_NAMES) if n.startswith(("upper_arm", "forearm", "hand"))]
    out[np.isin(labels, arms)] = 4
    out[np.isin(labels, [PART_NAMES.index("face"), PART_NAMES.index("head")])] = 5
    return out


def sheets_to_mesh(zf: np.ndarray, zb: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed mesh from front/back depth sheets sampled every ``step`` pixels: two grids joined along their
    outline by a rim (a wall between the two sheets' edges, facing out in the image plane: the occluding contour).
    Returns (vertices (V, 3) float32, faces (F, 3) int64), counter-clockwise seen from outside."""
    r = zf.shape[0]
    ys = np.arange(step // 2, r, step)
    xs = np.arange(step // 2, r, step)
    inside = np.isfinite(zf[np.ix_(ys, xs)])
    inside = ndimage.binary_opening(inside) if inside.sum() > 50 else inside
    h, w = inside.shape
    gx = 2.0 * (xs + 0.5) / r - 1.0
    gy = 1.0 - 2.0 * (ys + 0.5) / r
    inside, zf_g, zb_g = fill_pinches(inside, zf[np.ix_(ys, xs)], zb[np.ix_(ys, xs)])
    front_id = -np.ones((h, w), np.int64)
    front_id[inside] = np.arange(int(inside.sum()))
    yy, xx = np.nonzero(inside)
    verts_front = np.stack([gx[xx], gy[yy], zf_g[yy, xx]], 1)
    verts_back = np.stack([gx[xx], gy[yy], zb_g[yy, xx]], 1)
    # two triangles per grid cell whose four corners are inside; rows go down (y decreases) in the grid
    a, b = front_id[:-1, :-1], front_id[:-1, 1:]
    c, d = front_id[1:, :-1], front_id[1:, 1:]
    ok = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    # seen from +z with y up: (a, c, b) and (b, c, d) are counter-clockwise
    front_faces = np.concatenate([np.stack([a[ok], c[ok], b[ok]], 1), np.stack([b[ok], c[ok], d[ok]], 1)])
    n = len(verts_front)
    vertices = np.concatenate([verts_front, verts_back]).astype(np.float32)
    back_faces = front_faces[:, [0, 2, 1]] + n  # the back sheet: the same cells, wound the other way
    faces = np.concatenate([front_faces, back_faces, rim_faces(front_faces, n)]).astype(np.int64)
    return vertices, faces


def fill_pinches(inside: np.ndarray, zf: np.ndarray, zb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid points (H, W) ``inside``, with front/back depths ``zf``, ``zb`` (H, W), where no two full cells touch only at
    a corner: such a pinch of the outline would carry the rim twice (a non-manifold edge) or, split, leave two
    pieces. The missing corner of one of the two other cells at the pinch is added (depths of its nearest inside
    point), joining the pieces by one cell, until there is none."""
    inside, zf, zb = inside.copy(), zf.copy(), zb.copy()
    for _ in range(64):
        full = inside[:-1, :-1] & inside[:-1, 1:] & inside[1:, :-1] & inside[1:, 1:]
        # cells (i, j) and (i+1, j+1) full, (i, j+1) and (i+1, j) not: (i, j+2) completes (i, j+1)
        d1 = full[:-1, :-1] & full[1:, 1:] & ~full[:-1, 1:] & ~full[1:, :-1]
        # cells (i, j+1) and (i+1, j) full, (i, j) and (i+1, j+1) not: (i, j) completes (i, j)
        d2 = full[:-1, 1:] & full[1:, :-1] & ~full[:-1, :-1] & ~full[1:, 1:]
        if not (d1.any() or d2.any()):
            break
        add = np.zeros_like(inside)
        i, j = np.nonzero(d1)
        add[i, j + 2] = True
        i, j = np.nonzero(d2)
        add[i, j] = True
        _, (iy, ix) = ndimage.distance_transform_edt(~inside, return_indices=True)
        zf[add], zb[add] = zf[iy[add], ix[add]], zb[iy[add], ix[add]]
        inside |= add
    return inside, zf, zb


def rim_faces(front_faces: np.ndarray, offset: int) -> np.ndarray:
    """(2E, 3) triangles joining every boundary edge (a, b) of the front sheet (F, 3) to its back copy
    (a + offset, b + offset): for the edge as its face runs it (face on the left), (b, a, a') and (b, a', b') face
    out to its right."""
    directed = np.concatenate([front_faces[:, [0, 1]], front_faces[:, [1, 2]], front_faces[:, [2, 0]]])
    key = np.sort(directed, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    edge = directed[counts[inverse.ravel()] == 1]
    ea, eb = edge[:, 0], edge[:, 1]
    return np.concatenate([np.stack([eb, ea, ea + offset], 1), np.stack([eb, ea + offset, eb + offset], 1)])


def garment_body(body: BodyFit) -> BodyFit:
    """The body fit with its garments as thick all round as the photo's outline shows them at the sides
    (:func:`.thickness.even_garments`); the fit itself when it carries no clothing offsets or part labels."""
    import dataclasses

    n = len(body.vertices)
    if body.offsets is None or body.parts is None or len(body.offsets) != n or len(body.parts) != n \
            or not np.any(body.offsets > 0):
        return body
    return dataclasses.replace(body, vertices=even_garments(body.vertices, body.faces, body.offsets, body.parts))


def proxy_sheets(framed: Framed, body: BodyFit, resolution: int, renderer: str = "auto",
                 face: FaceSurface | None = None, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(zf, zb, silhouette) at ``resolution``: the proxy's depth sheets over the body with even garments
    (:func:`garment_body`; pass it, or the fit), ``face`` (at ``resolution``) blended into the front one."""
    silhouette = resize_mask(framed.mask, resolution)
    z_front, z_back, covered = body_depth_sheets(body, resolution, renderer, device)
    zf, zb = proxy_depths(silhouette, z_front, z_back, covered, smooth_px=resolution / 192,
                          legs=leg_labels(body, resolution, renderer, device))
    if face is not None:
        zf = blend_face_depth(zf, zb, face)
    return zf, zb, silhouette


def proxy_mesh(framed: Framed, body: BodyFit, resolution: int, renderer: str = "auto", step: int = 2,
               face: FaceSurface | None = None, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces) of the proxy, and the silhouette at ``resolution`` (the body rendered on ``device``)."""
    zf, zb, silhouette = proxy_sheets(framed, body, resolution, renderer, face, device)
    v, f = sheets_to_mesh(zf, zb, step=mesh_step(resolution, step))
    return v, f, silhouette


def mesh_step(resolution: int, step: int = 2) -> int:
    """Grid step in pixels of the proxy mesh at ``resolution`` (``step`` at 384)."""
    return max(1, int(step * resolution / 384))


#: Depth difference (canonical units, about 8 mm) below which a view's proxy surface counts as the body's own, and
#: takes the body's rendered normal (fading out to the proxy's at this difference).
BODY_NORMAL_TOLERANCE = 0.01


def body_normals_where_body(normals: np.ndarray, masks: np.ndarray, depths: np.ndarray, body: BodyFit,
                            raster: object, resolution: int, device: str) -> np.ndarray:
    """(N, R, R, 3) the proxy's rendered ``normals`` with the body's own rendered normals blended in wherever the
    proxy's surface is the body's (depths (N, R, R) within BODY_NORMAL_TOLERANCE of the body's, masks (N, R, R)):
    the proxy samples the body's depth on a front-view grid, which facets its sides and back; the body mesh does
    not."""
    half = max(resolution // 2, 16)  # the body's normals are smooth: rendered at half the size, then upsampled
    with torch.no_grad():
        b = render_normals(torch.as_tensor(body.vertices, dtype=torch.float32, device=device),
                           torch.as_tensor(body.faces, dtype=torch.int64, device=device), body_cameras(half),
                           raster, antialias=False)
        up = torch.nn.functional.interpolate(b.normals.permute(0, 3, 1, 2), size=(resolution, resolution),
                                             mode="bilinear", align_corners=False)
        nb = torch.nn.functional.normalize(up, dim=1, eps=1e-12).permute(0, 2, 3, 1).cpu().numpy()
    k = resolution / half
    idx = np.minimum((np.arange(resolution) / k).astype(np.int64), half - 1)
    db = b.frags.depth.cpu().numpy()[:, idx][:, :, idx]
    mb = b.frags.mask.cpu().numpy()[:, idx][:, :, idx]
    mb &= ndimage.binary_erosion(mb, np.ones((1, 3, 3), bool))  # upsampled normals mix in the background there
    both = masks & mb
    gap = np.ones(masks.shape)
    gap[both] = np.abs(depths[both] - db[both])
    w = np.clip(1.0 - gap / BODY_NORMAL_TOLERANCE, 0.0, 1.0)[..., None]
    mixed = (1.0 - w) * normals + w * nb
    mixed /= np.maximum(np.linalg.norm(mixed, axis=-1, keepdims=True), 1e-12)
    return np.where(w > 0, mixed, normals).astype(np.float32)


def fill_degenerate_normals(normals: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, R, R, 3) normals where every covered pixel whose interpolated normal vanished (vertex normals of the
    stitched border that cancel across a triangle) takes the normal of the nearest covered pixel that has one."""
    out = normals.copy()
    for i in range(len(normals)):
        valid = np.linalg.norm(normals[i], axis=-1) > 0.5
        bad = masks[i] & ~valid
        if bad.any() and valid.any():
            _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
            out[i][bad] = normals[i][iy[bad], ix[bad]]
    return out


def generate_prior_views(framed: Framed, body: BodyFit, cfg: MultiViewConfig, ctx: StageContext) -> MultiView:
    """The six body views (normals, masks; colours in the front, back and side views) from the body and the
    silhouette."""
    r = int(cfg.resolution)
    ctx.progress(0.1, "building the silhouette proxy from the body fit")
    face = find_face(framed, body, r, ctx)
    clothed = garment_body(body)
    zf, zb, silhouette = proxy_sheets(framed, clothed, r, face=face, device=ctx.device)
    v, f = sheets_to_mesh(zf, zb, step=mesh_step(r))
    ctx.progress(0.5, f"rendering {len(BODY_VIEW_NAMES)} views of the proxy ({len(f)} faces)")
    raster = get_rasterizer("auto", ctx.device)
    with torch.no_grad():
        out = render_normals(torch.as_tensor(v, device=ctx.device), torch.as_tensor(f, device=ctx.device),
                             body_cameras(r), raster, antialias=False)
    normals = out.normals.cpu().numpy().astype(np.float32)
    masks = out.frags.mask.cpu().numpy()
    normals = body_normals_where_body(normals, masks, out.frags.depth.cpu().numpy(), clothed, raster, r,
                                      ctx.device)
    if face is not None:
        normals[0] = paste_face_normals(normals[0], masks[0], face, zf)
    normals = fill_degenerate_normals(normals, masks)
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
                     color_weights=color_weights, start_vertices=v.astype(np.float32),
                     start_faces=f.astype(np.int64))
