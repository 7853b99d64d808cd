"""``human3d reconstruct``: one photo, several, a folder or a glob -> textured meshes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from human3d.cli.common import configure_logging, error_boundary
from human3d.cli.progress import ProgressReporter
from human3d.errors import UsageError


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
    person: int | None = typer.Option(
        None, "--person", help="Which of several people to reconstruct, numbered left to right (see human3d people; "
                               "default: the most complete, central and large)."),
) -> None:
    """Reconstruct textured 3D meshes from photos of people."""
    run_reconstruct(**locals())


def run_reconstruct(
    inputs: list[str], output: Path | None, fmt: str | None, preset: str, overwrite: bool, work_dir: Path | None,
    device: str, seed: int, json_out: bool, quiet: bool, verbose: bool, debug: bool, weights_dir: Path | None,
    max_megapixels: float | None, mask: Path | None, segmenter: str, body_model: str, mv_backend: str,
    unet: Path | None, allow_pickle: bool, height: float | None, person: int | None = None,
) -> None:
    from human3d.batch import expand_inputs, output_names, run_batch, sanitize_stem
    from human3d.config import preset_config, resolve_device
    from human3d.io.meshes import check_output_path, format_from_path
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
    if person is not None:
        if person < 1:
            raise UsageError(f"--person {person}: people are numbered from 1 (left to right)")
        if mask is not None:
            raise UsageError("--person and --mask both choose the person; drop one of them")
        cfg.segment.person = person
        if segmenter == "auto":
            cfg.segment.backend = "mediapipe"  # the photo's own alpha would decide otherwise
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

    with ProgressReporter(quiet=quiet, verbose=verbose) as reporter:
        def process(src: Path, dst: Path, item_work: Path | None):
            reporter.start_item("" if single else src.name)
            rec = Reconstructor(cfg, on_event=reporter.event)
            res = rec.run(src, dst, work_dir=work_dir if single else item_work, overwrite=overwrite)
            return res.warnings, {k: round(v, 3) for k, v in res.timings.items()}, res.backends

        def on_item(i: int, item) -> None:
            if single:
                return
            note = {"ok": f"-> {item.output} ({item.seconds:.1f} s)", "skipped": f"skipped: {item.error}",
                    "failed": f"failed: {item.error}"}[item.status]
            reporter.message(f"[{i + 1}/{len(outputs)}] {item.input}: {note}")

        summary = run_batch(expanded, outputs, process, summary_path=summary_path, fmt=fmt, overwrite=overwrite,
                            work_dir=work_dir, on_item=on_item, debug=debug)

    if json_out:
        print(json.dumps(summary.to_dict(), indent=2))
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


def register(app: typer.Typer) -> None:
    app.command("reconstruct")(error_boundary(reconstruct))
