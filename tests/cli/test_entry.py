"""`cwqbo --help` is served from a cache keyed by the installed code and terminal width (start-up target)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_help(cache: Path, columns: str = "100", *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": columns}
    env.pop("CWQBO_NO_HELP_CACHE", None)
    return subprocess.run([sys.executable, "-m", "cwqbo", *(args or ("--help",))], env=env, capture_output=True,
                          text=True, timeout=60)


def test_help_is_rendered_once_then_served_from_the_cache(tmp_path: Path) -> None:
    first = run_help(tmp_path)
    assert first.returncode == 0 and "sync" in first.stdout and "list-unsynced" in first.stdout
    cached = list((tmp_path / "cwqbo").glob("help-*.txt"))
    assert len(cached) == 1 and cached[0].read_text() == first.stdout
    cached[0].write_text("served from the cache\n")
    assert run_help(tmp_path).stdout == "served from the cache\n"


def test_another_terminal_width_gets_its_own_rendering(tmp_path: Path) -> None:
    run_help(tmp_path, "100")
    run_help(tmp_path, "60")
    assert len(list((tmp_path / "cwqbo").glob("help-*.txt"))) == 2


def test_an_unwritable_cache_never_breaks_help(tmp_path: Path) -> None:
    blocker = tmp_path / "cwqbo"
    blocker.write_text("not a directory")
    result = run_help(tmp_path)
    assert result.returncode == 0 and "Usage: cwqbo" in result.stdout and not result.stderr


def test_other_commands_do_not_use_the_cache(tmp_path: Path) -> None:
    result = run_help(tmp_path, "100", "--version")
    assert result.returncode == 0 and result.stdout.startswith("cwqbo ")
    assert not (tmp_path / "cwqbo").exists()
