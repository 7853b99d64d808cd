"""Reconstructor: runs the stages in order, times each, reports progress events and caches each stage's result
in the work dir so that a rerun with the same input and config resumes instead of recomputing.

Stage contract: a stage is a function ``fn(*inputs, cfg, ctx) -> result`` where ``inputs`` are earlier stages'
results (see ``STAGES``), ``cfg`` its section of :class:`~human3d.config.ReconstructConfig` and ``ctx`` a
:class:`~human3d.context.StageContext`. Stage functions are imported lazily so that importing the package stays
cheap; a dependency missing from the install is reported by the stage's and the package's name (exit 4).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from human3d import __version__
from human3d.config import ReconstructConfig, resolve_device
from human3d.context import StageContext, log
from human3d.errors import BadInputError, Human3DError, InternalError, MissingBackendError
from human3d.io.digest import file_digest, json_digest
from human3d.types import BodyFit, Cutout, Framed, LoadedImage, Mesh, MultiView, StageResult, TexturedMesh


@dataclass(frozen=True)
class StageSpec:
    name: str
    target: str  # "module:function"
    inputs: tuple[str, ...]
    config: str  # attribute of ReconstructConfig
    result_type: type[StageResult]
    title: str


STAGES: tuple[StageSpec, ...] = (
    StageSpec("load", "human3d.io.images:load_image_stage", (), "input", LoadedImage, "load image"),
    StageSpec("segment", "human3d.segment:segment_person", ("load",), "segment", Cutout, "segment person"),
    StageSpec("frame", "human3d.frame:frame_cutout", ("segment",), "frame", Framed, "frame"),
    StageSpec("body", "human3d.body.fit:fit_body", ("frame",), "body", BodyFit, "fit body"),
    StageSpec("multiview", "human3d.multiview:generate_views", ("frame", "body"), "multiview", MultiView,
              "generate views"),
    StageSpec("carve", "human3d.carve.carve:carve_mesh", ("multiview", "body"), "carve", Mesh, "carve"),
    StageSpec("texture", "human3d.texture:texture_mesh", ("carve", "multiview"), "texture", TexturedMesh, "texture"),
    # skipped unless the export is a rigged GLB (see Reconstructor.run)
    StageSpec("rig", "human3d.rig:rig_mesh", ("texture", "body"), "rig", TexturedMesh, "rig"),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


@dataclass(frozen=True)
class ProgressEvent:
    """kind: 'start' | 'progress' | 'done' | 'cached'; fraction in [0, 1]; seconds set on 'done'/'cached'."""

    kind: str
    stage: str
    title: str
    fraction: float = 0.0
    message: str = ""
    seconds: float = 0.0


@dataclass
class ReconstructionResult:
    output: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    results: dict[str, StageResult] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)


#: Import names of human3d's dependencies that differ from the name pip installs them by.
_PIP_NAMES = {"PIL": "pillow", "skimage": "scikit-image"}


def resolve_stage(spec: StageSpec) -> Callable[..., StageResult]:
    """Import a stage's function. Every stage is part of human3d, so a module that does not import means a package
    missing from the install: a third-party one is a MissingBackendError that names what to install (exit 4), one
    of human3d's own an incomplete install (exit 5)."""
    module_name, func_name = spec.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        top = (err.name or module_name).split(".")[0]
        if top == "human3d":
            raise InternalError(f"the '{spec.title}' stage does not import ({err}): this human3d install is "
                                "incomplete; install it again (make install, or pip install -e .)") from err
        raise MissingBackendError(
            f"the '{spec.title}' stage needs the Python package '{_PIP_NAMES.get(top, top)}', which is not "
            "installed; install human3d with its dependencies (make install, or pip install -e .)") from err
    return getattr(module, func_name)


