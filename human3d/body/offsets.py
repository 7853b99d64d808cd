"""Clothing and hair on the fitted body: per-vertex offsets along its normals, fitted to the person's silhouette.

A parametric body is a naked body: a costume, a hat, a baggy suit or big hair lie outside any of its shapes, and a
fit confined to the body model misses them in the photo's mask (a costumed child reached mask IoU 0.70). As in
SMPL+D (Alldieck et al., "Video Based Reconstruction of 3D People Models", CVPR 2018), the fitted body gets a
displacement of each vertex along its normal, after pose and shape are fitted and with them fixed:

- non-negative: clothes and hair lie outside the skin, so the offsets never carve into the body the model fitted;
- smooth: a graph-Laplacian penalty spreads an offset over its neighbourhood instead of letting single vertices spike;
- small where nothing asks for them: a penalty on their size keeps them zero where the silhouette is matched.

Only the front silhouette constrains them, so they grow where the outline is (sleeves, trouser legs, a hat's
tip); vertices seen face-on keep the smoothness-propagated offset of their neighbours. Joints, keypoints and the
model's parameters are untouched: the skeleton and the height are the body's, the surface is the clothed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from human3d.body.silhouette import SilhouetteTarget, silhouette_band, silhouette_loss
from human3d.ops.mesh import uniform_laplacian, vertex_normals


@dataclass
class OffsetSettings:
    """Knobs of :func:`fit_offsets` (the fit's :class:`~human3d.body.fit.FitSettings` carries them)."""

    steps: int = 30
    lr: float = 0.005
    """Adam step on the offsets, canonical units (the canvas spans 2)."""
    w_silhouette: float = 5.0
    w_smooth: float = 1.0
    """Weight of the squared uniform graph Laplacian of the offsets (sum over vertices)."""
    w_size: float = 0.01
    """Weight of the mean squared offset."""
    max_offset: float = 0.35
    """Largest offset, canonical units (about 30 cm on an adult): no garment or hairdo is thicker."""
    band_px: float = 6.0
    band_refresh: int = 10


def fit_offsets(vertices: np.ndarray, faces: np.ndarray, target: SilhouetteTarget,
                settings: OffsetSettings) -> np.ndarray:
    """(V,) non-negative offsets along the vertex normals of the posed body (V, 3) (canonical frame, faces (F, 3))
    that make its front silhouette match ``target``; see the module docstring."""
    n_v = len(vertices)
    dev = target.mask.device
    base = torch.as_tensor(vertices, dtype=torch.float32, device=dev)
    normal = torch.as_tensor(vertex_normals(vertices.astype(np.float64), faces), dtype=torch.float32, device=dev)
    faces_t = torch.as_tensor(faces, dtype=torch.int64, device=dev)
    offset = torch.zeros(n_v, device=dev, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=settings.lr)
    band = band_faces = None
    for step in range(max(int(settings.steps), 0)):
        xy = (base + offset[:, None] * normal)[:, :2]
        if band is None or step % settings.band_refresh == 0:
            band = silhouette_band(xy.detach().cpu().numpy(), faces, target, settings.band_px)
            band_faces = faces_t[band.faces]
        loss = settings.w_silhouette * silhouette_loss(xy, band_faces, target, band.weight)
        loss = loss + settings.w_smooth * (uniform_laplacian(offset[:, None], faces_t) ** 2).sum()
        loss = loss + settings.w_size * (offset ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # projected: clothes lie outside the skin, and none is thicker than the bound
            offset.clamp_(0.0, settings.max_offset)
    return offset.detach().cpu().numpy().astype(np.float64)
