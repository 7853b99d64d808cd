"""Pure functions on triangle meshes: edge tables, normals, welding, Laplacians, surface sampling.

A mesh is ``vertices`` (V, 3) and ``faces`` (F, 3) integer indices, counter-clockwise seen from outside. Functions
that the differentiable parts of the pipeline need accept numpy arrays or torch tensors and return the same kind
(on the input's device); the others are numpy only and say so. Side ``k`` of face ``f`` runs from ``faces[f, k]``
to ``faces[f, (k + 1) % 3]``; sides are listed face by face, so side ``s`` belongs to face ``s // 3``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from human3d.errors import UsageError

Array = TypeVar("Array", np.ndarray, torch.Tensor)


# -- edges --------------------------------------------------------------------------------------------------------
def face_sides(faces: Array) -> Array:
    """(F, 3) faces -> (3F, 2) directed sides, face by face: ``[f0 f1], [f1 f2], [f2 f0]`` of each face."""
    if isinstance(faces, torch.Tensor):
        return torch.stack([faces, faces.roll(-1, dims=1)], -1).reshape(-1, 2)
    return np.stack([faces, np.roll(faces, -1, axis=1)], -1).reshape(-1, 2)


def unique_edges(faces: Array) -> tuple[Array, Array]:
    """(F, 3) faces -> ((E, 2) undirected edges with ``lo < hi``, sorted; (3F,) the edge id of each side of
    :func:`face_sides`).

    Edges are keyed by ``lo * V + hi`` in one dimension, which is much faster than a unique over rows.
    """
    sides = face_sides(faces)
    if isinstance(sides, torch.Tensor):
        sides = sides.long()
        lo, hi = sides.amin(1), sides.amax(1)
        n = int(hi.max().item()) + 1 if hi.numel() else 1
        keys, inverse = torch.unique(lo * n + hi, return_inverse=True)
        return torch.stack([keys // n, keys % n], 1), inverse.reshape(-1)
    sides = sides.astype(np.int64)
    lo, hi = sides.min(1), sides.max(1)
    n = int(hi.max()) + 1 if len(hi) else 1
    keys, inverse = np.unique(lo * n + hi, return_inverse=True)
    return np.stack([keys // n, keys % n], 1), inverse.reshape(-1)


def edge_faces(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, 3) faces -> ((F, 3) edge id of each side, (E, 2) the two faces on each edge, -1 for a missing second).

    Edge ids are those of :func:`unique_edges`. A non-manifold edge keeps the first two of its faces.
    """
    f = faces.shape[0]
    _, inverse = unique_edges(faces)
    n_edges = int(inverse.max().item()) + 1 if inverse.numel() else 0
    side_face = torch.arange(f, device=faces.device).repeat_interleave(3)
    out = torch.full((n_edges, 2), -1, dtype=torch.long, device=faces.device)
    order = torch.argsort(inverse, stable=True)
    sorted_e = inverse[order]
    first = torch.ones_like(sorted_e, dtype=torch.bool)
    first[1:] = sorted_e[1:] != sorted_e[:-1]
    out[sorted_e[first], 0] = side_face[order[first]]
    out[sorted_e[~first], 1] = side_face[order[~first]]
    return inverse.reshape(f, 3), out


def mean_edge_length(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3), (F, 3) -> (V,) mean length of the edges at each vertex (0 for an isolated vertex)."""
    e, _ = unique_edges(faces)
    length = (vertices[e[:, 0]] - vertices[e[:, 1]]).norm(dim=1)
    n = vertices.shape[0]
    total = torch.zeros(n, dtype=vertices.dtype, device=vertices.device).index_add(0, e.reshape(-1),
                                                                                   length.repeat_interleave(2))
    count = torch.bincount(e.reshape(-1), minlength=n).clamp_min(1)
    return total / count


# -- normals ------------------------------------------------------------------------------------------------------
def face_normals(vertices: Array, faces: Array, normalize: bool = True) -> Array:
    """(V, 3), (F, 3) -> (F, 3) face normals (counter-clockwise = outward); unnormalised ones have length twice
    the area; a degenerate face's unit normal is 0."""
    if isinstance(vertices, torch.Tensor):
        tri = vertices[faces]
        n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
        return torch.nn.functional.normalize(n, dim=-1, eps=1e-20) if normalize else n
    tri = np.asarray(vertices)[np.asarray(faces)]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30) if normalize else n


