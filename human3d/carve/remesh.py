"""The remesh step of continuous remeshing (Palfinger 2022, "Continuous remeshing for inverse rendering").

Edges shorter than their local reference length times (1 - tol) are collapsed to their midpoint, edges longer
than the reference times (1 + tol) are split at their midpoint, and edges are flipped where that brings the valences of
the four vertices closer to 6. Each operation is vectorised over an *independent* set of edges (no two of them
touch the same face, or for flips the same vertex), chosen greedily by priority with ``scatter_reduce``, so that
one pass of each keeps the mesh manifold and consistently oriented; the next iteration picks up what was left.

Per-vertex attributes (the optimiser's state, the reference edge length) travel with the vertices: a new vertex
gets the mean of the two it came from.

Arrays are torch tensors: vertices (V, 3) float, faces (F, 3) int64 counter-clockwise seen from outside, attributes
(V, K) float.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Topology:
    """Edge tables of a triangle mesh.

    edges: (E, 2) vertex ids, low id first; face_edges: (F, 3) edge id of side k (faces[f, k] -> faces[f, k+1]);
    edge_faces: (E, 2) face whose side runs low -> high, then the face whose side runs high -> low (-1 if none);
    edge_opposite: (E, 2) the vertex opposite the edge in those faces (-1 if none); valence: (V,) edges per vertex;
    boundary_vertex: (V,) bool, on an edge with fewer or more than two faces.
    """

    edges: torch.Tensor
    face_edges: torch.Tensor
    edge_faces: torch.Tensor
    edge_opposite: torch.Tensor
    valence: torch.Tensor
    boundary_vertex: torch.Tensor

    @property
    def interior_edge(self) -> torch.Tensor:
        """(E,) bool, edges with exactly two faces, one on each side."""
        return (self.edge_faces >= 0).all(1)


def build_topology(faces: torch.Tensor, num_vertices: int) -> Topology:
    """Edge tables of ``faces`` (F, 3) over ``num_vertices`` vertices (one sort of the 3F sides)."""
    device = faces.device
    f = faces.shape[0]
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    c = faces[:, [2, 0, 1]].reshape(-1)
    forward = a < b  # this side runs low -> high: slot 0
    key = torch.where(forward, a * num_vertices + b, b * num_vertices + a)
    sorted_key, order = torch.sort(key)
    first = torch.ones_like(sorted_key, dtype=torch.bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    eid_sorted = torch.cumsum(first, 0) - 1
    inverse = torch.empty_like(eid_sorted)
    inverse[order] = eid_sorted
    uniq = sorted_key[first]
    e = uniq.shape[0]
    edges = torch.stack([uniq // num_vertices, uniq % num_vertices], 1)
    side_face = torch.arange(3 * f, device=device) // 3
    slot = (~forward).long()
    edge_faces = torch.full((e, 2), -1, dtype=torch.long, device=device)
    edge_opposite = torch.full((e, 2), -1, dtype=torch.long, device=device)
    edge_faces[inverse, slot] = side_face
    edge_opposite[inverse, slot] = c
    count = torch.bincount(inverse, minlength=e)
    forward_count = torch.bincount(inverse[forward], minlength=e)
    bad_edge = (count != 2) | (forward_count != 1)
    valence = torch.bincount(edges.reshape(-1), minlength=num_vertices)
    boundary_vertex = torch.zeros(num_vertices, dtype=torch.bool, device=device)
    boundary_vertex[edges[bad_edge].reshape(-1)] = True
    edge_faces[bad_edge & (count > 2)] = -1  # non-manifold edges are treated as boundaries: never touched
    return Topology(edges, inverse.reshape(f, 3), edge_faces, edge_opposite, valence, boundary_vertex)


def _select_independent_by_faces(candidate: torch.Tensor, priority: torch.Tensor, face_edges: torch.Tensor,
                                 num_edges: int) -> torch.Tensor:
    """(E,) bool: candidates that are the best (highest priority, ties by id) among the candidates of every face
    they belong to, so that each face has at most one selected edge."""
    device = candidate.device
    ids = torch.nonzero(candidate, as_tuple=True)[0]
    if ids.numel() == 0:
        return candidate.clone()
    order = torch.argsort(priority[ids], descending=True, stable=True)
    rank = torch.full((num_edges,), ids.numel(), dtype=torch.long, device=device)
    rank[ids[order]] = torch.arange(ids.numel(), device=device)  # 0 = best
    face_best = rank[face_edges].amin(1)  # (F,)
    edge_best = torch.full((num_edges,), ids.numel(), dtype=torch.long, device=device)
    edge_best = edge_best.scatter_reduce(0, face_edges.reshape(-1), face_best.repeat_interleave(3), reduce="amin")
    return candidate & (rank == edge_best)


def _select_independent_by_vertices(candidate: torch.Tensor, priority: torch.Tensor, groups: torch.Tensor,
                                    size: int) -> torch.Tensor:
    """(E,) bool: candidates that are the best among every candidate sharing a vertex of their ``groups`` (E, G)
    (vertex ids; -1 ignored) with them, at distance up to one vertex; the winners' vertex groups are disjoint."""
    device = candidate.device
    ids = torch.nonzero(candidate, as_tuple=True)[0]
    if ids.numel() == 0:
        return candidate.clone()
    order = torch.argsort(priority[ids], descending=True, stable=True)
    rank = torch.full((candidate.shape[0],), ids.numel(), dtype=torch.long, device=device)
    rank[ids[order]] = torch.arange(ids.numel(), device=device)
    g = groups[ids]
    valid = g >= 0
    vbest = torch.full((size,), ids.numel(), dtype=torch.long, device=device)
    vbest = vbest.scatter_reduce(0, g[valid], rank[ids][:, None].expand_as(g)[valid], reduce="amin")
    best = torch.where(valid, vbest[g.clamp_min(0)], torch.full_like(g, ids.numel())).amin(1)
    out = torch.zeros_like(candidate)
    out[ids] = best == rank[ids]
    return out


