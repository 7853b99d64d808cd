"""Turns pipeline progress events into a rich live display on a terminal, or plain lines otherwise."""

from __future__ import annotations

import sys

from human3d.cli.common import plain_output, stderr_console
from human3d.pipeline import ProgressEvent


class ProgressReporter:
    """Use as a context manager; pass :meth:`event` as the Reconstructor's ``on_event``."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.plain = plain_output()
        self.prefix = ""
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> ProgressReporter:
        if not self.quiet and not self.plain:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      TimeElapsedColumn(), console=stderr_console(), transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_item(self, label: str) -> None:
        self.prefix = f"{label}: " if label else ""
        self._tasks.clear()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def event(self, e: ProgressEvent) -> None:
        if self.quiet:
            return
        if self._progress is None:
            if e.kind == "done":
                self.message(f"{self.prefix}{e.title}: done in {e.seconds:.1f} s")
            elif e.kind == "cached":
                self.message(f"{self.prefix}{e.title}: reused from the work dir")
            elif e.kind == "start" and self.verbose:
                self.message(f"{self.prefix}{e.title} ...")
            elif e.kind == "progress" and self.verbose and e.message:
                self.message(f"{self.prefix}{e.title}: {e.fraction * 100:3.0f}% {e.message}")
            return
        key = e.stage
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(f"{self.prefix}{e.title}", total=1.0)
        task = self._tasks[key]
        if e.kind in ("done", "cached"):
            note = "cached" if e.kind == "cached" else f"{e.seconds:.1f} s"
            self._progress.update(task, completed=1.0, description=f"{self.prefix}{e.title} ({note})")
        elif e.kind == "progress":
            desc = f"{self.prefix}{e.title}" + (f" - {e.message}" if e.message else "")
            self._progress.update(task, completed=e.fraction, description=desc)
