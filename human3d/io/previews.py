"""Pictures of intermediates for people to look at: the multi-view contact sheet."""

from __future__ import annotations

import numpy as np

from human3d.cameras import normals_to_rgb


def contact_sheet(normals: np.ndarray, colors: np.ndarray, masks: np.ndarray, tile: int = 256) -> np.ndarray:
    """(N, R, R, 3) normals, colours and (N, R, R) masks -> one uint8 image: a row of normals, a row of colours
    and a row of masks, one column per view, each tile ``tile`` pixels."""
    from PIL import Image

    def fit(img: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(img).resize((tile, tile), Image.BILINEAR))

    rows = []
    rows.append([fit(normals_to_rgb(n, m)) for n, m in zip(normals, masks)])
    rows.append([fit(np.clip(c * 255 + 0.5, 0, 255).astype(np.uint8)) for c in colors])
    rows.append([fit(np.repeat((m.astype(np.uint8) * 255)[..., None], 3, -1)) for m in masks])
    return np.concatenate([np.concatenate(r, 1) for r in rows], 0)
