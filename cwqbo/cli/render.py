"""Output for humans (rich) and machines (`--json` envelope). Only cli/ prints."""

from __future__ import annotations

import json
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


# Columns whose text may wrap onto several lines; every other column (numbers, dates, amounts, types, ids) is
# sized to its widest cell and never cut. Long free text (reasons, errors) goes below a table, not into it.
WRAPPING_COLUMNS = frozenset({"company", "detail", "details", "description", "reason", "error", "what to change",
                              "value", "problem", "by", "name", "message", "title", "service"})
RIGHT_ALIGNED = frozenset({"amount", "total", "qbo total", "cw total", "lines", "cw id"})


def _cell(v: Any) -> Any:
    from rich.text import Text

    if isinstance(v, Text):
        return v
    return Text("" if v is None else money(v) if isinstance(v, Decimal) else str(v))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> Table:
    """A table that stays readable at 80 columns: fixed columns keep their full width (never `2026-09-…`), only
    the free-text columns in WRAPPING_COLUMNS wrap (folding long words instead of cutting them)."""
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    # Cells and title are plain Text: ConnectWise data like a company named "Acme [/] Corp" must print as
    # written, not be parsed as rich markup (which raised MarkupError and crashed the command).
    cells = [[_cell(v) for v in row] for row in rows]
    t = Table(title=Text(title) if isinstance(title, str) else title, show_lines=False, header_style="bold",
              box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    def widest(i: int, column: str) -> int:
        return max([cell_len(column)] + [cell_len(line) for row in cells if i < len(row)
                                          for line in (row[i].plain.splitlines() or [""])])

    natural = [widest(i, c) for i, c in enumerate(columns)]
    flex = [i for i, c in enumerate(columns) if c.lower() in WRAPPING_COLUMNS]
    # Share what the fixed columns leave among the wrapping ones ourselves: rich would otherwise stop shrinking a
    # column at its longest word and then cut *every* column, dates and amounts included, to fit.
    avail = console("out").width - 2 * (len(columns) - 1)
    width = list(natural)
    for i in flex:
        width[i] = min(natural[i], 16)
    # An outsized fixed value (a 30-character invoice number) wraps onto a second line, whole, before dates and
    # amounts would have to: shrink the widest fixed column while the table does not fit, never below 13.
    while sum(width) > avail:
        fixed = [i for i in range(len(columns)) if i not in flex and width[i] > 13]
        if not fixed:
            break
        widest_fixed = max(fixed, key=lambda i: width[i])
        width[widest_fixed] -= 1
    while sum(width) > avail:  # then the wrapping columns, down to 8
        squeezable = [i for i in flex if width[i] > 8]
        if not squeezable:
            break
        width[max(squeezable, key=lambda i: width[i])] -= 1
    # Share what is left among the wrapping columns, up to what each needs.
    spare = avail - sum(width)
    while spare > 0:
        hungry = [i for i in flex if width[i] < natural[i]]
        if not hungry:
            break
        width[min(hungry, key=lambda i: width[i])] += 1
        spare -= 1
    share = {i: width[i] for i in range(len(columns))}
    for i, column in enumerate(columns):
        justify: Literal["right", "left"] = "right" if column.lower() in RIGHT_ALIGNED else "left"
        # A fixed width keeps rich from shrinking it; if the terminal is narrower than all fixed columns together,
        # "fold" puts the rest on the next line rather than cutting it.
        t.add_column(column, justify=justify, width=share.get(i, natural[i]), overflow="fold")
    for row in cells:
        t.add_row(*row)
    return t


def notes_below(title: str, notes: Sequence[tuple[str, str]]) -> None:
    """Long per-row text (failure reasons) as `key  text` lines under a table, wrapped with a hanging indent."""
    if not notes:
        return
    from rich.cells import cell_len
    from rich.text import Text

    import textwrap

    out = console("out")
    out.print(title, markup=False, highlight=False)
    key_width = min(max(cell_len(k) for k, _ in notes), 24)
    for key, text in notes:
        head = f"  {key}{' ' * max(0, key_width - cell_len(key))}  "
        width = max(40, out.width)
        lines = textwrap.wrap(text, width=width, initial_indent=head, subsequent_indent=" " * (key_width + 4),
                              break_long_words=True, break_on_hyphens=False) or [head.rstrip()]
        for line in lines:
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
    stream = console("out").file
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
