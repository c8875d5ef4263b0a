"""Building QBO query statements safely (pure).

Customer names come from ConnectWise and routinely contain quotes ("O'Brien & Sons"); an unescaped
quote breaks the statement or, worse, matches the wrong record. Every value goes through `literal`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from cwqbo.money import number_literal

MAX_RESULTS = 1000  # Intuit's ceiling for MAXRESULTS
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


def escape(value: str) -> str:
    """Escape a string for use inside a single-quoted QBO literal (backslash and quote get a backslash)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def literal(value: Any) -> str:
    """A value as QBO query text: strings and dates quoted, numbers bare, booleans as true/false."""
    number = number_literal(value)
    if number is not None:
        return number
    if isinstance(value, Decimal):
        raise ValueError(f"cannot use {value} in a query")
    if isinstance(value, float):
        raise TypeError(f"refusing float {value!r} in a query: use Decimal")
    if isinstance(value, dt.datetime):
        return "'" + value.isoformat() + "'"
    if isinstance(value, dt.date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, str):
        return "'" + escape(value) + "'"
    raise TypeError(f"cannot use {type(value).__name__} in a query")


def in_list(values: Iterable[Any]) -> str:
    """`('a', 'b')` for an IN condition; an empty list is refused (QBO rejects `IN ()`)."""
    parts = [literal(v) for v in values]
    if not parts:
        raise ValueError("an IN list needs at least one value")
    return "(" + ", ".join(parts) + ")"


def field_name(name: str) -> str:
    """Validate a (possibly dotted) field name so callers can't smuggle query text through it."""
    if not _FIELD.match(name):
        raise ValueError(f"not a QBO field name: {name!r}")
    return name


def eq(field: str, value: Any) -> str:
    return f"{field_name(field)} = {literal(value)}"


def in_(field: str, values: Iterable[Any]) -> str:
    return f"{field_name(field)} IN {in_list(values)}"


def _where(where: str | Sequence[str] | None) -> str:
    conditions = [where] if isinstance(where, str) else list(where or [])
    conditions = [c for c in conditions if c]
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def _entity(entity: str) -> str:
    if not _IDENT.match(entity):
        raise ValueError(f"not a QBO entity name: {entity!r}")
    return entity


def count(entity: str, where: str | Sequence[str] | None = None) -> str:
    """`SELECT COUNT(*) FROM Entity [WHERE ...]`."""
    return f"SELECT COUNT(*) FROM {_entity(entity)}{_where(where)}"


def select(entity: str, where: str | Sequence[str] | None = None, start: int = 1, max_results: int = MAX_RESULTS,
           *, order_by: str | None = None) -> str:
    """`SELECT * FROM Entity [WHERE a AND b] [ORDERBY f] STARTPOSITION n MAXRESULTS m`.

    `where` is one condition or a list of conditions (QBO has AND but no OR), built with `eq`/`in_`/`literal`.
    """
    _entity(entity)
    if start < 1:
        raise ValueError("STARTPOSITION starts at 1")
    if not 1 <= max_results <= MAX_RESULTS:
        raise ValueError(f"MAXRESULTS must be between 1 and {MAX_RESULTS}")
    parts = [f"SELECT * FROM {entity}{_where(where)}"]
    if order_by:
        name, _, direction = order_by.partition(" ")
        if direction.strip().upper() not in ("", "ASC", "DESC"):
            raise ValueError(f"bad ORDERBY direction: {order_by!r}")
        parts.append(f"ORDERBY {field_name(name)}" + (f" {direction.strip().upper()}" if direction.strip() else ""))
    parts.append(f"STARTPOSITION {start} MAXRESULTS {max_results}")
    return " ".join(parts)
