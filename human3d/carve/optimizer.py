"""The per-vertex optimiser of continuous remeshing (Palfinger 2022), with the edge-length controller.

Adam-like, but per vertex: the second moment is one scalar per vertex (the mean squared gradient over x, y, z), so
the normalised update of a vertex is a direction of length about 1 when its gradient is consistent and about 0 when
it oscillates. Each vertex moves by ``lr * ref_len * update``: steps scale with the local reference edge length, so
a coarse mesh moves fast and a fine one carefully.

The edge-length controller reads the same signal: the relative velocity ``nu = |m1_hat| / sqrt(m2_hat)`` (1 for a
steadily moving vertex, near 0 for one that has converged and jitters). ``ref_len`` grows where ``nu`` is above the
target ``nu_ref`` and shrinks where it is below, by the factor ``1 - gain * (nu_ref - nu)``, clamped to the limits,
so that converged regions get finer until the detail is resolved. :func:`human3d.carve.remesh.remesh` then splits
and collapses edges toward those lengths; the optimiser state travels with the vertices.

A Laplacian term (vertex minus the mean of its neighbours, scaled by ``laplacian_weight`` and by the gradient's
running scale so it is independent of the loss scale) keeps the surface smooth while the mesh is still coarse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from human3d.carve.remesh import remesh


@dataclass
class RemeshingSettings:
    """Settings of :class:`MeshOptimizer` (defaults from the paper's reference implementation)."""

    lr: float = 0.3
    """Step size in units of the local reference edge length."""
    betas: tuple[float, float, float] = (0.8, 0.8, 0.0)
    """Decay of the first moment, of the second moment, and of the relative velocity nu."""
    nu_ref: float = 0.3
    """Target relative velocity: below it the reference edge length shrinks."""
    edge_len_lims: tuple[float, float] = (0.01, 0.15)
    """Limits of the reference edge length (scene units)."""
    edge_len_tol: float = 0.5
    """Split above ref * (1 + tol), collapse below ref * (1 - tol)."""
    gain: float = 0.2
    """Edge-length controller gain."""
    laplacian_weight: float = 0.02
    """Weight of the smoothing term relative to the gradient's running scale."""
    ramp: float = 1.0
    """Learning-rate warm-up: lr * min(1, step * (1 - beta1) / ramp)."""
    grad_lim: float = 10.0
    """Clamp of each gradient component, in units of its running RMS (outlier pixels)."""
    remesh_interval: int = 1
    """Remesh every this many steps (0: never)."""
    local_edgelen: bool = True
    """Per-vertex reference lengths from the controller; else every vertex uses the upper limit."""


class MeshOptimizer:
    """Optimises vertex positions with continuous remeshing.

    >>> opt = MeshOptimizer(vertices, faces, RemeshingSettings())
    >>> for _ in range(steps):
    ...     opt.zero_grad(); loss(opt.vertices, opt.faces).backward(); opt.step()

    ``vertices`` (V, 3) is a leaf tensor with ``requires_grad``; after :meth:`step` both ``vertices`` and ``faces``
    may be new tensors (the mesh was remeshed), so read them again every iteration.
    """

    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, settings: RemeshingSettings | None = None) -> None:
        self.settings = settings or RemeshingSettings()
        s = self.settings
        self.vertices = vertices.detach().clone().requires_grad_(True)
        self.faces = faces.to(device=vertices.device, dtype=torch.long)
        n = vertices.shape[0]
        lo, hi = s.edge_len_lims
        ref = _mean_edge_length(self.vertices.detach(), self.faces).clamp(lo, hi) if s.local_edgelen else \
            torch.full((n,), hi, dtype=vertices.dtype, device=vertices.device)
        # State columns: m1 (3), m2 (1), nu (1), ref_len (1); they move with the vertices in remeshing.
        self._state = torch.zeros(n, 6, dtype=vertices.dtype, device=vertices.device)
        self._state[:, 5] = ref
        self._step = 0

    @property
    def ref_len(self) -> torch.Tensor:
        """(V,) current reference edge length per vertex."""
        return self._state[:, 5]

    def zero_grad(self) -> None:
        self.vertices.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """Move the vertices along their gradient, update reference lengths, and remesh on schedule."""
        s = self.settings
        v = self.vertices
        grad = v.grad if v.grad is not None else torch.zeros_like(v)
        self._step += 1
        b1, b2, b3 = s.betas
        m1, m2, nu, ref = self._state[:, :3], self._state[:, 3:4], self._state[:, 4:5], self._state[:, 5:6]
        c1 = 1.0 - b1 ** self._step
        c2 = 1.0 - b2 ** self._step
        if self._step > 1 and s.grad_lim > 0:  # clamp outliers relative to the running RMS
            rms = (m2 / c2).sqrt()
            grad = torch.maximum(torch.minimum(grad, s.grad_lim * rms), -s.grad_lim * rms)
        if s.laplacian_weight > 0:
            scale = grad.square().mean(1, keepdim=True).sqrt().mean()  # loss-scale-independent smoothing
            lap = _laplacian(v.detach(), self.faces)
            grad = grad + s.laplacian_weight * scale * lap / ref.clamp_min(1e-12)
        m1.mul_(b1).add_(grad, alpha=1 - b1)
        m2.mul_(b2).add_(grad.square().mean(1, keepdim=True), alpha=1 - b2)
        velocity = m1 / c1
        speed = (m2 / c2).sqrt()
        update = velocity / (speed + 1e-30)
        rel = update.norm(dim=1, keepdim=True)  # relative velocity in [0, sqrt(3)]
        nu.mul_(b3).add_(rel, alpha=1 - b3)
        lr = s.lr * min(1.0, self._step * (1.0 - b1) / max(s.ramp, 1e-12))
        v.sub_(lr * ref * update)
        lo, hi = s.edge_len_lims
        if s.local_edgelen:
            ref.mul_(1.0 - s.gain * (s.nu_ref - nu)).clamp_(lo, hi)
        else:
            ref.fill_(hi)
        if s.remesh_interval and self._step % s.remesh_interval == 0:
            self.remesh()

    @torch.no_grad()
    def remesh(self, flip: bool = True) -> None:
        """Split, collapse and flip toward the reference lengths, carrying the optimiser state along."""
        v, f, state = remesh(self.vertices.detach(), self.faces, self._state, self._state[:, 5],
                             tolerance=self.settings.edge_len_tol, flip=flip)
        self.vertices = v.clone().requires_grad_(True)
        self.faces = f
        self._state = state.contiguous()


def _edge_list(faces: torch.Tensor) -> torch.Tensor:
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(torch.sort(e, dim=1).values, dim=0)


def _mean_edge_length(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V,) mean length of the edges at each vertex."""
    e = _edge_list(faces)
    length = (vertices[e[:, 0]] - vertices[e[:, 1]]).norm(dim=1)
    n = vertices.shape[0]
    total = torch.zeros(n, dtype=vertices.dtype, device=vertices.device).index_add(0, e.reshape(-1),
                                                                                   length.repeat_interleave(2))
    count = torch.bincount(e.reshape(-1), minlength=n).clamp_min(1)
    return total / count


def _laplacian(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3) uniform Laplacian: the vertex minus the mean of its neighbours.

    Summed over face sides in both directions, so on a closed manifold every neighbour is counted twice, which
    leaves the mean unchanged and saves building the edge list.
    """
    src = torch.cat([faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)])
    dst = torch.cat([faces[:, [1, 2, 0]].reshape(-1), faces.reshape(-1)])
    total = torch.zeros_like(vertices).index_add_(0, src, vertices[dst])
    count = torch.bincount(src, minlength=vertices.shape[0]).clamp_min(1)
    return vertices - total / count[:, None].to(vertices.dtype)