def _installed(*packages: str) -> dict[str, str | None]:
    """Installed version of each package (None when absent): an optional package changes what ``auto`` picks."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def resolve_environment(config: ReconstructConfig, device: str) -> dict[str, dict]:
    """Check every option no stage has run yet, and resolve what each stage's result depends on besides its
    config: the device, what ``auto`` becomes, the identity of the weights it may read and the packages' versions.

    Raises a :class:`~human3d.errors.UsageError` for a bad option, a MissingWeightsError/MissingBackendError for
    an explicitly asked backend that cannot run. The result is part of each stage's work-dir cache key.
    """
    from human3d import weights
    from human3d.body.models import MODEL_CHOICES
    from human3d.config import validate_config
    from human3d.errors import UsageError
    from human3d.multiview import BACKENDS as MV_BACKENDS
    from human3d.multiview import choose_backend as choose_mv
    from human3d.render import RENDERERS
    from human3d.segment.person import BACKENDS as SEGMENTERS

    validate_config(config)
    wdir = Path(config.weights_dir) if config.weights_dir else None
    seg, body, mv = config.segment, config.body, config.multiview
    choices = [("--segmenter", seg.backend, ("auto",) + SEGMENTERS), ("--body-model", body.model, MODEL_CHOICES),
               ("--mv-backend", mv.backend, MV_BACKENDS),
               ("--mv-dtype", mv.dtype, ("auto", "float32", "float16", "bfloat16")),
               ("--mv-masks", mv.mask_method, ("auto", "normals", "rembg")),
               ("carve.renderer", config.carve.renderer, RENDERERS),
               ("texture.renderer", config.texture.renderer, ("auto", "torch", "open3d"))]
    for flag, value, allowed in choices:
        if value not in allowed:
            raise UsageError(f"{flag} {value!r} is not known; use one of {', '.join(allowed)}")
    if wdir is not None and not wdir.is_dir():
        raise UsageError(f"--weights-dir {wdir} is not a folder; give the folder that holds the model files")
    if body.model == "smplx":
        weights.require("smplx", wdir)
    if mv.backend == "pshuman":
        weights.require("pshuman", wdir)
    if mv.unet_path is not None and not Path(mv.unet_path).exists():
        raise UsageError(f"--unet {mv.unet_path} does not exist; give a DRPose-tuned UNet folder")
    mv_backend = choose_mv(mv, StageContext(device=device, weights_dir=wdir))
    u2net = weights.identity("u2net", wdir)
    smplx_files = weights.identity("smplx", wdir)
    renderers = _installed("open3d", "nvdiffrast")
    return {
        "segment": {"u2net": u2net, "mask": weights.folder_identity(seg.mask_path),
                    **_installed("mediapipe", "rembg", "onnxruntime")},
        "body": {"smplx_files": smplx_files, **_installed("smplx", "anny")},
        "multiview": {"backend": mv_backend, "u2net": u2net, **_installed("rembg"),
                      "pshuman": weights.identity("pshuman", wdir) if mv_backend == "pshuman" else None,
                      "unet": weights.folder_identity(mv.unet_path) if mv_backend == "pshuman" else None,
                      **(_installed("diffusers", "transformers") if mv_backend == "pshuman" else {})},
        "carve": renderers,
        "texture": renderers,
    }


def result_schema(cls: type[StageResult]) -> list:
    """The field names and declared types of a result type, nested result types included. It is part of every
    cache key, so a work dir written before a stage's dataclass changed is recomputed instead of loading with
    defaults for what it lacks."""
    from human3d import types

    out: list = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        out.append([f.name, str(f.type)])
        for name in re.findall(r"[A-Za-z_]\w*", str(f.type)):
            nested = getattr(types, name, None)
            if isinstance(nested, type) and issubclass(nested, StageResult) and nested is not cls:
                out.append([f.name, result_schema(nested)])
    return out


def _input_digest(path: Path) -> str:
    """The photo's digest (the root of every cache key); an unreadable file is the user's to fix (exit 3)."""
    if not path.is_file():
        return str(path)  # the load stage says what is wrong with it
    try:
        return file_digest(path)
    except OSError as err:
        raise BadInputError(f"{path} cannot be read ({err.strerror or type(err).__name__}); check its permissions") \
            from None


class Reconstructor:
    """Runs the pipeline for one photo.

    >>> rec = Reconstructor(preset_config("fast"))
    >>> rec.run("photo.jpg", "out.glb")
    """

    def __init__(self, config: ReconstructConfig, on_event: Callable[[ProgressEvent], None] | None = None) -> None:
        self.config = config
        self.on_event = on_event or (lambda e: None)

    @property
    def rigged(self) -> bool:
        """Whether the run includes the rig stage: a GLB export with the rig enabled."""
        return self.config.rig.enabled and self.config.export.format == "glb"

    # -- helpers -------------------------------------------------------------------------------------------------
    def _emit(self, kind: str, spec: StageSpec, fraction: float = 0.0, message: str = "", seconds: float = 0.0):
        self.on_event(ProgressEvent(kind, spec.name, spec.title, fraction, message, seconds))

    def _stage_key(self, spec: StageSpec, upstream: str, device: str = "cpu", env: dict | None = None) -> str:
        section = getattr(self.config, spec.config)
        payload = {
            "version": __version__,
            "stage": spec.name,
            "config": dataclasses.asdict(section),
            "seed": self.config.seed,
            "device": device,
            "environment": (env or {}).get(spec.name),
            "upstream": upstream,
            "schema": result_schema(spec.result_type),
        }
        return json_digest(payload)

    @staticmethod
    def _try_load(spec: StageSpec, folder: Path, key: str) -> StageResult | None:
        key_file = folder / "key.txt"
        if not key_file.is_file() or key_file.read_text().strip() != key:
            return None
        try:
            return spec.result_type.load(folder)
        except Exception as err:  # a damaged cache is recomputed, never trusted
            log.warning("cached %s in %s could not be read (%s); recomputing", spec.name, folder, err)
            return None

    def _prepare(self, image_path: Path, output: str | Path | None, overwrite: bool,
                 work_dir: str | Path | None) -> tuple[str, dict[str, dict], Path | None]:
        """Every check before work: outputs, options, environment, the work dir -> (device, environment, work)."""
        from human3d.carve.carve import check_carve_config
        from human3d.io.atomic import check_writable_folder
        from human3d.io.meshes import check_output_path
        from human3d.texture.decimate import check_face_options

        inputs = tuple(Path(p) for p in (image_path, self.config.segment.mask_path) if p)
        if output is not None:
            check_output_path(Path(output), overwrite=overwrite, fmt=self.config.export.format, inputs=inputs)
        check_face_options(self.config.texture.faces, self.config.texture.normal_map)
        check_carve_config(self.config.carve)
        device = resolve_device(self.config.device)
        env = resolve_environment(self.config, device)
        if self.rigged:
            from human3d.rig import check_rig_config

            check_rig_config(self.config.rig)
        work = Path(work_dir) if work_dir else None
        if work is not None:
            check_writable_folder(work)
        return device, env, work

    def _compute(self, spec: StageSpec, image_path: Path, values: dict[str, StageResult], folder: Path | None,
                 device: str, result: ReconstructionResult) -> StageResult:
        """Run one stage on the results before it, with its own context; an unexpected error is an internal one."""
        fn = resolve_stage(spec)
        ctx = StageContext(
            device=device,
            seed=self.config.seed,
            weights_dir=Path(self.config.weights_dir) if self.config.weights_dir else None,
            stage_dir=folder if spec.inputs else None,  # the load stage writes nothing
            stage=spec.name,
            progress_fn=lambda stage, f, m: self._emit("progress", spec, f, m),
        )
        self._emit("start", spec)
        t0 = time.perf_counter()
        args = [values[i] for i in spec.inputs] if spec.inputs else [image_path]
        try:
            out = fn(*args, getattr(self.config, spec.config), ctx)
        except (Human3DError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as err:
            raise InternalError(
                f"internal error in stage '{spec.title}': {type(err).__name__}: {err} "
                "(rerun with --debug for the traceback and report it)"
            ) from err
        seconds = time.perf_counter() - t0
        result.timings[spec.name] = seconds
        result.warnings.extend(ctx.warnings)
        self._emit("done", spec, 1.0, seconds=seconds)
        return out

    @staticmethod
    def _save(out: StageResult, folder: Path, key: str) -> None:
        if folder.exists():
            (folder / "key.txt").unlink(missing_ok=True)
        out.save(folder)
        (folder / "key.txt").write_text(key)  # written last: only a complete result is resumed

    def _export(self, values: dict[str, StageResult], output: Path, overwrite: bool,
                result: ReconstructionResult) -> None:
        from human3d.io.meshes import export_mesh

        t0 = time.perf_counter()
        textured = values["rig"] if "rig" in values else values["texture"]
        assert isinstance(textured, TexturedMesh)
        if textured.facing_away:
            # seen from behind: the export's front (+Z) is the person's front, not the side the photo shows
            from human3d.rig import turn_around

            textured = dataclasses.replace(turn_around(textured), facing_away=False)
        export_mesh(textured, output, fmt=self.config.export.format, overwrite=overwrite)
        result.timings["export"] = time.perf_counter() - t0
        result.output = output

    # -- main ----------------------------------------------------------------------------------------------------
    def run(
        self,
        image_path: str | Path,
        output: str | Path | None = None,
        *,
        work_dir: str | Path | None = None,
        overwrite: bool = False,
        until: str | None = None,
    ) -> ReconstructionResult:
        """Reconstruct ``image_path`` and export to ``output`` (format from ``config.export.format``).

        ``until`` stops after that stage (no export). Raises :class:`~human3d.errors.Human3DError` subclasses for
        anything the user can fix.
        """
        image_path = Path(image_path)
        device, env, work = self._prepare(image_path, output, overwrite, work_dir)
        result = ReconstructionResult(output=None)
        key = _input_digest(image_path)
        values: dict[str, StageResult] = {}
        result.results = values
        for index, spec in enumerate(STAGES):
            if spec.name == "rig" and not self.rigged:
                continue
            folder = work / f"{index}_{spec.name}" if work else None
            key = self._stage_key(spec, key, device, env)  # each key covers every key before it
            cached = self._try_load(spec, folder, key) if folder else None
            if cached is not None:
                result.cached.append(spec.name)
                self._emit("cached", spec, 1.0)
            else:
                cached = self._compute(spec, image_path, values, folder, device, result)
                if folder is not None:
                    self._save(cached, folder, key)
            values[spec.name] = cached
            backend = getattr(cached, "backend", None) or getattr(cached, "model", None)
            if backend:
                result.backends[spec.name] = backend
            if until == spec.name:
                return result
        if output is not None:
            self._export(values, Path(output), overwrite, result)
        return result


def clear_work_dir(work_dir: Path) -> None:
    """Remove every cached stage under ``work_dir``."""
    for name in STAGE_NAMES:
        for p in work_dir.glob(f"*_{name}"):
            shutil.rmtree(p, ignore_errors=True)
