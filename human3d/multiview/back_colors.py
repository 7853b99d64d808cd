"""Colours of the prior's back and side views by body region: each pixel takes what the front photo shows of the
same body part at the matching place (torso from torso, sleeves from sleeves, trousers from trousers, the back of
the head from the front's hair), never the colour of another part that covers it in the photo.

1. Part labels of the photo: the fitted body's parts (:mod:`human3d.body.parts`) rendered in the front view (the
   part nearest the camera at each pixel is what the photo shows there), carried over the rest of the silhouette by
   nearest pixel (loose clothes, hair).
2. Sources: front pixels of each part away from other parts and from the outline (the fit is not exact), less
   skin-coloured pixels of a part that is mostly clothing (a hand or face the fit's parts miss).
3. Each pixel of a target view sees a point of the proxy surface (from its depth); its part is the part of the
   nearest body vertex. It takes the photo's colour at the same (x, y) -- the same place on the part's front, seen
   through the body -- when that photo pixel is a source of the same part; else the mean of the part's nearest
   sources, with distances stretched along the part's axis so the match keeps the height along the part (the
   head is round: the back of the head takes the nearest hair or hat around the face).
   Seen from behind, the torso's points look up the front torso nearer its sides (same row, same side; then
   blurred, mostly across): the back of a garment is like its sides, not like its front's opening, buttons or print
   (the neck's likewise: a collar, a hood or hair at its sides, not the chin above its front);
   and the head's points look up the front head nearer its outline (same direction from its centre): the back of
   the head is like the hair or hood at its outline, not like a fringe or a hood's opening around the face.
4. Seams between parts and between those two cases are blended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from human3d.body.parts import (
    FACE,
    HEAD,
    NECK,
    PART_NAMES,
    SHIRT_PARTS,
    TORSO,
    TROUSER_PARTS,
    part_palette,
    vertex_parts,
)
from human3d.cameras import BODY_VIEW_AZIMUTHS, BODY_VIEW_NAMES, OrthoCamera
from human3d.context import StageContext
from human3d.ops.image import row_runs
from human3d.render import get_rasterizer
from human3d.types import BodyFit

#: Colour-fusion weight of each body view's colours (BODY_VIEW_NAMES order): the photo counts most; the back and
#: sides, guessed from it, less (so where the photo sees a point its colour wins); the 45-degree views none (the
#: front and the sides cover them, and each coloured view costs the texture stage a visibility render).
VIEW_COLOR_WEIGHTS: tuple[float, ...] = (1.0, 0.0, 0.35, 0.5, 0.35, 0.0)

#: Where a part has no source in the photo (hidden or too small), the part whose colours it takes instead.
_FALLBACK: dict[str, str] = {
    "face": "head", "head": "neck", "neck": "torso", "torso": "hips", "hips": "torso",
    "upper_arm_l": "torso", "upper_arm_r": "torso", "forearm_l": "upper_arm_l", "forearm_r": "upper_arm_r",
    "hand_l": "forearm_l", "hand_r": "forearm_r", "upper_leg_l": "hips", "upper_leg_r": "hips",
    "lower_leg_l": "upper_leg_l", "lower_leg_r": "upper_leg_r", "foot_l": "lower_leg_l", "foot_r": "lower_leg_r",
}
#: Parts whose pixels are skin in most photos (the reference skin colour), and parts usually covered (clothes,
#: hair): a skin-coloured pixel of those, where the part as a whole is not, is a hand or face the fit misplaced.
_SKIN_PARTS = (FACE, PART_NAMES.index("hand_l"), PART_NAMES.index("hand_r"))
_COVERED_PARTS = (HEAD, *(PART_NAMES.index(p) for p in SHIRT_PARTS + TROUSER_PARTS))
#: Neighbouring parts one piece of clothing usually spans: a pixel of one may take the photo's colour straight from
#: the other when the other covers it in the photo (a hand or a face never lends its colour to another part).
_ADJACENT: tuple[tuple[str, str], ...] = (
    ("hips", "torso"), ("hips", "upper_leg_l"), ("hips", "upper_leg_r"), ("upper_leg_l", "lower_leg_l"),
    ("upper_leg_r", "lower_leg_r"), ("upper_arm_l", "forearm_l"), ("upper_arm_r", "forearm_r"),
)


def adjacency() -> np.ndarray:
    """(P, P) bool: part i may take the photo's colour where part j shows (itself, and :data:`_ADJACENT`)."""
    out = np.eye(len(PART_NAMES), dtype=bool)
    for a, b in _ADJACENT:
        i, j = PART_NAMES.index(a), PART_NAMES.index(b)
        out[i, j] = out[j, i] = True
    return out


