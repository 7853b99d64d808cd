"""Mesh utilities of the carving stage: a watertight starting mesh, checks and clean-up of the output, Poisson
clean-up, simple shapes.

Continuous remeshing needs a closed, manifold, consistently oriented mesh; body-model meshes often are not (eyes,
separate parts, open seams). :func:`make_watertight` rebuilds such a mesh as an iso-surface of its signed distance
(Open3D ray casting + marching cubes), keeping the largest component.

What carving hands on must be one clean asset: :func:`check_mesh` measures it (components, boundary and
non-manifold edges, non-manifold vertices, degenerate faces, self-intersecting faces, orientation) and
:func:`clean_mesh` makes it so (largest component only, pinched vertices split, outward winding, self-intersections
resolved by :mod:`human3d.carve.contact`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from human3d.errors import MissingBackendError
from human3d.ops.mesh import face_areas_normals, face_sides, unique_edges


def is_closed_manifold(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """True when every edge has exactly two faces, one running each way (closed, manifold, oriented)."""
    import torch

    from human3d.carve.remesh import build_topology

    if len(faces) == 0:
        return False
    topo = build_topology(torch.as_tensor(np.asarray(faces), dtype=torch.long), len(vertices))
    return bool(topo.interior_edge.all()) and not bool(topo.boundary_vertex.any())


@dataclass(frozen=True)
class MeshCheck:
    """What :func:`check_mesh` finds. A clean closed mesh has one component, no bad edges or vertices, no
    degenerate faces, positive volume (outward winding) and no self-intersections."""

    faces: int
    components: int
    bad_edges: int
    """Edges without exactly two faces running opposite ways (boundary, non-manifold or misoriented)."""
    non_manifold_vertices: int
    """Vertices whose faces form more than one fan (pinch points)."""
    degenerate_faces: int
    """Faces with a repeated vertex or an area below 1e-6 of the mean edge length squared."""
    self_intersecting_faces: int
    """Faces crossed by an edge of a face they share no vertex with; -1 when not measured (no open3d)."""
    volume: float
    """Signed volume: positive when the faces wind counter-clockwise seen from outside."""

    @property
    def watertight(self) -> bool:
        return self.faces > 0 and self.bad_edges == 0

    @property
    def clean(self) -> bool:
        return (self.watertight and self.components == 1 and self.non_manifold_vertices == 0
                and self.degenerate_faces == 0 and self.self_intersecting_faces == 0 and self.volume > 0)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _edges_and_sides(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique undirected edges (E, 2), and for each of the 3F face sides its edge id and whether it runs low ->
    high."""
    edges, side_edge = unique_edges(faces)
    sides = face_sides(faces)
    return edges, side_edge, sides[:, 0] < sides[:, 1]


def count_components(num_vertices: int, faces: np.ndarray) -> np.ndarray:
    """(F,) component label of each face (faces sharing a vertex are connected)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = len(faces)
    rows = np.repeat(np.arange(f), 3)
    graph = coo_matrix((np.ones(3 * f), (rows, faces.reshape(-1) + f)), shape=(f + num_vertices,) * 2)
    _, labels = connected_components(graph, directed=False)
    return labels[:f]


def vertex_fans(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3F,) fan label of every face corner (corners of one vertex in one fan share a label: consecutive faces
    around the vertex share an edge), and the (3F,) vertex of each corner."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    corner_vertex = faces.reshape(-1)
    edges, side_edge, _ = _edges_and_sides(faces)
    side_face = np.repeat(np.arange(len(faces)), 3)
    side_k = np.tile(np.arange(3), len(faces))
    # Each side f: (k -> k+1) joins the corners of both its end points with the other face on that edge.
    order = np.argsort(side_edge, kind="stable")
    se = side_edge[order]
    pair = np.nonzero(se[1:] == se[:-1])[0]  # consecutive sides of one edge
    a, b = order[pair], order[pair + 1]
    links = []
    for end_a in (0, 1):
        corner_a = 3 * side_face[a] + (side_k[a] + end_a) % 3
        vert = corner_vertex[corner_a]
        # the corner of the same vertex in face b
        fb = faces[side_face[b]]
        kb = np.argmax(fb == vert[:, None], axis=1)
        links.append(np.stack([corner_a, 3 * side_face[b] + kb], 1))
    links = np.concatenate(links) if links else np.zeros((0, 2), np.int64)
    n = 3 * len(faces)
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels, corner_vertex


def degenerate_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) bool: a repeated vertex, or (twice the) area below 1e-6 of the mean squared edge length."""
    tri = np.asarray(vertices, np.float64)[faces]
    area2 = 2.0 * face_areas_normals(vertices, faces)[0]
    scale = float(np.mean(np.sum((tri[:, 1] - tri[:, 0]) ** 2, 1))) if len(faces) else 1.0
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    return repeated | (area2 <= 1e-6 * scale)  # float32 rounding of a collinear triangle is ~1e-7


