"""Shaded, textured renders of a finished mesh from around it: turntable videos and still views."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from human3d.cameras import OrthoCamera
from human3d.errors import UsageError
from human3d.io.atomic import atomic_path
from human3d.ops.image import decode_normals, sample_uv
from human3d.render import Rasterizer, get_rasterizer
from human3d.texture.shading import smooth_normals, vertex_tangents
from human3d.types import TexturedMesh


def _normalised(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Vertices centred on their bounding box and scaled so that the tallest axis spans 90% of the view."""
    lo, hi = vertices.min(0), vertices.max(0)
    centre = 0.5 * (lo + hi)
    radius = float(np.max(np.linalg.norm((vertices - centre)[:, [0, 2]], axis=1)))
    extent = max(float(hi[1] - lo[1]) / 2, radius, 1e-9)
    return (vertices - centre) / extent * 0.9, extent


def _shading_normals(mesh: TexturedMesh) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(V, 3) the mesh's own normals (the exported ones; smooth welded ones when it has none) and (V, 4) tangents
    when it has a normal map and UVs, else None."""
    normals = mesh.normals if mesh.normals is not None else smooth_normals(mesh.vertices, mesh.faces)
    tangents = None
    if mesh.normal_texture is not None and mesh.uvs is not None:
        tangents = torch.as_tensor(vertex_tangents(mesh.vertices, mesh.faces, mesh.uvs, normals))
    return torch.as_tensor(np.asarray(normals, np.float32)), tangents


def _apply_normal_map(n: np.ndarray, frame: np.ndarray, uv: np.ndarray, normal_texture: np.ndarray) -> np.ndarray:
    """(K, 3) interpolated normals, (K, 4) interpolated tangents, (K, 2) uvs -> (K, 3) normals from the map, as a
    glTF viewer computes them: normalize(t x + w cross(n, t) y + n z)."""
    local = decode_normals(sample_uv(normal_texture[..., :3].astype(np.float32) / 255.0, uv))
    t = frame[:, :3] - n * np.sum(frame[:, :3] * n, -1, keepdims=True)
    t /= np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-9)
    b = np.sign(frame[:, 3:4] + 1e-9) * np.cross(n, t)
    out = t * local[:, :1] + b * local[:, 1:2] + n * local[:, 2:3]
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-9)


def render_views(mesh: TexturedMesh, azimuths: list[float], resolution: int = 512, renderer: str = "auto",
                 chunk: int = 8, poses: list[np.ndarray] | None = None, device: str | torch.device = "cpu"
                 ) -> Iterator[np.ndarray]:
    """Yield one (R, R, 3) uint8 image per azimuth: the mesh's colours with simple head-light shading on white,
    shaded with the mesh's own normals (and its normal map when it has one).

    poses: optionally one (V, 3) vertex array per azimuth (an animation), framed like the mesh's own vertices with a
    margin so that raised arms stay in view (a posed mesh is shaded with normals computed from its pose).
    device: where the rasterizer runs.
    """
    raster = get_rasterizer(renderer, device)
    if poses is not None:
        lo, hi = np.min([p.min(0) for p in poses], 0), np.max([p.max(0) for p in poses], 0)
        _, extent = _normalised(np.asarray(mesh.vertices, np.float64))
        centre = 0.5 * (lo + hi)
        extent = max(extent, float(np.max(hi - lo)) / 2)
        for azimuth, pose in zip(azimuths, poses):
            moved = dataclasses.replace(
                mesh, vertices=((np.asarray(pose, np.float64) - centre) / extent * 0.9).astype(np.float32),
                normals=None)
            yield from render_shaded(moved, [OrthoCamera(f"az{azimuth:g}", float(azimuth), resolution)],
                                     raster=raster, device=device)
        return
    v_np, _ = _normalised(np.asarray(mesh.vertices, np.float64))  # a uniform scale: the normals still hold
    framed = dataclasses.replace(mesh, vertices=v_np.astype(np.float32))
    for start in range(0, len(azimuths), chunk):
        cams = [OrthoCamera(f"az{a:g}", float(a), resolution) for a in azimuths[start:start + chunk]]
        yield from render_shaded(framed, cams, raster=raster, device=device)


def render_shaded(mesh: TexturedMesh, cameras: list[OrthoCamera], normals: np.ndarray | None = None,
                  raster: Rasterizer | None = None, background: tuple[float, float, float] = (1.0, 1.0, 1.0),
                  device: str | torch.device = "cpu") -> list[np.ndarray]:
    """One (R, R, 3) uint8 image per camera of ``mesh`` as it stands in the canonical frame: its texture (or vertex
    colours, else light grey) times head-light shading ``0.35 + 0.65 max(n . view, 0)`` on ``background``.

    normals: (V, 3) vertex normals to shade with (e.g. the ones an exported file carries); None uses the mesh's own
    (``mesh.normals``, else smooth welded ones) and its normal map when it has one. Every camera must have the same
    resolution. device: where the rasterizer (``raster``, else 'auto' on it) runs.
    """
    raster = raster or get_rasterizer("auto", device)
    resolution = cameras[0].resolution
    v = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32, device=device)
    f = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.int64, device=device)
    if normals is None:
        vn, tangents = _shading_normals(mesh)
    else:
        vn, tangents = torch.as_tensor(np.asarray(normals), dtype=torch.float32), None
    textured = mesh.texture is not None and mesh.uvs is not None
    if textured:
        attr = torch.cat([vn, torch.as_tensor(mesh.uvs, dtype=torch.float32)], 1)
    elif mesh.vertex_colors is not None:
        attr = torch.cat([vn, torch.as_tensor(mesh.vertex_colors[:, :3], dtype=torch.float32) / 255.0], 1)
    else:
        attr = torch.cat([vn, torch.full((len(v), 3), 0.75)], 1)
    if tangents is not None:  # the last 6 channels: uv, tangent
        attr = torch.cat([attr, torch.as_tensor(mesh.uvs, dtype=torch.float32), tangents], 1)
    with torch.no_grad():
        frags = raster.rasterize(v, f, cameras)
        img = raster.interpolate(attr.to(v.device), frags).cpu().numpy()  # (B, R, R, 3 + k)
    mask = frags.mask.cpu().numpy()
    tex = mesh.texture[..., :3].astype(np.float32) / 255.0 if textured else None
    images = []
    for b, cam in enumerate(cameras):
        n = img[b, ..., :3]
        n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
        if tangents is not None:
            n[mask[b]] = _apply_normal_map(n[mask[b]], img[b, ..., -4:][mask[b]], img[b, ..., -6:-4][mask[b]],
                                           mesh.normal_texture)
        shade = 0.35 + 0.65 * np.clip(n @ cam.direction, 0.0, 1.0)
        if tex is not None:
            colour = np.ones((resolution, resolution, 3), np.float32)
            colour[mask[b]] = sample_uv(tex, img[b, ..., 3:5][mask[b]])
        else:
            colour = img[b, ..., 3:6]
        out = np.empty((resolution, resolution, 3), np.float32)
        out[:] = background
        out[mask[b]] = (colour * shade[..., None])[mask[b]]
        images.append(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8))
    return images


def write_turntable(mesh: TexturedMesh, path: str | Path, frames: int = 60, resolution: int = 512, fps: int = 30,
                    overwrite: bool = False, renderer: str = "auto", device: str | torch.device = "cpu") -> Path:
    """Write a turntable video (.mp4 through imageio-ffmpeg, or .gif) of ``mesh`` turning once, atomically; a mesh
    whose skin carries a clip plays it (looped) while turning."""
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise UsageError(f"turntable output {path} must end in .mp4 or .gif")
    if frames < 1 or resolution < 16:
        raise UsageError("a turntable needs at least 1 frame and 16 pixels")
    azimuths = [360.0 * i / frames for i in range(frames)]
    with atomic_path(path, overwrite=overwrite) as tmp:
        if suffix == ".mp4":
            size = resolution + (-resolution) % 16  # H.264 wants multiples of 16
            writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                        pixelformat="yuv420p", quality=8, macro_block_size=16)
        else:
            size = resolution
            writer = imageio.get_writer(tmp, format="GIF", mode="I", duration=1000.0 / fps, loop=0)
        with writer:
            for frame in render_views(mesh, azimuths, size, renderer, poses=_clip_poses(mesh, frames, fps),
                                      device=device):
                writer.append_data(frame)
    return path


def _clip_poses(mesh: TexturedMesh, frames: int, fps: int) -> list[np.ndarray] | None:
    """The mesh's vertices at every frame of its skin's clip (frame i at i / fps seconds), or None without one."""
    skin = mesh.skin
    if skin is None or not skin.clip_name or skin.clip_times is None:
        return None
    from human3d.io.gltf_skin import posed_vertices

    return [posed_vertices(skin, mesh.vertices, i / fps) for i in range(frames)]
