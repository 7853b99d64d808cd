"""The per-vertex optimiser of continuous remeshing (Palfinger 2022, "Continuous Remeshing for Inverse
Rendering"), with its edge-length controller.

The definitions follow the paper and its public reference implementation:

* **Step.** Adam-like, per vertex: the first moment ``m1`` (V, 3) and a *scalar* second moment ``m2`` (V,), the
  squared gradient summed over x, y, z, both bias-corrected as they are stored. The velocity ``m1 / sqrt(m2)`` has
  length at most 1 (1 for a vertex whose gradient keeps its direction, near 0 for one whose gradient oscillates),
  and the vertex moves by ``lr * ref_len * velocity``: steps scale with the local reference edge length.
* **Smoothing.** The uniform Laplacian ``v - mean(neighbours)`` is added to the gradient, scaled by
  ``laplacian_weight`` and by the vertex's relative velocity ``nu``: it smooths a surface while it moves and fades
  out where the vertex has converged, so it does not fight the detail the views ask for at the end.
* **Edge-length controller.** ``nu = |velocity|``; the reference edge length is multiplied by
  ``1 + gain * (nu - nu_ref)`` every remeshing step and clamped to ``edge_len_lims``. A vertex that has stopped
  moving has ``nu`` near 0, so its reference length *shrinks* toward ``edge_len_lims[0]``, by about
  ``gain * nu_ref`` (6%) per step: converged regions get finer until the floor; only a vertex that keeps moving
  steadily (``nu > nu_ref``) gets coarser, which speeds up large motions.
* **Gradient clipping.** After the first step each component is clipped to ``grad_lim * |m1|``.

Where this differs from the reference, and why:

* The reference length starts at the mesh's own local edge length (clamped to the limits), not at the upper limit:
  carving starts from a body mesh that is already close, and starting at the upper limit would first coarsen it.
* The limits may change between steps (:meth:`MeshOptimizer.set_edge_length_limits`): carving runs coarse to
  fine, and the floor follows the render resolution of each level (a pixel or two). When a level starts, the
  carving loop scales every reference length by the ratio of the floors
  (:meth:`MeshOptimizer.scale_reference_lengths`): a vertex that had converged at the coarser views has converged
  only as far as they could show, and waiting for the controller (6% per step) would cost a dozen iterations at
  the new level's price.
* The Laplacian's factor is ``max(nu, laplacian_floor)`` rather than ``nu``: a vertex no view sees (a sole seen
  edge-on, an armpit, the inside of a hood) has no data gradient, so with the reference's factor its gradient is
  exactly zero, nu stays 0 and the smoothing never starts; such regions then crumple and fold through each other.
  With the floor, the Laplacian is all such a vertex feels, the step normalisation turns it into a full step, and
  unseen regions relax like a membrane. Where the views do pull, the floor is negligible (the term is ~1% of the
  data gradient at nu = 0).
* ``max_vertices`` stops splitting (the reference has the same guard inside its remesh function).
* ``flip_interval`` flips edges in only every n-th remesh (the reference: every one): flips cost a third of a remesh
  and carving measured the same or better with every second one (see ``CarveConfig.flip_interval``).
* The Laplacian sums over face sides instead of an edge list (each neighbour counted twice on a closed manifold,
  which leaves the mean unchanged).
* The remeshing itself is :func:`human3d.carve.remesh.remesh` (vectorised independent sets; see there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from human3d.carve.remesh import remesh
from human3d.config import CarveConfig
from human3d.ops.mesh import mean_edge_length, uniform_laplacian


@dataclass
class RemeshingSettings:
    """Settings of :class:`MeshOptimizer`. The ones a user sets take their defaults from :class:`CarveConfig` (the
    single source; the stage passes them on); the others are the reference implementation's."""

    lr: float = CarveConfig.lr
    """Step size in units of the local reference edge length."""
    betas: tuple[float, float, float] = (0.8, 0.8, 0.0)
    """Decay of the first moment, of the second moment, and of the relative velocity nu (0: nu is the current
    speed)."""
    nu_ref: float = 0.3
    """Target relative velocity: below it the reference edge length shrinks, above it it grows."""
    edge_len_lims: tuple[float, float] = (0.01, 0.15)
    """Limits of the reference edge length (scene units)."""
    edge_len_tol: float = 0.5
    """Split above ref * (1 + tol), collapse below ref * (1 - tol)."""
    gain: float = 0.2
    """Edge-length controller gain."""
    laplacian_weight: float = CarveConfig.laplacian_weight
    """Weight of the Laplacian term added to the gradient (times nu; the reference's 0.02 suits its loss, see
    CarveConfig)."""
    laplacian_floor: float = 0.01
    """Smallest factor of the Laplacian term in place of nu (0: the reference's nu alone)."""
    ramp: float = 1.0
    """Learning-rate warm-up: lr * min(1, step * (1 - beta1) / ramp)."""
    grad_lim: float = 10.0
    """Clip of each gradient component to grad_lim * |m1| (outlier pixels)."""
    remesh_interval: int = CarveConfig.remesh_interval
    """Remesh (and update the reference lengths) every this many steps (0: never)."""
    flip_interval: int = 1
    """Flip edges in every this many remeshing steps (1: every step, as the reference)."""
    local_edgelen: bool = True
    """Per-vertex reference lengths; else one global length driven by the mean nu."""
    max_vertices: int = CarveConfig.max_vertices
    """No more splits once the mesh has this many vertices."""


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
        self.edge_len_lims = tuple(float(x) for x in s.edge_len_lims)
        lo, hi = self.edge_len_lims
        # State columns: m1 (3), m2 (1), nu (1), ref_len (1); they move with the vertices in remeshing.
        self._state = torch.zeros(vertices.shape[0], 6, dtype=vertices.dtype, device=vertices.device)
        self._state[:, 5] = mean_edge_length(self.vertices.detach(), self.faces).clamp(lo, hi)
        self._step = 0

    @property
    def ref_len(self) -> torch.Tensor:
        """(V,) current reference edge length per vertex."""
        return self._state[:, 5]

    @property
    def nu(self) -> torch.Tensor:
        """(V,) relative velocity of each vertex in the last step."""
        return self._state[:, 4]

    def set_edge_length_limits(self, lo: float, hi: float) -> None:
        """New limits of the reference length (coarse to fine); current lengths are clamped to them."""
        self.edge_len_lims = (float(lo), float(hi))
        self._state[:, 5].clamp_(lo, hi)

    def scale_reference_lengths(self, factor: float) -> None:
        """Multiply every reference length by ``factor`` (clamped to the limits)."""
        self._state[:, 5].mul_(factor).clamp_(*self.edge_len_lims)

    def zero_grad(self) -> None:
        self.vertices.grad = None

    @torch.no_grad()
    def step(self, remesh: bool = True) -> None:
        """Move the vertices, update the reference lengths, and (``remesh`` and on schedule) remesh."""
        s = self.settings
        v = self.vertices
        grad = v.grad if v.grad is not None else torch.zeros_like(v)
        self._step += 1
        b1, b2, b3 = s.betas
        m1, m2, nu, ref = self._state[:, :3], self._state[:, 3], self._state[:, 4], self._state[:, 5]
        if s.laplacian_weight > 0:
            factor = nu.clamp_min(s.laplacian_floor)[:, None]
            grad = grad + s.laplacian_weight * factor * uniform_laplacian(v.detach(), self.faces)
        if self._step > 1 and s.grad_lim > 0:
            lim = m1.abs() * s.grad_lim
            grad = torch.maximum(torch.minimum(grad, lim), -lim)
        _lerp_unbiased(m1, grad, b1, self._step)
        _lerp_unbiased(m2, grad.square().sum(1), b2, self._step)
        velocity = m1 / (m2.sqrt()[:, None] + 1e-30)
        speed = velocity.norm(dim=1)
        if b3:
            _lerp_unbiased(nu, speed, b3, self._step)
        else:
            nu.copy_(speed)
        lr = s.lr * min(1.0, self._step * (1.0 - b1) / max(s.ramp, 1e-12))
        v.sub_(lr * ref[:, None] * velocity)
        if s.remesh_interval and self._step % s.remesh_interval == 0:
            lo, hi = self.edge_len_lims
            change = 1.0 + s.gain * ((nu if s.local_edgelen else nu.mean()) - s.nu_ref)
            ref.mul_(change).clamp_(lo, hi)
            if remesh:
                self.remesh(flip=(self._step // max(s.remesh_interval, 1)) % max(s.flip_interval, 1) == 0)

    @torch.no_grad()
    def remesh(self, flip: bool = True) -> None:
        """Collapse, split and flip toward the reference lengths, carrying the optimiser state along."""
        s = self.settings
        v, f, state = remesh(self.vertices.detach(), self.faces, self._state, self._state[:, 5],
                             tolerance=s.edge_len_tol, flip=flip,
                             split=self.vertices.shape[0] < s.max_vertices)
        self.vertices = v.clone().requires_grad_(True)
        self.faces = f
        self._state = state.contiguous()


def _lerp_unbiased(a: torch.Tensor, b: torch.Tensor, beta: float, step: int) -> None:
    """``a`` <- the bias-corrected exponential average with decay ``beta`` after adding ``b`` at ``step`` (1-based),
    given that ``a`` holds the bias-corrected average of the steps before."""
    c_prev = 1.0 - beta ** (step - 1)
    c = 1.0 - beta**step
    a.mul_(beta * c_prev / c).add_(b, alpha=(1.0 - beta) / c)
