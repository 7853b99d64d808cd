"""Pure-PyTorch rasterizer: the reference backend, vectorised, on any device.

Each triangle enumerates the pixel centres of its screen bounding box (flattened with ``repeat_interleave`` and
processed in chunks to bound memory), keeps those inside it, and a z-buffer is resolved with
``scatter_reduce('amax')`` on depth followed by ``scatter_reduce('amin')`` on the triangle id to break exact ties
deterministically (shared edges, coplanar faces).
"""

from __future__ import annotations

from collections.abc import Sequence

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
        b, r = screen.shape[0], cameras[0].resolution
        device = screen.device
        n_faces = faces.shape[0]
        tri = screen[:, faces]  # (B, F, 3, 3)
        xy = tri[..., :2]
        lo = torch.ceil(xy.amin(2)).clamp(0, r - 1)  # (B, F, 2): first pixel centre inside the box
        hi = torch.floor(xy.amax(2)).clamp(-1, r - 1)
        # A box entirely off-screen gets hi < lo after clamping, hence a zero count.
        off = (xy.amax(2) < 0).any(-1) | (xy.amin(2) > r - 1).any(-1)
        size = (hi - lo + 1).clamp_min(0).long()
        size = torch.where(off[..., None], torch.zeros_like(size), size)
        counts = (size[..., 0] * size[..., 1]).reshape(-1)  # (B*F,)
        lo = lo.long().reshape(-1, 2)
        width = size[..., 0].reshape(-1)
        nonzero = torch.nonzero(counts, as_tuple=True)[0]
        counts_nz = counts[nonzero]
        zbuf_key: list[torch.Tensor] = []
        zbuf_depth: list[torch.Tensor] = []
        zbuf_face: list[torch.Tensor] = []
        # Group whole triangles into chunks of about self.chunk candidates.
        csum = torch.cumsum(counts_nz, 0)
        bounds = torch.searchsorted(csum, torch.arange(self.chunk, int(csum[-1].item()) + self.chunk, self.chunk,
                                                       device=device)) if csum.numel() else torch.zeros(0)
        start = 0
        for end in [int(x) + 1 for x in bounds.tolist()] + [nonzero.numel()]:
            end = min(end, nonzero.numel())
            if end <= start:
                continue
            ids = nonzero[start:end]
            cnt = counts_nz[start:end]
            start = end
            owner = torch.repeat_interleave(ids, cnt)  # flat (b * F + f) per candidate
            first = torch.cumsum(cnt, 0) - cnt
            local = torch.arange(owner.numel(), device=device) - torch.repeat_interleave(first, cnt)
            w = width[owner]
            px = lo[owner, 0] + local % w
            py = lo[owner, 1] + local // w
            bi = owner // n_faces
            fi = owner % n_faces
            fv = faces[fi]
            pts = torch.stack([px, py], -1).to(screen.dtype)
            bary, area = barycentrics_at(tri[bi, fi, :, :2], fv, pts)
            inside = (bary >= 0).all(-1) & (area.abs() > 1e-20)
            depth = (bary * tri[bi, fi, :, 2]).sum(-1)
            zbuf_key.append(((bi * r + py) * r + px)[inside])
            zbuf_depth.append(depth[inside])
            zbuf_face.append(fi[inside])
        tri_id = torch.full((b * r * r,), -1, dtype=torch.long, device=device)
        if zbuf_key:
            key = torch.cat(zbuf_key)
            depth = torch.cat(zbuf_depth)
            face = torch.cat(zbuf_face)
            zmax = torch.full((b * r * r,), float("-inf"), dtype=depth.dtype, device=device)
            zmax = zmax.scatter_reduce(0, key, depth, reduce="amax")
            win = depth >= zmax[key]
            big = torch.full((b * r * r,), n_faces, dtype=torch.long, device=device)
            big = big.scatter_reduce(0, key[win], face[win], reduce="amin")
            tri_id = torch.where(big < n_faces, big, tri_id)
        return tri_id.reshape(b, r, r)
