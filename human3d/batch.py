"""Many inputs in one run: expansion in a deterministic order, safe output names, failure isolation, resume, and a
``summary.json`` that records every input's outcome.

Exit status of a batch: 0 every input succeeded (or was already done), 1 some failed, 2 usage error.
"""

from __future__ import annotations

import glob
import json
import re
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from human3d import __version__
from human3d.errors import EXIT_INTERNAL, EXIT_OK, EXIT_SOME_FAILED, BadInputError, Human3DError, UsageError
from human3d.io.atomic import atomic_write_text, remove_stale_temporaries
from human3d.io.meshes import FORMATS, companion_files

#: Suffixes picked up when a folder is given. Formats we cannot read are included on purpose, so that the
#: summary says why they failed instead of silently skipping them.
IMAGE_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .png .webp .bmp .tif .tiff .gif "
    ".heic .heif .avif .svg .cr2 .cr3 .nef .arw .dng .raf .orf .rw2 .psd".split()
)
SUMMARY_FILE = "summary.json"
_GLOB_CHARS = re.compile(r"[*?\[]")


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def expand_inputs(items: Iterable[str | Path]) -> list[Path]:
    """Files, folders (their image files, not recursive) and glob patterns -> a de-duplicated, ordered list.

    Order: the items in the order given; within a folder or a glob, natural sort of the path. A plain path that
    does not exist is kept (it becomes a failed input with a clear reason); a glob or folder that matches nothing
    is a usage error.
    """
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve() if p.exists() else p.absolute()
        if key not in seen:
            seen.add(key)
            out.append(p)

    for item in items:
        text = str(item)
        p = Path(text).expanduser()
        if p.is_dir():
            files = sorted((f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                            and not f.name.startswith(".")), key=_natural_key)
            if not files:
                raise UsageError(f"folder {p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES)[:6])}, ...)")
            for f in files:
                add(f)
        elif not p.exists() and _GLOB_CHARS.search(text):
            matches = sorted((Path(m) for m in glob.glob(str(p), recursive=True) if Path(m).is_file()),
                             key=_natural_key)
            if not matches:
                raise UsageError(f"the pattern {text!r} matches no files")
            for f in matches:
                add(f)
        else:
            add(p)
    if not out:
        raise UsageError("no inputs given")
    return out


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_stem(name: str) -> str:
    """A file-name stem safe on every OS: ASCII letters, digits, '.', '_', '-'; never hidden, never empty."""
    stem = _UNSAFE.sub("_", name).strip("._-")
    stem = stem[:120]
    if not stem or stem.upper() in {"CON", "PRN", "AUX", "NUL"} or re.fullmatch(r"(?i)(COM|LPT)\d", stem):
        stem = f"image_{stem}" if stem else "image"
    return stem


def output_names(inputs: list[Path], out_dir: Path, fmt: str) -> list[Path]:
    """One output path per input in ``out_dir``; names collide case-insensitively get _2, _3, ... in input order."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    used: set[str] = set()
    paths = []
    for p in inputs:
        base = sanitize_stem(p.stem)
        stem, n = base, 1
        while stem.lower() in used:
            n += 1
            stem = f"{base}_{n}"
        used.add(stem.lower())
        paths.append(out_dir / f"{stem}.{fmt}")
    return paths


@dataclass
class ItemOutcome:
    input: str
    status: str  # "ok" | "failed" | "skipped" | "pending"
    output: str | None = None
    seconds: float = 0.0
    error: str | None = None
    exit_code: int = 0
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)


@dataclass
class BatchSummary:
    items: list[ItemOutcome]
    started: str
    finished: str | None = None
    interrupted: bool = False
    version: str = __version__

    @property
    def counts(self) -> dict[str, int]:
        c = {"ok": 0, "failed": 0, "skipped": 0, "pending": 0}
        for it in self.items:
            c[it.status] = c.get(it.status, 0) + 1
        return c

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.counts["failed"] or self.interrupted else EXIT_OK

    def to_dict(self) -> dict:
        d = asdict(self)
        d["counts"] = self.counts
        d["exit_code"] = self.exit_code
        return d


#: process(input, output, work_dir) -> (warnings, timings, backends). Raises Human3DError for user-fixable failures.
ProcessFn = Callable[[Path, Path, Path | None], tuple[list[str], dict[str, float], dict[str, str]]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_batch(
    inputs: list[Path],
    outputs: list[Path],
    process: ProcessFn,
    *,
    summary_path: Path | None,
    fmt: str,
    overwrite: bool = False,
    work_dir: Path | None = None,
    on_item: Callable[[int, ItemOutcome], None] | None = None,
    debug: bool = False,
    report: bool = False,
) -> BatchSummary:
    """Run ``process`` for every input; one failure never stops the others.

    An input whose output exists is skipped unless ``overwrite`` (that is how an interrupted batch resumes). The
    summary is rewritten atomically after each input, so a killed batch still records what it finished. With
    ``report`` the summary's folder gets a report.html at the end (:mod:`human3d.report`).
    """
    if len(inputs) != len(outputs):
        raise ValueError("inputs and outputs differ in length")
    summary = BatchSummary(items=[ItemOutcome(str(p), "pending", str(o)) for p, o in zip(inputs, outputs)],
                           started=_now())
    for folder in {o.parent for o in outputs}:
        if folder.is_dir():
            remove_stale_temporaries(folder)

    def write_summary() -> None:
        if summary_path is not None:
            atomic_write_text(summary_path, json.dumps(summary.to_dict(), indent=2))

    try:
        for i, (src, dst) in enumerate(zip(inputs, outputs)):
            item = summary.items[i]
            t0 = time.perf_counter()
            if dst.exists() and not overwrite:
                item.status = "skipped"
                item.error = "output exists (pass --overwrite to redo it)"
            else:
                item_work = work_dir / dst.stem if work_dir else None
                try:
                    if not src.is_file():
                        raise BadInputError(f"{src} does not exist or is not a file")
                    item.warnings, item.timings, item.backends = process(src, dst, item_work)
                    item.status = "ok"
                except Human3DError as err:
                    item.status, item.error, item.exit_code = "failed", str(err), err.exit_code
                except Exception as err:  # isolation: a bug on one input must not stop the batch
                    item.status, item.exit_code = "failed", EXIT_INTERNAL
                    item.error = f"internal error: {type(err).__name__}: {err} (rerun with --debug and report it)"
                    if debug:
                        traceback.print_exc()
                if item.status == "failed":
                    for p in companion_files(dst, fmt):  # never leave half of an export behind
                        if not p.exists() or p == dst:
                            continue
                        if not dst.exists():
                            p.unlink(missing_ok=True)
            item.seconds = round(time.perf_counter() - t0, 3)
            write_summary()
            if on_item:
                on_item(i, item)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        summary.finished = _now()
        write_summary()
        if report and summary_path is not None:
            from human3d.report import write_batch_report

            write_batch_report(summary_path.parent)
    return summary
