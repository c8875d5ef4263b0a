"""Output for humans (rich) and machines (`--json` envelope). Only cli/ prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

RESULT_VERSION = "1"


def console(name: str) -> Console:
    """The `out` or `err` console, built on first use: importing rich costs `cwqbo --help` ~40 ms it doesn't need.

    Rich resolves sys.stdout/sys.stderr lazily, so these work under CliRunner too.
    """
    existing: Console | None = globals().get(name)
    if existing is not None:
        return existing
    from rich.console import Console

    made = Console(stderr=name == "err", highlight=False, soft_wrap=True)
    globals()[name] = made
    return made


def __getattr__(name: str) -> Console:
    """`render.out` / `render.err` for callers (PEP 562)."""
    if name not in ("out", "err"):
        raise AttributeError(name)
    return console(name)


def money(value: Decimal | None, currency: str = "") -> str:
    """`1,234.50` (two places, thousands separators); exact, never via float."""
    if value is None:
        return ""
    from cwqbo.money import round_cents

    text = f"{round_cents(value):,}"
    return f"{text} {currency}".strip()


def cell_text(v: Any) -> str:
    """A table cell's text: money with two places and separators, nothing for None."""
    return "" if v is None else money(v) if isinstance(v, Decimal) else str(v)


def _cell(v: Any) -> Any:
    from rich.text import Text

    if isinstance(v, Text):
        return v
    return Text(cell_text(v))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> Table:
    """A table that stays readable at 80 columns: fixed columns keep their full width (never `2026-09-…`), only
    the free-text columns wrap (`text_table.column_widths`, which `history`'s plain tables share)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from cwqbo.cli.text_table import GAP, column_widths, right_aligned

    # Cells and title are plain Text: ConnectWise data like a company named "Acme [/] Corp" must print as
    # written, not be parsed as rich markup (which raised MarkupError and crashed the command).
    cells = [[_cell(v) for v in row] for row in rows]
    t = Table(title=Text(title) if isinstance(title, str) else title, show_lines=False, header_style="bold",
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    # Sharing the width ourselves: rich would otherwise stop shrinking a column at its longest word and then cut
    # *every* column, dates and amounts included, to fit.
    widths = column_widths(columns, [[c.plain for c in row] for row in cells],
                           console("out").width - len(GAP) * (len(columns) - 1))
    for column, width in zip(columns, widths):
        justify: Literal["right", "left"] = "right" if right_aligned(column) else "left"
        # A fixed width keeps rich from shrinking it; if the terminal is narrower than all fixed columns together,
        # "fold" puts the rest on the next line rather than cutting it.
        t.add_column(column, justify=justify, width=width, overflow="fold")
    for row in cells:
        t.add_row(*row)
    return t


def notes_below(title: str, notes: Sequence[tuple[str, str]]) -> None:
    """Long per-row text (failure reasons) as `key  text` lines under a table, wrapped with a hanging indent."""
    from rich.text import Text

    from cwqbo.cli.text_table import note_lines

    out = console("out")
    for line in note_lines(title, notes, out.width):
        out.print(Text(line), highlight=False, soft_wrap=True)


def _jsonable(obj: Any) -> Any:
    t = type(obj)
    if t is str or t is int or t is bool or obj is None:  # the common leaves, first: large listings
        return obj
    if t is dict:
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    return obj


# The envelope's `status`, one vocabulary for every command (README "JSON output"):
#   ok       exit 0: the command did what was asked (including "nothing to do")
#   partial  exit 1: some invoices went through, some failed
#   failed   exit 1: nothing went through (every invoice tried failed)
#   error    exit >= 2: the command could not do its job (usage, config, not connected, auth, remote, store, lock)
STATUSES = ("ok", "partial", "failed", "error")


def result_status(status: str, exit_code: int) -> str:
    """The documented status for an exit code; `status` only chooses between partial and failed for exit 1."""
    if exit_code == 0:
        return "ok"
    if exit_code == 1:
        return status if status in ("partial", "failed") else "failed"
    return "error"


def envelope(command: str, status: str, exit_code: int, data: Any = None,
             errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status = result_status(status, exit_code)
    return {"cwqbo_result_version": RESULT_VERSION, "command": command, "status": status,
            "exit_code": exit_code, "data": _jsonable(data if data is not None else {}),
            "errors": _jsonable(errors or [])}


def emit_json(command: str, status: str, exit_code: int, data: Any = None,
              errors: list[dict[str, Any]] | None = None) -> None:
    """Exactly one JSON document on stdout; money as strings."""
    made: Console | None = globals().get("out")  # a console a caller set up; else stdout, without importing rich
    stream = made.file if made is not None else sys.stdout
    # Indented for a person at a terminal; compact (and several times faster to encode) for a program.
    indent = 2 if getattr(stream, "isatty", lambda: False)() else None
    stream.write(json.dumps(envelope(command, status, exit_code, data, errors), indent=indent,
                            ensure_ascii=False) + "\n")
    stream.flush()


def error_line(message: str, hint: str | None = None) -> None:
    from rich.text import Text

    console("err").print(Text.assemble(("error:", "red"), " ", message), highlight=False)
    if hint:
        console("err").print(f"hint: {hint}", markup=False, highlight=False)


def warn(message: str) -> None:
    from rich.text import Text

    console("err").print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)


def info(message: str) -> None:
    console("err").print(message, markup=False, highlight=False)