def face_areas_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy: (V, 3), (F, 3) -> ((F,) float64 triangle areas, (F, 3) unit face normals; zero when degenerate)."""
    cross = face_normals(np.asarray(vertices, np.float64), faces, normalize=False)
    norm = np.linalg.norm(cross, axis=1)
    return 0.5 * norm, cross / np.maximum(norm, 1e-300)[:, None]


def vertex_normals(vertices: Array, faces: Array, weighting: str = "area") -> Array:
    """(V, 3), (F, 3) -> (V, 3) unit vertex normals, the sum of the incident faces' normals weighted by

    - ``area``: the face's area (differentiable with tensors; a vertex with no face gets 0);
    - ``angle``: the face's angle at the vertex (Thürmer & Wüthrich 1998: independent of how a flat region is
      triangulated; numpy only, float64 inside, float32 out; a vertex with no non-degenerate face gets (0, 1, 0)).
    """
    if weighting == "angle":
        return _angle_weighted_normals(np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
    if weighting != "area":
        raise ValueError(f"unknown normal weighting {weighting!r}")
    n = face_normals(vertices, faces, normalize=False)
    if isinstance(n, torch.Tensor):
        acc = torch.zeros_like(vertices).index_add(0, faces.reshape(-1), n.repeat_interleave(3, 0))
        return torch.nn.functional.normalize(acc, dim=-1, eps=1e-20)
    acc = np.zeros(np.shape(vertices), n.dtype)
    np.add.at(acc, np.asarray(faces).reshape(-1), np.repeat(n, 3, axis=0))
    return acc / np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-12)


def _angle_weighted_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    tri = v[f]  # (F, 3, 3)
    fn = face_normals(v, f)
    acc = np.zeros_like(v)
    for k in range(3):
        a = tri[:, (k + 1) % 3] - tri[:, k]
        b = tri[:, (k + 2) % 3] - tri[:, k]
        cos = np.einsum("fd,fd->f", a, b) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
        np.add.at(acc, f[:, k], fn * np.arccos(np.clip(cos, -1.0, 1.0))[:, None])
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    out = np.where(norm > 1e-20, acc / np.maximum(norm, 1e-30), np.array([0.0, 1.0, 0.0]))
    return out.astype(np.float32)


# -- welding -------------------------------------------------------------------------------------------------------
def weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy: merge the vertices that share a position (the copies a UV unwrap splits along its seams): ((U, 3) the
    distinct positions, (F, 3) the faces on them, (V,) the position of each vertex: ``welded[index] == vertices``).

    Positions are compared exactly (``==``: -0.0 equals 0.0, NaN equals nothing): a seam's copies are bit-identical,
    while a tolerance would also merge distinct vertices that lie close and could split two that straddle a
    rounding step.
    """
    welded, index = np.unique(np.asarray(vertices), axis=0, return_inverse=True)
    index = index.reshape(-1)
    return welded, index[np.asarray(faces, np.int64)], index


# -- Laplacians ---------------------------------------------------------------------------------------------------
def uniform_laplacian(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3), (F, 3) -> (V, 3) uniform Laplacian: each vertex minus the mean of its neighbours (an isolated
    vertex: itself).

    Summed over face sides in both directions, so on a closed manifold every neighbour is counted twice, which
    leaves the mean unchanged and saves building the edge list.
    """
    sides = face_sides(faces)
    src = torch.cat([sides[:, 0], sides[:, 1]])
    dst = torch.cat([sides[:, 1], sides[:, 0]])
    total = torch.zeros_like(vertices).index_add_(0, src, vertices[dst])
    count = torch.bincount(src, minlength=vertices.shape[0]).clamp_min(1)
    return vertices - total / count[:, None].to(vertices.dtype)


def adjacency_matrix(faces: np.ndarray, num_vertices: int, weights: np.ndarray | None = None):
    """numpy/scipy: (F, 3) faces -> (V, V) symmetric CSR vertex adjacency; 1 per edge, or ``weights`` (E,) per
    edge of :func:`unique_edges`."""
    import scipy.sparse as sp

    e, _ = unique_edges(np.asarray(faces))
    w = np.ones(len(e)) if weights is None else np.asarray(weights, np.float64)
    n = int(num_vertices)
    return sp.coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)).tocsr()


def inverse_length_laplacian(vertices: np.ndarray, faces: np.ndarray):
    """numpy/scipy: (V, V) CSR graph Laplacian ``D - A`` with inverse-edge-length weights (positive off-diagonal
    weights: an M-matrix, so harmonic interpolation stays within its boundary values)."""
    import scipy.sparse as sp

    e, _ = unique_edges(np.asarray(faces))
    w = 1.0 / np.maximum(np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1), 1e-9)
    a = adjacency_matrix(faces, len(vertices), w)
    return (sp.diags(np.asarray(a.sum(1)).ravel()) - a).tocsr()


# -- sampling -----------------------------------------------------------------------------------------------------
def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """numpy: ``n`` points uniformly distributed by area on the mesh and their face normals: ((n, 3), (n, 3))
    float64.

    A face is drawn with probability proportional to its area, then a point uniformly inside it (the square-root
    barycentric construction). Raises UsageError for n < 1 or a mesh without area.
    """
    if n < 1:
        raise UsageError("the number of sample points must be at least 1")
    areas, normals = face_areas_normals(vertices, faces)
    total = float(areas.sum())
    if not np.isfinite(total) or total <= 0:
        raise UsageError("cannot sample a mesh with zero surface area")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(areas), size=n, p=areas / total)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.stack([1.0 - s, s * (1.0 - r2), s * r2], 1)  # (n, 3) barycentrics
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)[face]]  # (n, 3, 3)
    return np.einsum("nk,nkj->nj", w, tri), normals[face]


def directed_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy: (src, dst) (6F,) of every face side both ways (an interior edge appears twice each way)."""
    nxt = np.roll(faces, -1, 1).reshape(-1)
    return np.concatenate([faces.reshape(-1), nxt]), np.concatenate([nxt, faces.reshape(-1)])


def grow_region(region: np.ndarray, src: np.ndarray, dst: np.ndarray, rings: int) -> np.ndarray:
    """numpy: the (V,) bool ``region`` grown by ``rings`` rings of neighbours along :func:`directed_edges`."""
    for _ in range(rings):
        grown = region.copy()
        grown[dst[region[src]]] = True
        region = grown
    return region


def neighbour_mean(src: np.ndarray, dst: np.ndarray, num_vertices: int):
    """numpy/scipy: (V, V) CSR whose row i averages i's neighbours along :func:`directed_edges` (each weighted by
    the face sides it shares with i)."""
    from scipy.sparse import csr_matrix

    deg = np.maximum(np.bincount(src, minlength=num_vertices), 1).astype(np.float64)
    return csr_matrix((1.0 / deg[src], (src, dst)), shape=(num_vertices, num_vertices))
