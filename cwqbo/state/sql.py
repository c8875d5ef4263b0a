"""Small SQLite helpers the state modules share: timestamps, exact money as TEXT, rows as dicts, one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cwqbo.state.store import Readable, Store


def iso(ts: float | None = None) -> str:
    """ISO-8601 UTC timestamp (seconds) for the store."""
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def dec(value: Any) -> Decimal | None:
    """Money read back from its exact TEXT form."""
    return None if value is None or value == "" else Decimal(str(value))


def money_text(value: Decimal | None) -> str | None:
    """Money as exact TEXT: never a REAL, which would round it."""
    return None if value is None else str(value)


def rows(store: Readable, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    cursor = store.db.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


@contextmanager
def transaction(store: Store) -> Iterator[None]:
    """One committed transaction (nested ones become savepoints)."""
    with store.transaction():
        yield
