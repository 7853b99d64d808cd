"""io/images.py: every supported format and colour mode, EXIF orientation, and every bad input (files made here)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from human3d.config import InputConfig
from human3d.context import StageContext
from human3d.errors import EXIT_BAD_INPUT, BadInputError, UsageError
from human3d.io.images import load_image, load_image_stage, load_mask


def _photo(w: int = 96, h: int = 80) -> np.ndarray:
    """(h, w, 3) uint8 with smooth gradients (lossy codecs keep them close)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 90)], -1).astype(np.uint8)


def _bad(path: Path, cfg: InputConfig | None = None) -> str:
    with pytest.raises(BadInputError) as info:
        load_image(path, cfg or InputConfig())
    err = info.value
    assert err.exit_code == EXIT_BAD_INPUT
    msg = str(err)
    assert "\n" not in msg and ";" in msg  # one line: what is wrong; what to do
    return msg


# -- good files ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext,fmt,tol", [("jpg", "JPEG", 12), ("png", "PNG", 0), ("webp", "WEBP", 14),
                                         ("bmp", "BMP", 0), ("tif", "TIFF", 0), ("gif", "GIF", 40)])
def test_formats_load_as_rgb(tmp_path, ext, fmt, tol):
    rgb = _photo()
    path = tmp_path / f"p.{ext}"
    Image.fromarray(rgb).save(path, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    img = load_image(path)
    assert img.rgb.shape == (80, 96, 3) and img.rgb.dtype == np.uint8
    assert img.alpha is None and img.size == (96, 80) and img.original_size == (96, 80)
    assert np.abs(img.rgb.astype(int) - rgb).mean() <= tol
    assert img.warnings == []


def test_rgba_png_keeps_alpha_and_opaque_alpha_is_kept(tmp_path):
    rgba = np.dstack([_photo(), np.full((80, 96), 255, np.uint8)])
    rgba[10:30, 10:40, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(img.alpha, rgba[..., 3])
    np.testing.assert_array_equal(img.rgb, rgba[..., :3])
    Image.fromarray(np.dstack([_photo(), np.full((80, 96), 255, np.uint8)]), "RGBA").save(tmp_path / "o.png")
    opaque = load_image(tmp_path / "o.png")
    assert opaque.alpha is not None and (opaque.alpha == 255).all()


def test_palette_with_and_without_transparency(tmp_path):
    rgb = _photo()
    Image.fromarray(rgb).quantize(16).save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.alpha is None and img.rgb.shape == (80, 96, 3)
    assert np.abs(img.rgb.astype(int) - rgb).mean() < 20
    pal = Image.fromarray(rgb).quantize(16)
    pal.info["transparency"] = int(np.asarray(pal)[0, 0])
    pal.save(tmp_path / "pt.png", transparency=int(np.asarray(pal)[0, 0]))
    img = load_image(tmp_path / "pt.png")
    assert img.alpha is not None and img.alpha[0, 0] == 0 and img.alpha.max() == 255


def test_cmyk_jpeg_and_tiff(tmp_path):
    rgb = np.zeros((70, 70, 3), np.uint8)
    rgb[:, :35] = (255, 0, 0)
    rgb[:, 35:] = (0, 0, 255)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=95)
    cmyk.save(tmp_path / "c.tif")
    for name in ("c.jpg", "c.tif"):
        assert Image.open(tmp_path / name).mode == "CMYK"
        img = load_image(tmp_path / name)
        assert img.rgb.shape == (70, 70, 3)
        assert np.abs(img.rgb[5, 5].astype(int) - (255, 0, 0)).max() < 30
        assert np.abs(img.rgb[5, 60].astype(int) - (0, 0, 255)).max() < 30


def test_greyscale_modes(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 80), (70, 1))  # (70, 80) in [0, 1]
    expected = np.round(ramp * 255)
    Image.fromarray((ramp * 255).astype(np.uint8), "L").save(tmp_path / "l.png")
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "i16.png")
    Image.fromarray((ramp * 65535).astype(np.int32)).save(tmp_path / "i32.tif")
    Image.fromarray(ramp.astype(np.float32)).save(tmp_path / "f.tif")
    Image.fromarray(ramp > 0.5).save(tmp_path / "one.bmp")
    for name in ("l.png", "i16.png", "i32.tif", "f.tif"):
        img = load_image(tmp_path / name)
        assert img.rgb.shape == (70, 80, 3) and img.alpha is None, name
        assert (img.rgb[..., 0] == img.rgb[..., 2]).all()
        assert np.abs(img.rgb[..., 1].astype(float) - expected).max() <= 1.5, name
    one = load_image(tmp_path / "one.bmp")
    assert set(np.unique(one.rgb)) == {0, 255}


