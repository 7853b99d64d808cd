"""``human3d eval PRED GT`` (score one reconstruction) and ``human3d bench DIR`` (the benchmark protocol)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from human3d.cli.common import configure_logging, error_boundary, stderr_console
from human3d.errors import UsageError


def _eval_settings(align: str, threshold: float, points: int, gt_height: float | None, appearance: bool, size: int,
                   seed: int, renderer: str, device: str):
    """The scoring options, checked (the device resolved: ``cuda`` without a GPU is refused here, before work)."""
    from human3d.config import resolve_device
    from human3d.eval.metrics import ALIGNMENTS, EvalSettings

    if align not in ALIGNMENTS:
        raise UsageError(f"unknown --align {align!r}; choose one of {', '.join(ALIGNMENTS)}")
    if points < 100:
        raise UsageError("--points must be at least 100 (the paper uses 100000)")
    if threshold <= 0:
        raise UsageError("--threshold must be a positive distance in cm")
    if size < 32:
        raise UsageError("--size must be at least 32 pixels")
    return EvalSettings(alignment=align, n_points=points, threshold_cm=threshold, gt_height_m=gt_height,
                        appearance=appearance, resolution=size, seed=seed, renderer=renderer,
                        device=resolve_device(device))


def _lpips(appearance: bool, lpips_dir: Path | None, weights_dir: Path | None, allow_pickle: bool) -> tuple[Any, str]:
    if not appearance:
        return None, ""
    from human3d.eval.lpips import try_load_lpips

    model, note = try_load_lpips(weights_dir, folder=lpips_dir, allow_pickle=allow_pickle)
    if model is None and lpips_dir is not None:
        # the user pointed at the weights explicitly: a failure there is an error, not a note
        from human3d.eval.lpips import load_lpips

        load_lpips(weights_dir, folder=lpips_dir, allow_pickle=allow_pickle)
    return model, note


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["carve.iterations=40", "texture.texture_size=512"]`` -> ``{"carve": {"iterations": "40"}, ...}``; the
    text is converted to each field's type when the config is built (:func:`human3d.config.set_config_value`)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, name = key.strip().partition(".")
        if not sep or not dot or not stage or not name:
            raise UsageError(f"--set {item!r} must look like SECTION.FIELD=VALUE, e.g. carve.iterations=40")
        out.setdefault(stage, {})[name] = raw.strip()
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.4f}"


# the scoring options of `eval` and `bench`: one definition each
Threshold = typer.Option(1.0, "--threshold", help="F-score distance threshold in cm.")
Points = typer.Option(100_000, "--points", help="Points sampled on each surface.")
Appearance = typer.Option(True, "--appearance/--no-appearance", help="Also PSNR, SSIM and LPIPS.")
Size = typer.Option(512, "--size", help="Render size of the appearance views in pixels.")
LpipsDir = typer.Option(None, "--lpips-dir", help="Folder with the LPIPS weights.")
WeightsDir = typer.Option(None, "--weights-dir", help="Where model files are.")
AllowPickle = typer.Option(False, "--allow-pickle", help="Allow .pth LPIPS weights (pickle).")
Device = typer.Option("auto", "--device", help="auto | cpu | cuda.")


def evaluate_cmd(
    pred: Path = typer.Argument(..., help="The reconstructed mesh (GLB, OBJ or PLY)."),
    gt: Path = typer.Argument(..., help="The ground-truth mesh, in the same frame (+Y up, facing +Z)."),
    align: str = typer.Option("scale", "--align", help="none | scale (scale + translation) | icp."),
    threshold: float = Threshold,
    points: int = Points,
    gt_height: float | None = typer.Option(
        None, "--gt-height", help="The ground truth's real height in metres (default: its y extent, as metres)."),
    appearance: bool = Appearance,
    size: int = Size,
    seed: int = typer.Option(0, "--seed", help="Seed of the point sampling."),
    renderer: str = typer.Option("auto", "--renderer", help="auto | torch | open3d."),
    device: str = Device,
    lpips_dir: Path | None = LpipsDir,
    weights_dir: Path | None = WeightsDir,
    allow_pickle: bool = AllowPickle,
    json_out: bool = typer.Option(False, "--json", help="Print every figure as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Score a reconstruction against a ground-truth mesh: Chamfer (cm), normal consistency, F-score, PSNR, SSIM,
    LPIPS."""
    from human3d.eval.metrics import evaluate
    from human3d.io.meshes import read_mesh

    configure_logging(quiet, False)
    settings = _eval_settings(align, threshold, points, gt_height, appearance, size, seed, renderer, device)
    lpips_model, note = _lpips(appearance, lpips_dir, weights_dir, allow_pickle)
    result = evaluate(read_mesh(pred), read_mesh(gt), settings, lpips_model, note).to_dict()
    if json_out:
        print(json.dumps(result, indent=2))
    if not quiet:
        _print_eval_table(result, pred, gt)