def _near_cells(vertices: np.ndarray, points: np.ndarray, cell: float) -> np.ndarray:
    """(V,) bool: the vertices in a grid cell (of width ``cell``) that is, or touches, a cell holding a point."""
    lo = vertices.min(0)

    def key(ijk: np.ndarray) -> np.ndarray:
        return (ijk[..., 0] * (1 << 21) + ijk[..., 1]) * (1 << 21) + ijk[..., 2]

    ends = np.floor((points - lo) / cell).astype(np.int64) + 1
    steps = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    occupied = np.unique(key(ends[:, None] + steps[None]))
    return np.isin(key(np.floor((vertices - lo) / cell).astype(np.int64) + 1), occupied)


def _longest_edge(vertices: np.ndarray, faces: np.ndarray) -> float:
    tri = vertices[faces]
    return float(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max())


def faces_near_edges(vertices: np.ndarray, faces: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Ids of the faces that could cross one of the (E, 2) ``edges``: those with a vertex in a grid cell next to an
    edge's end point, the cells as wide as the longest edge of the mesh plus the longest of ``edges``."""
    cell = _longest_edge(vertices, faces) + float(np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]],
                                                                  axis=1).max()) + 1e-12
    return np.nonzero(_near_cells(vertices, vertices[np.unique(edges)], cell)[faces].any(1))[0]


def retest_self_intersections(vertices: np.ndarray, faces: np.ndarray, inter: np.ndarray,
                              moved: np.ndarray) -> np.ndarray:
    """(F,) bool of the self-intersecting faces after the (V,) bool ``moved`` vertices moved, from ``inter`` before:
    every face with a vertex within two longest edges of a moved vertex is re-tested against every edge near it;
    the others cannot have changed. Equal to a full test (but for grazing contacts, which the ray casts may
    report either way), at the cost of the neighbourhood."""
    if not moved.any():
        return inter
    near = _near_cells(vertices, vertices[moved], 2.0 * _longest_edge(vertices, faces) + 1e-12)
    around = _near_cells(vertices, vertices[near], 2.0 * _longest_edge(vertices, faces) + 1e-12)
    return np.where(near[faces].any(1), self_intersecting_faces(vertices, faces, edge_subset=around), inter)


