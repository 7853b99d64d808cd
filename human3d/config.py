"""Configuration: one dataclass per stage, composed into :class:`ReconstructConfig`, and the presets.

Each stage owns its dataclass; fields carry attribute docstrings (they become help text). A config is plain data:
``dataclasses.asdict`` of a stage's config is part of the cache key of that stage in the work dir.
"""

from __future__ import annotations

import dataclasses
import json
import re
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
    person: int | None = None
    """Which of several people to reconstruct, 1-based, numbered left to right (mediapipe backend); None: the one
    the photo most likely is of (complete, central, large)."""
    snap_edges: bool = True
    """Snap mediapipe's mask to the photo's edges where it is unsure (:mod:`human3d.segment.edges`): a band along
    its outline and wherever its probability hesitated are decided by the photo's colours, when the background
    around the person is plain (elsewhere the mask stays as mediapipe gave it)."""
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
    """Optimisation steps of the fit (~0.03 s each on one CPU core; 300 measured no better than 200)."""
    clothing: bool = True
    """Fit clothing and hair as offsets along the body's normals (15% of the iterations, after the body), so the
    body's surface covers a costume, a hat or big hair in the mask; false keeps the body model's bare surface."""
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
    start: str = "auto"
    """The mesh carving starts from: body (the body fit, refined by a similarity transform), views (the closed mesh
    the views were rendered from, when the multi-view backend gives one: the embedded prior's proxy, which already
    has the silhouette's topology, a skirt bridging the legs) or auto (views when given, else body)."""
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
    flip_interval: int = 2
    """Flip edges in every this many remeshes (collapses and splits run in each). The reference flips in every one;
    every second one measured 15-20% less CPU per carve on the oracle subject with the same or better Chamfer,
    normal consistency and normal angle (every third one about the same again)."""
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
    """Decimation (optional), colour fusion, UV texture and normal map."""

    texture_size: int = 2048
    cos_power: float = 2.0
    """Exponent k of the |cos(normal, view)|^k weight."""
    padding: int = 4
    """Texels between UV charts (the texture is then dilated into every empty texel)."""
    front_from_photo: bool = True
    """Take the front view's colours from the input photo at full resolution."""
    renderer: str = "auto"
    """Visibility backend: auto | torch | open3d."""
    faces: int | None = None
    """Decimate the carved mesh to this many triangles (quadric decimation) before the UV unwrap; None keeps the
    carved mesh as it is."""
    normal_map: bool = False
    """Bake the full carved mesh's detail into a tangent-space normal map of the decimated mesh (needs faces)."""


@dataclass
class RigConfig:
    """Skeleton, skin, rest pose and clip of the GLB (human3d.rig)."""

    enabled: bool = True
    """Rig the GLB (OBJ and PLY are always static)."""
    rest_pose: str = "photo"
    """photo | a-pose | t-pose: the bind pose (photo keeps the photographed pose; the others unpose the mesh)."""
    animation: str = "none"
    """none | idle | walk | wave: a short procedural clip embedded in the GLB."""
    trust_distance_m: float = 0.05
    """A mesh vertex takes the body's weights at its closest body point only within this distance (metres)..."""
    trust_angle_deg: float = 35.0
    """...and when the two surfaces' normals differ by less than this; other vertices are inpainted."""
    max_influences: int = 4
    """Joints per vertex (glTF's JOINTS_0 holds 4)."""


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
    rig: RigConfig = field(default_factory=RigConfig)
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


#: A standing human's height range accepted by ``--height`` (metres).
HEIGHT_RANGE_M = (0.4, 2.8)
#: Seeds every stochastic stage accepts (numpy's legacy seeding is the narrowest: 32 bits).
SEED_MAX = 2**32 - 1


def validate_config(cfg: ReconstructConfig) -> None:
    """Refuse values no stage could use, before any stage runs (a UsageError names the option to fix)."""
    import math

    from human3d.errors import UsageError

    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= SEED_MAX:
        raise UsageError(f"--seed {cfg.seed} is out of range; use an integer from 0 to {SEED_MAX}")
    h = cfg.body.height_m
    if h is not None and not (math.isfinite(h) and HEIGHT_RANGE_M[0] <= h <= HEIGHT_RANGE_M[1]):
        raise UsageError(f"--height {h} is not a person's height in metres; give a value from "
                         f"{HEIGHT_RANGE_M[0]} to {HEIGHT_RANGE_M[1]} (e.g. 1.75), or leave it out")
    mp = cfg.input.max_megapixels
    if mp is not None and not (math.isfinite(mp) and mp > 0):
        raise UsageError(f"--max-megapixels {mp} must be a positive number (e.g. 24)")
    if cfg.input.min_side < 1:
        raise UsageError(f"input.min_side {cfg.input.min_side} must be at least 1")
    for name, value in (("frame.resolution", cfg.frame.resolution), ("multiview.resolution", cfg.multiview.resolution),
                        ("carve.resolution", cfg.carve.resolution), ("texture.texture_size", cfg.texture.texture_size)):
        if not 16 <= value <= 8192:
            raise UsageError(f"{name} {value} must be from 16 to 8192 pixels")


