"""Pure-PyTorch rasterizer: the reference backend, vectorised, on any device.

Each triangle enumerates the pixel centres of its screen bounding box (flattened with ``repeat_interleave`` and
processed in chunks to bound memory), keeps those inside it, and a z-buffer is resolved with
``scatter_reduce('amax')`` on depth followed by ``scatter_reduce('amin')`` on the triangle id to break exact ties
deterministically (shared edges, coplanar faces).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from human3d.cameras import OrthoCamera
from human3d.render.base import Rasterizer, barycentrics_at


class TorchRasterizer(Rasterizer):
    """Reference rasterizer in plain PyTorch.

    chunk: how many (triangle, pixel) candidates are tested at once; bounds peak memory (about 100 bytes each).
    """

    name = "torch"

    def __init__(self, chunk: int = 2_000_000) -> None:
        self.chunk = int(chunk)

    def _visibility(self, vertices: torch.Tensor, faces: torch.Tensor, screen: torch.Tensor,
                    cameras: Sequence[OrthoCamera]) -> torch.Tensor:
        """(B, R, R) int64 id of the triangle each pixel centre sees, -1 for background."""
        b, r = screen.shape[0], cameras[0].resolution
        tri = screen[:, faces]  # (B, F, 3, 3)
        boxes = _pixel_boxes(tri, r)
        keys, depths, face_ids = [], [], []
        for ids in _chunks(boxes.counts, self.chunk):
            key, depth, face = _covered_candidates(tri, faces, boxes, ids, r)
            keys.append(key)
            depths.append(depth)
            face_ids.append(face)
        if not keys:
            return torch.full((b, r, r), -1, dtype=torch.long, device=screen.device)
        return _nearest_triangle(torch.cat(keys), torch.cat(depths), torch.cat(face_ids), b * r * r,
                                 faces.shape[0]).reshape(b, r, r)


@dataclass(frozen=True)
class _Boxes:
    """The pixel-centre boxes of the B x F screen triangles that cover at least one centre: ids (N,) flat
    ``b * F + f``, counts (N,) centres in each box, lo (B*F, 2) first centre (x, y), width (B*F,) in pixels."""

    ids: torch.Tensor
    counts: torch.Tensor
    lo: torch.Tensor
    width: torch.Tensor


def _pixel_boxes(tri: torch.Tensor, r: int) -> _Boxes:
    """Screen triangles (B, F, 3, 3) -> their boxes of pixel centres inside an r x r view."""
    xy = tri[..., :2]
    lo = torch.ceil(xy.amin(2)).clamp(0, r - 1)  # (B, F, 2): first pixel centre inside the box
    hi = torch.floor(xy.amax(2)).clamp(-1, r - 1)
    # A box entirely off-screen gets hi < lo after clamping, hence a zero count.
    off = (xy.amax(2) < 0).any(-1) | (xy.amin(2) > r - 1).any(-1)
    size = (hi - lo + 1).clamp_min(0).long()
    size = torch.where(off[..., None], torch.zeros_like(size), size)
    counts = (size[..., 0] * size[..., 1]).reshape(-1)  # (B*F,)
    ids = torch.nonzero(counts, as_tuple=True)[0]
    return _Boxes(ids=ids, counts=counts[ids], lo=lo.long().reshape(-1, 2), width=size[..., 0].reshape(-1))


def _chunks(counts: torch.Tensor, chunk: int) -> Iterator[slice]:
    """Slices of whole boxes holding about ``chunk`` candidates each (bounded memory)."""
    if counts.numel() == 0:
        return
    csum = torch.cumsum(counts, 0)
    bounds = torch.searchsorted(csum, torch.arange(chunk, int(csum[-1].item()) + chunk, chunk, device=csum.device))
    start = 0
    for end in [int(x) + 1 for x in bounds.tolist()] + [counts.numel()]:
        end = min(end, counts.numel())
        if end > start:
            yield slice(start, end)
            start = end


def _covered_candidates(tri: torch.Tensor, faces: torch.Tensor, boxes: _Boxes, part: slice, r: int
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (triangle, pixel centre) pair of the boxes ``part`` with the centre inside the triangle:
    (flat pixel key b * r * r + y * r + x, depth, face id), each (K,)."""
    ids, cnt = boxes.ids[part], boxes.counts[part]
    n_faces = faces.shape[0]
    owner = torch.repeat_interleave(ids, cnt)  # flat (b * F + f) per candidate
    first = torch.cumsum(cnt, 0) - cnt
    local = torch.arange(owner.numel(), device=ids.device) - torch.repeat_interleave(first, cnt)
    w = boxes.width[owner]
    px = boxes.lo[owner, 0] + local % w
    py = boxes.lo[owner, 1] + local // w
    bi, fi = owner // n_faces, owner % n_faces
    pts = torch.stack([px, py], -1).to(tri.dtype)
    bary, area = barycentrics_at(tri[bi, fi, :, :2], faces[fi], pts)
    inside = (bary >= 0).all(-1) & (area.abs() > 1e-20)
    depth = (bary * tri[bi, fi, :, 2]).sum(-1)
    return ((bi * r + py) * r + px)[inside], depth[inside], fi[inside]


def _nearest_triangle(key: torch.Tensor, depth: torch.Tensor, face: torch.Tensor, n_pixels: int, n_faces: int
                      ) -> torch.Tensor:
    """z-buffer: (n_pixels,) the nearest (largest depth) face over each pixel key, the lowest id on exact ties
    (shared edges, coplanar faces), -1 where none."""
    zmax = torch.full((n_pixels,), float("-inf"), dtype=depth.dtype, device=depth.device)
    zmax = zmax.scatter_reduce(0, key, depth, reduce="amax")
    win = depth >= zmax[key]
    big = torch.full((n_pixels,), n_faces, dtype=torch.long, device=depth.device)
    big = big.scatter_reduce(0, key[win], face[win], reduce="amin")
    return torch.where(big < n_faces, big, torch.full_like(big, -1))
