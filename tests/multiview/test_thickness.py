"""Thickness where the silhouette leaves the body: the inflation's solver, its profile at the contour, and the side
views it gives (no fins, no slits)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from human3d.config import MultiViewConfig
from human3d.context import StageContext
from human3d.multiview.prior import generate_prior_views, sheets_to_mesh
from human3d.multiview.thickness import inflate, relax, solve_laplace
from human3d.types import BodyFit, Framed


def _naive_solve(domain, known, values, source, neumann):
    """The same system, one equation per unknown pixel written out in loops, solved densely."""
    cells = [tuple(p) for p in np.argwhere(domain & ~known)]
    index = {p: i for i, p in enumerate(cells)}
    a = np.zeros((len(cells), len(cells)))
    b = np.full(len(cells), float(source))
    for i, (y, x) in enumerate(cells):
        for q in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            inside = 0 <= q[0] < domain.shape[0] and 0 <= q[1] < domain.shape[1] and domain[q]
            if not inside:
                a[i, i] += 0.0 if neumann else 1.0
                continue
            a[i, i] += 1.0
            if known[q]:
                b[i] += values[q]
            else:
                a[i, index[q]] -= 1.0
    out = np.full(domain.shape, np.nan)
    out[known & domain] = values[known & domain]
    for p, v in zip(cells, np.linalg.solve(a, b)):
        out[p] = v
    return out


def test_sparse_solve_matches_a_naive_dense_solve():
    rng = np.random.default_rng(0)
    domain = np.zeros((9, 11), bool)
    domain[1:8, 1:10] = True
    domain[4, 6:] = False  # a notch
    known = np.zeros_like(domain)
    known[2:4, 2:4] = True
    values = rng.uniform(0.1, 0.5, domain.shape)
    for neumann, source in ((False, 0.3), (True, 0.0)):
        got = solve_laplace(domain, known, values, source=source, neumann=neumann)
        want = _naive_solve(domain, known, values, source, neumann)
        np.testing.assert_allclose(got[domain], want[domain], rtol=1e-9, atol=1e-12)
        assert np.isnan(got[~domain]).all()


def test_inflated_strip_has_a_round_cross_section_and_a_vertical_contour():
    r = 256
    yy, xx = np.mgrid[0:r, 0:r]
    x = 2 * (xx + 0.5) / r - 1
    a = 0.25
    strip = np.abs(x) < a  # a long vertical strip touching the canvas' top and bottom: a cylinder of radius a
    none = np.zeros_like(strip)
    mid, half = inflate(strip, none, np.zeros((r, r)), np.zeros((r, r)))
    row = r // 2
    cols = np.nonzero(strip[row])[0]
    edge = x[row, cols.max() + 1]  # the zero boundary value sits at the first pixel centre outside
    want = np.sqrt(np.maximum(edge * edge - x[row, cols] ** 2, 0.0))
    inner = np.abs(x[row, cols]) < 0.8 * a
    np.testing.assert_allclose(half[row, cols][inner], want[inner], atol=0.02 * a)
    np.testing.assert_allclose(mid[strip], 0.0, atol=1e-9)
    # at the contour the depth changes faster than anywhere inside: the surface turns to face the side
    slope = np.abs(np.diff(half[row, cols]))
    assert slope[0] > 4 * np.median(slope) and slope[-1] > 4 * np.median(slope)


def test_mid_depth_has_zero_slope_across_the_contour():
    r = 128
    sil = np.zeros((r, r), bool)
    sil[30:100, 20:110] = True
    body = np.zeros_like(sil)
    body[40:90, 25:45] = True
    yy = np.mgrid[0:r, 0:r][0]
    mid_body = 0.002 * (yy - 64.0)  # the body's mid depth varies along y
    mid, half = inflate(sil, body, mid_body, np.full((r, r), 0.1))
    np.testing.assert_allclose(mid[body], mid_body[body])
    inner_slope = np.abs(np.diff(mid[35:95, 50:105], axis=1)).mean()
    across_right = np.abs(mid[35:95, 109] - mid[35:95, 108]).mean()
    across_top = np.abs(mid[30, 50:105] - mid[31, 50:105]).mean()
    assert across_right < 0.1 * inner_slope
    assert across_top < 0.1 * np.abs(np.diff(mid[35:95, 60], axis=0)).mean()
    assert np.isfinite(half[sil]).all() and (half[sil] >= 0).all()


def test_relaxation_keeps_a_converged_solution():
    domain = np.zeros((40, 40), bool)
    domain[5:35, 5:35] = True
    known = np.zeros_like(domain)
    known[15:20, 15:20] = True
    values = np.full(domain.shape, 0.2)
    exact = solve_laplace(domain, known, values, source=0.01)
    again = relax(domain, known, exact, 0.01, False, 10)
    np.testing.assert_allclose(again[domain], exact[domain], atol=1e-9)


R = 128


def _capsule(radius=0.3) -> BodyFit:
    m = trimesh.creation.capsule(height=1.2, radius=radius)
    m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    return BodyFit(vertices=np.asarray(m.vertices, np.float32), faces=np.asarray(m.faces),
                   joints=np.zeros((1, 3), np.float32))


def test_a_hat_above_the_body_is_round_in_the_side_view_not_a_fin():
    yy, xx = np.mgrid[0:R, 0:R]
    x, y = 2 * (xx + 0.5) / R - 1, 1 - 2 * (yy + 0.5) / R
    body_part = (np.abs(x) < 0.3) & (np.abs(y) < 0.62)
    hat = (np.abs(x) < 0.25 * (0.98 - y) / 0.36) & (y >= 0.62) & (y < 0.98)  # a cone on top, beyond the body
    sil = body_part | hat
    rgb = np.full((R, R, 3), 255, np.uint8)
    rgb[sil] = (150, 30, 30)
    fr = Framed(rgb=rgb, mask=sil, face_rgb=rgb, face_mask=sil)
    body = _capsule(0.3)
    body.vertices = body.vertices * np.array([1.0, 0.65, 1.0], np.float32)  # the body ends below the hat
    ctx = StageContext()
    mv = generate_prior_views(fr, body, MultiViewConfig(resolution=R), ctx)
    side = mv.masks[2]
    for y_row in (0.7, 0.8):
        v = int(round((1 - y_row) * R / 2 - 0.5))
        width = hat[v].sum()  # the hat's width at that height in the front view
        depth = side[v].sum()  # its extent in depth, seen from the side
        assert depth > 0.7 * width, (y_row, width, depth)
    assert any("face relief" in w for w in ctx.warnings)  # no head keypoints: said, not silent


def test_side_views_have_no_slits_on_a_staircase_outline():
    """Through a crack between the sheets a side view sees the inside of the mesh: normals facing away."""
    import torch

    from human3d.cameras import OrthoCamera
    from human3d.render import get_rasterizer, render_normals

    zf = np.full((64, 64), np.nan)
    for i in range(10, 54):  # staircase outlines: every step has a vertex whose only outside neighbour is diagonal
        zf[i, 20 - (i - 10) // 3:30 + (i - 8)] = 0.1
    zb = np.where(np.isfinite(zf), -0.1, np.nan)
    v, f = sheets_to_mesh(zf, zb, step=2)
    cams = [OrthoCamera("right", 90.0, 64), OrthoCamera("front_right", 45.0, 64), OrthoCamera("left", 270.0, 64)]
    out = render_normals(torch.as_tensor(v), torch.as_tensor(f), cams, get_rasterizer("auto", "cpu"), antialias=False)
    for k, cam in enumerate(cams):
        m = out.frags.mask[k].numpy()
        facing = out.normals[k].numpy()[m] @ cam.direction
        assert m.any() and (ndimage.binary_fill_holes(m) == m).all()
        # (the old stitching saw the inside on ~50% of the 90-degree view; a few grazing edge pixels may remain)
        assert (facing <= -0.05).mean() < 0.02, (cam.name, int((facing <= -0.05).sum()))


def test_loose_clothes_wrap_the_body_and_tight_ones_keep_its_thickness():
    from human3d.multiview.thickness import loose_volume

    r = 128
    yy, xx = np.mgrid[0:r, 0:r]
    x, y = 2 * (xx + 0.5) / r - 1, 1 - 2 * (yy + 0.5) / r
    legs = ((np.abs(x - 0.12) < 0.07) | (np.abs(x + 0.12) < 0.07)) & (y < 0.3) & (y > -0.9)
    skirt = (np.abs(x) < 0.2 + 0.5 * (0.3 - y)) & (y < 0.3) & (y > -0.3)  # flaring down to an open hem
    half_legs = np.where(legs, 0.07, 0.0)
    dressed = loose_volume(legs | skirt, legs, half_legs)
    row = int(round((1 - (-0.25)) * r / 2 - 0.5))  # just above the hem, between the legs
    assert dressed[row, r // 2] > 2.0 * 0.07  # as deep as a skirt that wide, not as the legs
    tight = loose_volume(legs, legs, half_legs)  # trousers: the silhouette is the body's
    np.testing.assert_allclose(tight[legs], half_legs[legs], rtol=0.01)


def _legs_under(r: int, skirt: bool, flare: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(silhouette, legs labels) of hips (24 px wide) over two legs (20 px across both, as thighs taper), with or
    without a skirt bridging them from the crotch: as wide as the hips, or widening by ``flare`` px on each side
    down to its hem."""
    sil = np.zeros((r, r), bool)
    legs = np.zeros((r, r), np.int8)
    sil[10:30, 20:44] = True
    legs[10:30, 20:44] = 3  # hips, down to the crotch at row 29
    for x0, label in ((22, 1), (34, 2)):
        sil[30:60, x0:x0 + 8] = True
        legs[30:60, x0:x0 + 8] = label
    if skirt:  # the skirt fills the gap between the legs down to its hem at row 49
        for y in range(30, 50):
            grow = int(round(flare * (y - 30) / 19))
            sil[y, 20 - grow:44 + grow] = True
    return sil, legs


