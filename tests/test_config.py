"""The config tree as a user reaches it: --set, --config (TOML) and --print-config, and the stage seeing a value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from human3d.cli import app
from human3d.cli.reconstruct import build_config
from human3d.config import (
    ReconstructConfig,
    apply_settings,
    config_to_toml,
    load_config_file,
    preset_config,
    set_config_value,
)
from human3d.errors import UsageError

runner = CliRunner()


def _print_config(*args: str) -> str:
    r = runner.invoke(app, ["reconstruct", "--print-config", *args])
    assert r.exit_code == 0, r.output
    return r.stdout


def test_print_config_round_trips_through_config_to_the_identical_tree(tmp_path):
    text = _print_config("--preset", "fast", "--seed", "3", "--set", "carve.iterations=7",
                         "--set", "body.height_m=1.82", "--set", "texture.front_from_photo=false")
    path = tmp_path / "run.toml"
    path.write_text(text)
    again = _print_config("--config", str(path))
    assert again == text
    cfg = load_config_file(path)
    assert cfg.preset == "fast" and cfg.seed == 3
    assert cfg.carve.iterations == 7 and cfg.body.height_m == 1.82 and cfg.texture.front_from_photo is False
    assert cfg.frame.resolution == preset_config("fast").frame.resolution
    assert cfg.weights_dir is None and cfg.segment.mask_path is None  # unset fields stay unset


def test_unset_marker_resets_a_field_the_preset_or_file_had_set(tmp_path):
    cfg = preset_config("default")
    set_config_value(cfg, "body.height_m", "1.9")
    set_config_value(cfg, "body.height_m", "none")
    assert cfg.body.height_m is None
    path = tmp_path / "c.toml"
    path.write_text('[body]\nheight_m = 1.5\n# height_m = (unset)\n')
    assert load_config_file(path).body.height_m is None


def test_every_field_survives_the_round_trip():
    cfg = preset_config("quality", seed=11)
    apply_settings(cfg, ["multiview.dtype=bfloat16", "carve.edge_length_pixels=1.25", "segment.threshold=0.45"])
    tmp = Path(__import__("tempfile").mkdtemp()) / "c.toml"
    tmp.write_text(config_to_toml(cfg))
    assert dataclasses.asdict(load_config_file(tmp)) == dataclasses.asdict(cfg)


def test_precedence_preset_then_file_then_flags_then_set(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('preset = "fast"\n[segment]\nbackend = "alpha"\n[carve]\niterations = 11\n')
    cfg = build_config(None, path)
    assert cfg.preset == "fast" and cfg.segment.backend == "alpha" and cfg.carve.iterations == 11
    assert cfg.carve.resolution == preset_config("fast").carve.resolution
    cfg = build_config(None, path, ["carve.iterations=12"], segmenter="mediapipe")
    assert cfg.segment.backend == "mediapipe" and cfg.carve.iterations == 12
    cfg = build_config("quality", path)  # an explicit --preset replaces the file's base preset
    assert cfg.preset == "quality" and cfg.carve.resolution == preset_config("quality").carve.resolution
    assert cfg.carve.iterations == 11


@pytest.mark.parametrize("item, needle", [
    ("carve.iterations", "SECTION.FIELD=VALUE"),
    ("carve.nope=3", "unknown setting 'carve.nope'"),
    ("nope.iterations=3", "unknown config section 'nope'"),
    ("carve.iterations=lots", "whole number"),
    ("carve.iterations=2.5", "whole number"),
    ("carve.poisson=maybe", "true or false"),
    ("carve=3", "not a setting"),
])
def test_bad_set_items_are_one_line_usage_errors(item, needle):
    with pytest.raises(UsageError, match=needle):
        apply_settings(ReconstructConfig(), [item])
    r = runner.invoke(app, ["reconstruct", "--print-config", "--set", item])
    assert r.exit_code == 2 and needle in r.output and len(r.output.strip().splitlines()) == 1


def test_bad_config_files_are_usage_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[carve\niterations = 3\n")
    r = runner.invoke(app, ["reconstruct", "--print-config", "--config", str(bad)])
    assert r.exit_code == 2 and "not valid TOML" in r.output
    r = runner.invoke(app, ["reconstruct", "--print-config", "--config", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "does not exist" in r.output
    typo = tmp_path / "typo.toml"
    typo.write_text("[carve]\niteration = 3\n")
    r = runner.invoke(app, ["reconstruct", "--print-config", "--config", str(typo)])
    assert r.exit_code == 2 and "carve.iteration" in r.output


def test_no_input_without_print_config_is_a_usage_error():
    r = runner.invoke(app, ["reconstruct"])
    assert r.exit_code == 2 and "no input" in r.output


def test_a_set_value_reaches_the_carving_stage(tmp_path):
    from examples.demo import make_person_photo
    from human3d.pipeline import Reconstructor

    photo = make_person_photo(tmp_path / "p.png", pose="standing", seed=1, resolution=256, yaw_deg=10.0)
    cfg = build_config("fast", settings=[
        "device=cpu", "carve.iterations=3", "carve.body_refine_steps=2", "carve.resolution=64",
        "body.iterations=10", "frame.resolution=256", "multiview.resolution=256"])
    Reconstructor(cfg).run(photo, None, work_dir=tmp_path / "work", until="carve")
    report = json.loads(next((tmp_path / "work").glob("*_carve/carve_report.json")).read_text())
    assert report["iterations"] == 3


def test_a_bad_carve_setting_is_refused_by_the_cli_before_work(tmp_path):
    from PIL import Image

    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 64), (200, 180, 160)).save(photo)
    out = tmp_path / "out.glb"
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(out), "--work-dir", str(tmp_path / "w"),
                            "--set", "carve.start=sideways"])
    assert r.exit_code == 2 and "start auto, body or views" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "w").exists()
