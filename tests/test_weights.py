from __future__ import annotations

import json

import pytest

from human3d import weights
from human3d.errors import MissingWeightsError, UsageError


def _write_safetensors(path, n_bytes=16, truncate=0):
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_bytes // 4], "data_offsets": [0, n_bytes]}}).encode()
    data = len(header).to_bytes(8, "little") + header + b"\0" * n_bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) - truncate])


def _fake_pshuman(root):
    folder = root / "pshuman"
    for rel in weights.ASSETS["pshuman"].required:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("{}")
    for group in weights.ASSETS["pshuman"].any_of:
        first = folder / group[0]
        if first.suffix == ".json":
            first.parent.mkdir(parents=True, exist_ok=True)
            first.write_text("{}")
        else:
            _write_safetensors(first)
    return folder


def test_lookup_order_weights_dir_then_env_then_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("HUMAN3D_WEIGHTS", str(b))
    assert weights.search_dirs(a)[:3] == [a, b, tmp_path / "weights"]
    _fake_pshuman(b)
    assert weights.locate("pshuman", a) == b / "pshuman"
    _fake_pshuman(a)
    assert weights.locate("pshuman", a) == a / "pshuman"


def test_missing_asset_error_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match="smpl-x.is.tue.mpg.de") as err:
        weights.require("smplx", tmp_path / "w")
    assert str(tmp_path / "w" / "smplx") in str(err.value) and err.value.exit_code == 4
    with pytest.raises(MissingWeightsError, match="cannot be downloaded"):
        weights.download("smplx", tmp_path / "w")
    with pytest.raises(UsageError):
        weights.get_asset("nope")


def test_verify_finds_truncated_and_corrupt_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _fake_pshuman(tmp_path)
    assert weights.verify("pshuman", tmp_path) == []
    _write_safetensors(folder / "unet/diffusion_pytorch_model.safetensors", truncate=5)
    (folder / "vae/config.json").write_text("{not json")
    problems = weights.verify("pshuman", tmp_path)
    assert any("truncated" in p and "unet" in p for p in problems)
    assert any("vae/config.json" in p for p in problems)


def test_md5_mismatch_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rembg").mkdir()
    (tmp_path / "rembg" / "u2net.onnx").write_bytes(b"not the model")
    assert any("md5" in p for p in weights.verify("u2net", tmp_path))
