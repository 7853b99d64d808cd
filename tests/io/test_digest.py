"""Digests of files and of settings: the identities the work-dir cache and the benchmark key on."""

from __future__ import annotations

import hashlib
from pathlib import Path

from human3d.io.digest import file_digest, json_digest


def test_file_digest_is_the_hash_of_the_bytes_in_any_algorithm(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # more than one 1 MiB chunk
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert file_digest(p) == hashlib.sha256(data).hexdigest()
    assert file_digest(p, "md5") == hashlib.md5(data).hexdigest()


def test_json_digest_ignores_key_order_and_sees_every_value() -> None:
    a = {"stage": "carve", "config": {"iterations": 70, "resolution": 384}, "path": Path("x")}
    b = {"path": Path("x"), "config": {"resolution": 384, "iterations": 70}, "stage": "carve"}
    assert json_digest(a) == json_digest(b)
    assert json_digest(a) == hashlib.sha256(
        b'{"config": {"iterations": 70, "resolution": 384}, "path": "x", "stage": "carve"}').hexdigest()
    assert json_digest({**a, "config": {"iterations": 71, "resolution": 384}}) != json_digest(a)
