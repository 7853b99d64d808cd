"""Body regions of a carved-like mesh's vertices, from its ground-truth weights (see fixtures.carved_like)."""

from __future__ import annotations

import numpy as np


def subtree(names: list[str], parents: list[int], root: str) -> list[int]:
    out = {names.index(root)}
    for j, p in enumerate(parents):  # parents come before children
        if p in out:
            out.add(j)
    return sorted(out)


def region_weight(truth: np.ndarray, names: list[str], parents: list[int], root: str) -> np.ndarray:
    """(V,) each vertex's true weight on ``root``'s subtree."""
    return truth[:, subtree(names, parents, root)].sum(1)
