"""Every ``--flag`` any user-facing string of the package names is a real option of the CLI (Typer/Click
introspection), so no message tells the user to pass a flag that does not exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer.main

from human3d.cli import app

PACKAGE = Path(__file__).resolve().parents[2] / "human3d"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def cli_options() -> set[str]:
    found = set(app.info.context_settings.get("help_option_names", [])) | {"--help"}

    def walk(command) -> None:
        for param in command.params:
            found.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return found


def flags_in_strings() -> dict[str, list[str]]:
    """flag -> where it appears, over every string constant (messages, f-string parts, help, docstrings)."""
    where: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for flag in FLAG.findall(node.value):
                    where.setdefault(flag, []).append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return where


def test_every_flag_named_in_a_message_exists():
    options = cli_options()
    assert {"--overwrite", "--segmenter", "--mv-dtype", "--mv-masks", "--max-megapixels"} <= options
    used = flags_in_strings()
    assert len(used) > 20  # the scan does find the package's messages
    unknown = {flag: places for flag, places in used.items() if flag not in options}
    assert unknown == {}, unknown


def test_the_scan_catches_a_lie():
    assert "--segment" not in cli_options() and FLAG.findall("use --segment rembg, or --mask FILE") == \
        ["--segment", "--mask"]
