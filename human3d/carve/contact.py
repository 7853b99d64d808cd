"""Untangling a carved mesh that runs through itself: interpenetrating parts pressed apart (a soft contact, not a
re-mesh), and crumpled zero-thickness patches replaced.

Carving can push two parts of the body through each other where they touch in the photo (gloved fingers resting on
a knee, thighs, an arm against the torso). Local smoothing cannot separate them: it shrinks both sheets but leaves
them crossed, or squashes a thin part flat. :func:`press_apart` finds every vertex that has gone into another
part's volume (a point just outside its own sheet is inside the mesh: ray parity is the winding number mod 2, so
this holds even where the volumes overlap) and moves it back along its inward normal, half the way to the other
part's surface (the first surface along that ray that is not within a few rings of the vertex) plus a small gap:
both sides move, so they meet at a contact surface between them. The move is spread over a few rings with a
harmonic fall-off (no step at the edge of the pressed patch) and repeated with fresh detection.

What smoothing then leaves is mostly crumples: patches folded through themselves with no volume (their faces'
normals cancel), such as a finger collapsed into a needle. :func:`fill_crumples` replaces each such disk by a fan
from its boundary loop. :func:`resolve_self_intersections` runs the three in turn.
"""

from __future__ import annotations

import numpy as np

from human3d.ops.mesh import adjacency_matrix, directed_edges, grow_region, neighbour_mean, vertex_normals


def _rings(adjacency, ids: np.ndarray, rings: int):
    """(len(ids), V) sparse bool: the vertices within ``rings`` edges of each of ``ids``."""
    from scipy.sparse import identity

    step = (adjacency + identity(adjacency.shape[0], dtype=bool, format="csr")).tocsr()
    reach = step[ids]
    for _ in range(rings - 1):
        reach = reach @ step
    return reach.astype(bool).tocsr()


def _scene(vertices: np.ndarray, faces: np.ndarray):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, np.uint32)))
    return scene


def penetrating_vertices(scene, vertices: np.ndarray, normals: np.ndarray, seed: np.ndarray, src: np.ndarray,
                         dst: np.ndarray, offset: float, limit: int = 50) -> np.ndarray:
    """(V,) bool: vertices whose point ``offset`` outside their own sheet is inside the mesh, flooded from the
    (V,) bool ``seed`` (the vertices of intersecting faces) through neighbours that are inside too."""
    import open3d as o3d

    inside = np.zeros(len(vertices), bool)
    tested = np.zeros(len(vertices), bool)
    todo = seed.copy()
    for _ in range(limit):
        ids = np.nonzero(todo & ~tested)[0]
        if len(ids) == 0:
            break
        q = (vertices[ids] + offset * normals[ids]).astype(np.float32)
        occ = scene.compute_occupancy(o3d.core.Tensor(q), nsamples=3).numpy() > 0.5
        tested[ids] = True
        inside[ids[occ]] = True
        todo = grow_region(inside, src, dst, 1)  # the inside ones are tested already: their neighbours are next
    return inside


def exit_depths(scene, vertices: np.ndarray, normals: np.ndarray, ids: np.ndarray, faces: np.ndarray,
                start: float, local: np.ndarray) -> np.ndarray:
    """(len(ids),) distance from each vertex back along its inward normal to the first surface that is not one
    of its own faces; inf where there is none, or where that surface is the vertex's own sheet: a face with a
    vertex in the vertex's row of the (len(ids), V) sparse ``local`` (its neighbourhood of a few rings), where the
    sheet folds over itself rather than into another part."""
    import open3d as o3d

    origin = vertices[ids] - start * normals[ids]
    rays = np.concatenate([origin, -normals[ids]], 1).astype(np.float32)
    hits = scene.list_intersections(o3d.core.Tensor(rays))
    ray = hits["ray_ids"].numpy().astype(np.int64)
    prim = hits["primitive_ids"].numpy().astype(np.int64)
    t = hits["t_hit"].numpy().astype(np.float64)
    own = (faces[prim] == ids[ray][:, None]).any(1)
    ray, prim, t = ray[~own], prim[~own], t[~own]
    first = np.full(len(ids), np.inf)
    np.minimum.at(first, ray, t)
    keep = t == first[ray]
    ray, prim = ray[keep], prim[keep]
    near = np.asarray(local[ray[:, None], faces[prim]].todense()).reshape(len(ray), 3).any(1)
    depth = first + start
    depth[ray[near]] = np.inf
    return depth


