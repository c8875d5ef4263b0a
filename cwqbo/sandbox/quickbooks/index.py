"""Lookup indexes over the simulated QBO's tables, so 100,000 documents cost a dict lookup, not a scan.

Each entity's table (Id → stored object) is an `IndexedTable`: a dict that, on every insert, notes the row's
`Id`, `DocNumber`, `DisplayName` and `Name` under a normalised key (stripped, lower-cased text). An index
answers with *candidates*, a superset of the matching rows: entries are only ever added (an update that renames
a row, or a delete, leaves the old key behind), so an index built on the live table also covers every earlier
state of it — in particular a batch's snapshot. Callers always re-check each candidate against the row they
read, with the same comparison a scan would use, so answers are exactly those of a scan; the index only decides
which rows are looked at. A field whose stored value is ever something other than text makes that index
unusable (callers fall back to scanning), since text keys could not then mirror numeric comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from cwqbo.sandbox.quickbooks.values import _id_sort

INDEXED_FIELDS = ("Id", "DocNumber", "DisplayName", "Name")
_BY_LOWER = {f.lower(): f for f in INDEXED_FIELDS}


def norm(value: Any) -> str:
    """The key a stored text or a query literal is indexed under (a superset of `=`'s and uniqueness's matches)."""
    return str(value).strip().lower()


class IndexedTable(dict[str, dict[str, Any]]):
    """An entity's rows by Id, with append-only candidate indexes on `INDEXED_FIELDS`."""

    def __init__(self, rows: Mapping[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        self._index: dict[str, dict[str, list[str]]] = {f: {} for f in INDEXED_FIELDS}
        self._unusable: set[str] = set()
        for key, row in (rows or {}).items():
            self[key] = row

    def __setitem__(self, key: str, row: dict[str, Any]) -> None:
        super().__setitem__(key, row)
        self._note(key, row)

    def setdefault(self, key: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
        if key not in self:
            self[key] = default if default is not None else {}
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, row in dict(*args, **kwargs).items():
            self[key] = row

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, dict[str, Any]]:
        """A deep copy is a plain dict (state snapshots are data, not indexes)."""
        import copy

        return {k: copy.deepcopy(v, memo) for k, v in self.items()}

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))

    def _note(self, key: str, row: Any) -> None:
        if not isinstance(row, dict):
            return
        for name in INDEXED_FIELDS:
            value = key if name == "Id" and "Id" not in row else row.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                self._unusable.add(name)
                continue
            ids = self._index[name].setdefault(norm(value), [])
            if key not in ids:
                ids.append(key)

    def candidates(self, field: str, literals: Iterable[Any]) -> list[str] | None:
        """Ids that may hold one of `literals` in `field` (id order), or None when no index applies."""
        name = _BY_LOWER.get(field.lower())
        if name is None or name in self._unusable:
            return None
        found: set[str] = set()
        index = self._index[name]
        for lit in literals:
            if isinstance(lit, bool) or not isinstance(lit, (str, int, Decimal)):
                return None
            found.update(index.get(norm(lit), ()))
        return sorted(found, key=_id_sort)


def index_rows(table: Mapping[str, dict[str, Any]], live: Mapping[str, dict[str, Any]] | None,
               where: Iterable[Any]) -> list[dict[str, Any]] | None:
    """The rows of `table` a query's `=`/`IN` condition on an indexed field can match, via `live`'s index.

    `table` is the view the query reads (the live table, or a batch snapshot of it); `live` is the live table,
    whose append-only index covers every state of it. None when no condition has an index path.
    """
    if not isinstance(live, IndexedTable):
        return None
    for cond in where:
        if cond.op not in ("=", "IN"):
            continue
        ids = live.candidates(cond.field, cond.values)
        if ids is not None:
            return [row for row in (table.get(i) for i in ids) if row is not None]
    return None
