"""UV charts from the six axis projections, for xatlas to pack (its own chart growing costs ~1 s per 1k faces).

Every face goes to the axis direction (+-x, +-y, +-z) it faces most (so its normal is within 55 degrees of it); a
chart is a connected set of faces with the same direction, flattened by dropping that axis. Each face then keeps
its orientation in its chart (packing may mirror a whole chart) and is stretched by at most 1/cos(55) = 1.73 along one direction. A chart whose projection
folds over itself (a fold of cloth whose two layers face the same way) is found by its boundary crossing itself
and is bisected until none does: a map that keeps every triangle's orientation and whose boundary curves do not
cross is one to one, so no two texels of the atlas belong to two places of the surface.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

#: The projection directions and, per direction, the (u, v) axes (index, sign) that keep faces counter-clockwise.
AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float64)
_UV_AXES = (((2, -1.0), (1, 1.0)), ((2, 1.0), (1, 1.0)), ((0, 1.0), (2, -1.0)), ((0, 1.0), (2, 1.0)),
            ((0, 1.0), (1, 1.0)), ((0, -1.0), (1, 1.0)))


def face_adjacency(faces: np.ndarray) -> np.ndarray:
    """(P, 2) pairs of faces sharing an edge (each interior edge once)."""
    f = len(faces)
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    key = np.minimum(a, b).astype(np.int64) * (int(faces.max()) + 1) + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    k = key[order]
    same = np.nonzero(k[1:] == k[:-1])[0]
    side_face = np.arange(3 * f) // 3
    return np.stack([side_face[order[same]], side_face[order[same + 1]]], 1)


def _components(labels: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(F,) component id of each face over ``pairs`` whose two faces share a label."""
    keep = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    p = pairs[keep]
    n = len(labels)
    graph = sparse.coo_matrix((np.ones(len(p), np.int8), (p[:, 0], p[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def smooth_axes(axis: np.ndarray, cosines: np.ndarray, pairs: np.ndarray, rounds: int = 4,
                min_cos: float = 0.35) -> np.ndarray:
    """Fewer, larger charts: a face whose neighbours (across ``pairs`` (P, 2)) agree on another direction takes it
    when it still faces that direction by ``min_cos`` (``cosines`` (F, 6) of its unit normal with :data:`AXES`),
    which keeps its orientation in UV and its stretch under 1 / min_cos. A face alone in its direction follows
    any neighbour's."""
    f = len(axis)
    for _ in range(rounds):
        votes = np.zeros((f, len(AXES)), np.int32)
        np.add.at(votes, (pairs[:, 0], axis[pairs[:, 1]]), 1)
        np.add.at(votes, (pairs[:, 1], axis[pairs[:, 0]]), 1)
        best = np.argmax(votes, axis=1)
        rows = np.arange(f)
        # two neighbours agree, or the face is alone in its direction (it would be a chart of one face)
        agree = (votes[rows, best] >= 2) | (votes[rows, axis] == 0)
        change = (best != axis) & agree & (cosines[rows, best] >= min_cos)
        if not change.any():
            break
        axis = np.where(change, best, axis)
    return axis


def project_faces(vertices: np.ndarray, faces: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(F, 3, 2) each face's corners projected along its ``axis`` (F,) index into :data:`AXES`."""
    out = np.empty((len(faces), 3, 2), np.float64)
    corners = vertices[faces].astype(np.float64)  # (F, 3, 3)
    for k, ((iu, su), (iv, sv)) in enumerate(_UV_AXES):
        sel = axis == k
        out[sel, :, 0] = su * corners[sel][:, :, iu]
        out[sel, :, 1] = sv * corners[sel][:, :, iv]
    return out


def _segments_cross(p: np.ndarray, q: np.ndarray, ends: np.ndarray, chunk: int = 2048) -> bool:
    """Whether any two of the segments p[i] -> q[i] (N, 2) that share no end point (``ends`` (N, 2) vertex ids)
    properly cross."""
    n = len(p)
    lo, hi = np.minimum(p, q), np.maximum(p, q)
    for s in range(0, n, chunk):
        i = np.arange(s, min(s + chunk, n))
        overlap = ((lo[i, None, 0] <= hi[None, :, 0]) & (lo[None, :, 0] <= hi[i, None, 0])
                   & (lo[i, None, 1] <= hi[None, :, 1]) & (lo[None, :, 1] <= hi[i, None, 1]))
        overlap &= i[:, None] < np.arange(n)[None, :]
        ii, jj = np.nonzero(overlap)
        ii = i[ii]
        shared = (ends[ii, :, None] == ends[jj, None, :]).any((1, 2))
        ii, jj = ii[~shared], jj[~shared]
        if len(ii) == 0:
            continue

        def orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
            return np.sign((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))

        d1, d2 = orient(p[ii], q[ii], p[jj]), orient(p[ii], q[ii], q[jj])
        d3, d4 = orient(p[jj], q[jj], p[ii]), orient(p[jj], q[jj], q[ii])
        if ((d1 * d2 <= 0) & (d3 * d4 <= 0)).any():
            return True
    return False


def chart_folds(faces: np.ndarray, uv: np.ndarray) -> bool:
    """Whether the boundary of one chart's faces (C, 3) with corner UVs ``uv`` (C, 3, 2) crosses itself (or
    touches itself at a point that is not a shared vertex)."""
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    key = np.minimum(a, b).astype(np.int64) * (int(faces.max()) + 1) + np.maximum(a, b)
    _, inverse, count = np.unique(key, return_inverse=True, return_counts=True)
    boundary = count[inverse] == 1
    if not boundary.any():
        return False
    p = uv.reshape(-1, 2)[boundary]
    q = uv[:, [1, 2, 0]].reshape(-1, 2)[boundary]
    return _segments_cross(p, q, np.stack([a[boundary], b[boundary]], 1))


def _bisect(uv_centres: np.ndarray) -> np.ndarray:
    """(C,) bool, which side of the median along the longer UV extent each face centre (C, 2) lies on."""
    extent = uv_centres.max(0) - uv_centres.min(0)
    c = uv_centres[:, int(np.argmax(extent))]
    side = c > np.median(c)
    if side.all() or not side.any():  # all centres equal along that axis
        side = np.arange(len(c)) >= len(c) // 2
    return side


def projection_charts(vertices: np.ndarray, faces: np.ndarray, small_chart: int = 16
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(F,) chart id of each face and (F, 3, 2) its corners' chart coordinates (world units, not packed); faces of
    charts under ``small_chart`` faces may join a neighbouring chart."""
    tri = vertices[faces].astype(np.float64)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    cosines = normal @ AXES.T / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-30)
    pairs = face_adjacency(faces)
    axis = smooth_axes(np.argmax(cosines, axis=1), cosines, pairs)
    chart = _components(axis, pairs)
    # Small charts are texture seams a few texels wide (their colours bleed): their faces join a neighbour's
    # direction when they face it at all.
    small = np.bincount(chart)[chart] < small_chart
    axis = smooth_axes(axis, np.where(small[:, None], cosines, -1.0), pairs, min_cos=0.25)
    chart = _components(axis, pairs)
    uv = project_faces(vertices, faces, axis)
    pending = list(range(int(chart.max()) + 1))
    order = np.argsort(chart, kind="stable")
    starts = np.searchsorted(chart[order], np.arange(len(pending) + 1))
    members = {c: order[starts[c]:starts[c + 1]] for c in pending}
    next_id = len(pending)
    while pending:
        c = pending.pop()
        ids = members.pop(c)
        if len(ids) < 2 or not chart_folds(faces[ids], uv[ids]):
            continue
        side = _bisect(uv[ids].mean(1))
        sub = np.zeros(len(faces), np.int64)
        sub[ids[side]] = 1
        local = np.full(len(faces), -1, np.int64)
        local[ids] = np.arange(len(ids))
        inner = pairs[(local[pairs[:, 0]] >= 0) & (local[pairs[:, 1]] >= 0)]
        comp = _components(sub[ids], local[inner])
        for k in range(int(comp.max()) + 1):
            part = ids[comp == k]
            cid = c if k == 0 else next_id
            next_id += k > 0
            chart[part] = cid
            members[cid] = part
            pending.append(cid)
    return chart, uv


def chart_mesh(faces: np.ndarray, chart: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the mesh along chart borders: (vmapping (V',) into the input vertices, faces (F, 3) into the new
    vertices, uvs (V', 2)) with one new vertex per (chart, vertex) pair."""
    key = chart.repeat(3).astype(np.int64) * (int(faces.max()) + 1) + faces.reshape(-1)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    vmap = faces.reshape(-1)[first]
    # Charts apart on a grid: xatlas joins faces whose UVs coincide into one chart, so no two charts may touch.
    lo = np.full((int(chart.max()) + 1, 2), np.inf)
    np.minimum.at(lo, chart, uv.min(1))
    step = float(np.ptp(uv.reshape(-1, 2), axis=0).max()) + 1.0
    cols = int(np.ceil(np.sqrt(len(lo))))
    cell = np.stack([np.arange(len(lo)) % cols, np.arange(len(lo)) // cols], 1) * step
    uvs = (uv - lo[chart][:, None] + cell[chart][:, None]).reshape(-1, 2)[first]
    return vmap.astype(np.int64), inverse.reshape(-1, 3).astype(np.int64), uvs
