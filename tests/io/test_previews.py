"""The preview's pieces: normals read from an exported file, the inverse of the export transform, the photo in the
canvas window, and shading with given normals."""

from __future__ import annotations

import numpy as np
import trimesh

from human3d.cameras import OrthoCamera
from human3d.io.meshes import export_transform
from human3d.io.previews import exported_normals, in_frame_of, photo_in_canvas
from human3d.render.turntable import render_shaded
from human3d.types import Framed, LoadedImage, TexturedMesh


def test_glb_normals_are_read_exactly_as_stored(tmp_path):
    s = trimesh.creation.icosphere(2)
    odd = np.tile([0.0, 0.0, 1.0], (len(s.vertices), 1))  # not what anyone would compute from the geometry
    tm = trimesh.Trimesh(s.vertices, s.faces, vertex_normals=odd, process=False)
    (tmp_path / "n.glb").write_bytes(tm.export(file_type="glb", include_normals=True))
    np.testing.assert_array_equal(exported_normals(tmp_path / "n.glb", len(s.vertices)), odd)
    assert exported_normals(tmp_path / "n.glb", len(s.vertices) + 1) is None  # not this mesh's normals
    (tmp_path / "plain.glb").write_bytes(trimesh.Trimesh(s.vertices, s.faces, process=False).export(file_type="glb"))
    assert exported_normals(tmp_path / "plain.glb", len(s.vertices)) is None


def test_shading_uses_the_given_normals():
    s = trimesh.creation.icosphere(3)
    mesh = TexturedMesh(vertices=np.asarray(s.vertices, np.float32) * 0.8, faces=np.asarray(s.faces),
                        vertex_colors=np.full((len(s.vertices), 3), 200, np.uint8))
    cam = [OrthoCamera("front", 0.0, 96)]
    smooth = render_shaded(mesh, cam)[0]
    facing = render_shaded(mesh, cam, normals=np.tile([0.0, 0.0, 1.0], (len(s.vertices), 1)))[0]
    fg = np.any(smooth != 255, -1)
    assert smooth[fg].std() > 10  # a shaded sphere: darker toward the rim
    assert np.all(facing[fg] == facing[fg][0])  # every normal faces the camera: one flat colour


def test_in_frame_of_undoes_the_export_transform_whatever_the_vertex_order():
    rng = np.random.default_rng(0)
    canonical = rng.normal(size=(500, 3)).astype(np.float32) * [0.3, 0.9, 0.2]
    exported = export_transform(canonical, 1.8, 2.0)
    order = rng.permutation(len(canonical))
    np.testing.assert_allclose(in_frame_of(exported[order], canonical), canonical[order], atol=1e-5)


def test_photo_lines_up_with_the_canvas():
    rgb = np.full((100, 80, 3), 255, np.uint8)
    rgb[40:60, 30:50] = (255, 0, 0)  # a red square in photo pixels
    r = 256
    framed = Framed(rgb=np.zeros((r, r, 3), np.uint8), mask=np.zeros((r, r), bool),
                    face_rgb=np.zeros((r, r, 3), np.uint8), face_mask=np.zeros((r, r), bool), scale=2.0,
                    offset=(20.0, 10.0), photo_size=(80, 100))
    tile = photo_in_canvas(LoadedImage(rgb=rgb), framed, 128)  # tile pixel = canvas pixel / 2 = photo + (10, 5)
    red = np.all(tile == (255, 0, 0), -1)
    ys, xs = np.nonzero(red)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (40, 59, 45, 64)  # photo [30, 50) x [40, 60)
    assert red.sum() == 20 * 20