def self_intersecting_faces(vertices: np.ndarray, faces: np.ndarray,
                            edge_subset: np.ndarray | None = None) -> np.ndarray | None:
    """(F,) bool: faces that an edge of the mesh passes through, where the edge and the face share no vertex (both
    the crossed face and the faces of the crossing edge are marked). Every edge (or every edge with both ends in
    the (V,) bool ``edge_subset``) is cast as a ray segment against the mesh (Open3D/Embree), so this is
    O(F log F), unlike a pairwise test. None without open3d."""
    try:
        import open3d as o3d
    except Exception:
        return None
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    edges, side_edge, _ = _edges_and_sides(faces)
    ids = np.arange(len(edges)) if edge_subset is None else np.nonzero(edge_subset[edges].all(1))[0]
    out = np.zeros(len(faces), bool)
    if len(ids) == 0:
        return out
    e = edges[ids]
    near = np.arange(len(faces)) if edge_subset is None else faces_near_edges(v, faces, e)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(np.ascontiguousarray(faces[near], dtype=np.uint32)))
    rays = np.concatenate([v[e[:, 0]], v[e[:, 1]] - v[e[:, 0]]], 1).astype(np.float32)
    hits = scene.list_intersections(o3d.core.Tensor(rays))
    t = hits["t_hit"].numpy()
    ray = hits["ray_ids"].numpy().astype(np.int64)
    prim = near[hits["primitive_ids"].numpy().astype(np.int64)]
    inside = (t > 1e-4) & (t < 1 - 1e-4)  # on the segment, away from its end points
    ray, prim = ray[inside], prim[inside]
    touches = (faces[prim] == e[ray, 0:1]).any(1) | (faces[prim] == e[ray, 1:2]).any(1)
    ray, prim = ray[~touches], prim[~touches]
    out[prim] = True
    crossing_edge = np.zeros(len(edges), bool)
    crossing_edge[ids[ray]] = True
    out |= crossing_edge[side_edge].reshape(-1, 3).any(1)
    return out


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    tri = np.asarray(vertices, np.float64)[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def check_mesh(vertices: np.ndarray, faces: np.ndarray, self_intersections: bool = True) -> MeshCheck:
    """Measure (V, 3), (F, 3) against what a clean closed asset must be (see :class:`MeshCheck`)."""
    faces = np.asarray(faces, np.int64)
    if len(faces) == 0:
        return MeshCheck(0, 0, 0, 0, 0, 0, 0.0)
    _, side_edge, forward = _edges_and_sides(faces)
    count = np.bincount(side_edge)
    fwd = np.bincount(side_edge[forward], minlength=len(count))
    bad_edges = int(((count != 2) | (fwd != 1)).sum())
    labels, corner_vertex = vertex_fans(faces)
    fans = np.unique(np.stack([corner_vertex, labels], 1), axis=0)
    non_manifold = int((np.bincount(fans[:, 0]) > 1).sum())
    inter = self_intersecting_faces(vertices, faces) if self_intersections else None
    return MeshCheck(
        faces=len(faces), components=int(len(np.unique(count_components(len(vertices), faces)))),
        bad_edges=bad_edges, non_manifold_vertices=non_manifold,
        degenerate_faces=int(degenerate_faces(vertices, faces).sum()),
        self_intersecting_faces=-1 if inter is None else int(inter.sum()), volume=signed_volume(vertices, faces))


def largest_component_by_faces(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep the component with the most faces; returns vertices, faces (renumbered) and how many were dropped."""
    labels = count_components(len(vertices), faces)
    counts = np.bincount(labels)
    keep = faces[labels == int(np.argmax(counts))]
    used = np.unique(keep)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(vertices)[used], remap[keep], int((counts > 0).sum() - 1)


def split_pinched_vertices(vertices: np.ndarray, faces: np.ndarray,
                           offset: float = 0.02) -> tuple[np.ndarray, np.ndarray, int]:
    """Give every extra fan of a non-manifold vertex its own copy of the vertex, moved ``offset`` of the way to
    the centroid of that fan's faces (so the copies do not coincide). Returns vertices, faces, vertices split."""
    labels, corner_vertex = vertex_fans(faces)
    pairs, first = np.unique(np.stack([corner_vertex, labels], 1), axis=0, return_index=True)
    fans_per_vertex = np.bincount(pairs[:, 0], minlength=len(vertices))
    if not (fans_per_vertex > 1).any():
        return vertices, faces, 0
    # Per (vertex, fan) pair: the first fan of a vertex keeps the id, the others get new ids.
    is_first = np.ones(len(pairs), bool)
    is_first[1:] = pairs[1:, 0] != pairs[:-1, 0]
    new_ids = np.where(is_first, pairs[:, 0], len(vertices) + np.cumsum(~is_first) - 1)
    pair_of_corner = np.searchsorted(pairs[:, 0] * (labels.max() + 1) + pairs[:, 1],
                                     corner_vertex * (labels.max() + 1) + labels)
    new_faces = new_ids[pair_of_corner].reshape(-1, 3)
    extra = pairs[~is_first]
    centroid = np.zeros((len(pairs), 3))
    np.add.at(centroid, pair_of_corner, np.asarray(vertices, np.float64)[faces].mean(1).repeat(3, 0))
    centroid /= np.bincount(pair_of_corner, minlength=len(pairs))[:, None]
    v = np.asarray(vertices, np.float64)
    moved = v[extra[:, 0]] + offset * (centroid[~is_first] - v[extra[:, 0]])
    out_v = np.concatenate([v, moved]).astype(np.asarray(vertices).dtype)
    del first
    return out_v, new_faces, int((fans_per_vertex > 1).sum())


def smooth_self_intersections(vertices: np.ndarray, faces: np.ndarray, rounds: int = 10,
                              steps: int = 3) -> tuple[np.ndarray, int, int]:
    """Resolve self-intersections by Laplacian smoothing of the faces involved and their neighbourhood (grown by
    one ring, and ``steps`` more smoothing steps, per round). Between rounds only the edges near the smoothed region
    are re-tested; the count after is exact. Returns vertices, the self-intersecting faces before and after."""
    inter = self_intersecting_faces(vertices, faces)
    if inter is None:
        return vertices, -1, -1
    v, after = smooth_intersecting(vertices, faces, inter, rounds, steps)
    return v, int(inter.sum()), int(after.sum())


def smooth_intersecting(vertices: np.ndarray, faces: np.ndarray, inter: np.ndarray, rounds: int = 10,
                        steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """:func:`smooth_self_intersections` from the (F,) bool of intersecting faces (open3d is there); returns the
    vertices and the (F,) bool of the faces still intersecting (:func:`retest_self_intersections` around every
    vertex smoothed)."""
    from human3d.ops.mesh import directed_edges, grow_region, neighbour_mean

    v = np.asarray(vertices, np.float64).copy()
    src, dst = directed_edges(faces)
    mean_op = neighbour_mean(src, dst, len(v))

    def grow(region: np.ndarray, rings: int) -> np.ndarray:
        return grow_region(region, src, dst, rings)

    start, moved = inter, np.zeros(len(v), bool)
    for ring in range(1, rounds + 1):
        if not inter.any():
            break
        seed = np.zeros(len(v), bool)
        seed[faces[inter].reshape(-1)] = True
        region = grow(seed, ring)
        for _ in range(steps * ring):  # wider and stronger each round
            v[region] = 0.5 * v[region] + 0.5 * (mean_op @ v)[region]
        moved |= region
        inter = self_intersecting_faces(v, faces, edge_subset=grow(region, 2))
    return v.astype(np.asarray(vertices).dtype), retest_self_intersections(v, faces, start, moved)


def collapse_degenerate_faces(vertices: np.ndarray, faces: np.ndarray,
                              limit: int = 10_000) -> tuple[np.ndarray, np.ndarray, int]:
    """Collapse the shortest edge of each degenerate face (up to ``limit``; one at a time, so a few) to its
    midpoint, where the link condition keeps the mesh manifold. Returns vertices, faces and the collapses done."""
    v = np.asarray(vertices).copy()
    f = np.asarray(faces, np.int64).copy()
    done = 0
    for _ in range(limit):
        bad = np.nonzero(degenerate_faces(v, f))[0]
        if len(bad) == 0:
            break
        progress = False
        for face in bad[:64]:  # faces of one pass that are still there after the collapses before them
            if face >= len(f):
                continue
            tri = f[face]
            lengths = [np.linalg.norm(v[tri[k]] - v[tri[(k + 1) % 3]]) for k in range(3)]
            k = int(np.argmin(lengths))
            a, b = int(tri[k]), int(tri[(k + 1) % 3])
            ring_a = set(f[(f == a).any(1)].reshape(-1)) - {a}
            ring_b = set(f[(f == b).any(1)].reshape(-1)) - {b}
            if len(ring_a & ring_b) != 2:  # the link condition
                continue
            v[a] = 0.5 * (v[a] + v[b])
            f[f == b] = a
            f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
            done += 1
            progress = True
            break  # face ids changed: recompute
        if not progress:
            break
    return v, f, done


def clean_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """One clean closed mesh from a carved one: degenerate faces collapsed, pinched vertices split, then the largest component only (debris,
    inner shells and anything hanging on by a pinch go), faces wound outward, self-intersections resolved
    (interpenetrating parts pressed apart, the rest smoothed locally, crumpled patches re-filled:
    :func:`human3d.carve.contact.resolve_self_intersections`). Returns vertices, faces and counts of what was
    done."""
    faces = np.asarray(faces, np.int64)
    v, f, collapsed = collapse_degenerate_faces(vertices, faces)
    v, f, pinched = split_pinched_vertices(v, f)  # first: a pinch may be all that joins two pieces
    v, f, dropped = largest_component_by_faces(v, f)
    flipped = 0
    if signed_volume(v, f) < 0:
        f, flipped = f[:, ::-1].copy(), 1
    from human3d.carve.contact import resolve_self_intersections

    v, f, untangled = resolve_self_intersections(v, f)
    if untangled["crumples_filled"]:  # a fan over a nearly straight stretch of the loop can be a sliver
        v, f, refilled = collapse_degenerate_faces(v, f)
        collapsed += refilled
    return v, f, {"degenerate_faces_collapsed": collapsed, "components_removed": dropped, "pinched_vertices_split": pinched, "winding_flipped": flipped,
                  **untangled}


def largest_component(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected component with the most faces, with unused vertices dropped."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        mesh = max(parts, key=lambda m: len(m.faces))
    mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices, dtype=np.float32), np.asarray(mesh.faces, dtype=np.int64)


def marching_cubes_surface(field: np.ndarray, origin: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface 0 of ``field`` (X, Y, Z), negative inside, sampled at origin + spacing * index; counter-clockwise
    seen from outside, largest component, duplicate vertices merged."""
    import trimesh
    from skimage.measure import marching_cubes

    padded = np.pad(field, 1, constant_values=float(np.abs(field).max()) + 1.0)  # closes surfaces at the border
    verts, faces, _, _ = marching_cubes(padded, level=0.0, spacing=(spacing,) * 3)
    verts = verts + origin - spacing
    mesh = trimesh.Trimesh(verts, faces, process=True)  # merge duplicates, drop degenerate faces
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    v, f = largest_component(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    if trimesh.Trimesh(v, f, process=False).volume < 0:  # marching cubes' winding depends on the field's sign
        f = f[:, ::-1].copy()
    return v.astype(np.float32), f.astype(np.int64)


def make_watertight(vertices: np.ndarray, faces: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed manifold approximation of any triangle mesh: the 0 iso-surface of its signed distance on a grid
    of ``spacing`` (Open3D ray casting decides inside/outside), largest component."""
    try:
        import open3d as o3d
    except Exception as err:
        raise MissingBackendError("making the body mesh watertight needs open3d (pip install open3d==0.20.0)") from err
    v = np.asarray(vertices, dtype=np.float32)
    lo = v.min(0) - 3 * spacing
    hi = v.max(0) + 3 * spacing
    axes = [np.arange(lo[i], hi[i] + spacing, spacing, dtype=np.float32) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(np.asarray(faces, dtype=np.uint32)))
    sdf = scene.compute_signed_distance(o3d.core.Tensor(grid.reshape(-1, 3))).numpy().reshape(grid.shape[:3])
    return marching_cubes_surface(sdf, lo, spacing)


def poisson_cleanup(vertices: np.ndarray, faces: np.ndarray, depth: int = 8,
                    samples: int = 200_000, density_quantile: float = 0.01, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Screened Poisson reconstruction (Open3D) of points sampled on the mesh (Open3D's generator seeded with
    ``seed``, so one input gives one output); low-density vertices are trimmed and the largest component kept.
    Returns (V, 3) float32 and (F, 3) int64."""
    try:
        import open3d as o3d
    except Exception as err:
        raise MissingBackendError("Poisson clean-up needs open3d (pip install open3d==0.20.0); or set poisson "
                                  "to false") from err
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, dtype=np.float64)),
                                     o3d.utility.Vector3iVector(np.asarray(faces, dtype=np.int32)))
    mesh.compute_vertex_normals()
    o3d.utility.random.seed(int(seed))
    pcd = mesh.sample_points_uniformly(number_of_points=samples, use_triangle_normal=True)
    rec, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=depth, linear_fit=True)
    density = np.asarray(density)
    if density.size and density_quantile > 0:
        rec.remove_vertices_by_mask(density < np.quantile(density, density_quantile))
    return largest_component(np.asarray(rec.vertices), np.asarray(rec.triangles))


def icosphere(subdivisions: int = 3, radius: float = 1.0,
              center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """A closed icosphere, counter-clockwise from outside: (V, 3) float32, (F, 3) int64."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return (np.asarray(m.vertices) + np.asarray(center)).astype(np.float32), np.asarray(m.faces, dtype=np.int64)
