"""What the prior's back and side colours by body region (:mod:`human3d.multiview.back_colors`) cost and cover, on
the work dirs of photos reconstructed with the embedded backend.

Per work dir (from ``human3d reconstruct PHOTO --work-dir DIR``, any preset; its framing, body fit, cutout and
carved mesh are read), in one process; seconds are CPU seconds of this single-threaded process, the least of
``--repeats`` (on a shared machine wall time mostly measures the others' load):

* the prior stage's seconds with its region colours and with the front colours alone;
* the texture stage's visibility renders and colour fusion (carved mesh vertices and the texels of a
  ``--texture-size`` UV layout) with the colour views the prior now gives and with the photo alone;
* the share of the carved mesh's vertices no coloured view sees (they get propagated colours), for the photo
  alone, the photo and the back, and the photo, back and sides.

The texture columns are only the parts of the texture stage that grow with the number of coloured views (one
visibility render and one fusion pass per view); the UV unwrap and texel rasterization do not change.

    .venv/bin/python benchmarks/region_colors.py /tmp/w1 /tmp/w2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _best(fn, repeats: int) -> float:
    """Least CPU seconds of this process over ``repeats`` calls (on a shared machine, wall time mostly measures
    the others' load; single-threaded work's CPU time is what it would take alone)."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def measure(folder: Path, resolution: int, texture_size: int, repeats: int) -> dict[str, float]:
    import human3d.multiview.prior as prior
    from human3d.config import MultiViewConfig
    from human3d.context import StageContext
    from human3d.multiview.back_colors import body_part_labels
    from human3d.texture import color_sources
    from human3d.texture.bake import rasterize_uv, unwrap, vertex_normals_np
    from human3d.texture.fuse import depth_maps, fuse_colors
    from human3d.types import BodyFit, Cutout, Framed, Mesh

    framed, body = Framed.load(folder / "2_frame"), BodyFit.load(folder / "3_body")
    cutout, mesh = Cutout.load(folder / "1_segment"), Mesh.load(folder / "5_carve")
    body.parts = body_part_labels(body, StageContext())  # a fit saved before it carried its parts
    cfg, region = MultiViewConfig(resolution=resolution), prior.prior_colors

    def front_only(photo, silhouette, body, masks, depths, ctx):
        colors = np.zeros(masks.shape + (3,), np.float32)
        colors[0] = photo
        return colors, np.array([1.0] + [0.0] * (len(masks) - 1), np.float32)

    views = prior.generate_prior_views(framed, body, cfg, StageContext())  # warm up the renderers
    out: dict[str, float] = {}
    for name, fn in (("prior_s", region), ("prior_front_only_s", front_only)):
        prior.prior_colors = fn
        out[name] = _best(lambda: prior.generate_prior_views(framed, body, cfg, StageContext()), repeats)
    prior.prior_colors = region
    v, f = mesh.vertices, mesh.faces
    n = vertex_normals_np(v, f)
    vmap, faces, uv = unwrap(v, f, texture_size)
    tri, bary = rasterize_uv(uv, faces, texture_size)
    corner = vmap[faces[tri[tri >= 0]]]
    texels = np.einsum("kc,kcd->kd", bary[tri >= 0], v[corner])
    tnormals = np.einsum("kc,kcd->kd", bary[tri >= 0], n[corner])
    tnormals /= np.maximum(np.linalg.norm(tnormals, axis=1, keepdims=True), 1e-12)
    sources = color_sources(views, framed, cutout)

    def fuse(k: int) -> None:
        depths = depth_maps(v, f, [s.camera for s in sources[:k]])
        fuse_colors(v, n, sources[:k], depths)
        fuse_colors(texels, tnormals, sources[:k], depths)

    out["texture_views_s"] = _best(lambda: fuse(len(sources)), repeats)
    out["texture_front_only_s"] = _best(lambda: fuse(1), repeats)
    out["coloured_views"] = len(sources)
    for name, weights in (("unseen_front_pct", (1, 0, 0, 0, 0, 0)), ("unseen_front_back_pct", (1, 0, 0, 0.5, 0, 0)),
                          ("unseen_pct", tuple(views.color_weights))):
        views.color_weights = np.asarray(weights, np.float32)
        src = color_sources(views, framed, cutout)
        _, w = fuse_colors(v, n, src, depth_maps(v, f, [s.camera for s in src]))
        out[name] = 100.0 * float((w == 0).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work_dirs", nargs="+", type=Path)
    parser.add_argument("--resolution", type=int, default=768, help="multi-view resolution (default preset: 768)")
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from human3d.context import torch_threads

    print(f"{'work dir':<36} {'prior s':>8} {'(front)':>8} {'added':>6} {'tex s':>7} {'(front)':>8} {'added':>6}"
          f" {'views':>5} {'unseen %: front':>16} {'+back':>6} {'+sides':>7}")
    with torch_threads(1):
        for folder in args.work_dirs:
            m = measure(folder, args.resolution, args.texture_size, args.repeats)
            print(f"{folder.name[:36]:<36} {m['prior_s']:8.2f} {m['prior_front_only_s']:8.2f} "
                  f"{m['prior_s'] - m['prior_front_only_s']:6.2f} {m['texture_views_s']:7.2f} "
                  f"{m['texture_front_only_s']:8.2f} {m['texture_views_s'] - m['texture_front_only_s']:6.2f} "
                  f"{m['coloured_views']:5d} {m['unseen_front_pct']:16.1f} {m['unseen_front_back_pct']:6.1f} "
                  f"{m['unseen_pct']:7.1f}")


if __name__ == "__main__":
    main()
