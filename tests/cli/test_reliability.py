"""Never touch what is not ours, reject bad options before work starts (issue 14).

Every case asserts the exit code, the one-line message and that nothing in the folder changed but the requested
outputs (mtimes and digests of every file, the input included). A spy pipeline records whether any stage ran.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from human3d import pipeline
from human3d.cli import app
from human3d.io.meshes import export_mesh
from human3d.pipeline import StageSpec
from human3d.types import Cutout, LoadedImage
from tests.meshdata import textured_sphere

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
CALLS: list[str] = []


def spy_load(path, cfg, ctx):
    CALLS.append("load")
    return LoadedImage(rgb=np.zeros((4, 4, 3), np.uint8), source=str(path))


def spy_segment(image, cfg, ctx):
    CALLS.append("segment")
    return Cutout(rgb=image.rgb, mask=np.ones((4, 4), bool), bbox=(0, 0, 4, 4), backend="test")


@pytest.fixture(autouse=True)
def _no_calls_yet():
    CALLS.clear()


@pytest.fixture
def spy_pipeline(monkeypatch, stage_needing_a_package):
    monkeypatch.setattr(pipeline, "STAGES", (
        StageSpec("load", f"{__name__}:spy_load", (), "input", LoadedImage, "load image"),
        StageSpec("segment", f"{__name__}:spy_segment", ("load",), "segment", Cutout, "segment person"),
        StageSpec("body", stage_needing_a_package, ("segment",), "body", Cutout, "fit body"),
    ))


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


def refused(args: list[str], folder: Path, code: int, *needles: str) -> str:
    """Run ``human3d ARGS``: exit ``code``, one line holding every needle, no stage ran, no file changed."""
    before = snapshot(folder)
    r = runner.invoke(app, args)
    assert r.exit_code == code, (r.exit_code, r.output)
    line = one_line(r.stderr)
    for needle in needles:
        assert needle in line, line
    assert CALLS == [], CALLS
    assert snapshot(folder) == before
    return line


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "person.png"
    p.write_bytes(b"photo bytes")
    return p


# -- 1. outputs: every file a format writes, never an input -----------------------------------------------------

def test_obj_never_replaces_its_mtl_or_the_input_photo(tmp_path, spy_pipeline):
    clob = tmp_path / "clob"
    clob.mkdir()
    (clob / "person.mtl").write_text("the user's material\n")
    (clob / "person_texture.png").write_bytes(b"the input photo")
    refused(["reconstruct", str(clob / "person_texture.png"), "-o", str(clob / "person.obj")], tmp_path, 2,
            "would replace the input")
    refused(["reconstruct", str(clob / "person_texture.png"), "-o", str(clob / "person.obj"), "--overwrite"],
            tmp_path, 2, "would replace the input")
    (clob / "other.png").write_bytes(b"another photo")
    refused(["reconstruct", str(clob / "other.png"), "-o", str(clob / "person.obj")], tmp_path, 2,
            "person.mtl already exists; pass --overwrite")


@pytest.mark.parametrize("name", ["out.glb", "out.ply", "out_texture.png"])
def test_no_existing_file_of_any_format_is_replaced(tmp_path, spy_pipeline, photo, name):
    (tmp_path / name).write_bytes(b"precious")
    out = tmp_path / ("out.obj" if name.endswith(".png") else name)
    refused(["reconstruct", str(photo), "-o", str(out)], tmp_path, 2, "already exists; pass --overwrite")


def test_output_equal_to_the_input_is_refused_even_with_overwrite(tmp_path, spy_pipeline, photo):
    refused(["reconstruct", str(photo), "-o", str(photo), "--format", "glb", "--overwrite"], tmp_path, 2,
            "would replace the input")
    mask = tmp_path / "mask.glb"
    mask.write_bytes(b"a mask named oddly")
    refused(["reconstruct", str(photo), "--mask", str(mask), "-o", str(mask), "--overwrite"], tmp_path, 2,
            "would replace the input")


def test_batch_output_that_would_replace_an_input_is_refused(tmp_path, spy_pipeline):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"a")
    (folder / "a_texture.png").write_bytes(b"an input")
    refused(["reconstruct", str(folder), "-o", str(folder), "--format", "obj"], tmp_path, 2,
            "would replace the input")


def test_render_outputs_never_replace_the_mesh_or_its_texture(tmp_path):
    mesh = export_mesh(textured_sphere(subdivisions=1, texture_size=8), tmp_path / "s.obj")
    refused(["render", str(mesh), "--image", str(tmp_path / "s_texture.png"), "--overwrite"], tmp_path, 2,
            "would replace the input")
    (tmp_path / "still.png").write_bytes(b"precious")
    (tmp_path / "turn.gif").write_bytes(b"precious")
    refused(["render", str(mesh), "--image", str(tmp_path / "still.png")], tmp_path, 2, "pass --overwrite")
    refused(["render", str(mesh), "--turntable", str(tmp_path / "turn.gif")], tmp_path, 2, "pass --overwrite")


# -- 2. every option before the first stage ---------------------------------------------------------------------

@pytest.mark.parametrize("extra,needle", [
    (["--height", "-1"], "--height -1.0 is not a person's height"),
    (["--height", "nan"], "--height nan"),
    (["--height", "12"], "--height 12.0"),
    (["--seed", str(2**70)], "--seed"),
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--max-megapixels", "nan"], "--max-megapixels nan must be a positive number"),
    (["--max-megapixels", "0"], "--max-megapixels 0.0"),
    (["--max-megapixels", "inf"], "--max-megapixels inf"),
    (["--mv-backend", "nope"], "--mv-backend 'nope' is not known"),
    (["--body-model", "nope"], "--body-model 'nope' is not known"),
    (["--segmenter", "nope"], "--segmenter 'nope' is not known"),
    (["--mv-dtype", "float8"], "--mv-dtype 'float8' is not known"),
    (["--mv-masks", "paint"], "--mv-masks 'paint' is not known"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--preset", "ultra"], "unknown preset 'ultra'"),
    (["--format", "fbx"], "--format fbx is not known"),
    (["--weights-dir", "no/such/folder"], "--weights-dir no/such/folder is not a folder"),
    (["--unet", "no/such/unet"], "--unet no/such/unet does not exist"),
    (["--mask", "no/such/mask.png"], "mask file no/such/mask.png does not exist"),
])
def test_bad_option_is_exit_2_before_any_stage(tmp_path, spy_pipeline, photo, monkeypatch, extra, needle):
    monkeypatch.chdir(tmp_path)
    code = 3 if extra[0] == "--mask" else 2
    refused(["reconstruct", str(photo), "-o", str(tmp_path / "o.glb"), *extra], tmp_path, code, needle)


def test_asked_backend_without_its_weights_is_exit_4_before_any_stage(tmp_path, spy_pipeline, photo, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    refused(["reconstruct", str(photo), "--body-model", "smplx", "--weights-dir", str(tmp_path)], tmp_path, 4,
            "SMPL-X body model files")


def test_other_format_suffix_with_format_is_accepted(tmp_path, spy_pipeline, photo):
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(tmp_path / "out.xyz"), "--format", "glb"])
    assert r.exit_code == 4 and "fit body" in r.stderr.splitlines()[-1]  # it ran: the test stage missing a package stops it
    assert CALLS == ["load", "segment"]


def _mesh_file(tmp_path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    lines = [f"v {a} {b} {c}" for a, b, c in vertices] + [f"f {a} {b} {c}" for a, b, c in faces + 1]
    path = tmp_path / "m.obj"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", ["nan", "flat"])
def test_render_of_nan_or_degenerate_mesh_is_exit_3(tmp_path, kind):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)
    if kind == "nan":
        v[1, 0] = math.nan
    else:
        v[:, 1] = 0.0  # every triangle collapsed onto a line
    mesh = _mesh_file(tmp_path, v, np.array([[0, 1, 2], [1, 3, 2]]))
    line = refused(["render", str(mesh), "--image", str(tmp_path / "x.png")], tmp_path, 3, str(mesh))
    assert ("non-finite" in line) if kind == "nan" else ("degenerate" in line)


@pytest.mark.parametrize("extra,needle", [(["--size", "0"], "--size 0"), (["--frames", "0"], "--frames 0"),
                                          (["--fps", "0"], "--fps 0"), (["--azimuth", "nan"], "--azimuth nan")])
def test_render_bad_sizes_are_exit_2(tmp_path, extra, needle):
    mesh = export_mesh(textured_sphere(subdivisions=1, texture_size=8), tmp_path / "s.glb")
    refused(["render", str(mesh), "--turntable", str(tmp_path / "t.gif"), *extra], tmp_path, 2, needle)


def _huge_png_header(path: Path, side: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) +
                     chunk(b"IEND", b""))


def test_hint_does_not_repeat_a_given_max_megapixels(tmp_path):
    from human3d.config import InputConfig
    from human3d.errors import BadInputError
    from human3d.io.images import load_image

    big = tmp_path / "big.png"
    _huge_png_header(big, 30000)  # 900 MP: above every limit
    with pytest.raises(BadInputError) as err:
        load_image(big, InputConfig(max_megapixels=50))
    assert "--max-megapixels" not in str(err.value) and "downscale it first" in str(err.value)


# -- permissions: real ones (as root, the command runs as nobody so that permissions apply) ---------------------

def _run_without_override(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m human3d ARGS`` with file permissions in force (root drops the capabilities that bypass them)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    prefix = []
    if os.geteuid() == 0:
        import shutil

        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: file permissions cannot be put in force")
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]
    return subprocess.run([*prefix, sys.executable, "-m", "human3d", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def shared_dir(tmp_path_factory):
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="human3d-perm-"))
    d.chmod(0o777)
    yield d
    for p in sorted(d.rglob("*"), reverse=True):
        p.chmod(0o777)
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def test_unreadable_input_is_exit_3_and_read_only_folder_exit_2_before_work(shared_dir):
    photo = shared_dir / "person.png"
    photo.write_bytes(b"photo")
    photo.chmod(0o000)
    before = snapshot(shared_dir)
    r = _run_without_override(["reconstruct", str(photo), "-o", str(shared_dir / "out.glb")], shared_dir)
    assert r.returncode == 3, r.stderr
    assert "cannot be read (Permission denied); check its permissions" in one_line(r.stderr)
    photo.chmod(0o644)
    ro = shared_dir / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    before = snapshot(shared_dir)
    r = _run_without_override(["reconstruct", str(photo), "-o", str(ro / "out.glb")], shared_dir)
    assert r.returncode == 2, r.stderr
    assert f"cannot write into {ro} (Permission denied)" in one_line(r.stderr)
    r = _run_without_override(["reconstruct", str(shared_dir), "-o", str(ro / "batch")], shared_dir)
    assert r.returncode == 2 and "cannot write into" in one_line(r.stderr)
    assert snapshot(shared_dir) == before and not list(ro.iterdir())


# -- 5. weights verify applies the loading rules ------------------------------------------------------------------

def test_weights_verify_says_a_pickle_only_folder_needs_allow_pickle(tmp_path, monkeypatch):
    from human3d.weights import ASSETS

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    folder = tmp_path / "w" / "pshuman"
    asset = ASSETS["pshuman"]
    for rel in asset.required:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("{}")
    for group in asset.any_of:  # the pickle member of each group, and nothing else
        rel = next(f for f in group if f.endswith((".bin", ".pt")) or f.endswith("config.json"))
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"{}" if rel.endswith(".json") else b"pickle")
    before = snapshot(tmp_path)
    r = runner.invoke(app, ["weights", "verify", "pshuman", "--weights-dir", str(tmp_path / "w")])
    assert r.exit_code == 4, r.output
    assert "unet/diffusion_pytorch_model.bin is a pickle checkpoint" in r.stderr and "needs --allow-pickle" in r.stderr
    assert "ok" not in r.stderr
    r = runner.invoke(app, ["weights", "verify", "pshuman", "--weights-dir", str(tmp_path / "w"), "--allow-pickle"])
    assert r.exit_code == 0 and "pshuman: ok" in r.stderr, r.output
    assert snapshot(tmp_path) == before


# -- 3. the work-dir cache key covers weights, resolved backends, device and version ----------------------------

def test_cache_is_not_reused_after_weights_appear_or_the_version_changes(tmp_path, spy_pipeline, photo,
                                                                        monkeypatch):
    from human3d.config import preset_config
    from human3d.pipeline import Reconstructor

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    (tmp_path / "w").mkdir()
    cfg = preset_config("fast", device="auto", weights_dir=str(tmp_path / "w"))
    work = tmp_path / "work"
    Reconstructor(cfg).run(photo, work_dir=work, until="segment")
    assert CALLS == ["load", "segment"]
    CALLS.clear()
    cfg_cpu = preset_config("fast", device="cpu", weights_dir=str(tmp_path / "w"))
    res = Reconstructor(cfg_cpu).run(photo, work_dir=work, until="segment")
    import torch

    if not torch.cuda.is_available():  # auto resolved to cpu: the same device, the same results
        assert CALLS == [] and res.cached == ["load", "segment"]
    CALLS.clear()
    (tmp_path / "w" / "rembg").mkdir()
    (tmp_path / "w" / "rembg" / "u2net.onnx").write_bytes(b"a model the segmenter may now use")
    res = Reconstructor(cfg).run(photo, work_dir=work, until="segment")
    assert CALLS == ["segment"] and res.cached == ["load"]  # new weights: segmentation is redone
    CALLS.clear()
    monkeypatch.setattr(pipeline, "__version__", "99.0")
    Reconstructor(cfg).run(photo, work_dir=work, until="segment")
    assert CALLS == ["load", "segment"]


def test_resolved_multiview_backend_and_smplx_files_are_in_the_key(tmp_path, monkeypatch):
    from human3d.config import preset_config
    from human3d.pipeline import resolve_environment

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    (tmp_path / "w").mkdir()
    cfg = preset_config("fast", device="cpu", weights_dir=str(tmp_path / "w"))
    before = resolve_environment(cfg, "cpu")
    assert before["multiview"]["backend"] == "prior" and before["body"]["smplx_files"] is None
    (tmp_path / "w" / "smplx").mkdir()
    (tmp_path / "w" / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(b"model")
    after = resolve_environment(cfg, "cpu")
    assert after["body"]["smplx_files"]["files"][0][:2] == ("SMPLX_NEUTRAL.npz", 5)
    assert after["segment"] == before["segment"]


def test_a_pickle_refused_under_allow_pickle_is_not_told_to_download_again(tmp_path):
    import json
    import pickle

    import torch

    from human3d.errors import MissingWeightsError
    from human3d.multiview.loading import load_component

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text(json.dumps({
        "_class_name": "AutoencoderKL", "down_block_types": ["DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D"], "block_out_channels": [8], "norm_num_groups": 4}))
    torch.save({"x": Payload()}, vae / "diffusion_pytorch_model.bin", pickle_module=pickle)
    with pytest.raises(MissingWeightsError) as err:
        load_component("vae", vae, allow_pickle=True)
    assert "refuses even with --allow-pickle" in str(err.value) and "download them again" not in str(err.value)
    assert not (tmp_path / "ran").exists()


def test_weights_verify_refuses_smplx_pickles_that_loading_never_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    (tmp_path / "w" / "smplx").mkdir(parents=True)
    (tmp_path / "w" / "smplx" / "SMPLX_NEUTRAL.pkl").write_bytes(b"pickle")
    for extra in ([], ["--allow-pickle"]):
        r = runner.invoke(app, ["weights", "verify", "smplx", "--weights-dir", str(tmp_path / "w"), *extra])
        assert r.exit_code == 4 and "SMPLX_NEUTRAL.pkl is a pickle, which human3d never reads" in r.stderr


def test_an_edited_mask_file_changes_the_segment_key(tmp_path):
    from human3d.config import preset_config
    from human3d.pipeline import resolve_environment

    mask = tmp_path / "mask.png"
    mask.write_bytes(b"first mask")
    cfg = preset_config("fast", device="cpu")
    cfg.segment.backend, cfg.segment.mask_path = "mask", str(mask)
    first = resolve_environment(cfg, "cpu")["segment"]
    mask.write_bytes(b"an edited mask")
    assert resolve_environment(cfg, "cpu")["segment"] != first
