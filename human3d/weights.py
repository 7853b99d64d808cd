"""Registry of model assets: what each is, its files, licence, source, checksums, and where it is looked for.

Lookup order for an asset's folder (DESIGN.md §5): ``--weights-dir``, ``$HUMAN3D_WEIGHTS``, ``./weights``, then
(for Hugging Face assets) the Hugging Face cache. Each asset lives in ``<weights dir>/<asset.folder>/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError

from human3d.errors import CorruptWeightsError, MissingWeightsError, OutOfMemoryError, UsageError
from human3d.io.digest import file_digest


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    folder: str
    required: tuple[str, ...]
    """Files (relative to the asset folder) that must all be present."""
    licence: str
    source: str
    hf_repo: str | None = None
    downloadable: bool = False
    sha256: dict[str, str] = field(default_factory=dict)
    md5: dict[str, str] = field(default_factory=dict)
    instructions: str = ""
    any_of: tuple[tuple[str, ...], ...] = ()
    """Groups of alternative files: at least one of each group must be present (e.g. safetensors or bin)."""
    pickle_loadable: bool = True
    """Whether ``--allow-pickle`` lets its pickle files load (False: human3d never reads them)."""


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            name="pshuman",
            description="PSHuman multi-view normal/colour diffusion (6 views + face, 768x768)",
            folder="pshuman",
            required=("model_index.json", "unet/config.json", "vae/config.json", "scheduler/scheduler_config.json",
                      "image_noising_scheduler/scheduler_config.json", "image_normalizer/config.json",
                      "feature_extractor/preprocessor_config.json", "image_encoder/config.json"),
            any_of=(
                ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
                 "unet/diffusion_pytorch_model.safetensors.index.json", "unet/diffusion_pytorch_model.bin"),
                ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
                 "vae/diffusion_pytorch_model.bin"),
                ("image_normalizer/diffusion_pytorch_model.safetensors",
                 "image_normalizer/diffusion_pytorch_model.fp16.safetensors",
                 "image_normalizer/diffusion_pytorch_model.bin"),
                ("image_encoder/model.safetensors", "image_encoder/model.fp16.safetensors",
                 "image_encoder/pytorch_model.bin"),
                # the per-view prompt embeddings: ours, the text encoder, or PSHuman's .pt files (--allow-pickle)
                ("prompt_embeddings/config.json", "text_encoder/config.json", "normal_embeds.pt",
                 "fixed_prompt_embeds_7view/normal_embeds.pt"),
            ),
            licence="PSHuman code MIT; weights fine-tuned from Stable Diffusion 2.1-unclip "
                    "(CreativeML Open RAIL++-M): check both before commercial use",
            source="Hugging Face pengHTYX/PSHuman_Unclip_768_6views",
            hf_repo="pengHTYX/PSHuman_Unclip_768_6views",
            downloadable=True,
            instructions="run `human3d weights download pshuman` on a machine that is online, or copy the "
                         "repository's files into {path}",
        ),
        Asset(
            name="smplx",
            description="SMPL-X body model files (neutral/male/female .npz)",
            folder="smplx",
            required=(),
            any_of=(("SMPLX_NEUTRAL.npz", "SMPLX_NEUTRAL.pkl", "SMPLX_MALE.npz", "SMPLX_FEMALE.npz"),),
            licence="SMPL-X Model License: non-commercial research use; registration required",
            source="https://smpl-x.is.tue.mpg.de (register, accept the licence, download 'SMPL-X v1.1 (NPZ+PKL)')",
            downloadable=False,
            pickle_loadable=False,
            instructions="register at https://smpl-x.is.tue.mpg.de, download the SMPL-X model (npz) and put "
                         "SMPLX_NEUTRAL.npz (and optionally SMPLX_MALE.npz, SMPLX_FEMALE.npz) into {path}",
        ),
        Asset(
            name="u2net",
            description="rembg's U^2-Net person/background segmentation model (ONNX)",
            folder="rembg",
            required=("u2net.onnx",),
            licence="Apache-2.0 (U^2-Net, xuebinqin/U-2-Net)",
            source="rembg model release u2net.onnx (github.com/danielgatis/rembg releases)",
            hf_repo=None,
            downloadable=False,
            md5={"u2net.onnx": "60024c5c889badc19c04ad937298a77b"},
            instructions="download u2net.onnx from rembg's model releases and put it into {path} "
                         "(or point U2NET_HOME there)",
        ),
        Asset(
            name="lpips",
            description="LPIPS perceptual metric, AlexNet variant (torchvision AlexNet + LPIPS v0.1 linear heads)",
            folder="lpips",
            required=(),
            any_of=(("alexnet.safetensors", "alexnet-owt-7be5be79.pth"), ("alex_lin.safetensors", "alex.pth")),
            licence="LPIPS BSD-2-Clause (richzhang/PerceptualSimilarity); AlexNet weights BSD-3-Clause (torchvision)",
            source="torchvision's alexnet-owt-7be5be79.pth (download.pytorch.org/models) and LPIPS's "
                   "lpips/weights/v0.1/alex.pth (github.com/richzhang/PerceptualSimilarity)",
            downloadable=False,
            instructions="put torchvision's alexnet-owt-7be5be79.pth and LPIPS v0.1 alex.pth (or safetensors "
                         "conversions named alexnet.safetensors and alex_lin.safetensors) into {path}; .pth files "
                         "need --allow-pickle",
        ),
    )
}


def get_asset(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise UsageError(f"unknown asset {name!r}; known assets: {', '.join(ASSETS)}") from None


def search_dirs(weights_dir: str | Path | None = None) -> list[Path]:
    """The weights roots in lookup order (existing or not)."""
    dirs: list[Path] = []
    if weights_dir:
        dirs.append(Path(weights_dir).expanduser())
    env = os.environ.get("HUMAN3D_WEIGHTS")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path.cwd() / "weights")
    return dirs


def default_install_dir(asset: Asset, weights_dir: str | Path | None = None) -> Path:
    """Where an asset is put when the user installs it: the first root of the lookup order."""
    return search_dirs(weights_dir)[0] / asset.folder


def _complete(asset: Asset, folder: Path) -> bool:
    if not folder.is_dir():
        return False
    if not all((folder / f).is_file() for f in asset.required):
        return False
    return all(any((folder / f).is_file() for f in group) for group in asset.any_of)


def _hf_cache_folder(asset: Asset) -> Path | None:
    if not asset.hf_repo:
        return None
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(asset.hf_repo, local_files_only=True)
    except Exception:  # not cached (or hub not installed): simply not found there
        return None
    return Path(path)


def locate(name: str, weights_dir: str | Path | None = None) -> Path | None:
    """The folder holding every required file of asset ``name``, or None."""
    asset = get_asset(name)
    for root in search_dirs(weights_dir):
        if _complete(asset, root / asset.folder):
            return root / asset.folder
    cached = _hf_cache_folder(asset)
    if cached is not None and _complete(asset, cached):
        return cached
    return None


def require(name: str, weights_dir: str | Path | None = None) -> Path:
    """Like :func:`locate` but a missing asset raises :class:`MissingWeightsError` saying what to do."""
    found = locate(name, weights_dir)
    if found is not None:
        return found
    asset = get_asset(name)
    target = default_install_dir(asset, weights_dir)
    looked = ", ".join(str(d / asset.folder) for d in search_dirs(weights_dir))
    raise MissingWeightsError(
        f"{asset.description} not found (looked in {looked}"
        f"{' and the Hugging Face cache' if asset.hf_repo else ''}); {asset.instructions.format(path=target)}"
    )


@dataclass
class AssetStatus:
    name: str
    found: bool
    path: str | None
    licence: str
    source: str
    downloadable: bool
    description: str


def status(weights_dir: str | Path | None = None) -> list[AssetStatus]:
    out = []
    for a in ASSETS.values():
        p = locate(a.name, weights_dir)
        out.append(AssetStatus(a.name, p is not None, str(p) if p else None, a.licence, a.source, a.downloadable,
                               a.description))
    return out


def folder_identity(folder: str | Path | None) -> list[tuple[str, int, int]] | None:
    """(relative path, size, mtime_ns) of every file under ``folder`` (None when absent): it changes whenever a
    file is added, removed or replaced, so a cache keyed on it is never reused with other weights."""
    if folder is None or not Path(folder).exists():
        return None
    root = Path(folder)
    if root.is_file():
        st = root.stat()
        return [(root.name, st.st_size, st.st_mtime_ns)]
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return out


def identity(name: str, weights_dir: str | Path | None = None) -> dict | None:
    """Where asset ``name`` was found and :func:`folder_identity` of it (None when not installed)."""
    folder = locate(name, weights_dir)
    return None if folder is None else {"path": str(folder.resolve()), "files": folder_identity(folder)}


#: Weight formats that are Python pickles (they can execute code when loaded).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def pickle_problems(asset: Asset, folder: Path, allow_pickle: bool = False) -> list[str]:
    """The rule loading applies: a part of ``asset`` present only as pickle files needs ``--allow-pickle``."""
    if allow_pickle and asset.pickle_loadable:
        return []
    problems = []
    for group in asset.any_of:
        present = [f for f in group if (folder / f).is_file()]
        if present and all(f.endswith(PICKLE_SUFFIXES) for f in present):
            if not asset.pickle_loadable:
                alternatives = ", ".join(f for f in group if not f.endswith(PICKLE_SUFFIXES))
                problems.append(f"{folder / present[0]} is a pickle, which human3d never reads (it can execute "
                                f"code); put one of {alternatives} into {folder}")
                continue
            problems.append(f"{folder / present[0]} is a pickle checkpoint (it can execute code) and none of its "
                            "safetensors alternatives is present: it needs --allow-pickle (only if you trust its "
                            "source), or convert it to safetensors")
    return problems


def verify(name: str, weights_dir: str | Path | None = None, allow_pickle: bool = False) -> list[str]:
    """Problems with asset ``name`` (empty list: it is present, loads under the same rules as the pipeline's
    (pickles only with ``allow_pickle``) and every known checksum and header is right)."""
    asset = get_asset(name)
    folder = locate(name, weights_dir)
    if folder is None:
        return [f"{name}: not found"]
    problems: list[str] = pickle_problems(asset, folder, allow_pickle)
    for rel, expected in asset.sha256.items():
        if (folder / rel).is_file() and file_digest(folder / rel, "sha256") != expected:
            problems.append(f"{folder / rel}: sha256 does not match; the file is corrupt or a different version")
    for rel, expected in asset.md5.items():
        if (folder / rel).is_file() and file_digest(folder / rel, "md5") != expected:
            problems.append(f"{folder / rel}: md5 does not match; the file is corrupt or a different version")
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".safetensors":
            problem = check_safetensors_header(path)
            if problem:
                problems.append(problem)
        elif path.suffix == ".json" and path.is_file():
            try:
                json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError):
                problems.append(f"{path}: not valid JSON; the file is corrupt, download it again")
    return problems


# -- why a weights file did not load: told apart by the exceptions' types and the file itself, never their text ------

#: What loading a weights file can raise when it is absent, damaged, of another model, or too big for memory;
#: anything else is a bug and stays an internal error.
LOAD_ERRORS = (OSError, RuntimeError, ValueError, KeyError, EOFError, MemoryError, pickle.UnpicklingError,
               SafetensorError)
#: Exceptions that mean a file's bytes are damaged (seen anywhere in the chain of a failed load). Not
#: UnicodeDecodeError: diffusers raises one itself when it reads any binary file that failed as text.
DAMAGED_ERRORS = (SafetensorError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, json.JSONDecodeError)


def first_line(err: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters of it)."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300]}" if text else type(err).__name__


def exception_chain(err: BaseException) -> list[BaseException]:
    """``err`` and what it was raised from or while handling (diffusers re-raises loading errors as OSError)."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


