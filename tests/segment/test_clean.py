"""Mask clean-up: one person component, small holes filled, real gaps kept, specks removed, people counted."""

from __future__ import annotations

import numpy as np

from human3d.segment.clean import clean_mask, fill_small_holes, mask_bbox
from tests.segment.figures import draw_figure


def test_small_holes_filled_large_gaps_kept():
    m = np.zeros((200, 200), bool)
    m[20:180, 40:160] = True
    m[50:53, 60:63] = False  # 9 px hole: segmentation noise
    m[100:140, 80:120] = False  # 1600 px: a real gap (arm on the hip), > 1% of the area
    out = clean_mask(m).mask
    assert out[50:53, 60:63].all()
    assert not out[100:140, 80:120].any()
    assert out.sum() == m.sum() + 9


def test_specks_and_second_blob_removed_and_counted():
    m = np.zeros((300, 300), bool)
    big = draw_figure((300, 300), (20, 10, 140, 290))
    small = draw_figure((300, 300), (200, 150, 260, 290))
    m |= big | small
    m[5, 295] = m[290, 250] = m[150, 170] = True  # specks
    res = clean_mask(m)
    np.testing.assert_array_equal(res.mask, big)
    assert res.others == 1  # the small figure is big enough to be another person
    assert res.areas[0] == big.sum() and res.areas[1] == small.sum()


def test_tiny_blobs_are_not_people():
    m = np.zeros((300, 300), bool)
    m[10:290, 50:150] = True
    m[10:30, 250:270] = True  # 400 px vs 28000 px: a speck, not a person
    res = clean_mask(m)
    assert res.others == 0 and not res.mask[:, 200:].any()


def test_nearby_pieces_join_the_person():
    m = np.zeros((400, 400), bool)
    m[20:300, 150:250] = True  # body
    m[301:380, 160:200] = True  # a foot split off by a one-pixel gap
    res = clean_mask(m)
    assert res.mask[301:380, 160:200].all() and res.others == 0


def test_empty_mask_and_bbox():
    res = clean_mask(np.zeros((50, 60), bool))
    assert not res.mask.any() and res.areas == []
    m = np.zeros((50, 60), bool)
    m[10:20, 5:7] = True
    assert mask_bbox(m) == (5, 10, 7, 20)  # half-open


def test_fill_small_holes_limit():
    m = np.ones((50, 50), bool)
    m[10:14, 10:14] = False  # 16 px
    assert fill_small_holes(m, 16).all()
    assert not fill_small_holes(m, 15).all()
