"""One sync run's shared state: its report, progress events, and the outcomes every stage settles invoices with.

The stages (recovery, selection, sending, updating, batching) all settle an invoice through `settle`: it is
counted and reported at once, and its ledger write (if any) and run item wait in `pending` until the stage calls
`commit`, which hands them to `ledger.apply` in one transaction. Nothing else in a run writes invoice rows. A
recorded run's report reads its items back from the store (`RunItems`); only a dry run holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from cwqbo.mapping.document import QBODocument
from cwqbo.mapping.refs import Refs
from cwqbo.models import CWInvoice
from cwqbo.state import ledger
from cwqbo.state import runs
from cwqbo.state.sql import iso
from cwqbo.state.runs import Outcome
from cwqbo.sync.model import ItemResult, Progress, SyncDeps, SyncEvent, SyncOptions, SyncReport
from cwqbo.sync.run_items import RunItems


@dataclass
class Work:
    """One invoice on its way through a run."""

    inv: CWInvoice
    doc: QBODocument | None = None
    refs: Refs | None = None
    payload: dict[str, object] | None = None
    payload_text: str = ""  # the payload as sent: serialised once, hashed, then sent verbatim
    payload_hash: str = ""
    request_id: str = ""
    result: ItemResult | None = None
    content_hash: str = ""  # as the cache stored it, when the invoice came from there

    def hash(self) -> str:
        """The invoice's content hash (computed only when the cache didn't give it)."""
        if not self.content_hash:
            self.content_hash = self.inv.content_hash()
        return self.content_hash

    @property
    def entity(self) -> str | None:
        return self.doc.entity if self.doc is not None else None


@dataclass
class Pending:
    """Settled this run, not yet committed: the ledger writes and the run items, in settle order."""

    writes: list[ledger.Write] = field(default_factory=list)
    items: list[ItemResult] = field(default_factory=list)


class RunState:
    """What every stage of one run reads (deps, options) and writes (report, outcomes)."""

    def __init__(self, deps: SyncDeps, options: SyncOptions, progress: Progress | None) -> None:
        self.deps = deps
        self.options = options
        self._progress = progress
        self.report = SyncReport(run_id=None, dry_run=options.dry_run)
        self.run_id: int | None = None
        self.done = 0
        self.total = 0
        self.pending = Pending()
        # Confirmed invoices a ConnectWise batch step of this run took up and had to leave (renumbered in CW, no GL
        # entries): the run's later step (the engine batches whole parts early) neither retries nor reports them.
        self.left_unbatched: set[int] = set()

    def begin(self, run_id: int | None) -> None:
        """The run is recorded as `run_id` (None: it was discarded): its items are read from the store from now on,
        never held here (they would grow with the selection)."""
        self.run_id = self.report.run_id = run_id
        self.report.items = RunItems(self.deps.store, run_id) if run_id is not None else []

    @property
    def recording(self) -> bool:
        return not self.options.dry_run and self.run_id is not None

    def emit(self, phase: str, message: str = "", item: ItemResult | None = None) -> None:
        if self._progress is not None:
            self._progress(SyncEvent(phase, message, self.done, self.total, item))

    def now(self) -> str:
        return iso(self.deps.clock.now())

    # -- settling invoices ---------------------------------------------------------------------------

    def result(self, inv: CWInvoice, outcome: Outcome, *, qbo_id: str | None = None, entity: str | None = None,
               tid: str | None = None, error: str | None = None, qbo_total: Decimal | None = None) -> ItemResult:
        return ItemResult(cw_id=inv.id, number=inv.number, company=inv.company.name, total=inv.total,
                          outcome=outcome, qbo_id=qbo_id, entity=entity, tid=tid, error=error, qbo_total=qbo_total)

    def settle(self, result: ItemResult, write: ledger.Write | None = None, work: Work | None = None) -> ItemResult:
        """Report one invoice's outcome now; its ledger write and run item go with the next `commit`."""
        if work is not None:
            work.result = result
        self.done += 1
        self.emit("item", f"{result.number}: {result.outcome}", result)
        if self.recording:  # committed with its ledger write, then read back from the store by the report
            if write is not None:
                self.pending.writes.append(write)
            self.pending.items.append(result)
        else:
            assert isinstance(self.report.items, list), "an unrecorded run keeps its items in memory"
            self.report.items.append(result)
        return result

    def commit(self) -> None:
        """Apply what was settled since the last commit: one transaction, ledger rows with their run items."""
        if not (self.pending.writes or self.pending.items):
            return
        items = [runs.Item(i.cw_id, i.number, i.outcome, i.entity, i.qbo_id, i.total, i.qbo_total, i.tid,
                             i.error) for i in self.pending.items]
        ledger.apply(self.deps.store, self.run_id, self.pending.writes, items, now=self.now())
        self.pending = Pending()

    def fail(self, w: Work, error: str, *, tid: str | None = None, entity: str | None = None,
             qbo_id: str | None = None, qbo_total: Decimal | None = None, sync_token: str | None = None,
             doc_number: str | None = None, record: bool = True) -> ItemResult:
        """Settle `w` as failed; `record=False` leaves the ledger as it is (e.g. an update QBO refused)."""
        entity = entity or w.entity
        first_run = self._known_failure(w.inv.id, error) if record else None
        if first_run is not None:  # reported before, nothing changed: listed, but not a new alarm
            res = self.result(w.inv, "waiting", tid=tid, entity=entity, qbo_id=qbo_id, qbo_total=qbo_total,
                              error=f"still waiting for a fix (first reported in run {first_run}): {error}")
        else:
            res = self.result(w.inv, "failed", error=error, tid=tid, entity=entity, qbo_id=qbo_id,
                              qbo_total=qbo_total)
        write = ledger.Write(w.inv.id, "failed", error=error, tid=tid, qbo_id=qbo_id, sync_token=sync_token,
                             qbo_total=qbo_total, doc_number=doc_number, number=w.inv.number, entity=entity,
                             cw_total=w.inv.total, first_run=first_run) if record else None
        return self.settle(res, write, w)

    def _known_failure(self, cw_id: int, error: str) -> int | None:
        """The run that first reported this very failure, when an `--all` run meets it again unchanged.

        Cron runs `sync --all` every few minutes; an invoice that can't be mapped until someone fixes it must not
        turn each quiet run into a new failed run. Named invoices (`--invoice`, `--select`) always fail loudly.
        """
        if self.options.selection != "all" or self.options.dry_run:
            return None
        prior = ledger.get(self.deps.store, cw_id)
        if prior is None or prior.state != "failed" or prior.error != error or prior.run_id is None:
            return None
        return prior.run_id
