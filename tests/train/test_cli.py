import pytest
from typer.testing import CliRunner

from human3d.cli import app
from human3d.train.skel_predictor import SkeletalImagePredictor
from tests.train.synthetic import write_skel_dataset

runner = CliRunner()


def test_train_skel_writes_a_model(tmp_path):
    data = write_skel_dataset(tmp_path / "data", n=2)
    out = tmp_path / "gskel"
    res = runner.invoke(app, ["train", "skel", "--data", str(data), "-o", str(out), "--iterations", "2",
                              "--batch-size", "2", "--no-lpips", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert SkeletalImagePredictor.from_pretrained(out).config.num_views == 6
    again = runner.invoke(app, ["train", "skel", "--data", str(data), "-o", str(out), "--iterations", "1",
                                "--no-lpips", "--device", "cpu"])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_missing_lpips_weights_is_one_line_exit_4(tmp_path):
    data = write_skel_dataset(tmp_path / "data", n=1)
    res = runner.invoke(app, ["train", "skel", "--data", str(data), "-o", str(tmp_path / "o"),
                              "--lpips-weights", str(tmp_path), "--device", "cpu"])
    assert res.exit_code == 4 and "LPIPS" in res.output
    assert "Traceback" not in res.output


def test_drpose_needs_a_gskel_folder(tmp_path):
    res = runner.invoke(app, ["train", "drpose", "--data", str(tmp_path), "--gskel", str(tmp_path / "none"),
                              "-o", str(tmp_path / "run"), "--device", "cpu"])
    assert res.exit_code == 2 and "train skel" in res.output


def test_a_damaged_or_missing_gskel_file_is_one_line_not_an_internal_error(tmp_path):
    """g_skel's weights: truncated -> damaged (exit 4), gone -> not there (exit 4); never exit 5."""
    from human3d.cli.train import _load_gskel
    from human3d.errors import EXIT_MISSING, CorruptWeightsError, MissingWeightsError
    from tests.train.test_drpose import tiny_gskel

    folder = tmp_path / "gskel"
    tiny_gskel().save_pretrained(folder)
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptWeightsError) as err:
        _load_gskel(folder)
    assert err.value.exit_code == EXIT_MISSING and "damaged or incomplete" in str(err.value)
    weights.unlink()
    with pytest.raises(MissingWeightsError) as err:
        _load_gskel(folder)
    assert not isinstance(err.value, CorruptWeightsError) and f"{weights} is missing" in str(err.value)