def test_a_skirt_hangs_from_the_hips_and_trousers_keep_the_legs():
    from human3d.multiview.thickness import bridged_rows, drape

    r = 64
    yy = np.mgrid[0:r, 0:r][0].astype(np.float64)
    zf = 0.3 - 0.004 * np.maximum(yy - 20, 0)  # the body's front recedes below row 20 (hips to legs)
    zb = -zf
    sil, legs = _legs_under(r, skirt=True)
    bridge = bridged_rows(sil, legs)
    assert bridge[30:50].any(1).all() and not bridge[:30].any() and not bridge[50:].any()
    f, b = drape(sil, legs, np.where(sil, zf, np.nan), np.where(sil, zb, np.nan))
    start = 30 - round(0.12 * r / 2)  # DRAPE_ABOVE above the crotch, within the hips
    assert np.all(f[30:50, 20:44] == zf[start, 30])  # under the hips the cloth hangs from where it starts
    assert np.all(f[30:50][sil[30:50]] >= zf[30, 30] - 1e-12)  # and nowhere recedes below the garment's top
    np.testing.assert_allclose(b[30:50][sil[30:50]], -f[30:50][sil[30:50]])
    np.testing.assert_array_equal(f[50:][sil[50:]], zf[50:][sil[50:]])  # legs below the hem are the body's
    sil, legs = _legs_under(r, skirt=False)
    assert not bridged_rows(sil, legs).any()
    f, _ = drape(sil, legs, np.where(sil, zf, np.nan), np.where(sil, zb, np.nan))
    np.testing.assert_array_equal(f[sil], zf[sil])


