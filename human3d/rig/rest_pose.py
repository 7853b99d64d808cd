"""Standard rest poses (A-pose, T-pose) and unposing a skinned mesh into one (inverse then forward LBS).

A rest pose is the body model's zero pose with the arms straightened and raised to the horizontal (T) or 45 degrees
below it (A), the body upright and facing +Z. Unposing maps every mesh vertex through the blend of, per bone, the
photo pose's transform inverted and the rest pose's applied: ``x' = sum_j w_j R_j P_j^-1 x``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from human3d.ops.rotation import min_rotation
from human3d.rig.skeleton import FittedSkeleton, apply_points, pose_transforms, posed_joints

REST_POSES = ("photo", "a-pose", "t-pose")
#: Arm elevation of each standard pose (degrees above the horizontal).
ARM_ELEVATION_DEG = {"t-pose": 0.0, "a-pose": -45.0}


def standard_pose(skel: FittedSkeleton, rest_pose: str) -> dict[str, np.ndarray]:
    """Rotation vectors (articulated joint -> (3,)) of ``rest_pose`` for this skeleton's shape."""
    elevation = np.radians(ARM_ELEVATION_DEG[rest_pose])
    j0 = skel.rest_joints
    pose: dict[str, np.ndarray] = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        s, e, w = (skel.pivots[f"{side}_{k}"] for k in ("shoulder", "elbow", "wrist"))
        target = np.array([sign * np.cos(elevation), np.sin(elevation), 0.0])
        r_s = min_rotation(j0[e] - j0[s], target).as_matrix()
        # straighten the forearm along the upper arm
        r_e_world = min_rotation(r_s @ (j0[w] - j0[e]), target).as_matrix()
        pose[f"{side}_shoulder"] = Rotation.from_matrix(r_s).as_rotvec()
        pose[f"{side}_elbow"] = Rotation.from_matrix(r_s.T @ r_e_world @ r_s).as_rotvec()
    return pose


def rest_place(skel: FittedSkeleton) -> np.ndarray:
    """(4, 4) placement of a rest pose: the fit's scale, upright, the root where the fit put it."""
    place = np.eye(4)
    s = skel.scale
    place[:3, :3] = s * np.eye(3)
    place[:3, 3] = apply_points(skel.place, skel.rest_joints[:1])[0] - s * skel.rest_joints[0]
    return place


def unpose_transforms(skel: FittedSkeleton, rest_pose: str) -> tuple[np.ndarray, np.ndarray]:
    """Per bone, the (J, 4, 4) map from the photo pose to ``rest_pose`` (canonical frame), and the rest pose's
    (J, 3) joint positions."""
    photo = skel.place @ pose_transforms(skel, skel.pose)
    rest = rest_place(skel) @ pose_transforms(skel, standard_pose(skel, rest_pose))
    return rest @ np.linalg.inv(photo), posed_joints(skel, rest)


# ---------------------------------------------------------------------------------------------------------------
# Self-intersections (to report what unposing folded into the torso)

def _segments_hit_triangles(p0: np.ndarray, p1: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(N,) whether segment p0->p1 (N, 3) crosses triangle tri (N, 3, 3) (Moller-Trumbore, open intervals)."""
    d = p1 - p0
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    h = np.cross(d, e2)
    a = np.einsum("nd,nd->n", e1, h)
    ok = np.abs(a) > 1e-12
    f = np.where(ok, 1.0 / np.where(ok, a, 1.0), 0.0)
    s = p0 - tri[:, 0]
    u = f * np.einsum("nd,nd->n", s, h)
    q = np.cross(s, e1)
    v = f * np.einsum("nd,nd->n", d, q)
    t = f * np.einsum("nd,nd->n", e2, q)
    eps = 1e-9
    return ok & (u > eps) & (v > eps) & (u + v < 1 - eps) & (t > eps) & (t < 1 - eps)


def _candidate_pairs(tri: np.ndarray, face_mask: np.ndarray | None) -> np.ndarray:
    """(P, 2) pairs of triangles (F, 3, 3) whose bounding boxes share a cell of a uniform grid, at least one masked.

    The cell is twice the median triangle size, so a large triangle simply covers several cells."""
    lo, hi = tri.min(1), tri.max(1)
    cell = 2.0 * float(np.median((hi - lo).max(1))) + 1e-12
    c0 = np.floor(lo / cell).astype(np.int64)
    span = np.floor(hi / cell).astype(np.int64) - c0 + 1  # (F, 3) cells per axis
    count = span.prod(1)
    face = np.repeat(np.arange(len(tri)), count)
    k = np.arange(len(face)) - np.repeat(np.cumsum(count) - count, count)  # index of the cell within its box
    sx, sy = span[face, 0], span[face, 1]
    ijk = c0[face] + np.stack([k % sx, (k // sx) % sy, k // (sx * sy)], 1)
    ijk -= ijk.min(0)
    dims = ijk.max(0) + 1
    key = (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]
    order = np.argsort(key, kind="stable")
    key, face = key[order], face[order]
    pairs = []
    for d in range(1, len(key)):
        same = key[d:] == key[:-d]
        if not same.any():
            break
        pairs.append(np.stack([face[:-d][same], face[d:][same]], 1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    p = np.sort(np.concatenate(pairs), axis=1)
    n = len(tri)
    key = np.unique(p[:, 0] * n + p[:, 1])
    p = np.stack([key // n, key % n], 1)
    p = p[p[:, 0] != p[:, 1]]
    overlap = ((lo[p[:, 0]] <= hi[p[:, 1]]) & (lo[p[:, 1]] <= hi[p[:, 0]])).all(1)
    p = p[overlap]
    if face_mask is not None:
        p = p[face_mask[p[:, 0]] | face_mask[p[:, 1]]]
    return p


def self_intersections(vertices: np.ndarray, faces: np.ndarray, face_mask: np.ndarray | None = None,
                       chunk: int = 200_000) -> int:
    """Number of pairs of triangles that cross each other (pairs sharing a vertex are not counted); with
    ``face_mask`` (F,) bool, only pairs with at least one masked triangle."""
    tri = np.asarray(vertices, np.float64)[faces]
    pairs = _candidate_pairs(tri, face_mask)
    count = 0
    for start in range(0, len(pairs), chunk):
        p = pairs[start:start + chunk]
        p = p[~(faces[p[:, 0], :, None] == faces[p[:, 1], None, :]).any((1, 2))]
        a, b = tri[p[:, 0]], tri[p[:, 1]]
        hit = np.zeros(len(p), bool)
        for x, y in ((a, b), (b, a)):
            for i, j in ((0, 1), (1, 2), (2, 0)):
                hit |= _segments_hit_triangles(x[:, i], x[:, j], y)
        count += int(hit.sum())
    return count
