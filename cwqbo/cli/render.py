"""Output for humans (rich) and machines (`--json` envelope). Only cli/ prints."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

RESULT_VERSION = "1"


def console(name: str) -> Console:
    """The `out` or `err` console, built on first use: importing rich costs `cwqbo --help` ~40 ms it doesn't need.

    Rich resolves sys.stdout/sys.stderr lazily, so these work under CliRunner too.
    """
    existing = globals().get(name)
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


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> Table:
    from rich.table import Table
    from rich.text import Text

    # Cells and title are plain Text: ConnectWise data like a company named "Acme [/] Corp" must print as
    # written, not be parsed as rich markup (which raised MarkupError and crashed the command).
    t = Table(title=Text(title) if isinstance(title, str) else title, show_lines=False, header_style="bold")
    for column in columns:
        t.add_column(column, justify="right" if column.lower() in ("amount", "total", "qbo total", "cw total") else "left")
    for row in rows:
        t.add_row(*(v if isinstance(v, Text) else
                    Text("" if v is None else money(v) if isinstance(v, Decimal) else str(v)) for v in row))
    return t


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


def envelope(command: str, status: str, exit_code: int, data: Any = None,
             errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
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