def spread(displacement: np.ndarray, fixed: np.ndarray, region: np.ndarray, src: np.ndarray, dst: np.ndarray,
           iterations: int) -> np.ndarray:
    """(V, 3) displacement kept on the (V,) bool ``fixed`` vertices and relaxed towards the mean of the neighbours
    on the rest of ``region`` (zero outside it): a harmonic fall-off from the pressed patch."""
    mean_op = neighbour_mean(src, dst, len(displacement))
    free = region & ~fixed
    d = displacement.copy()
    for _ in range(iterations):
        d[free] = (mean_op @ d)[free]
    return d


def press_apart(vertices: np.ndarray, faces: np.ndarray, intersecting: np.ndarray, rounds: int = 3,
                gap: float = 0.05, reach: float = 1.0, rings: int = 3,
                deepest: float = 4.0) -> tuple[np.ndarray, int, np.ndarray]:
    """Move the vertices that went into another part of the mesh back out (see the module's docstring).

    ``intersecting`` is the (F,) bool of self-intersecting faces; ``gap`` (in mean edge lengths) is what is left
    between the two sides, ``reach`` caps one round's move, ``rings`` is the width of the fall-off; a vertex whose
    exit is more than ``deepest`` edge lengths away is not pressed (it follows its neighbours). Each round
    re-detects the intersections near what moved. Returns the (V, 3) vertices, how many distinct vertices were
    pressed, and the (F,) bool of the faces still intersecting."""
    from human3d.carve.meshing import retest_self_intersections

    f = np.asarray(faces, np.int64)
    v = np.asarray(vertices, np.float64).copy()
    src, dst = directed_edges(f)
    edge = float(np.linalg.norm(v[src] - v[dst], axis=1).mean())
    pressed = np.zeros(len(v), bool)
    adjacency = adjacency_matrix(f, len(v))
    inter = intersecting
    for _ in range(rounds):
        if not inter.any():
            break
        normals = vertex_normals(v, f).astype(np.float64)
        scene = _scene(v, f)
        seed = np.zeros(len(v), bool)
        seed[f[inter].reshape(-1)] = True
        inside = penetrating_vertices(scene, v, normals, seed, src, dst, offset=0.1 * edge)
        ids = np.nonzero(inside)[0]
        if len(ids) == 0:
            break
        depth = exit_depths(scene, v, normals, ids, f, start=1e-3 * edge, local=_rings(adjacency, ids, rings + 1))
        # deeper than ``deepest`` edges, the ray has missed the other part's near side: no trusted depth there
        known = depth < deepest * edge
        ids, depth = ids[known], depth[known]
        inside[:] = False
        inside[ids] = True
        d = np.zeros_like(v)
        d[ids] = -normals[ids] * np.minimum(0.5 * depth + gap * edge, reach * edge)[:, None]
        region = grow_region(inside, src, dst, rings)
        v += spread(d, inside, region, src, dst, iterations=4 * rings)
        pressed |= inside
        inter = retest_self_intersections(v, f, inter, region)
    return v.astype(np.asarray(vertices).dtype), int(pressed.sum()), inter


def folded_vertices(vertices: np.ndarray, faces: np.ndarray, limit: float = 0.5) -> np.ndarray:
    """(V,) bool: vertices whose faces' unit normals cancel (their mean is shorter than ``limit``): the surface
    folds back on itself there (a crumpled or collapsed, zero-thickness patch)."""
    from human3d.ops.mesh import face_normals

    fn = face_normals(np.asarray(vertices, np.float64), faces)
    acc = np.zeros((len(vertices), 3))
    np.add.at(acc, faces.reshape(-1), np.repeat(fn, 3, axis=0))
    count = np.maximum(np.bincount(faces.reshape(-1), minlength=len(vertices)), 1)
    return np.linalg.norm(acc, axis=1) / count < limit


def boundary_loop(faces: np.ndarray) -> np.ndarray | None:
    """The (L,) vertices of the one boundary loop of a patch of faces, in the patch's winding; None unless the
    patch is a disk (one simple loop, Euler characteristic 1)."""
    from human3d.ops.mesh import face_sides, unique_edges

    sides = face_sides(faces)
    edges, side_edge = unique_edges(faces)
    count = np.bincount(side_edge, minlength=len(edges))
    if len(np.unique(faces)) - len(edges) + len(faces) != 1 or (count > 2).any():
        return None
    border = sides[count[side_edge] == 1]  # (L, 2) directed a -> b
    if len(border) < 3 or len(np.unique(border[:, 0])) != len(border):
        return None  # a vertex on the loop twice: a pinch, not a simple loop
    nxt = dict(zip(border[:, 0].tolist(), border[:, 1].tolist()))
    loop = [int(border[0, 0])]
    while len(loop) <= len(border):
        loop.append(nxt[loop[-1]])
        if loop[-1] == loop[0]:
            break
    return np.asarray(loop[:-1]) if len(loop) == len(border) + 1 else None


