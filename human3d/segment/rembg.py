"""Backend ``rembg``: a U^2-Net-family (or ISNet) ONNX model from a local file, through rembg's custom sessions.

No download ever happens here: the model file is looked up in the weights dirs (:mod:`human3d.weights`) and
handed to rembg by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from human3d import weights
from human3d.config import SegmentConfig
from human3d.context import StageContext
from human3d.errors import CorruptWeightsError, MissingBackendError, MissingWeightsError, UsageError
from human3d.segment.base import RawMask
from human3d.types import LoadedImage
from human3d.weights import first_line, memory_guard

#: rembg model name -> the rembg session that runs a local file of that architecture.
CUSTOM_SESSIONS = {
    "u2net": "u2net_custom",
    "u2netp": "u2net_custom",
    "u2net_human_seg": "u2net_custom",
    "isnet-general-use": "dis_custom",
}


def model_file(name: str, weights_dir: Path | None) -> Path:
    """The ``<name>.onnx`` file in the first weights dir's ``rembg/`` folder that has it."""
    if name not in CUSTOM_SESSIONS:
        raise UsageError(f"unknown rembg model {name!r}; choose one of {', '.join(CUSTOM_SESSIONS)}")
    if name == "u2net":  # the registered asset: its error message says where to get it
        return weights.require("u2net", weights_dir) / "u2net.onnx"
    folder = weights.get_asset("u2net").folder
    candidates = [root / folder / f"{name}.onnx" for root in weights.search_dirs(weights_dir)]
    for path in candidates:
        if path.is_file():
            return path
    raise MissingWeightsError(f"rembg model {name}.onnx not found (looked in "
                              f"{', '.join(str(p.parent) for p in candidates)}); put {name}.onnx into "
                              f"{candidates[0].parent}")


def import_rembg() -> Any:
    try:
        import rembg
    except ImportError as err:
        raise MissingBackendError(f"the rembg backend needs rembg ({err}); pip install 'rembg[cpu]==2.0.69', "
                                  "or use --segmenter mediapipe") from err
    return rembg


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def rembg_session(rembg: Any, name: str, path: Path, device: str) -> Any:
    """rembg's session on the local model file; onnxruntime's errors told apart by type (its messages are long)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    try:
        return rembg.new_session(CUSTOM_SESSIONS[name], model_path=str(path), providers=_providers(device))
    except (ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.NoModel) as err:
        raise CorruptWeightsError(f"{path} is not a readable ONNX model ({type(err).__name__}): the file is damaged "
                                  f"or incomplete; download {path.name} again from rembg's model releases into "
                                  f"{path.parent}") from err
    except ort_errors.NoSuchFile as err:
        raise MissingWeightsError(f"{path} is missing; put {path.name} into {path.parent}") from err
    except (ort_errors.Fail, ort_errors.RuntimeException, ort_errors.EPFail) as err:
        raise MissingWeightsError(f"{path} could not be loaded by onnxruntime ({first_line(err)[:200]}); it is not "
                                  f"the {name} model rembg expects: use rembg's release of {path.name}") from err


def segment(image: LoadedImage, cfg: SegmentConfig, ctx: StageContext) -> RawMask:
    """(H, W) foreground probability from rembg's model (salient object, normalised to [0, 1] by rembg)."""
    rembg = import_rembg()
    path = model_file(cfg.rembg_model, ctx.weights_dir)
    ctx.progress(0.2, f"rembg {cfg.rembg_model} ({path})")
    with memory_guard(f"loading and running rembg's {cfg.rembg_model}"):
        session = rembg_session(rembg, cfg.rembg_model, path, ctx.device)
        masks = session.predict(Image.fromarray(image.rgb))
    prob = np.asarray(masks[0].convert("L").resize(image.size, Image.Resampling.BILINEAR), np.float32) / 255.0
    return RawMask(prob, "rembg", detail=f"rembg {cfg.rembg_model}")
