"""Clothing and hair offsets: a body inside a wider silhouette (a baggy costume) grows out to it along its normals,
never inward, and stays as it is where the silhouette already matches."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import binary_dilation

from human3d.body.offsets import OffsetSettings, fit_offsets, vertex_normals
from human3d.body.silhouette import mask_iou, prepare_silhouette, render_mask
from human3d.body.synthetic import make_body, random_pose
from human3d.ops.mesh import uniform_laplacian

R = 256


def test_laplacian_of_a_constant_is_zero():
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])
    f = torch.as_tensor(faces)
    lap = torch.cat([uniform_laplacian(col[:, None], f) for col in torch.eye(4)], 1).numpy()  # column j: L e_j
    np.testing.assert_allclose(lap @ np.ones(4), 0.0, atol=1e-6)
    assert lap[0, 0] == 1.0 and lap[0, 1] == np.float32(-1.0 / 3.0)


def test_offsets_grow_the_body_into_a_baggy_silhouette(anny_model):
    body = make_body(anny_model, random_pose("standing", 0), resolution=R)
    v, f = body.vertices.astype(np.float64), anny_model.faces
    baggy = binary_dilation(body.mask, iterations=5)  # clothes 5 px (about 3 cm) all around the body
    baggy[: int(0.1 * R)] |= binary_dilation(body.mask, iterations=12)[: int(0.1 * R)]  # and big hair
    before = mask_iou(render_mask(v, f, R), baggy)
    settings = OffsetSettings(steps=30)
    d = fit_offsets(v, f, prepare_silhouette(baggy, None, R, "cpu"), settings)
    assert d.shape == (len(v),) and (d >= 0).all() and d.max() <= settings.max_offset
    clothed = v + d[:, None] * vertex_normals(v, f)
    after = mask_iou(render_mask(clothed, f, R), baggy)
    assert before < 0.85 and after > 0.93 and after > before + 0.08
    # where the outline already fits, nothing moves much: the same body against its own mask
    d0 = fit_offsets(v, f, prepare_silhouette(body.mask, None, R, "cpu"), settings)
    assert np.percentile(d0, 95) < 0.2 * np.percentile(d, 95)
    assert mask_iou(render_mask(v + d0[:, None] * vertex_normals(v, f), f, R), body.mask) > 0.97
