"""``human3d render MESH --turntable out.mp4``: look at a result from every side."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from human3d.cli.common import check_readable, error_boundary
from human3d.errors import BadInputError, UsageError


def render(
    mesh: Path = typer.Argument(..., help="A mesh written by human3d (GLB, OBJ or PLY)."),
    turntable: Path | None = typer.Option(
        None, "--turntable", help="Write a turntable video (.mp4 or .gif); a GLB's animation plays while it turns."),
    image: Path | None = typer.Option(None, "--image", help="Write one still view (.png)."),
    azimuth: float = typer.Option(0.0, "--azimuth", help="Azimuth of the still view in degrees (0 = front)."),
    frames: int = typer.Option(60, "--frames", help="Frames in one turn (1 to 3600)."),
    fps: int = typer.Option(30, "--fps", help="Frames per second of the video (1 to 120)."),
    size: int = typer.Option(512, "--size", help="Frame size in pixels (16 to 4096)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda: where the rasterizer runs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Render a mesh: a turntable video and/or a still image."""
    from human3d.config import resolve_device
    from human3d.io.atomic import atomic_write_bytes
    from human3d.io.meshes import png_bytes, read_mesh
    from human3d.render.turntable import render_views, write_turntable

    _check_options(mesh, turntable, image, azimuth, frames, fps, size, overwrite)
    dev = resolve_device(device)
    m = read_mesh(mesh)
    check_renderable(m, mesh)
    if mesh.suffix.lower() == ".glb":
        from human3d.io.gltf_skin import read_glb_skin

        skin = read_glb_skin(mesh)
        if skin is not None and len(skin.weights) == len(m.vertices):
            m.skin = skin  # a rigged GLB with a clip: the turntable plays it
    if image is not None:
        frame = next(render_views(m, [azimuth], size, device=dev))
        atomic_write_bytes(image, png_bytes(frame), overwrite=overwrite)
        print(f"wrote {image}")
    if turntable is not None:
        write_turntable(m, turntable, frames=frames, resolution=size, fps=fps, overwrite=overwrite, device=dev)
        print(f"wrote {turntable}")


def _check_options(mesh: Path, turntable: Path | None, image: Path | None, azimuth: float, frames: int, fps: int,
                   size: int, overwrite: bool) -> None:
    """Every option and output before the mesh is read: nothing is rendered that could not be written."""
    from human3d.io.atomic import check_new_files
    from human3d.io.meshes import companion_files

    if turntable is None and image is None:
        raise UsageError("nothing to do: give --turntable OUT.mp4|gif and/or --image OUT.png")
    if image is not None and image.suffix.lower() != ".png":
        raise UsageError(f"--image {image} must end in .png")
    if turntable is not None and turntable.suffix.lower() not in (".mp4", ".gif"):
        raise UsageError(f"--turntable {turntable} must end in .mp4 or .gif")
    if not 16 <= size <= 4096:
        raise UsageError(f"--size {size} must be from 16 to 4096 pixels")
    if not 1 <= frames <= 3600:
        raise UsageError(f"--frames {frames} must be from 1 to 3600")
    if not 1 <= fps <= 120:
        raise UsageError(f"--fps {fps} must be from 1 to 120")
    if not math.isfinite(azimuth):
        raise UsageError(f"--azimuth {azimuth} must be a finite number of degrees")
    check_readable(mesh, "mesh")
    # an OBJ's material and texture are inputs too: a render never replaces any of them
    inputs = companion_files(mesh, "obj") if mesh.suffix.lower() == ".obj" else [mesh]
    outputs = [p for p in (image, turntable) if p is not None]
    check_new_files(outputs, overwrite=overwrite, inputs=inputs)


def check_renderable(m, path: Path) -> None:
    """A mesh with NaN/inf coordinates or no area cannot be rendered: exit 3 instead of a blank picture."""
    import numpy as np

    v = np.asarray(m.vertices, dtype=np.float64)
    if not np.isfinite(v).all():
        raise BadInputError(f"{path} has non-finite vertex coordinates (NaN or inf); it cannot be rendered, "
                            "export the mesh again")
    from human3d.ops.mesh import face_areas_normals

    area, _ = face_areas_normals(v, np.asarray(m.faces))
    extent = np.ptp(v, axis=0)
    if not (area > 1e-12 * max(float(extent.max()), 1e-30) ** 2).any() or np.count_nonzero(extent > 0) < 2:
        raise BadInputError(f"{path} is degenerate (every triangle has zero area); there is nothing to render")


def register(app: typer.Typer) -> None:
    app.command("render")(error_boundary(render))
