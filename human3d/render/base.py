"""The rasterizer protocol shared by every backend, and the differentiable parts they have in common.

A backend only has to decide *visibility*: which triangle each pixel centre sees (``Fragments.tri_id``). The
differentiable parts are computed here in plain PyTorch from those ids and the projected vertex positions, so every
backend gives the same gradients (the "hybrid" path: a fast CPU visibility pass, differentiable shading in torch):

* :meth:`Rasterizer.interpolate` recomputes the barycentrics of each covered pixel from the projected vertices,
  so the result is differentiable in the vertex attributes *and* in the vertex positions;
* :meth:`Rasterizer.antialias` blends colours across silhouette edges by the analytic coverage of the pixel pair
  (Laine et al. 2020, "Modular Primitives for High-Performance Differentiable Rendering", sec. 3.3), which gives
  masks and colours a gradient with respect to the positions of silhouette vertices.

Screen coordinates: for an R x R view, a projected vertex has screen position ``(u - 0.5, v - 0.5)`` where ``(u, v)``
are the pixel coordinates of :meth:`human3d.cameras.OrthoCamera.project` (u right, v down), so the centre of pixel
(row i, column j) is exactly ``(j, i)``; its third coordinate is the camera-space depth (larger = closer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from human3d.cameras import OrthoCamera
from human3d.errors import UsageError
from human3d.ops.mesh import edge_faces as ops_edge_faces


@dataclass(frozen=True)
class Fragments:
    """What a rasterizer returns for B views of R x R pixels.

    tri_id: (B, R, R) int64, the triangle seen by each pixel centre, -1 for background;
    bary: (B, R, R, 3) barycentrics of the pixel centre in that triangle (detached; 0 for background);
    depth: (B, R, R) camera-space depth of the visible surface (larger = closer; -inf for background);
    screen: (B, V, 3) projected vertices (screen x, screen y, depth), still attached to the autograd graph of the
    vertices that were rasterized; faces: (F, 3) int64; native: a backend's own raster output (nvdiffrast), or None.
    """

    tri_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor
    screen: torch.Tensor
    faces: torch.Tensor
    native: Any = None

    @property
    def mask(self) -> torch.Tensor:
        """(B, R, R) bool, pixels that see the mesh."""
        return self.tri_id >= 0

    @property
    def resolution(self) -> int:
        return int(self.tri_id.shape[-1])


def check_cameras(cameras: Sequence[OrthoCamera]) -> int:
    """The common resolution of ``cameras``; a batch must share one."""
    if len(cameras) == 0:
        raise UsageError("rasterize needs at least one camera")
    resolutions = {c.resolution for c in cameras}
    if len(resolutions) != 1:
        raise UsageError(f"cameras of one rasterize call must share a resolution, got {sorted(resolutions)}")
    return resolutions.pop()


def project_vertices(vertices: torch.Tensor, cameras: Sequence[OrthoCamera]) -> torch.Tensor:
    """(V, 3) world vertices -> (B, V, 3) screen x, screen y (pixel centres at integers) and depth, per camera.

    Differentiable in ``vertices``; follows its dtype and device.
    """
    resolution = check_cameras(cameras)
    rot = torch.as_tensor(np.stack([c.rotation for c in cameras]), dtype=vertices.dtype, device=vertices.device)
    cam = torch.einsum("vj,bij->bvi", vertices, rot)  # (B, V, 3) camera space
    center = torch.as_tensor([c.center for c in cameras], dtype=vertices.dtype, device=vertices.device)  # (B, 2)
    half = torch.as_tensor([c.half_extent for c in cameras], dtype=vertices.dtype, device=vertices.device)
    ndc = (cam[..., :2] - center[:, None]) / half[:, None, None]
    sx = (ndc[..., 0] + 1.0) * (resolution / 2.0) - 0.5
    sy = (1.0 - ndc[..., 1]) * (resolution / 2.0) - 0.5
    return torch.stack([sx, sy, cam[..., 2]], -1)


def _edge_function(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """Edge function (b - a) x (p - a) computed in a canonical vertex order (lower index first) and re-signed.

    The value for the edge (a, b) is then exactly the negative of the value for (b, a), so two triangles sharing an
    edge never both miss a pixel centre on it (watertight rasterization). Shapes broadcast: (..., 2) points, (...)
    indices.
    """
    swap = (ia > ib)[..., None]
    lo = torch.where(swap, b, a)
    hi = torch.where(swap, a, b)
    e = (hi[..., 0] - lo[..., 0]) * (p[..., 1] - lo[..., 1]) - (hi[..., 1] - lo[..., 1]) * (p[..., 0] - lo[..., 0])
    return torch.where(swap[..., 0], -e, e)


def barycentrics_at(tri_screen: torch.Tensor, tri_index: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Barycentrics of ``points`` in triangles.

    tri_screen: (N, 3, 2) screen positions of each triangle's vertices; tri_index: (N, 3) their vertex indices;
    points: (N, 2). Returns ((N, 3) barycentrics, (N,) signed double area). Degenerate triangles give zeros.
    """
    v0, v1, v2 = tri_screen[:, 0], tri_screen[:, 1], tri_screen[:, 2]
    i0, i1, i2 = tri_index[:, 0], tri_index[:, 1], tri_index[:, 2]
    w0 = _edge_function(v1, v2, points, i1, i2)
    w1 = _edge_function(v2, v0, points, i2, i0)
    w2 = _edge_function(v0, v1, points, i0, i1)
    area = (v1[:, 0] - v0[:, 0]) * (v2[:, 1] - v0[:, 1]) - (v1[:, 1] - v0[:, 1]) * (v2[:, 0] - v0[:, 0])
    safe = torch.where(area.abs() > 1e-20, area, torch.ones_like(area))
    bary = torch.stack([w0, w1, w2], -1) / safe[:, None]
    return torch.where((area.abs() > 1e-20)[:, None], bary, torch.zeros_like(bary)), area