def _print_eval_table(result: dict[str, Any], pred: Path, gt: Path) -> None:
    from rich.table import Table

    g, a = result["geometry"], result["appearance"]
    table = Table(title=f"{pred.name} vs {gt.name} (alignment: {result['alignment']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("Chamfer distance (cm) ↓", g["chamfer_cm"]), ("  accuracy pred→GT (cm)", g["accuracy_cm"]),
            ("  completeness GT→pred (cm)", g["completeness_cm"]), ("normal consistency ↑", g["normal_consistency"]),
            (f"F-score @ {g['threshold_cm']:g} cm ↑", g["fscore"])]
    if a is not None:
        rows += [("PSNR (dB) ↑", a["psnr"]), ("SSIM ↑", a["ssim"]), ("LPIPS ↓", a["lpips"])]
    for name, value in rows:
        table.add_row(name, _fmt(value))
    console = stderr_console()
    console.print(table)
    console.print(f"GT height {result['gt_height_m']:.3f} m; {g['n_points']} points per surface")
    for note in (a or {}).get("notes", []):
        console.print(f"note: {note}")


def bench_cmd(
    folder: Path = typer.Argument(..., help="A folder of ground-truth meshes (GLB, OBJ or PLY)."),
    output: Path = typer.Option(Path("human3d_bench"), "-o", "--output",
                                help="Where photos, reconstructions and results go; a rerun resumes."),
    preset: str = typer.Option("fast", "--preset", "-p", help="fast | default | quality."),
    mv_backend: str = typer.Option("auto", "--mv-backend", help="auto | pshuman | prior."),
    device: str = Device,
    seed: int = typer.Option(0, "--seed"),
    views: int = typer.Option(3, "--views", help="Input photos per mesh, evenly spaced in azimuth."),
    photo_size: int = typer.Option(768, "--photo-size", help="Height of the input photos in pixels."),
    align: str = typer.Option("scale", "--align", help="none | scale | icp."),
    threshold: float = Threshold,
    points: int = Points,
    gt_height: float | None = typer.Option(
        None, "--gt-height", help="Real height of every ground truth in metres (default: each one's y extent)."),
    appearance: bool = Appearance,
    size: int = Size,
    limit: int | None = typer.Option(None, "--limit", help="Only the first N meshes."),
    overrides: list[str] = typer.Option(
        [], "--set", help="A pipeline setting on top of the preset, STAGE.KEY=VALUE (repeatable), "
                          "e.g. --set carve.iterations=40."),
    lpips_dir: Path | None = LpipsDir,
    weights_dir: Path | None = WeightsDir,
    allow_pickle: bool = AllowPickle,
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Benchmark reconstruction on a folder of ground-truth meshes (DRPose's protocol, Tables 1 and 2)."""
    import sys

    from human3d.eval.bench import Benchmark, BenchSettings

    configure_logging(quiet, False)
    if views < 1:
        raise UsageError("--views must be at least 1")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    evaluation = _eval_settings(align, threshold, points, gt_height, appearance, size, seed, "auto", device)
    settings = BenchSettings(
        preset=preset, backend=mv_backend, device=device, seed=seed,
        weights_dir=str(weights_dir) if weights_dir else None, views=views, photo_height=photo_size, limit=limit,
        overrides=parse_overrides(overrides), evaluation=evaluation)
    lpips_model, note = _lpips(appearance, lpips_dir, weights_dir, allow_pickle)
    say = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr))
    summary = Benchmark(settings, lpips_model=lpips_model, lpips_note=note, on_message=say).run(folder, output)
    if json_out:
        print(json.dumps(summary, indent=2))
    if not quiet:
        print(summary["markdown"], file=sys.stderr)
        print(f"results: {output / 'results.json'}, {output / 'results.md'}", file=sys.stderr)
    if summary["failed_views"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("eval")(error_boundary(evaluate_cmd))
    app.command("bench")(error_boundary(bench_cmd))
