"""The stage framework, tested with small stages defined here (the real stages have their own tests)."""

from __future__ import annotations

import numpy as np
import pytest

from human3d import pipeline
from human3d.config import preset_config
from human3d.errors import BadInputError, InternalError, MissingBackendError
from human3d.pipeline import Reconstructor, StageSpec
from human3d.types import Cutout, LoadedImage

CALLS: list[str] = []


def load_stage(path, cfg, ctx):
    CALLS.append("load")
    data = np.frombuffer(path.read_bytes(), np.uint8)
    ctx.progress(0.5, "half")
    return LoadedImage(rgb=np.resize(data, (4, 4, 3)).copy(), source=str(path))


def cut_stage(image, cfg, ctx):
    CALLS.append("cut")
    ctx.warn("cut warns")
    mask = image.rgb[..., 0] > int(cfg.threshold * 255)
    return Cutout(rgb=image.rgb, mask=mask, bbox=(0, 0, 4, 4), backend="test")


def bad_stage(image, cfg, ctx):
    raise BadInputError("this photo is unusable")


def buggy_stage(image, cfg, ctx):
    raise KeyError("boom")


def _stages(second: str) -> tuple[StageSpec, ...]:
    return (
        StageSpec("load", f"{__name__}:load_stage", (), "input", LoadedImage, "load"),
        StageSpec("segment", f"{__name__}:{second}", ("load",), "segment", Cutout, "segment"),
    )


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "photo.bin"
    p.write_bytes(bytes(range(48)))
    CALLS.clear()
    return p


def test_runs_stages_in_order_with_events_and_timings(monkeypatch, photo):
    monkeypatch.setattr(pipeline, "STAGES", _stages("cut_stage"))
    events = []
    res = Reconstructor(preset_config("fast"), on_event=events.append).run(photo, until="segment")
    assert CALLS == ["load", "cut"]
    assert set(res.timings) == {"load", "segment"}
    assert res.warnings == ["cut warns"] and res.backends["segment"] == "test"
    kinds = [(e.kind, e.stage) for e in events]
    assert kinds == [("start", "load"), ("progress", "load"), ("done", "load"), ("start", "segment"),
                     ("done", "segment")]


def test_work_dir_resumes_and_config_change_recomputes_only_downstream(monkeypatch, photo, tmp_path):
    monkeypatch.setattr(pipeline, "STAGES", _stages("cut_stage"))
    work = tmp_path / "work"
    cfg = preset_config("default")
    first = Reconstructor(cfg).run(photo, work_dir=work, until="segment")
    assert CALLS == ["load", "cut"] and (work / "1_segment" / "arrays.npz").is_file()
    CALLS.clear()
    again = Reconstructor(cfg).run(photo, work_dir=work, until="segment")
    assert CALLS == [] and again.cached == ["load", "segment"]
    np.testing.assert_array_equal(again.results["segment"].mask, first.results["segment"].mask)
    cfg.segment.threshold = 0.9
    Reconstructor(cfg).run(photo, work_dir=work, until="segment")
    assert CALLS == ["cut"]
    CALLS.clear()
    photo.write_bytes(bytes(range(1, 49)))  # a different input invalidates everything
    Reconstructor(cfg).run(photo, work_dir=work, until="segment")
    assert CALLS == ["load", "cut"]


def test_damaged_cache_is_recomputed(monkeypatch, photo, tmp_path):
    monkeypatch.setattr(pipeline, "STAGES", _stages("cut_stage"))
    work = tmp_path / "work"
    Reconstructor(preset_config()).run(photo, work_dir=work, until="segment")
    (work / "1_segment" / "arrays.npz").write_bytes(b"garbage")
    CALLS.clear()
    Reconstructor(preset_config()).run(photo, work_dir=work, until="segment")
    assert CALLS == ["cut"]


def test_user_errors_pass_through_and_bugs_become_internal_errors(monkeypatch, photo):
    monkeypatch.setattr(pipeline, "STAGES", _stages("bad_stage"))
    with pytest.raises(BadInputError):
        Reconstructor(preset_config()).run(photo)
    monkeypatch.setattr(pipeline, "STAGES", _stages("buggy_stage"))
    with pytest.raises(InternalError, match="KeyError"):
        Reconstructor(preset_config()).run(photo)


def test_a_stage_needing_a_missing_package_names_it(monkeypatch, photo, stage_needing_a_package):
    stages = _stages("cut_stage") + (StageSpec("body", stage_needing_a_package, ("segment",), "body", Cutout,
                                               "fit body"),)
    monkeypatch.setattr(pipeline, "STAGES", stages)
    with pytest.raises(MissingBackendError, match="'fit body' stage needs the Python package "
                                                  "'h3d_package_that_is_not_installed'") as err:
        Reconstructor(preset_config()).run(photo)
    assert err.value.exit_code == 4 and "make install" in str(err.value)
    assert CALLS == ["load", "cut"]


