"""A fast stand-in for the pipeline in CLI tests of previews and reports: the real load, segment (alpha) and frame
stages, then an 'inflate' stage that turns the framed mask into a closed, textured mesh (the mask extruded with a
rounded depth, by marching cubes; UVs projected from the front), so its front view is the input silhouette."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from human3d import pipeline
from human3d.pipeline import StageSpec
from human3d.types import Cutout, Framed, LoadedImage, TexturedMesh
from tests.segment.figures import draw_figure


def person_photo(path: Path, size: tuple[int, int] = (300, 400), seed: int = 0) -> Path:
    """Write an RGBA photo of a drawn figure (alpha = its silhouette): blue top, dark legs, skin head and arms."""
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(seed)
    mask = draw_figure(size, (int(0.15 * w), int(0.08 * h), int(0.85 * w), int(0.95 * h)))
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = (222, 180, 150)  # skin
    torso = (yy > 0.2 * h) & (yy < 0.52 * h) & (xx > 0.36 * w) & (xx < 0.64 * w)
    rgb[torso] = (40, 80, 200)
    rgb[yy >= 0.52 * h] = (40, 40, 60)
    rgb = np.clip(rgb.astype(int) + rng.integers(-12, 12, rgb.shape), 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, mask.astype(np.uint8) * 255]), "RGBA").save(path)
    return path


def inflate(framed: Framed, cfg, ctx, voxels: int = 128) -> TexturedMesh:
    """(R, R) framed mask -> a closed mesh in the canonical frame whose front silhouette is the mask."""
    from PIL import Image
    from scipy.ndimage import distance_transform_edt
    from skimage.measure import marching_cubes

    n = voxels
    mask = np.asarray(Image.fromarray(framed.mask).resize((n, n), Image.NEAREST))  # (n, n) rows = image v
    depth = np.minimum(np.sqrt(distance_transform_edt(mask) / n) * 0.9, 0.35)  # half thickness, canonical units
    z = (np.arange(n) + 0.5) / n * 2 - 1
    vol = (mask[..., None] & (np.abs(z)[None, None, :] < depth[..., None])).astype(np.float32)  # (v, u, z)
    vol = np.pad(vol, 1)
    verts, faces, _, _ = marching_cubes(vol, 0.5)
    v_idx, u_idx, z_idx = (verts - 1).T
    vertices = np.stack([2 * (u_idx + 0.5) / n - 1, 1 - 2 * (v_idx + 0.5) / n, 2 * (z_idx + 0.5) / n - 1], 1)
    faces = faces[:, ::-1].astype(np.int64)  # (v, u, z) index order is left-handed: flip to counter-clockwise
    tri = vertices[faces]
    if np.einsum("ij,ij->", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) < 0:
        faces = faces[:, ::-1].copy()
    uvs = np.stack([(vertices[:, 0] + 1) / 2, (vertices[:, 1] + 1) / 2], 1)
    return TexturedMesh(vertices=vertices.astype(np.float32), faces=faces, uvs=uvs.astype(np.float32),
                        texture=framed.rgb.copy(), height_m=1.75, canonical_height=float(np.ptp(vertices[:, 1])))


FAST_STAGES = (
    StageSpec("load", "human3d.io.images:load_image_stage", (), "input", LoadedImage, "load image"),
    StageSpec("segment", "human3d.segment:segment_person", ("load",), "segment", Cutout, "segment person"),
    StageSpec("frame", "human3d.frame:frame_cutout", ("segment",), "frame", Framed, "frame"),
    StageSpec("texture", f"{__name__}:inflate", ("frame",), "texture", TexturedMesh, "inflate"),
)


@pytest.fixture
def fast_pipeline(monkeypatch):
    monkeypatch.setattr(pipeline, "STAGES", FAST_STAGES)
