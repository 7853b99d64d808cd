from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from human3d.cli import app
from human3d.io.meshes import export_mesh
from human3d.types import TexturedMesh
from tests.meshdata import textured_sphere

runner = CliRunner()


def _uniform_sphere(tmp_path):
    m = textured_sphere(subdivisions=3, texture_size=16)
    m.texture[:] = (200, 40, 40)
    return export_mesh(m, tmp_path / "s.glb")


def test_still_image_shows_the_texture_colour_lit_from_the_front(tmp_path):
    from PIL import Image

    mesh = _uniform_sphere(tmp_path)
    r = runner.invoke(app, ["render", str(mesh), "--image", str(tmp_path / "s.png"), "--size", "64"])
    assert r.exit_code == 0, r.output
    img = np.asarray(Image.open(tmp_path / "s.png"))
    assert img.shape == (64, 64, 3)
    np.testing.assert_allclose(img[32, 32], (200, 40, 40), atol=6)  # centre: normal faces the light
    assert (img[0, 0] == 255).all()  # background white


def test_turntable_gif_and_mp4(tmp_path):
    import imageio.v2 as imageio

    mesh = _uniform_sphere(tmp_path)
    r = runner.invoke(app, ["render", str(mesh), "--turntable", str(tmp_path / "t.gif"), "--frames", "5",
                            "--size", "48"])
    assert r.exit_code == 0, r.output
    frames = imageio.mimread(tmp_path / "t.gif")
    assert len(frames) == 5 and frames[0].shape[:2] == (48, 48)
    r = runner.invoke(app, ["render", str(mesh), "--turntable", str(tmp_path / "t.mp4"), "--frames", "4",
                            "--size", "64"])
    assert r.exit_code == 0, r.output
    reader = imageio.get_reader(tmp_path / "t.mp4", format="FFMPEG")
    got = [f for f in reader]
    assert len(got) == 4 and got[0].shape[:2] == (64, 64)
    # refuses to overwrite, and bad suffixes are usage errors
    r = runner.invoke(app, ["render", str(mesh), "--turntable", str(tmp_path / "t.mp4")])
    assert r.exit_code == 2 and "--overwrite" in r.stderr
    r = runner.invoke(app, ["render", str(mesh), "--turntable", str(tmp_path / "t.avi")])
    assert r.exit_code == 2


def test_vertex_coloured_mesh_renders(tmp_path):
    m = textured_sphere(subdivisions=2)
    ply = export_mesh(TexturedMesh(m.vertices, m.faces, vertex_colors=m.vertex_colors), tmp_path / "s.ply")
    r = runner.invoke(app, ["render", str(ply), "--image", str(tmp_path / "v.png"), "--size", "32"])
    assert r.exit_code == 0, r.output


def test_missing_mesh_is_exit_3(tmp_path):
    r = runner.invoke(app, ["render", str(tmp_path / "nope.glb"), "--image", str(tmp_path / "x.png")])
    assert r.exit_code == 3


def _spy_devices(monkeypatch) -> list[str]:
    """Record the device every rasterizer of the turntable module is made for."""
    import human3d.render.turntable as turntable

    seen: list[str] = []
    real = turntable.get_rasterizer

    def spy(name, device):
        seen.append(str(device))
        return real(name, device)

    monkeypatch.setattr(turntable, "get_rasterizer", spy)
    return seen


def test_device_reaches_the_rasterizer_and_is_checked_before_any_output(tmp_path, monkeypatch):
    import torch

    mesh = _uniform_sphere(tmp_path)
    seen = _spy_devices(monkeypatch)
    r = runner.invoke(app, ["render", str(mesh), "--image", str(tmp_path / "c.png"), "--turntable",
                            str(tmp_path / "c.gif"), "--frames", "2", "--size", "32", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert seen == ["cpu", "cpu"]  # the still and the turntable
    seen.clear()
    r = runner.invoke(app, ["render", str(mesh), "--image", str(tmp_path / "t.png"), "--device", "tpu"])
    assert r.exit_code == 2 and "unknown device 'tpu'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        r = runner.invoke(app, ["render", str(mesh), "--image", str(tmp_path / "g.png"), "--device", "cuda"])
        assert r.exit_code == 4 and "no CUDA GPU" in r.stderr
    assert seen == [] and not (tmp_path / "t.png").exists() and not (tmp_path / "g.png").exists()


@pytest.mark.cuda
def test_render_on_cuda_matches_the_cpu(tmp_path, monkeypatch):
    from PIL import Image

    mesh = _uniform_sphere(tmp_path)
    seen = _spy_devices(monkeypatch)
    for device in ("cpu", "cuda"):
        r = runner.invoke(app, ["render", str(mesh), "--image", str(tmp_path / f"{device}.png"), "--size", "64",
                                "--device", device])
        assert r.exit_code == 0, r.output
    assert seen == ["cpu", "cuda"]
    cpu, cuda = (np.asarray(Image.open(tmp_path / f"{d}.png"), np.int16) for d in ("cpu", "cuda"))
    assert np.mean(np.abs(cpu - cuda) > 8) < 0.02  # the same picture (rasterizers differ only along edges)
