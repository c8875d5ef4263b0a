"""A run's per-invoice results, read from the store rather than held in memory.

A sync run writes every invoice's outcome to `run_items` with its ledger row (`ledger.apply`). Holding a copy
of each in the report as well made the process grow with the selection (about a kilobyte an invoice, and the
allocator's fragments around it); the report now reads them back, a page at a time, when the CLI renders it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, cast, overload

from cwqbo.state import runs
from cwqbo.state.sql import dec
from cwqbo.state.store import Store
from cwqbo.sync.model import ItemResult

PAGE = 1000


def _item(row: tuple[Any, ...]) -> ItemResult:
    cw_id, number, company, total, outcome, qbo_id, entity, tid, error, qbo_total = row[1:]
    return ItemResult(cw_id=int(cw_id), number=number or "", company=company or "", total=dec(total) or Decimal(0),
                      outcome=cast(runs.Outcome, outcome), qbo_id=qbo_id, entity=entity, tid=tid, error=error,
                      qbo_total=dec(qbo_total))


class RunItems(Sequence[ItemResult]):
    """The items of run `run_id` as committed so far, in the order they were settled (one per invoice: an
    invoice settled twice in a run keeps its last outcome, as `history` shows it)."""

    def __init__(self, store: Store, run_id: int) -> None:
        self.store = store
        self.run_id = run_id

    def __iter__(self) -> Iterator[ItemResult]:
        after = 0
        while True:
            rows = runs.item_page(self.store, self.run_id, after=after, limit=PAGE)
            yield from map(_item, rows)
            if len(rows) < PAGE:
                return
            after = int(rows[-1][0])

    def __len__(self) -> int:
        return runs.item_count(self.store, self.run_id)

    @overload
    def __getitem__(self, index: int) -> ItemResult: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ItemResult]: ...

    def __getitem__(self, index: int | slice) -> ItemResult | Sequence[ItemResult]:
        return list(self)[index]  # reads the run: fine for a look at one item, not for a loop (iterate instead)

    def __repr__(self) -> str:
        return f"RunItems(run_id={self.run_id}, {len(self)} item(s))"


def outcome_counts(items: Sequence[ItemResult]) -> Counter[str]:
    """How many items have each outcome: counted in SQL for a stored run, in memory otherwise."""
    if isinstance(items, RunItems):
        return Counter(runs.outcome_counts(items.store, items.run_id))
    return Counter(i.outcome for i in items)
