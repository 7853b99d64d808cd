"""``human3d people PHOTO [--image boxes.png]``: the people a photo shows, numbered as ``reconstruct --person N``
takes them (left to right), and the one reconstructed by default."""

from __future__ import annotations

from pathlib import Path

import typer

from human3d.cli.common import error_boundary
from human3d.errors import NoPersonFoundError, UsageError


def people(
    photo: Path = typer.Argument(..., help="A photo (JPEG, PNG, ...)."),
    image: Path | None = typer.Option(None, "--image", help="Write the photo with numbered boxes (.png)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --image file."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """List the people in a photo (numbered left to right) and mark the one reconstructed by default."""
    from human3d.config import InputConfig, SegmentConfig
    from human3d.io.atomic import atomic_write_bytes
    from human3d.io.images import load_image
    from human3d.io.meshes import png_bytes
    from human3d.segment.mediapipe import _pose, _working_rgb, import_mediapipe, working_scale
    from human3d.segment.people import describe, find_people, intended

    if image is not None:
        if image.suffix.lower() != ".png":
            raise UsageError(f"--image {image} must end in .png")
        if image.exists() and not overwrite:
            raise UsageError(f"{image} already exists; pass --overwrite to replace it")
    loaded = load_image(photo, InputConfig())
    mp = import_mediapipe()
    rgb = _working_rgb(loaded)
    with _pose(mp) as pose:
        found = find_people(pose, rgb, SegmentConfig().threshold)
    if not found:
        raise NoPersonFoundError(f"{photo}: no person found; use a photo where a person is clearly visible")
    best = intended(found)
    for i, line in enumerate(describe(found, working_scale(loaded))):
        print(line + ("  <- reconstructed by default" if i == best else ""))
    if image is not None:
        atomic_write_bytes(image, png_bytes(boxes_picture(loaded.rgb, found, working_scale(loaded))),
                           overwrite=overwrite)
        print(f"wrote {image}")


def boxes_picture(rgb, found, scale: float):
    """(H, W, 3) uint8: the photo with each person's box and number drawn on it."""
    import numpy as np
    from PIL import Image, ImageDraw

    from human3d.segment.people import intended

    im = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    draw = ImageDraw.Draw(im)
    width = max(2, round(max(im.size) / 300))
    best = intended(found)
    for i, p in enumerate(found):
        x0, y0, x1, y1 = (round(c / scale) for c in p.box)
        colour = (255, 40, 40) if i == best else (40, 200, 255)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=width)
        size = max(12, round((y1 - y0) / 10))
        draw.rectangle([x0, y0, x0 + size, y0 + size], fill=colour)
        draw.text((x0 + size // 4, y0 + size // 8), str(i + 1), fill=(0, 0, 0), font_size=int(size * 0.8))
    return np.asarray(im)


def register(app: typer.Typer) -> None:
    app.command("people")(error_boundary(people))