#: How torch (2.x) words a failed host allocation: a plain RuntimeError, so its text is all there is to tell it by.
CPU_ALLOCATOR_FAILURE = "DefaultCPUAllocator: can't allocate memory"


def is_out_of_memory(err: BaseException) -> bool:
    """torch's OutOfMemoryError (the GPU's), Python's MemoryError, or torch's failed host allocation (RAM)."""
    import torch

    return isinstance(err, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(err, RuntimeError) and CPU_ALLOCATOR_FAILURE in str(err))


def out_of_memory_cause(err: BaseException) -> BaseException | None:
    """The first out-of-memory error (:func:`is_out_of_memory`) in ``err``'s chain, or None."""
    return next((c for c in exception_chain(err) if is_out_of_memory(c)), None)


#: What lowers the memory a reconstruction needs (the default advice of :func:`out_of_memory`).
RECONSTRUCT_MEMORY_HINT = ("keep --set multiview.cpu_offload=true, use --mv-dtype float16, or run fewer --jobs per "
                           "machine")


def out_of_memory(what: str, err: BaseException, hint: str = RECONSTRUCT_MEMORY_HINT) -> OutOfMemoryError:
    """The one-line error for running out of memory while ``what`` (e.g. "loading the PSHuman model onto cuda"):
    torch's OutOfMemoryError is the GPU's, Python's MemoryError the machine's RAM; ``hint`` says what to lower."""
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        return OutOfMemoryError(f"out of GPU memory while {what} ({first_line(err)}); free the GPU (other "
                                f"processes), or {hint}")
    return OutOfMemoryError(f"out of memory (RAM) while {what}; close other programs, or {hint}")


