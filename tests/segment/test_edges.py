"""The mediapipe mask snapped to the photo's edges where it is unsure (human3d.segment.edges)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from human3d.segment.edges import snap_to_edges


def _skirt_photo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A red skirt over two dark legs on a light grey background, the true person mask, and a segmenter's
    probability as mediapipe gives it: confident inside, a soft outline 4 px too wide on the left (a strip of
    background), and a dip between the legs at the hem (a notch that makes the skirt shorts)."""
    h, w = 400, 300
    rgb = np.full((h, w, 3), (232, 230, 226), np.uint8)
    truth = np.zeros((h, w), bool)
    truth[60:260, 70:230] = True  # the skirt
    rgb[60:260, 70:230] = (170, 40, 60)
    rgb[240:260, 70:230] = (120, 25, 40)  # its darker hem
    for x0 in (95, 170):  # the legs
        truth[260:390, x0:x0 + 35] = True
        rgb[260:390, x0:x0 + 35] = (40, 42, 50)
    prob = ndi.gaussian_filter(truth.astype(np.float64), 2.0)
    strip = ndi.binary_dilation(truth, iterations=4) & ~truth
    strip[:, 150:] = False
    prob[strip] = 0.8
    prob[215:260, 135:165] = 0.3  # the notch in the hem, between the legs
    return rgb, truth, prob.astype(np.float32)


def test_the_notch_is_filled_and_the_background_strip_removed():
    rgb, truth, prob = _skirt_photo()
    plain = prob > 0.5
    assert not plain[215:260, 135:165].any() and (plain & ~truth).sum() > 400  # the segmenter's two mistakes
    snapped, added, removed = snap_to_edges(rgb, prob)
    assert snapped[215:260, 135:165].all()
    assert (snapped & ~truth).sum() < 0.1 * (plain & ~truth).sum()
    assert (snapped != truth).sum() < 0.05 * (plain != truth).sum()
    assert added > 1000 and removed > 400


def test_changes_stay_where_the_segmenter_was_unsure():
    rgb, truth, prob = _skirt_photo()
    rgb[:, :] = rgb[:, ::-1]  # colours that contradict the probability: a mirrored photo
    plain = prob > 0.5
    snapped, added, removed = snap_to_edges(rgb, prob)
    changed = snapped != plain
    sure = (prob >= 0.95) & ndi.binary_erosion(plain, iterations=4)  # band: 1% of the 330 px person, at least 2
    sure_bg = (prob <= 0.05) & ~ndi.binary_dilation(plain, iterations=4)
    assert not (changed & (sure | sure_bg)).any()
    assert added + removed <= 0.15 * plain.sum()


def test_nothing_to_refine():
    rgb = np.zeros((50, 40, 3), np.uint8)
    for p in (np.zeros((50, 40), np.float32), np.ones((50, 40), np.float32)):
        m, added, removed = snap_to_edges(rgb, p)
        np.testing.assert_array_equal(m, p > 0.5)
        assert (added, removed) == (0, 0)


def test_a_busy_background_leaves_the_mask_as_the_segmenter_gave_it():
    rgb, truth, prob = _skirt_photo()
    rng = np.random.default_rng(0)
    busy = rng.integers(0, 256, rgb.shape, dtype=np.uint8)  # a street, a room: colours that overlap the person's
    rgb = np.where(truth[..., None], rgb, busy)
    snapped, added, removed = snap_to_edges(rgb, prob)
    assert (added, removed) == (0, 0)
    np.testing.assert_array_equal(snapped, prob > 0.5)


def test_a_tiny_photo_keeps_its_mask():
    rgb = np.full((12, 10, 3), 230, np.uint8)
    rgb[3:9, 3:7] = (170, 40, 60)
    prob = np.zeros((12, 10), np.float32)
    prob[3:9, 3:7] = 1.0
    prob[2, 3:7] = 0.6
    snapped, added, removed = snap_to_edges(rgb, prob)
    assert snapped.shape == prob.shape and snapped[4:8, 4:6].all()
