"""Safe loading of the input photo and of user masks (DESIGN.md §1, first stage).

Everything a user can get wrong about an input file ends in :class:`~human3d.errors.BadInputError` with one line
that says what is wrong and what to do; nothing here lets a PIL traceback through. The checks run cheapest first:
the path, the first bytes (formats we refuse are named from their signature or extension), the header (size and
decompression-bomb limits, before any pixel is decoded), then a full decode (truncated and corrupt files fail
there, not later in a stage).
"""

from __future__ import annotations

import io
import math
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from human3d.config import InputConfig
from human3d.context import StageContext, log
from human3d.errors import BadInputError, UsageError
from human3d.types import LoadedImage

#: Above this many megapixels a photo is refused unless ``--max-megapixels`` asks for a downscale.
BOMB_MEGAPIXELS = 50.0
#: Even with ``--max-megapixels`` we never decode more than this (memory: ~3 bytes per pixel, several copies).
HARD_LIMIT_MEGAPIXELS = 400.0

#: PIL format names we read. MPO is a JPEG with extra (stereo/depth) frames, as phones write them.
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "AVIF"}
CONVERT_HINT = "convert it to PNG or JPEG"

RAW_EXTENSIONS = {
    ".cr2": "Canon CR2", ".cr3": "Canon CR3", ".crw": "Canon CRW", ".nef": "Nikon NEF", ".nrw": "Nikon NRW",
    ".dng": "DNG", ".arw": "Sony ARW", ".srf": "Sony SRF", ".sr2": "Sony SR2", ".orf": "Olympus ORF",
    ".rw2": "Panasonic RW2", ".raf": "Fujifilm RAF", ".pef": "Pentax PEF", ".srw": "Samsung SRW",
    ".x3f": "Sigma X3F", ".3fr": "Hasselblad 3FR", ".erf": "Epson ERF", ".kdc": "Kodak KDC", ".mrw": "Minolta MRW",
    ".iiq": "Phase One IIQ", ".raw": "camera RAW", ".rwl": "Leica RWL",
}
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
VIDEO_BRANDS = {b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"M4V ", b"3gp4", b"3gp5", b"avc1", b"dash"}
#: TIFF tag that marks a DNG (a RAW file in a TIFF container).
DNG_VERSION_TAG = 50706


def _fail(path: Path, what: str, todo: str) -> BadInputError:
    return BadInputError(f"{path}: {what}; {todo}")


