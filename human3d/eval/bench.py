"""The benchmark protocol of DRPose (sec. 5): for every ground-truth mesh in a folder, render input photos from 3
evenly spaced azimuths, reconstruct each photo, score each reconstruction against the ground truth with
:mod:`human3d.eval.metrics`, and summarise per mesh and overall in the form of DRPose's Tables 1 and 2.

Frames: the ground truth is read in its own file frame (+Y up). The photo of azimuth ``a`` looks at it from direction
``(sin a, 0, cos a)``; its reconstruction comes back in that camera's frame (facing +Z, DESIGN.md §3), so the ground
truth is rotated into the same camera frame (``rotation_world_to_camera(a)``) before alignment and scoring. The
appearance views (metrics.EVAL_AZIMUTHS, 30 + 60k degrees in that frame) are then 30 degrees off every input view.

Resumable: each view's photo, reconstruction and scores are kept under ``out_dir/<mesh>/``; a rerun with the same
settings reuses them (a scores file carries a key of everything it depends on).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from human3d import __version__
from human3d.cameras import rotation_world_to_camera
from human3d.errors import BadInputError, Human3DError, InternalError, UsageError
from human3d.eval.metrics import EvalSettings, evaluate, json_safe, render_albedo
from human3d.io.digest import file_digest, json_digest
from human3d.types import TexturedMesh

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply")
#: Failures that concern the whole setup (weights, a package or a device missing or damaged, memory), not one mesh:
#: they stop the run.
FATAL = ("MissingWeightsError", "CorruptWeightsError", "MissingBackendError", "UsageError", "OutOfMemoryError")

#: reconstruct(photo, output_mesh, work_dir) -> info (timings, backends, warnings); writes ``output_mesh``.
ReconstructFn = Callable[[Path, Path, Path], dict[str, Any]]


@dataclass
class BenchSettings:
    """One benchmark run."""

    preset: str = "fast"
    """Reconstruction preset: fast | default | quality."""
    backend: str = "auto"
    """Multi-view backend: auto | prior | pshuman."""
    device: str = "auto"
    seed: int = 0
    weights_dir: str | None = None
    views: int = 3
    """Input photos per mesh, at azimuths 360 k / views (the paper: 3)."""
    photo_height: int = 768
    """Height of the input photos in pixels (portrait, 2:3)."""
    evaluation: EvalSettings = field(default_factory=EvalSettings)
    limit: int | None = None
    """Only the first N meshes (sorted by name)."""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Stage settings on top of the preset, e.g. ``{"carve": {"iterations": 20}}`` (a reduced run for tests)."""

    def input_azimuths(self) -> list[float]:
        return [360.0 * k / self.views for k in range(self.views)]


@dataclass
class ViewResult:
    azimuth: float
    status: str  # ok | failed
    scores: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    reused: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class MeshResult:
    name: str
    path: str
    views: list[ViewResult]

    def mean(self) -> dict[str, float | None]:
        return mean_scores([v.scores for v in self.views if v.status == "ok" and v.scores])


#: The columns of the tables: (label, key in a view's flattened scores, decimals).
TABLE1 = (("CD↓ (cm)", "chamfer_cm", 4), ("NC↑", "normal_consistency", 4), ("f-Score↑", "fscore", 4))
TABLE2 = (("PSNR↑", "psnr", 4), ("SSIM↑", "ssim", 4), ("LPIPS↓", "lpips", 4))
SUMMARY_KEYS = tuple(k for _, k, _ in TABLE1 + TABLE2)


def flat_scores(result: dict[str, Any]) -> dict[str, Any]:
    """The figures of the tables from an EvalResult dict."""
    g, a = result["geometry"], result.get("appearance") or {}
    return {"chamfer_cm": g["chamfer_cm"], "normal_consistency": g["normal_consistency"], "fscore": g["fscore"],
            "psnr": a.get("psnr"), "ssim": a.get("ssim"), "lpips": a.get("lpips")}


