"""Generated meshes for the evaluation tests: icospheres and a coloured person-like figure of capsules."""

from __future__ import annotations

import numpy as np

from human3d.types import TexturedMesh


def sphere(radius: float = 0.5, centre: tuple[float, float, float] = (0.0, 0.0, 0.0), subdivisions: int = 4,
           color: tuple[int, int, int] | None = None) -> TexturedMesh:
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    v = (np.asarray(s.vertices) + np.asarray(centre)).astype(np.float32)
    colors = None if color is None else np.tile(np.asarray(color, np.uint8), (len(v), 1))
    return TexturedMesh(vertices=v, faces=np.asarray(s.faces, np.int64), vertex_colors=colors)


def person(height: float = 1.7) -> TexturedMesh:
    """A standing figure facing +Z, feet on y = 0: legs, torso, arms (capsules) and a head, in three colours."""
    import trimesh

    h = height / 1.7
    parts = []  # (mesh, rgb)

    def capsule(radius: float, length: float, x: float, y0: float, colour: tuple[int, int, int]) -> None:
        c = trimesh.creation.capsule(height=length * h, radius=radius * h, count=[16, 16])
        c.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # z-axis capsule -> y
        c.apply_translation([x * h, y0 * h - c.bounds[0, 1], 0.0])  # its bottom at y0
        parts.append((c, colour))

    capsule(0.07, 0.72, -0.1, 0.0, (40, 50, 120))    # right leg (subject's right is -X)
    capsule(0.07, 0.72, 0.1, 0.0, (40, 50, 120))     # left leg
    capsule(0.17, 0.42, 0.0, 0.78, (200, 60, 50))    # torso
    capsule(0.05, 0.58, -0.26, 0.78, (200, 60, 50))  # arms hanging down
    capsule(0.05, 0.58, 0.26, 0.78, (200, 60, 50))
    head = trimesh.creation.icosphere(subdivisions=3, radius=0.11 * h)
    head.apply_translation([0.0, (1.7 - 0.11) * h, 0.0])
    parts.append((head, (230, 180, 150)))
    vertices, faces, colors, offset = [], [], [], 0
    for mesh, colour in parts:
        vertices.append(np.asarray(mesh.vertices))
        faces.append(np.asarray(mesh.faces) + offset)
        colors.append(np.tile(np.asarray(colour, np.uint8), (len(mesh.vertices), 1)))
        offset += len(mesh.vertices)
    v = np.concatenate(vertices).astype(np.float32)
    v[:, 1] -= v[:, 1].min()
    return TexturedMesh(vertices=v, faces=np.concatenate(faces).astype(np.int64),
                        vertex_colors=np.concatenate(colors), height_m=float(np.ptp(v[:, 1])))
