"""Benchmark of ``--faces N`` and ``--normal-map`` on a surface with known normals.

The surface is a bumpy sphere (radius 1 + 0.06 sin(7x) cos(6y) over the unit sphere) tessellated finely, standing
in for a dense carved mesh. For each target count: seconds of the quadric decimation, triangles reached, seconds of
the UV unwrap and of the normal-map bake, and the mean angle between the shading normals and the analytic ones at
every texel: the decimated mesh's own smooth normals, then what a glTF viewer shows with the baked map.

    .venv/bin/python benchmarks/decimate.py
    .venv/bin/python benchmarks/decimate.py --subdivisions 7 --faces 40000 10000 5000 --size 2048
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _radius(d: np.ndarray) -> np.ndarray:
    return 1.0 + 0.06 * np.sin(7 * d[..., 0]) * np.cos(6 * d[..., 1])


def _true_normals(p: np.ndarray) -> np.ndarray:
    """The gradient of |p| - radius(p / |p|), by central differences."""
    h, grad = 1e-5, np.zeros_like(p)
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        f = [np.linalg.norm(q, axis=1) - _radius(_unit(q)) for q in (p + e, p - e)]
        grad[:, k] = (f[0] - f[1]) / (2 * h)
    return _unit(grad)


def _shown_normals(image, v, f, uv, n_v, size):
    """Per covered texel: (point, interpolated normal, normal a glTF viewer shows with the map)."""
    from human3d.texture.bake import rasterize_uv
    from human3d.texture.shading import vertex_tangents

    tangents = vertex_tangents(v, f, uv, n_v)
    tri_id, bary = rasterize_uv(uv, f, size)
    covered = tri_id >= 0
    corner, b = f[tri_id[covered]], bary[covered]
    p = np.einsum("kc,kcd->kd", b, v[corner])
    n = _unit(np.einsum("kc,kcd->kd", b, n_v[corner]))
    t = np.einsum("kc,kcd->kd", b, tangents[corner, :3])
    t = _unit(t - n * np.sum(t * n, 1, keepdims=True))
    bt = tangents[corner[:, 0], 3:] * np.cross(n, t)
    local = image[covered].astype(np.float64) / 255.0 * 2.0 - 1.0
    return p, n, _unit(t * local[:, :1] + bt * local[:, 1:2] + n * local[:, 2:])


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.sum(a * b, 1), -1, 1))).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subdivisions", type=int, default=6, help="icosphere level of the full mesh (6: 82k)")
    parser.add_argument("--faces", type=int, nargs="+", default=[20000, 5000, 1000])
    parser.add_argument("--size", type=int, default=1024, help="normal-map side in pixels")
    args = parser.parse_args()

    import trimesh

    from human3d.texture.bake import unwrap
    from human3d.texture.decimate import decimate
    from human3d.texture.normal_map import bake_normal_map
    from human3d.texture.shading import smooth_normals

    s = trimesh.creation.icosphere(subdivisions=args.subdivisions)
    d = _unit(np.asarray(s.vertices))
    full_v, full_f = (d * _radius(d)[:, None]).astype(np.float32), np.asarray(s.faces)
    print(f"full mesh: {len(full_f)} triangles; normal map {args.size} px")
    print("| --faces | triangles | decimate s | unwrap s | bake s | normal error, mesh deg | with the map deg |")
    print("|---|---|---|---|---|---|---|")
    for target in args.faces:
        t0 = time.perf_counter()
        v, f, _ = decimate(full_v, full_f, target)
        t1 = time.perf_counter()
        vmap, f2, uv = unwrap(v, f, args.size)
        v2 = v[vmap]
        n2 = smooth_normals(v2, f2)
        t2 = time.perf_counter()
        image = bake_normal_map(full_v, full_f, v2, f2, uv, n2, args.size)
        t3 = time.perf_counter()
        p, n, shown = _shown_normals(image, v2, f2, uv, n2, args.size)
        truth = _true_normals(p)
        print(f"| {target} | {len(f)} | {t1 - t0:.2f} | {t2 - t1:.2f} | {t3 - t2:.2f} | {_angle(n, truth):.2f} | "
              f"{_angle(shown, truth):.2f} |")


if __name__ == "__main__":
    main()