def triangle_quality(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(N,) shape quality 4 sqrt(3) area / (sum of squared edge lengths): 1 for equilateral, 0 for degenerate."""
    area2 = torch.linalg.cross(b - a, c - a, dim=-1).norm(dim=-1)  # twice the area
    sq = (b - a).square().sum(-1) + (c - b).square().sum(-1) + (a - c).square().sum(-1)
    return 2.0 * 3.0**0.5 * area2 / sq.clamp_min(1e-30)


# -- split ---------------------------------------------------------------------------------------------------------
def split_edges(vertices: torch.Tensor, faces: torch.Tensor, attrs: torch.Tensor, topo: Topology,
                selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``selected`` (E,) bool edges at their midpoints; at most one selected edge per face.

    A face (x, y, z) whose side x -> y is split at m becomes (x, m, z) and (m, y, z), which keeps its orientation.
    Returns the new vertices, faces and attributes.
    """
    sel = torch.nonzero(selected, as_tuple=True)[0]
    if sel.numel() == 0:
        return vertices, faces, attrs
    v0 = vertices.shape[0]
    e = topo.edges[sel]
    new_v = 0.5 * (vertices[e[:, 0]] + vertices[e[:, 1]])
    new_a = 0.5 * (attrs[e[:, 0]] + attrs[e[:, 1]])
    mid_of_edge = torch.full((topo.edges.shape[0],), -1, dtype=torch.long, device=faces.device)
    mid_of_edge[sel] = torch.arange(v0, v0 + sel.numel(), device=faces.device)
    side_mid = mid_of_edge[topo.face_edges]  # (F, 3)
    has = side_mid >= 0
    if bool((has.sum(1) > 1).any()):
        raise ValueError("split_edges needs at most one selected edge per face")
    split_f = torch.nonzero(has.any(1), as_tuple=True)[0]
    k = has[split_f].float().argmax(1)
    fs = faces[split_f]
    x = torch.gather(fs, 1, k[:, None])[:, 0]
    y = torch.gather(fs, 1, ((k + 1) % 3)[:, None])[:, 0]
    z = torch.gather(fs, 1, ((k + 2) % 3)[:, None])[:, 0]
    m = torch.gather(side_mid[split_f], 1, k[:, None])[:, 0]
    keep = torch.ones(faces.shape[0], dtype=torch.bool, device=faces.device)
    keep[split_f] = False
    new_faces = torch.cat([faces[keep], torch.stack([x, m, z], 1), torch.stack([m, y, z], 1)])
    return torch.cat([vertices, new_v]), new_faces, torch.cat([attrs, new_a])


def select_splits(vertices: torch.Tensor, topo: Topology, limit: torch.Tensor) -> torch.Tensor:
    """(E,) bool: edges longer than ``limit`` (E,), longest first, at most one per face."""
    length = (vertices[topo.edges[:, 0]] - vertices[topo.edges[:, 1]]).norm(dim=1)
    candidate = length > limit
    return _select_independent_by_faces(candidate, length / limit, topo.face_edges, topo.edges.shape[0])


# -- collapse ------------------------------------------------------------------------------------------------------
def _vertex_faces(faces: torch.Tensor, num_vertices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR of the faces around each vertex: (V + 1,) offsets and the face ids."""
    flat = faces.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=num_vertices)
    offsets = torch.zeros(num_vertices + 1, dtype=torch.long, device=faces.device)
    offsets[1:] = torch.cumsum(counts, 0)
    return offsets, order // 3


def _vertex_neighbours(topo: Topology, num_vertices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR of the vertices adjacent to each vertex: (V + 1,) offsets and neighbour ids."""
    src = torch.cat([topo.edges[:, 0], topo.edges[:, 1]])
    dst = torch.cat([topo.edges[:, 1], topo.edges[:, 0]])
    order = torch.argsort(src, stable=True)
    counts = torch.bincount(src, minlength=num_vertices)
    offsets = torch.zeros(num_vertices + 1, dtype=torch.long, device=src.device)
    offsets[1:] = torch.cumsum(counts, 0)
    return offsets, dst[order]


def _expand_csr(offsets: torch.Tensor, values: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each entry i of ``rows``: (owner index i, value) pairs of every CSR value of row ``rows[i]``."""
    start = offsets[rows]
    count = offsets[rows + 1] - start
    owner = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), count)
    first = torch.cumsum(count, 0) - count
    local = torch.arange(owner.numel(), device=rows.device) - torch.repeat_interleave(first, count)
    return owner, values[start[owner] + local]


def select_collapses(vertices: torch.Tensor, faces: torch.Tensor, topo: Topology, limit: torch.Tensor,
                     split_limit: torch.Tensor | None = None) -> torch.Tensor:
    """(E,) bool: short edges (length < ``limit`` (E,)) that can be collapsed to their midpoint all at once.

    An edge qualifies when it is interior with interior end points, satisfies the link condition (its end points
    share exactly the two opposite vertices), the opposite vertices keep valence >= 3, no remaining face around it
    flips or degenerates, and (with ``split_limit`` (V,)) no new edge would exceed the split length. Among those,
    the shortest win such that no face touches two selected edges.
    """
    nv = vertices.shape[0]
    edges = topo.edges
    length = (vertices[edges[:, 0]] - vertices[edges[:, 1]]).norm(dim=1)
    cand = (length < limit) & topo.interior_edge
    cand &= ~topo.boundary_vertex[edges].any(1)
    opp = topo.edge_opposite.clamp_min(0)
    cand &= (topo.valence[opp] > 3).all(1) & (topo.edge_opposite >= 0).all(1)
    ids = torch.nonzero(cand, as_tuple=True)[0]
    if ids.numel() == 0 or nv <= 4:
        return torch.zeros_like(cand)
    a, b = edges[ids, 0], edges[ids, 1]
    # Link condition: count the neighbours x of a for which (b, x) is an edge.
    n_off, n_val = _vertex_neighbours(topo, nv)
    owner, x = _expand_csr(n_off, n_val, a)
    keys = torch.minimum(b[owner], x) * nv + torch.maximum(b[owner], x)
    edge_keys = edges[:, 0] * nv + edges[:, 1]  # sorted (unique keys come out sorted)
    pos = torch.searchsorted(edge_keys, keys).clamp_max(edge_keys.numel() - 1)
    common = torch.bincount(owner[edge_keys[pos] == keys], minlength=ids.numel())
    ok = common == 2
    mid = 0.5 * (vertices[a] + vertices[b])
    if split_limit is not None:
        for end in (a, b):
            ow, y = _expand_csr(n_off, n_val, end)
            too_long = (mid[ow] - vertices[y]).norm(dim=1) > 0.5 * (split_limit[y] + split_limit[end[ow]])
            ok &= torch.bincount(ow[too_long], minlength=ids.numel()) == 0
    ok &= ~_collapse_damages_faces(vertices, faces, a, b, mid)
    cand = torch.zeros_like(cand)
    cand[ids[ok]] = True
    # Independence: no face may touch two selected edges, where an edge touches every face holding one of its
    # end points. Each collapse also costs its opposite vertices one valence: a low-valence opposite vertex joins
    # the group so that losses cannot add up; a vertex of valence >= 6 can afford them (end-point exclusivity alone
    # allows at most one collapse in three around it), which lets high-valence poles shrink quickly.
    low = topo.valence[topo.edge_opposite.clamp_min(0)] < 6
    groups = torch.cat([edges, torch.where(low, topo.edge_opposite, edges)], 1)
    return _select_touching_faces_exclusive(cand, -length, faces, groups, nv)


def _collapse_damages_faces(vertices: torch.Tensor, faces: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                            mid: torch.Tensor) -> torch.Tensor:
    """(N,) bool: collapsing edge (a, b) (N,) to ``mid`` (N, 3) would turn, tilt or squash a face that survives
    around a or b (faces must keep their orientation and a sane area)."""
    f_off, f_val = _vertex_faces(faces, vertices.shape[0])
    bad = torch.zeros(a.numel(), dtype=torch.bool, device=vertices.device)
    # The local surface normal (area-weighted normals of the end points' one-rings): no surviving face may turn
    # away from it, which stops folds building up over repeated collapses at sharp tips, and it stays meaningful
    # where the edge's own faces are needles.
    tri_all = vertices[faces]
    fn = torch.linalg.cross(tri_all[:, 1] - tri_all[:, 0], tri_all[:, 2] - tri_all[:, 0], dim=-1)
    vn = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, 0))
    n_edge = torch.nn.functional.normalize(vn[a] + vn[b], dim=-1, eps=1e-30)
    for end in (a, b):
        ow, fid = _expand_csr(f_off, f_val, end)
        fv = faces[fid]  # (N, 3)
        both = ((fv == a[ow, None]) | (fv == b[ow, None])).sum(1) == 2
        old = vertices[fv]
        new = torch.where(((fv == a[ow, None]) | (fv == b[ow, None]))[..., None], mid[ow, None, :], old)
        n_old = torch.linalg.cross(old[:, 1] - old[:, 0], old[:, 2] - old[:, 0], dim=-1)
        n_new = torch.linalg.cross(new[:, 1] - new[:, 0], new[:, 2] - new[:, 0], dim=-1)
        # Reject a normal that turns by more than ~37 degrees or a triangle that becomes a sliver.
        cos = (n_old * n_new).sum(1) / (n_old.norm(dim=1) * n_new.norm(dim=1) + 1e-30)
        q_old = triangle_quality(old[:, 0], old[:, 1], old[:, 2])
        q_new = triangle_quality(new[:, 0], new[:, 1], new[:, 2])
        cos_edge = (n_new * n_edge[ow]).sum(1) / (n_new.norm(dim=1) + 1e-30)
        cos_edge_old = (n_old * n_edge[ow]).sum(1) / (n_old.norm(dim=1) + 1e-30)
        # A needle's own normal is noise: only well-shaped faces must keep theirs. Against the local normal, a
        # face may not end up tilted by more than 60 degrees unless it already was and gets hardly worse.
        turned = (cos < 0.8) & (q_old > 0.05)
        tilted = (cos_edge < 0.5) & (cos_edge < cos_edge_old - 0.05)
        flips = (~both) & (turned | tilted | (q_new < torch.clamp(0.5 * q_old, max=0.2)))
        bad |= torch.bincount(ow[flips], minlength=a.numel()) > 0
    return bad


def _select_touching_faces_exclusive(candidate: torch.Tensor, priority: torch.Tensor, faces: torch.Tensor,
                                     groups: torch.Tensor, nv: int) -> torch.Tensor:
    """(E,) bool: the candidates that have the best priority among the candidates touching any face that holds a
    vertex of their ``groups`` (E, G) row."""
    device = candidate.device
    ids = torch.nonzero(candidate, as_tuple=True)[0]
    if ids.numel() == 0:
        return candidate
    none = ids.numel()
    order = torch.argsort(priority[ids], descending=True, stable=True)
    rank = torch.full((candidate.shape[0],), none, dtype=torch.long, device=device)
    rank[ids[order]] = torch.arange(none, device=device)
    vbest = torch.full((nv,), none, dtype=torch.long, device=device)
    g = groups[ids]
    gsize = g.shape[1]
    vbest = vbest.scatter_reduce(0, g.reshape(-1), rank[ids].repeat_interleave(gsize), reduce="amin")
    fbest = vbest[faces].amin(1)  # best candidate touching each face
    vf_best = torch.full((nv,), none, dtype=torch.long, device=device)
    vf_best = vf_best.scatter_reduce(0, faces.reshape(-1), fbest.repeat_interleave(3), reduce="amin")
    win = (vf_best[g] == rank[ids][:, None]).all(1)
    out = torch.zeros_like(candidate)
    out[ids[win]] = True
    return out


def collapse_edges(vertices: torch.Tensor, faces: torch.Tensor, attrs: torch.Tensor, topo: Topology,
                   selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Collapse ``selected`` (E,) bool edges (an independent set) to their midpoints.

    The high-id end point is merged into the low-id one, the two faces of each edge are removed and unused
    vertices are dropped. Returns the new vertices, faces and attributes.
    """
    sel = torch.nonzero(selected, as_tuple=True)[0]
    if sel.numel() == 0:
        return vertices, faces, attrs
    a, b = topo.edges[sel, 0], topo.edges[sel, 1]
    vertices = vertices.clone()
    attrs = attrs.clone()
    vertices[a] = 0.5 * (vertices[a] + vertices[b])
    attrs[a] = 0.5 * (attrs[a] + attrs[b])
    remap = torch.arange(vertices.shape[0], device=faces.device)
    remap[b] = a
    faces = remap[faces]
    alive = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])
    return compact(vertices, faces[alive], attrs)


def compact(vertices: torch.Tensor, faces: torch.Tensor, attrs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Drop vertices no face uses and renumber the faces."""
    used = torch.zeros(vertices.shape[0], dtype=torch.bool, device=faces.device)
    used[faces.reshape(-1)] = True
    new_id = torch.cumsum(used.long(), 0) - 1
    return vertices[used], new_id[faces], attrs[used]


# -- flip ----------------------------------------------------------------------------------------------------------
def select_flips(vertices: torch.Tensor, faces: torch.Tensor, topo: Topology,
                 max_length: torch.Tensor | None = None) -> torch.Tensor:
    """(E,) bool: interior edges whose flip lowers the valence error sum((valence - 6)^2) of its four vertices,
    whose flipped edge does not exist yet (and is not longer than ``max_length`` (E,)), whose new faces keep the
    orientation, and whose four vertices are not shared with another selected flip."""
    nv = vertices.shape[0]
    edges, opp = topo.edges, topo.edge_opposite
    cand = topo.interior_edge & (opp >= 0).all(1) & ~topo.boundary_vertex[edges].any(1)
    ids = torch.nonzero(cand, as_tuple=True)[0]
    if ids.numel() == 0:
        return torch.zeros_like(cand)
    a, b = edges[ids, 0], edges[ids, 1]
    c, d = opp[ids, 0], opp[ids, 1]  # c: opposite in the face running a -> b, d: in the face running b -> a
    val = topo.valence
    before = (val[a] - 6) ** 2 + (val[b] - 6) ** 2 + (val[c] - 6) ** 2 + (val[d] - 6) ** 2
    after = (val[a] - 7) ** 2 + (val[b] - 7) ** 2 + (val[c] - 5) ** 2 + (val[d] - 5) ** 2
    gain = before - after
    ok = (gain > 0) & (val[a] > 3) & (val[b] > 3) & (c != d)
    edge_keys = edges[:, 0] * nv + edges[:, 1]
    new_key = torch.minimum(c, d) * nv + torch.maximum(c, d)
    pos = torch.searchsorted(edge_keys, new_key).clamp_max(edge_keys.numel() - 1)
    ok &= edge_keys[pos] != new_key
    if max_length is not None:
        ok &= (vertices[c] - vertices[d]).norm(dim=1) <= max_length[ids]
    # New faces (a, d, c) and (d, b, c) must face the same way as the old pair and not be slivers.
    va, vb, vc, vd = vertices[a], vertices[b], vertices[c], vertices[d]
    n_old = torch.linalg.cross(vb - va, vc - va, dim=-1) + torch.linalg.cross(va - vb, vd - vb, dim=-1)
    n1 = torch.linalg.cross(vd - va, vc - va, dim=-1)
    n2 = torch.linalg.cross(vb - vd, vc - vd, dim=-1)
    unit = torch.nn.functional.normalize
    ok &= ((unit(n1, dim=1, eps=1e-30) * unit(n_old, dim=1, eps=1e-30)).sum(1) > 0.8)
    ok &= ((unit(n2, dim=1, eps=1e-30) * unit(n_old, dim=1, eps=1e-30)).sum(1) > 0.8)
    # No slivers: the worse new triangle must not be much worse than the worse old one.
    q_old = torch.minimum(triangle_quality(va, vb, vc), triangle_quality(vb, va, vd))
    q_new = torch.minimum(triangle_quality(va, vd, vc), triangle_quality(vd, vb, vc))
    ok &= q_new >= torch.clamp(0.5 * q_old, max=0.2)
    cand = torch.zeros_like(cand)
    cand[ids[ok]] = True
    groups = torch.full((edges.shape[0], 4), -1, dtype=torch.long, device=edges.device)
    groups[ids] = torch.stack([a, b, c, d], 1)
    priority = torch.zeros(edges.shape[0], dtype=vertices.dtype, device=edges.device)
    priority[ids] = gain.to(vertices.dtype)
    return _select_independent_by_vertices(cand, priority, groups, nv)


def flip_edges(faces: torch.Tensor, topo: Topology, selected: torch.Tensor) -> torch.Tensor:
    """Flip ``selected`` (E,) bool edges: faces (a, b, c) and (b, a, d) become (a, d, c) and (d, b, c)."""
    sel = torch.nonzero(selected, as_tuple=True)[0]
    if sel.numel() == 0:
        return faces
    a, b = topo.edges[sel, 0], topo.edges[sel, 1]
    c, d = topo.edge_opposite[sel, 0], topo.edge_opposite[sel, 1]
    f0, f1 = topo.edge_faces[sel, 0], topo.edge_faces[sel, 1]
    faces = faces.clone()
    faces[f0] = torch.stack([a, d, c], 1)
    faces[f1] = torch.stack([d, b, c], 1)
    return faces


# -- the whole step ------------------------------------------------------------------------------------------------
def remesh(vertices: torch.Tensor, faces: torch.Tensor, attrs: torch.Tensor, ref_len: torch.Tensor,
           tolerance: float = 0.5, flip: bool = True,
           split: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One remesh pass: collapse short edges, split long ones (unless ``split`` is false), flip for valence.

    ref_len: (V,) target edge length per vertex (an edge's target is the mean of its end points'); it must also be
    a column of ``attrs`` if it should follow the vertices. Returns the new vertices, faces and attributes.
    """
    with torch.no_grad():
        v, f, at = vertices.detach(), faces, attrs.detach()
        ref_col = torch.cat([at, ref_len.detach()[:, None].to(at.dtype)], 1)
        # Collapse first, then split: the split limit is then met right after every pass (collapses can
        # lengthen nearby edges).
        topo = build_topology(f, v.shape[0])
        edge_ref = 0.5 * (ref_col[topo.edges[:, 0], -1] + ref_col[topo.edges[:, 1], -1])
        sel = select_collapses(v, f, topo, edge_ref * (1.0 - tolerance), ref_col[:, -1] * (1.0 + tolerance))
        v, f, ref_col = collapse_edges(v, f, ref_col, topo, sel)
        if split:
            topo = build_topology(f, v.shape[0])
            edge_ref = 0.5 * (ref_col[topo.edges[:, 0], -1] + ref_col[topo.edges[:, 1], -1])
            v, f, ref_col = split_edges(v, f, ref_col, topo, select_splits(v, topo, edge_ref * (1.0 + tolerance)))
        if flip:
            topo = build_topology(f, v.shape[0])
            edge_ref = 0.5 * (ref_col[topo.edges[:, 0], -1] + ref_col[topo.edges[:, 1], -1])
            f = flip_edges(f, topo, select_flips(v, f, topo, edge_ref * (1.0 + tolerance)))
    return v, f, ref_col[:, :-1]
