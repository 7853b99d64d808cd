"""``human3d reconstruct``: one photo, several, a folder or a glob -> textured meshes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from human3d.cli.common import check_readable, configure_logging, error_boundary
from human3d.cli.progress import ProgressReporter
from human3d.errors import OutputExistsError, UsageError


def reconstruct(
    inputs: list[str] | None = typer.Argument(
        None, help="Image files, folders or glob patterns (quote globs)."),
    output: Path | None = typer.Option(
        None, "-o", "--output",
        help="One input: the output file (or a folder). Several: the output folder. "
             "Default: <name>.<format> here, or ./human3d_output/ for several."),
    fmt: str | None = typer.Option(
        None, "--format", "-f",
        help="glb | obj | ply (default: from -o, else glb). Only GLB is rigged and animated; OBJ and PLY are static."),
    preset: str | None = typer.Option(
        None, "--preset", "-p", help="fast | default | quality (default: the --config file's, else default)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Keep every intermediate here; a rerun resumes from it."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda (default: auto)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for every stochastic stage (default: 0)."),
    json_out: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Where model files are."),
    max_megapixels: float | None = typer.Option(
        None, "--max-megapixels", help="Downscale larger photos to this size instead of refusing them (> 50 MP)."),
    mask: Path | None = typer.Option(
        None, "--mask", help="A mask image for the (single) input: white = person."),
    segmenter: str | None = typer.Option(None, "--segmenter", help="auto | alpha | mediapipe | rembg."),
    body_model: str | None = typer.Option(None, "--body-model", help="auto | anny | smplx."),
    mv_backend: str | None = typer.Option(None, "--mv-backend", help="auto | pshuman | prior."),
    mv_dtype: str | None = typer.Option(
        None, "--mv-dtype", help="auto | float32 | float16 | bfloat16: precision of the diffusion model."),
    mv_masks: str | None = typer.Option(
        None, "--mv-masks", help="auto | normals | rembg: masks of the generated views."),
    unet: Path | None = typer.Option(None, "--unet", help="A DRPose-tuned UNet folder."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow pickle checkpoints (can run code)."),
    height: float | None = typer.Option(
        None, "--height", help="The person's height in metres, if known (default: estimated, else 1.70)."),
    config_file: Path | None = typer.Option(
        None, "--config", help="A TOML config file (as --print-config writes it; any subset of its keys)."),
    settings: list[str] = typer.Option(
        [], "--set", help="Any setting of the config tree, SECTION.FIELD=VALUE (repeatable; applied last), "
                          "e.g. --set carve.iterations=300."),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the resolved config tree as TOML and exit (loadable with --config)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Local worker processes for a batch (torch threads are split)."),
    executor: str = typer.Option("local", "--executor", help="local | ray: where a batch's photos are computed."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="A running Ray cluster, e.g. 10.0.0.5:6379 (default: start a local one)."),
    ray_cpus_per_task: float | None = typer.Option(
        None, "--ray-cpus-per-task", help="CPUs per Ray task (default: 1; 2 with --mv-backend pshuman)."),
    ray_gpus_per_task: float | None = typer.Option(
        None, "--ray-gpus-per-task", help="GPUs per Ray task (default: 1 with --mv-backend pshuman, else 0)."),
    ray_storage: str = typer.Option(
        "shared", "--ray-storage", help="shared: workers write into the output folder (shared storage); driver: "
                                        "results come back to this machine, which writes them."),
    preview: bool | None = typer.Option(
        None, "--preview/--no-preview",
        help="Write NAME_preview.png: the photo beside renders at 0, 90, 180 degrees (default: on for several "
             "inputs, into OUT/previews/; off for one, beside the output)."),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Several inputs: write OUT/report.html at the end (human3d report)."),
    rig: bool | None = typer.Option(
        None, "--rig/--no-rig", help="GLB: a skeleton (humanoid bone map) and skin weights from the body fit "
                                     "(default: on)."),
    rest_pose: str | None = typer.Option(
        None, "--rest-pose", help="photo | a-pose | t-pose: the GLB's bind pose (a/t-pose unpose the mesh)."),
    animation: str | None = typer.Option(
        None, "--animation", help="none | idle | walk | wave: a short clip in the GLB (needs the rig)."),
    faces: int | None = typer.Option(
        None, "--faces", help="Decimate the mesh to this many triangles (at least 100) before texturing."),
    normal_map: bool | None = typer.Option(
        None, "--normal-map", help="With --faces: bake the full mesh's detail into a normal map (GLB, OBJ)."),
    person: int | None = typer.Option(
        None, "--person", help="Which of several people to reconstruct, numbered left to right (see human3d people; "
                               "default: the most complete, central and large)."),
) -> None:
    """Reconstruct textured 3D meshes from photos of people.

    Settings resolve in this order: the preset, the --config file, the dedicated flags, then each --set.
    """
    run_reconstruct(**locals())


def build_config(
    preset: str | None = None, config_file: Path | None = None, settings: list[str] | tuple[str, ...] = (), *,
    device: str | None = None, seed: int | None = None, weights_dir: Path | None = None,
    max_megapixels: float | None = None, mask: Path | None = None, segmenter: str | None = None,
    body_model: str | None = None, mv_backend: str | None = None, unet: Path | None = None,
    allow_pickle: bool = False, height: float | None = None, mv_dtype: str | None = None,
    mv_masks: str | None = None, rig: bool | None = None, rest_pose: str | None = None, animation: str | None = None,
    faces: int | None = None, normal_map: bool | None = None, person: int | None = None,
):
    """The :class:`~human3d.config.ReconstructConfig` the command line asks for: preset, then the config file,
    then the dedicated flags that were given, then ``--set`` items."""
    from human3d.config import apply_settings, load_config_file, preset_config, set_config_value

    try:
        cfg = load_config_file(config_file, preset) if config_file else preset_config(preset or "default")
    except KeyError as err:
        raise UsageError(str(err.args[0])) from None
    flags = {
        "device": device, "seed": seed, "weights_dir": str(weights_dir) if weights_dir else None,
        "input.max_megapixels": max_megapixels, "segment.backend": segmenter, "body.model": body_model,
        "body.height_m": height, "multiview.backend": mv_backend, "multiview.unet_path": str(unet) if unet else None,
        "multiview.allow_pickle": True if allow_pickle else None, "multiview.dtype": mv_dtype,
        "multiview.mask_method": mv_masks, "rig.enabled": rig, "rig.rest_pose": rest_pose, "rig.animation": animation,
        "texture.faces": faces, "texture.normal_map": normal_map or None, "segment.person": person,
    }
    if mask is not None:
        flags.update({"segment.backend": "mask", "segment.mask_path": str(mask)})
    for path, value in flags.items():
        if value is not None:
            set_config_value(cfg, path, value)
    apply_settings(cfg, list(settings))
    if cfg.segment.person is not None:
        if cfg.segment.person < 1:
            raise UsageError(f"--person {cfg.segment.person}: people are numbered from 1 (left to right)")
        if cfg.segment.mask_path is not None:
            raise UsageError("--person and --mask both choose the person; drop one of them")
        if cfg.segment.backend == "auto":
            cfg.segment.backend = "mediapipe"  # the photo's own alpha would decide otherwise
    return cfg


def run_reconstruct(
    inputs: list[str] | None, output: Path | None, fmt: str | None, preset: str | None, overwrite: bool,
    work_dir: Path | None, device: str | None, seed: int | None, json_out: bool, quiet: bool, verbose: bool,
    debug: bool, weights_dir: Path | None, max_megapixels: float | None, mask: Path | None, segmenter: str | None,
    body_model: str | None, mv_backend: str | None, unet: Path | None, allow_pickle: bool, height: float | None,
    mv_dtype: str | None = None, mv_masks: str | None = None, config_file: Path | None = None,
    settings: list[str] | tuple[str, ...] = (), print_config: bool = False, jobs: int = 1, executor: str = "local",
    ray_address: str | None = None, ray_cpus_per_task: float | None = None, ray_gpus_per_task: float | None = None,
    ray_storage: str = "shared", preview: bool | None = None, report: bool = True, rig: bool | None = None,
    rest_pose: str | None = None, animation: str | None = None, faces: int | None = None,
    normal_map: bool | None = None, person: int | None = None,
) -> None:
    from human3d.config import config_to_toml, resolve_device, set_config_value
    from human3d.executors import ExecutorSettings
    from human3d.io.atomic import check_writable_folder
    from human3d.pipeline import resolve_environment

    configure_logging(quiet, verbose)
    _check_flag_pairs(fmt, mask, segmenter)
    cfg = build_config(preset, config_file, settings, device=device, seed=seed, weights_dir=weights_dir,
                       max_megapixels=max_megapixels, mask=mask, segmenter=segmenter, body_model=body_model,
                       mv_backend=mv_backend, unet=unet, allow_pickle=allow_pickle, height=height,
                       mv_dtype=mv_dtype, mv_masks=mv_masks, rig=rig, rest_pose=rest_pose, animation=animation,
                       faces=faces, normal_map=normal_map, person=person)
    if fmt is not None:
        set_config_value(cfg, "export.format", fmt.lower())
    if print_config:
        sys.stdout.write(config_to_toml(cfg))
        return
    if not inputs:
        raise UsageError("no input given: name image files, folders or globs (or use --print-config)")
    clip_or_pose = _check_settings(cfg)
    spread = ExecutorSettings(executor=executor, jobs=jobs, ray_address=ray_address,
                              ray_cpus_per_task=ray_cpus_per_task, ray_gpus_per_task=ray_gpus_per_task,
                              storage=ray_storage)
    spread.validate()
    plan = _plan_outputs(inputs, output, fmt, cfg.export.format, mask, overwrite)
    if work_dir is not None:
        check_writable_folder(work_dir)
    cfg.export.format = plan.fmt
    if plan.fmt != "glb" and clip_or_pose:
        raise UsageError(f"--animation and --rest-pose need a GLB output; {plan.fmt.upper()} is static")
    # names of backends, devices and the weights they need: resolved (what `auto` becomes) before any stage runs
    resolve_environment(cfg, resolve_device(cfg.device))
    previews = _preview_paths(plan.outputs, plan.single, preview, overwrite)
    if cfg.texture.normal_map and plan.fmt == "ply":
        raise UsageError("--normal-map needs a textured format: use .glb or .obj (PLY carries vertex colours only)")

    with ProgressReporter(quiet=quiet, verbose=verbose) as reporter:
        runner = _ItemRunner(cfg, plan, previews, reporter, overwrite=overwrite, work_dir=work_dir)
        summary = runner.run_all(spread, debug=debug, report=report)
    report_path = None if plan.single or not report else plan.summary_path.parent / "report.html"
    if json_out:
        print(json.dumps(_json_summary(summary, runner.details, previews, plan.fmt, report_path), indent=2))
    _finish(summary, plan, report_path, quiet)


def _check_flag_pairs(fmt: str | None, mask: Path | None, segmenter: str | None) -> None:
    """Flags that cannot go together, refused before the config is built."""
    from human3d.io.meshes import FORMATS

    if fmt is not None and fmt.lower() not in FORMATS:
        raise UsageError(f"--format {fmt} is not known; use one of {', '.join(FORMATS)}")
    if mask is not None and segmenter not in (None, "auto", "mask"):
        raise UsageError(f"--mask was given together with --segmenter {segmenter}; drop one of them")


def _check_settings(cfg) -> bool:
    """Every setting of the resolved tree checked before work; returns whether a clip or a rest pose is asked
    (both need the rig and a GLB)."""
    from human3d.carve.carve import check_carve_config
    from human3d.config import validate_config
    from human3d.rig import check_rig_config
    from human3d.texture.decimate import check_face_options

    validate_config(cfg)
    check_carve_config(cfg.carve)
    check_face_options(cfg.texture.faces, cfg.texture.normal_map)
    check_rig_config(cfg.rig)
    clip_or_pose = cfg.rig.animation != "none" or cfg.rig.rest_pose != "photo"
    if not cfg.rig.enabled and clip_or_pose:
        raise UsageError("--animation and --rest-pose need the rig; drop --no-rig")
    return clip_or_pose


@dataclass
class _Plan:
    """The inputs, where each one's result goes, and the format of the results."""

    expanded: list[Path]
    outputs: list[Path]
    summary_path: Path | None
    """None for a single input; else OUT/summary.json."""
    fmt: str
    single: bool


