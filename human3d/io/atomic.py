"""Atomic writes: a temporary file in the destination folder, fsync, then rename over the target.

A reader (or an interrupted run) therefore sees either no file or the whole file, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from human3d.errors import OutputExistsError

TMP_PREFIX = ".human3d-tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``, on error remove it.

    The temporary name keeps ``target``'s suffix so libraries that pick a format from it still work.
    """
    target = Path(target)
    if not overwrite and target.exists():
        raise OutputExistsError(f"{target} already exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix="".join(target.suffixes[-1:]), dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(target: str | Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str, *, overwrite: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"), overwrite=overwrite)


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete temporaries left by a killed run in ``folder``; returns how many were removed."""
    n = 0
    for p in Path(folder).glob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n
