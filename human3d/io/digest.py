"""File digests: the identity of a photo in the work-dir cache key, of a weights file, of a benchmark input."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    """The hex digest of a file's bytes by ``algo`` (any :func:`hashlib.new` name), read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
