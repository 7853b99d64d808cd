"""Skinning weights from the fitted body onto the carved mesh (clothing, hair, loose parts included).

Robust transfer in the manner of Abdrashitov et al. 2023 ("Robust Skin Weights Transfer via Weight Inpainting"):

1. every mesh vertex finds the closest point of the posed body surface that faces the same way
   (``trust_angle_deg``), preferring points it lies in front of (see :func:`closest_body_points`); where that point
   is near (``trust_distance``), the vertex takes the body's weights there (barycentric blend);
2. the other vertices are inpainted: weights harmonic over the mesh (a Laplacian system with the trusted vertices as
   constraints), so a skirt or hair follows its neighbours instead of whichever body part happens to be nearest;
3. a mesh component with no trusted vertex at all (a loose part) averages its k nearest body points' weights.

The normal test is what keeps an arm's inside from taking the torso's weights where the two touch (and one leg's
from the other): there the nearest body point faces the wrong way, so the vertex is inpainted from its own side.
Finally each vertex keeps its ``max_influences`` strongest joints, renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from human3d.ops.mesh import (
    adjacency_matrix,
    face_normals,
    face_sides,
    inverse_length_laplacian,
    vertex_normals,
    weld,
)

#: Barycentric coordinates of the points sampled on every body triangle (closest-point search on samples).
_SAMPLES = np.array([[1 / 3, 1 / 3, 1 / 3], [2 / 3, 1 / 6, 1 / 6], [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3]])


@dataclass
class TransferResult:
    """Per-vertex weights of the mesh: joints (V, K) int64, weights (V, K) float64 (rows sum to 1, unused slots 0),
    and how each vertex got them: source (V,) uint8 0 = closest surface, 1 = inpainted, 2 = k nearest."""

    joints: np.ndarray
    weights: np.ndarray
    source: np.ndarray
    cut: np.ndarray | None = None
    """(F,) bool: faces bridging body parts that never touch on the body (a hand fused to a thigh by carving)."""
    report: dict[str, float] = field(default_factory=dict)


def closest_body_points(body_vertices: np.ndarray, body_faces: np.ndarray, points: np.ndarray,
                        normals: np.ndarray, trust_angle_deg: float, candidates: int = 24,
                        behind_penalty: float = 3.0):
    """For every point (N, 3) with unit normal (N, 3), the body point its weights should come from.

    Among the ``candidates`` nearest points sampled on the body's triangles, those whose triangle faces the same way
    (within ``trust_angle_deg``) compete on distance plus ``behind_penalty`` times how far the point lies behind the
    triangle's plane: a coat vertex pressed into the hand that rests on it is in front of the thigh but behind the
    hand's skin, so it keeps the thigh's weights. Returns (distance (N,), triangle (N,), barycentric (N, 3),
    agrees (N,) bool: a candidate facing the same way was found).
    """
    tri = body_vertices[body_faces]  # (F, 3, 3)
    fn = face_normals(body_vertices, body_faces)
    samples = np.einsum("sk,fkd->fsd", _SAMPLES, tri).reshape(-1, 3)
    dist, idx = cKDTree(samples).query(points, k=candidates)  # (N, C)
    face = idx // len(_SAMPLES)
    n = fn[face]  # (N, C, 3)
    agree = np.einsum("ncd,nd->nc", n, normals) >= np.cos(np.radians(trust_angle_deg))
    behind = np.maximum(0.0, -np.einsum("ncd,ncd->nc", points[:, None] - samples[idx], n))
    cost = np.where(agree, dist + behind_penalty * behind, np.inf)
    best = np.argmin(cost, axis=1)
    found = np.isfinite(cost[np.arange(len(points)), best])
    best = np.where(found, best, 0)  # none facing the same way: the nearest (untrusted)
    rows = np.arange(len(points))
    pick = idx[rows, best]
    return dist[rows, best], pick // len(_SAMPLES), _SAMPLES[pick % len(_SAMPLES)], found


def inpaint(laplacian: sp.csr_matrix, known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Harmonic fill: (V, V) Laplacian, (V,) bool known, (V, J) values (rows of ``known`` used) -> (V, J)."""
    out = values.copy()
    unknown = ~known
    if not unknown.any():
        return out
    cols = np.flatnonzero(np.abs(values[known]).sum(0) > 0)
    l_uu = laplacian[unknown][:, unknown].tocsc()
    l_uk = laplacian[unknown][:, known]
    rhs = -(l_uk @ values[known][:, cols])
    solved = splu(l_uu).solve(np.asarray(rhs, dtype=np.float64))
    out[np.ix_(np.flatnonzero(unknown), cols)] = np.clip(solved, 0.0, None)
    return out


def _outliers(adjacency: sp.csr_matrix, trusted: np.ndarray, weights: np.ndarray, limit: float = 0.5,
              rounds: int = 2) -> np.ndarray:
    """(V,) trusted vertices whose weights disagree with their trusted neighbours' mean by more than ``limit``
    (half the L1 distance, in [0, 1]): small islands that took another body part's weights (a thigh's vertex poking
    through the hand resting on it). They are inpainted instead."""
    out = np.zeros(len(trusted), bool)
    for _ in range(rounds):
        keep = (trusted & ~out).astype(np.float64)
        count = adjacency @ keep
        mean = (adjacency @ (weights * keep[:, None])) / np.maximum(count, 1.0)[:, None]
        far = 0.5 * np.abs(weights - mean).sum(1) > limit
        new = trusted & ~out & (count > 0) & far
        if not new.any():
            break
        out |= new
    return out


