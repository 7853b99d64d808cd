"""Thickness of the silhouette where the fitted body does not explain it (loose clothes, hair, hats, held objects).

The proxy's front and back sheets are ``mid ± half`` over the photo's silhouette S. Where the body is well inside S
both come from the body; elsewhere they are solved for with a smoothness prior and the cues a single photo gives:

* **Occluding contour**: at the border of S the surface turns away from the camera, so its normal lies in the image
  plane. ``half`` is the square root of an inflation ``u`` solving ``∇²u = -1`` with ``u = 0`` on the contour: for a
  strip of half-width ``a`` that is ``u = (a² - x²) / 2`` and ``half = sqrt(2u)`` a circle of radius ``a``, whose
  slope is vertical at the contour (Teddy/Photo-Wake-Up-style inflation).
* **The body**: where the region meets the body, ``u = half_body² / 2``, so the inflated part continues the body's
  thickness without a step.
* **Smoothness**: ``mid`` is harmonic (``∇²mid = 0``) with the body's mid depth where it meets the body and zero
  slope across the contour (Neumann), so a hat or a skirt hangs at the depth of what holds it.

* **Loose clothes** wrap the body (:func:`loose_volume`): a skirt or a coat LOOSE_DEPTH as deep as it is wide,
  and what covers the head (hair, a hood, a hat) round, a ball where it is a round blob (:func:`loose_ratio`).

Pixels of S are unknowns of one sparse linear system per field (5-point Laplacian, canonical units).

Two cues shape what the body covers:

* **Left/right symmetry**: a garment the photo shows at the sides of a part is as thick at its front and back
  (:func:`even_garments`, on the body fit's clothing offsets).
* **Drape**: a skirt or a coat that bridges the legs hangs from the hips instead of following the legs, spans
  them in one convex curve across each row instead of dipping between them, and where it flares (wider in the
  photo than the hips it hangs from) grows as deep as it grows wide, by LOOSE_DEPTH (:func:`drape`,
  :func:`rounded_row`, :func:`flare_bulge`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve

from human3d.ops.image import row_runs

#: Weak pull of ``mid`` toward the body's median depth: keeps a region that touches no body pixel well posed.
MID_ANCHOR = 1e-4
#: Largest grid the two fields are solved on (finer canvases are pooled to it and sampled back): both are smooth.
SOLVE_RESOLUTION = 384
#: Depth-to-width ratio of loose clothes (a skirt's or a coat's cross-section, a little flatter than a circle).
LOOSE_DEPTH = 0.7
#: Neighbourhood (canonical units, Gaussian sigma) over which the looseness of the clothes is judged.
LOOSE_SIGMA = 0.08
#: Fraction of the neighbourhood outside the body from which the clothes count as fully loose.
LOOSE_FULL = 0.35
#: Part of the body's rim (as a fraction of its half-thickness) that clothes beyond its outline take over.
RIM_FRACTION = 0.5
#: Width of the ramp over which the body's half-thickness rounds off to zero at the silhouette's border, as a
#: fraction of that half-thickness (1 would be a circular profile as wide as the body is thick there; 0.5 keeps
#: more of the body's own side and measured better on the embedded benchmark).
ROUND_FRACTION = 0.5

_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # the neighbour below, above, right, left (rows go down)
#: Per-direction ``neumann`` of :func:`solve_laplace`: edges facing down open, the others closed.
OPEN_BELOW = (True, False, False, False)


def _neighbour(a: np.ndarray, dy: int, dx: int, fill: float | bool) -> np.ndarray:
    """``a`` shifted so that out[y, x] = a[y + dy, x + dx], ``fill`` beyond the border."""
    out = np.full_like(a, fill)
    h, w = a.shape
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[yd, xd] = a[ys, xs]
    return out


def solve_laplace(domain: np.ndarray, known: np.ndarray, values: np.ndarray, source: float | np.ndarray = 0.0,
                  neumann: bool | tuple[bool, ...] = False, anchor: float = 0.0, anchor_value: float = 0.0
                  ) -> np.ndarray:
    """Solve ``Σ_q (x_p - x_q) = source_p`` on the unknown pixels ``domain & ~known`` (4-neighbours q).

    domain, known: (H, W) bool; values: (H, W) the fixed values where ``known``. A neighbour outside ``domain`` is
    a zero Dirichlet value, or, with ``neumann``, left out (zero slope across the border); ``neumann`` may also be
    given per direction (below, above, right, left: :data:`OPEN_BELOW` leaves only bottom edges open). ``anchor`` adds
    ``anchor * (x_p - anchor_value)`` to every equation. Returns (H, W) float64: the solution on the unknowns,
    ``values`` on ``known``, NaN outside ``domain``.
    """
    unknown = domain & ~known
    out = np.where(known & domain, values, np.nan).astype(np.float64)
    n = int(unknown.sum())
    if n == 0:
        return out
    index = -np.ones(domain.shape, np.int64)
    index[unknown] = np.arange(n)
    rhs = np.broadcast_to(np.asarray(source, np.float64), domain.shape)[unknown].copy() + anchor * anchor_value
    diag = np.full(n, anchor, np.float64)
    rows, cols = [], []
    fixed = np.where(known & domain, values, 0.0).astype(np.float64)
    open_side = (neumann,) * 4 if isinstance(neumann, bool) else tuple(neumann)
    for (dy, dx), open_here in zip(_SHIFTS, open_side):
        nb_index = _neighbour(index, dy, dx, -1)[unknown]
        nb_known = _neighbour(known & domain, dy, dx, False)[unknown]
        nb_inside = _neighbour(domain, dy, dx, False)[unknown]
        diag += nb_inside if open_here else 1.0
        rhs += np.where(nb_known, _neighbour(fixed, dy, dx, 0.0)[unknown], 0.0)
        link = nb_index >= 0
        rows.append(np.nonzero(link)[0])
        cols.append(nb_index[link])
    r, c = np.concatenate(rows), np.concatenate(cols)
    a = sparse.csr_matrix((np.r_[diag, -np.ones(len(r))], (np.r_[np.arange(n), r], np.r_[np.arange(n), c])),
                          shape=(n, n))
    out[unknown] = spsolve(a.tocsc(), rhs)
    return out


def smooth_inside(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of ``values`` over ``mask`` only (normalised convolution); NaN-free where ``mask``."""
    v = np.where(mask, values, 0.0)
    w = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    return ndimage.gaussian_filter(v, sigma) / np.maximum(w, 1e-12)


