"""Loading :class:`~human3d.multiview.pipeline.PSHumanMVPipeline` from a local folder in PSHuman's Hugging Face
layout (or one written by ``save_pretrained``), and swapping in a DRPose-tuned UNet.

PSHuman's ``model_index.json`` names classes from its own code (e.g. ``mvdiffusion...UNetMV2DConditionModel``) that
do not exist here. Nothing named there is imported: each component is loaded by its *folder name* with the class
this project uses for it (:data:`COMPONENTS`). Weights load from safetensors only, unless ``allow_pickle`` (pickle
files can run code). Failures are told apart by their type, never by their message text: a missing file raises
:class:`~human3d.errors.MissingWeightsError`, a truncated or damaged one
:class:`~human3d.errors.CorruptWeightsError` (both name it), and running out of GPU or RAM while loading
:class:`~human3d.errors.OutOfMemoryError` (:func:`human3d.weights.memory_guard`), which never says to download anything.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from human3d.errors import CorruptWeightsError, MissingWeightsError, OutOfMemoryError
from human3d.weights import LOAD_ERRORS, check_safetensors_header, first_line, load_failure

log = logging.getLogger("human3d")

#: component folder -> (kind, weight file stem or None for weightless components)
COMPONENTS: dict[str, tuple[str, str | None]] = {
    "vae": ("diffusers_model", "diffusion_pytorch_model"),
    "unet": ("unet", "diffusion_pytorch_model"),
    "image_normalizer": ("diffusers_model", "diffusion_pytorch_model"),
    "prompt_embeddings": ("diffusers_model", "diffusion_pytorch_model"),
    "image_encoder": ("transformers_model", "model"),
    "text_encoder": ("transformers_model", "model"),
    "feature_extractor": ("image_processor", None),
    "tokenizer": ("tokenizer", None),
    "scheduler": ("scheduler", None),
    "image_noising_scheduler": ("scheduler", None),
}
REQUIRED = ("vae", "unet", "image_normalizer", "image_encoder", "feature_extractor", "scheduler",
            "image_noising_scheduler")
CONFIG_FILES = {"scheduler": "scheduler_config.json", "image_noising_scheduler": "scheduler_config.json",
                "feature_extractor": "preprocessor_config.json", "tokenizer": "tokenizer_config.json"}
PSHUMAN_PROMPT_FILES = ("normal_embeds.pt", "clr_embeds.pt")
_FIX = "download them again (`human3d weights download pshuman`) or copy the complete folder"


def _missing(path: Path, what: str = "is missing") -> MissingWeightsError:
    return MissingWeightsError(f"{path} {what}; {_FIX}")


def _corrupt(path: Path, what: str) -> CorruptWeightsError:
    return CorruptWeightsError(f"{path} {what}: the file is damaged or incomplete; {_FIX}")


def _weight_file(folder: Path, stem: str, allow_pickle: bool) -> tuple[Path, str | None]:
    """The weight file of a component (plain, sharded or fp16 variant) and the variant to ask for."""
    for variant in (None, "fp16"):
        name = stem if variant is None else f"{stem}.{variant}"
        for candidate in (f"{name}.safetensors", f"{name}.safetensors.index.json"):
            if (folder / candidate).is_file():
                return folder / candidate, variant
    for variant in (None, "fp16"):
        name = stem if variant is None else f"{stem}.{variant}"
        for ext in (".bin", ".bin.index.json"):
            path = folder / f"{name}{ext}"
            if path.is_file():
                if not allow_pickle:
                    raise MissingWeightsError(
                        f"{path} is a pickle checkpoint (it can execute code) and no safetensors file is next to it; "
                        "convert it to safetensors or pass --allow-pickle if you trust its source"
                    )
                return path, variant
    raise _missing(folder / f"{stem}.safetensors")


def _check_weights(path: Path) -> None:
    """Header check of a safetensors file, or of every shard an index names."""
    if path.name.endswith(".index.json"):
        try:
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError) as err:
            raise _corrupt(path, f"is not a readable shard index ({first_line(err)})") from err
        for shard in shards:
            if not (path.parent / shard).is_file():
                raise _missing(path.parent / shard)
            if shard.endswith(".safetensors"):
                _check_weights(path.parent / shard)
        return
    if path.suffix == ".safetensors":
        problem = check_safetensors_header(path)
        if problem:
            raise CorruptWeightsError(problem)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _missing(path)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise _corrupt(path, "is not valid JSON") from err


def _load_scheduler(folder: Path) -> Any:
    import diffusers
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    config = _read_json(folder / "scheduler_config.json")
    cls = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise MissingWeightsError(
            f"{folder / 'scheduler_config.json'} names scheduler {config.get('_class_name')!r}, which diffusers does "
            "not have; set _class_name to a diffusers scheduler (e.g. DDIMScheduler)"
        )
    return cls.from_config(config)


def load_component(name: str, folder: Path, allow_pickle: bool = False, torch_dtype: torch.dtype | None = None) -> Any:
    """Load one pipeline component from ``folder`` with this project's class for ``name``."""
    from diffusers import AutoencoderKL
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    from human3d.multiview.pipeline import ViewPromptEmbeddings
    from human3d.multiview.unet_mv import UNetMV2DConditionModel, UnsupportedVariantError

    kind, stem = COMPONENTS[name]
    if kind == "scheduler":
        return _load_scheduler(folder)
    config_path = folder / CONFIG_FILES.get(name, "config.json")
    _read_json(config_path)
    weights, variant = (None, None)
    if stem is not None:
        weights, variant = _weight_file(folder, stem, allow_pickle)
        _check_weights(weights)
    safetensors_only = weights is not None and ".safetensors" in weights.name
    try:
        if kind == "image_processor":
            import transformers

            # the PIL-backed processor: the default one wants torchvision, which CPU torch here cannot import
            cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
            return cls.from_pretrained(folder)
        if kind == "tokenizer":
            from transformers import CLIPTokenizer

            return CLIPTokenizer.from_pretrained(folder)
        if kind == "transformers_model":
            from transformers import CLIPTextModel, CLIPVisionModelWithProjection

            cls = CLIPVisionModelWithProjection if name == "image_encoder" else CLIPTextModel
            return cls.from_pretrained(folder, use_safetensors=safetensors_only, variant=variant, dtype=torch_dtype)
        cls = {"vae": AutoencoderKL, "image_normalizer": StableUnCLIPImageNormalizer,
               "prompt_embeddings": ViewPromptEmbeddings, "unet": UNetMV2DConditionModel}[name]
        # the normaliser's statistics stay float32 (its .to() has its own signature; the embeddings follow it)
        dtype = None if name == "image_normalizer" else torch_dtype
        return cls.from_pretrained(folder, use_safetensors=safetensors_only, variant=variant,
                                   low_cpu_mem_usage=True, torch_dtype=dtype)
    except MissingWeightsError:
        raise
    except UnsupportedVariantError as err:
        raise MissingWeightsError(f"{config_path}: {err}") from err
    except LOAD_ERRORS as err:
        raise _load_error(weights or config_path, err) from err