def test_greyscale_with_alpha(tmp_path):
    la = np.zeros((70, 80, 2), np.uint8)
    la[..., 0] = 120
    la[20:50, 20:60, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    assert (img.rgb == 120).all()
    np.testing.assert_array_equal(img.alpha, la[..., 1])


def test_16bit_rgb(tmp_path):
    cv2 = pytest.importorskip("cv2")
    bgr = np.zeros((70, 80, 3), np.uint16)
    bgr[..., 2] = 65535  # red
    bgr[..., 1] = 32896  # half green
    for ext in ("png", "tif"):
        assert cv2.imwrite(str(tmp_path / f"x.{ext}"), bgr)
        img = load_image(tmp_path / f"x.{ext}")
        assert np.abs(img.rgb[0, 0].astype(int) - (255, 128, 0)).max() <= 1


@pytest.mark.parametrize("orientation,expected", [(3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)),
                                                  (8, lambda a: np.rot90(a, 1)), (2, lambda a: a[:, ::-1])])
def test_exif_orientation(tmp_path, orientation, expected):
    stored = np.zeros((64, 100, 3), np.uint8)  # landscape as stored
    stored[:16, :16] = (255, 0, 0)  # stored top-left
    stored[-16:, -16:] = (0, 0, 255)  # stored bottom-right
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.jpg", quality=95, exif=exif)
    img = load_image(tmp_path / "o.jpg")
    want = expected(stored)
    assert img.rgb.shape == want.shape
    assert img.original_size == (want.shape[1], want.shape[0])
    assert np.abs(img.rgb.astype(int) - want).mean() < 4


def test_animated_gif_first_frame_with_warning(tmp_path):
    frames = [Image.new("RGB", (80, 70), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:], duration=100)
    for name in ("a.gif", "a.webp", "a.png"):
        ctx = StageContext()
        img = load_image_stage(tmp_path / name, InputConfig(), ctx)
        assert np.abs(img.rgb.astype(int) - (255, 0, 0)).max() <= 2, name
        assert any("animated" in w and "first frame" in w for w in ctx.warnings), name