def _plan_outputs(inputs: list[str], output: Path | None, fmt: str | None, default_fmt: str, mask: Path | None,
                  overwrite: bool) -> _Plan:
    """The inputs expanded and the output of each, checked: no output replaces an input (or the mask), an existing
    single output needs ``overwrite``, a batch's folder must be writable (it is created)."""
    from human3d.batch import expand_inputs, output_names
    from human3d.io.atomic import check_writable_folder
    from human3d.io.meshes import check_output_path

    expanded = expand_inputs(inputs)
    single = len(inputs) == 1 and len(expanded) == 1 and not Path(inputs[0]).is_dir()
    if not single and mask is not None:
        raise UsageError("--mask applies to a single input; run each masked photo on its own")
    if mask is not None:
        check_readable(mask, "mask")
    given = tuple(expanded) + ((mask,) if mask is not None else ())
    if single:
        src = expanded[0]
        dst, fmt = _single_output(src, output, fmt, default_fmt)
        check_output_path(dst, overwrite=overwrite, fmt=fmt, inputs=given)
        if src.exists():
            check_readable(src, "input")
        return _Plan(expanded, [dst], None, fmt, True)
    out_dir = output if output is not None else Path("human3d_output")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"with several inputs -o must be a folder, and {out_dir} is a file")
    fmt = (fmt or default_fmt).lower()
    outputs = output_names(expanded, out_dir, fmt)
    for dst in outputs:  # an existing output is skipped (resume), but an input is never replaced
        check_output_path(dst, overwrite=True, fmt=fmt, inputs=given)
    check_writable_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _Plan(expanded, outputs, out_dir / "summary.json", fmt, False)