class Rasterizer:
    """Base of every backend: subclasses implement :meth:`_visibility`; interpolation and antialiasing are shared.

    A backend may override :meth:`interpolate` / :meth:`antialias` with its own (nvdiffrast does).
    """

    name = "base"

    def rasterize(self, vertices: torch.Tensor, faces: torch.Tensor, cameras: Sequence[OrthoCamera]) -> Fragments:
        """Rasterize the mesh (V, 3) world vertices, (F, 3) faces in every camera (all of one resolution)."""
        if vertices.ndim != 2 or vertices.shape[-1] != 3 or faces.ndim != 2 or faces.shape[-1] != 3:
            raise UsageError("rasterize expects vertices (V, 3) and faces (F, 3)")
        faces = faces.to(device=vertices.device, dtype=torch.long)
        screen = project_vertices(vertices, cameras)
        tri_id = self._visibility(vertices.detach(), faces, screen.detach(), cameras)
        return self._fragments_from_ids(tri_id, screen, faces)

    def _visibility(self, vertices: torch.Tensor, faces: torch.Tensor, screen: torch.Tensor,
                    cameras: Sequence[OrthoCamera]) -> torch.Tensor:
        """(B, R, R) int64 triangle id per pixel centre (-1: background)."""
        raise NotImplementedError

    @staticmethod
    def _fragments_from_ids(tri_id: torch.Tensor, screen: torch.Tensor, faces: torch.Tensor) -> Fragments:
        b, r = tri_id.shape[0], tri_id.shape[-1]
        with torch.no_grad():
            s = screen.detach()
            bidx, rows, cols = torch.nonzero(tri_id >= 0, as_tuple=True)
            tid = tri_id[bidx, rows, cols]
            fv = faces[tid]  # (N, 3)
            tri_screen = s[bidx[:, None], fv]  # (N, 3, 3)
            pts = torch.stack([cols, rows], -1).to(s.dtype)
            bary_n, _ = barycentrics_at(tri_screen[..., :2], fv, pts)
            bary = torch.zeros(b, r, r, 3, dtype=s.dtype, device=s.device)
            bary[bidx, rows, cols] = bary_n
            depth = torch.full((b, r, r), float("-inf"), dtype=s.dtype, device=s.device)
            depth[bidx, rows, cols] = (bary_n * tri_screen[..., 2]).sum(-1)
        return Fragments(tri_id=tri_id, bary=bary, depth=depth, screen=screen, faces=faces)

    # -- differentiable shading ------------------------------------------------------------------------------------
    def interpolate(self, attributes: torch.Tensor, frags: Fragments) -> torch.Tensor:
        """Interpolate (V, C) or (B, V, C) vertex attributes -> (B, R, R, C), zero on background.

        Differentiable in ``attributes`` and in the vertex positions behind ``frags.screen`` (the barycentrics are
        recomputed from them).
        """
        tri_id, screen, faces = frags.tri_id, frags.screen, frags.faces
        b, r = tri_id.shape[0], tri_id.shape[-1]
        bidx, rows, cols = torch.nonzero(tri_id >= 0, as_tuple=True)
        tid = tri_id[bidx, rows, cols]
        fv = faces[tid]
        tri_screen = screen[bidx[:, None], fv, :2]  # (N, 3, 2)
        pts = torch.stack([cols, rows], -1).to(screen.dtype)
        bary, _ = barycentrics_at(tri_screen, fv, pts)
        attr = attributes if attributes.ndim == 3 else attributes.unsqueeze(0).expand(b, -1, -1)
        values = (attr[bidx[:, None], fv] * bary[..., None]).sum(1)  # (N, C)
        out = torch.zeros(b * r * r, attr.shape[-1], dtype=values.dtype, device=values.device)
        flat = (bidx * r + rows) * r + cols
        out = out.index_put((flat,), values)
        return out.reshape(b, r, r, -1)

    def antialias(self, color: torch.Tensor, frags: Fragments) -> torch.Tensor:
        """(B, R, R, C) colours -> the same with silhouette edges blended by analytic pixel coverage.

        For every pair of horizontally or vertically adjacent pixels that see different surfaces, the silhouette
        edge of the front triangle that the segment between the two pixel centres crosses is located at fraction t
        (0 = the front pixel's centre). The front surface then covers ``t + 1/2`` of the front pixel's extent along
        that axis and ``t - 1/2`` of the other's, and each pixel's colour moves toward its neighbour's by what it
        loses or gains. t depends on the triangle's projected vertices, so the result is differentiable in them.
        """
        b, r = color.shape[0], color.shape[1]
        c = color.shape[-1]
        flat_color = color.reshape(b * r * r, c)
        deltas_index: list[torch.Tensor] = []
        deltas_value: list[torch.Tensor] = []
        facing, edge_faces, side_edge, has_sil = self._silhouette_tables(frags)
        for axis in (2, 1):  # horizontal pairs (columns), then vertical pairs (rows)
            t0 = frags.tri_id.narrow(axis, 0, r - 1)
            t1 = frags.tri_id.narrow(axis, 1, r - 1)
            bidx, rows, cols = torch.nonzero(t0 != t1, as_tuple=True)
            if bidx.numel() == 0:
                continue
            p_rows, p_cols = rows, cols
            q_rows, q_cols = (rows, cols + 1) if axis == 2 else (rows + 1, cols)
            for (ar, ac, qr, qc) in ((p_rows, p_cols, q_rows, q_cols), (q_rows, q_cols, p_rows, p_cols)):
                res = self._edge_crossings(frags, bidx, ar, ac, qr, qc, facing, edge_faces, side_edge, has_sil)
                if res is None:
                    continue
                keep, t = res
                a_flat = (bidx[keep] * r + ar[keep]) * r + ac[keep]
                q_flat = (bidx[keep] * r + qr[keep]) * r + qc[keep]
                col_a, col_q = flat_color[a_flat], flat_color[q_flat]
                lose = torch.relu(0.5 - t)[:, None]  # the front pixel is partly covered by what lies behind
                gain = torch.relu(t - 0.5)[:, None]  # the neighbour is partly covered by the front triangle
                deltas_index += [a_flat, q_flat]
                deltas_value += [lose * (col_q - col_a), gain * (col_a - col_q)]
        if not deltas_index:
            return color
        out = flat_color.index_add(0, torch.cat(deltas_index), torch.cat(deltas_value))
        return out.reshape(b, r, r, c)

    @staticmethod
    def _silhouette_tables(frags: Fragments) -> tuple[torch.Tensor, ...]:
        """(B, F) facing sign of every face per view, (E, 2) faces of each edge, (F, 3) edge id of each side,
        (B, F) whether a face has a silhouette side in the view."""
        s = frags.screen.detach()
        tri = s[:, frags.faces, :2]  # (B, F, 3, 2)
        e1 = tri[:, :, 1] - tri[:, :, 0]
        e2 = tri[:, :, 2] - tri[:, :, 0]
        facing = torch.sign(e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0])
        side_edge, edge_faces = ops_edge_faces(frags.faces)
        # (B, F): faces with at least one silhouette side in the view; only pixels of these can be antialiased.
        ef = edge_faces[side_edge]  # (F, 3, 2)
        other = torch.where(ef[..., 0] == torch.arange(ef.shape[0], device=ef.device)[:, None], ef[..., 1],
                            ef[..., 0])  # (F, 3)
        f_other = facing[:, other.clamp_min(0)]  # (B, F, 3)
        has_sil = ((other < 0)[None] | (f_other != facing[..., None])).any(-1)
        return facing, edge_faces, side_edge, has_sil

    @staticmethod
    def _edge_crossings(frags: Fragments, bidx: torch.Tensor, ar: torch.Tensor, ac: torch.Tensor, qr: torch.Tensor,
                        qc: torch.Tensor, facing: torch.Tensor, edge_faces: torch.Tensor,
                        side_edge: torch.Tensor, has_sil: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For pixel pairs (a in front triangle T, q outside it): which pairs cross a silhouette edge of T in front
        of q's surface, and the crossing fraction t in [0, 1] along a -> q (differentiable)."""
        tri_id, screen, faces = frags.tri_id, frags.screen, frags.faces
        ta = tri_id[bidx, ar, ac]
        tq = tri_id[bidx, qr, qc]
        valid = ta >= 0
        valid &= has_sil[bidx, ta.clamp_min(0)]
        if not bool(valid.any()):
            return None
        sel = torch.nonzero(valid, as_tuple=True)[0]
        bb, t_a, t_q = bidx[sel], ta[sel], tq[sel]
        fv = faces[t_a]  # (N, 3)
        tri = screen[bb[:, None], fv]  # (N, 3, 3), differentiable
        pa = torch.stack([ac[sel], ar[sel]], -1).to(screen.dtype)
        pq = torch.stack([qc[sel], qr[sel]], -1).to(screen.dtype)
        with torch.no_grad():
            bary_q, area = barycentrics_at(tri[..., :2].detach(), fv, pq)
            # Side k (vertex k -> k+1) is opposite vertex (k + 2) % 3: its barycentric at q is negative when crossed.
            side_bary_q = bary_q[:, [2, 0, 1]]
            bary_a, _ = barycentrics_at(tri[..., :2].detach(), fv, pa)
            side_bary_a = bary_a[:, [2, 0, 1]].clamp_min(0)
            crossed = side_bary_q < 0
            t_side = torch.where(crossed, side_bary_a / (side_bary_a - side_bary_q).clamp_min(1e-12),
                                 torch.full_like(side_bary_q, 2.0))
            side = t_side.argmin(-1)  # the first edge the segment leaves T through
            edge = side_edge[t_a, side]
            ef = edge_faces[edge]
            other = torch.where(ef[:, 0] == t_a, ef[:, 1], ef[:, 0])
            f_self = facing[bb, t_a]
            f_other = torch.where(other >= 0, facing[bb, other.clamp_min(0)], torch.zeros_like(f_self))
            silhouette = (other < 0) | (f_other != f_self)
            # T must lie in front of what q sees (its plane extended to q is closer than q's surface).
            depth_t_at_q = (bary_q * tri[..., 2].detach()).sum(-1)
            depth_q = frags.depth[bb, qr[sel], qc[sel]]
            in_front = (t_q < 0) | (depth_t_at_q > depth_q)
            keep_local = silhouette & in_front & crossed.any(-1) & (area.abs() > 1e-20)
        if not bool(keep_local.any()):
            return None
        k = torch.nonzero(keep_local, as_tuple=True)[0]
        side_k = side[k]
        i0 = torch.gather(fv[k], 1, side_k[:, None])[:, 0]
        i1 = torch.gather(fv[k], 1, ((side_k + 1) % 3)[:, None])[:, 0]
        v0 = screen[bb[k], i0, :2]
        v1 = screen[bb[k], i1, :2]
        # Signed distances of a and q to the edge line (same orientation), t = d_a / (d_a - d_q).
        d_a = (v1[:, 0] - v0[:, 0]) * (pa[k, 1] - v0[:, 1]) - (v1[:, 1] - v0[:, 1]) * (pa[k, 0] - v0[:, 0])
        d_q = (v1[:, 0] - v0[:, 0]) * (pq[k, 1] - v0[:, 1]) - (v1[:, 1] - v0[:, 1]) * (pq[k, 0] - v0[:, 0])
        denom = d_a - d_q
        denom = torch.where(denom.abs() > 1e-12, denom, torch.full_like(denom, 1e-12))
        t = (d_a / denom).clamp(0.0, 1.0)
        return sel[k], t