def _load_error(path: Path, err: BaseException) -> MissingWeightsError | OutOfMemoryError:
    return load_failure(path, err, _FIX)


def _load_tensors(path: Path) -> Any:
    """A pickle of tensors through torch's weights-only unpickler (it refuses any other Python object)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as err:
        raise _load_error(path, err) from err


def _pshuman_prompt_embeddings(root: Path, allow_pickle: bool) -> Any | None:
    """PSHuman's fixed_prompt_embeds_7view/*.pt when placed in the folder (pickle files: only with allow_pickle)."""
    for folder in (root, root / "fixed_prompt_embeds_7view"):
        paths = [folder / f for f in PSHUMAN_PROMPT_FILES]
        if all(p.is_file() for p in paths):
            if not allow_pickle:
                log.info("ignoring %s: .pt files are pickles; pass allow_pickle to use them", folder)
                return None
            from human3d.multiview.pipeline import ViewPromptEmbeddings

            normal, color = (_load_tensors(p) for p in paths)
            return ViewPromptEmbeddings.from_tensors(normal, color)
    return None


def resolve_unet_folder(path: str | Path) -> Path:
    """A DRPose/PSHuman UNet folder: ``path`` itself (config.json + weights) or its ``unet/`` subfolder."""
    path = Path(path).expanduser()
    if (path / "config.json").is_file():
        return path
    if (path / "unet" / "config.json").is_file():
        return path / "unet"
    raise MissingWeightsError(f"{path / 'config.json'} is missing: --unet must name a UNet folder "
                              "(config.json + diffusion_pytorch_model.safetensors) or a pipeline folder with unet/")


