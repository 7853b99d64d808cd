"""Reconstructor: runs the stages in order, times each, reports progress events and caches each stage's result
in the work dir so that a rerun with the same input and config resumes instead of recomputing.

Stage contract: a stage is a function ``fn(*inputs, cfg, ctx) -> result`` where ``inputs`` are earlier stages'
results (see ``STAGES``), ``cfg`` its section of :class:`~human3d.config.ReconstructConfig` and ``ctx`` a
:class:`~human3d.context.StageContext`. Stage functions are imported lazily so that importing the package stays
cheap and a stage whose module is absent is reported by name (exit 4) instead of being faked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from human3d import __version__
from human3d.config import ReconstructConfig, resolve_device
from human3d.context import StageContext, log
from human3d.errors import Human3DError, InternalError, StageNotAvailableError
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
    StageSpec("texture", "human3d.texture:texture_mesh", ("carve", "multiview", "frame", "segment", "body"), "texture",
              TexturedMesh, "texture"),
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


def resolve_stage(spec: StageSpec) -> Callable[..., StageResult]:
    """Import a stage's function; a missing module is a missing stage, reported by name."""
    module_name, func_name = spec.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise StageNotAvailableError(
                f"the '{spec.title}' stage is not available in human3d {__version__} yet "
                f"({module_name} is missing)"
            ) from err
        raise
    fn = getattr(module, func_name, None)
    if fn is None:
        raise StageNotAvailableError(
            f"the '{spec.title}' stage is not available in human3d {__version__} yet ({spec.target} is missing)")
    return fn


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Reconstructor:
    """Runs the pipeline for one photo.

    >>> rec = Reconstructor(preset_config("fast"))
    >>> rec.run("photo.jpg", "out.glb")
    """

    def __init__(self, config: ReconstructConfig, on_event: Callable[[ProgressEvent], None] | None = None) -> None:
        self.config = config
        self.on_event = on_event or (lambda e: None)

    # -- helpers -------------------------------------------------------------------------------------------------
    def _emit(self, kind: str, spec: StageSpec, fraction: float = 0.0, message: str = "", seconds: float = 0.0):
        self.on_event(ProgressEvent(kind, spec.name, spec.title, fraction, message, seconds))

    def _stage_key(self, spec: StageSpec, upstream: str) -> str:
        section = getattr(self.config, spec.config)
        payload = {
            "version": __version__,
            "stage": spec.name,
            "config": dataclasses.asdict(section),
            "seed": self.config.seed,
            "upstream": upstream,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

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
        from human3d.io.meshes import check_output_path, export_mesh

        image_path = Path(image_path)
        if output is not None:
            check_output_path(Path(output), overwrite=overwrite)
        device = resolve_device(self.config.device)
        work = Path(work_dir) if work_dir else None
        result = ReconstructionResult(output=None)
        upstream = file_digest(image_path) if image_path.is_file() else str(image_path)
        values: dict[str, StageResult] = {}

        for index, spec in enumerate(STAGES):
            folder = work / f"{index}_{spec.name}" if work else None
            key = self._stage_key(spec, upstream)
            upstream = key
            cached = self._try_load(spec, folder, key) if folder else None
            if cached is not None:
                values[spec.name] = cached
                result.cached.append(spec.name)
                self._emit("cached", spec, 1.0)
            else:
                fn = resolve_stage(spec)
                ctx = StageContext(
                    device=device,
                    seed=self.config.seed,
                    weights_dir=Path(self.config.weights_dir) if self.config.weights_dir else None,
                    stage_dir=folder,
                    stage=spec.name,
                    progress_fn=lambda stage, f, m, spec=spec: self._emit("progress", spec, f, m),
                )
                if spec.name == "load":
                    ctx.stage_dir = None
                self._emit("start", spec)
                t0 = time.perf_counter()
                try:
                    out = fn(*(values[i] for i in spec.inputs), getattr(self.config, spec.config), ctx) \
                        if spec.inputs else fn(image_path, getattr(self.config, spec.config), ctx)
                except Human3DError:
                    raise
                except (MemoryError, KeyboardInterrupt):
                    raise
                except Exception as err:
                    raise InternalError(
                        f"internal error in stage '{spec.title}': {type(err).__name__}: {err} "
                        "(rerun with --debug for the traceback and report it)"
                    ) from err
                seconds = time.perf_counter() - t0
                result.timings[spec.name] = seconds
                result.warnings.extend(ctx.warnings)
                values[spec.name] = out
                if folder is not None:
                    if folder.exists():
                        (folder / "key.txt").unlink(missing_ok=True)
                    out.save(folder)
                    (folder / "key.txt").write_text(key)  # written last: only a complete result is resumed
                self._emit("done", spec, 1.0, seconds=seconds)
            backend = getattr(values[spec.name], "backend", None) or getattr(values[spec.name], "model", None)
            if backend:
                result.backends[spec.name] = backend
            if until == spec.name:
                result.results = values
                return result

        result.results = values
        if output is not None:
            t0 = time.perf_counter()
            textured = values["texture"]
            assert isinstance(textured, TexturedMesh)
            body = values.get("body")
            if isinstance(body, BodyFit) and body.report.get("facing") == "away":
                # seen from behind: the export's front (+Z) is the person's front, not the side the photo shows
                v = textured.vertices.copy()
                v[:, [0, 2]] *= -1.0
                textured = dataclasses.replace(textured, vertices=v)
            export_mesh(textured, Path(output), fmt=self.config.export.format, overwrite=overwrite)
            result.timings["export"] = time.perf_counter() - t0
            result.output = Path(output)
        return result


def clear_work_dir(work_dir: Path) -> None:
    """Remove every cached stage under ``work_dir``."""
    for name in STAGE_NAMES:
        for p in work_dir.glob(f"*_{name}"):
            shutil.rmtree(p, ignore_errors=True)
