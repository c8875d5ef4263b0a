"""`cwqbo history …` without Typer, rich or sqlite_utils, so a read-only look starts in a few tens of milliseconds.

Importing Typer (with pydantic), rich and sqlite_utils costs ~10 times a bare interpreter's start-up, more than
`history` spends on its work. The console entry point (`cli/entry.py`) hands `history` invocations here first.
This understands exactly the command lines it is sure of: `--config`/`--profile` before `history`, and the
options `history` and `history show` declare (a test holds them to the Typer commands'). Anything else (an
option it doesn't know, a value the command would refuse, a database that is absent in a way that needs a
message, older or newer, an error of any kind) returns None before anything is printed, and the full CLI runs
the command as always: the same output, or the error it reports. Output is held until the command has
succeeded for that reason.

What it does not do that the full path does: validate config.toml beyond the profile it names (`history` reads
the database whatever mistake the rest of the config holds; every command that uses the config reports it), and
write the log file (`history` logs nothing).
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any

# option → (field, kind): kind "int" (an integer, `min` below), "text" or "flag"
GLOBAL_OPTIONS = {"--config": ("config", "text"), "--profile": ("profile", "text"), "-p": ("profile", "text")}
HISTORY_OPTIONS = {"--limit": ("limit", "int"), "-n": ("limit", "int"), "--failed": ("failed", "flag"),
                   "--invoice": ("invoice", "text"), "-i": ("invoice", "text"), "--json": ("json_out", "flag")}
SHOW_OPTIONS = {"--limit": ("limit", "int"), "-n": ("limit", "int"), "--offset": ("offset", "int"),
                "--page": ("page", "int"), "--failed": ("failed", "flag"), "--json": ("json_out", "flag")}
SHOW_MINIMUM = {"limit": 0, "offset": 0, "page": 1}
HISTORY_DEFAULTS = {"limit": 20}
SHOW_DEFAULTS = {"limit": 50}
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def serve(argv: list[str]) -> int | None:
    """Run `argv` if it is a `history` command line this is sure of; its exit code, or None for the full CLI."""
    parsed = parse(argv)
    if parsed is None:
        return None
    db = _database(parsed.get("config"), parsed.get("profile"))
    if db is None:
        return None
    return _run(db, parsed)


def parse(argv: list[str]) -> dict[str, Any] | None:
    """The options of a `[global options] history [show RUN] [options]` line, or None if it is anything else."""
    values: dict[str, Any] = {}
    rest = _options(argv, GLOBAL_OPTIONS, values, stop_at="history")
    if rest is None or not rest or rest[0] != "history":
        return None
    rest = rest[1:]
    if rest[:1] == ["show"]:
        values["command"] = "show"
        words: list[str] = []
        if _options(rest[1:], SHOW_OPTIONS, values, positional=words) != [] or len(words) != 1:
            return None
        values["run_id"] = _integer(words[0])
        if values["run_id"] is None or any(values.get(k, m) < m for k, m in SHOW_MINIMUM.items()):
            return None
        return values
    values["command"] = "history"
    return values if _options(rest, HISTORY_OPTIONS, values) == [] else None


def _options(args: list[str], known: dict[str, tuple[str, str]], values: dict[str, Any], *,
             stop_at: str | None = None, positional: list[str] | None = None) -> list[str] | None:
    """Consume `args` as options of `known` into `values`; what is left from `stop_at` on, or None if a token is
    anything else (a positional word is kept in `positional` when given)."""
    i = 0
    while i < len(args):
        token = args[i]
        if token == stop_at:
            return args[i:]
        name, has_value, inline = token.partition("=")
        spec = known.get(name)
        if spec is None:
            if positional is not None and not token.startswith("-"):
                positional.append(token)
                i += 1
                continue
            return None
        field, kind = spec
        if kind == "flag":
            if has_value:
                return None
            values[field] = True
            i += 1
            continue
        if has_value and not name.startswith("--"):
            return None  # `-n=5` is not what click reads it as
        if not has_value:
            if i + 1 >= len(args):
                return None
            inline, i = args[i + 1], i + 1
        if inline.startswith("-") and kind != "int":
            return None
        parsed: Any = _integer(inline) if kind == "int" else inline
        if parsed is None:
            return None
        values[field] = parsed
        i += 1
    return [] if stop_at is None else None


def _integer(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else None


def _database(config: str | None, profile: str | None) -> Path | None:
    """The profile's database path, found as the full CLI finds it; None when unsure."""
    from cwqbo.settings.paths import Paths

    config = config if config is not None else os.environ.get("CWQBO_CONFIG") or None
    paths = Paths.from_env(config_file=Path(config) if config else None)
    profile = profile if profile is not None else os.environ.get("CWQBO_PROFILE")
    if profile is None:
        profile = _default_profile(paths.config_file)
    if profile is None or not _PROFILE_NAME.match(profile):
        return None
    return paths.db_file(profile)


def _default_profile(config_file: Path) -> str | None:
    from cwqbo.settings.paths import DEFAULT_PROFILE

    try:
        if not config_file.exists():
            return DEFAULT_PROFILE
        import tomllib

        with config_file.open("rb") as f:
            raw = tomllib.load(f)
    except (OSError, ValueError):
        return None
    name = raw.get("default_profile", DEFAULT_PROFILE)
    return name if isinstance(name, str) else None


class _Held(io.StringIO):
    """Output kept until the command has succeeded, answering `isatty` as the real stdout would."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def _run(db: Path, options: dict[str, Any]) -> int | None:
    from cwqbo.cli import history_view
    from cwqbo.state.reader import ReadStore, open_read

    store: ReadStore | None = None
    if db.exists() or db.is_symlink():
        store = open_read(db)
        if store is None:
            return None
    real = sys.stdout
    held = _Held(real.isatty())  # tables are styled, and JSON indented, as for the real stdout
    try:
        sys.stdout = held
        if options["command"] == "show":
            limit = options.get("limit", SHOW_DEFAULTS["limit"])
            start = history_view.page_start(limit, options.get("offset"), options.get("page"))
            history_view.show_run(store, options["run_id"], limit=limit, start=start,
                                  failed=options.get("failed", False), json_out=options.get("json_out", False))
        else:
            history_view.show_history(store, limit=options.get("limit", HISTORY_DEFAULTS["limit"]), failed=options.get("failed", False),
                                      invoice=options.get("invoice"), json_out=options.get("json_out", False))
    except Exception:  # the full CLI runs it again and reports it as it reports everything
        return None
    finally:
        sys.stdout = real
        if store is not None:
            store.close()
    real.write(held.getvalue())
    real.flush()
    return 0

