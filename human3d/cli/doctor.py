"""``human3d doctor``: what this machine can run, and why not where it cannot."""

from __future__ import annotations

import importlib
import json
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from human3d import __version__
from human3d.cli.common import error_boundary, stderr_console


@dataclass
class Check:
    group: str
    name: str
    ok: bool
    detail: str


def _import(name: str) -> tuple[bool, str, object | None]:
    try:
        module = importlib.import_module(name)
    except Exception as err:  # ImportError, or a broken install raising something else at import time
        return False, f"cannot import {name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", None
    return True, f"{name} {getattr(module, '__version__', '')}".strip(), module


def _torch_checks(info: dict) -> tuple[Check, object | None, bool]:
    """torch and CUDA: the check, the module (None when it does not import) and whether CUDA is usable."""
    ok, detail, torch = _import("torch")
    info["torch"] = getattr(torch, "__version__", None)
    cuda = bool(torch is not None and torch.cuda.is_available())
    info["cuda"] = cuda
    if cuda:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda_version"] = torch.version.cuda
    return Check("core", "torch", ok, detail + ("" if not ok else f", CUDA {'yes' if cuda else 'no'}")), torch, cuda


def _stage_checks() -> list[Check]:
    from human3d.pipeline import STAGES, resolve_stage

    checks = []
    for stage in STAGES:
        try:
            resolve_stage(stage)
            checks.append(Check("stage", stage.name, True, "available"))
        except Exception as err:
            checks.append(Check("stage", stage.name, False, str(err)))
    return checks


def _segment_checks(weights_dir: Path | None) -> list[Check]:
    from human3d import weights

    checks = [Check("segment", "alpha", True, "always available (uses the input's alpha channel)")]
    ok, detail, mp = _import("mediapipe")
    if ok:
        models = Path(mp.__file__).parent / "modules"
        found = sorted(p.name for p in models.rglob("*.tflite")) if models.is_dir() else []
        ok = bool(found)
        detail += f", bundled models: {', '.join(found) if found else 'none (use mediapipe==0.10.21)'}"
    checks.append(Check("segment", "mediapipe", ok, detail))
    ok, detail, _ = _import("rembg")
    u2 = weights.locate("u2net", weights_dir)
    checks.append(Check("segment", "rembg", ok and u2 is not None,
                        detail if not ok else (f"model at {u2}" if u2 else "rembg installed, but u2net.onnx not "
                                               f"found in {weights.default_install_dir(weights.ASSETS['u2net'], weights_dir)}")))
    return checks


def _body_checks(weights_dir: Path | None) -> list[Check]:
    from human3d import weights

    ok, detail, _ = _import("anny")
    checks = [Check("body", "anny", ok, detail)]
    ok, detail, _ = _import("smplx")
    sx = weights.locate("smplx", weights_dir)
    checks.append(Check("body", "smplx", ok and sx is not None,
                        detail if not ok else (f"model files at {sx}" if sx else "smplx installed, but the SMPL-X "
                                               "model files are missing (human3d weights path smplx)")))
    return checks


def _multiview_checks(weights_dir: Path | None, cuda: bool) -> list[Check]:
    from human3d import weights

    ok, detail, _ = _import("diffusers")
    ps = weights.locate("pshuman", weights_dir)
    why = detail if not ok else (f"weights at {ps}" if ps else "diffusers installed, but the PSHuman weights are "
                                 "missing (human3d weights download pshuman)")
    if ok and ps and not cuda:
        why += "; no CUDA GPU: runs on CPU in float32, very slowly"
    prior_ok, prior_detail, _ = _import("human3d.multiview.prior")
    return [Check("multiview", "pshuman", ok and ps is not None, why),
            Check("multiview", "prior", prior_ok, "embedded: views from the body fit, no weights" if prior_ok
                  else prior_detail)]


def _render_checks(torch: object | None, cuda: bool) -> list[Check]:
    checks = [Check("render", "torch", torch is not None, "pure-PyTorch rasterizer")]
    ok, detail, _ = _import("open3d")
    if not ok and "libusb" in detail:
        detail += " (install Debian's libusb-1.0-0)"
    checks.append(Check("render", "open3d", ok, detail))
    ok, detail, _ = _import("nvdiffrast.torch")
    checks.append(Check("render", "nvdiffrast", ok and cuda, detail if not ok else ("ok" if cuda else "needs CUDA")))
    return checks


def _tool_checks() -> list[Check]:
    ok, detail, _ = _import("xatlas")
    checks = [Check("texture", "xatlas", ok, detail)]
    ok, detail, _ = _import("ray")
    checks.append(Check("batch", "ray", ok, detail if ok else f"{detail} (only --executor ray needs it: "
                                                               "pip install 'human3d[ray]')"))
    try:
        import imageio_ffmpeg

        checks.append(Check("video", "ffmpeg", True, imageio_ffmpeg.get_ffmpeg_exe()))
    except Exception as err:
        checks.append(Check("video", "ffmpeg", False, f"{type(err).__name__}: {err}"))
    return checks


def _checks(weights_dir: Path | None) -> tuple[dict, list[Check]]:
    from human3d import weights

    info: dict = {"human3d": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    torch_check, torch, cuda = _torch_checks(info)
    checks = [torch_check, *_stage_checks(), *_segment_checks(weights_dir), *_body_checks(weights_dir),
              *_multiview_checks(weights_dir, cuda), *_render_checks(torch, cuda), *_tool_checks()]
    checks += [Check("weights", st.name, st.found, st.path or "not found") for st in weights.status(weights_dir)]
    return info, checks


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Where model files are."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Check Python, torch, CUDA, every backend and the weights."""
    info, checks = _checks(weights_dir)
    if json_out:
        print(json.dumps({"info": info, "checks": [asdict(c) for c in checks]}, indent=2))
        return
    from rich.table import Table

    console = stderr_console()
    for k, v in info.items():
        console.print(f"{k}: {v}")
    table = Table()
    for col in ("group", "name", "ok", "detail"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.group, c.name, "yes" if c.ok else "no", c.detail)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("doctor")(error_boundary(doctor))
