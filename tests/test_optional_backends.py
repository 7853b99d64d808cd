"""Optional dependencies never change results silently: asked for by name and absent -> a one-line error with the
install hint (before any work where an option asks); chosen by ``auto`` -> a logged line saying which and why.

(Segmentation's and the multi-view masks' rembg/mediapipe choices are tested in tests/segment and tests/multiview.)
"""

from __future__ import annotations

import logging
import sys

import pytest
from typer.testing import CliRunner

from human3d.cli import app
from human3d.errors import MissingBackendError
from human3d.render import get_rasterizer, open3d_available

runner = CliRunner()


@pytest.fixture
def no_open3d(monkeypatch):
    monkeypatch.setitem(sys.modules, "open3d", None)  # import open3d -> ImportError


def test_auto_renderer_says_what_it_chose(caplog):
    with caplog.at_level(logging.INFO, logger="human3d"):
        name = get_rasterizer("auto", "cpu").name
    said = [r for r in caplog.records if r.getMessage().startswith("renderer 'auto'")]
    assert len(said) == 1
    if open3d_available():
        assert name == "open3d" and said[0].levelno == logging.INFO and "open3d imports" in said[0].getMessage()
    else:
        assert name == "torch" and said[0].levelno == logging.WARNING


def test_auto_renderer_without_open3d_warns_and_asked_open3d_is_an_error(no_open3d, caplog):
    with caplog.at_level(logging.INFO, logger="human3d"):
        assert get_rasterizer("auto", "cpu").name == "torch"
    assert any(r.levelno == logging.WARNING and "open3d does not import" in r.getMessage() for r in caplog.records)
    with pytest.raises(MissingBackendError, match=r"pip install open3d"):
        get_rasterizer("open3d", "cpu")


def test_faces_without_open3d_is_refused_before_any_work(no_open3d, tmp_path):
    photo = tmp_path / "person.png"
    photo.write_bytes(b"never read: the option is refused first")
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(tmp_path / "o.glb"), "--faces", "5000"])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 4 and len(lines) == 1, r.stderr
    assert "--faces" in lines[0] and "pip install open3d" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["person.png"]


def test_ray_executor_without_ray_is_refused_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    r = runner.invoke(app, ["reconstruct", str(a), str(b), "-o", str(tmp_path / "out"), "--executor", "ray"])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 4 and len(lines) == 1 and "pip install 'human3d[ray]'" in lines[0], r.stderr
    assert not (tmp_path / "out").exists()