@dataclass
class RegionSettings:
    """Tuning of :func:`region_colors`, in pixels of the working resolution unless said otherwise."""

    margin_px: float = 3.0
    """Sources keep this far from another part's pixels (the fit's parts are not exactly where the photo's are)."""
    edge_px: float = 3.5
    """... and from the silhouette's outline (its pixels are blended with the background, and a segmentation mask
    often runs 2-3 px of this resolution past the person: sources nearer than that painted the sides with the
    photo's background in stripes)."""
    stretch: float = 3.0
    """A step along a part's axis counts this many steps across it when matching an unseen pixel to sources."""
    neighbours: int = 6
    """Sources averaged for an unseen pixel."""
    skin_chroma: float = 0.04
    """Chromaticity distance within which a pixel counts as skin-coloured (see :func:`skin_colored`)."""
    skin_brightness: tuple[float, float] = (0.55, 1.6)
    """Brightness range, relative to the skin's, of a skin-coloured pixel."""
    back_band: float = 0.35
    """The back of the torso takes its colours from this outer fraction of each half of the front torso's width in
    the same row (the back of a garment looks like its sides, not like its front's opening, buttons or print)."""
    head_band: float = 0.25
    """The back of the head takes its colours from this outer fraction of the front head's radius in the same
    direction from its centre (the back of the head looks like the hair or the hood at the head's outline, not
    like a fringe or a hood's opening just around the face)."""
    seam_px: float = 2.0
    """Width (Gaussian sigma) of the blend across seams."""
    min_sources: int = 12
    """A part with fewer sources than this keeps all its pixels as sources (thin or mostly hidden parts)."""


def render_part_labels(vertices: np.ndarray, faces: np.ndarray, parts: np.ndarray, cameras: Sequence[OrthoCamera],
                       renderer: str = "auto", device: str | torch.device = "cpu") -> np.ndarray:
    """(B, R, R) int16 part of the surface each pixel sees (the triangle's corner nearest the pixel), -1 where
    the mesh is not. vertices (V, 3), faces (F, 3), parts (V,); rasterized on ``device``."""
    raster = get_rasterizer(renderer, device)
    with torch.no_grad():
        frags = raster.rasterize(torch.as_tensor(vertices, dtype=torch.float32, device=device),
                                 torch.as_tensor(faces, dtype=torch.int64, device=device), cameras)
    tri, bary = frags.tri_id.cpu().numpy(), frags.bary.cpu().numpy()
    out = np.full(tri.shape, -1, np.int16)
    hit = tri >= 0
    corners = np.asarray(faces)[tri[hit]]  # (N, 3)
    out[hit] = np.asarray(parts)[corners[np.arange(len(corners)), bary[hit].argmax(-1)]]
    return out


