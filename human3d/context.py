"""What every stage receives besides its input and its config: device, seed, weights lookup, progress, a folder."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("human3d")

#: progress(stage, fraction in [0, 1], message)
ProgressFn = Callable[[str, float, str], None]


def _no_progress(stage: str, fraction: float, message: str) -> None:
    return None


@dataclass
class StageContext:
    """Shared, read-only facts for a stage run.

    device: a resolved torch device string ('cpu', 'cuda', 'cuda:1'); seed: the run's seed (a stage derives its own
    generator from it); weights_dir: the user's ``--weights-dir`` (lookup order in :mod:`human3d.weights`);
    stage_dir: a folder for this stage's extra intermediates (None without ``--work-dir``).
    """

    device: str = "cpu"
    seed: int = 0
    weights_dir: Path | None = None
    stage_dir: Path | None = None
    stage: str = ""
    progress_fn: ProgressFn = _no_progress
    warnings: list[str] = field(default_factory=list)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress of the current stage (fraction in [0, 1])."""
        self.progress_fn(self.stage, min(max(fraction, 0.0), 1.0), message)

    def warn(self, message: str) -> None:
        """A warning the user should see (printed by the CLI, recorded in the summary)."""
        log.warning(message)
        self.warnings.append(message)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` torch intra-op threads (0: unchanged), restoring the previous setting.

    On a small, shared CPU one thread is often much faster than several for the many small ops of a fit loop.
    """
    import torch

    previous = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