# -- the config tree as the user reaches it: --set PATH=VALUE, --config FILE (TOML), --print-config ---------------
def config_sections(cfg: ReconstructConfig) -> dict[str, Any]:
    """The stage sections of ``cfg`` by name (``{"input": InputConfig(...), ...}``)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if dataclasses.is_dataclass(getattr(cfg, f.name))}


def _field_type(owner: Any, name: str) -> Any:
    import typing

    hints = typing.get_type_hints(type(owner))
    if name not in hints:
        raise KeyError(name)
    return hints[name]


def _coerce_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{where} must be true or false, not {value!r}")


def _coerce_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{where} must be a whole number, not {value!r}")
    try:
        return int(value) if not isinstance(value, str) else int(value.strip())
    except ValueError:
        raise ValueError(f"{where} must be a whole number, not {value!r}") from None


def _coerce_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{where} must be a number, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number, not {value!r}") from None


def _coerce_str(value: Any, where: str) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"{where} must be text, not {value!r}")
    return str(value)


#: The plain field types and how text or a TOML value becomes each.
_SCALAR_COERCERS: dict[Any, Any] = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` (text from the command line, or a TOML value) as the field's type; ValueError when it is not."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        rest = [a for a in args if a is not type(None)]
        return _coerce(value, rest[0] if len(rest) == 1 else str, where)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where} must be one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        inner = args[0] if args else str
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, inner, where) for v in items)
    coerce = _SCALAR_COERCERS.get(annotation)
    return value if coerce is None else coerce(value, where)


def set_config_value(cfg: ReconstructConfig, path: str, value: Any) -> None:
    """Set ``section.field`` (or a top-level field such as ``seed``) from text or a typed value, converted to the
    field's declared type. Raises :class:`~human3d.errors.UsageError` naming the bad path or value."""
    from human3d.errors import UsageError

    parts = path.strip().split(".")
    owner: Any = cfg
    for part in parts[:-1]:
        sub = getattr(owner, part, None)
        if sub is None or not dataclasses.is_dataclass(sub):
            raise UsageError(f"unknown config section {part!r} in {path!r}; sections: "
                             f"{', '.join(config_sections(cfg))} (see --print-config)")
        owner = sub
    name = parts[-1]
    if not name or not dataclasses.is_dataclass(owner) or dataclasses.is_dataclass(getattr(owner, name, None)):
        raise UsageError(f"{path!r} is not a setting; use SECTION.FIELD, e.g. carve.iterations (see --print-config)")
    try:
        annotation = _field_type(owner, name)
    except KeyError:
        known = ", ".join(f.name for f in dataclasses.fields(owner))
        raise UsageError(f"unknown setting {path!r}; {'.'.join(parts[:-1]) or 'the top level'} has: {known}") \
            from None
    try:
        setattr(owner, name, _coerce(value, annotation, path))
    except ValueError as err:
        raise UsageError(str(err)) from None


def apply_settings(cfg: ReconstructConfig, items: list[str]) -> ReconstructConfig:
    """Apply ``--set`` items ``SECTION.FIELD=VALUE`` in order."""
    from human3d.errors import UsageError

    for item in items:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise UsageError(f"--set {item!r} must look like SECTION.FIELD=VALUE, e.g. carve.iterations=300")
        set_config_value(cfg, path, raw.strip())
    return cfg


def config_from_mapping(data: dict[str, Any], preset: str | None = None) -> ReconstructConfig:
    """A config from a nested mapping (a parsed TOML file): its preset (or ``preset``) first, then every value."""
    from human3d.errors import UsageError

    base = preset or data.get("preset", "default")
    try:
        cfg = preset_config(str(base))
    except KeyError as err:
        raise UsageError(str(err.args[0])) from None

    def walk(prefix: str, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(path + ".", value)
            elif path != "preset":
                set_config_value(cfg, path, value)

    walk("", data)
    return cfg


def load_config_file(path: str | Path, preset: str | None = None) -> ReconstructConfig:
    """Read a TOML config (as ``--print-config`` writes it; any subset of its keys is fine)."""
    import tomllib

    from human3d.errors import BadInputError, UsageError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except PermissionError:
        raise BadInputError(f"config file {path} cannot be read (permission denied)") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"config file {path} is not valid TOML ({err}); write it as --print-config does") \
            from None
    cfg = config_from_mapping(data, preset)
    for dotted in _unset_fields(text):
        set_config_value(cfg, dotted, None)
    return cfg


def _unset_fields(text: str) -> list[str]:
    """The fields a file marks ``# NAME = (unset)`` (how :func:`config_to_toml` writes None), as dotted paths."""
    section, out = "", []
    for line in text.splitlines():
        header = re.fullmatch(r"\s*\[([A-Za-z_][\w.]*)\]\s*", line)
        if header:
            section = header.group(1) + "."
            continue
        unset = re.fullmatch(r"\s*#\s*([A-Za-z_]\w*)\s*=\s*\(unset\)\s*", line)
        if unset:
            out.append(section + unset.group(1))
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string has JSON's escapes


def config_to_toml(cfg: ReconstructConfig) -> str:
    """The whole tree as TOML, loadable again by :func:`load_config_file` to the identical config. TOML has no
    null: an unset (None) field is written as the comment ``# NAME = (unset)``, which the reader honours."""
    lines = [f"# human3d {__import__('human3d').__version__} reconstruct config", ""]
    sections = config_sections(cfg)
    for f in dataclasses.fields(cfg):
        if f.name not in sections:
            value = getattr(cfg, f.name)
            lines.append(f"# {f.name} = (unset)" if value is None else f"{f.name} = {_toml_value(value)}")
    for name, section in sections.items():
        lines += ["", f"[{name}]"]
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            lines.append(f"# {f.name} = (unset)" if value is None else f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
