"""``human3d weights list|path|verify|download``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import typer

from human3d.cli.common import error_boundary, stderr_console
from human3d.errors import EXIT_MISSING

app = typer.Typer(help="Model files: what is needed, where it is, whether it is intact.", no_args_is_help=True)

WeightsDir = typer.Option(None, "--weights-dir", help="Where model files are (first in the lookup order).")
AssetName = typer.Argument(..., help="Asset name (see `human3d weights list`).")
Debug = typer.Option(False, "--debug", help="Show tracebacks.")


@app.command("list")
@error_boundary
def list_(
    weights_dir: Path | None = WeightsDir,
    json_out: bool = typer.Option(False, "--json", help="JSON on stdout."),
    debug: bool = Debug,
) -> None:
    """Every asset, whether it is found, its licence and source."""
    from human3d import weights

    rows = weights.status(weights_dir)
    if json_out:
        print(json.dumps({"search_dirs": [str(d) for d in weights.search_dirs(weights_dir)],
                          "assets": [asdict(r) for r in rows]}, indent=2))
        return
    from rich.table import Table

    table = Table()
    for col in ("asset", "found", "where", "licence", "source"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, "yes" if r.found else "no", r.path or "-", r.licence, r.source)
    console = stderr_console()
    console.print(table)
    console.print("lookup order: " + ", ".join(str(d) for d in weights.search_dirs(weights_dir))
                  + ", then the Hugging Face cache")


@app.command("path")
@error_boundary
def path(
    name: str = AssetName,
    weights_dir: Path | None = WeightsDir,
    debug: bool = Debug,
) -> None:
    """Print where an asset is, or (exit 4) where to put it."""
    from human3d import weights

    asset = weights.get_asset(name)
    found = weights.locate(name, weights_dir)
    if found is not None:
        print(found)
        return
    target = weights.default_install_dir(asset, weights_dir)
    print(target)
    print(f"{name} is not installed: {asset.instructions.format(path=target)}", file=sys.stderr)
    raise typer.Exit(EXIT_MISSING)


@app.command("verify")
@error_boundary
def verify(
    name: str | None = typer.Argument(None, help="Asset name; default: every asset that is found."),
    weights_dir: Path | None = WeightsDir,
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="Accept pickle checkpoints, as `reconstruct --allow-pickle` would."),
    debug: bool = Debug,
) -> None:
    """Check files, checksums and safetensors headers, under the rules loading applies; exit 4 on any problem."""
    from human3d import weights

    names = [name] if name else [a.name for a in weights.status(weights_dir) if a.found]
    if not names:
        print("no assets are installed; see `human3d weights list`", file=sys.stderr)
        return
    bad = False
    for n in names:
        problems = weights.verify(n, weights_dir, allow_pickle)
        if problems:
            bad = True
            for p in problems:
                print(f"{n}: {p}", file=sys.stderr)
        else:
            print(f"{n}: ok ({weights.locate(n, weights_dir)})", file=sys.stderr)
    if bad:
        raise typer.Exit(EXIT_MISSING)


@app.command("download")
@error_boundary
def download(
    name: str = AssetName,
    weights_dir: Path | None = WeightsDir,
    debug: bool = Debug,
) -> None:
    """Fetch an asset that may be fetched (PSHuman); print instructions for those that may not (SMPL-X)."""
    from human3d import weights

    folder = weights.download(name, weights_dir)
    stderr_console().print(f"{name}: downloaded to {folder}")