@contextlib.contextmanager
def memory_guard(what: str, hint: str = RECONSTRUCT_MEMORY_HINT) -> Iterator[None]:
    """Running out of GPU memory or RAM inside the block becomes :class:`~human3d.errors.OutOfMemoryError`."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(err):
            raise
        raise out_of_memory(what, err, hint) from err


def load_failure(path: Path, err: BaseException, fix: str) -> MissingWeightsError | OutOfMemoryError:
    """Why ``path`` did not load (``err``, one of :data:`LOAD_ERRORS`): out of memory (nothing to do with the file),
    a pickle holding Python objects (fetching it again does not help), damaged bytes
    (:class:`~human3d.errors.CorruptWeightsError`), or an intact file that is not what the model expects.
    ``fix`` says how to get the file again."""
    oom = out_of_memory_cause(err)
    if oom is not None:
        return out_of_memory(f"loading {path}", oom)
    chain = exception_chain(err)
    cause = next((c for c in chain if isinstance(c, DAMAGED_ERRORS)), err)  # the reader's own words, not a wrapper's
    damaged = CorruptWeightsError(f"{path} cannot be read ({first_line(cause)}): the file is damaged or "
                                  f"incomplete; {fix}")
    if path.name.endswith(PICKLE_SUFFIXES):
        problem = _pickle_problem(path, chain)
        if problem == "objects":
            return MissingWeightsError(
                f"{path} holds Python objects besides tensors, which the weights-only loader refuses even with "
                "--allow-pickle (it could run code); use a safetensors file from a source you trust")
        if problem == "damaged":
            return damaged
    if isinstance(cause, DAMAGED_ERRORS):
        return damaged
    return MissingWeightsError(f"{path} could not be loaded ({first_line(err)}): it is not the file this model "
                               f"expects (another model or version); {fix}")


def _pickle_problem(path: Path, chain: list[BaseException]) -> str | None:
    """"damaged" (not a readable archive), "objects" (it names Python globals the weights-only unpickler refuses),
    or None (neither: the failure is elsewhere) for a pickle checkpoint that did not load."""
    import torch

    if not zipfile.is_zipfile(path):  # torch writes zip archives; an older plain pickle tells only by failing
        return "objects" if any(isinstance(c, pickle.UnpicklingError) for c in chain) else "damaged"
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                return "damaged"
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (OSError, RuntimeError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError):
        return "damaged"
    return "objects" if unsafe else None


def check_safetensors_header(path: Path) -> str | None:
    """A one-line problem if ``path`` is not a readable safetensors file whose tensors fit in the file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path}: truncated safetensors file; download it again"
            n = int.from_bytes(head, "little")
            if n <= 0 or n > min(size - 8, 100_000_000):
                return f"{path}: corrupt safetensors header; download it again"
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end > size:
            return f"{path}: truncated safetensors file ({size} bytes, needs {8 + n + end}); download it again"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{path}: unreadable safetensors file ({err}); download it again"
    return None


def download(name: str, weights_dir: str | Path | None = None) -> Path:
    """Fetch a downloadable asset through huggingface_hub into the first weights root; returns its folder."""
    asset = get_asset(name)
    target = default_install_dir(asset, weights_dir)
    if not asset.downloadable or not asset.hf_repo:
        raise MissingWeightsError(f"{name} cannot be downloaded by human3d: {asset.instructions.format(path=target)}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - huggingface_hub is a core dependency
        raise MissingWeightsError("huggingface_hub is not installed; pip install huggingface_hub") from err
    try:
        snapshot_download(asset.hf_repo, local_dir=str(target))
    except Exception as err:
        raise MissingWeightsError(
            f"downloading {asset.hf_repo} failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            f"check the network, or copy the files into {target}"
        ) from err
    if not _complete(asset, target):
        raise MissingWeightsError(f"downloaded {asset.hf_repo} into {target} but files are missing; retry")
    return target
