"""The sync run's public data: what a run is given (deps, options) and what it reports (items, plan, events).

Kept apart from the engine so every stage module can build results without importing the orchestration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from cwqbo.clock import Clock
from cwqbo.settings.prefs import Filters, Prefs
from cwqbo.connectwise.client import CWClient
from cwqbo.quickbooks.client import QBOClient
from cwqbo.state.store import Store
from cwqbo.state.runs import Outcome, RunStatus

Selection = Literal["all", "invoices"]
Trigger = Literal["select", "all", "invoice", "scheduled", "demo"]


@dataclass
class SyncDeps:
    """Everything the engine talks to; tests pass in-process clients and a ManualClock."""

    store: Store
    cw: CWClient
    qbo: QBOClient
    prefs: Prefs
    filters: Filters
    realm: str
    clock: Clock = field(default_factory=Clock)


@dataclass(frozen=True)
class SyncOptions:
    selection: Selection = "all"
    invoice_numbers: tuple[str, ...] = ()
    dry_run: bool = False
    update_changed: bool = False
    refresh: bool = True
    trigger: Trigger = "all"
    full_refresh: bool = False


@dataclass(frozen=True)
class ItemResult:
    cw_id: int
    number: str
    company: str
    total: Decimal
    outcome: Outcome
    qbo_id: str | None = None
    entity: str | None = None
    tid: str | None = None
    error: str | None = None
    qbo_total: Decimal | None = None


@dataclass(frozen=True)
class WouldCreate:
    """A customer or item a dry run would create in QuickBooks."""

    kind: str  # "customer" | "item"
    name: str


@dataclass(frozen=True)
class PlanLine:
    description: str
    amount: Decimal
    item: str | None = None


@dataclass(frozen=True)
class PlannedDocument:
    """What a dry run would send for one invoice."""

    cw_id: int
    number: str
    company: str
    entity: str
    doc_number: str
    total: Decimal
    lines: tuple[PlanLine, ...]
    tax: Decimal = Decimal(0)  # included in `total`: lines + tax = total


CHANGED_REASON = "changed in ConnectWise after it was synced"


@dataclass(frozen=True)
class PlannedUpdate:
    """What a dry run with --update would change in QBO for an invoice edited in CW after it was synced."""

    cw_id: int
    number: str
    entity: str
    qbo_id: str
    old_total: Decimal | None  # what QBO holds now
    new_total: Decimal  # what the update would make it (CW's total)
    sync_token: str | None  # the SyncToken the update would be sent with


@dataclass(frozen=True)
class SyncEvent:
    """Progress for the CLI: a phase message, or one invoice done (`item`) out of `total`."""

    phase: str
    message: str = ""
    done: int = 0
    total: int = 0
    item: ItemResult | None = None


@dataclass
class SyncReport:
    run_id: int | None
    # every selected invoice's result: in memory for a dry run, read from the store for a recorded run (RunItems)
    items: Sequence[ItemResult] = field(default_factory=list)
    batch_identifier: str | None = None
    created: int = 0
    failed: int = 0
    skipped: int = 0
    qbo_calls: int = 0
    cw_calls: int = 0
    duration: float = 0.0
    status: str = "ok"  # ok | partial | failed | noop
    message: str | None = None
    dry_run: bool = False
    plan: list[PlannedDocument] = field(default_factory=list)
    would_create: list[WouldCreate] = field(default_factory=list)
    batch_error: str | None = None
    batched_ids: list[int] = field(default_factory=list)
    recovered: int = 0
    plan_updates: list[PlannedUpdate] = field(default_factory=list)
    plan_batch: list[str] = field(default_factory=list)  # invoice numbers a real run would batch in ConnectWise
    waiting: int = 0  # failures already reported, unchanged since: not a new alarm (see RunState.fail)
    batch_identifiers: list[str] = field(default_factory=list)  # every ConnectWise batch the run created, in order

    def add_batch(self, identifier: str, invoice_ids: list[int]) -> None:
        """A ConnectWise batch created (and verified) by this run; `batch_identifier` names them all."""
        self.batch_identifiers.append(identifier)
        self.batched_ids.extend(invoice_ids)
        first, last = self.batch_identifiers[0], self.batch_identifiers[-1]
        self.batch_identifier = first if first == last else f"{first} to {last}"

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.batch_error is None


Progress = Callable[[SyncEvent], None]


def run_status(created: int, failed: int, batch_error: str | None, batched: int = 0) -> RunStatus:
    """ok, partial or failed; a run that only batched what an earlier run created did something too."""
    if failed == 0 and batch_error is None:
        return "ok"
    if created == 0 and batched == 0 and failed > 0:
        return "failed"
    return "partial"
