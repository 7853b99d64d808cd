"""Loading the multi-view model through the real CLI: a missing file, a damaged file and running out of memory each
give their own one-line message and exit code (README's table), told apart by exception type, not message text.

The pipeline is cut to load, segment and a stage that loads the PSHuman model from a tiny saved copy in
``--weights-dir``, so each case runs the real ``reconstruct`` command, batch item and loading code in seconds.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from human3d import pipeline
from human3d.cli import app
from human3d.errors import EXIT_MISSING, EXIT_OUT_OF_MEMORY
from human3d.multiview import pshuman
from human3d.pipeline import StageSpec
from human3d.types import Cutout, LoadedImage, MultiView

runner = CliRunner()
LOADED: list[object] = []


def stub_load(path, cfg, ctx):
    return LoadedImage(rgb=np.zeros((4, 4, 3), np.uint8), source=str(path))


def stub_segment(image, cfg, ctx):
    return Cutout(rgb=image.rgb, mask=np.ones((4, 4), bool), bbox=(0, 0, 4, 4), backend="test")


def load_model_stage(cutout, cfg, ctx):
    """The multi-view stage up to the model: load it (what fails in these tests), then stop."""
    LOADED.append(pshuman.load_pshuman_pipeline(cfg, ctx))
    raise RuntimeError("not reached in these tests: the model loaded")


@pytest.fixture(scope="module")
def saved_weights(tmp_path_factory):
    from tests.multiview.tiny import tiny_pipeline

    root = tmp_path_factory.mktemp("weights")
    tiny_pipeline().save_pretrained(root / "pshuman")
    return root


@pytest.fixture
def weights(saved_weights, tmp_path, monkeypatch):
    """A fresh copy of the tiny PSHuman weights; the pipeline cut down to loading the model."""
    root = tmp_path / "weights"
    shutil.copytree(saved_weights, root)
    monkeypatch.setattr(pipeline, "STAGES", (
        StageSpec("load", f"{__name__}:stub_load", (), "input", LoadedImage, "load image"),
        StageSpec("segment", f"{__name__}:stub_segment", ("load",), "segment", Cutout, "segment person"),
        StageSpec("multiview", f"{__name__}:load_model_stage", ("segment",), "multiview", MultiView, "multi-view"),
    ))
    monkeypatch.setattr(pshuman, "_CACHE", {})
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    LOADED.clear()
    # the real CLI keeps transformers' loading bar off stderr (human3d.cli.quiet); CliRunner skips that set-up
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    yield root
    hf_logging.enable_progress_bar()


def reconstruct(tmp_path, weights) -> tuple[int, str]:
    photo = tmp_path / "person.png"
    photo.write_bytes(b"not read by the stub stage")
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(tmp_path / "out.glb"), "--mv-backend", "pshuman",
                            "--weights-dir", str(weights), "--no-rig", "--quiet"])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out.glb").exists()
    return r.exit_code, lines[0]


def test_the_tiny_weights_load_when_intact(weights, tmp_path):
    code, line = reconstruct(tmp_path, weights)
    assert len(LOADED) == 1 and "not reached in these tests" in line and code == 5


@pytest.mark.parametrize("part", ["vae", "prompt_embeddings"])
def test_a_missing_weights_file_is_named_as_missing(weights, tmp_path, part):
    """The vae's weights are in the registry's list (checked before any stage); the prompt embeddings' only when
    loading: both say the file is not there, and nothing about damage or memory."""
    gone = weights / "pshuman" / part / "diffusion_pytorch_model.safetensors"
    gone.unlink()
    code, line = reconstruct(tmp_path, weights)
    assert code == EXIT_MISSING and "damaged" not in line and "memory" not in line
    if part == "vae":
        assert "PSHuman" in line and "not found" in line and str(weights / "pshuman") in line and not LOADED
    else:
        assert f"{gone} is missing" in line


@pytest.mark.parametrize("damage", ["truncated", "header"])
def test_a_damaged_safetensors_file_is_named_as_damaged(weights, tmp_path, damage):
    path = weights / "pshuman" / "unet" / "diffusion_pytorch_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-100] if damage == "truncated" else b"\xff" * 8 + data[8:])
    code, line = reconstruct(tmp_path, weights)
    assert code == EXIT_MISSING and str(path) in line and "is missing" not in line and "memory" not in line
    assert ("truncated" if damage == "truncated" else "corrupt safetensors header") in line


def test_a_damaged_file_behind_diffusers_is_told_by_its_type(weights, tmp_path, monkeypatch):
    """Bytes damaged past the header: safetensors' own error, re-raised by diffusers, still reads as damaged."""
    import safetensors.torch

    def damaged(*args, **kwargs):
        from safetensors import SafetensorError

        raise SafetensorError("Error while deserializing header: invalid data")

    monkeypatch.setattr(safetensors.torch, "load_file", damaged)
    monkeypatch.setattr(safetensors.torch, "load", damaged)
    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **k: damaged())
    code, line = reconstruct(tmp_path, weights)
    assert code == EXIT_MISSING and "damaged or incomplete" in line and ".safetensors" in line