#: (leading bytes, format) of files we refuse, recognised by their signature whatever their extension.
REFUSED_SIGNATURES = (
    (b"FUJIFILMCCD-RAW", "Fujifilm RAF RAW"),
    (b"IIRO", "Olympus ORF RAW"), (b"IIRS", "Olympus ORF RAW"), (b"MMOR", "Olympus ORF RAW"),
    (b"IIU\x00", "Panasonic RW2 RAW"),
    (b"8BPS", "Photoshop PSD"),
    (b"%PDF", "PDF"),
    (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
)


def _sniff_iso_media(head: bytes, ext: str) -> str | None:
    """An ISO base-media file (``ftyp`` box): HEIC/HEIF, Canon CR3 or a video, by its brand or extension."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    brand = head[8:12]
    if brand in HEIF_BRANDS or ext in (".heic", ".heif"):
        return "HEIC/HEIF"
    if brand == b"crx ":
        return "Canon CR3 RAW"
    if brand in VIDEO_BRANDS or ext in (".mp4", ".mov", ".m4v", ".3gp"):
        return "a video (MP4/MOV), not a photo"
    return None


def _sniff_extension(ext: str) -> str | None:
    """HEIC/HEIF or a camera RAW format, named by the file's extension alone."""
    if ext in (".heic", ".heif"):
        return "HEIC/HEIF"
    if ext in RAW_EXTENSIONS:
        return f"{RAW_EXTENSIONS[ext]} RAW"
    return None


def _sniff_signature(head: bytes) -> str | None:
    """A refused format named by its leading bytes (:data:`REFUSED_SIGNATURES`, and Canon CR2's TIFF header)."""
    if head[:4] == b"II*\x00" and head[8:10] == b"CR":
        return "Canon CR2 RAW"
    return next((name for prefix, name in REFUSED_SIGNATURES if head.startswith(prefix)), None)


def _sniff_svg(head: bytes, ext: str) -> str | None:
    if ext in (".svg", ".svgz"):
        return "SVG (vector graphics)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in head.lower()):
        return "SVG (vector graphics)"
    return None


def sniff_unsupported(path: Path, head: bytes) -> str | None:
    """The name of a format we refuse, from the file's first bytes or its extension; None if not one of those."""
    ext = path.suffix.lower()
    return _sniff_iso_media(head, ext) or _sniff_extension(ext) or _sniff_signature(head) or _sniff_svg(head, ext)


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@contextmanager
def _pil_guard(path: Path, allow_large: bool) -> Iterator[None]:
    """Turn PIL's warnings and errors into our one-line errors; ``allow_large`` lifts PIL's own bomb limit (we
    check the size ourselves against a hard limit before decoding)."""
    saved = Image.MAX_IMAGE_PIXELS
    if allow_large:
        Image.MAX_IMAGE_PIXELS = int(HARD_LIMIT_MEGAPIXELS * 1e6)
    try:
        with warnings.catch_warnings():
            # A DecompressionBombWarning becomes an error we catch below, not a line on stderr.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _fail(path, f"image is too large to decode safely ({err})",
                    "downscale it first" if allow_large
                    else "downscale it, or pass --max-megapixels N to have it downscaled") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _check_path(path: Path, kind: str) -> bytes:
    """The first 64 bytes of ``path`` after checking it is a non-empty readable file."""
    if not path.exists():
        raise _fail(path, f"{kind} file not found", "check the path")
    if path.is_dir():
        raise _fail(path, "is a folder, not an image", f"give an image file{' (or use batch mode)' if kind == 'input' else ''}")
    if not path.is_file():
        raise _fail(path, "is not a regular file", "give an image file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as err:
        raise _fail(path, f"cannot be read ({err.strerror or err})", "check its permissions") from None
    if size == 0:
        raise _fail(path, "is empty (0 bytes)", "the file was probably not copied or downloaded completely")
    return head


def _open(path: Path, head: bytes, allow_large: bool) -> Image.Image:
    """Open (header only) and validate the format."""
    unsupported = sniff_unsupported(path, head)
    if unsupported:
        raise _fail(path, f"{unsupported} is not supported", CONVERT_HINT)
    with _pil_guard(path, allow_large):
        try:
            im = Image.open(path)
        except UnidentifiedImageError:
            if _looks_like_text(head):
                raise _fail(path, "is a text file, not an image", "give a JPEG, PNG, WebP, BMP or TIFF photo") from None
            raise _fail(path, "is not an image or is corrupt (format not recognised)",
                        "give a JPEG, PNG, WebP, BMP or TIFF photo") from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise _fail(path, f"cannot be read as an image ({err})", "the file is corrupt; export it again") from None
    fmt = im.format or "?"
    if fmt not in SUPPORTED_FORMATS:
        im.close()
        raise _fail(path, f"{fmt} images are not supported", CONVERT_HINT)
    if fmt == "TIFF" and DNG_VERSION_TAG in getattr(im, "tag_v2", {}):
        im.close()
        raise _fail(path, "DNG RAW is not supported", CONVERT_HINT)
    return im


def _decode(path: Path, im: Image.Image, target_pixels: float | None) -> Image.Image:
    """Fully decode frame 0 (so that truncation shows here); JPEGs larger than ``target_pixels`` decode reduced."""
    if target_pixels and im.format in ("JPEG", "MPO") and im.width * im.height > target_pixels:
        # DCT-domain reduction by 1/2, 1/4 or 1/8: never below the requested size, much less memory.
        scale = math.sqrt(target_pixels / (im.width * im.height))
        im.draft(im.mode, (max(1, int(im.width * scale)), max(1, int(im.height * scale))))
    try:
        im.seek(0)
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError, TypeError) as err:
        msg = str(err) or type(err).__name__
        what = "is truncated" if "truncated" in msg.lower() else f"is corrupt ({msg})"
        raise _fail(path, f"image {what}: the file is damaged or incompletely copied",
                    "export or download it again") from None
    return im


