"""Mesh utilities of the carving stage: a watertight starting mesh, Poisson clean-up, simple shapes.

Continuous remeshing needs a closed, manifold, consistently oriented mesh; body-model meshes often are not (eyes,
separate parts, open seams). :func:`make_watertight` rebuilds such a mesh as an iso-surface of its signed distance
(Open3D ray casting + marching cubes), keeping the largest component.
"""

from __future__ import annotations

import numpy as np

from human3d.errors import MissingBackendError


def is_closed_manifold(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """True when every edge has exactly two faces, one running each way (closed, manifold, oriented)."""
    import torch

    from human3d.carve.remesh import build_topology

    if len(faces) == 0:
        return False
    topo = build_topology(torch.as_tensor(np.asarray(faces), dtype=torch.long), len(vertices))
    return bool(topo.interior_edge.all()) and not bool(topo.boundary_vertex.any())


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
                    samples: int = 200_000, density_quantile: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Screened Poisson reconstruction (Open3D) of points sampled on the mesh; low-density vertices are trimmed
    and the largest component kept. Returns (V, 3) float32 and (F, 3) int64."""
    try:
        import open3d as o3d
    except Exception as err:
        raise MissingBackendError("Poisson clean-up needs open3d (pip install open3d==0.20.0); or set poisson "
                                  "to false") from err
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, dtype=np.float64)),
                                     o3d.utility.Vector3iVector(np.asarray(faces, dtype=np.int32)))
    mesh.compute_vertex_normals()
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
