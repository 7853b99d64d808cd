"""Mesh files: OBJ (+MTL+PNG), GLB (embedded texture, glTF 2.0) and PLY (vertex colours); the export transform.

The export frame (DESIGN.md §3): metres, +Y up, facing +Z, feet on y = 0, centred on x = z = 0. Every file is
written atomically (temporary file, then rename), and an existing output is only replaced with ``overwrite``.
Every format carries smooth vertex normals (GLB ``NORMAL``, OBJ ``vn``, PLY ``nx ny nz``), the same on both sides
of a UV seam; a normal map goes into GLB (``normalTexture`` + ``TANGENT``) and OBJ (``map_Bump`` in the MTL).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from human3d.errors import BadInputError, OutputExistsError, UsageError
from human3d.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, check_new_files
from human3d.texture.shading import smooth_normals, vertex_tangents
from human3d.types import TexturedMesh

FORMATS = ("glb", "obj", "ply")


def format_from_path(path: Path, fmt: str | None = None) -> str:
    """The output format: ``fmt`` when given (must agree with a known suffix), else the file's suffix."""
    suffix = path.suffix.lower().lstrip(".")
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        if suffix in FORMATS and suffix != fmt:
            raise UsageError(f"output {path} has suffix .{suffix} but --format is {fmt}; make them agree")
        return fmt
    if suffix not in FORMATS:
        raise UsageError(f"cannot tell the format of {path}: use a .glb, .obj or .ply name, or --format")
    return suffix


def companion_files(path: Path, fmt: str) -> list[Path]:
    """Every file an export to ``path`` writes (OBJ also writes .mtl and .png)."""
    if fmt == "obj":
        # the texture is <stem>_texture.png so that `-o person.obj` never clobbers an input photo person.png
        return [path, path.with_suffix(".mtl"), texture_path(path), normal_map_path(path)]
    return [path]


def texture_path(obj_path: Path) -> Path:
    return obj_path.with_name(obj_path.stem + "_texture.png")


def normal_map_path(obj_path: Path) -> Path:
    return obj_path.with_name(obj_path.stem + "_normal.png")


def check_output_path(path: Path, *, overwrite: bool, fmt: str | None = None, inputs: tuple[Path, ...] = ()) -> None:
    """Before any work: refuse an output that is a folder, any file the export writes (:func:`companion_files`)
    that exists without ``overwrite`` or is one of ``inputs`` (ever), and a destination that cannot be written."""
    if path.is_dir():
        raise UsageError(f"output {path} is a folder; give a file name such as {path / 'person.glb'}")
    check_new_files(companion_files(path, format_from_path(path, fmt)), overwrite=overwrite, inputs=inputs)


def export_transform(
    vertices: np.ndarray, height_m: float, canonical_height: float | None = None
) -> np.ndarray:
    """(V, 3) canonical-frame vertices -> metres, feet on y = 0, centred on x = z = 0.

    ``canonical_height`` is the subject's standing height in canonical units; when None the mesh's own y extent is
    used (right for a standing subject, an approximation for a crouching one).
    """
    s, offset = export_affine(vertices, height_m, canonical_height)
    return (np.asarray(vertices, dtype=np.float64) * s + offset).astype(np.float32)