def test_downscale_with_max_megapixels(tmp_path):
    Image.fromarray(_photo(400, 300)).save(tmp_path / "p.png")
    ctx = StageContext()
    img = load_image_stage(tmp_path / "p.png", InputConfig(max_megapixels=0.03), ctx)
    w, h = img.size
    assert w * h <= 30_000 and w * h > 25_000 and abs(w / h - 4 / 3) < 0.02
    assert img.original_size == (400, 300)
    assert any("downscaled" in m for m in ctx.warnings)
    rgba = np.dstack([_photo(400, 300), np.zeros((300, 400), np.uint8)])
    rgba[100:200, 100:300, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    small = load_image(tmp_path / "a.png", InputConfig(max_megapixels=0.03))
    assert small.alpha is not None and small.alpha.shape == small.rgb.shape[:2]
    assert small.alpha[small.size[1] // 2, small.size[0] // 2] == 255 and small.alpha[2, 2] == 0
    with pytest.raises(UsageError):
        load_image(tmp_path / "a.png", InputConfig(max_megapixels=0))


def test_bomb_refused_or_downscaled(tmp_path):
    big = tmp_path / "big.jpg"
    Image.new("L", (8000, 6500), 128).save(big, quality=50)  # 52 MP
    msg = _bad(big)
    assert "52 megapixels" in msg and "--max-megapixels" in msg
    img = load_image(big, InputConfig(max_megapixels=2))
    assert img.size[0] * img.size[1] <= 2_000_000 and img.original_size == (8000, 6500)
    assert abs(img.size[0] / img.size[1] - 8000 / 6500) < 0.01 and (np.abs(img.rgb.astype(int) - 128) <= 2).all()


def _png_with_header_size(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR claims width x height (valid CRC) over a tiny image's data: a bomb header."""
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_bomb_header_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    _png_with_header_size(p, 10_000, 6_000)  # 60 MP claimed
    assert "--max-megapixels" in _bad(p)
    _png_with_header_size(p, 40_000, 40_000)  # 1.6 GP: PIL's own DecompressionBombError
    _bad(p)
    _bad(p, InputConfig(max_megapixels=10))  # too large even to downscale


# -- bad files -------------------------------------------------------------------------------------------------
def test_missing_directory_empty_text_random(tmp_path):
    assert "not found" in _bad(tmp_path / "nope.jpg")
    assert "folder" in _bad(tmp_path)
    (tmp_path / "zero.jpg").write_bytes(b"")
    assert "empty" in _bad(tmp_path / "zero.jpg")
    (tmp_path / "notes.jpg").write_text("this is not a photo\n" * 20)
    assert "text file" in _bad(tmp_path / "notes.jpg")
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    assert "not an image" in _bad(tmp_path / "noise.png")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated(tmp_path, fmt):
    p = tmp_path / f"t.{fmt.lower()}"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(p, fmt)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    msg = _bad(p)
    assert "truncated" in msg or "corrupt" in msg


def test_corrupt_png_data(tmp_path):
    p = tmp_path / "c.png"
    Image.fromarray(_photo(200, 200)).save(p)
    data = bytearray(p.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 40: idat + 60] = b"\x00" * 20  # damage the compressed stream; CRC no longer matches
    p.write_bytes(bytes(data))
    assert "corrupt" in _bad(p) or "truncated" in _bad(p)


def test_too_small(tmp_path):
    Image.new("RGB", (63, 200)).save(tmp_path / "s.png")
    assert "too small" in _bad(tmp_path / "s.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    assert load_image(tmp_path / "ok.png").size == (64, 64)


@pytest.mark.parametrize("name,data,fmt", [
    ("x.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC"),
    ("disguised.jpg", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC"),
    ("x.svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"/>', "SVG"),
    ("disguised.png", b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>', "SVG"),
    ("x.cr2", b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\x00" * 64, "CR2"),
    ("x.raf", b"FUJIFILMCCD-RAW 0201FF383501" + b"\x00" * 64, "RAF"),
    ("x.psd", b"8BPS\x00\x01" + b"\x00" * 64, "PSD"),
    ("x.pdf", b"%PDF-1.7\n" + b"\x00" * 64, "PDF"),
])
def test_unsupported_formats_named(tmp_path, name, data, fmt):
    (tmp_path / name).write_bytes(data)
    msg = _bad(tmp_path / name)
    assert fmt in msg and "PNG or JPEG" in msg


def test_raw_in_tiff_container(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "x.nef", "TIFF")  # NEF/ARW/DNG are TIFF inside
    assert "NEF" in _bad(tmp_path / "x.nef")
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[50706] = b"\x01\x04\x00\x00"  # DNGVersion
    Image.fromarray(_photo()).save(tmp_path / "x.tif", tiffinfo=info)
    assert "DNG" in _bad(tmp_path / "x.tif")


def test_other_pil_formats_refused(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "x.ico")
    assert "ICO" in _bad(tmp_path / "x.ico")


# -- masks -----------------------------------------------------------------------------------------------------
def test_load_mask_modes_and_resize(tmp_path):
    m = np.zeros((80, 120), np.uint8)
    m[20:60, 30:90] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png", (120, 80)), m > 0)
    Image.fromarray(np.dstack([m, m, m])).save(tmp_path / "m.jpg", quality=95)
    assert (load_mask(tmp_path / "m.jpg", (120, 80)) == (m > 0)).mean() > 0.99
    rgba = np.dstack([np.full((80, 120, 3), 255, np.uint8), m])  # white everywhere, person = opaque part
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m_rgba.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m_rgba.png", (120, 80)), m > 0)
    warnings: list[str] = []
    big = load_mask(tmp_path / "m.png", (240, 160), warn=warnings.append)
    assert big.shape == (160, 240) and warnings and "resizing" in warnings[0]
    assert big[40:120, 60:180].all() and not big[:38].any()


def test_load_mask_aspect_mismatch(tmp_path):
    Image.new("L", (120, 80), 255).save(tmp_path / "m.png")
    with pytest.raises(BadInputError, match="aspect"):
        load_mask(tmp_path / "m.png", (120, 120))
    with pytest.raises(BadInputError, match="not found"):
        load_mask(tmp_path / "none.png", (120, 80))