def _single_output(src: Path, output: Path | None, fmt: str | None, default_fmt: str) -> tuple[Path, str]:
    """(output file, format) of a single input: ``-o`` as the file, or a folder to put NAME.FORMAT in, or
    NAME.FORMAT here."""
    from human3d.batch import sanitize_stem
    from human3d.io.meshes import format_from_path

    if output is not None and output.is_dir():
        fmt = fmt or default_fmt
        return output / f"{sanitize_stem(src.stem)}.{fmt}", fmt
    if output is not None:
        return output, format_from_path(output, fmt)
    fmt = fmt or default_fmt
    return Path(f"{sanitize_stem(src.stem)}.{format_from_path(Path('x.' + fmt), fmt)}"), fmt


class _ItemRunner:
    """Runs the batch for the command line: each input through a :class:`~human3d.pipeline.Reconstructor` here
    (or a picklable task in other processes or machines), with progress and the details ``--json`` adds."""

    def __init__(self, cfg, plan: _Plan, previews: dict[Path, Path], reporter: ProgressReporter, *,
                 overwrite: bool, work_dir: Path | None) -> None:
        self.cfg, self.plan, self.previews, self.reporter = cfg, plan, previews, reporter
        self.overwrite, self.work_dir = overwrite, work_dir
        self.details: dict[str, dict] = {}  # per output: what --json adds (files, preview, size of the mesh)

    def process(self, src: Path, dst: Path, item_work: Path | None):
        """One input here: its warnings, per-stage seconds and backends (the batch's ``ProcessFn``)."""
        from human3d.io.previews import add_result_preview
        from human3d.pipeline import Reconstructor

        single, previews = self.plan.single, self.previews
        self.reporter.start_item("" if single else src.name)
        if dst in previews and previews[dst].exists() and not self.overwrite:
            raise OutputExistsError(f"{previews[dst]} already exists; pass --overwrite to replace it")
        work = self.work_dir if single else item_work
        rec = Reconstructor(self.cfg, on_event=self.reporter.event)
        res = rec.run(src, dst, work_dir=work, overwrite=self.overwrite)
        if dst in previews:
            add_result_preview(res, dst, previews[dst], overwrite=self.overwrite)
        self.details[str(dst)] = _details(res, dst, self.plan.fmt, previews.get(dst), work)
        return res.warnings, {k: round(v, 3) for k, v in res.timings.items()}, res.backends

    def on_item(self, i: int, item) -> None:
        from human3d.batch import worker_id

        if self.plan.single:
            return
        note = {"ok": f"-> {item.output} ({item.seconds:.1f} s)", "skipped": f"skipped: {item.error}",
                "failed": f"failed: {item.error}"}[item.status]
        if item.worker and item.worker != worker_id():
            note += f" (by worker {item.worker})"
        self.reporter.message(f"[{i + 1}/{len(self.plan.outputs)}] {item.input}: {note}")

    def run_all(self, spread, *, debug: bool, report: bool):
        from human3d.batch import run_batch
        from human3d.executors import ReconstructTask

        plan = self.plan
        common = {"summary_path": plan.summary_path, "fmt": plan.fmt, "overwrite": self.overwrite,
                  "work_dir": self.work_dir, "on_item": self.on_item, "debug": debug}
        if plan.single or (spread.executor == "local" and spread.jobs == 1):
            return run_batch(plan.expanded, plan.outputs, self.process, report=report and not plan.single, **common)
        # other processes or machines: a picklable task; progress arrives as messages
        task = ReconstructTask(self.cfg, self.overwrite, preview=bool(self.previews))
        return run_batch(plan.expanded, plan.outputs, task, report=report, executor_settings=spread,
                         on_message=self.reporter.message, **common)


