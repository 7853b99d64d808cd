from __future__ import annotations

import numpy as np
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
