"""frame.py: the canonical canvas geometry (DESIGN.md §3), exact photo <-> canvas mapping, the face crop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from human3d import cameras
from human3d.config import FrameConfig
from human3d.context import StageContext
from human3d.frame import frame_cutout
from human3d.segment.clean import mask_bbox
from human3d.types import Cutout, Framed
from tests.segment.figures import draw_figure


def _cutout(size: tuple[int, int], box: tuple[int, int, int, int], seed: int = 0) -> Cutout:
    w, h = size
    rng = np.random.default_rng(seed)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[...] = (30, 200, 40)  # background colour that must not leak into the canvas
    fig = draw_figure(size, box)
    rgb[fig] = (200, 60, 50) + rng.integers(-20, 20, (int(fig.sum()), 3))
    return Cutout(rgb=rgb, mask=fig, bbox=mask_bbox(fig), backend="test")


@pytest.mark.parametrize("resolution", [768, 512])
@pytest.mark.parametrize("size,box", [((300, 500), (40, 30, 220, 470)),  # tall person, scaled up
                                      ((1600, 1000), (900, 300, 1500, 620)),  # wide bbox, scaled down
                                      ((200, 200), (0, 0, 200, 200))])  # person touching every border
def test_bbox_long_side_and_centre(size, box, resolution):
    cut = _cutout(size, box)
    framed = frame_cutout(cut, FrameConfig(resolution=resolution), StageContext())
    assert framed.rgb.shape == (resolution, resolution, 3) and framed.mask.shape == (resolution, resolution)
    x0, y0, x1, y1 = mask_bbox(framed.mask)
    target = cameras.CROP_SIZE / cameras.CANVAS_SIZE * resolution
    assert abs(max(x1 - x0, y1 - y0) - target) <= 1.0
    assert abs((x0 + x1) / 2 - resolution / 2) <= 1.0 and abs((y0 + y1) / 2 - resolution / 2) <= 1.0
    # the mapping says the same as the pixels
    (cx0, cy0), (cx1, cy1) = framed.photo_to_canvas(np.array(cut.bbox, float).reshape(2, 2))
    assert abs(cx0 - x0) <= 1 and abs(cx1 - x1) <= 1 and abs(cy0 - y0) <= 1 and abs(cy1 - y1) <= 1
    assert framed.photo_size == size


def test_white_background_no_colour_leak():
    cut = _cutout((300, 500), (40, 30, 220, 470))
    framed = frame_cutout(cut, FrameConfig(resolution=256), StageContext())
    distance = ndi.distance_transform_edt(~framed.mask)
    assert (framed.rgb[distance > 2] >= 240).all()  # antialiased edges (and faint Lanczos ringing) only
    assert (framed.rgb[distance > 4] == 255).all()
    green = (framed.rgb[..., 1].astype(int) - framed.rgb[..., 0]) > 40
    assert not green.any()
    assert (framed.rgb[0, 0] == 255).all()
    inside = framed.rgb[framed.mask].astype(int)
    assert np.abs(inside.mean(0) - (200, 60, 50)).max() < 30


def test_mapping_round_trip_and_exact_pixel_placement():
    w, h = 400, 600
    cut = _cutout((w, h), (50, 40, 300, 580))
    # A one-pixel-wide marker column in the photo: where it lands must follow canvas = s * photo + o exactly.
    cut.rgb[:, 170] = (0, 0, 255)
    framed = frame_cutout(cut, FrameConfig(resolution=768), StageContext())
    pts = np.random.default_rng(3).uniform(0, [w, h], (100, 2))
    np.testing.assert_allclose(framed.canvas_to_photo(framed.photo_to_canvas(pts)), pts, atol=1e-9)
    # marker spans photo x in [170, 171): its canvas centre
    centre = framed.photo_to_canvas(np.array([170.5, 300.0]))
    row = framed.rgb[int(centre[1])].astype(float)
    blueness = np.clip(row[:, 2] - row[:, 0], 0, None)
    x = np.arange(768) + 0.5
    near = np.abs(x - centre[0]) < 6
    measured = (blueness[near] * x[near]).sum() / blueness[near].sum()
    assert abs(measured - centre[0]) < 0.25


def test_face_crop_matches_canvas_face_box():
    cut = _cutout((300, 500), (40, 30, 220, 470))
    framed = frame_cutout(cut, FrameConfig(resolution=768), StageContext())
    assert framed.face_rgb.shape == (768, 768, 3) and framed.face_mask.shape == (768, 768)
    x0, y0, x1, y1 = cameras.face_box(768)
    region = framed.rgb[y0:y1, x0:x1]
    down = np.asarray(Image.fromarray(framed.face_rgb).resize((x1 - x0, y1 - y0), Image.Resampling.BOX))
    assert np.abs(down.astype(int) - region).mean() < 6
    mask_region = framed.mask[y0:y1, x0:x1]
    face_down = np.asarray(Image.fromarray(framed.face_mask).resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST))
    assert (face_down == mask_region).mean() > 0.97
    assert framed.face_mask.any()  # the head is in the face box


def test_framed_save_load(tmp_path):
    cut = _cutout((300, 500), (40, 30, 220, 470))
    framed = frame_cutout(cut, FrameConfig(resolution=128), StageContext())
    framed.save(tmp_path / "f")
    back = Framed.load(tmp_path / "f")
    np.testing.assert_array_equal(back.rgb, framed.rgb)
    assert back.scale == framed.scale and tuple(back.offset) == framed.offset
    np.testing.assert_allclose(back.photo_to_canvas(np.array([10.0, 20.0])),
                               framed.photo_to_canvas(np.array([10.0, 20.0])))