def _json_summary(summary, details: dict[str, dict], previews: dict[Path, Path], fmt: str,
                  report_path: Path | None) -> dict:
    """``--json``: the summary, each item with its files, preview and mesh details (for an input computed
    elsewhere, skipped or failed: what is on disk), and the report."""
    from human3d.io.meshes import companion_files

    data = summary.to_dict()
    for item in data["items"]:
        dst = Path(item["output"])
        item.update(details.get(str(dst)) or {  # skipped (done before) or failed: what is on disk
            "files": [str(p) for p in companion_files(dst, fmt) if p.exists()] if dst.exists() else [],
            "preview": str(previews[dst]) if dst in previews and previews[dst].is_file() else None})
    if report_path is not None:
        data["report"] = str(report_path) if report_path.is_file() else None
    return data


def _finish(summary, plan: _Plan, report_path: Path | None, quiet: bool) -> None:
    """The closing lines on stderr and the exit status: a single input's error or output, a batch's table."""
    if plan.single:
        item = summary.items[0]
        if item.status == "failed":
            print(f"error: {item.error}", file=sys.stderr)
            raise typer.Exit(item.exit_code)
        if not quiet:
            print(f"wrote {item.output} ({item.seconds:.1f} s)", file=sys.stderr)
        return
    if not quiet:
        _print_table(summary)
        print(f"summary: {plan.summary_path}", file=sys.stderr)
        if report_path is not None and report_path.is_file():
            print(f"report: {report_path}", file=sys.stderr)
    raise typer.Exit(summary.exit_code)


