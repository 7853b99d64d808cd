"""Many inputs in one run: expansion in a deterministic order, safe output names, failure isolation, resume, and a
``summary.json`` that records every input's outcome.

Exit status of a batch: 0 every input succeeded (or was already done), 1 some failed, 2 usage error.

Many workers, one batch (any number of processes, on one machine or many sharing the output folder). The protocol,
all in ``<output folder>/.human3d-batch/``:

* **claim** (:func:`claim_input`): before working on an output, a worker creates ``claims/<output>.<n>.claim``
  with ``O_EXCL`` (atomic, also on NFS), holding its owner, host and pid, and a heartbeat thread touches it every
  few seconds. A claim is **stale** when its pid is dead on the same host, or its heartbeat is older than
  ``stale_after_s`` (judged on the file system's clock). A stale claim is taken over by creating generation
  ``n + 1`` with ``O_EXCL``: of several workers trying at once exactly one succeeds, and a live claim is never
  removed by anyone but its owner.
* **record** (:func:`write_record`): each outcome is its own file ``records/<output>.json``, written atomically
  by the worker that computed it, then the claim is released.
* **summary** (:func:`rebuild_summary`): ``summary.json`` is rebuilt from every record (atomically) after each
  outcome, so no writer erases another's results.

A worker skips outputs whose record was written since it started (by anyone) or that are done (record ``ok`` and
the file present, unless ``overwrite``); it waits for outputs claimed by live workers, taking them over if those
die, so that when any worker exits, every input of its list has a record.

Another executor (threads, Ray tasks on other machines) follows the same steps for each input::

    claim = claim_input(batch_dir, dst.name, {"input": str(src), "output": str(dst)})
    if claim is not None:              # None: a live worker has it (wait, or move on)
        with claim:                    # released on exit, also on errors
            outcome = ...              # compute; an ItemOutcome with its status
            write_record(batch_dir, dst.name, outcome)
        rebuild_summary(summary_path, batch_dir)
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from human3d import __version__
from human3d.errors import EXIT_INTERNAL, EXIT_OK, EXIT_SOME_FAILED, BadInputError, Human3DError, UsageError
from human3d.io.atomic import atomic_write_text, host_name, pid_alive, remove_stale_temporaries
from human3d.io.meshes import FORMATS, companion_files

if TYPE_CHECKING:
    from human3d.executors import ExecutorSettings

#: Suffixes picked up when a folder is given. Formats we cannot read are included on purpose, so that the
#: summary says why they failed instead of silently skipping them.
IMAGE_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .png .webp .bmp .tif .tiff .gif "
    ".heic .heif .avif .svg .cr2 .cr3 .nef .arw .dng .raf .orf .rw2 .psd".split()
)
SUMMARY_FILE = "summary.json"
BATCH_DIR = ".human3d-batch"
#: A claim whose heartbeat is older than this is taken over (a worker on another machine that died).
CLAIM_STALE_AFTER_S = 120.0
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
    worker: str | None = None
    """``pid@host`` of the worker that recorded this outcome."""


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
        c = self.counts
        return EXIT_SOME_FAILED if c["failed"] or c["pending"] or self.interrupted else EXIT_OK

    def to_dict(self) -> dict:
        d = asdict(self)
        d["counts"] = self.counts
        d["exit_code"] = self.exit_code
        return d


#: process(input, output, work_dir) -> (warnings, timings, backends). Raises Human3DError for user-fixable failures.
ProcessFn = Callable[[Path, Path, Path | None], tuple[list[str], dict[str, float], dict[str, str]]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def worker_id() -> str:
    """This process as ``pid@host``."""
    return f"{os.getpid()}@{host_name()}"


# -- the claim / record / summary protocol --------------------------------------------------------------------------

def fs_now(folder: Path) -> float:
    """The current time on the clock of the file system holding ``folder`` (the clock claims' mtimes use, so
    machines with skewed clocks agree on a heartbeat's age)."""
    probe = folder / f".now-{worker_id()}"
    probe.touch()
    return probe.stat().st_mtime


@dataclass
class Claim:
    """A held claim on one output: keep it while working, then :meth:`release` it (a context manager too)."""

    key: str
    path: Path
    took_over: dict | None = None
    """The stale claim's content when this one replaced it (its worker died mid-item)."""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def start_heartbeat(self, interval_s: float) -> None:
        def beat() -> None:
            while not self._stop.wait(interval_s):
                with contextlib.suppress(OSError):
                    os.utime(self.path)

        threading.Thread(target=beat, name=f"human3d-claim-{self.key}", daemon=True).start()

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _claims(batch_dir: Path, key: str) -> list[tuple[int, Path]]:
    """(generation, path) of every claim file of ``key``, newest generation last."""
    found = []
    for p in (batch_dir / "claims").glob(glob.escape(key) + ".*.claim"):
        stem, _, gen = p.name[: -len(".claim")].rpartition(".")
        if stem == key and gen.isdigit():
            found.append((int(gen), p))
    return sorted(found)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def claim_is_stale(path: Path, *, stale_after_s: float = CLAIM_STALE_AFTER_S, now: float | None = None) -> bool:
    """A claim whose worker is dead (same host, pid gone) or whose heartbeat is older than ``stale_after_s``."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return False  # released meanwhile: not stale, simply gone
    info = _read_json(path)  # None while its owner is still writing it: judged by age alone
    if info and info.get("host") == host_name() and isinstance(info.get("pid"), int) and not pid_alive(info["pid"]):
        return True
    now = fs_now(path.parent) if now is None else now
    return now - mtime > stale_after_s


def claim_input(batch_dir: Path, key: str, info: dict | None = None, *,
                stale_after_s: float = CLAIM_STALE_AFTER_S, heartbeat_s: float | None = None) -> Claim | None:
    """Claim output ``key`` (a file name in the output folder) for this worker, or None when a live worker holds it.

    Atomic: the claim file is created with O_EXCL; a stale claim of generation n is replaced by creating
    generation n + 1 the same way, so exactly one of the workers racing for it wins. ``info`` (input, output) is
    stored in the claim with the owner, host and pid. The returned claim's heartbeat runs until it is released.
    """
    claims_dir = batch_dir / "claims"
    claims_dir.mkdir(parents=True, exist_ok=True)
    existing = _claims(batch_dir, key)
    took_over = None
    if existing:
        gen, current = existing[-1]
        if not claim_is_stale(current, stale_after_s=stale_after_s):
            return None
        took_over = _read_json(current) or {}
        gen += 1
    else:
        gen = 0
    path = claims_dir / f"{key}.{gen}.claim"
    content = {"owner": worker_id(), "host": host_name(), "pid": os.getpid(), "created": time.time(), **(info or {})}
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None  # another worker claimed (or took over) it first
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(content))
        fh.flush()
        os.fsync(fh.fileno())
    for _, old in existing:  # the generations replaced; only their dead owners could still care
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    claim = Claim(key, path, took_over)
    claim.start_heartbeat(heartbeat_s if heartbeat_s is not None else max(0.5, stale_after_s / 6))
    return claim


def read_record(batch_dir: Path, key: str) -> tuple[ItemOutcome, float] | None:
    """The recorded outcome of output ``key`` and when it was recorded (file-system clock), or None."""
    path = batch_dir / "records" / f"{key}.json"
    data = _read_json(path)
    if data is None:
        return None
    names = {f.name for f in fields(ItemOutcome)}
    try:
        return ItemOutcome(**{k: v for k, v in data.items() if k in names}), path.stat().st_mtime
    except (TypeError, OSError):
        return None


def write_record(batch_dir: Path, key: str, outcome: ItemOutcome, *, only_if_absent: bool = False) -> bool:
    """Record ``outcome`` of output ``key`` atomically (``only_if_absent``: a placeholder that never replaces
    another record). Returns whether it was written."""
    records = batch_dir / "records"
    records.mkdir(parents=True, exist_ok=True)
    path = records / f"{key}.json"
    text = json.dumps(asdict(outcome), indent=2)
    if only_if_absent:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return True
    atomic_write_text(path, text)
    return True


def rebuild_summary(summary_path: Path, batch_dir: Path | None = None, *, interrupted: bool = False,
                    started: str | None = None) -> BatchSummary:
    """``summary.json`` rebuilt from every record in ``batch_dir`` (default: beside the summary), written
    atomically; each output appears once, with the status its worker recorded."""
    batch_dir = batch_dir or summary_path.parent / BATCH_DIR
    items = []
    for path in sorted((batch_dir / "records").glob("*.json"), key=_natural_key):
        got = read_record(batch_dir, path.name[: -len(".json")])
        if got is not None:
            items.append(got[0])
    old = _read_json(summary_path) or {}
    summary = BatchSummary(items=items, started=old.get("started") or started or _now())
    summary.interrupted = interrupted
    if not summary.counts["pending"]:
        summary.finished = _now()
    atomic_write_text(summary_path, json.dumps(summary.to_dict(), indent=2))
    return summary


# -- running a batch ------------------------------------------------------------------------------------------------

def _run_item(src: Path, dst: Path, process: ProcessFn, item: ItemOutcome, *, fmt: str, overwrite: bool,
              work_dir: Path | None, debug: bool) -> None:
    """Compute one input into ``item`` (or skip it: its output exists); failures are recorded, never raised."""
    t0 = time.perf_counter()
    if dst.exists() and not overwrite:
        item.status, item.error = "skipped", "output exists (pass --overwrite to redo it)"
        return
    before = {p for p in companion_files(dst, fmt) if p.exists()}
    item_work = work_dir / dst.stem if work_dir else None
    try:
        if not src.is_file():
            raise BadInputError(f"{src} does not exist or is not a file")
        item.warnings, item.timings, item.backends = process(src, dst, item_work)
        item.status, item.error, item.exit_code = "ok", None, 0
    except Exception as err:  # isolation: a bug on one input must not stop the batch
        known = _out_of_memory(err) or (err if isinstance(err, Human3DError) else None)
        item.status = "failed"
        if known is not None:
            item.error, item.exit_code = str(known), known.exit_code
        else:
            item.exit_code = EXIT_INTERNAL
            item.error = f"internal error: {type(err).__name__}: {err} (rerun with --debug and report it)"
            if debug:
                traceback.print_exc()
    finally:
        item.seconds = round(time.perf_counter() - t0, 3)
    if item.status == "failed" and not dst.exists():
        for p in companion_files(dst, fmt):  # never leave half of an export behind, never remove what was there
            if p not in before:
                p.unlink(missing_ok=True)


def _out_of_memory(err: BaseException) -> Human3DError | None:
    """Running out of GPU memory or RAM anywhere under ``err`` (a stage's wraps it as an internal error) as the
    error of its own exit code; None for anything else."""
    if isinstance(err, Human3DError) and err.exit_code != EXIT_INTERNAL:
        return None  # the user's error, already told
    from human3d.weights import out_of_memory, out_of_memory_cause

    cause = out_of_memory_cause(err)
    return None if cause is None else out_of_memory("reconstructing it", cause)


def _remove_leftovers(dst: Path, fmt: str, stale: dict) -> None:
    """A dead worker's half export of ``dst`` (its material/texture written after it claimed, the main file not)."""
    if dst.exists():
        return
    since = float(stale.get("created", float("inf"))) - 2.0  # its clock; a margin for coarse mtimes
    for p in companion_files(dst, fmt):
        with contextlib.suppress(OSError):
            if p != dst and p.exists() and p.stat().st_mtime >= since:
                p.unlink()


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
    stale_after_s: float = CLAIM_STALE_AFTER_S,
    poll_s: float = 0.5,
    executor: str = "local",
    jobs: int = 1,
    executor_settings: ExecutorSettings | None = None,
    on_message: Callable[[str], None] | None = None,
    report: bool = False,
) -> BatchSummary:
    """Run ``process`` for every input; one failure never stops the others. Returns this batch's outcomes.

    ``executor="ray"`` (one Ray task per photo) or ``jobs=N`` (N local worker processes), or a full
    :class:`~human3d.executors.ExecutorSettings`, spread the batch (:mod:`human3d.executors`); ``process`` must
    then be picklable, e.g. ``ReconstructTask(config)``, and ``on_message`` receives the workers' progress lines.

    An input whose output exists is skipped unless ``overwrite`` (that is how an interrupted batch resumes). With a
    ``summary_path``, concurrent batches into its folder share the work through the claim/record protocol (module
    docstring): each output is computed once, and ``summary.json`` is rebuilt from every record after each input.

    With ``report`` the summary's folder gets a report.html at the end (:mod:`human3d.report`).
    """
    if len(inputs) != len(outputs):
        raise ValueError("inputs and outputs differ in length")
    if executor_settings is not None or executor != "local" or jobs != 1:
        from human3d.executors import ExecutorSettings, run_with_executor

        spread = executor_settings or ExecutorSettings(executor=executor, jobs=jobs)
        spread_summary = run_with_executor(
            inputs, outputs, process, settings=spread, summary_path=summary_path, fmt=fmt, overwrite=overwrite,
            work_dir=work_dir, config=getattr(process, "config", None), on_item=on_item, on_message=on_message,
            debug=debug)
        if report and summary_path is not None:
            _write_report(summary_path)
        return spread_summary
    batch = _LocalBatch(inputs, outputs, process, summary_path=summary_path, fmt=fmt, overwrite=overwrite,
                        work_dir=work_dir, debug=debug, stale_after_s=stale_after_s)
    try:
        batch.run(poll_s, on_item)
    finally:
        if report and summary_path is not None:
            _write_report(summary_path)
    return batch.summary


def _write_report(summary_path: Path) -> None:
    from human3d.report import write_batch_report

    write_batch_report(summary_path.parent)


class _LocalBatch:
    """One worker in this process working through a batch; with a summary path it follows the claim/record
    protocol of the module docstring, so other workers (processes or machines) can share the batch."""

    def __init__(self, inputs: list[Path], outputs: list[Path], process: ProcessFn, *, summary_path: Path | None,
                 fmt: str, overwrite: bool, work_dir: Path | None, debug: bool, stale_after_s: float) -> None:
        self.inputs, self.outputs, self.process = inputs, outputs, process
        self.summary_path, self.fmt, self.overwrite = summary_path, fmt, overwrite
        self.work_dir, self.debug, self.stale_after_s = work_dir, debug, stale_after_s
        self.items = [ItemOutcome(str(p), "pending", str(o)) for p, o in zip(inputs, outputs)]
        self.summary = BatchSummary(items=self.items, started=_now())
        for folder in {o.parent for o in outputs}:
            if folder.is_dir():
                remove_stale_temporaries(folder, max_age_s=stale_after_s)
        self.batch_dir = summary_path.parent / BATCH_DIR if summary_path is not None else None
        self.since = 0.0
        if self.batch_dir is not None:
            self.batch_dir.mkdir(parents=True, exist_ok=True)
            self.since = fs_now(self.batch_dir)
            for item in self.items:  # placeholders: the summary lists every input from the start
                write_record(self.batch_dir, Path(item.output).name, item, only_if_absent=True)
            rebuild_summary(summary_path, self.batch_dir, started=self.summary.started)

    def settled(self, i: int) -> bool:
        """Decided for this batch: recorded (by anyone) since it started, or done before and kept."""
        got = read_record(self.batch_dir, self.outputs[i].name) if self.batch_dir is not None else None
        if got is None or got[0].status == "pending":
            return False
        rec, when = got
        if when >= self.since or (not self.overwrite and rec.status in ("ok", "skipped") and self.outputs[i].exists()):
            self.items[i] = rec
            return True
        return False

    def _compute(self, i: int, item: ItemOutcome) -> None:
        _run_item(self.inputs[i], self.outputs[i], self.process, item, fmt=self.fmt, overwrite=self.overwrite,
                  work_dir=self.work_dir, debug=self.debug)

    def attempt(self, i: int) -> bool:
        """Work on input i unless another live worker holds it; True when it is decided."""
        src, dst = self.inputs[i], self.outputs[i]
        if self.batch_dir is None:
            self._compute(i, self.items[i])
            return True
        if self.settled(i):
            return True
        claim = claim_input(self.batch_dir, dst.name, {"input": str(src), "output": str(dst)},
                            stale_after_s=self.stale_after_s)
        if claim is None:
            return False
        with claim:
            if self.settled(i):  # finished by another worker between our look and our claim
                return True
            if claim.took_over is not None:
                _remove_leftovers(dst, self.fmt, claim.took_over)
            item = self.items[i] = ItemOutcome(str(src), "pending", str(dst), worker=worker_id())
            self._compute(i, item)
            write_record(self.batch_dir, dst.name, item)
        rebuild_summary(self.summary_path, self.batch_dir, started=self.summary.started)
        return True

    def _attempt_all(self, indices: Iterable[int], on_item: Callable[[int, ItemOutcome], None] | None) -> list[int]:
        """Attempt each input; the ones still held by other live workers."""
        waiting = []
        for i in indices:
            if self.attempt(i):
                if on_item:
                    on_item(i, self.items[i])
            else:
                waiting.append(i)
        return waiting

    def run(self, poll_s: float, on_item: Callable[[int, ItemOutcome], None] | None) -> None:
        """Every input decided (computed here, or recorded by another worker); the summary rebuilt at the end,
        also when interrupted."""
        summary = self.summary
        try:
            waiting = self._attempt_all(range(len(self.inputs)), on_item)
            while waiting:  # held by other workers: wait for their records, or take over from the dead
                time.sleep(poll_s)
                waiting = self._attempt_all(waiting, on_item)
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            summary.items = self.items
            summary.finished = None if summary.interrupted else _now()
            if self.batch_dir is not None:
                with contextlib.suppress(OSError):
                    rebuild_summary(self.summary_path, self.batch_dir, interrupted=summary.interrupted,
                                    started=summary.started)
                    for probe in (self.batch_dir / f".now-{worker_id()}",
                                  self.batch_dir / "claims" / f".now-{worker_id()}"):
                        probe.unlink(missing_ok=True)