def mean_scores(scores: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per-key means over the given flat score dicts; None where no value exists; 'inf' PSNR stays inf."""
    out: dict[str, float | None] = {}
    for key in SUMMARY_KEYS:
        vals = [float(s[key]) for s in scores if s.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out


# -- inputs -------------------------------------------------------------------------------------------------------
def find_meshes(folder: Path) -> list[Path]:
    """Mesh files (GLB, glTF, OBJ, PLY) directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; give a folder of ground-truth meshes (GLB, OBJ or PLY)")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if not found:
        raise UsageError(f"no ground-truth meshes (.glb, .gltf, .obj, .ply) in {folder}")
    return found


def render_photo(mesh: TexturedMesh, azimuth: float, height: int = 768, renderer: str = "auto") -> np.ndarray:
    """An (H, 2H/3 or wider, 4) uint8 RGBA photo of ``mesh`` from ``azimuth``: colours with head-light shading, the
    person's height 85% of the frame, centred, transparent background (widened when a pose is wider than 2:3)."""
    if height < 64:
        raise UsageError("input photos need at least 64 pixels of height")
    v = np.asarray(mesh.vertices, np.float64)
    centre = 0.5 * (v.min(0) + v.max(0))
    vc = v - centre
    x_cam = vc @ rotation_world_to_camera(azimuth)[0]
    half_h = 0.5 * float(np.ptp(vc[:, 1])) / 0.85
    half_w = float(np.abs(x_cam).max()) / 0.85
    half = max(half_h, half_w, 1e-9)
    img, mask = render_albedo(mesh, vc, [azimuth], height, half, renderer, shade=True)
    rgba = np.concatenate([img[0], mask[0][..., None].astype(np.float32)], -1)
    rgba = np.clip(rgba * 255 + 0.5, 0, 255).astype(np.uint8)
    # crop the square render to a portrait frame, keeping every covered column plus a margin
    cols = np.nonzero(mask[0].any(0))[0]
    need = int(cols.max() - cols.min() + 1) if len(cols) else 0
    width = min(height, max(int(round(height * 2 / 3)), need + height // 16))
    x0 = (height - width) // 2
    return rgba[:, x0:x0 + width]


def view_frame_gt(mesh: TexturedMesh, azimuth: float) -> TexturedMesh:
    """The ground truth rotated into the camera frame of the photo taken from ``azimuth`` (what a reconstruction
    of that photo is in)."""
    rot = rotation_world_to_camera(azimuth)
    v = (np.asarray(mesh.vertices, np.float64) @ rot.T).astype(np.float32)
    return dataclasses.replace(mesh, vertices=v)


# -- reconstruction -----------------------------------------------------------------------------------------------
def pipeline_reconstructor(settings: BenchSettings, on_event: Callable[[Any], None] | None = None) -> ReconstructFn:
    """A ReconstructFn running :class:`human3d.pipeline.Reconstructor` with the settings' preset and backend."""
    from human3d.config import preset_config, set_config_value
    from human3d.pipeline import Reconstructor

    try:
        cfg = preset_config(settings.preset, device=settings.device, seed=settings.seed,
                            weights_dir=settings.weights_dir)
    except KeyError as err:
        raise UsageError(str(err.args[0])) from None
    cfg.multiview.backend = settings.backend
    cfg.export.format = "glb"
    for stage, values in settings.overrides.items():
        for key, value in values.items():
            set_config_value(cfg, f"{stage}.{key}", value)

    def run(photo: Path, output: Path, work_dir: Path) -> dict[str, Any]:
        res = Reconstructor(cfg, on_event=on_event).run(photo, output, work_dir=work_dir, overwrite=True)
        return {"timings": {k: round(v, 3) for k, v in res.timings.items()}, "backends": res.backends,
                "warnings": res.warnings}

    return run


# -- the run ------------------------------------------------------------------------------------------------------
class Benchmark:
    """Runs the protocol over a folder; ``reconstruct`` defaults to the pipeline with the settings' preset."""

    def __init__(self, settings: BenchSettings, reconstruct: ReconstructFn | None = None, lpips_model: Any = None,
                 lpips_note: str = "", on_message: Callable[[str], None] | None = None) -> None:
        for a in settings.input_azimuths():
            if any(math.isclose((a - e) % 360.0, 0.0, abs_tol=1e-6) or math.isclose((a - e) % 360.0, 360.0)
                   for e in settings.evaluation.azimuths):
                raise UsageError(f"input view {a:g} deg coincides with an evaluation view; the protocol needs them "
                                 "distinct (use --views 3)")
        self.settings = settings
        self.reconstruct = reconstruct or pipeline_reconstructor(settings)
        self.lpips_model, self.lpips_note = lpips_model, lpips_note
        self.on_message = on_message or (lambda m: None)

    def _keys(self, gt_path: Path) -> tuple[str, str]:
        s = self.settings
        recon = {"version": __version__, "gt": file_digest(gt_path)[:16], "preset": s.preset, "backend": s.backend,
                 "seed": s.seed, "photo_height": s.photo_height, "weights_dir": s.weights_dir,
                 "overrides": s.overrides}
        score = {"recon": recon, "eval": dataclasses.asdict(s.evaluation), "lpips": self.lpips_model is not None}
        return json_digest(recon)[:16], json_digest(score)[:16]

    def run_mesh(self, gt_path: Path, out_dir: Path) -> MeshResult:
        from human3d.io.atomic import atomic_write_bytes, atomic_write_text
        from human3d.io.meshes import png_bytes, read_mesh

        gt = read_mesh(gt_path)
        recon_key, score_key = self._keys(gt_path)
        item_dir = out_dir / gt_path.stem
        views: list[ViewResult] = []
        for az in self.settings.input_azimuths():
            vdir = item_dir / f"view_{az:03.0f}"
            vdir.mkdir(parents=True, exist_ok=True)
            scores_file, pred_path, key_file = vdir / "scores.json", vdir / "pred.glb", vdir / "recon_key.txt"
            if scores_file.is_file():
                saved = json.loads(scores_file.read_text())
                if saved.get("key") == score_key:
                    views.append(ViewResult(az, "ok", saved["scores"], seconds=saved.get("seconds", 0.0),
                                            reused=True, info=saved.get("info", {})))
                    self.on_message(f"{gt_path.name} @ {az:g} deg: reused")
                    continue
            t0 = time.perf_counter()
            info: dict[str, Any] = {}
            try:
                photo = vdir / "input.png"
                if not (pred_path.is_file() and key_file.is_file() and key_file.read_text().strip() == recon_key):
                    key_file.unlink(missing_ok=True)
                    atomic_write_bytes(photo, png_bytes(render_photo(gt, az, self.settings.photo_height)),
                                       overwrite=True)
                    info = self.reconstruct(photo, pred_path, vdir / "work")
                    if not pred_path.is_file():
                        raise InternalError(f"the reconstruction of {photo} wrote no mesh at {pred_path}")
                    key_file.write_text(recon_key)  # last: only a finished reconstruction is reused
                pred = read_mesh(pred_path)
                result = evaluate(pred, view_frame_gt(gt, az), self.settings.evaluation, self.lpips_model,
                                  self.lpips_note).to_dict()
            except Human3DError as err:
                if type(err).__name__ in FATAL:
                    raise
                views.append(ViewResult(az, "failed", error=str(err), seconds=time.perf_counter() - t0))
                self.on_message(f"{gt_path.name} @ {az:g} deg: failed: {err}")
                continue
            seconds = time.perf_counter() - t0
            scores = {**flat_scores(result), "detail": result}
            atomic_write_text(scores_file, json.dumps(json_safe({"key": score_key, "scores": scores,
                                                                 "seconds": seconds, "info": info}), indent=1),
                              overwrite=True)
            views.append(ViewResult(az, "ok", json.loads(json.dumps(json_safe(scores))), seconds=seconds, info=info))
            self.on_message(f"{gt_path.name} @ {az:g} deg: CD {scores['chamfer_cm']:.3f} cm ({seconds:.1f} s)")
        return MeshResult(gt_path.stem, str(gt_path), views)

    def run(self, folder: str | Path, out_dir: str | Path) -> dict[str, Any]:
        """Benchmark every mesh of ``folder``; writes ``results.json`` and ``results.md`` in ``out_dir`` and returns
        the summary dict (also holding the Markdown under 'markdown')."""
        from human3d.io.atomic import atomic_write_text

        meshes = find_meshes(Path(folder))
        if self.settings.limit is not None:
            meshes = meshes[: self.settings.limit]
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stems = [m.stem for m in meshes]
        if len(set(stems)) != len(stems):
            raise BadInputError("two ground-truth meshes share a name (e.g. a.obj and a.glb); rename one")
        results = [self.run_mesh(m, out) for m in meshes]
        summary = summarise(results, self.settings, self.lpips_note)
        atomic_write_text(out / "results.json", json.dumps(summary, indent=1), overwrite=True)
        atomic_write_text(out / "results.md", summary["markdown"], overwrite=True)
        return summary


def summarise(results: list[MeshResult], settings: BenchSettings, lpips_note: str = "") -> dict[str, Any]:
    """The JSON summary: settings, per mesh (views and mean), overall mean (over meshes), failures, Markdown."""
    per_mesh = [{"name": r.name, "path": r.path, "mean": r.mean(),
                 "views": [json_safe(dataclasses.asdict(v)) for v in r.views]} for r in results]
    scored = [m["mean"] for m in per_mesh if any(v is not None for v in m["mean"].values())]
    overall = mean_scores(scored)
    failed = sum(v.status == "failed" for r in results for v in r.views)
    summary = {
        "settings": json_safe(dataclasses.asdict(settings)),
        "protocol": {"input_azimuths": settings.input_azimuths(),
                     "eval_azimuths": list(settings.evaluation.azimuths)},
        "meshes": per_mesh, "mean": overall, "failed_views": failed,
        "lpips_note": lpips_note or None,
    }
    summary = json_safe(summary)
    summary["markdown"] = markdown_tables(per_mesh, overall, settings, lpips_note)
    return summary


def _fmt(value: Any, decimals: int) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return "inf" if math.isinf(value) else f"{value:.{decimals}f}"


def markdown_tables(per_mesh: list[dict[str, Any]], overall: dict[str, Any], settings: BenchSettings,
                    lpips_note: str = "") -> str:
    """DRPose's Table 1 (geometry) and Table 2 (appearance) for one benchmark: a row per mesh, then the mean."""
    e = settings.evaluation
    method = f"human3d {settings.backend}/{settings.preset}"
    lines: list[str] = []
    height = f"{e.gt_height_m:.2f} m" if e.gt_height_m else "its height"
    for title, cols, note in (
        ("Table 1: geometry", TABLE1,
         f"CD in cm after scaling the ground truth to {height}"
         f"; {e.n_points} points per surface; F-score at {e.threshold_cm:g} cm; alignment: {e.alignment}."),
        ("Table 2: appearance", TABLE2,
         f"{len(e.azimuths)} views at azimuths {', '.join(f'{a:g}' for a in e.azimuths)} deg, {e.resolution} px, "
         f"unlit albedo on white." + (f" {lpips_note}" if lpips_note else "")),
    ):
        lines += [f"### {title} ({method}, {settings.views} input views per mesh)", "",
                  "| Mesh | " + " | ".join(c for c, _, _ in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for m in per_mesh:
            lines.append(f"| {m['name']} | " + " | ".join(_fmt(m["mean"].get(k), d) for _, k, d in cols) + " |")
        lines.append("| **mean** | " + " | ".join(f"**{_fmt(overall.get(k), d)}**" for _, k, d in cols) + " |")
        lines += ["", note, ""]
    return "\n".join(lines)
