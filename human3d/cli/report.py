"""``human3d report OUTDIR``: one offline report.html for a batch's output folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from human3d.cli.common import error_boundary


def report(
    out_dir: Path = typer.Argument(..., help="The output folder of a batch (it holds summary.json)."),
    models: bool = typer.Option(True, "--models/--no-models",
                                help="Copy each GLB beside the report for its 3D viewer (--no-models: previews only)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a report.html that human3d did not write."),
    json_out: bool = typer.Option(False, "--json", help="Print what was written as JSON on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write OUTDIR/report.html: summary, every input, previews and 3D viewers; opens from disk, offline."""
    from human3d.report import VIEWER_PACKAGE, write_report

    result = write_report(out_dir, models=models, overwrite=overwrite)
    if json_out:
        print(json.dumps({"report": str(result.path), "rows": result.rows, "viewer": result.viewer,
                          "models": result.models, "model_bytes": result.model_bytes}, indent=2))
        return
    viewer = f"3D viewers for {result.models} GLB results" if result.viewer else (
        f"no 3D viewer ({VIEWER_PACKAGE} not found; `make install` vendors it)" if models else "no 3D viewers")
    print(f"wrote {result.path} ({result.rows} inputs, {viewer})")


def register(app: typer.Typer) -> None:
    app.command("report")(error_boundary(report))
