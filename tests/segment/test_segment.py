"""The segment stage: backend choice, alpha / mask / rembg / mediapipe backends, no-person and several-people cases."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image

from human3d.config import SegmentConfig
from human3d.context import StageContext
from human3d.errors import BadInputError, MissingBackendError, MissingWeightsError, NoPersonFoundError, UsageError
from human3d.io.images import load_image
from human3d.segment import choose_backend, segment_person
from human3d.segment.clean import mask_bbox
from human3d.types import LoadedImage
from tests.conftest import shared_file
from tests.segment.figures import draw_figure, figure_rgba


def _image(rgba: np.ndarray, source: str = "test.png") -> LoadedImage:
    return LoadedImage(rgb=np.ascontiguousarray(rgba[..., :3]), alpha=rgba[..., 3].copy(), source=source)


def _ctx() -> tuple[StageContext, list[str]]:
    messages: list[str] = []
    return StageContext(progress_fn=lambda stage, f, m: messages.append(m)), messages


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# -- alpha -----------------------------------------------------------------------------------------------------
def test_auto_uses_meaningful_alpha():
    rgba = figure_rgba((200, 300), [(40, 20, 160, 290)])
    ctx, messages = _ctx()
    cut = segment_person(_image(rgba), SegmentConfig(), ctx)
    assert cut.backend == "alpha"
    np.testing.assert_array_equal(cut.mask, rgba[..., 3] > 127)
    assert cut.bbox == mask_bbox(rgba[..., 3] > 0) and cut.bbox[2] <= 160 and cut.bbox[3] <= 290
    assert any("alpha" in m for m in messages) and ctx.warnings == []
    assert cut.rgb.shape == (300, 200, 3)


@pytest.mark.parametrize("alpha_value,reason", [(255, "opaque"), (0, "transparent")])
def test_alpha_not_meaningful(alpha_value, reason):
    rgba = figure_rgba((200, 300), [(40, 20, 160, 290)])
    rgba[..., 3] = alpha_value
    backend, why = choose_backend(_image(rgba), SegmentConfig())
    assert backend == "mediapipe" and reason in why
    # Asked for explicitly: an opaque alpha cannot answer; a transparent one answers "nobody".
    with pytest.raises(BadInputError, match=reason if alpha_value else "no person") as info:
        segment_person(_image(rgba), SegmentConfig(backend="alpha"), _ctx()[0])
    assert isinstance(info.value, NoPersonFoundError) == (alpha_value == 0)
    no_alpha = LoadedImage(rgb=rgba[..., :3].copy())
    assert choose_backend(no_alpha, SegmentConfig())[0] == "mediapipe"


def test_several_people_keeps_largest_with_warning():
    rgba = figure_rgba((300, 300), [(10, 10, 130, 290), (180, 120, 260, 290)])
    ctx, _ = _ctx()
    cut = segment_person(_image(rgba), SegmentConfig(backend="alpha"), ctx)
    np.testing.assert_array_equal(cut.mask, draw_figure((300, 300), (10, 10, 130, 290)))
    assert any("at least 2" in w and "largest" in w for w in ctx.warnings)
    assert cut.warnings == ctx.warnings


def test_tiny_person_is_no_person():
    rgba = figure_rgba((400, 400), [(200, 200, 210, 220)])  # ~0.06% of the image
    with pytest.raises(NoPersonFoundError, match="no person|only"):
        segment_person(_image(rgba), SegmentConfig(backend="alpha", min_area_fraction=0.005), _ctx()[0])


# -- mask file -------------------------------------------------------------------------------------------------
def test_mask_backend(tmp_path):
    fig = draw_figure((200, 300), (40, 20, 160, 290))
    Image.fromarray(fig.astype(np.uint8) * 255).resize((100, 150), Image.Resampling.NEAREST).save(tmp_path / "m.png")
    image = LoadedImage(rgb=np.zeros((300, 200, 3), np.uint8), source="p.jpg")
    ctx, _ = _ctx()
    cut = segment_person(image, SegmentConfig(mask_path=str(tmp_path / "m.png")), ctx)
    assert cut.backend == "mask" and _iou(cut.mask, fig) > 0.9
    assert any("resizing" in w for w in ctx.warnings)
    Image.new("L", (200, 300), 0).save(tmp_path / "empty.png")
    with pytest.raises(NoPersonFoundError):
        segment_person(image, SegmentConfig(mask_path=str(tmp_path / "empty.png")), _ctx()[0])
    with pytest.raises(UsageError):
        segment_person(image, SegmentConfig(backend="mediapipe", mask_path=str(tmp_path / "m.png")), _ctx()[0])
    with pytest.raises(UsageError):
        segment_person(image, SegmentConfig(backend="nope"), _ctx()[0])


# -- rembg -----------------------------------------------------------------------------------------------------
@pytest.fixture
def isolated_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "w"


def test_rembg_without_model_names_the_folder(isolated_weights):
    pytest.importorskip("rembg")
    ctx = StageContext(weights_dir=isolated_weights)
    rgba = figure_rgba((200, 300), [(40, 20, 160, 290)])
    with pytest.raises(MissingWeightsError) as info:
        segment_person(LoadedImage(rgb=rgba[..., :3].copy()), SegmentConfig(backend="rembg"), ctx)
    assert str(isolated_weights / "rembg") in str(info.value) and "u2net.onnx" in str(info.value)


def test_rembg_not_installed(isolated_weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "rembg", None)  # import rembg -> ImportError
    with pytest.raises(MissingBackendError, match=r"pip install 'rembg\[cpu\]"):
        segment_person(LoadedImage(rgb=np.zeros((100, 100, 3), np.uint8)), SegmentConfig(backend="rembg"),
                       StageContext(weights_dir=isolated_weights))


def test_rembg_runs_the_local_model_file(isolated_weights, monkeypatch):
    """The wiring: the model file found in the weights dir goes to rembg's custom session, its mask is used.
    (No ONNX model can be built here without the onnx package, so rembg's session is replaced.)"""
    (isolated_weights / "rembg").mkdir(parents=True)
    model = isolated_weights / "rembg" / "u2net.onnx"
    model.write_bytes(b"model")
    fig = draw_figure((200, 300), (40, 20, 160, 290))
    calls = {}

    class Session:
        def predict(self, img):
            calls["size"] = img.size
            return [Image.fromarray(fig.astype(np.uint8) * 255).resize((320, 320))]

    def new_session(name, **kwargs):
        calls.update(name=name, **kwargs)
        return Session()

    monkeypatch.setitem(sys.modules, "rembg", types.SimpleNamespace(new_session=new_session))
    ctx = StageContext(weights_dir=isolated_weights)
    cut = segment_person(LoadedImage(rgb=np.zeros((300, 200, 3), np.uint8)), SegmentConfig(backend="rembg"), ctx)
    assert calls["name"] == "u2net_custom" and calls["model_path"] == str(model)
    assert calls["providers"] == ["CPUExecutionProvider"] and calls["size"] == (200, 300)
    assert cut.backend == "rembg" and _iou(cut.mask, fig) > 0.9


# -- mediapipe -------------------------------------------------------------------------------------------------
def _composite(path, background: str) -> tuple[LoadedImage, np.ndarray]:
    """A shared RGBA cutout put on a flat or noisy background (no alpha left), and its true mask."""
    rgba = np.asarray(Image.open(path).convert("RGBA"))
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    bg = (rng.integers(0, 255, rgba.shape[:2] + (3,)) if background == "noise"
          else np.broadcast_to(np.array([70, 140, 200]), rgba.shape[:2] + (3,)))
    rgb = (rgba[..., :3] * a + bg * (1.0 - a) + 0.5).astype(np.uint8)
    return LoadedImage(rgb=rgb, source=str(path)), rgba[..., 3] > 127


@pytest.mark.parametrize("name", ["pexels-barbara-olsen-7869640.png", "pexels-marta-wave-6437749.png"])
@pytest.mark.parametrize("background", ["flat", "noise"])
def test_mediapipe_on_shared_cutouts(name, background):
    pytest.importorskip("mediapipe")
    image, truth = _composite(shared_file("photos", name), background)
    ctx, messages = _ctx()
    cut = segment_person(image, SegmentConfig(), ctx)
    assert cut.backend == "mediapipe" and ctx.warnings == []
    assert _iou(cut.mask, truth) > 0.85
    assert any("mediapipe" in m for m in messages)


def test_auto_on_shared_rgba_cutout_uses_alpha():
    image = load_image(shared_file("photos", "pexels-marta-wave-6437749.png"))
    cut = segment_person(image, SegmentConfig(), _ctx()[0])
    assert cut.backend == "alpha" and _iou(cut.mask, image.alpha > 127) > 0.99


def test_mediapipe_group_photo_lists_people_and_chooses():
    pytest.importorskip("mediapipe")
    image = load_image(shared_file("photos", "flickr_39742984604_cc0_group.jpg"))
    ctx, _ = _ctx()
    cut = segment_person(image, SegmentConfig(), ctx)
    (warning,) = [w for w in ctx.warnings if "several people" in w]
    assert "numbered left to right" in warning and "--person N" in warning
    # mediapipe merges some of the seven (dark suits side by side): at least five are told apart
    assert sum(f"{i}: box" in warning for i in range(1, 8)) >= 5
    assert 0.03 < cut.mask.mean() < 0.25
    # the last one from the left is the man at the right edge, standing over most of the photo's height
    n = sum(f"{i}: box" in warning for i in range(1, 8))
    cut = segment_person(image, SegmentConfig(person=n), _ctx()[0])
    x0, y0, x1, y1 = cut.bbox
    assert x0 > 0.6 * image.size[0] and (y1 - y0) > 0.7 * image.size[1]


def test_mediapipe_no_person():
    pytest.importorskip("mediapipe")
    rng = np.random.default_rng(0)
    for rgb in (rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), np.full((240, 320, 3), 200, np.uint8)):
        with pytest.raises(NoPersonFoundError, match="no person"):
            segment_person(LoadedImage(rgb=rgb, source="empty.jpg"), SegmentConfig(backend="mediapipe"),
                           _ctx()[0])


