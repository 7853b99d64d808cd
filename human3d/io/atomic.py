"""Atomic writes: a temporary file in the destination folder, fsync, then rename over the target.

A reader (or an interrupted run) therefore sees either no file or the whole file, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from human3d.errors import OutputExistsError, UsageError

TMP_PREFIX = ".human3d-tmp-"
#: A temporary's name says who writes it (``.human3d-tmp-<pid>@<host>~XXXX.ext``), so that a sweep removes only
#: those of dead writers and never one another live run (a concurrent batch) is still writing.
_OWNED_TMP = re.compile(re.escape(TMP_PREFIX) + r"(\d+)@([A-Za-z0-9._]+)~")


def host_name() -> str:
    """This machine's name, reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "host"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


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
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}@{host_name()}~", suffix="".join(target.suffixes[-1:]), dir=target.parent)
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


def remove_stale_temporaries(folder: str | Path, *, max_age_s: float = 3600.0) -> int:
    """Delete temporaries left by killed runs in ``folder``; returns how many were removed.

    A temporary of a live process on this machine is kept (a concurrent run is writing it); one of another machine
    only once it is older than ``max_age_s``.
    """
    n, host = 0, host_name()
    for p in Path(folder).glob(TMP_PREFIX + "*"):
        owner = _OWNED_TMP.match(p.name)
        with contextlib.suppress(OSError):
            if owner and owner.group(2) == host and pid_alive(int(owner.group(1))):
                continue
            if owner and owner.group(2) != host and time.time() - p.stat().st_mtime < max_age_s:
                continue
            p.unlink()
            n += 1
    return n


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_new_files(files: Iterable[Path], *, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse before any work: a file that is one of ``inputs`` (never, even with ``overwrite``), an existing file
    without ``overwrite``, a folder where a file goes, and a destination folder that cannot be written."""
    files, inputs = [Path(f) for f in files], [Path(i) for i in inputs]
    for f in files:
        for i in inputs:
            if _same_file(f, i):
                raise UsageError(f"output {f} would replace the input {i}; choose another output name or folder")
    for f in files:
        if f.is_dir():
            raise UsageError(f"output {f} is a folder; give a file name")
        if f.exists() and not overwrite:
            raise OutputExistsError(f"{f} already exists; pass --overwrite to replace it")
    for folder in sorted({f.parent for f in files}):
        check_writable_folder(folder)


def check_writable_folder(folder: Path) -> None:
    """The folder (or the nearest existing folder above it, where it will be created) accepts new files: probed
    with a real temporary file, so permissions, read-only mounts and full disks all count."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write into {folder}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}@{host_name()}~", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"cannot write into {existing} ({err.strerror or type(err).__name__}); choose a folder "
                         "you can write to with -o, or fix its permissions") from None
