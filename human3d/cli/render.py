"""``human3d render MESH --turntable out.mp4``: look at a result from every side."""

from __future__ import annotations

from pathlib import Path

import typer

from human3d.cli.common import error_boundary
from human3d.errors import UsageError


def render(
    mesh: Path = typer.Argument(..., help="A mesh written by human3d (GLB, OBJ or PLY)."),
    turntable: Path | None = typer.Option(
        None, "--turntable", help="Write a turntable video (.mp4 or .gif); a GLB's animation plays while it turns."),
    image: Path | None = typer.Option(None, "--image", help="Write one still view (.png)."),
    azimuth: float = typer.Option(0.0, "--azimuth", help="Azimuth of the still view in degrees (0 = front)."),
    frames: int = typer.Option(60, "--frames", help="Frames in one turn."),
    fps: int = typer.Option(30, "--fps"),
    size: int = typer.Option(512, "--size", help="Frame size in pixels."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Render a mesh: a turntable video and/or a still image."""
    from human3d.io.atomic import atomic_write_bytes
    from human3d.io.meshes import png_bytes, read_mesh
    from human3d.render.turntable import render_views, write_turntable

    if turntable is None and image is None:
        raise UsageError("nothing to do: give --turntable OUT.mp4|gif and/or --image OUT.png")
    m = read_mesh(mesh)
    if mesh.suffix.lower() == ".glb":
        from human3d.io.gltf_skin import read_glb_skin

        skin = read_glb_skin(mesh)
        if skin is not None and len(skin.weights) == len(m.vertices):
            m.skin = skin  # a rigged GLB with a clip: the turntable plays it
    if image is not None:
        if image.suffix.lower() != ".png":
            raise UsageError(f"--image {image} must end in .png")
        frame = next(render_views(m, [azimuth], size))
        atomic_write_bytes(image, png_bytes(frame), overwrite=overwrite)
        print(f"wrote {image}")
    if turntable is not None:
        write_turntable(m, turntable, frames=frames, resolution=size, fps=fps, overwrite=overwrite)
        print(f"wrote {turntable}")


def register(app: typer.Typer) -> None:
    app.command("render")(error_boundary(render))
