"""Every command and subcommand explains itself: non-empty help, and `--help` exits 0 without side effects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cwqbo.cli.main import app


def _walk(command: Any, path: tuple[str, ...] = (), parent: Any = None) -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) for the root and every command below it, depth first, through the group's own lookup
    (Typer 0.29 vendors click as `typer._click`, so groups are recognised by `list_commands`, not by class)."""
    found = [(path, command)]
    if hasattr(command, "list_commands"):
        ctx = command.context_class(command, info_name=path[-1] if path else "cwqbo", parent=parent)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"`cwqbo {' '.join((*path, name))}` is listed but cannot be loaded"
            found += _walk(sub, (*path, name), ctx)
    return found


COMMANDS = _walk(typer.main.get_command(app))
PATHS = [path for path, _ in COMMANDS]


def test_the_tree_has_the_documented_commands() -> None:
    """Guards the walk itself: if it found nothing, the help checks below would pass vacuously."""
    names = {" ".join(p) for p in PATHS}
    for expected in ("sync", "list-unsynced", "history", "history show", "prefs", "prefs set", "connect", "demo"):
        assert expected in names, f"`cwqbo {expected}` missing from the command tree: {sorted(names)}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "cwqbo")
def test_every_command_has_help_and_help_exits_0(path: tuple[str, ...], home: Path, runner: CliRunner) -> None:
    command = dict(COMMANDS)[path]
    text = (command.help or command.short_help or "").strip()
    assert text, f"`cwqbo {' '.join(path)}` has no help text"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"`cwqbo {' '.join(path)} --help` exited {result.exit_code}: {result.output}"
    opening = " ".join(text.split()[:3])  # the first words: later ones may hold [brackets] Rich reads as markup
    assert "Usage:" in result.stdout and opening in " ".join(result.stdout.split())
    assert "Traceback" not in result.output
    written = sorted(p.name for p in home.iterdir() if p.name != "logs")  # the log dir is set up for every command
    assert not written, f"`--help` wrote to CWQBO_HOME: {written}"
