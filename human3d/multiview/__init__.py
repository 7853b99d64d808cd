"""The multi-view stage: six body views plus a face view (normals, colours, masks) of the framed person.

Backends (``cfg.backend``): ``pshuman`` runs PSHuman's multi-view diffusion (:mod:`human3d.multiview.pshuman`);
``prior`` renders views from the fitted body and the input silhouette (:mod:`human3d.multiview.prior`, embedded,
no weights); ``auto`` picks pshuman when its weights are present and the stage runs on a CUDA device, else prior.
Heavy modules are imported only when their backend runs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging

from human3d.config import MultiViewConfig
from human3d.context import StageContext
from human3d.errors import MissingBackendError, UsageError
from human3d.types import BodyFit, Framed, MultiView

log = logging.getLogger("human3d")

BACKENDS = ("auto", "pshuman", "prior")


#: What the pshuman backend imports beyond the core dependencies (the ``diffusion`` extra).
DIFFUSION_PACKAGES = ("diffusers", "transformers")


def missing_diffusion_packages() -> list[str]:
    """The packages of :data:`DIFFUSION_PACKAGES` that are not installed (found without importing them)."""
    return [name for name in DIFFUSION_PACKAGES if importlib.util.find_spec(name) is None]


def choose_backend(cfg: MultiViewConfig, ctx: StageContext) -> str:
    """The backend ``cfg.backend`` resolves to (auto: pshuman with weights, a GPU and diffusers, else prior);
    pshuman asked for without diffusers is a MissingBackendError that says what to install."""
    if cfg.backend not in BACKENDS:
        raise UsageError(f"unknown multi-view backend {cfg.backend!r}; use one of {', '.join(BACKENDS)}")
    missing = missing_diffusion_packages() if cfg.backend != "prior" else []
    if cfg.backend == "pshuman" and missing:
        raise MissingBackendError(f"the pshuman multi-view backend needs {' and '.join(missing)}, which "
                                  f"{'is' if len(missing) == 1 else 'are'} not installed: pip install "
                                  "'human3d[diffusion]' (or use --mv-backend prior)")
    if cfg.backend != "auto":
        return cfg.backend
    from human3d import weights

    if weights.locate("pshuman", ctx.weights_dir) is None:
        log.info("multi-view backend: prior (no PSHuman weights found; `human3d weights download pshuman`)")
        return "prior"
    if not ctx.device.startswith("cuda"):
        log.info("multi-view backend: prior (PSHuman weights found, but the diffusion model needs a CUDA GPU "
                 "to run in reasonable time; --mv-backend pshuman forces it)")
        return "prior"
    if missing:
        log.info("multi-view backend: prior (PSHuman weights and a CUDA GPU found, but %s not installed: "
                 "pip install 'human3d[diffusion]')", " and ".join(missing))
        return "prior"
    log.info("multi-view backend: pshuman")
    return "pshuman"


def generate_views(framed: Framed, body: BodyFit, cfg: MultiViewConfig, ctx: StageContext) -> MultiView:
    """The pipeline stage: framed photo + body fit -> :class:`MultiView` (backend chosen by :func:`choose_backend`),
    carrying the full-resolution front photo forward for colour fusion."""
    return dataclasses.replace(_backend_views(framed, body, cfg, ctx), photo=framed.photo)


def _backend_views(framed: Framed, body: BodyFit, cfg: MultiViewConfig, ctx: StageContext) -> MultiView:
    backend = choose_backend(cfg, ctx)
    if backend == "pshuman":
        from human3d.multiview.pshuman import generate_pshuman_views

        return generate_pshuman_views(framed, body, cfg, ctx)
    from human3d.multiview.prior import generate_prior_views

    return generate_prior_views(framed, body, cfg, ctx)
