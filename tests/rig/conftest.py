"""Fixtures for the rig tests: one Anny model, one arms-down body fit and one carved-like mesh per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from human3d.context import torch_threads
from tests.rig.fixtures import ARMS_DOWN, carved_like, make_fit


@pytest.fixture(scope="session")
def anny():
    from human3d.body.models import AnnyBody

    return AnnyBody("cpu")


@pytest.fixture(scope="session")
def arms_down(anny):
    """(fit, carved-like mesh, fitted skeleton, the mesh's true weights) of a person standing with arms down against
    the body."""
    from human3d.rig.skeleton import skeleton_from_fit

    fit = make_fit(anny, ARMS_DOWN)
    mesh, truth = carved_like(fit, anny)
    return fit, mesh, skeleton_from_fit(anny, fit), truth


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with torch_threads(1):
        yield
