"""Digests: the identity of a photo in the work-dir cache key, of a weights file, of a benchmark input (files),
and of the settings a cached result was made with (JSON data)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    """The hex digest of a file's bytes by ``algo`` (any :func:`hashlib.new` name), read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def json_digest(data: Any) -> str:
    """The sha256 hex digest of ``data`` as canonical JSON (keys sorted; what JSON cannot hold written by ``str``)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