def test_thighs_that_touch_and_shins_that_cross_are_no_garment():
    """Trousers: below the crotch the thighs touch (one run holding both legs, parting with no hem), and further
    down the shins cross (both legs in one run again, far below the crotch): no skirt is hung from either."""
    from human3d.multiview.thickness import bridged_rows

    r = 128
    sil = np.zeros((r, r), bool)
    legs = np.zeros((r, r), np.int8)
    sil[20:40, 40:88] = True
    legs[20:40, 40:88] = 3  # hips down to the crotch at row 39
    for y in range(40, 120):
        inner = 0 if y < 60 else min(8, (y - 60) // 2)  # thighs touch to row 59, then part gradually
        if y >= 95:  # the shins cross: one leg in front of the other
            inner = -4
        left, right = (44 + (y - 40) // 8, 64 - inner), (64 + inner, 84 - (y - 40) // 8)
        for (a, b), label in ((left, 1), (right, 2)):
            sil[y, a:b] = True
            legs[y, a:b] = label
    assert not bridged_rows(sil, legs).any()
    skirt = sil.copy()
    skirt[40:75, 40:88] = True  # a straight skirt from the hips: its hem at row 74 is wider than the legs below
    bridge = bridged_rows(skirt, legs)
    assert bridge[40:75].any(1).all() and not bridge[75:].any()


def test_cloth_across_two_legs_spans_them_in_one_convex_curve():
    from human3d.multiview.thickness import rounded_row

    x = np.arange(64, dtype=np.float64)
    cloth = (x >= 8) & (x < 56)
    t = (x - 31.5) / 24.0
    legs = 0.1 * (np.sqrt(np.clip(1 - ((np.abs(t) - 0.5) / 0.5) ** 2, 0, 1)))  # two round bumps, a dip between
    front = np.where(cloth, 0.2 + legs, np.nan)
    back = np.where(cloth, 0.2 - legs, np.nan)
    f, b = rounded_row(cloth, front, back)
    assert np.nanmax(np.abs(f[cloth] + b[cloth] - 0.4)) < 1e-12  # symmetric about the mid depth it had
    peak = 0.2 + np.nanmax(legs[cloth])
    assert f[31] == pytest.approx(peak, abs=1e-3)  # the middle, where the legs dip to nothing, as far out as they are
    middle = np.abs(t) <= 0.5
    assert np.all(f[middle] >= 0.2 + 0.85 * (peak - 0.2))  # no dip left: the arc (sqrt(3)/2 of it at |t| = 0.5)
    assert np.all(f[cloth] >= front[cloth]) and np.all(b[cloth] <= back[cloth])  # only ever out
    ellipse = 0.2 + 0.1 * np.sqrt(np.clip(1 - t * t, 0, 1))  # already an ellipse: left as it is
    f2, _ = rounded_row(cloth, np.where(cloth, ellipse, np.nan), np.where(cloth, 0.4 - ellipse, np.nan))
    np.testing.assert_allclose(f2[cloth], ellipse[cloth], atol=0.01)


def test_a_flared_skirt_grows_in_depth_as_it_widens():
    from human3d.multiview.thickness import LOOSE_DEPTH, drape

    r = 64
    yy = np.mgrid[0:r, 0:r][0].astype(np.float64)
    zf = 0.3 - 0.004 * np.maximum(yy - 20, 0)
    zb = -zf
    sil, legs = _legs_under(r, skirt=True, flare=6)
    f, b = drape(sil, legs, np.where(sil, zf, np.nan), np.where(sil, zb, np.nan))
    start = 30 - round(0.12 * r / 2)
    hang = zf[start, 30]
    px = 2.0 / r
    centre = f[30:50, 31:33].mean(1) - hang  # how far the front moved out at the middle, going down
    want = LOOSE_DEPTH * px * np.round(6 * (np.arange(30, 50) - 30) / 19)  # the half-width's growth
    np.testing.assert_allclose(centre, want, atol=0.1 * LOOSE_DEPTH * px * 6)
    assert centre[-1] > 0.9 * LOOSE_DEPTH * 6 * px  # at the hem: 0.7 of the 6 px it widened by
    edge = [f[y][sil[y]][0] - hang for y in range(30, 50)]  # at the outline the profile comes back to the hang
    assert max(edge) < 0.35 * centre[-1]
    np.testing.assert_allclose(b[30:50][sil[30:50]], -f[30:50][sil[30:50]])  # as far out at the back
    np.testing.assert_array_equal(f[50:][sil[50:]], zf[50:][sil[50:]])


def test_a_garment_seen_at_its_sides_is_as_thick_at_its_front_and_back():
    from human3d.body.parts import PART_NAMES
    from human3d.multiview.thickness import even_garments

    mesh = trimesh.creation.cylinder(radius=0.1, height=0.3, sections=48)
    mesh = mesh.subdivide().subdivide()
    v = np.asarray(mesh.vertices, np.float64)[:, [0, 2, 1]]  # axis along y, as a limb or a torso stands
    f = np.asarray(mesh.faces)[:, [0, 2, 1]]  # the axis swap mirrors: keep the faces outward
    radial = np.hypot(v[:, 0], v[:, 2])
    side = np.abs(v[:, 0]) > 0.09  # what the front outline constrains
    offsets = np.where(side & (radial > 0.099), 0.03, 0.0)
    parts = np.full(len(v), PART_NAMES.index("torso"), np.int8)
    out = even_garments(v.astype(np.float32), f, offsets, parts)
    moved = np.linalg.norm(out - v, axis=1)
    front_back = (np.abs(v[:, 2]) > 0.095) & (np.abs(v[:, 1]) < 0.1) & (radial > 0.099)
    assert np.median(moved[front_back]) > 0.015  # the garment goes round the front and back (at least half)
    grown = np.hypot(out[:, 0], out[:, 2])
    assert np.all(grown[radial > 0.099] >= radial[radial > 0.099] - 1e-6)  # nothing moves in
    parts[:] = PART_NAMES.index("face")  # an open face keeps the fit's own surface
    np.testing.assert_allclose(even_garments(v.astype(np.float32), f, offsets, parts), v, atol=1e-6)


def test_what_covers_the_head_is_round_and_other_loose_cloth_is_flatter():
    """A hood, a helmet or big hair around a small head: the proxy is a ball there (as deep as the blob is wide),
    while the same blob hung from any other part keeps the flatter depth of loose clothes."""
    from human3d.multiview.prior import proxy_depths
    from human3d.multiview.thickness import LOOSE_DEPTH

    r = 128
    yy, xx = np.mgrid[0:r, 0:r]
    x, y = 2 * (xx + 0.5) / r - 1, 1 - 2 * (yy + 0.5) / r
    rho = np.hypot(x, y - 0.6)
    blob, head = rho < 0.25, rho < 0.08
    torso = (np.abs(x) < 0.2) & (y < 0.35) & (y > -0.6)
    silhouette, covered = blob | torso, head | torso
    half = np.where(head, np.sqrt(np.clip(0.08 ** 2 - rho ** 2, 0.0, None)), np.where(torso, 0.1, 0.0))
    depth = {}
    for name, head_label in (("head", 5), ("other", 3)):
        labels = np.where(head, head_label, np.where(torso, 3, 0)).astype(np.int8)
        zf, zb = proxy_depths(silhouette, half, -half, covered, smooth_px=1.0, legs=labels)
        depth[name] = zf - zb
    centre = (int(round((1 - 0.6) * r / 2 - 0.5)), r // 2)
    aside = (centre[0], int(round((0.15 + 1) * r / 2 - 0.5)))  # 0.15 off the middle, beside the small head
    assert depth["head"][centre] == pytest.approx(2 * 0.25, rel=0.15)  # a ball as wide as the blob
    assert depth["head"][aside] == pytest.approx(2 * np.sqrt(0.25 ** 2 - 0.15 ** 2), rel=0.2)
    assert depth["other"][centre] < 0.8 * LOOSE_DEPTH * 2 * 0.25  # a skirt's or a coat's flatter section
    torso_px = (int(round((1 - 0.0) * r / 2 - 0.5)), r // 2)
    np.testing.assert_allclose(depth["head"][torso_px], depth["other"][torso_px], rtol=1e-6)  # tight: the body's
