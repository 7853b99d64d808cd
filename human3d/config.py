"""Configuration: one dataclass per stage, composed into :class:`ReconstructConfig`, and the presets.

Each stage owns its dataclass; fields carry attribute docstrings (they become help text). A config is plain data:
``dataclasses.asdict`` of a stage's config is part of the cache key of that stage in the work dir.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PRESETS = ("fast", "default", "quality")
Preset = Literal["fast", "default", "quality"]


@dataclass
class InputConfig:
    """Loading and validating the photo."""

    max_megapixels: float | None = None
    """Downscale larger photos to this many megapixels instead of refusing them (default: refuse above 50 MP)."""
    min_side: int = 64
    """Refuse photos whose short side is smaller than this many pixels."""


@dataclass
class SegmentConfig:
    """Person segmentation."""

    backend: str = "auto"
    """auto | alpha | mediapipe | rembg | mask. auto: the input's alpha when meaningful, else mediapipe."""
    mask_path: str | None = None
    """A user-supplied mask image (white = person); implies backend 'mask'."""
    rembg_model: str = "u2net"
    """rembg model name; its .onnx file is looked for in the weights dir."""
    threshold: float = 0.5
    """Probability above which a pixel is the person."""
    min_area_fraction: float = 0.005
    """A person mask smaller than this fraction of the image means 'no person found'."""
    max_hole_fraction: float = 0.01
    """Holes in the person mask smaller than this fraction of its area are filled; larger ones (e.g. between an
    arm on the hip and the body) are real background and kept."""


@dataclass
class FrameConfig:
    """Placing the cutout in the canonical canvas."""

    resolution: int = 768
    """Canvas side R in pixels."""
    crop_size: int = 740
    """The person's bounding-box long side, in pixels of a 768 canvas (scaled with R)."""


@dataclass
class BodyConfig:
    """Body estimation (landmarks and body-model fit)."""

    model: str = "auto"
    """auto | anny | smplx. auto prefers SMPL-X when its model files are present."""
    iterations: int = 200
    """Optimisation steps of the fit (~0.1 s each on one CPU core; 300 measured no better than 200)."""
    height_m: float | None = None
    """Known standing height in metres (default: estimated, 1.70 when unknown)."""
    threads: int = 1
    """torch CPU threads while fitting (its tensors are small: one thread avoids contention on a busy CPU, where
    two were measured several times slower); 0 keeps torch's setting."""


@dataclass
class MultiViewConfig:
    """Multi-view generation."""

    backend: str = "auto"
    """auto | pshuman | prior. auto picks pshuman when its weights are present (and a GPU is available)."""
    resolution: int = 768
    """Resolution of the generated views."""
    num_inference_steps: int = 40
    guidance_scale: float = 3.0
    unet_path: str | None = None
    """A DRPose-tuned UNet folder to use instead of the one in the PSHuman weights."""
    allow_pickle: bool = False
    """Allow loading pickle checkpoints (they can execute code); default: safetensors only."""
    dtype: str = "auto"
    """auto | float32 | float16 | bfloat16 (auto: float16 on CUDA, float32 on CPU)."""
    cpu_offload: bool = True
    """On CUDA, keep each model on the GPU only while it runs (fits a 24 GB GPU; a little slower)."""
    mask_method: str = "auto"
    """auto | normals | rembg: masks of the generated views (auto: rembg when its u2net file is present)."""
    face_view_weight: float = 0.0
    """Weight of the face view in carving/colour (PSHuman pastes its normals into the front view instead)."""