def export_affine(
    vertices: np.ndarray, height_m: float, canonical_height: float | None = None
) -> tuple[float, np.ndarray]:
    """The export transform of :func:`export_transform` as ``x -> s * x + offset``: (s, (3,) offset)."""
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) == 0:
        raise UsageError("cannot export an empty mesh")
    extent = float(v[:, 1].max() - v[:, 1].min()) if canonical_height is None else float(canonical_height)
    if not np.isfinite(extent) or extent <= 0:
        raise UsageError("cannot export a mesh with zero height")
    s = height_m / extent
    lo, hi = v.min(0) * s, v.max(0) * s
    offset = np.array([-0.5 * (lo[0] + hi[0]), -lo[1], -0.5 * (lo[2] + hi[2])])
    return s, offset


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def sample_texture(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """(V, 2) UVs (v up) -> (V, 3) uint8 colours of an sRGB uint8 texture, bilinear."""
    from human3d.ops.image import sample_uv

    return np.clip(sample_uv(texture[..., :3], uvs) + 0.5, 0, 255).astype(np.uint8)


def _write_obj(path: Path, m: TexturedMesh, vertices: np.ndarray, normals: np.ndarray, overwrite: bool) -> None:
    stem = path.stem
    lines = [f"# human3d: {len(vertices)} vertices, {len(m.faces)} faces; metres, +Y up, facing +Z"]
    has_tex = m.texture is not None and m.uvs is not None
    if has_tex:
        lines.append(f"mtllib {stem}.mtl")
        lines.append("usemtl material0")
    if m.vertex_colors is not None and not has_tex:
        c = m.vertex_colors[:, :3].astype(np.float64) / 255.0
        lines += [f"v {a:.6f} {b:.6f} {d:.6f} {r:.4f} {g:.4f} {bl:.4f}" for (a, b, d), (r, g, bl) in zip(vertices, c)]
    else:
        lines += [f"v {a:.6f} {b:.6f} {d:.6f}" for a, b, d in vertices]
    lines += [f"vn {a:.5f} {b:.5f} {c:.5f}" for a, b, c in normals]
    lines.append("s 1")  # one smoothing group: importers that ignore vn (or rebuild tangents) shade smoothly too
    if has_tex:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in m.uvs]
        lines += [f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}" for a, b, c in (m.faces + 1)]
    else:
        lines += [f"f {a}//{a} {b}//{b} {c}//{c}" for a, b, c in (m.faces + 1)]
    if has_tex:
        atomic_write_bytes(texture_path(path), png_bytes(m.texture), overwrite=overwrite)
        mtl = (f"newmtl material0\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
               f"d 1.0\nillum 1\nmap_Kd {texture_path(path).name}\n")
        if m.normal_texture is not None:
            # tangent space, +Y toward increasing v; OBJ carries no tangents, so viewers rebuild them (MikkTSpace)
            atomic_write_bytes(normal_map_path(path), png_bytes(m.normal_texture), overwrite=overwrite)
            mtl += f"map_Bump -bm 1.000 {normal_map_path(path).name}\n"
        atomic_write_text(path.with_suffix(".mtl"), mtl, overwrite=overwrite)
    # the OBJ goes last: its presence means the export is complete (batch resume relies on it)
    atomic_write_text(path, "\n".join(lines) + "\n", overwrite=overwrite)


def _glb_bytes(m: TexturedMesh, vertices: np.ndarray, normals: np.ndarray) -> bytes:
    from human3d.io.gltf import mesh_glb

    textured = m.texture is not None and m.uvs is not None
    normal_map = textured and m.normal_texture is not None
    tangents = vertex_tangents(m.vertices, m.faces, m.uvs, normals) if normal_map else None
    return mesh_glb(vertices, m.faces, normals, uvs=m.uvs if textured else None,
                    base_color_png=png_bytes(m.texture[..., :3]) if textured else None,
                    normal_png=png_bytes(m.normal_texture) if normal_map else None, tangents=tangents,
                    vertex_colors=m.vertex_colors).glb()


def _ply_bytes(m: TexturedMesh, vertices: np.ndarray, normals: np.ndarray) -> bytes:
    import trimesh

    colors = m.vertex_colors
    if colors is None and m.texture is not None and m.uvs is not None:
        colors = sample_texture(m.texture, m.uvs)
    tm = trimesh.Trimesh(vertices, m.faces, vertex_colors=colors, vertex_normals=normals, process=False)
    return tm.export(file_type="ply", vertex_normal=True)