@pytest.mark.parametrize("where", ["loading", "moving to the device"])
def test_out_of_gpu_memory_is_its_own_error_and_never_says_download(weights, tmp_path, monkeypatch, where):
    from human3d.multiview.pipeline import PSHumanMVPipeline
    from human3d.multiview.unet_mv import UNetMV2DConditionModel

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    if where == "loading":
        monkeypatch.setattr(UNetMV2DConditionModel, "from_pretrained", classmethod(oom))
    else:
        monkeypatch.setattr(PSHumanMVPipeline, "enable_memory_savings", oom)
    code, line = reconstruct(tmp_path, weights)
    assert code == EXIT_OUT_OF_MEMORY and "out of GPU memory" in line and "Tried to allocate" in line
    assert "download" not in line and "damaged" not in line and "missing" not in line


def test_out_of_ram_while_loading_is_an_out_of_memory_error(weights, tmp_path, monkeypatch):
    from human3d.multiview.unet_mv import UNetMV2DConditionModel

    def no_ram(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(UNetMV2DConditionModel, "from_pretrained", classmethod(no_ram))
    code, line = reconstruct(tmp_path, weights)
    assert code == EXIT_OUT_OF_MEMORY and "out of memory (RAM)" in line and "download" not in line


def test_out_of_memory_in_a_stage_is_exit_6_not_an_internal_error(weights, tmp_path, monkeypatch):
    """Past loading: a stage's OutOfMemoryError reaches the batch wrapped as an internal error, and is told by
    its cause's type."""
    def stage_out_of_memory(cutout, cfg, ctx):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(sys.modules[__name__], "load_model_stage", stage_out_of_memory)
    code, line = reconstruct(tmp_path, weights)
    assert code == EXIT_OUT_OF_MEMORY and "out of GPU memory while reconstructing" in line and "9.00 GiB" in line
    assert "internal error" not in line and "download" not in line


def test_a_failed_host_allocation_in_a_stage_is_exit_6_out_of_ram(weights, tmp_path, monkeypatch):
    """torch reports a failed CPU allocation as a plain RuntimeError: it is still out of memory (RAM), exit 6."""
    def stage_asks_too_much(cutout, cfg, ctx):
        torch.empty(10**15, dtype=torch.uint8)  # a petabyte: torch's own allocator refuses it

    monkeypatch.setattr(sys.modules[__name__], "load_model_stage", stage_asks_too_much)
    code, line = reconstruct(tmp_path, weights)
    assert code == EXIT_OUT_OF_MEMORY and "out of memory (RAM) while reconstructing" in line
    assert "internal error" not in line and "download" not in line


def test_memory_guard_passes_other_runtime_errors_through():
    from human3d.errors import OutOfMemoryError
    from human3d.weights import memory_guard

    with pytest.raises(RuntimeError, match="shape mismatch"), memory_guard("testing"):
        raise RuntimeError("shape mismatch")
    with pytest.raises(OutOfMemoryError, match="out of memory \\(RAM\\) while testing"), memory_guard("testing"):
        torch.empty(10**15, dtype=torch.uint8)