def extend_labels(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(R, R) labels carried from labelled pixels (>= 0) to every pixel of ``mask`` by nearest pixel; -1 outside
    ``mask``."""
    known = labels >= 0
    if not known.any():
        return np.full(labels.shape, -1, np.int16)
    _, (iy, ix) = ndimage.distance_transform_edt(~known, return_indices=True)
    return np.where(mask, labels[iy, ix], -1).astype(np.int16)


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """(R, R) bool: pixels with a 4-neighbour of another label (-1, the background, counts as a label)."""
    out = np.zeros(labels.shape, bool)
    dy = labels[1:] != labels[:-1]
    dx = labels[:, 1:] != labels[:, :-1]
    out[1:] |= dy
    out[:-1] |= dy
    out[:, 1:] |= dx
    out[:, :-1] |= dx
    return out


def source_core(labels: np.ndarray, s: RegionSettings) -> np.ndarray:
    """(R, R) bool: labelled pixels at least ``s.margin_px`` from another part and ``s.edge_px`` from the outline."""
    inside = labels >= 0
    edge = label_boundaries(np.where(inside, 0, -1))
    internal = label_boundaries(labels) & ~edge
    far = ndimage.distance_transform_edt(~internal) >= s.margin_px
    return inside & far & (ndimage.distance_transform_edt(inside) > s.edge_px)


def box(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Row and column slices of ``mask``'s bounding box grown by ``pad`` pixels (clipped; all of it if empty)."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if not len(rows):
        return slice(0, mask.shape[0]), slice(0, mask.shape[1])
    return (slice(max(rows[0] - pad, 0), rows[-1] + pad + 1), slice(max(cols[0] - pad, 0), cols[-1] + pad + 1))


def skin_colored(labels: np.ndarray, rgb: np.ndarray, core: np.ndarray, s: RegionSettings) -> np.ndarray:
    """(R, R) bool: pixels coloured like the face and hands (the median of their ``core`` pixels): chromaticity
    (rgb / sum) within ``s.skin_chroma`` of theirs and brightness within ``s.skin_brightness`` times theirs (shading
    changes brightness far more than chromaticity). All False when the photo shows too little face or hand."""
    ref_px = core & np.isin(labels, _SKIN_PARTS)
    if ref_px.sum() < 10:
        return np.zeros(labels.shape, bool)
    ref = np.median(rgb[ref_px], 0)
    ref_total = max(float(ref.sum()), 1e-3)
    total = rgb.sum(-1)
    chroma = rgb / np.maximum(total, 1e-3)[..., None]
    bright = total / ref_total
    return ((np.linalg.norm(chroma - ref / ref_total, axis=-1) < s.skin_chroma)
            & (bright > s.skin_brightness[0]) & (bright < s.skin_brightness[1]))


def grow_face(labels: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """``labels`` with the photo's whole face labelled ``FACE``: skin-coloured head and neck pixels connected to
    skin-coloured face pixels (the fitted head is rarely exactly where the photo's is)."""
    region = skin & np.isin(labels, (FACE, HEAD, NECK))
    comp, n = ndimage.label(region, structure=np.ones((3, 3)))
    if n == 0:
        return labels
    touching = np.unique(comp[region & (labels == FACE)])
    out = labels.copy()
    out[np.isin(comp, touching[touching > 0])] = FACE
    return out


def usable_sources(labels: np.ndarray, skin: np.ndarray, s: RegionSettings) -> np.ndarray:
    """(R, R) bool: front pixels whose colour may stand for their part elsewhere (see the module docstring, 2):
    the :func:`source_core`, less skin-coloured pixels of covered parts (clothes, hair) that are mostly not skin (a
    hand or face the fit misplaced); a part left with too few keeps all its pixels."""
    inside = labels >= 0
    usable = source_core(labels, s)
    for p in _COVERED_PARTS:
        sel = usable & (labels == p)
        if sel.any() and skin[sel].mean() < 0.5:
            usable &= ~(sel & skin)
    interior = ndimage.distance_transform_edt(inside) > s.edge_px
    for p in np.unique(labels[inside]):
        own = labels == p
        if (usable & own).sum() < s.min_sources:  # thin or mostly covered: all of it, less the outline if it can
            usable |= own & interior if (own & interior).sum() >= s.min_sources else own
    return usable


def _stretch_matrix(points: np.ndarray, part: int, stretch: float) -> np.ndarray:
    """(2, 2) linear map of pixel coordinates in which a step along the part's axis (its pixels' principal
    direction) is ``stretch`` times longer; none for the head (round: its back takes the nearest hair or hat)."""
    if part in (FACE, HEAD) or len(points) < 3:
        return np.eye(2)
    centred = points - points.mean(0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    axis = vecs[:, -1]
    return np.eye(2) + (stretch - 1.0) * np.outer(axis, axis)


@dataclass
class PartSources:
    """Front pixels each part's colours may come from.

    labels: (R, R) int16 part of every front pixel (-1 outside the silhouette); usable: (R, R) bool sources;
    trees: part -> (KD-tree of its sources in stretched pixel coordinates, (2, 2) stretch, (N, 3) their colours).
    """

    labels: np.ndarray
    usable: np.ndarray
    trees: dict[int, tuple[cKDTree, np.ndarray, np.ndarray]]

    def resolve(self, part: int) -> int | None:
        """``part`` when it has sources, else the first part of its fallback chain that has, else the part with
        the most sources; None when there are none at all."""
        name = PART_NAMES[part]
        for _ in range(len(PART_NAMES)):
            if PART_NAMES.index(name) in self.trees:
                return PART_NAMES.index(name)
            name = _FALLBACK[name]
        return max(self.trees, key=lambda p: len(self.trees[p][2])) if self.trees else None


def front_sources(labels: np.ndarray, rgb: np.ndarray, s: RegionSettings) -> PartSources:
    """The sources of every part in the front view: labels (R, R) from :func:`extend_labels`, rgb (R, R, 3)."""
    rows, cols = box(labels >= 0, int(s.margin_px) + 2)  # the work stays inside the person's box
    lab, img = labels[rows, cols], rgb[rows, cols]
    skin = skin_colored(lab, img, source_core(lab, s), s)
    lab = grow_face(lab, skin)
    use = usable_sources(lab, skin, s)
    trees = {}
    for p in np.unique(lab[use]):
        yy, xx = np.nonzero(use & (lab == p))
        pts = np.stack([xx + cols.start, yy + rows.start], 1).astype(np.float64)
        a = _stretch_matrix(pts, int(p), s.stretch)
        trees[int(p)] = (cKDTree(pts @ a.T), a, img[yy, xx])
    full_labels = np.full(labels.shape, -1, np.int16)
    full_labels[rows, cols] = lab
    usable = np.zeros(labels.shape, bool)
    usable[rows, cols] = use
    return PartSources(labels=full_labels, usable=usable, trees=trees)


def match_colors(xy: np.ndarray, parts: np.ndarray, src: PartSources, rgb: np.ndarray, s: RegionSettings
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Colours of target points at front pixel coordinates ``xy`` (N, 2) (x right, y down, centres at +0.5) of
    parts ``parts`` (N,): ((N, 3) colours, (N,) bool taken straight from the photo: where it shows a source of
    the same or an adjacent part)."""
    r = src.labels.shape[0]
    ix = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, r - 1)
    iy = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, r - 1)
    direct = src.usable[iy, ix] & adjacency()[parts, np.maximum(src.labels[iy, ix], 0)]
    out = np.zeros((len(xy), 3), np.float32)
    out[direct] = rgb[iy[direct], ix[direct]]
    for p in np.unique(parts[~direct]):
        sel = ~direct & (parts == p)
        q = src.resolve(int(p))
        if q is None:
            continue
        tree, a, cols = src.trees[q]
        k = min(s.neighbours, len(cols))
        d, i = tree.query((xy[sel] - 0.5) @ a.T, k=k)
        d, i = d.reshape(len(d), k), i.reshape(len(i), k)
        w = 1.0 / (d + 1.0)
        out[sel] = (cols[i] * w[..., None]).sum(1) / w.sum(1, keepdims=True)
    return out, direct


def toward_sides(xy: np.ndarray, parts: np.ndarray, labels: np.ndarray, band: float, part: int = TORSO
                 ) -> np.ndarray:
    """Front pixel coordinates (N, 2) of ``part``'s points (the torso's, or the neck's) seen from behind, moved out
    toward the part's sides in their row: its half-width maps onto its outer ``band`` (mirrored side and height
    kept). labels: (R, R)."""
    region = labels == part
    r = labels.shape[0]
    iy = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, r - 1)
    sel = (parts == part) & region[iy].any(1)
    if not sel.any() or band >= 1.0:
        return xy
    rows = np.nonzero(region.any(1))[0]
    lo = np.interp(np.arange(r), rows, np.argmax(region[rows], 1))  # rows without the part: from their neighbours
    hi = np.interp(np.arange(r), rows, labels.shape[1] - np.argmax(region[rows, ::-1], 1))
    lo, hi = ndimage.median_filter(lo, 9, mode="nearest"), ndimage.median_filter(hi, 9, mode="nearest")
    centre, half = 0.5 * (lo + hi)[iy[sel]], np.maximum(0.5 * (hi - lo)[iy[sel]], 1.0)
    t = np.clip((xy[sel, 0] - centre) / half, -1.0, 1.0)
    out = xy.copy()
    out[sel, 0] = centre + np.where(t >= 0, 1.0, -1.0) * (1.0 - band * (1.0 - np.abs(t))) * half
    return out


def toward_rim(xy: np.ndarray, parts: np.ndarray, labels: np.ndarray, band: float, bins: int = 72) -> np.ndarray:
    """Front pixel coordinates (N, 2) of head points seen from behind, moved out from the centre of the front's head
    (its head and face pixels in ``labels`` (R, R)) toward its outline: in each direction the head's radius maps
    onto its outer ``band`` (the outline itself stays). Directions in which the outline is the face's (the chin)
    turn to the nearest one in which it is the head's (the hair or hood beside the jaw): the nape is not a chin."""
    head = np.isin(labels, (HEAD, FACE))
    sel = parts == HEAD
    if not sel.any() or head.sum() < 3 or band >= 1.0:
        return xy
    yy, xx = np.nonzero(head)
    centre = np.array([xx.mean(), yy.mean()]) + 0.5
    d = np.stack([xx + 0.5, yy + 0.5], 1) - centre
    step = 2 * np.pi / bins
    which = ((np.arctan2(d[:, 1], d[:, 0]) + np.pi) / step).astype(np.int64) % bins
    radius_px = np.hypot(d[:, 0], d[:, 1]) + 0.5
    order = np.lexsort((radius_px, which))  # per direction, its outermost pixel last
    last = np.r_[np.flatnonzero(np.diff(which[order])), len(order) - 1]
    rim, head_outline = np.zeros(bins), np.zeros(bins, bool)
    rim[which[order][last]] = radius_px[order][last]
    head_outline[which[order][last]] = labels[yy[order][last], xx[order][last]] == HEAD
    filled = np.flatnonzero(rim > 0)  # directions with no head pixel (a thin head): from their neighbours
    rim = np.interp(np.arange(bins), filled, rim[filled], period=bins)
    if not head_outline.any():
        return xy
    hair_bins = np.flatnonzero(head_outline)
    gap = np.abs(np.arange(bins)[:, None] - hair_bins[None, :])
    to_hair = hair_bins[np.argmin(np.minimum(gap, bins - gap), 1)]  # each direction's nearest hair direction
    p = xy[sel] - centre
    radius = np.hypot(p[:, 0], p[:, 1])
    angle = np.where(radius > 1e-6, np.arctan2(p[:, 1], p[:, 0]), -0.5 * np.pi)  # the very centre: up
    at = ((angle + np.pi) / step).astype(np.int64) % bins
    angle = np.where(to_hair[at] != at, (to_hair[at] + 0.5) * step - np.pi, angle)  # turned toward hair or hood
    at = to_hair[at]
    unit = np.stack([np.cos(angle), np.sin(angle)], 1)
    t = np.clip(radius / rim[at], 0.0, 1.0)
    out = xy.copy()
    out[sel] = centre + unit * ((1.0 - band * (1.0 - t)) * rim[at])[:, None]
    return out


def nape_from_outline(colors: np.ndarray, xy: np.ndarray, parts: np.ndarray, labels: np.ndarray, photo: np.ndarray,
                      inset_px: float) -> np.ndarray:
    """(N, 3) ``colors`` with the neck's points seen from behind taking the photo's colour at the person's outline
    in their row, on their side (``inset_px`` inside it): what shows beside the neck at that height -- the neck's
    own skin, hair falling behind it, a collar or a hood -- is what covers its back, not the chin or throat the
    front shows. xy (N, 2) front pixel coordinates, parts (N,), labels (R, R) the front's parts (-1 outside the
    person), photo (R, R, 3)."""
    sel = np.flatnonzero(parts == NECK)
    if not len(sel):
        return colors
    h, w = labels.shape
    arms = [PART_NAMES.index(n) for n in PART_NAMES if n.startswith(("upper_arm", "forearm", "hand"))]
    inside = (labels >= 0) & ~np.isin(labels, arms)  # a raised arm beside the head is not what covers the nape
    out = colors.copy()
    inset = int(np.ceil(inset_px)) + 1
    for i in sel:
        y, x = min(max(int(xy[i, 1]), 0), h - 1), min(max(int(xy[i, 0]), 0), w - 1)
        run = next(((a, b) for a, b in row_runs(inside[y]) if a <= x < b), None)
        if run is None or run[1] - 1 - run[0] < 4 * inset:
            continue
        left, right = run[0], run[1] - 1
        out[i] = photo[y, left + inset if x - left < right - x else right - inset]
    return out


def smooth_region(image: np.ndarray, region: np.ndarray, sigma_px: tuple[float, float]) -> np.ndarray:
    """(R, R, 3) ``image`` with the pixels of ``region`` blurred among themselves by a Gaussian of (rows, columns)
    sigmas ``sigma_px``: the back of the torso, looked up on the front's sides row by row, as plain fabric."""
    if not region.any():
        return image
    rows, cols = box(region, int(3 * max(sigma_px)) + 1)
    m = region[rows, cols].astype(np.float32)
    img = image[rows, cols]
    blurred = ndimage.gaussian_filter(img * m[..., None], (*sigma_px, 0))
    blurred /= np.maximum(ndimage.gaussian_filter(m, sigma_px), 1e-6)[..., None]
    out = image.copy()
    out[rows, cols] = np.where(m[..., None] > 0, blurred, img)
    return out


def blend_seams(image: np.ndarray, mask: np.ndarray, key: np.ndarray, sigma_px: float) -> np.ndarray:
    """(R, R, 3) ``image`` blurred (within ``mask``) near the seams of ``key`` (R, R) int, the blur fading out over
    ~2 sigma from them."""
    rows, cols = box(mask, int(3 * sigma_px) + 2)
    mask_c = mask[rows, cols]
    seam = label_boundaries(np.where(mask_c, key[rows, cols], -1)) & mask_c
    if not seam.any() or sigma_px <= 0:
        return image
    img = image[rows, cols]
    m = mask_c.astype(np.float32)
    blurred = ndimage.gaussian_filter(img * m[..., None], (sigma_px, sigma_px, 0))
    blurred /= np.maximum(ndimage.gaussian_filter(m, sigma_px), 1e-6)[..., None]
    alpha = np.clip(1.0 - ndimage.distance_transform_edt(~seam) / (2.0 * sigma_px), 0.0, 1.0)[..., None]
    out = np.zeros_like(image, dtype=np.float32)
    out[rows, cols] = np.where(mask_c[..., None], img * (1.0 - alpha) + blurred * alpha, 0.0)
    return out


def view_points(camera: OrthoCamera, depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, 3) world points seen by the pixels of ``mask`` (row-major order) from their ``depth`` (R, R; -inf
    where nothing was rendered: those take the depth of the nearest rendered pixel)."""
    rows, cols = box(mask, 1)
    z, m = depth[rows, cols], mask[rows, cols]
    finite = np.isfinite(z)
    if not finite.any():
        return np.zeros((0, 3))
    if (m & ~finite).any():
        _, (iy, ix) = ndimage.distance_transform_edt(~finite, return_indices=True)
        z = z[iy, ix]
    v, u = np.nonzero(m)
    r = camera.resolution
    ndc = np.stack([2.0 * (u + cols.start + 0.5) / r - 1.0, 1.0 - 2.0 * (v + rows.start + 0.5) / r], 1)
    xy = ndc * camera.half_extent + np.asarray(camera.center)
    return camera.camera_to_world(np.concatenate([xy, z[m][:, None]], 1))


@dataclass
class RegionColors:
    """Result of :func:`region_colors`: colors (B, R, R, 3) float32 of the target views (0 outside their masks);
    labels (B, R, R) int16 part of each of their pixels; front_labels (R, R) int16 the photo's parts (-1: none)."""

    colors: np.ndarray
    labels: np.ndarray
    front_labels: np.ndarray


def region_colors(photo: np.ndarray, silhouette: np.ndarray, body: BodyFit, parts: np.ndarray,
                  cameras: Sequence[OrthoCamera], masks: np.ndarray, depths: np.ndarray,
                  settings: RegionSettings | None = None, renderer: str = "auto",
                  device: str | torch.device = "cpu") -> RegionColors:
    """Colours of the views ``cameras`` (all at the photo's resolution R) by body region (module docstring).

    photo: (R, R, 3) float in [0, 1], the front view; silhouette: (R, R) bool; parts: (V,) of ``body.vertices``;
    masks: (B, R, R) bool and depths: (B, R, R) camera-space depth (-inf: none) of the surface each view sees.
    """
    s = settings or RegionSettings()
    r = photo.shape[0]
    front = OrthoCamera("front", 0.0, r)
    parts = np.asarray(parts, np.int64)
    seen = render_part_labels(body.vertices, body.faces, parts, [front], renderer, device)[0]
    src = front_sources(extend_labels(seen, silhouette), photo, s)
    nearest_vertex = cKDTree(np.asarray(body.vertices, np.float64))
    colors = np.zeros((len(cameras), r, r, 3), np.float32)
    labels = np.full((len(cameras), r, r), -1, np.int16)
    for b, (cam, mask, depth) in enumerate(zip(cameras, masks, depths)):
        points = view_points(cam, depth, mask)
        if not len(points):
            continue
        p = parts[nearest_vertex.query(points)[1]]
        xy = front.project(points)[0]
        behind = cam.direction[2] < -0.9  # a view from behind
        if behind:
            for part in (TORSO, NECK):
                xy = toward_sides(xy, p, src.labels, s.back_band, part)
            xy = toward_rim(xy, p, src.labels, s.head_band)
        cols, direct = match_colors(xy, p, src, photo, s)
        if behind:
            cols = nape_from_outline(cols, xy, p, src.labels, photo, s.edge_px)
        colors[b][mask] = cols
        labels[b][mask] = p
        if behind:  # plain fabric across the back, and hair or a hood without the spokes of toward_rim
            colors[b] = smooth_region(colors[b], labels[b] == TORSO, (s.seam_px, 2.0 * s.seam_px))
            colors[b] = smooth_region(colors[b], labels[b] == HEAD, (2.0 * s.seam_px, 2.0 * s.seam_px))
        key = np.full((r, r), -1, np.int64)
        key[mask] = 2 * p + direct
        colors[b] = blend_seams(colors[b], mask, key, s.seam_px)
    return RegionColors(colors=colors, labels=labels, front_labels=src.labels)


def body_part_labels(body: BodyFit, ctx: StageContext) -> np.ndarray | None:
    """(V,) part labels of the fitted body: the fit's own, else from its body model's skinning weights (a body
    fit saved before it carried them); None when neither is known."""
    if body.parts is not None and len(body.parts) == len(body.vertices):
        return np.asarray(body.parts)
    if body.model not in ("anny", "smplx"):
        return None
    from human3d.body.models import load_body_model

    model = load_body_model(body.model, ctx.device, ctx.weights_dir, ctx)
    if len(model.skinning_weights) != len(body.vertices):
        return None
    joints = body.joints if len(body.joints) == len(model.joint_names) else None
    return vertex_parts(model.skinning_weights, model.joint_names, body.vertices, joints)


def _blocks(a: np.ndarray, k: int, first: int) -> np.ndarray:
    """``a`` with its axes ``first``, ``first + 1`` (R, R) split into (R/k, k, R/k, k): reduce over the k axes."""
    sh = a.shape
    return a.reshape(sh[:first] + (sh[first] // k, k, sh[first + 1] // k, k) + sh[first + 2:])


def _upsample(image: np.ndarray, mask: np.ndarray, k: int, full_mask: np.ndarray) -> np.ndarray:
    """(R/k, R/k, 3) colours of ``mask`` -> (R, R, 3) bilinear, 0 outside ``full_mask`` (the colours are first
    carried past their mask by nearest pixel, so the full mask's rim never blends with black)."""
    rows, cols = box(mask, 2)
    img, m = image[rows, cols], mask[rows, cols]
    if m.any() and not m.all():
        _, (iy, ix) = ndimage.distance_transform_edt(~m, return_indices=True)
        img = img[iy, ix]
    if k > 1:
        from PIL import Image

        size = (img.shape[1] * k, img.shape[0] * k)
        img = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], np.float32), "F")
                                   .resize(size, Image.BILINEAR)) for c in range(3)], -1)
    out = np.zeros(full_mask.shape + (3,), np.float32)
    big = (slice(rows.start * k, rows.start * k + img.shape[0]), slice(cols.start * k, cols.start * k + img.shape[1]))
    out[big] = img
    return np.where(full_mask[..., None], out, 0.0).astype(np.float32)