def _print_table(summary) -> None:
    from rich.table import Table

    from human3d.cli.common import stderr_console

    table = Table(title="human3d batch")
    for col in ("input", "status", "output", "seconds", "error"):
        table.add_column(col)
    for it in summary.items:
        table.add_row(it.input, it.status, it.output or "", f"{it.seconds:.1f}", it.error or "")
    console = stderr_console()
    console.print(table)
    c = summary.counts
    console.print(f"{c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed")


def _preview_paths(outputs: list[Path], single: bool, preview: bool | None, overwrite: bool) -> dict[Path, Path]:
    """output -> its preview PNG: beside a single output (with --preview), in OUT/previews/ for a batch (unless
    --no-preview). A single input's existing preview is refused before any work."""
    from human3d.io.previews import preview_path

    if not (preview if preview is not None else not single):
        return {}
    if single:
        dst = outputs[0]
        if preview_path(dst).exists() and not overwrite:
            raise OutputExistsError(f"{preview_path(dst)} already exists; pass --overwrite to replace it")
        return {dst: preview_path(dst)}
    return {dst: preview_path(dst, dst.parent / "previews") for dst in outputs}


def _details(res, dst: Path, fmt: str, preview: Path | None, work: Path | None) -> dict:
    """What scripts need about one result beyond the summary: every file written, the preview, the contact sheet
    (with a work dir), the mesh's size and its height in metres."""
    import numpy as np

    from human3d.io.meshes import companion_files
    from human3d.pipeline import STAGE_NAMES

    mesh = res.results["texture"]
    y = np.asarray(mesh.vertices)[:, 1]
    extent = mesh.canonical_height or float(np.ptp(y)) or 1.0
    sheet = work / f"{STAGE_NAMES.index('multiview')}_multiview" / "contact_sheet.png" if work else None
    return {
        "files": [str(p) for p in companion_files(dst, fmt) if p.exists()],
        "preview": str(preview) if preview is not None and preview.is_file() else None,
        "contact_sheet": str(sheet) if sheet is not None and sheet.is_file() else None,
        "triangles": int(len(mesh.faces)),
        "vertices": int(len(mesh.vertices)),
        "height_m": round(float(mesh.height_m), 4),
        "mesh_height_m": round(float(np.ptp(y)) * float(mesh.height_m) / extent, 4),
    }


def register(app: typer.Typer) -> None:
    app.command("reconstruct")(error_boundary(reconstruct))
