"""Pictures for people to look at: the multi-view contact sheet of the work dir, and the preview of a result (the
photo next to renders of the exported mesh from the front, the side and the back)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from human3d.ops.image import encode_normals
from human3d.types import Framed, LoadedImage, TexturedMesh


def contact_sheet(normals: np.ndarray, colors: np.ndarray, masks: np.ndarray, tile: int = 256) -> np.ndarray:
    """(N, R, R, 3) normals, colours and (N, R, R) masks -> one uint8 image: a row of normals, a row of colours
    and a row of masks, one column per view, each tile ``tile`` pixels."""
    from PIL import Image

    def fit(img: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(img).resize((tile, tile), Image.BILINEAR))

    rows = []
    rows.append([fit(encode_normals(n, m)) for n, m in zip(normals, masks)])
    rows.append([fit(np.clip(c * 255 + 0.5, 0, 255).astype(np.uint8)) for c in colors])
    rows.append([fit(np.repeat((m.astype(np.uint8) * 255)[..., None], 3, -1)) for m in masks])
    return np.concatenate([np.concatenate(r, 1) for r in rows], 0)


#: What the preview shows, left to right: the photo, then the result from these azimuths (degrees).
PREVIEW_AZIMUTHS = (0.0, 90.0, 180.0)
PREVIEW_LABELS = ("input", "0° front", "90° left side", "180° back")
#: The render panels' background (a light neutral grey, so white clothes stay visible) and the gap colour.
PREVIEW_BACKGROUND = (0.92, 0.92, 0.92)
PREVIEW_GAP = (64, 64, 64)
PREVIEW_GAP_PX = 4


def preview_path(output: Path, folder: Path | None = None) -> Path:
    """Where the preview of ``output`` goes: ``NAME_preview.png`` beside it, or in ``folder`` when given."""
    return (folder or output.parent) / f"{output.stem}_preview.png"


def photo_in_canvas(photo: LoadedImage, framed: Framed, tile: int) -> np.ndarray:
    """(tile, tile, 3) uint8: the original photo (alpha over white) seen through the canonical canvas window, so
    it lines up pixel for pixel with a front render of the result."""
    from PIL import Image

    rgb = photo.rgb.astype(np.float32)
    if photo.alpha is not None:
        a = photo.alpha.astype(np.float32)[..., None] / 255.0
        rgb = rgb * a + 255.0 * (1.0 - a)
    img = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))
    if (img.width, img.height) != tuple(framed.photo_size) and framed.photo_size[0] > 0:
        img = img.resize(tuple(framed.photo_size), Image.BILINEAR)  # the frame was cut from this size
    step = framed.resolution / tile  # canvas pixels per tile pixel
    ox, oy = framed.offset
    coeffs = (step / framed.scale, 0.0, -ox / framed.scale, 0.0, step / framed.scale, -oy / framed.scale)
    out = img.transform((tile, tile), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=(255, 255, 255))
    return np.asarray(out)


def preview_image(photo: LoadedImage, framed: Framed, mesh: TexturedMesh, normals: np.ndarray | None = None,
                  tile: int = 384, renderer: str = "auto", device: str = "cpu") -> np.ndarray:
    """(caption + tile, 4 tile + 3 gaps, 3) uint8: the photo next to shaded, textured renders of ``mesh``
    (canonical frame) at the azimuths of :data:`PREVIEW_AZIMUTHS`; a caption strip names each panel, and the panels
    themselves are the canvas framing (:func:`caption_height` rows above them).

    normals: (V, 3) vertex normals to shade with (the exported file's); None computes smooth ones. device: where
    the rasterizer runs.
    """
    from human3d.cameras import OrthoCamera
    from human3d.render import get_rasterizer
    from human3d.render.turntable import render_shaded

    cams = [OrthoCamera(f"preview{a:g}", a, tile) for a in PREVIEW_AZIMUTHS]
    views = render_shaded(mesh, cams, normals, get_rasterizer(renderer, device), PREVIEW_BACKGROUND, device)
    panels = [np.concatenate([_caption(tile, text), p], 0)
              for p, text in zip([photo_in_canvas(photo, framed, tile), *views], PREVIEW_LABELS)]
    gap = np.empty((panels[0].shape[0], PREVIEW_GAP_PX, 3), np.uint8)
    gap[:] = PREVIEW_GAP
    row = [panels[0]]
    for p in panels[1:]:
        row += [gap, p]
    return np.concatenate(row, 1)


def caption_height(tile: int) -> int:
    """Rows of the caption strip above preview panels of ``tile`` pixels."""
    return max(16, tile // 14)


def _caption(width: int, text: str) -> np.ndarray:
    """(caption_height, width, 3) uint8: ``text`` in dark grey on white."""
    from PIL import Image, ImageDraw, ImageFont

    h = caption_height(width)
    img = Image.new("RGB", (width, h), (255, 255, 255))
    try:
        font = ImageFont.load_default(size=int(h * 0.7))
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    ImageDraw.Draw(img).text((h // 3, h // 8), text, fill=(40, 40, 40), font=font)
    return np.asarray(img)


def exported_normals(path: Path, n_vertices: int) -> np.ndarray | None:
    """(V, 3) vertex normals stored in the exported mesh file ``path``, or None when the file carries none (or a
    different number of vertices than the mesh read from it). GLB normals are read exactly as stored."""
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix == ".glb":
        normals = _glb_normals(data)
    elif (suffix == ".obj" and re.search(rb"^vn\s", data, re.MULTILINE)) or (
            suffix == ".ply" and re.search(rb"property\s+\w+\s+nx\b", data[:data.find(b"end_header")])):
        import trimesh

        normals = np.asarray(trimesh.load(path, force="mesh", process=False).vertex_normals, dtype=np.float32)
    else:
        normals = None
    return normals if normals is not None and normals.shape == (n_vertices, 3) else None


def _glb_normals(data: bytes) -> np.ndarray | None:
    """The NORMAL accessor of a single-primitive GLB (float32 VEC3), or None."""
    if data[:4] != b"glTF" or len(data) < 20:
        return None
    json_len = int.from_bytes(data[12:16], "little")
    doc = json.loads(data[20:20 + json_len])
    prims = [p for m in doc.get("meshes", []) for p in m.get("primitives", [])]
    if len(prims) != 1 or "NORMAL" not in prims[0].get("attributes", {}):
        return None
    acc = doc["accessors"][prims[0]["attributes"]["NORMAL"]]
    view = doc["bufferViews"][acc["bufferView"]]
    if acc.get("componentType") != 5126 or acc.get("type") != "VEC3" or view.get("byteStride", 12) != 12:
        return None
    bin_start = 20 + json_len + 8  # the BIN chunk's header follows the JSON chunk
    offset = bin_start + view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(data, np.float32, acc["count"] * 3, offset).reshape(-1, 3).copy()


def in_frame_of(vertices: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(V, 3) vertices of an exported file moved back into the frame of ``reference`` (the canonical-frame
    vertices they were exported from): the export is a uniform scale and a shift, so matching bounding boxes
    inverts it whatever the vertex order."""
    lo, hi = vertices.min(0), vertices.max(0)
    rlo, rhi = reference.min(0), reference.max(0)
    scale = float(np.linalg.norm(rhi - rlo) / max(np.linalg.norm(hi - lo), 1e-12))
    return ((vertices - lo) * scale + rlo).astype(np.float32)


def write_preview(photo: LoadedImage, framed: Framed, canonical: TexturedMesh, output: Path, preview: Path, *,
                  overwrite: bool = False, tile: int = 384) -> Path:
    """Render the exported file ``output`` (its own vertices, texture and normals, moved back into the canonical
    frame of ``canonical``) into the preview PNG ``preview``, atomically; an existing preview needs ``overwrite``."""
    from human3d.io.atomic import atomic_write_bytes
    from human3d.io.meshes import png_bytes, read_mesh

    exported = read_mesh(output)
    normals = exported_normals(output, len(exported.vertices))
    exported.vertices = in_frame_of(np.asarray(exported.vertices), np.asarray(canonical.vertices))
    image = preview_image(photo, framed, exported, normals, tile)
    atomic_write_bytes(preview, png_bytes(image), overwrite=overwrite)
    return preview


def write_result_preview(result, output: Path, preview: Path, *, overwrite: bool = False, tile: int = 384) -> Path:
    """:func:`write_preview` for a :class:`~human3d.pipeline.ReconstructionResult` that exported ``output``."""
    values = result.results
    return write_preview(values["load"], values["frame"], values["texture"], output, preview, overwrite=overwrite,
                         tile=tile)


def add_result_preview(result, output: Path, preview: Path, *, overwrite: bool = False) -> None:
    """Write ``result``'s preview and record its seconds in ``result.timings["preview"]``; a failure becomes a
    warning on the result, never an error (the mesh is written and good)."""
    import time

    t0 = time.perf_counter()
    try:
        write_result_preview(result, Path(output), preview, overwrite=overwrite)
    except Exception as err:  # noqa: BLE001 - any rendering failure is reported, the reconstruction stands
        result.warnings.append(f"preview not written: {type(err).__name__}: {err}")
    result.timings["preview"] = time.perf_counter() - t0