def part_sheet(front_labels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(R, (1 + B) R, 3) uint8 picture of part labels, the front then each view (:func:`part_palette`, white
    where no part)."""
    pal = part_palette()
    tiles = [np.where((lab >= 0)[..., None], pal[np.maximum(lab, 0)], 255) for lab in [front_labels, *labels]]
    return np.concatenate(tiles, 1).astype(np.uint8)


def prior_colors(photo: np.ndarray, silhouette: np.ndarray, body: BodyFit, masks: np.ndarray, depths: np.ndarray,
                 ctx: StageContext, work_resolution: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """(6, R, R, 3) colours and (6,) colour weights of the prior's body views: the photo in the front, the back and
    sides by body region (weights :data:`VIEW_COLOR_WEIGHTS`; worked out at about ``work_resolution`` and
    upsampled), or the front alone when the body's parts are unknown.

    photo: (R, R, 3) float in [0, 1]; silhouette: (R, R) bool; masks, depths: (6, R, R) of the body views
    (BODY_VIEW_NAMES order), depth -inf where nothing was rendered.
    """
    n, r = len(masks), photo.shape[0]
    colors = np.zeros((n, r, r, 3), np.float32)
    colors[0] = photo
    weights = np.zeros(n, np.float32)
    weights[0] = 1.0
    parts = body_part_labels(body, ctx)
    if parts is None:
        ctx.warn("the body fit has no body parts, so the texture's back and sides are filled from the front; rerun "
                 "the body stage for colours by body region")
        return colors, weights
    views = [i for i in range(1, n) if VIEW_COLOR_WEIGHTS[i] > 0]
    k = max(1, r // work_resolution)
    while r % k:
        k -= 1
    cams = [OrthoCamera(BODY_VIEW_NAMES[i], BODY_VIEW_AZIMUTHS[i], r // k) for i in views]
    masks_w = _blocks(masks[views], k, 1).mean((2, 4)) >= 0.5
    out = region_colors(_blocks(photo, k, 0).mean((1, 3)), _blocks(silhouette, k, 0).mean((1, 3)) >= 0.5, body,
                        parts, cams, masks_w, _blocks(depths[views], k, 1).max((2, 4)), device=ctx.device)
    for j, i in enumerate(views):
        colors[i] = _upsample(out.colors[j], masks_w[j], k, masks[i])
        weights[i] = VIEW_COLOR_WEIGHTS[i]
    if ctx.stage_dir is not None:
        from human3d.io.atomic import atomic_write_bytes
        from human3d.io.meshes import png_bytes

        atomic_write_bytes(ctx.stage_dir / "parts.png", png_bytes(part_sheet(out.front_labels, out.labels)))
    return colors, weights
