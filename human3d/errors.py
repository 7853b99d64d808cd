"""Errors a user can cause, each with a one-line message that says what to do and a documented exit code.

Exit codes (also listed in README.md):

| code | meaning |
|---|---|
| 0 | success (a batch: every input succeeded) |
| 1 | a batch finished but some inputs failed (see summary.json) |
| 2 | usage error: bad option, missing argument, output exists without ``--overwrite``, an output that would replace an input, an output folder that cannot be written |
| 3 | bad input: not an image, unreadable, corrupt, too small, too large, no person found; a mesh that cannot be rendered |
| 4 | missing or corrupt weights, a missing package or device: install or place what the message names |
| 5 | internal error: a bug; rerun with ``--debug`` and report the traceback |
| 6 | out of memory (GPU or RAM): the message says what to lower or free; the input and weights are fine |
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_MISSING = 4
EXIT_INTERNAL = 5
EXIT_OUT_OF_MEMORY = 6


class Human3DError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user; ``exit_code`` the process exit status."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(Human3DError):
    """The command line or API call is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class OutputExistsError(UsageError):
    """An output file exists and ``--overwrite`` was not given (exit 2)."""


class BadInputError(Human3DError):
    """The input image (or mask) cannot be used (exit 3)."""

    exit_code = EXIT_BAD_INPUT


class NoPersonFoundError(BadInputError):
    """Segmentation found no person, or one too small to reconstruct (exit 3)."""


class MissingWeightsError(Human3DError):
    """A model file is absent or corrupt (exit 4)."""

    exit_code = EXIT_MISSING


class CorruptWeightsError(MissingWeightsError):
    """A model file is present but truncated, damaged or not in its format (exit 4, like a missing one: both are
    fixed by fetching the file again)."""


class OutOfMemoryError(Human3DError):
    """The GPU or the machine ran out of memory (exit 6): not the weights' fault, so never "download again"."""

    exit_code = EXIT_OUT_OF_MEMORY


class MissingBackendError(Human3DError):
    """An optional dependency or device needed by the requested backend is not available (exit 4)."""

    exit_code = EXIT_MISSING


class InternalError(Human3DError):
    """Something that should not happen did (exit 5)."""

    exit_code = EXIT_INTERNAL