def test_a_module_of_human3d_that_does_not_import_is_an_incomplete_install(monkeypatch, photo):
    stages = _stages("cut_stage") + (StageSpec("body", "human3d.no_such_module:fit", ("segment",), "body", Cutout,
                                               "fit body"),)
    monkeypatch.setattr(pipeline, "STAGES", stages)
    with pytest.raises(InternalError, match="'fit body' stage does not import .*install it again") as err:
        Reconstructor(preset_config()).run(photo)
    assert err.value.exit_code == 5


def test_every_stage_resolves():
    for spec in pipeline.STAGES:
        assert callable(pipeline.resolve_stage(spec)), spec.target


def test_presets_differ_and_reject_unknown_names():
    fast, default, quality = (preset_config(p) for p in ("fast", "default", "quality"))
    assert fast.carve.iterations < default.carve.iterations < quality.carve.iterations
    with pytest.raises(KeyError):
        preset_config("ultra")


def test_face_options_are_refused_before_any_stage_runs(monkeypatch, photo):
    from human3d.errors import UsageError

    monkeypatch.setattr(pipeline, "STAGES", _stages("cut_stage"))
    cfg = preset_config("fast")
    cfg.texture.faces = 10
    with pytest.raises(UsageError, match="at least 100"):
        Reconstructor(cfg).run(photo, until="segment")
    assert CALLS == []


@pytest.mark.parametrize("field, value", [("start", "sideways"), ("flip_interval", 0), ("iterations", -1)])
def test_bad_carve_settings_are_refused_before_any_stage_runs(monkeypatch, photo, field, value):
    from human3d.errors import UsageError

    monkeypatch.setattr(pipeline, "STAGES", _stages("cut_stage"))
    cfg = preset_config("fast")
    setattr(cfg.carve, field, value)
    with pytest.raises(UsageError, match="carve settings are invalid"):
        Reconstructor(cfg).run(photo, until="segment")
    assert CALLS == []


def test_a_result_type_change_changes_the_cache_key(photo):
    """A work dir written before a stage's dataclass gained fields is recomputed, not loaded with defaults."""
    import dataclasses

    from human3d.types import Framed, Mesh

    @dataclasses.dataclass
    class OldMesh(pipeline.StageResult):  # Mesh before the metric transform travelled with it
        vertices: np.ndarray
        faces: np.ndarray

    rec = Reconstructor(preset_config("fast"))
    new = StageSpec("carve", "x:y", ("multiview",), "carve", Mesh, "carve")
    old = dataclasses.replace(new, result_type=OldMesh)
    assert rec._stage_key(new, "up") != rec._stage_key(old, "up")
    assert rec._stage_key(new, "up") == rec._stage_key(new, "up")
    assert ["height_m", "float"] in pipeline.result_schema(Mesh)
    # a nested result's fields count too (Framed.photo is a FrontPhoto)
    nested = [x[1] for x in pipeline.result_schema(Framed) if x[0] == "photo" and isinstance(x[1], list)]
    assert nested and ["resolution", "int"] in nested[0]


def seen_from_behind(image, cfg, ctx):
    """A mesh whose topmost vertex lies at +x, marked as a person photographed from behind."""
    from human3d.types import TexturedMesh

    v = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1], [0.8, 2, 0.2]], np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
    return TexturedMesh(vertices=v, faces=f, height_m=1.0, canonical_height=2.0, facing_away=True)


def test_the_export_turns_a_mesh_seen_from_behind_from_what_the_mesh_carries(photo, tmp_path):
    import trimesh

    from human3d.types import TexturedMesh

    stages = (StageSpec("load", f"{__name__}:load_stage", (), "input", LoadedImage, "load"),
              StageSpec("texture", f"{__name__}:seen_from_behind", ("load",), "texture", TexturedMesh, "texture"))
    cfg = preset_config("fast")
    cfg.export.format = "ply"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "STAGES", stages)
        Reconstructor(cfg).run(photo, tmp_path / "out.ply")
    v = np.asarray(trimesh.load(tmp_path / "out.ply", process=False).vertices)
    top = v[np.argmax(v[:, 1])]
    # unturned (re-centred, half size) the top would be at x = +0.15, z = -0.15; turned about +Y both flip
    assert top[0] == pytest.approx(-0.15, abs=1e-5) and top[2] == pytest.approx(0.15, abs=1e-5)
    assert np.ptp(v[:, 1]) == pytest.approx(1.0, abs=1e-5)  # scaled by the height the mesh carries
