from __future__ import annotations

import pytest

from human3d.errors import OutputExistsError
from human3d.io.atomic import TMP_PREFIX, atomic_path, atomic_write_bytes, remove_stale_temporaries


def test_failed_write_leaves_neither_target_nor_temporary(tmp_path):
    target = tmp_path / "out.glb"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.glb"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new but broken")
            raise RuntimeError
    assert target.read_bytes() == b"old"


def test_overwrite_guard_and_success(tmp_path):
    target = tmp_path / "sub" / "x.bin"
    atomic_write_bytes(target, b"1")
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(target, b"2", overwrite=False)
    atomic_write_bytes(target, b"3")
    assert target.read_bytes() == b"3"


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / f"{TMP_PREFIX}abc.glb").write_bytes(b"x")
    (tmp_path / "keep.glb").write_bytes(b"y")
    assert remove_stale_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.glb"]


def test_outputs_get_normal_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "x.glb", b"1")
    finally:
        os.umask(old)
    assert (tmp_path / "x.glb").stat().st_mode & 0o777 == 0o644
