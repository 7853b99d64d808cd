"""The prior's back and side colours by body region: pure functions on small label maps, then a two-colour outfit
(red shirt, blue trousers) on a posed Anny body with its hands crossed over the chest."""

from __future__ import annotations

import numpy as np
import pytest

from human3d.body.models import KEYPOINT_NAMES
from human3d.body.parts import FACE, HEAD, NECK, PART_NAMES, SHIRT_PARTS, TORSO, TROUSER_PARTS
from human3d.cameras import OrthoCamera
from human3d.multiview.back_colors import (
    RegionSettings,
    blend_seams,
    extend_labels,
    front_sources,
    grow_face,
    label_boundaries,
    match_colors,
    skin_colored,
    smooth_region,
    source_core,
    toward_rim,
    toward_sides,
    usable_sources,
    view_points,
)

HAND = PART_NAMES.index("hand_l")
SKIN = np.array([0.85, 0.65, 0.53])
RED, BLUE = np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.15, 0.8])


def _torso_with_a_hand(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A red torso square with a face above it and a skin-coloured hand over its right half's middle."""
    labels = np.full((n, n), -1, np.int16)
    labels[16:44, 8:40] = TORSO
    labels[2:14, 16:32] = FACE
    labels[24:32, 26:36] = HAND
    rgb = np.ones((n, n, 3))
    rgb[labels == TORSO] = RED
    rgb[labels == FACE] = SKIN
    rgb[labels == HAND] = SKIN * 0.9
    return labels, rgb


def test_labels_extend_over_the_mask_and_boundaries_are_where_they_change():
    labels = np.full((6, 6), -1, np.int16)
    labels[1:5, 1:3] = 3
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    ext = extend_labels(labels, mask)
    assert (ext[mask] == 3).all() and (ext[~mask] == -1).all()
    b = label_boundaries(ext)
    assert b[1, 1] and b[1, 4] and not b[2, 2]


def test_a_hand_over_the_torso_never_paints_the_torso():
    labels, rgb = _torso_with_a_hand()
    s = RegionSettings(margin_px=2.0, edge_px=1.0)
    src = front_sources(labels, rgb, s)
    assert not src.usable[labels == HAND].any() or HAND in src.trees  # hand pixels only ever stand for the hand
    # target points of the torso at every place of the front (under the hand too) take the torso's red
    yy, xx = np.nonzero(labels == TORSO)
    yy, xx = np.concatenate([yy, np.arange(24, 32)]), np.concatenate([xx, np.full(8, 30)])
    xy = np.stack([xx + 0.5, yy + 0.5], 1)
    cols, direct = match_colors(xy, np.full(len(xy), TORSO), src, rgb, s)
    assert np.abs(cols - RED).max() < 1e-6
    assert not direct[-8:].any() and direct.mean() > 0.5  # under the hand: from torso sources, not the photo


def test_a_misplaced_hand_inside_the_torso_label_is_not_a_source():
    labels, rgb = _torso_with_a_hand()
    labels[labels == HAND] = TORSO  # the fit missed the hand: the photo's hand lies inside the torso's label
    labels[40:44, 8:12] = HAND  # ... and the fit's hand is elsewhere (over red)
    rgb[40:44, 8:12] = SKIN
    s = RegionSettings(margin_px=2.0, edge_px=1.0)
    skin = skin_colored(labels, rgb, source_core(labels, s), s)
    assert skin[28, 30] and not skin[20, 20]
    usable = usable_sources(labels, skin, s)
    assert not usable[26:30, 28:34].any() and usable[20, 20]
    # a bare torso (mostly skin) keeps its skin as a source
    bare = np.where((labels == TORSO)[..., None], SKIN, rgb)
    skin_bare = skin_colored(labels, bare, source_core(labels, s), s)
    assert usable_sources(labels, skin_bare, s)[28, 30]


def test_the_photos_face_is_grown_over_skin_the_fit_called_head():
    labels = np.full((20, 20), HEAD, np.int16)
    labels[8:12, 8:12] = FACE
    skin = np.zeros((20, 20), bool)
    skin[5:15, 5:15] = True  # the photo's face is bigger than the fit's
    skin[0:2, 0:2] = True  # an unconnected skin-coloured patch of the head stays head
    out = grow_face(labels, skin)
    assert (out[5:15, 5:15] == FACE).all() and (out[0:2, 0:2] == HEAD).all() and out[3, 3] == HEAD


def test_seams_are_blended_and_the_rest_is_kept():
    img = np.zeros((20, 20, 3), np.float32)
    img[:, 10:] = 1.0
    key = np.where(np.arange(20)[None, :] < 10, 0, 1).repeat(20, 0)
    mask = np.ones((20, 20), bool)
    out = blend_seams(img, mask, key, sigma_px=1.5)
    assert 0.2 < out[10, 9, 0] < 0.8 and 0.2 < out[10, 10, 0] < 0.8
    assert out[10, 1, 0] == 0.0 and out[10, 18, 0] == 1.0


def test_the_back_of_the_torso_looks_up_the_front_torsos_sides_in_its_row():
    labels = np.full((10, 40), -1, np.int16)
    labels[:, 10:30] = TORSO  # columns 10..29: centre 20, half-width 10
    xy = np.array([[20.0, 5.5], [15.0, 5.5], [25.0, 5.5], [30.0, 5.5], [20.0, 5.5]])
    parts = np.array([TORSO, TORSO, TORSO, TORSO, HAND])
    out = toward_sides(xy, parts, labels, band=0.3)
    assert abs(out[0, 0] - 27.0) < 1e-6  # the centre goes 70% of the way out (to the subject's side it was on)
    assert out[1, 0] < 20 - 7 and out[2, 0] > 20 + 7  # each side stays on its side
    assert abs(out[3, 0] - 30.0) < 1e-6 and (out[:, 1] == xy[:, 1]).all()  # the rim and the rows stay
    assert out[4, 0] == 20.0  # other parts are not moved
    neck = labels.copy()
    neck[neck == TORSO] = NECK  # the neck's back likewise looks up the front neck's sides
    assert abs(toward_sides(xy[:1], np.array([NECK]), neck, band=0.3, part=NECK)[0, 0] - 27.0) < 1e-6
    assert toward_sides(xy[:1], np.array([NECK]), neck, band=0.3)[0, 0] == 20.0  # a torso rule leaves it


def test_the_back_of_the_head_looks_up_the_front_heads_outline_in_its_direction():
    yy, xx = np.mgrid[0:41, 0:41]
    r = np.hypot(xx + 0.5 - 20.5, yy + 0.5 - 20.5)
    labels = np.full((41, 41), -1, np.int16)
    labels[r <= 20] = HEAD  # a hood or hair, radius 20
    labels[r <= 11] = FACE  # the face in it
    xy = np.array([[20.5, 20.5], [20.5, 10.5], [30.5, 20.5], [20.5, 40.4], [20.5, 15.5]])
    parts = np.array([HEAD, HEAD, HEAD, HEAD, HAND])
    out = toward_rim(xy, parts, labels, band=0.25)
    radius = np.hypot(out[:, 0] - 20.5, out[:, 1] - 20.5)
    assert radius[0] == pytest.approx(0.75 * 20.5, rel=0.05) and out[0, 1] < 20.5  # the centre: up, 75% out
    assert radius[1] == pytest.approx(20.5 * (0.75 + 0.25 * 10 / 20.5), rel=0.05)  # half-way: further out
    assert out[1, 0] == pytest.approx(20.5) and out[1, 1] < 20.5  # in its own direction (up)
    assert out[2, 1] == pytest.approx(20.5) and out[2, 0] > 30.5  # to the right, further right
    assert radius[3] == pytest.approx(20.5, rel=0.05)  # the outline stays
    assert (out[4] == xy[4]).all()  # other parts are not moved
    assert all(labels[int(y), int(x)] == HEAD for x, y in out[:4])  # never inside the face
    labels[(r <= 20) & (yy >= 24) & (np.abs(xx + 0.5 - 20.5) <= 9)] = FACE  # the chin reaches the outline below
    nape = toward_rim(np.array([[20.5, 34.5]]), np.array([HEAD]), labels, band=0.25)[0]
    assert labels[int(nape[1]), int(nape[0])] == HEAD and nape[1] > 20.5  # beside the jaw, not on the chin


def test_the_back_of_the_neck_is_what_shows_beside_the_neck_in_its_row():
    from human3d.multiview.back_colors import nape_from_outline

    labels = np.full((20, 40), -1, np.int16)
    labels[5:15, 10:30] = HEAD  # a hood beside the neck, rows 5..14
    labels[5:15, 16:24] = FACE  # the chin and throat in front of the neck
    labels[5:15, 30:34] = PART_NAMES.index("hand_r")  # a raised hand touching the hood on the right
    photo = np.zeros((20, 40, 3), np.float32)
    photo[labels == HEAD] = (0.2, 0.5, 0.3)
    photo[labels == FACE] = (0.9, 0.7, 0.6)
    photo[5:15, 10:13] = (0.2, 0.4, 0.3)  # the hood's outline on the left, a shade darker
    photo[5:15, 27:30] = (0.3, 0.5, 0.2)  # and on the right
    photo[labels == PART_NAMES.index("hand_r")] = (0.8, 0.6, 0.5)
    xy = np.array([[17.5, 9.5], [22.5, 9.5], [20.5, 2.5], [20.5, 9.5]])
    parts = np.array([NECK, NECK, NECK, TORSO])
    before = np.full((4, 3), 0.5, np.float32)
    out = nape_from_outline(before, xy, parts, labels, photo, inset_px=1.0)
    np.testing.assert_allclose(out[0], (0.2, 0.4, 0.3))  # left of the middle: the left outline
    np.testing.assert_allclose(out[1], (0.3, 0.5, 0.2))  # right of it: the right one, not the hand beyond it
    np.testing.assert_allclose(out[2:], before[2:])  # outside the person, and other parts, are left


def test_smoothing_a_region_keeps_its_mean_and_leaves_the_rest():
    rng = np.random.default_rng(0)
    img = rng.random((30, 30, 3)).astype(np.float32)
    region = np.zeros((30, 30), bool)
    region[5:25, 5:25] = True
    out = smooth_region(img, region, (1.0, 3.0))
    assert (out[~region] == img[~region]).all()
    assert out[region].std() < 0.5 * img[region].std()
    assert np.abs(out[region].mean(0) - img[region].mean(0)).max() < 0.02


def test_view_points_lie_on_the_depth_seen_by_the_view():
    cam = OrthoCamera("back", 180.0, 16)
    depth = np.full((16, 16), -np.inf)
    depth[4:12, 4:12] = 0.3
    mask = np.zeros((16, 16), bool)
    mask[4:13, 4:12] = True  # one row more than the render: it takes the nearest depth
    p = view_points(cam, depth, mask)
    assert p.shape == (72, 3)
    assert np.allclose(p[:, 2], -0.3)  # the back camera looks along +z: its depth 0.3 is world z = -0.3
    uv, z = cam.project(p)
    assert np.allclose(np.floor(uv[:, 1]), np.nonzero(mask)[0]) and np.allclose(np.floor(uv[:, 0]),
                                                                               np.nonzero(mask)[1])


# ---------------------------------------------------------------------------------------------------------------
# A two-colour outfit on a posed body

R = 128
PALETTE = {"shirt": (200, 30, 30), "trousers": (30, 40, 200)}


@pytest.fixture(scope="module")
def outfit():
    """(model, photo body, its Framed, a BodyFit equal to it, a BodyFit with the arms placed differently)."""
    from human3d.body.models import AnnyBody
    from human3d.body.parts import vertex_parts
    from human3d.body.synthetic import POSES, make_body, shaded_image
    from human3d.context import torch_threads
    from human3d.types import BodyFit, Framed

    with torch_threads(1):
        model = AnnyBody("cpu")
        pose = dict(POSES["arms_crossed"])
        photo = make_body(model, pose, resolution=R)
        off = make_body(model, dict(pose, left_shoulder=(-0.3, -0.75, -0.55), right_shoulder=(-0.3, 0.75, 0.55)),
                        resolution=R)
    img = shaded_image(photo, model, PALETTE)
    framed = Framed(rgb=img, mask=photo.mask, face_rgb=img, face_mask=photo.mask)

    def fit(b):
        return BodyFit(vertices=b.vertices.astype(np.float32), faces=b.faces, joints=b.joints.astype(np.float32),
                       joint_names=list(model.joint_names), model="anny",
                       parts=vertex_parts(model.skinning_weights, model.joint_names, b.vertices, b.joints))

    return model, photo, framed, fit(photo), fit(off)


def _red(c):
    return (c[..., 0] > 2 * c[..., 1:].max(-1)) & (c[..., 0] > 0.15)


def _blue(c):
    return (c[..., 2] > 1.5 * c[..., :2].max(-1)) & (c[..., 2] > 0.15)


def _skin(c):
    chroma = c / np.maximum(c.sum(-1, keepdims=True), 1e-6)
    ref = np.array([224, 172, 140]) / (224 + 172 + 140)
    return (np.linalg.norm(chroma - ref, axis=-1) < 0.06) & (c.sum(-1) > 0.3)


def _garments_behind(photo, fit_parts_of_photo):
    """Ground truth of the back view: (R, R) part labels of the photo's body seen from behind."""
    from human3d.multiview.back_colors import render_part_labels

    return render_part_labels(photo.vertices, photo.faces, fit_parts_of_photo, [OrthoCamera("back", 180.0, R)])[0]


@pytest.mark.parametrize("which", ["exact", "misplaced_arms"])
def test_the_back_is_red_above_the_waist_and_blue_below_with_no_skin_on_the_torso(outfit, which):
    from scipy import ndimage

    from human3d.config import MultiViewConfig
    from human3d.context import StageContext, torch_threads
    from human3d.multiview.prior import generate_prior_views

    model, photo, framed, exact, off = outfit
    with torch_threads(1):
        mv = generate_prior_views(framed, exact if which == "exact" else off, MultiViewConfig(resolution=R),
                                  StageContext())
    assert mv.color_weights[3] > 0 and mv.color_weights[2] > 0 and mv.color_weights[4] > 0
    assert mv.color_weights[0] > mv.color_weights[1:].max()
    back = mv.colors[3]
    truth = _garments_behind(photo, exact.parts)
    seen = mv.masks[3]

    def part(names):
        region = np.isin(truth, [PART_NAMES.index(n) for n in names]) & seen
        return ndimage.binary_erosion(region, iterations=2)

    shirt, trousers, torso = part(SHIRT_PARTS), part(TROUSER_PARTS), part(("torso",))
    assert shirt.sum() > 300 and trousers.sum() > 300
    assert _red(back[shirt]).mean() > 0.9, _red(back[shirt]).mean()
    assert _blue(back[trousers]).mean() > 0.9, _blue(back[trousers]).mean()
    assert _skin(back[torso]).mean() < 0.01  # no hand or face on the back
    # by rows: the back of the torso's columns is red above the waist and blue below it (hips to knees)
    kp = {n: photo.keypoints[i] for i, n in enumerate(KEYPOINT_NAMES)}

    def row(y: float) -> int:  # canonical y -> pixel row
        return int((1.0 - y) * R / 2)

    hips_y = (kp["left_hip"][1] + kp["right_hip"][1]) / 2
    chest_y = (kp["left_shoulder"][1] + kp["right_shoulder"][1]) / 2
    knee_y = (kp["left_knee"][1] + kp["right_knee"][1]) / 2
    half = abs(kp["left_hip"][0] - kp["right_hip"][0])
    cols = slice(int((1 - half) * R / 2), int((1 + half) * R / 2) + 1)
    above = (slice(row(chest_y) + 3, row(hips_y + 0.3 * (chest_y - hips_y))), cols)
    below = (slice(row(hips_y) + 4, row(knee_y)), cols)
    assert _red(back[above][seen[above]]).mean() > 0.9
    assert _blue(back[below][seen[below]]).mean() > 0.9


def test_the_photo_wins_where_it_sees_in_colour_fusion(outfit):
    from human3d.config import MultiViewConfig
    from human3d.context import StageContext, torch_threads
    from human3d.multiview.prior import generate_prior_views
    from human3d.ops.mesh import vertex_normals
    from human3d.texture import color_sources
    from human3d.texture.fuse import depth_maps, fuse_colors

    model, photo, framed, exact, _ = outfit
    with torch_threads(1):
        mv = generate_prior_views(framed, exact, MultiViewConfig(resolution=R), StageContext())
    v, f = exact.vertices, exact.faces
    n = vertex_normals(v, f)

    def fused(views):
        src = color_sources(views, front_from_photo=False)
        return fuse_colors(v, n, src, depth_maps(v, f, [s.camera for s in src]))

    front_only = mv.__class__(**{**mv.__dict__, "color_weights": np.array([1, 0, 0, 0, 0, 0], np.float32)})
    (c_all, w_all), (c_front, w_front) = fused(mv), fused(front_only)
    facing = (n[:, 2] > 0.6) & (w_front > 0)
    assert facing.sum() > 1000
    assert np.abs(c_all[facing] - c_front[facing]).mean() < 0.02  # what the photo sees keeps the photo's colour
    back_torso = (n[:, 2] < -0.6) & (exact.parts == TORSO)
    assert (w_all[back_torso] > 0).mean() > 0.9 and _red(c_all[back_torso]).mean() > 0.9


def test_a_mask_that_runs_past_the_person_does_not_paint_the_sides_with_the_background(outfit):
    """Segmentation masks often run 2-3 px past the person: the sides must not take that fringe's background."""
    from scipy import ndimage

    from human3d.config import MultiViewConfig
    from human3d.context import StageContext, torch_threads
    from human3d.multiview.prior import generate_prior_views
    from human3d.types import Framed

    model, photo, framed, exact, off = outfit
    grey = np.array([232, 230, 226], np.uint8)
    rgb = np.where(photo.mask[..., None], framed.rgb, grey)
    wide = ndimage.binary_dilation(photo.mask, iterations=3)
    loose = Framed(rgb=rgb, mask=wide, face_rgb=rgb, face_mask=wide)
    with torch_threads(1):
        mv = generate_prior_views(loose, exact, MultiViewConfig(resolution=R), StageContext())
    for i in (2, 3, 4):  # right, back, left
        c = mv.colors[i][mv.masks[i]]
        background = np.abs(c - grey / 255.0).max(-1) < 0.06
        assert background.mean() < 0.005, (i, background.mean())
