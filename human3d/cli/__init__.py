"""The ``human3d`` command: a Typer app, one module per command group; each command only parses, builds a
config and calls the library."""

from __future__ import annotations

import typer

from human3d import __version__

app = typer.Typer(
    name="human3d",
    help="One photo of a person in, one textured 3D mesh out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"human3d {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool | None = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """human3d: reconstruct a textured 3D human from one photo."""


def _register() -> None:
    from human3d.cli import doctor, reconstruct, weights

    reconstruct.register(app)
    doctor.register(app)
    app.add_typer(weights.app, name="weights")
    for module_name in ("human3d.cli.render", "human3d.cli.eval", "human3d.cli.train", "human3d.cli.report",
                        "human3d.cli.people"):
        # command groups added by later stages register themselves when their module exists
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue
            raise
        module.register(app)


_register()


def main() -> None:
    import os
    import sys

    from human3d.cli.quiet import silence_third_party

    silence_third_party(debug="--debug" in sys.argv[1:] or os.environ.get("HUMAN3D_DEBUG", "") not in ("", "0"))
    app(prog_name="human3d")
