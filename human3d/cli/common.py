"""What every command shares: the stderr console (rich on a TTY, plain otherwise), logging levels, and the
error boundary that turns a Human3DError into one line and its exit code."""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from human3d.errors import EXIT_INTERNAL, Human3DError

F = TypeVar("F", bound=Callable[..., Any])


def plain_output() -> bool:
    """No colours, no live progress: stderr is not a terminal, NO_COLOR is set, or TERM=dumb."""
    return (not sys.stderr.isatty()) or bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"


def stderr_console():
    from rich.console import Console

    plain = plain_output()
    return Console(stderr=True, no_color=plain, force_terminal=False if plain else None,
                   highlight=False, soft_wrap=True)


def configure_logging(quiet: bool, verbose: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.WARNING)
    logger = logging.getLogger("human3d")
    logger.setLevel(level)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def check_readable(path: Path, kind: str = "input") -> None:
    """An input file that exists but cannot be opened is a one-line bad input (exit 3), found before any work."""
    from human3d.errors import BadInputError

    if not path.exists():
        raise BadInputError(f"{kind} file {path} does not exist; check the path")
    if path.is_dir():
        raise BadInputError(f"{kind} {path} is a folder, not a file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as err:
        raise BadInputError(f"{kind} file {path} cannot be read ({err.strerror or type(err).__name__}); "
                            "check its permissions") from None


def debug_enabled(debug: bool) -> bool:
    return debug or os.environ.get("HUMAN3D_DEBUG", "") not in ("", "0")


def error_boundary(func: F) -> F:
    """Run a command; a Human3DError becomes one line + its exit code, anything else exit 5 (traceback with
    --debug or HUMAN3D_DEBUG=1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = debug_enabled(bool(kwargs.get("debug", False)))
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except Human3DError as err:
            if debug:
                traceback.print_exc()
            fail(str(err), err.exit_code)
        except Exception as err:
            if debug:
                traceback.print_exc()
            fail(f"internal error: {type(err).__name__}: {err} (rerun with --debug and report the traceback)",
                 EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]
