from __future__ import annotations

import numpy as np
import pytest
import torch

from human3d.cameras import (
    OrthoCamera,
    all_cameras,
    body_cameras,
    face_box,
    face_camera,
    pixel_centers_ndc,
    rotation_world_to_camera,
)


@pytest.mark.parametrize("a", [0, 45, 90, 180, 270, 315])
def test_rotations_are_proper_and_look_from_the_azimuth(a):
    r = rotation_world_to_camera(a)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    d = np.array([np.sin(np.radians(a)), 0, np.cos(np.radians(a))])
    np.testing.assert_allclose(r @ d, [0, 0, 1], atol=1e-12)  # the camera direction is camera +z


def test_front_view_is_the_world_frame_and_side_views_see_the_right_side():
    front, _, right, back, left, _ = body_cameras(768)
    np.testing.assert_allclose(front.rotation, np.eye(3))
    p = np.array([1.0, 0.0, 0.0])  # the subject's left side (+X)
    assert right.world_to_camera(p)[2] == pytest.approx(1.0)  # azimuth 90 sees +X closest
    assert left.world_to_camera(p)[2] == pytest.approx(-1.0)
    # the back view mirrors x
    assert back.world_to_camera(p)[0] == pytest.approx(-1.0)


def test_projection_matches_the_pixel_convention_for_numpy_and_torch():
    cam = OrthoCamera("front", 0.0, 8)
    centres = pixel_centers_ndc(8)
    pts = np.concatenate([centres, np.zeros((8, 8, 1))], -1)
    uv, depth = cam.project(pts)
    vv, uu = np.mgrid[0:8, 0:8]
    np.testing.assert_allclose(uv, np.stack([uu + 0.5, vv + 0.5], -1), atol=1e-12)
    uv_t, depth_t = cam.project(torch.tensor(pts, dtype=torch.float32))
    np.testing.assert_allclose(uv_t.numpy(), uv, atol=1e-5)


def test_face_camera_covers_the_face_crop():
    cam = face_camera(768)
    assert face_box(768) == (256, 0, 512, 256) and face_box(384) == (128, 0, 256, 128)
    front = OrthoCamera("front", 0.0, 768)
    # the corners of the crop on the front canvas are the corners of the face image
    for (fu, fv), (u, v) in [((256, 0), (0, 0)), ((512, 256), (768, 768))]:
        x, y = 2 * fu / 768 - 1, 1 - 2 * fv / 768
        uv, _ = cam.project(np.array([x, y, 0.0]))
        np.testing.assert_allclose(uv, [u, v], atol=1e-9)
        uv_front, _ = front.project(np.array([x, y, 0.0]))
        np.testing.assert_allclose(uv_front, [fu, fv], atol=1e-9)
    assert [c.name for c in all_cameras(64)] == ["front", "front_right", "right", "back", "left", "front_left",
                                                 "face"]
