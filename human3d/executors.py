"""Where a batch's photos are computed: this process, N local worker processes, or Ray tasks on a cluster.

All three share the claim / record / summary protocol of :mod:`human3d.batch`, so any mix of them (and any number
of plain ``human3d reconstruct`` runs) can work on one output folder at once: each photo is claimed before work,
computed once, recorded by the worker that computed it, and ``summary.json`` is rebuilt from every record.

* ``local``, ``jobs=1``: :func:`human3d.batch.run_batch` in this process.
* ``local``, ``jobs=N``: N worker processes, each running the same batch through the protocol (so they split the
  photos); torch threads are split so that N x threads <= cores. A worker that dies leaves a claim that a live
  worker (or a replacement the driver starts) takes over.
* ``ray``: one Ray task per photo, with resource requests that follow the backend (one GPU per task for
  ``pshuman``, CPUs for the embedded path) and ``max_retries`` when a worker process dies. With ``storage="shared"``
  the tasks write into the output folder themselves (it must be storage every node sees); with
  ``storage="driver"`` the photo travels to the task and the result files come back through Ray's object store,
  and the driver writes them.

Workers keep models warm: the body model and the diffusion pipeline are cached per process
(:mod:`human3d.body.models`, :mod:`human3d.multiview.pshuman`), and pool workers and Ray's worker processes live
for many photos, so after the first photo a worker pays for the compute alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import queue as queue_module
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from human3d.batch import (
    BATCH_DIR,
    BatchSummary,
    ItemOutcome,
    ProcessFn,
    _now,
    claim_input,
    read_record,
    rebuild_summary,
    run_batch,
    worker_id,
    write_record,
)
from human3d.config import ReconstructConfig
from human3d.errors import MissingBackendError, UsageError

EXECUTORS = ("local", "ray")
RAY_STORAGE = ("shared", "driver")
#: How a worker reports to the driver of a local pool: ("item", index, outcome dict) or ("event", label, text).
Message = tuple[str, Any, Any]


@dataclass
class ExecutorSettings:
    """How a batch is spread over processes or machines."""

    executor: str = "local"
    """local | ray."""
    jobs: int = 1
    """Local worker processes (``local`` only)."""
    ray_address: str | None = None
    """A running Ray cluster (HOST:PORT, as its head node prints it); None starts a local one for this batch."""
    ray_cpus_per_task: float | None = None
    """CPUs each Ray task asks for (default: 1, or 2 with the pshuman backend's data loading)."""
    ray_gpus_per_task: float | None = None
    """GPUs each Ray task asks for (default: 1 with the pshuman backend, else 0)."""
    max_retries: int = 2
    """How often a photo is retried when its worker process dies (a Ray task, or a pool worker)."""
    storage: str = "shared"
    """Ray only. shared: tasks write into the output folder (it must be shared storage); driver: results come
    back through the object store and the driver writes them."""

    def validate(self) -> None:
        if self.executor not in EXECUTORS:
            raise UsageError(f"--executor {self.executor!r} is not known; use one of {', '.join(EXECUTORS)}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or not 1 <= self.jobs <= 256:
            raise UsageError(f"--jobs {self.jobs} must be a whole number from 1 to 256")
        if self.executor == "ray" and self.jobs != 1:
            raise UsageError("--jobs is for the local executor; with --executor ray the cluster's workers run "
                             "the photos (size it with --ray-cpus-per-task / --ray-gpus-per-task)")
        for flag, value in (("--ray-cpus-per-task", self.ray_cpus_per_task),
                            ("--ray-gpus-per-task", self.ray_gpus_per_task)):
            if value is not None and not (value >= 0 and value == value and value < 1e6):
                raise UsageError(f"{flag} {value} must be a number >= 0")
        if not 0 <= self.max_retries <= 100:
            raise UsageError(f"max_retries {self.max_retries} must be from 0 to 100")
        if self.storage not in RAY_STORAGE:
            raise UsageError(f"--ray-storage {self.storage!r} is not known; use one of {', '.join(RAY_STORAGE)}")
        if self.executor == "ray":
            import_ray()


def import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise MissingBackendError("--executor ray needs Ray: pip install 'human3d[ray]' (or pip install ray), "
                                  "on the driver and on every node of the cluster") from err
    return ray


# -- the task every executor runs ------------------------------------------------------------------------------------

_RECONSTRUCTORS: dict[str, Any] = {}
_EVENT_SINK: Callable[[str, str], None] | None = None


@dataclass
class ReconstructTask:
    """A picklable :data:`~human3d.batch.ProcessFn`: reconstruct one photo with ``config``.

    A worker process builds one :class:`~human3d.pipeline.Reconstructor` per config and keeps it (and, through
    the stages' own caches, the models it loaded) for every later photo.
    """

    config: ReconstructConfig
    overwrite: bool = False
    preview: bool = False
    """Also write the result's preview into ``<output folder>/previews/`` (as a local batch does)."""

    def __call__(self, src: Path, dst: Path, work: Path | None) -> tuple[list[str], dict[str, float], dict[str, str]]:
        from human3d.errors import OutputExistsError
        from human3d.io.previews import add_result_preview, preview_path
        from human3d.pipeline import Reconstructor

        key = repr(dataclasses.asdict(self.config))
        rec = _RECONSTRUCTORS.get(key)
        if rec is None:
            rec = _RECONSTRUCTORS[key] = Reconstructor(self.config)
        label = Path(src).name
        sink = _EVENT_SINK
        rec.on_event = (lambda e: sink(label, f"{e.title}: done in {e.seconds:.1f} s") if e.kind == "done" else None) \
            if sink is not None else (lambda e: None)
        preview = preview_path(Path(dst), Path(dst).parent / "previews") if self.preview else None
        if preview is not None and preview.exists() and not self.overwrite:
            raise OutputExistsError(f"{preview} already exists; pass --overwrite to replace it")
        res = rec.run(src, dst, work_dir=work, overwrite=self.overwrite)
        if preview is not None:
            add_result_preview(res, Path(dst), preview, overwrite=self.overwrite)
        return res.warnings, {k: round(v, 3) for k, v in res.timings.items()}, res.backends


def _ordered_outcomes(outputs: list[Path], batch_dir: Path, fallback: list[ItemOutcome]) -> list[ItemOutcome]:
    """This batch's outcomes in input order, read back from the records (the single source of truth)."""
    items = []
    for dst, old in zip(outputs, fallback):
        got = read_record(batch_dir, dst.name)
        items.append(got[0] if got is not None else old)
    return items


# -- local worker processes ------------------------------------------------------------------------------------------

def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
        torch.set_num_interop_threads(1)


def _pool_worker(inputs: list[Path], outputs: list[Path], task: ProcessFn, summary_path: Path, fmt: str,
                 overwrite: bool, work_dir: Path | None, threads: int, messages: Any, debug: bool) -> None:
    """One local worker: the whole batch through the claim protocol, reporting to the driver."""
    global _EVENT_SINK
    _set_threads(threads)
    from human3d.cli.quiet import silence_third_party

    silence_third_party(debug)
    _EVENT_SINK = lambda label, text: messages.put(("event", label, text))  # noqa: E731
    run_batch(inputs, outputs, task, summary_path=summary_path, fmt=fmt, overwrite=overwrite, work_dir=work_dir,
              on_item=lambda i, item: messages.put(("item", i, asdict(item))), debug=debug)


def run_local_pool(inputs: list[Path], outputs: list[Path], task: ProcessFn, *, jobs: int, summary_path: Path,
                   fmt: str, overwrite: bool = False, work_dir: Path | None = None,
                   on_item: Callable[[int, ItemOutcome], None] | None = None,
                   on_message: Callable[[str], None] | None = None, debug: bool = False,
                   max_retries: int = 2) -> BatchSummary:
    """Run the batch in ``jobs`` worker processes sharing the claim protocol; returns the outcomes in input order.

    ``task`` must be picklable (e.g. :class:`ReconstructTask`). A worker that dies is replaced (at most
    ``max_retries`` times) while any photo is undecided; its claim is taken over by the next worker.
    """
    import multiprocessing as mp

    _check_picklable(task)
    started = _now()
    batch_dir = summary_path.parent / BATCH_DIR
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited torch threads or locks
    messages = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    args = (inputs, outputs, task, summary_path, fmt, overwrite, work_dir, threads, messages, debug)
    procs = [ctx.Process(target=_pool_worker, args=args, daemon=True) for _ in range(jobs)]
    for p in procs:
        p.start()
    reported: dict[int, ItemOutcome] = {}
    replacements = 0
    while True:
        _drain(messages, reported, on_item, on_message, timeout=0.2)
        if any(p.is_alive() for p in procs):
            continue
        _drain(messages, reported, on_item, on_message, timeout=0.0)
        undecided = [i for i in range(len(inputs)) if i not in reported]
        died = [p for p in procs if p.exitcode not in (0, None)]
        if not undecided or not died or replacements >= max_retries:
            break
        replacements += 1  # a worker was killed mid-photo: one more worker finishes (and takes over its claim)
        if on_message:
            on_message(f"a worker died (exit {died[0].exitcode}); starting a replacement for {len(undecided)} "
                       f"undecided photo(s)")
        procs = [ctx.Process(target=_pool_worker, args=args, daemon=True)]
        procs[0].start()
    fallback = [ItemOutcome(str(s), "pending", str(d)) for s, d in zip(inputs, outputs)]
    for i, item in enumerate(fallback):
        if i not in reported:
            item.status, item.exit_code = "failed", 5
            item.error = "its worker process died and no retry was left (see --debug); rerun the batch to redo it"
            write_record(batch_dir, outputs[i].name, item)
    rebuild_summary(summary_path, batch_dir, started=started)
    return BatchSummary(items=_ordered_outcomes(outputs, batch_dir, fallback), started=started, finished=_now())


def _drain(messages: Any, reported: dict[int, ItemOutcome], on_item: Callable[[int, ItemOutcome], None] | None,
           on_message: Callable[[str], None] | None, timeout: float) -> None:
    while True:
        try:
            kind, key, payload = messages.get(timeout=timeout) if timeout else messages.get_nowait()
        except queue_module.Empty:
            return
        timeout = 0.0
        if kind == "item" and key not in reported:
            reported[key] = ItemOutcome(**payload)
            if on_item:
                on_item(key, reported[key])
        elif kind == "event" and on_message:
            on_message(f"{key}: {payload}")


def _check_picklable(task: ProcessFn) -> None:
    try:
        pickle.dumps(task)
    except Exception as err:  # a closure or a lambda cannot travel to another process
        raise UsageError(f"a batch with several workers needs a picklable task (e.g. ReconstructTask), not "
                         f"{type(task).__name__} ({err})") from None


# -- Ray --------------------------------------------------------------------------------------------------------------

def ray_resources(settings: ExecutorSettings, config: ReconstructConfig | None) -> dict[str, float]:
    """What each Ray task asks for: one GPU for the pshuman backend, CPUs for the embedded path; overridable."""
    pshuman = config is not None and config.multiview.backend == "pshuman"
    gpus = settings.ray_gpus_per_task if settings.ray_gpus_per_task is not None else (1.0 if pshuman else 0.0)
    cpus = settings.ray_cpus_per_task if settings.ray_cpus_per_task is not None else (2.0 if pshuman else 1.0)
    return {"num_cpus": cpus, "num_gpus": gpus}


def _ray_shared_item(task: ProcessFn, src: str, dst: str, summary_path: str, fmt: str, overwrite: bool,
                     work_dir: str | None, threads: int) -> dict:
    """A Ray task: one photo straight into the shared output folder, through the claim protocol."""
    _set_threads(threads)
    summary = run_batch([Path(src)], [Path(dst)], task, summary_path=Path(summary_path), fmt=fmt,
                        overwrite=overwrite, work_dir=Path(work_dir) if work_dir else None)
    return asdict(summary.items[0])


def _ray_transfer_item(task: ProcessFn, name: str, photo: bytes, dst_name: str, fmt: str, threads: int) -> dict:
    """A Ray task without shared storage: the photo arrives as bytes, the output files go back as bytes."""
    from human3d.batch import _run_item

    _set_threads(threads)
    with tempfile.TemporaryDirectory(prefix="human3d-ray-") as tmp:
        src, out = Path(tmp) / "in" / name, Path(tmp) / "out"
        src.parent.mkdir()
        out.mkdir()
        src.write_bytes(photo)
        item = ItemOutcome(name, "pending", dst_name, worker=worker_id())
        _run_item(src, out / dst_name, task, item, fmt=fmt, overwrite=True, work_dir=None, debug=False)
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} \
            if item.status == "ok" else {}  # the export's files and its preview (previews/NAME_preview.png)
    return {"item": asdict(item), "files": files}


def run_ray(inputs: list[Path], outputs: list[Path], task: ProcessFn, *, settings: ExecutorSettings,
            summary_path: Path, fmt: str, overwrite: bool = False, work_dir: Path | None = None,
            config: ReconstructConfig | None = None, on_item: Callable[[int, ItemOutcome], None] | None = None,
            on_message: Callable[[str], None] | None = None) -> BatchSummary:
    """One Ray task per photo; the driver streams outcomes as they finish and writes the summary."""
    ray = import_ray()
    _check_picklable(task)
    started = _now()
    batch_dir = summary_path.parent / BATCH_DIR
    batch_dir.mkdir(parents=True, exist_ok=True)
    res = ray_resources(settings, config)
    threads = max(1, int(res["num_cpus"]))
    own_cluster = not ray.is_initialized()
    if own_cluster:
        ray.init(address=settings.ray_address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    if on_message:
        on_message(f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, {ray.cluster_resources().get('GPU', 0):g} "
                   f"GPUs; each task asks for {res['num_cpus']:g} CPU, {res['num_gpus']:g} GPU")
    items = [ItemOutcome(str(s), "pending", str(d)) for s, d in zip(inputs, outputs)]
    for item, dst in zip(items, outputs):
        write_record(batch_dir, dst.name, item, only_if_absent=True)
    rebuild_summary(summary_path, batch_dir, started=started)
    try:
        refs = _submit_ray(ray, inputs, outputs, task, settings, res, threads, summary_path, fmt, overwrite,
                           work_dir, items, on_item)
        _collect_ray(ray, refs, outputs, items, settings, batch_dir, summary_path, started, on_item, overwrite)
    finally:
        rebuild_summary(summary_path, batch_dir, started=started)
        if own_cluster:
            ray.shutdown()
    return BatchSummary(items=_ordered_outcomes(outputs, batch_dir, items), started=started, finished=_now())


def _submit_ray(ray: Any, inputs: list[Path], outputs: list[Path], task: ProcessFn, settings: ExecutorSettings,
                res: dict[str, float], threads: int, summary_path: Path, fmt: str, overwrite: bool,
                work_dir: Path | None, items: list[ItemOutcome],
                on_item: Callable[[int, ItemOutcome], None] | None) -> dict[Any, tuple[int, Any]]:
    """Start a task per photo that needs one; returns {object ref: (index, claim held by the driver or None)}."""
    options = {**res, "max_retries": settings.max_retries, "retry_exceptions": False}
    task_ref = ray.put(task)
    refs: dict[Any, tuple[int, Any]] = {}
    shared_fn = ray.remote(_ray_shared_item).options(**options)
    transfer_fn = ray.remote(_ray_transfer_item).options(**options)
    for i, (src, dst) in enumerate(zip(inputs, outputs)):
        if settings.storage == "shared":
            ref = shared_fn.remote(task_ref, str(src.absolute()), str(dst.absolute()), str(summary_path.absolute()), fmt,
                            overwrite, str(work_dir.absolute()) if work_dir else None, threads)
            refs[ref] = (i, None)
            continue
        if dst.exists() and not overwrite:
            items[i].status, items[i].error = "skipped", "output exists (pass --overwrite to redo it)"
        elif not src.is_file():
            items[i].status, items[i].exit_code = "failed", 3
            items[i].error = f"{src} does not exist or is not a file"
        else:
            claim = claim_input(summary_path.parent / BATCH_DIR, dst.name, {"input": str(src), "output": str(dst)})
            if claim is None:
                items[i].status, items[i].error = "skipped", "another worker is computing it"
            else:
                refs[transfer_fn.remote(task_ref, src.name, src.read_bytes(), dst.name, fmt, threads)] = (i, claim)
                continue
        write_record(summary_path.parent / BATCH_DIR, dst.name, items[i])
        if on_item:
            on_item(i, items[i])
    return refs


def _collect_ray(ray: Any, refs: dict[Any, tuple[int, Any]], outputs: list[Path], items: list[ItemOutcome],
                 settings: ExecutorSettings, batch_dir: Path, summary_path: Path, started: str,
                 on_item: Callable[[int, ItemOutcome], None] | None, overwrite: bool = False) -> None:
    from human3d.io.atomic import atomic_write_bytes

    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
        for ref in done:
            i, claim = refs[ref]
            try:
                got = ray.get(ref)
            except ray.exceptions.RayError as err:  # the task's worker died more often than max_retries
                items[i].status, items[i].exit_code = "failed", 5
                items[i].error = (f"its Ray worker failed {settings.max_retries + 1} time(s) "
                                  f"({type(err).__name__}); rerun the batch to redo it")
                write_record(batch_dir, outputs[i].name, items[i])
            else:
                if claim is None:
                    items[i] = ItemOutcome(**got)
                else:  # the worker computed it in a scratch folder: keep the driver's paths
                    items[i] = dataclasses.replace(ItemOutcome(**got["item"]), input=items[i].input,
                                                   output=str(outputs[i]))
                    for name, data in got["files"].items():
                        target = outputs[i].parent / name
                        if ".." in Path(name).parts or Path(name).is_absolute():
                            continue  # only files inside the output folder are written
                        if target.exists() and not overwrite and target != outputs[i]:
                            items[i].warnings.append(f"{target} exists; kept it (pass --overwrite to replace it)")
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        atomic_write_bytes(target, data, overwrite=True)
                    write_record(batch_dir, outputs[i].name, items[i])
            if claim is not None:
                claim.release()
            rebuild_summary(summary_path, batch_dir, started=started)
            if on_item:
                on_item(i, items[i])


def run_with_executor(inputs: list[Path], outputs: list[Path], task: ProcessFn, *, settings: ExecutorSettings,
                      summary_path: Path | None, fmt: str, overwrite: bool = False, work_dir: Path | None = None,
                      config: ReconstructConfig | None = None,
                      on_item: Callable[[int, ItemOutcome], None] | None = None,
                      on_message: Callable[[str], None] | None = None, debug: bool = False) -> BatchSummary:
    """Dispatch a batch to the executor ``settings`` names (validated first)."""
    settings.validate()
    if settings.executor == "ray":
        if summary_path is None:
            raise UsageError("--executor ray runs batches: give an output folder (-o DIR)")
        return run_ray(inputs, outputs, task, settings=settings, summary_path=summary_path, fmt=fmt,
                       overwrite=overwrite, work_dir=work_dir, config=config, on_item=on_item, on_message=on_message)
    if settings.jobs > 1 and summary_path is not None and len(inputs) > 1:
        return run_local_pool(inputs, outputs, task, jobs=min(settings.jobs, len(inputs)), summary_path=summary_path,
                              fmt=fmt, overwrite=overwrite, work_dir=work_dir, on_item=on_item,
                              on_message=on_message, debug=debug, max_retries=settings.max_retries)
    return run_batch(inputs, outputs, task, summary_path=summary_path, fmt=fmt, overwrite=overwrite,
                     work_dir=work_dir, on_item=on_item, debug=debug)  # the plain path: no recursion