def export_mesh(mesh: TexturedMesh, path: str | Path, *, fmt: str | None = None, overwrite: bool = False) -> Path:
    """Write ``mesh`` (canonical frame) to ``path`` in the export frame; returns ``path``."""
    path = Path(path)
    fmt = format_from_path(path, fmt)
    check_output_path(path, overwrite=overwrite, fmt=fmt)
    vertices = export_transform(mesh.vertices, mesh.height_m, mesh.canonical_height)
    # the export transform is a uniform scale and a shift: normals are those of the canonical mesh
    normals = mesh.normals if mesh.normals is not None else smooth_normals(mesh.vertices, mesh.faces)
    if fmt == "obj":
        _write_obj(path, mesh, vertices, normals, overwrite)
        return path
    data = _glb_bytes(mesh, vertices, normals) if fmt == "glb" else _ply_bytes(mesh, vertices, normals)
    if fmt == "glb" and mesh.skin is not None:
        data = _rig_glb(data, mesh)
    atomic_write_bytes(path, data, overwrite=overwrite)
    return path


def _rig_glb(data: bytes, mesh: TexturedMesh) -> bytes:
    """Add the mesh's skin (and clip) to the GLB trimesh wrote, in the export frame (see human3d.io.gltf_skin)."""
    from human3d.io.gltf_skin import add_skin_to_glb, skin_to_export

    s, offset = export_affine(mesh.vertices, mesh.height_m, mesh.canonical_height)
    return add_skin_to_glb(data, skin_to_export(mesh.skin, s, offset))


def _single_mesh(loaded):
    """A scene of one untransformed mesh -> that mesh (keeps its normals); any other scene -> all its meshes
    concatenated in world space (trimesh then drops the normals)."""
    import trimesh

    if not isinstance(loaded, trimesh.Scene):
        return loaded
    nodes = loaded.graph.nodes_geometry
    if len(loaded.geometry) == 1 and len(nodes) == 1 and np.allclose(loaded.graph[nodes[0]][0], np.eye(4)):
        return next(iter(loaded.geometry.values()))
    return loaded.to_mesh()


def read_mesh(path: str | Path) -> TexturedMesh:
    """Read an OBJ, GLB/GLTF or PLY (any mesh trimesh reads) into one TexturedMesh, in the file's own frame.

    A scene with several meshes is concatenated. The height fields are set from the mesh's y extent. Vertex
    normals are kept when the file has them (None otherwise).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"mesh file {path} does not exist")
    try:
        loaded = _single_mesh(trimesh.load(path, process=False))
    except Exception as err:
        raise BadInputError(f"cannot read mesh {path}: {type(err).__name__}: {err}") from err
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise BadInputError(f"{path} holds no triangle mesh")
    uvs = texture = colors = normal_texture = None
    visual = loaded.visual
    if isinstance(visual, trimesh.visual.TextureVisuals) and visual.uv is not None:
        uvs = np.asarray(visual.uv, dtype=np.float32)
        image = getattr(visual.material, "baseColorTexture", None) or getattr(visual.material, "image", None)
        if image is not None:
            texture = np.asarray(image.convert("RGB"))
        bump = getattr(visual.material, "normalTexture", None)
        if bump is not None:
            normal_texture = np.asarray(bump.convert("RGB"))
    elif visual.kind == "vertex":
        colors = np.asarray(visual.vertex_colors)[:, :3].astype(np.uint8)
    elif "color" in getattr(visual, "vertex_attributes", {}):  # COLOR_0 beside an untextured glTF material
        colors = np.asarray(visual.vertex_attributes["color"])[:, :3].astype(np.uint8)
    v = np.asarray(loaded.vertices, dtype=np.float32)
    normals = None
    if "vertex_normals" in loaded._cache.cache:  # only when the file had them: trimesh computes them otherwise
        normals = np.asarray(loaded.vertex_normals, dtype=np.float32)
    height = float(v[:, 1].max() - v[:, 1].min())
    return TexturedMesh(vertices=v, faces=np.asarray(loaded.faces, dtype=np.int64), uvs=uvs, texture=texture,
                        vertex_colors=colors, height_m=height, canonical_height=height, normals=normals,
                        normal_texture=normal_texture)


__all__ = ["FORMATS", "export_mesh", "read_mesh", "export_transform", "format_from_path", "check_output_path",
           "companion_files", "atomic_path", "OutputExistsError"]
