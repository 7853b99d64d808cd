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