def top_k(weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) dense weights -> the k strongest (joints (V, k), weights (V, k)), renormalised; unused slots weight 0
    (their joint index repeats the strongest one)."""
    k = min(k, weights.shape[1])
    idx = np.argsort(-weights, axis=1)[:, :k]
    w = np.take_along_axis(weights, idx, 1)
    w = np.where(w > 1e-6, w, 0.0)
    w /= np.maximum(w.sum(1, keepdims=True), 1e-12)
    idx = np.where(w > 0, idx, idx[:, :1])
    return idx.astype(np.int64), w


def transfer_weights(mesh_vertices: np.ndarray, mesh_faces: np.ndarray, body_vertices: np.ndarray,
                     body_faces: np.ndarray, body_weights: np.ndarray, *, trust_distance: float,
                     trust_angle_deg: float = 35.0, max_influences: int = 4, knn: int = 8,
                     parents: np.ndarray | None = None, torso: np.ndarray | None = None) -> TransferResult:
    """Weights for the mesh (V, 3)/(F, 3) from the body (Vb, 3)/(Fb, 3) and its (Vb, J) weights (same frame);
    ``parents``/``torso``: the skeleton, to tell fused parts from blending ones (see :func:`bone_neighbourhood`)."""
    v, f, back = weld(np.asarray(mesh_vertices, np.float64), np.asarray(mesh_faces, np.int64))
    bv = np.asarray(body_vertices, np.float64)
    dist, tri, bary, agree = closest_body_points(bv, body_faces, v, vertex_normals(v, f), trust_angle_deg)
    dense = np.einsum("nk,nkj->nj", bary, body_weights[body_faces[tri]])
    trusted = (dist <= trust_distance) & agree
    adjacency = adjacency_matrix(f, len(v))
    trusted &= ~_outliers(adjacency, trusted, dense)
    source = np.where(trusted, 0, 1).astype(np.uint8)
    # components without any trusted vertex: k nearest body vertices, inverse-distance weighted
    n_comp, label = connected_components(adjacency, directed=False)
    lonely = ~np.isin(label, np.unique(label[trusted]))
    if lonely.any():
        d, nn = cKDTree(bv).query(v[lonely], k=knn)
        w = 1.0 / np.maximum(d, 1e-9)
        dense[lonely] = np.einsum("nk,nkj->nj", w / w.sum(1, keepdims=True), body_weights[nn])
        source[lonely] = 2
    known = source != 1
    dense = inpaint(inverse_length_laplacian(v, f), known, dense)
    compatible = bone_neighbourhood(body_faces, body_weights, parents, torso)
    dense, cut = separate_fused_parts(dense, f, compatible)
    joints, weights = top_k(dense, max_influences)
    report = {"vertices": int(len(v)), "closest_surface": round(float(trusted.mean()), 4),
              "inpainted": round(float((source == 1).mean()), 4), "knn": round(float((source == 2).mean()), 4),
              "components": int(n_comp), "faces_cut": int(cut.sum())}
    return TransferResult(joints=joints[back], weights=weights[back], source=source[back], cut=cut, report=report)


def bone_neighbourhood(body_faces: np.ndarray, body_weights: np.ndarray, parents: np.ndarray | None = None,
                       torso: np.ndarray | None = None, hops: int = 2, tree_hops: int = 4) -> np.ndarray:
    """(J, J) bool: bones whose weights may blend on one vertex. Two bones may when their regions on the body (the
    vertices they dominate) are at most ``hops`` regions apart, or, given the skeleton (``parents`` (J,), ``torso``
    (J,) bool: the root-to-head chain), when they are at most ``tree_hops`` bones apart or in the same limb (their
    common ancestor is not a torso bone: fingers of one hand). A hand and a thigh, or the two shins, may not: weights
    that mix them come from a carved surface that fused them where they touched."""
    n = body_weights.shape[1]
    dom = np.argmax(body_weights, axis=1)
    e = face_sides(body_faces)
    a = np.zeros((n, n), bool)
    a[dom[e[:, 0]], dom[e[:, 1]]] = True
    a |= a.T | np.eye(n, dtype=bool)
    out = a.copy()
    for _ in range(hops - 1):
        out = (out.astype(np.int64) @ a.astype(np.int64)) > 0
    if parents is None:
        return out
    chains = []
    for j in range(n):  # the path from each bone up to the root
        path, k = [], j
        while k >= 0:
            path.append(k)
            k = int(parents[k])
        chains.append(path)
    for i in range(n):
        up = {k: d for d, k in enumerate(chains[i])}
        for j in range(i + 1, n):
            lca = next(k for k in chains[j] if k in up)
            dist = up[lca] + chains[j].index(lca)
            same_limb = torso is not None and not torso[lca]
            ok = dist <= tree_hops or same_limb
            out[i, j] |= ok
            out[j, i] |= ok
    return out


def separate_fused_parts(dense: np.ndarray, faces: np.ndarray, compatible: np.ndarray):
    """Keep each vertex's weights on bones compatible with its strongest one (renormalised), and mark the faces whose
    vertices' strongest bones are incompatible: (weights (V, J), cut (F,) bool). Without this a hand fused to a
    thigh drags a spike of blended vertices between them as soon as either moves."""
    dom = np.argmax(dense, axis=1)
    kept = np.where(compatible[dom], dense, 0.0)
    kept /= np.maximum(kept.sum(1, keepdims=True), 1e-12)
    d = dom[faces]
    cut = ~(compatible[d[:, 0], d[:, 1]] & compatible[d[:, 1], d[:, 2]] & compatible[d[:, 2], d[:, 0]])
    return kept, cut
