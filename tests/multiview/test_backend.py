"""The multi-view stage: backend choice, the PSHuman backend on a tiny pipeline, and the mapping of its normal maps
into the canonical frame."""

from __future__ import annotations

import numpy as np
import pytest

from human3d.config import MultiViewConfig
from human3d.context import StageContext
from human3d.errors import MissingBackendError, MissingWeightsError, UsageError
from human3d.multiview import choose_backend, generate_views
from human3d.multiview.pshuman import background_masks, generate_pshuman_views, views_to_multiview
from human3d.ops.image import encode_normals
from human3d.types import Framed, MultiView
from tests.multiview.tiny import NUM_VIEWS, RES, tiny_inputs, tiny_pipeline


def _framed(res: int = RES) -> Framed:
    image, face = tiny_inputs()
    mask = (image < 250).any(-1)
    return Framed(rgb=image, mask=mask, face_rgb=face, face_mask=(face < 250).any(-1))


def _sphere_normals(res: int, radius: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """(R, R, 3) world normals of a sphere seen from the front, and its mask."""
    c = (np.arange(res) + 0.5) / res * 2 - 1
    x, y = np.meshgrid(c, -c)
    r2 = (x**2 + y**2) / radius**2
    mask = r2 < 1
    n = np.stack([x / radius, y / radius, np.sqrt(np.clip(1 - r2, 0, 1))], -1)
    return np.where(mask[..., None], n, 0.0), mask


def test_normal_maps_become_world_normals_and_masks():
    normals, mask = _sphere_normals(RES)
    rgb = encode_normals(normals, mask).astype(np.float32) / 255.0  # PSHuman's drawing: (n+1)/2, white outside
    maps = np.stack([rgb] * NUM_VIEWS)
    colors = np.full_like(maps, 0.5)
    framed = _framed()
    view = views_to_multiview(maps, colors, ["front", "right", "back", "face"], framed,
                              MultiViewConfig(mask_method="normals"), StageContext(), face_view_index=3)
    assert isinstance(view, MultiView) and view.backend == "pshuman"
    np.testing.assert_array_equal(view.masks[1], mask)  # generated views: from the white background
    np.testing.assert_array_equal(view.masks[0], framed.mask)  # front: the input silhouette
    assert np.abs(view.normals[1][mask] - normals[mask]).max() < 0.01  # no rotation: PSHuman's frame is ours
    np.testing.assert_allclose(np.linalg.norm(view.normals[1][mask], axis=-1), 1.0, atol=1e-5)
    assert not view.normals[1][~mask].any()
    assert view.azimuths == [0.0, 90.0, 180.0, 0.0]
    np.testing.assert_allclose(view.view_weights, [1.0, 0.8, 1.0, 0.0])
    assert background_masks(np.ones((1, 4, 4, 3))).sum() == 0


def test_pshuman_backend_on_a_tiny_pipeline(tmp_path):
    pipe = tiny_pipeline()
    cfg = MultiViewConfig(backend="pshuman", resolution=RES, num_inference_steps=2, mask_method="normals")
    events = []
    ctx = StageContext(seed=5, progress_fn=lambda s, f, m: events.append(f))
    a = generate_pshuman_views(_framed(), None, cfg, ctx, pipeline=pipe)
    b = generate_pshuman_views(_framed(), None, cfg, StageContext(seed=5), pipeline=pipe)
    assert a.normals.shape == a.colors.shape == (NUM_VIEWS, RES, RES, 3) and a.masks.shape == (NUM_VIEWS, RES, RES)
    np.testing.assert_array_equal(a.normals, b.normals)
    assert events[-1] == 1.0 and events == sorted(events)
    assert any("CPU" in w for w in ctx.warnings)
    a.save(tmp_path / "mv")
    again = MultiView.load(tmp_path / "mv")
    np.testing.assert_array_equal(again.masks, a.masks)


def _place_pshuman_weights(weights_dir):
    """Files where PSHuman's weights go, enough for them to be found (not loaded)."""
    from human3d.weights import ASSETS

    asset = ASSETS["pshuman"]
    for rel in (*asset.required, *(group[0] for group in asset.any_of)):
        (weights_dir / "pshuman" / rel).parent.mkdir(parents=True, exist_ok=True)
        (weights_dir / "pshuman" / rel).write_text("{}")
    return weights_dir


def test_backend_choice(tmp_path):
    empty = StageContext(weights_dir=tmp_path)
    assert choose_backend(MultiViewConfig(backend="auto"), empty) in ("prior", "pshuman")
    with pytest.raises(UsageError):
        choose_backend(MultiViewConfig(backend="magic"), empty)
    _place_pshuman_weights(tmp_path)
    assert choose_backend(MultiViewConfig(), StageContext(weights_dir=tmp_path, device="cuda")) == "pshuman"
    assert choose_backend(MultiViewConfig(), StageContext(weights_dir=tmp_path, device="cpu")) == "prior"


def test_without_diffusers_pshuman_is_refused_and_auto_says_why_it_takes_the_prior(tmp_path, monkeypatch, caplog):
    import logging

    import human3d.multiview as stage

    weights = _place_pshuman_weights(tmp_path)  # weights and a GPU: only the missing package stands in the way
    real = stage.importlib.util.find_spec
    monkeypatch.setattr(stage.importlib.util, "find_spec", lambda name, *a: None if name == "diffusers"
                        else real(name, *a))
    assert stage.missing_diffusion_packages() == ["diffusers"]
    with pytest.raises(MissingBackendError, match=r"needs diffusers, which is not installed: pip install "
                                                  r"'human3d\[diffusion\]'") as err:
        choose_backend(MultiViewConfig(backend="pshuman"), StageContext(weights_dir=weights, device="cuda"))
    assert err.value.exit_code == 4
    with caplog.at_level(logging.INFO, logger="human3d"):
        assert choose_backend(MultiViewConfig(), StageContext(weights_dir=weights, device="cuda")) == "prior"
    assert "diffusers not installed" in caplog.text
    assert choose_backend(MultiViewConfig(backend="prior"), StageContext(weights_dir=weights)) == "prior"


def test_pshuman_without_weights_is_a_missing_weights_error(tmp_path, monkeypatch):
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("human3d.weights._hf_cache_folder", lambda asset: None)
    with pytest.raises(MissingWeightsError) as err:
        generate_views(_framed(), None, MultiViewConfig(backend="pshuman"), StageContext(weights_dir=tmp_path))
    assert err.value.exit_code == 4 and "pshuman" in str(err.value)


# -- the generated views' masks: rembg asked for -> its error; auto -> which one and why, logged -------------------
@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "w"


def _fake_rembg(monkeypatch, weights, mask: np.ndarray) -> list:
    import sys
    import types

    from PIL import Image

    (weights / "rembg").mkdir(parents=True, exist_ok=True)
    (weights / "rembg" / "u2net.onnx").write_bytes(b"model")
    calls: list = []

    def new_session(name, **kwargs):
        calls.append((name, kwargs["model_path"]))
        return "session"

    def remove(image, session, only_mask):
        assert session == "session" and only_mask
        return Image.fromarray(mask.astype(np.uint8) * 255)

    monkeypatch.setitem(sys.modules, "rembg", types.SimpleNamespace(new_session=new_session, remove=remove))
    return calls


def _views(cfg, ctx):
    maps = np.ones((NUM_VIEWS, RES, RES, 3), np.float32)  # all background for the normals method
    return views_to_multiview(maps, np.full_like(maps, 0.5), ["front", "right", "back", "face"], _framed(), cfg, ctx,
                              face_view_index=3)


def test_auto_masks_without_rembg_are_the_normals_and_say_why(no_weights, monkeypatch, caplog):
    import logging
    import sys

    monkeypatch.setitem(sys.modules, "rembg", None)
    messages = []
    with caplog.at_level(logging.INFO, logger="human3d"):
        view = _views(MultiViewConfig(), StageContext(weights_dir=no_weights,
                                                      progress_fn=lambda s, f, m: messages.append(m)))
    assert not view.masks[1].any()  # the white background everywhere
    said = [r.getMessage() for r in caplog.records if "multi-view masks" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("multi-view masks: normals (rembg is not usable") and "pip" in said[0]
    assert any("masks of the generated views: normals" in m for m in messages)


def test_auto_masks_with_rembg_and_its_model_use_the_local_file(no_weights, monkeypatch, caplog):
    import logging

    blob = np.zeros((RES, RES), bool)
    blob[10:50, 20:40] = True
    calls = _fake_rembg(monkeypatch, no_weights, blob)
    with caplog.at_level(logging.INFO, logger="human3d"):
        view = _views(MultiViewConfig(), StageContext(weights_dir=no_weights))
    assert calls == [("u2net_custom", str(no_weights / "rembg" / "u2net.onnx"))]
    np.testing.assert_array_equal(view.masks[1], blob)
    assert any("multi-view masks: rembg (rembg and its u2net model" in r.getMessage() for r in caplog.records)


def test_asked_for_rembg_masks_without_rembg_or_its_model_is_an_error(no_weights, monkeypatch):
    import sys

    from human3d.errors import MissingBackendError

    with pytest.raises(MissingWeightsError, match="--mv-masks rembg: .*u2net.onnx"):
        _fake_rembg(monkeypatch, no_weights, np.zeros((RES, RES), bool))
        (no_weights / "rembg" / "u2net.onnx").unlink()
        _views(MultiViewConfig(mask_method="rembg"), StageContext(weights_dir=no_weights))
    monkeypatch.setitem(sys.modules, "rembg", None)
    with pytest.raises(MissingBackendError, match=r"--mv-masks rembg: .*pip install 'rembg\[cpu\]"):
        _views(MultiViewConfig(mask_method="rembg"), StageContext(weights_dir=no_weights))
