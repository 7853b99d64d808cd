"""Shared test fixtures: the shared reference data (skipped when absent), markers for cuda/weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HUMAN3D_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    """Path to a file in ../shared/data; skips the test when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared reference data {p} is absent")
    return p


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared reference data {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def stage_needing_a_package(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """The target ``module:function`` of a stage whose module imports a package that is not installed (an install
    without human3d's dependencies); the module lives outside the test's ``tmp_path``."""
    folder = tmp_path_factory.mktemp("stage_modules")
    (folder / "h3d_stage_needing_a_package.py").write_text(
        "import h3d_package_that_is_not_installed  # noqa: F401\n\n\ndef fit(*args):\n    raise AssertionError\n")
    monkeypatch.syspath_prepend(str(folder))
    return "h3d_stage_needing_a_package:fit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip_cuda)