def _face_groups(faces: np.ndarray, mask: np.ndarray, n: int) -> list[np.ndarray]:
    """The faces of ``mask`` grouped into components (sharing a vertex), as arrays of face ids."""
    from human3d.carve.meshing import count_components

    ids = np.nonzero(mask)[0]
    if len(ids) == 0:
        return []
    labels = count_components(n, faces[ids])
    return [ids[labels == k] for k in np.unique(labels)]


def fill_crumples(vertices: np.ndarray, faces: np.ndarray, intersecting: np.ndarray, grow: int = 4,
                  max_faces: int = 400) -> tuple[np.ndarray, np.ndarray, int]:
    """Replace each crumpled patch that holds self-intersecting faces (a zero-thickness sheet folded through
    itself, which no smoothing untangles: see :func:`folded_vertices`) by a fan from its boundary loop to the loop's
    mean. A patch is the intersecting faces with the faces of the folded vertices next to them, grown by up to
    ``grow`` rings until it is a disk; larger than ``max_faces``, or never a disk, it is left alone. Returns
    vertices, faces (unused vertices dropped) and the patches replaced."""
    f = np.asarray(faces, np.int64)
    v = np.asarray(vertices, np.float64)
    folded = folded_vertices(v, f)
    near = np.zeros(len(v), bool)
    near[f[intersecting].reshape(-1)] = True
    near[f[near[f].any(1)].reshape(-1)] = True
    crumpled = intersecting | (folded[f].any(1) & near[f].any(1))
    taken = np.zeros(len(f), bool)
    new_v, new_f = [], []
    for patch in _face_groups(f, crumpled, len(v)):
        if not (folded[f[patch]].any() and intersecting[patch].any()):
            continue  # two sheets crossing cleanly are the press's and the smoothing's, not a crumple
        mask = np.zeros(len(f), bool)
        mask[patch] = True
        loop = None
        for _ in range(grow + 1):
            loop = boundary_loop(f[mask]) if mask.sum() <= max_faces else None
            if loop is not None:
                break
            ring = np.zeros(len(v), bool)
            ring[f[mask].reshape(-1)] = True
            mask = ring[f].any(1)
        if loop is None or (mask & taken).any():
            continue
        taken |= mask
        centre = len(v) + len(new_v)
        new_v.append(v[loop].mean(0))
        new_f.append(np.stack([loop, np.roll(loop, -1), np.full(len(loop), centre)], 1))
    if not new_v:
        return vertices, f, 0
    v = np.concatenate([v, np.asarray(new_v)])
    f = np.concatenate([f[~taken], *new_f])
    used = np.unique(f)
    remap = np.full(len(v), -1, np.int64)
    remap[used] = np.arange(len(used))
    return v[used].astype(np.asarray(vertices).dtype), remap[f], len(new_v)


def resolve_self_intersections(vertices: np.ndarray, faces: np.ndarray,
                               fill_rounds: int = 3) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Untangle a closed mesh: press interpenetrating parts apart (:func:`press_apart`), smooth what is left
    locally (:func:`~human3d.carve.meshing.smooth_self_intersections`), then replace crumpled patches that still
    intersect (:func:`fill_crumples`) and smooth again, up to ``fill_rounds`` times. A mesh without
    self-intersections is returned as it is. Returns vertices, faces and the counts (faces intersecting before and
    after; -1 without open3d; vertices pressed; patches filled)."""
    from human3d.carve.meshing import self_intersecting_faces, smooth_intersecting

    f = np.asarray(faces, np.int64)
    counts = {"self_intersecting_faces_before": -1, "self_intersecting_faces_after": -1, "vertices_pressed": 0,
              "crumples_filled": 0}
    inter = self_intersecting_faces(vertices, f)
    if inter is None:
        return vertices, f, counts
    counts["self_intersecting_faces_before"] = counts["self_intersecting_faces_after"] = int(inter.sum())
    if not inter.any():
        return vertices, f, counts
    v, counts["vertices_pressed"], inter = press_apart(vertices, f, inter)
    v, inter = smooth_intersecting(v, f, inter)
    for _ in range(fill_rounds):
        if not inter.any():
            break
        v, f, filled = fill_crumples(v, f, inter)
        if filled == 0:
            break
        counts["crumples_filled"] += filled
        v, inter = smooth_intersecting(v, f, self_intersecting_faces(v, f))
    counts["self_intersecting_faces_after"] = int(inter.sum())
    return v, f, counts
