"""The real PSHuman model, when its weights are present (marked ``weights``; skipped otherwise)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from human3d import weights
from human3d.cameras import CANVAS_SIZE, face_box
from human3d.multiview.loading import load_pipeline
from human3d.multiview.pshuman import background_masks

pytestmark = [pytest.mark.weights, pytest.mark.slow]


def _framed_photo(size: int = CANVAS_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A shared RGBA cutout framed PSHuman's way (long side 740/768, centred, white) with its face crop."""
    from PIL import Image

    from tests.conftest import shared_file

    photo = Image.open(shared_file("photos", "pexels-barbara-olsen-7869640.png")).convert("RGBA")
    alpha = np.asarray(photo)[..., 3] > 127
    ys, xs = np.nonzero(alpha)
    crop = photo.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    scale = 740 / 768 * size / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.BICUBIC)
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    canvas.paste(crop, ((size - crop.width) // 2, (size - crop.height) // 2))
    rgba = np.asarray(canvas).astype(np.float32) / 255.0
    rgb = (rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])) * 255.0
    image = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    x0, y0, x1, y1 = face_box(size)
    face = np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize((size, size), Image.BICUBIC))
    return image, face, rgba[..., 3] > 0.5


def test_real_pshuman_model_generates_views():
    folder = weights.locate("pshuman")
    if folder is None:
        pytest.skip("PSHuman weights are not present (human3d weights download pshuman)")
    cuda = torch.cuda.is_available()
    pipe = load_pipeline(folder, torch_dtype=torch.float16 if cuda else torch.float32)
    assert sum(p.numel() for p in pipe.unet.parameters()) == 919_783_684
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_memory_savings("cuda" if cuda else "cpu")
    image, face, mask = _framed_photo()
    steps = 40 if cuda else 2  # CPU float32 at 768^2: minutes per step
    out = pipe(image, face, num_inference_steps=steps, seed=42)
    assert out.normals.shape == out.colors.shape == (7, 768, 768, 3)
    assert np.isfinite(out.normals).all() and np.isfinite(out.colors).all()
    if cuda:  # a converged run: the back view's silhouette matches the mirrored input silhouette roughly
        back = background_masks(out.normals[3:4])[0]
        mirrored = mask[:, ::-1]
        iou = (back & mirrored).sum() / max((back | mirrored).sum(), 1)
        assert iou > 0.6