@dataclass
class CarveConfig:
    """Carving with continuous remeshing (human3d.carve)."""

    resolution: int = 384
    """Render resolution of the views during carving (targets are resampled to it)."""
    body_refine_steps: int = 60
    """Steps of the body refinement (a similarity transform of the body mesh) before carving; 0 skips it."""
    body_refine_resolution: int = 128
    """Render resolution of the body refinement."""
    iterations: int = 70
    """Carving iterations over all levels (each renders every view once and remeshes)."""
    coarse_levels: int = 2
    """Levels of the coarse-to-fine schedule below ``resolution``, each at half the resolution of the next."""
    coarse_fraction: float = 0.6
    """Fraction of the iterations spent on the coarse levels (shared equally); the rest run at ``resolution``."""
    edge_length_pixels: float = 1.5
    """Floor of the reference edge length in pixels of each level's render resolution (the canvas spans 2 units
    across R pixels, so a pixel is 2/R): the finest detail the views can carry sets the density."""
    edge_length_max: float = 0.08
    """Largest reference edge length, canonical units (the canvas spans 2)."""
    edge_length_range: float = 2.0
    """At each level the reference edge length stays within [floor, edge_length_range * floor] (and at most
    edge_length_max): no region ends coarser than the views justify, even where they disagree."""
    lr: float = 0.3
    """Step size in units of the local reference edge length."""
    laplacian_weight: float = 0.3
    """Weight of the Laplacian term (times the vertex's relative velocity: the reference method's form). The
    reference's 0.02 is tuned to its loss (a mean over 4 channels of 16 views that see everything); ours sums the
    3 normal channels over 6 views with hidden regions, and 0.3 measured best on the oracle subject (0.1 and 1.0
    both worse)."""
    normal_weight: float = 1.0
    """Weight of the L1 normal loss (inside the target masks)."""
    mask_weight: float = 1.0
    """Weight of the L1 mask loss."""
    remesh_interval: int = 1
    """Remesh every this many iterations."""
    max_vertices: int = 400_000
    """No more edge splits once the mesh has this many vertices (a memory guard)."""
    max_self_intersections: float = 0.001
    """Self-intersecting faces left after clean-up, as a fraction of the faces, above which carving warns."""
    poisson: bool = False
    """Poisson clean-up (open3d), keeping the largest component."""
    poisson_depth: int = 9
    """Octree depth of the Poisson reconstruction."""
    renderer: str = "auto"
    """auto | torch | open3d | nvdiffrast."""
    threads: int = 1
    """torch CPU threads while carving (its tensors are small, so one thread avoids contention); 0 keeps torch's
    setting."""


@dataclass
class TextureConfig:
    """Colour fusion and UV texture."""

    texture_size: int = 2048
    cos_power: float = 2.0
    """Exponent k of the |cos(normal, view)|^k weight."""
    padding: int = 4
    """Texels between UV charts (the texture is then dilated into every empty texel)."""
    front_from_photo: bool = True
    """Take the front view's colours from the input photo at full resolution."""
    renderer: str = "auto"
    """Visibility backend: auto | torch | open3d."""


@dataclass
class ExportConfig:
    """Writing the result."""

    format: str = "glb"
    """glb | obj | ply."""
    default_height_m: float = 1.70
    """Height used by the export transform when the body fit gives none."""


@dataclass
class ReconstructConfig:
    """One whole reconstruction."""

    preset: str = "default"
    device: str = "auto"
    """auto | cpu | cuda."""
    seed: int = 0
    weights_dir: str | None = None
    input: InputConfig = field(default_factory=InputConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    frame: FrameConfig = field(default_factory=FrameConfig)
    body: BodyConfig = field(default_factory=BodyConfig)
    multiview: MultiViewConfig = field(default_factory=MultiViewConfig)
    carve: CarveConfig = field(default_factory=CarveConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _apply(cfg: ReconstructConfig, overrides: dict[str, dict[str, Any]]) -> ReconstructConfig:
    for stage, values in overrides.items():
        sub = getattr(cfg, stage)
        for k, v in values.items():
            if not hasattr(sub, k):
                raise KeyError(f"{stage} has no setting {k!r}")
            setattr(sub, k, v)
    return cfg


#: What each preset changes relative to the defaults of the dataclasses.
PRESET_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {
        "frame": {"resolution": 512},
        "body": {"iterations": 120},
        "multiview": {"resolution": 512, "num_inference_steps": 20},
        "carve": {"resolution": 256, "body_refine_steps": 30, "iterations": 60, "edge_length_pixels": 2.0},
        "texture": {"texture_size": 1024},
    },
    "default": {},
    "quality": {
        "body": {"iterations": 600},
        "carve": {"resolution": 768, "iterations": 150, "coarse_levels": 3},
        "texture": {"texture_size": 4096},
    },
}


def preset_config(preset: str = "default", **top_level: Any) -> ReconstructConfig:
    """A :class:`ReconstructConfig` for ``preset`` with top-level fields (device, seed, ...) set."""
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = ReconstructConfig(preset=preset, **top_level)
    return _apply(cfg, PRESET_OVERRIDES[preset])


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is an error."""
    from human3d.errors import MissingBackendError, UsageError

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # torch is a core dependency, but keep device resolution honest without it
        has_cuda = False
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise MissingBackendError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return device


def weights_dir_path(cfg: ReconstructConfig) -> Path | None:
    return Path(cfg.weights_dir) if cfg.weights_dir else None
