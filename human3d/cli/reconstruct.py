"""``human3d reconstruct``: one photo, several, a folder or a glob -> textured meshes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from human3d.cli.common import configure_logging, error_boundary
from human3d.cli.progress import ProgressReporter
from human3d.errors import OutputExistsError, UsageError


def reconstruct(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns (quote globs)."),
    output: Path | None = typer.Option(
        None, "-o", "--output",
        help="One input: the output file (or a folder). Several: the output folder. "
             "Default: <name>.<format> here, or ./human3d_output/ for several."),
    fmt: str | None = typer.Option(None, "--format", "-f", help="glb | obj | ply (default: from -o, else glb)."),
    preset: str = typer.Option("default", "--preset", "-p", help="fast | default | quality."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Keep every intermediate here; a rerun resumes from it."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed for every stochastic stage."),
    json_out: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Where model files are."),
    max_megapixels: float | None = typer.Option(
        None, "--max-megapixels", help="Downscale larger photos to this size instead of refusing them (> 50 MP)."),
    mask: Path | None = typer.Option(
        None, "--mask", help="A mask image for the (single) input: white = person."),
    segmenter: str = typer.Option("auto", "--segmenter", help="auto | alpha | mediapipe | rembg."),
    body_model: str = typer.Option("auto", "--body-model", help="auto | anny | smplx."),
    mv_backend: str = typer.Option("auto", "--mv-backend", help="auto | pshuman | prior."),
    unet: Path | None = typer.Option(None, "--unet", help="A DRPose-tuned UNet folder."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow pickle checkpoints (can run code)."),
    height: float | None = typer.Option(
        None, "--height", help="The person's height in metres, if known (default: estimated, else 1.70)."),
    preview: bool | None = typer.Option(
        None, "--preview/--no-preview",
        help="Write NAME_preview.png: the photo beside renders at 0, 90, 180 degrees (default: on for several "
             "inputs, into OUT/previews/; off for one, beside the output)."),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Several inputs: write OUT/report.html at the end (human3d report)."),
) -> None:
    """Reconstruct textured 3D meshes from photos of people."""
    run_reconstruct(**locals())


def run_reconstruct(
    inputs: list[str], output: Path | None, fmt: str | None, preset: str, overwrite: bool, work_dir: Path | None,
    device: str, seed: int, json_out: bool, quiet: bool, verbose: bool, debug: bool, weights_dir: Path | None,
    max_megapixels: float | None, mask: Path | None, segmenter: str, body_model: str, mv_backend: str,
    unet: Path | None, allow_pickle: bool, height: float | None, preview: bool | None = None, report: bool = True,
) -> None:
    from human3d.batch import expand_inputs, output_names, run_batch, sanitize_stem
    from human3d.config import preset_config, resolve_device
    from human3d.io.meshes import check_output_path, companion_files, format_from_path
    from human3d.io.previews import write_result_preview
    from human3d.pipeline import Reconstructor

    configure_logging(quiet, verbose)
    try:
        cfg = preset_config(preset, device=device, seed=seed, weights_dir=str(weights_dir) if weights_dir else None)
    except KeyError as err:
        raise UsageError(str(err.args[0])) from None
    resolve_device(device)  # fail early on --device cuda without a GPU
    if max_megapixels is not None and max_megapixels <= 0:
        raise UsageError("--max-megapixels must be positive")
    cfg.input.max_megapixels = max_megapixels
    cfg.segment.backend = segmenter
    if mask is not None:
        cfg.segment.backend, cfg.segment.mask_path = "mask", str(mask)
    cfg.body.model = body_model
    cfg.body.height_m = height
    cfg.multiview.backend = mv_backend
    cfg.multiview.unet_path = str(unet) if unet else None
    cfg.multiview.allow_pickle = allow_pickle

    expanded = expand_inputs(inputs)
    single = len(inputs) == 1 and len(expanded) == 1 and not Path(inputs[0]).is_dir()
    if not single and mask is not None:
        raise UsageError("--mask applies to a single input; run each masked photo on its own")

    if single:
        src = expanded[0]
        if output is not None and output.is_dir():
            fmt = fmt or "glb"
            dst = output / f"{sanitize_stem(src.stem)}.{fmt}"
        elif output is not None:
            fmt = format_from_path(output, fmt)
            dst = output
        else:
            fmt = fmt or "glb"
            dst = Path(f"{sanitize_stem(src.stem)}.{format_from_path(Path('x.' + fmt), fmt)}")
        check_output_path(dst, overwrite=overwrite, fmt=fmt)
        outputs, summary_path = [dst], None
    else:
        out_dir = output if output is not None else Path("human3d_output")
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"with several inputs -o must be a folder, and {out_dir} is a file")
        fmt = (fmt or "glb").lower()
        outputs = output_names(expanded, out_dir, fmt)
        out_dir.mkdir(parents=True, exist_ok=True)
        summary_path = out_dir / "summary.json"
    cfg.export.format = fmt
    previews = _preview_paths(outputs, single, preview, overwrite)
    details: dict[str, dict] = {}  # per output: what --json adds (files, preview, size of the mesh)

    with ProgressReporter(quiet=quiet, verbose=verbose) as reporter:
        def process(src: Path, dst: Path, item_work: Path | None):
            reporter.start_item("" if single else src.name)
            if dst in previews and previews[dst].exists() and not overwrite:
                raise OutputExistsError(f"{previews[dst]} already exists; pass --overwrite to replace it")
            rec = Reconstructor(cfg, on_event=reporter.event)
            res = rec.run(src, dst, work_dir=work_dir if single else item_work, overwrite=overwrite)
            if dst in previews:
                t0 = time.perf_counter()
                try:
                    write_result_preview(res, dst, previews[dst], overwrite=overwrite)
                except Exception as err:  # the mesh is written and good: a failed preview must not fail it
                    res.warnings.append(f"preview not written: {type(err).__name__}: {err}")
                res.timings["preview"] = time.perf_counter() - t0
            details[str(dst)] = _details(res, dst, fmt, previews.get(dst), work_dir if single else item_work)
            return res.warnings, {k: round(v, 3) for k, v in res.timings.items()}, res.backends

        def on_item(i: int, item) -> None:
            if single:
                return
            note = {"ok": f"-> {item.output} ({item.seconds:.1f} s)", "skipped": f"skipped: {item.error}",
                    "failed": f"failed: {item.error}"}[item.status]
            reporter.message(f"[{i + 1}/{len(outputs)}] {item.input}: {note}")

        summary = run_batch(expanded, outputs, process, summary_path=summary_path, fmt=fmt, overwrite=overwrite,
                            work_dir=work_dir, on_item=on_item, debug=debug, report=report and not single)

    report_path = None if single or not report else summary_path.parent / "report.html"
    if json_out:
        data = summary.to_dict()
        for item in data["items"]:
            dst = Path(item["output"])
            item.update(details.get(str(dst)) or {  # skipped (done before) or failed: what is on disk
                "files": [str(p) for p in companion_files(dst, fmt) if p.exists()] if dst.exists() else [],
                "preview": str(previews[dst]) if dst in previews and previews[dst].is_file() else None})
        if report_path is not None:
            data["report"] = str(report_path) if report_path.is_file() else None
        print(json.dumps(data, indent=2))
    if single:
        item = summary.items[0]
        if item.status == "failed":
            print(f"error: {item.error}", file=sys.stderr)
            raise typer.Exit(item.exit_code)
        if not quiet:
            print(f"wrote {item.output} ({item.seconds:.1f} s)", file=sys.stderr)
        return
    if not quiet:
        _print_table(summary)
        print(f"summary: {summary_path}", file=sys.stderr)
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
