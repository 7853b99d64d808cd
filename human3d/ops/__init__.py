"""Small pure operations every stage shares (pytorch3d's habit: functions on arrays/tensors, shapes in docstrings,
each tested against a naive loop): :mod:`human3d.ops.mesh` (edge tables, normals, welding, Laplacians,
surface sampling), :mod:`human3d.ops.image` (bilinear/UV sampling, the normal-map codec) and
:mod:`human3d.ops.rotation` (the smallest rotation between two directions)."""
