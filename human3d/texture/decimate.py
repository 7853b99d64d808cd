"""``--faces N``: quadric decimation of the carved mesh to N triangles, before the UV unwrap (so the texture is
baked on the mesh that is exported)."""

from __future__ import annotations

import numpy as np

from human3d.errors import UsageError

MIN_FACES = 100
"""The smallest triangle count ``--faces`` accepts (fewer cannot describe a person)."""


def check_face_options(faces: int | None, normal_map: bool) -> None:
    """Refuse a triangle count that is not an integer >= MIN_FACES, a normal map without decimation, and
    decimation without open3d (:class:`~human3d.errors.MissingBackendError`)."""
    if faces is not None and (isinstance(faces, bool) or not isinstance(faces, (int, np.integer))
                              or faces < MIN_FACES):
        raise UsageError(f"--faces must be a whole number of at least {MIN_FACES} triangles (got {faces})")
    if normal_map and faces is None:
        raise UsageError("--normal-map bakes the full mesh's detail into a decimated one: give --faces N too")
    if faces is not None:  # asked for: refused before any work when its backend is absent
        from human3d.render.open3d_backend import import_open3d

        import_open3d("--faces (quadric decimation)")


def decimate(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(V, 3), (F, 3) -> ((V', 3) float32, (F', 3) int64 with F' = target, or target +- 1 on a closed mesh whose
    collapses remove two faces at a time, note or None).

    open3d's quadric error decimation (Garland & Heckbert 1997). A mesh with fewer triangles than ``target`` is
    first split at edge midpoints (the shape is unchanged, no detail is added) so the count can still be met; the
    note says so, and says when the result is not edge- and vertex-manifold (open3d does not guarantee it).
    """
    import trimesh

    from human3d.render.open3d_backend import import_open3d

    o3d = import_open3d("--faces (quadric decimation)")

    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    note = None
    if len(f) < target:
        note = (f"the carved mesh has {len(f)} triangles, fewer than --faces {target}: it was subdivided to reach "
                "the count (no detail added)")
        while len(f) < target:
            v, f = trimesh.remesh.subdivide(v, f)
    if len(f) > target:
        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32)))
        mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=int(target))
        mesh.remove_degenerate_triangles()
        mesh.remove_duplicated_triangles()
        mesh.remove_unreferenced_vertices()
        if not (mesh.is_edge_manifold(allow_boundary_edges=True) and mesh.is_vertex_manifold()):
            note = "; ".join(filter(None, [note, "the decimated mesh has non-manifold edges or vertices"]))
        v, f = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    return v.astype(np.float32), f.astype(np.int64), note