def load_pipeline(
    pretrained_model_name_or_path: str | Path,
    *,
    unet_path: str | Path | None = None,
    allow_pickle: bool = False,
    torch_dtype: torch.dtype | None = None,
    **unused: Any,
) -> Any:
    """Build a :class:`PSHumanMVPipeline` from a local folder.

    The folder holds one subfolder per component (``vae``, ``unet``, ``image_encoder``, ``feature_extractor``,
    ``image_normalizer``, ``image_noising_scheduler``, ``scheduler``) plus the prompt embeddings as
    ``prompt_embeddings/`` (ours), ``text_encoder/`` + ``tokenizer/``, or PSHuman's ``normal_embeds.pt`` and
    ``clr_embeds.pt`` (with ``allow_pickle``). ``unet_path`` replaces the UNet (a DRPose-tuned folder).
    """
    from human3d.multiview.pipeline import PSHumanMVPipeline

    if unused:
        log.debug("load_pipeline ignores %s", sorted(unused))
    root = Path(pretrained_model_name_or_path).expanduser()
    index = _read_json(root / "model_index.json")
    listed = {k for k, v in index.items() if not k.startswith("_") and isinstance(v, (list, tuple))
              and len(v) == 2 and v[0] is not None}
    components: dict[str, Any] = {}
    for name in REQUIRED:
        folder = resolve_unet_folder(unet_path) if name == "unet" and unet_path else root / name
        if not folder.is_dir():
            raise _missing(folder, "(a folder of the pipeline) is missing")
        components[name] = load_component(name, folder, allow_pickle, torch_dtype)
    # prompt embeddings: ours, else the text encoder + tokenizer, else PSHuman's .pt files
    if (root / "prompt_embeddings").is_dir():
        components["prompt_embeddings"] = load_component("prompt_embeddings", root / "prompt_embeddings",
                                                          allow_pickle)
    elif {"text_encoder", "tokenizer"} <= listed or ((root / "text_encoder").is_dir() and (root / "tokenizer").is_dir()):
        components["text_encoder"] = load_component("text_encoder", root / "text_encoder", allow_pickle, torch_dtype)
        components["tokenizer"] = load_component("tokenizer", root / "tokenizer", allow_pickle)
    else:
        embeds = _pshuman_prompt_embeddings(root, allow_pickle)
        if embeds is None:
            raise MissingWeightsError(
                f"{root} has no prompt embeddings: add prompt_embeddings/, or text_encoder/ and tokenizer/ "
                "(PSHuman's normal_embeds.pt/clr_embeds.pt need --allow-pickle)"
            )
        components["prompt_embeddings"] = embeds
    extras = {k: index[k] for k in ("view_names", "flipped_views") if k in index}
    try:
        return PSHumanMVPipeline(**components, **extras)
    except ValueError as err:
        raise MissingWeightsError(f"{root / 'model_index.json'}: {err}") from err
