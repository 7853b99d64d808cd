"""human3d.ops.image against naive per-pixel arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from human3d.ops.image import decode_normals, encode_normals, sample_bilinear, sample_nearest, sample_uv


def _naive_bilinear(img: np.ndarray, x: float, y: float) -> np.ndarray:
    h, w = img.shape[:2]
    x, y = min(max(x - 0.5, 0.0), w - 1), min(max(y - 0.5, 0.0), h - 1)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    return ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x1] + (1 - fx) * fy * img[y1, x0]
            + fx * fy * img[y1, x1])


def test_bilinear_and_nearest_against_a_loop():
    rng = np.random.default_rng(0)
    img = rng.random((5, 7, 3)).astype(np.float32)
    xy = rng.uniform(-1.0, 8.0, (200, 2))
    got = sample_bilinear(img, xy)
    for (x, y), g in zip(xy, got):
        np.testing.assert_allclose(g, _naive_bilinear(img, x, y), atol=1e-5)
    # pixel centres give the pixel exactly; a one-channel image gives (N, 1)
    np.testing.assert_allclose(sample_bilinear(img, np.array([[2.5, 3.5]])), img[3:4, 2], atol=1e-6)
    assert sample_bilinear(img[..., 0], xy).shape == (200, 1)
    near = sample_nearest(img, xy)
    for (x, y), g in zip(xy, near):
        np.testing.assert_array_equal(g, img[min(max(int(np.floor(y)), 0), 4), min(max(int(np.floor(x)), 0), 6)])


def test_uv_sampling_has_v_up():
    tex = np.zeros((4, 2, 1), np.float32)
    tex[0] = 1.0  # the top row of the image is v near 1
    assert sample_uv(tex, np.array([[0.5, 0.99]]))[0, 0] == pytest.approx(1.0)
    assert sample_uv(tex, np.array([[0.5, 0.01]]))[0, 0] == pytest.approx(0.0)
    # texel (row i, column j) centre is u = (j + 0.5) / W, v = 1 - (i + 0.5) / H
    rng = np.random.default_rng(1)
    tex = rng.random((4, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(sample_uv(tex, np.array([[0.75, 1 - 2.5 / 4]])), tex[2:3, 1], atol=1e-6)


def test_normal_codec_round_trip_white_background_and_masks():
    n = np.array([[[0, 0, 1], [1, 0, 0]], [[0, -1, 0], [0.6, 0.8, 0]]], np.float32)
    mask = np.array([[True, True], [True, False]])
    rgb = encode_normals(n, mask)
    assert rgb.dtype == np.uint8 and tuple(rgb[1, 1]) == (255, 255, 255)
    for i in range(2):
        for j in range(2):
            if mask[i, j]:
                assert tuple(rgb[i, j]) == tuple(int(np.floor((c + 1) / 2 * 255 + 0.5)) for c in n[i, j])
    back = decode_normals(rgb)
    np.testing.assert_allclose(back[mask], n[mask], atol=0.01)
    np.testing.assert_allclose(np.linalg.norm(back, axis=-1), 1.0, atol=1e-5)
    # float input in [0, 1] (PSHuman's drawing) and a mask: 0 outside it, and a zero vector stays zero
    floats = rgb.astype(np.float32) / 255.0
    floats[0, 0] = 0.5
    out = decode_normals(floats, mask)
    assert np.all(out[1, 1] == 0) and np.all(out[0, 0] == 0)
    np.testing.assert_allclose(out[0, 1], [1, 0, 0], atol=0.01)