def inflate(silhouette: np.ndarray, body: np.ndarray, mid_body: np.ndarray, half_body: np.ndarray,
            max_resolution: int = SOLVE_RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """(mid, half) over ``silhouette`` (R, R) in canonical units, fixed to the body's where ``body`` (R, R bool,
    inside the silhouette) and inflated elsewhere (module docstring); solved on a grid of at most
    ``max_resolution`` and sampled back to R. NaN outside the silhouette."""
    r = silhouette.shape[0]
    k = max(1, int(np.ceil(r / max_resolution)))
    sil_k, body_k = _pool(silhouette, k) >= 0.5, _pool(body & silhouette, k) >= 0.99
    body_k &= sil_k
    mid_k, half_k = _pool(np.where(body, mid_body, 0.0), k), _pool(np.where(body, half_body, 0.0), k)
    px = 2.0 * k / r
    u = solve_laplace(sil_k, body_k, 0.5 * half_k ** 2, source=px * px)
    anchor_value = float(np.median(mid_k[body_k])) if body_k.any() else 0.0
    mid = solve_laplace(sil_k, body_k, mid_k, neumann=True, anchor=MID_ANCHOR, anchor_value=anchor_value)
    u, mid = _upsample(np.where(sil_k, u, 0.0), k, r), _upsample(_fill_nearest(mid, sil_k), k, r)
    if k > 1:  # the body's own values at full resolution, and the layer along the outline relaxed at it
        u = relax(silhouette, body, np.where(body, 0.5 * half_body ** 2, u), (2.0 / r) ** 2, False, 4 * k * k)
        mid = relax(silhouette, body, np.where(body, mid_body, mid), 0.0, True, 4 * k * k)
    half = np.sqrt(2.0 * np.maximum(u, 0.0))
    return np.where(silhouette, mid, np.nan), np.where(silhouette, half, np.nan)


def loose_volume(silhouette: np.ndarray, covered: np.ndarray, half: np.ndarray,
                 max_resolution: int = SOLVE_RESOLUTION, ratio: float | np.ndarray = LOOSE_DEPTH) -> np.ndarray:
    """``half`` (R, R) grown where the clothes are loose: a skirt or a coat wraps the body, so around the legs it
    is as deep as the skirt is wide, not as the legs are.

    The silhouette's own inflation (``∇²u = -1``, the body ignored) times ``ratio`` (LOOSE_DEPTH, or per pixel:
    :func:`loose_ratio`) is the volume of what wraps
    the body: zero on the contour where it faces up or sideways, zero slope where it faces down, since the lower
    edge of loose clothes or hair is an open hem seen edge-on, as deep there as the cloth above it; it counts in proportion to how much of the neighbourhood (a Gaussian of
    LOOSE_SIGMA) is silhouette the body does not cover (full from LOOSE_FULL), so tight clothes keep the body's
    thickness. The two combine by a soft maximum (a 6-norm), smooth where they cross.
    """
    r = silhouette.shape[0]
    k = max(1, int(np.ceil(r / max_resolution)))
    sil_k = _pool(silhouette, k) >= 0.5
    none = np.zeros_like(sil_k)
    u_k = solve_laplace(sil_k, none, np.zeros(sil_k.shape), source=(2.0 * k / r) ** 2, neumann=OPEN_BELOW)
    u = _upsample(np.where(sil_k, u_k, 0.0), k, r)
    if k > 1:
        u = relax(silhouette, np.zeros_like(silhouette), u, (2.0 / r) ** 2, OPEN_BELOW, 4 * k * k)
    free = np.sqrt(2.0 * np.maximum(u, 0.0))
    sigma = LOOSE_SIGMA * r / 2.0
    loose = ndimage.gaussian_filter((silhouette & ~covered).astype(np.float64), sigma)
    loose /= np.maximum(ndimage.gaussian_filter(silhouette.astype(np.float64), sigma), 1e-9)
    wrap = np.clip(loose / LOOSE_FULL, 0.0, 1.0) * ratio * free
    out = (np.nan_to_num(half) ** 6 + wrap ** 6) ** (1.0 / 6.0)
    return np.where(silhouette, out, np.nan)


#: Depth-to-width ratio of what covers the head (hair, a hood, a hat, a helmet) in :func:`loose_volume`: round in
#: every cross-section. The silhouette's inflation of a round blob of radius a is a/√2 deep at its middle, so √2
#: makes a ball of it; a strip of hair beside the face, which wraps the side of the head, comes out √2 times as
#: deep as it is wide.
HEAD_DEPTH = float(np.sqrt(2.0))
#: Width (Gaussian sigma, fraction of the canvas) over which the ratio passes from the head's to the clothes'.
RATIO_BLEND = 0.01


def loose_ratio(labels: np.ndarray) -> np.ndarray:
    """(R, R) depth-to-width ratio of :func:`loose_volume` from the front view's part labels (R, R) int8 (those of
    :func:`drape`, 5 the head or face, 0 nothing): HEAD_DEPTH where the nearest pixel the body covers is its head,
    LOOSE_DEPTH elsewhere (skirts, coats, sleeves), blended over RATIO_BLEND; LOOSE_DEPTH everywhere when no pixel
    is labelled."""
    ratio = _fill_nearest(np.where(labels == 5, HEAD_DEPTH, LOOSE_DEPTH), labels > 0)
    return ndimage.gaussian_filter(ratio, RATIO_BLEND * labels.shape[0])


def relax(domain: np.ndarray, known: np.ndarray, x: np.ndarray, source: float, neumann: bool | tuple[bool, ...],
          iterations: int) -> np.ndarray:
    """Jacobi sweeps of the system of :func:`solve_laplace` from the start ``x`` (R, R): cheap at full resolution,
    and enough to settle the few pixels along the outline that a coarse solve cannot resolve."""
    x = np.where(domain, x, 0.0)
    free = domain & ~known
    inside = domain.astype(np.float64)
    open_side = (neumann,) * 4 if isinstance(neumann, bool) else tuple(neumann)
    count = sum(_neighbour(inside, dy, dx, 0.0) if o else 1.0 for (dy, dx), o in zip(_SHIFTS, open_side))
    count = np.maximum(count, 1.0)
    for _ in range(iterations):
        total = sum(_neighbour(x, dy, dx, 0.0) for dy, dx in _SHIFTS)
        x = np.where(free, (total + source) / count, x)
    return x


def _pool(a: np.ndarray, k: int) -> np.ndarray:
    """(R, R) -> (ceil(R/k), ceil(R/k)) block means (edge blocks padded by replication)."""
    if k == 1:
        return a.astype(np.float64) if a.dtype == bool else a
    h = -(-a.shape[0] // k) * k
    a = np.pad(a.astype(np.float64), ((0, h - a.shape[0]), (0, h - a.shape[1])), mode="edge")
    return a.reshape(h // k, k, h // k, k).mean((1, 3))


def _upsample(a: np.ndarray, k: int, r: int) -> np.ndarray:
    """Bilinear sampling of a block grid (block centres) at the R x R pixel centres."""
    if k == 1:
        return a
    c = (np.arange(r) + 0.5) / k - 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return ndimage.map_coordinates(a, [yy, xx], order=1, mode="nearest")


def _fill_nearest(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``a`` with every pixel outside ``mask`` set to the value of the nearest pixel inside it."""
    if mask.all() or not mask.any():
        return np.nan_to_num(a)
    _, (iy, ix) = ndimage.distance_transform_edt(~mask, return_indices=True)
    return a[iy, ix]


def body_support(silhouette: np.ndarray, core: np.ndarray, half_body: np.ndarray, covered: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(support, half): where the body decides the sheets, and its half-thickness there rounded off toward the
    silhouette's border (a circular profile over a ramp as wide as the thickness).

    The support is the body's core minus the part of its own rim that lies inside the silhouette (within half its
    thickness of its own outline, where clothes or hair go on beyond it): there the body thins to nothing, and the
    inflation carries on from deeper inside instead of pinching the clothes at the body's outline.
    """
    px = 2.0 / silhouette.shape[0]
    d_sil = ndimage.distance_transform_edt(silhouette) * px
    d_body = ndimage.distance_transform_edt(covered) * px
    t = np.clip(d_sil / np.maximum(ROUND_FRACTION * half_body, 2 * px), 0.0, 1.0)
    rounded = half_body * np.sqrt(1.0 - (1.0 - t) ** 2)
    outline_shared = d_sil <= d_body + 2 * px  # the body's outline is the silhouette's here
    support = core & silhouette & ((d_body >= RIM_FRACTION * half_body) | outline_shared)
    return support, rounded


#: How far above the top of a garment that bridges the legs its cloth starts to hang (canonical units: about the
#: hips to the crotch), so that it falls from the widest part of the hips and buttocks.
DRAPE_ABOVE = 0.12
#: Fewest rows (as a fraction of the canvas) a bridge between the legs must span to count as a skirt or a coat
#: (thighs that touch below the crotch do so for fewer).
DRAPE_MIN_ROWS = 0.03
#: A garment bridging the legs ends at a hem: the silhouette just below it (HEM_BELOW of the canvas, arms left
#: out) is narrower than the lower half of the garment by this factor at least, or there is none (it reaches the
#: floor). Thighs that touch, in trousers, part with no such step.
HEM_STEP = 1.1
HEM_BELOW = 0.015
#: Rows (fraction of the canvas) a garment's bridge may start below the crotch, and may break for.
BRIDGE_SLACK = 0.006


def bridged_rows(silhouette: np.ndarray, legs: np.ndarray) -> np.ndarray:
    """(R, R) bool: the pixels of the silhouette runs (a row's interval of S) that hold both legs of the body, from
    just below the crotch down without a break: a skirt or a coat fills the space between them (a gap the photo
    shows as background splits the run). Only a garment that ends in a hem counts (HEM_STEP): thighs that touch
    part with no step in the outline, and legs that cross further down (shins, ankles) do not start at the crotch.
    ``legs`` (R, R) int8: where the front view of the fitted body sees its left leg 1, its right leg 2, an arm or a
    hand 4, any other part 3 (or 5), else 0; the crotch is where, going down, the hips stop showing between the
    legs."""
    out = np.zeros_like(silhouette)
    both = (legs == 1).any(1) & (legs == 2).any(1)
    if not both.any():
        return out
    crotch = int(np.argmax(both)) - 1  # where the hips show between the legs from their top down, or above them
    for y in np.nonzero(both)[0]:
        a, b = sorted((np.median(np.flatnonzero(legs[y] == 1)), np.median(np.flatnonzero(legs[y] == 2))))
        if not (legs[y, int(a):int(b) + 1] == 3).any():
            break
        crotch = int(y)
    both[:crotch + 1] = False
    for y in np.nonzero(both)[0]:
        for a, b in row_runs(silhouette[y]):
            if (legs[y, a:b] == 1).any() and (legs[y, a:b] == 2).any():
                out[y, a:b] = True
    return _garment_from_crotch(out, silhouette & (legs != 4), crotch)


def _garment_from_crotch(bridge: np.ndarray, body: np.ndarray, crotch: int) -> np.ndarray:
    """``bridge`` (R, R) cut to its first stretch of rows, kept only when it starts at the ``crotch`` row and ends
    in a hem over ``body`` (R, R bool: the silhouette without the arms); see :func:`bridged_rows`."""
    r = bridge.shape[0]
    rows = np.flatnonzero(bridge.any(1))
    slack = max(1, int(round(BRIDGE_SLACK * r)))
    none = np.zeros_like(bridge)
    if len(rows) == 0 or rows[0] > crotch + 1 + slack:
        return none
    breaks = np.flatnonzero(np.diff(rows) > 1 + slack)
    last = int(rows[breaks[0]] if len(breaks) else rows[-1])
    kept = rows[rows <= last]
    lower = max(_extent(bridge[y]) for y in kept[len(kept) // 2:])
    below = body[last + 1 + slack:last + 2 + slack + max(2, int(round(HEM_BELOW * r)))].any(0)
    if below.any() and lower < HEM_STEP * _extent(below):
        return none
    out = bridge.copy()
    out[last + 1:] = False
    return out


def _extent(row: np.ndarray) -> int:
    """Pixels from the first to the last True of a non-empty (R,) bool row."""
    cols = np.flatnonzero(row)
    return int(cols[-1] - cols[0] + 1)


def drape(silhouette: np.ndarray, legs: np.ndarray, zf: np.ndarray, zb: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Front and back sheets (R, R) where a skirt or a coat hangs: below the top of a garment that bridges the legs
    (:func:`bridged_rows`; ``legs`` as there), down to its hem, the cloth falls from the widest part above it: the
    front sheet never recedes and the back sheet never comes forward going down a column (a running maximum and
    minimum from DRAPE_ABOVE above the garment's top, over the columns the garment spans, restarted where a column
    leaves the person; arms and hands neither hang nor are hung from), so the legs' own profile does not show
    through it; across each row it is at least as full as an ellipse through its extremes (:func:`rounded_row`),
    and where it flares below the hips both sheets move out (:func:`flare_bulge`)."""
    bridge = bridged_rows(silhouette, legs)
    rows = np.nonzero(bridge.any(1))[0]
    r = silhouette.shape[0]
    if len(rows) < max(2, DRAPE_MIN_ROWS * r):
        return zf, zb
    top, bottom = int(rows.min()), int(rows.max())
    start = max(0, top - int(round(DRAPE_ABOVE * r / 2.0)))
    hang = np.zeros_like(silhouette)  # the garment, and above it (from ``start``) the columns it spans
    hang[top:bottom + 1] = bridge[top:bottom + 1]
    hang[start:top] = bridge.any(0)[None, :] & silhouette[start:top]
    hang &= legs != 4
    zf, zb = zf.copy(), zb.copy()
    front, back = np.full(r, -np.inf), np.full(r, np.inf)
    bulge = flare_bulge(hang, top, bottom)
    for y in range(start, bottom + 1):
        cloth = silhouette[y] & (legs[y] != 4)
        front = np.where(silhouette[y], np.where(cloth, np.fmax(front, zf[y]), front), -np.inf)
        back = np.where(silhouette[y], np.where(cloth, np.fmin(back, zb[y]), back), np.inf)
        f_row, b_row = rounded_row(hang[y], front, back)
        zf[y] = np.where(hang[y] & np.isfinite(f_row), f_row + bulge[y], zf[y])
        zb[y] = np.where(hang[y] & np.isfinite(b_row), b_row - bulge[y], zb[y])
    return zf, zb


def rounded_row(cloth: np.ndarray, front: np.ndarray, back: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R,) front and back of one row of a hanging garment, at least as full as an ellipse through its extremes:
    over each run of ``cloth`` (R,) bool, the front is raised to the elliptical arc from the run's ends (at their mid
    depth) up to its most forward point at the middle, and the back likewise, so that cloth bridging two legs spans
    them in one convex curve instead of dipping between them."""
    front, back = front.copy(), back.copy()
    for a, b in row_runs(cloth):
        f, k = front[a:b], back[a:b]
        ok = np.isfinite(f) & np.isfinite(k)
        if b - a < 3 or not ok[0] or not ok[-1]:
            continue
        mid = 0.25 * (f[0] + k[0] + f[-1] + k[-1])
        t = (np.arange(a, b) - 0.5 * (a + b - 1)) / (0.5 * (b - a))
        arc = np.sqrt(np.clip(1.0 - t * t, 0.0, 1.0))
        front[a:b] = np.where(ok, np.fmax(f, mid + (np.max(f[ok]) - mid) * arc), f)
        back[a:b] = np.where(ok, np.fmin(k, mid - (mid - np.min(k[ok])) * arc), k)
    return front, back


def flare_bulge(cloth: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """(R, R) how far (canonical units) a hanging garment's front and back sheets move out where it flares: as its
    width in the photo grows below the widest part above it (rows before ``top``), its depth grows by LOOSE_DEPTH of
    that (a cross-section that scales as it widens), most at the middle of each row and nothing at its sides (an
    elliptical profile). ``cloth`` (R, R) bool: the garment's pixels (its columns above ``top``), down to
    ``bottom``."""
    r = cloth.shape[0]
    out = np.zeros(cloth.shape, np.float64)
    px = 2.0 / r
    widest = 0.0
    for y in range(0, bottom + 1):
        cols = np.flatnonzero(cloth[y])
        if len(cols) < 2:
            continue
        half = 0.5 * (cols[-1] - cols[0] + 1) * px
        if y < top:
            widest = max(widest, half)
            continue
        grow = half - widest
        if grow <= 0.0:
            continue
        centre = 0.5 * (cols[0] + cols[-1])
        t = (np.arange(r) - centre) * px / half
        out[y] = LOOSE_DEPTH * grow * np.sqrt(np.clip(1.0 - t * t, 0.0, 1.0))
    return out


#: Height of the bands (canonical units) within which a body part's garment counts as one ring around it.
GARMENT_BAND = 0.03
#: Quantile of a band's clothing offsets taken as its garment's thickness: the offsets grow where the front outline
#: is (the ring's sides), and the photo says nothing about its front and back.
GARMENT_QUANTILE = 0.9
#: Thickest garment (canonical units, about 7 cm) that is carried round a ring from its sides.
GARMENT_MAX = 0.08
#: Parts whose garment is not carried round: the face is open (a hood frames it) and hands and feet are bare.
GARMENT_SKIP = ("face", "hand_l", "hand_r", "foot_l", "foot_r")


def even_garments(vertices: np.ndarray, faces: np.ndarray, offsets: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """(V, 3) the clothed body (vertices (V, 3), faces (F, 3)) with every garment as thick all round as at its sides:
    left/right symmetry where only one side is seen.

    The fit's clothing offsets (V,) are fitted to the front outline only, so a hood 3 cm off the head, a coat or a
    sleeve is that thick at the silhouette and thins to the bare body where the body is seen face-on (front and
    back). Within each body part (``parts`` (V,)) and band of height (GARMENT_BAND), vertices are moved out along
    their normals to the band's GARMENT_QUANTILE offset (at most GARMENT_MAX), smoothed over the mesh so that
    bands join without steps; no vertex moves in.
    """
    from human3d.body.parts import PART_NAMES
    from human3d.ops.mesh import adjacency_matrix, vertex_normals

    v = np.asarray(vertices, np.float64)
    o = np.asarray(offsets, np.float64)
    band = np.floor((v[:, 1] - v[:, 1].min()) / GARMENT_BAND).astype(np.int64)
    key = np.asarray(parts, np.int64) * (int(band.max()) + 1) + band
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    target = np.zeros_like(o)
    for group in np.split(order, bounds):
        target[group] = np.quantile(o[group], GARMENT_QUANTILE)
    skip = np.isin(parts, [PART_NAMES.index(n) for n in GARMENT_SKIP])
    target = np.where(skip, 0.0, np.minimum(target, GARMENT_MAX))
    adj = adjacency_matrix(faces, len(v))
    degree = np.maximum(np.asarray(adj.sum(1)).ravel(), 1.0)
    for _ in range(10):  # bands and parts join without steps
        target = 0.5 * target + 0.5 * (adj @ target) / degree
    extra = np.maximum(target - o, 0.0)
    return (v + extra[:, None] * vertex_normals(v, np.asarray(faces))).astype(np.float32)
