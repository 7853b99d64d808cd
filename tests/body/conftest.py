"""Fixtures for the body tests: one Anny model per session (its cache is built once per machine, ~1 min cold),
single-threaded torch while these tests run (2-core machines shared with other jobs lose far more to thread
contention than they gain from a second thread)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from human3d.cameras import CANVAS_SIZE, CROP_SIZE, face_box
from human3d.context import torch_threads
from human3d.types import Framed


@pytest.fixture(scope="session")
def anny_model():
    """AnnyBody on CPU, built once for the whole session."""
    from human3d.body.models import AnnyBody

    return AnnyBody("cpu")


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


def frame_rgba(rgba: np.ndarray, resolution: int) -> Framed:
    """A test-side stand-in for the framing stage: an RGBA cutout on white, its alpha bbox scaled so its long side
    is CROP_SIZE/CANVAS_SIZE of the canvas and centred (DESIGN.md §3)."""
    alpha = rgba[..., 3] > 127
    rows, cols = np.nonzero(alpha)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    rgb = rgba[..., :3].astype(np.float32)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    on_white = (rgb * a + 255.0 * (1.0 - a)).astype(np.uint8)
    long_side = resolution * CROP_SIZE / CANVAS_SIZE
    scale = long_side / max(y1 - y0, x1 - x0)
    w, h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    ox, oy = (resolution - w) // 2, (resolution - h) // 2
    canvas = np.full((resolution, resolution, 3), 255, np.uint8)
    mask = np.zeros((resolution, resolution), bool)
    crop = Image.fromarray(on_white[y0:y1, x0:x1]).resize((w, h), Image.BILINEAR)
    crop_a = Image.fromarray((alpha[y0:y1, x0:x1] * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    canvas[oy:oy + h, ox:ox + w] = np.asarray(crop)
    mask[oy:oy + h, ox:ox + w] = np.asarray(crop_a) > 127
    fx0, fy0, fx1, fy1 = face_box(resolution)
    face_rgb = np.asarray(Image.fromarray(canvas[fy0:fy1, fx0:fx1]).resize((resolution, resolution)))
    face_mask = np.asarray(Image.fromarray(mask[fy0:fy1, fx0:fx1]).resize((resolution, resolution))) > 0
    sx = w / (x1 - x0)
    return Framed(rgb=canvas, mask=mask, face_rgb=face_rgb, face_mask=face_mask, scale=float(sx),
                  offset=(float(ox - x0 * sx), float(oy - y0 * sx)), photo_size=(rgba.shape[1], rgba.shape[0]))