def _orient(path: Path, im: Image.Image, warn: Callable[[str], None]) -> Image.Image:
    try:
        out = ImageOps.exif_transpose(im)
    except Exception as err:  # broken EXIF must not make a readable photo unusable
        warn(f"{path.name}: EXIF orientation could not be read ({type(err).__name__}); using the stored orientation")
        return im
    return out if out is not None else im


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """One channel of any numeric type -> uint8.

    8-bit data is kept; 16-bit (and wider integers within 0..65535, as 16-bit PNG/TIFF decode) is divided by 257;
    floats in [0, 1] are scaled by 255; anything else (signed data, HDR floats) is stretched over its own range.
    """
    a = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if array.dtype.kind == "f":
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif not (lo >= 0.0 and hi <= 255.0):
            a = (a - lo) / max(hi - lo, 1e-12) * 255.0
    elif array.dtype.itemsize > 1:
        if lo >= 0.0 and hi <= 65535.0:
            a = a / 257.0
        else:
            a = (a - lo) / max(hi - lo, 1e-12) * 255.0
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def to_rgb_alpha(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL mode -> ((H, W, 3) uint8 RGB, (H, W) uint8 alpha or None when the image has no alpha)."""
    mode = im.mode
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
    elif mode in ("1", "L") and "transparency" in im.info:
        im = im.convert("LA")
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        grey = _to_uint8(np.asarray(im))
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode in ("LA", "La", "PA"):
        la = np.asarray(im.convert("LA"))
        return np.repeat(la[..., :1], 3, axis=2).copy(), la[..., 1].copy()
    if mode in ("RGBA", "RGBa"):
        rgba = np.asarray(im.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), rgba[..., 3].copy()
    if mode == "CMYK":
        im = _cmyk_to_rgb(im)
    elif mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy(), None


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """CMYK -> sRGB through the embedded ICC profile when there is one (naive conversion otherwise)."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception as err:  # a broken profile only costs colour accuracy
            log.debug("CMYK ICC conversion failed (%s); using the naive conversion", err)
    return im.convert("RGB")


def _resize(rgb: np.ndarray, alpha: np.ndarray | None, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Area-correct downscale of rgb (and alpha) to ``size`` = (width, height)."""
    if alpha is not None:
        # Resize premultiplied so that the colour of transparent pixels does not bleed into the edges.
        out = Image.fromarray(np.dstack([rgb, alpha]), "RGBA").convert("RGBa")
        out = out.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0).convert("RGBA")
        a = np.asarray(out)
        return np.ascontiguousarray(a[..., :3]), a[..., 3].copy()
    out = Image.fromarray(rgb, "RGB").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(out).copy(), None


def load_image(path: str | Path, cfg: InputConfig | None = None) -> LoadedImage:
    """Load, validate and normalise a photo.

    Returns a :class:`LoadedImage` with rgb (H, W, 3) uint8, EXIF orientation applied, alpha (H, W) uint8 or None.
    ``original_size`` is the (width, height) of the full-resolution photo after EXIF orientation, before any
    ``max_megapixels`` downscale. Non-fatal issues (animation, downscale) are in ``warnings``.

    Raises :class:`BadInputError` (exit 3) for anything that makes the file unusable.
    """
    cfg = cfg or InputConfig()
    path = Path(path)
    notes: list[str] = []
    head = _check_path(path, "input")
    if cfg.max_megapixels is not None and cfg.max_megapixels <= 0:
        raise UsageError(f"--max-megapixels must be positive (got {cfg.max_megapixels})")
    limit_mp = cfg.max_megapixels if cfg.max_megapixels else BOMB_MEGAPIXELS
    im = _open(path, head, allow_large=bool(cfg.max_megapixels))
    with im:
        w, h = im.size
        mp = w * h / 1e6
        if min(w, h) < cfg.min_side:
            raise _fail(path, f"image is too small ({w}x{h} px; the short side must be at least {cfg.min_side} px)",
                        "use a larger photo of the person")
        if mp > HARD_LIMIT_MEGAPIXELS or (not cfg.max_megapixels and mp > BOMB_MEGAPIXELS):
            todo = ("downscale it first" if mp > HARD_LIMIT_MEGAPIXELS
                    else f"pass --max-megapixels {int(BOMB_MEGAPIXELS)} (or lower) to downscale it")
            raise _fail(path, f"image is {w}x{h} = {mp:.0f} megapixels, above the "
                        f"{HARD_LIMIT_MEGAPIXELS if mp > HARD_LIMIT_MEGAPIXELS else BOMB_MEGAPIXELS:.0f} MP limit", todo)
        n_frames = int(getattr(im, "n_frames", 1) or 1)
        if n_frames > 1 and im.format != "MPO":  # MPO's extra frames are stereo/depth views, not an animation
            notes.append(f"{path.name} is animated ({n_frames} frames); using the first frame")
        with _pil_guard(path, allow_large=bool(cfg.max_megapixels)):
            im = _decode(path, im, limit_mp * 1e6)
        im = _orient(path, im, notes.append)
        try:
            rgb, alpha = to_rgb_alpha(im)
        except (ValueError, OSError) as err:
            raise _fail(path, f"colour mode {im.mode} cannot be converted ({err})", CONVERT_HINT) from None

    # original_size: full resolution, oriented (a JPEG draft decode is smaller, so scale back up).
    oriented_full = (w, h) if (rgb.shape[1] >= rgb.shape[0]) == (w >= h) else (h, w)
    height, width = rgb.shape[:2]
    if width * height > limit_mp * 1e6:
        scale = math.sqrt(limit_mp * 1e6 / (width * height))
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        rgb, alpha = _resize(rgb, alpha, size)
    if rgb.shape[:2] != (height, width) or (width, height) != oriented_full:
        notes.append(f"{path.name} ({oriented_full[0]}x{oriented_full[1]}, {mp:.1f} MP) was downscaled to "
                     f"{rgb.shape[1]}x{rgb.shape[0]} (--max-megapixels {cfg.max_megapixels:g})")
    if min(rgb.shape[:2]) < cfg.min_side:
        raise _fail(path, f"downscaled to {rgb.shape[1]}x{rgb.shape[0]} px, below the {cfg.min_side} px minimum",
                    "raise --max-megapixels")
    return LoadedImage(rgb=rgb, alpha=alpha, source=str(path), original_size=oriented_full, warnings=notes)


def load_image_stage(path: str | Path, cfg: InputConfig, ctx: StageContext) -> LoadedImage:
    """The pipeline's ``load`` stage: :func:`load_image`, with its warnings reported through ``ctx``."""
    ctx.progress(0.0, f"loading {Path(path).name}")
    image = load_image(path, cfg)
    for message in image.warnings:
        ctx.warn(message)
    ctx.progress(1.0, f"{image.size[0]}x{image.size[1]}{' with alpha' if image.alpha is not None else ''}")
    return image


#: A user mask whose aspect ratio differs from the photo's by more than this (relative) is refused.
MASK_ASPECT_TOLERANCE = 0.01


def load_mask(path: str | Path, size: tuple[int, int], warn: Callable[[str], None] | None = None) -> np.ndarray:
    """A user mask file (white = person; any mode) as (H, W) bool at the photo's ``size`` = (width, height).

    A mask with alpha counts transparent pixels as background. A mask of another size but the same aspect ratio is
    resized (with a warning through ``warn``); a different aspect ratio is a :class:`BadInputError`.
    """
    path = Path(path)
    warn = warn or log.warning
    head = _check_path(path, "mask")
    im = _open(path, head, allow_large=False)
    with im:
        with _pil_guard(path, allow_large=False):
            im = _decode(path, im, None)
        im = _orient(path, im, warn)
        rgb, alpha = to_rgb_alpha(im)
    grey = rgb.astype(np.float32).mean(axis=2)
    if alpha is not None:
        grey = grey * (alpha.astype(np.float32) / 255.0)
    mh, mw = grey.shape
    w, h = size
    if (mw, mh) != (w, h):
        if abs((mw / mh) / (w / h) - 1.0) > MASK_ASPECT_TOLERANCE:
            raise _fail(path, f"mask is {mw}x{mh} but the photo is {w}x{h} (a different aspect ratio)",
                        "give a mask made for this photo (same size)")
        warn(f"mask {path.name} is {mw}x{mh}, the photo {w}x{h}; resizing the mask")
        grey = np.asarray(Image.fromarray(grey, "F").resize((w, h), Image.Resampling.BILINEAR))
    return grey > 127.5
