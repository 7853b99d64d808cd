"""Rig options on the command line are checked before any work."""

from __future__ import annotations

from typer.testing import CliRunner

from human3d.cli import app

runner = CliRunner()


def test_bad_rest_pose_or_clip_is_a_one_line_usage_error(tmp_path):
    for args, words in ((["--rest-pose", "x-pose"], "rest pose"), (["--animation", "dance"], "animation"),
                        (["--no-rig", "--animation", "walk"], "need the rig"),
                        (["-o", str(tmp_path / "a.obj"), "--rest-pose", "t-pose"], "OBJ is static")):
        r = runner.invoke(app, ["reconstruct", str(tmp_path / "missing.png"), *args])
        assert r.exit_code == 2, (args, r.output)
        assert words in r.stderr and "Traceback" not in r.output


def test_help_says_obj_and_ply_stay_static():
    r = runner.invoke(app, ["reconstruct", "--help"], env={"COLUMNS": "200"})
    assert "--rest-pose" in r.stdout and "--animation" in r.stdout and "--no-rig" in r.stdout
    assert "OBJ and PLY are static" in " ".join(r.stdout.split())