def test_search_windows_cover_wide_images_only():
    from human3d.segment.mediapipe import search_windows

    assert search_windows(400, 600) == [(0, 0, 400, 600)]
    wins = search_windows(800, 451)
    assert wins[0] == (0, 0, 800, 451) and all(b[3] - b[1] == 451 and b[2] - b[0] == 451 for b in wins[1:])
    assert wins[1][0] == 0 and wins[-1][2] == 800  # the windows reach both ends
    assert all(b[0] < a[2] for a, b in zip(wins[1:], wins[2:], strict=False))  # and overlap


# -- optional backends: asked for -> its error; auto -> said which and why -------------------------------------
def _fake_rembg(monkeypatch, weights, mask: np.ndarray) -> None:
    (weights / "rembg").mkdir(parents=True, exist_ok=True)
    (weights / "rembg" / "u2net.onnx").write_bytes(b"model")

    class Session:
        def predict(self, img):
            return [Image.fromarray(mask.astype(np.uint8) * 255).resize((320, 320))]

    monkeypatch.setitem(sys.modules, "rembg", types.SimpleNamespace(new_session=lambda name, **kw: Session()))


def test_auto_without_mediapipe_says_it_uses_rembg(isolated_weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    fig = draw_figure((200, 300), (40, 20, 160, 290))
    _fake_rembg(monkeypatch, isolated_weights, fig)
    ctx = StageContext(weights_dir=isolated_weights)
    cut = segment_person(LoadedImage(rgb=np.zeros((300, 200, 3), np.uint8)), SegmentConfig(), ctx)
    assert cut.backend == "rembg" and _iou(cut.mask, fig) > 0.9
    said = [w for w in ctx.warnings if "rembg instead of mediapipe" in w]
    assert len(said) == 1 and "pip install mediapipe==0.10.21" in said[0]


def test_asked_for_mediapipe_never_falls_back_to_rembg(isolated_weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    _fake_rembg(monkeypatch, isolated_weights, draw_figure((200, 300), (40, 20, 160, 290)))
    with pytest.raises(MissingBackendError, match=r"pip install mediapipe==0\.10\.21"):
        segment_person(LoadedImage(rgb=np.zeros((300, 200, 3), np.uint8)), SegmentConfig(backend="mediapipe"),
                       StageContext(weights_dir=isolated_weights))


def test_auto_with_neither_mediapipe_nor_rembg_names_both(isolated_weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    monkeypatch.setitem(sys.modules, "rembg", None)
    with pytest.raises(MissingBackendError) as err:
        segment_person(LoadedImage(rgb=np.zeros((100, 100, 3), np.uint8)), SegmentConfig(),
                       StageContext(weights_dir=isolated_weights))
    assert "pip install mediapipe==0.10.21" in str(err.value) and "pip install 'rembg[cpu]" in str(err.value)
