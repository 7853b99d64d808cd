"""numpy/scipy: rotations between directions, and frames from two directions."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation


def min_rotation(a: np.ndarray, b: np.ndarray) -> Rotation:
    """The smallest rotation turning direction ``a`` (3,) onto direction ``b`` (3,) (neither need be unit length):
    about ``a x b`` by the angle between them; the identity when they agree, a half turn about an axis
    perpendicular to ``a`` when they are opposite."""
    a = np.asarray(a, np.float64) / np.linalg.norm(a)
    b = np.asarray(b, np.float64) / np.linalg.norm(b)
    axis = np.cross(a, b)
    n = float(np.linalg.norm(axis))
    if n < 1e-9:
        if float(a @ b) > 0:
            return Rotation.identity()
        perp = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(perp / np.linalg.norm(perp) * math.pi)
    return Rotation.from_rotvec(axis / n * math.atan2(n, float(a @ b)))


def orthonormal_frame(primary: np.ndarray, secondary: np.ndarray, eps: float = 1e-9) -> np.ndarray | None:
    """(3, 3) right-handed orthonormal columns from two directions (3,): ``primary`` normalised, ``secondary`` made
    normal to it (Gram-Schmidt), then their cross product; None when either has less than ``eps`` length left."""
    p = np.asarray(primary, np.float64)
    if np.linalg.norm(p) < eps:
        return None
    p = p / np.linalg.norm(p)
    s = np.asarray(secondary, np.float64)
    s = s - (s @ p) * p
    if np.linalg.norm(s) < eps:
        return None
    s = s / np.linalg.norm(s)
    return np.stack([p, s, np.cross(p, s)], 1)
