"""One sync run's shared state: its report, progress events, and the item bookkeeping every stage writes to.

The stages (recovery, selection, sending, updating, batching) all finish invoices through here, so an item is
counted, reported and written to run_items the same way whichever stage settled it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cwqbo.state import ledger
from cwqbo.models import CWInvoice
from cwqbo.sync.model import ItemResult, Progress, SyncDeps, SyncEvent, SyncOptions, SyncReport


@dataclass
class Work:
    """One invoice on its way through a run."""

    inv: CWInvoice
    doc: Any = None  # mapping.QBODocument
    refs: Any = None  # mapping.Refs
    payload: dict[str, Any] | None = None
    payload_hash: str = ""
    request_id: str = ""
    result: ItemResult | None = None


class RunState:
    def __init__(self, deps: SyncDeps, options: SyncOptions, progress: Progress | None) -> None:
        self.d = deps
        self.o = options
        self._progress = progress
        self.report = SyncReport(run_id=None, dry_run=options.dry_run)
        self.run_id: int | None = None
        self.done = 0
        self.unwritten: list[ItemResult] = []  # run items not yet in run_items (written with their ledger rows)
        self.total = 0

    def emit(self, phase: str, message: str = "", item: ItemResult | None = None) -> None:
        if self._progress is not None:
            self._progress(SyncEvent(phase, message, self.done, self.total, item))

    def now(self) -> str:
        return ledger.iso(self.d.clock.now())

    def finish_item(self, work: Work, result: ItemResult) -> None:
        work.result = result
        self.report.items.append(result)
        self.unwritten.append(result)
        self.done += 1
        self.emit("item", f"{result.number}: {result.outcome}", result)

    def flush_items(self) -> None:
        """Write finished items to run_items, so `history` accounts for a run even if it is killed later.

        Called inside the same transaction as the ledger rows they describe.
        """
        if self.run_id is None or self.o.dry_run or not self.unwritten:
            return
        ledger.record_items(self.d.store, self.run_id, [
            ledger.Item(i.cw_id, i.number, i.outcome, i.entity, i.qbo_id, i.total, i.qbo_total, i.tid, i.error)
            for i in self.unwritten], now=self.now())
        self.unwritten.clear()

    def _known_failure(self, cw_id: int, error: str) -> int | None:
        """The run that first reported this very failure, when an `--all` run meets it again unchanged.

        Cron runs `sync --all` every few minutes; an invoice that can't be mapped until someone fixes it must not
        turn each quiet run into a new failed run. Named invoices (`--invoice`, `--select`) always fail loudly.
        """
        if self.o.selection != "all" or self.o.dry_run:
            return None
        prior = ledger.get(self.d.store, cw_id)
        if prior is None or prior.state != "failed" or prior.error != error or prior.run_id is None:
            return None
        return prior.run_id

    def result(self, inv: CWInvoice, outcome: str, **kw: Any) -> ItemResult:
        return ItemResult(cw_id=inv.id, number=inv.number, company=inv.company.name, total=inv.total,
                          outcome=outcome, **kw)

    def fail(self, w: Work, error: str, *, tid: str | None = None, entity: str | None = None,
             qbo_id: str | None = None, qbo_total: Decimal | None = None, write: bool = True) -> ItemResult:
        entity = entity or (w.doc.entity if w.doc is not None else None)
        first_run = self._known_failure(w.inv.id, error) if write else None
        if first_run is not None:  # reported before, nothing changed: listed, but not a new alarm
            res = self.result(w.inv, "waiting", tid=tid, entity=entity, qbo_id=qbo_id, qbo_total=qbo_total,
                              error=f"still waiting for a fix (first reported in run {first_run}): {error}")
        else:
            res = self.result(w.inv, "failed", error=error, tid=tid, entity=entity, qbo_id=qbo_id,
                              qbo_total=qbo_total)
        if write and not self.o.dry_run:
            ledger.mark_failed(self.d.store, w.inv.id, error=error, tid=tid, qbo_id=qbo_id, qbo_total=qbo_total,
                               number=w.inv.number, entity=entity, cw_total=w.inv.total,
                               run_id=first_run if first_run is not None else self.run_id, now=self.now())
        self.finish_item(w, res)
        return res
