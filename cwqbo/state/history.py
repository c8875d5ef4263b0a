"""What happened: past sync runs, one run's invoices or payments, one invoice's whole story, what needs attention.

Read-only queries over the store (runs, run_items, ledger, batches, payments, payment_events); `cli/history.py`
renders them. An operator uses this to answer "did invoice 1234 reach QuickBooks, when, as what, was it batched,
and which QuickBooks payments reached ConnectWise?" without opening SQLite. Money comes back as Decimal (the store
keeps exact TEXT).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cwqbo.errors import UsageError
from cwqbo.state.sql import dec as _dec
from cwqbo.state.sql import rows

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.state import payments as pledger
    from cwqbo.state.ledger import BatchRow, LedgerRow
    from cwqbo.state.store import Readable

FAILED_STATUSES = ("failed", "partial", "interrupted")


@dataclass(frozen=True, slots=True)
class RunSummary:
    id: int
    started_at: str | None
    finished_at: str | None
    trigger: str | None
    user: str | None
    host: str | None
    pid: int | None
    dry_run: bool
    status: str | None
    selected: int
    created: int
    failed: int
    skipped: int
    batch_identifier: str | None
    qbo_calls: int | None
    cw_calls: int | None
    duration_ms: int | None
    message: str | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> RunSummary:
        return cls(id=int(r["id"]), started_at=r.get("started_at"), finished_at=r.get("finished_at"),
                   trigger=r.get("trigger"), user=r.get("user"), host=r.get("host"), pid=r.get("pid"),
                   dry_run=bool(r.get("dry_run")), status=r.get("status"), selected=int(r.get("selected") or 0),
                   created=int(r.get("created") or 0), failed=int(r.get("failed") or 0),
                   skipped=int(r.get("skipped") or 0), batch_identifier=r.get("batch_identifier"),
                   qbo_calls=r.get("qbo_calls"), cw_calls=r.get("cw_calls"), duration_ms=r.get("duration_ms"),
                   message=r.get("message"))


@dataclass(frozen=True, slots=True)
class RunItem:
    run_id: int
    cw_id: int
    invoice_number: str | None
    outcome: str | None
    entity: str | None
    qbo_id: str | None
    cw_total: Decimal | None
    qbo_total: Decimal | None
    intuit_tid: str | None
    error: str | None
    at: str | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> RunItem:
        return cls(run_id=int(r["run_id"]), cw_id=int(r["cw_id"]), invoice_number=r.get("invoice_number"),
                   outcome=r.get("outcome"), entity=r.get("entity"), qbo_id=r.get("qbo_id"),
                   cw_total=_dec(r.get("cw_total")), qbo_total=_dec(r.get("qbo_total")),
                   intuit_tid=r.get("intuit_tid"), error=r.get("error"), at=r.get("at"))


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """What one payments run did with one QuickBooks payment line on one invoice (`payment_events`), with the
    payment's date and type from the payments ledger."""

    run_id: int
    qbo_payment_id: str
    cw_invoice_id: int
    invoice_number: str | None
    outcome: str  # posted | adopted | reversed | failed | waiting
    amount: Decimal | None
    payment_date: str | None
    type: str | None
    credit_cw_id: int | None  # the ConnectWise credit memo applied instead of money
    cw_payment_id: int | None
    error: str | None
    at: str | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> PaymentEvent:
        return cls(run_id=int(r["run_id"]), qbo_payment_id=str(r.get("qbo_payment_id") or ""),
                   cw_invoice_id=int(r.get("cw_invoice_id") or 0), invoice_number=r.get("invoice_number"),
                   outcome=str(r.get("outcome") or ""), amount=_dec(r.get("amount")),
                   payment_date=r.get("payment_date"), type=r.get("type"),
                   credit_cw_id=int(r["credit_cw_id"]) if r.get("credit_cw_id") else None,
                   cw_payment_id=None if r.get("cw_payment_id") is None else int(r["cw_payment_id"]),
                   error=r.get("error"), at=r.get("at"))


@dataclass(frozen=True, slots=True)
class Payment:
    """One QuickBooks payment line cwqbo brought (or tried to bring) onto a ConnectWise invoice, as it stands now.

    `state`: posted (in ConnectWise as `cw_payment_id`), reversed (removed again: voided, deleted or edited in
    QuickBooks; `reason` says which), failed (`reason` says why; tried again on the next payments run), pending (a
    run stopped before ConnectWise answered; the next run reads the invoice's payments back), reversing (the same,
    for a removal), cancelled (failed, then the QuickBooks payment went away before it reached ConnectWise)."""

    qbo_payment_id: str
    cw_payment_id: int | None
    amount: Decimal
    payment_date: str
    type: str
    state: str
    reason: str | None
    credit_cw_id: int | None
    run_id: int | None  # the run that last changed it
    attempts: int
    updated_at: str | None


STATE_WORDS = {"intent": "pending"}
UNSETTLED = {"intent": "a run stopped before ConnectWise answered; the next `cwqbo sync --payments` reads the "
                       "invoice's payments back before posting again",
             "reversing": "a run stopped while removing it; the next `cwqbo sync --payments` checks ConnectWise"}


def _payment(row: pledger.PaymentRow, last_run: int | None) -> Payment:
    reason = row.error or UNSETTLED.get(row.state)
    run_id = last_run if last_run is not None else None if row.run_id is None else int(row.run_id)
    return Payment(row.key.qbo_payment_id, row.cw_payment_id, row.amount, row.payment_date, row.type,
                   STATE_WORDS.get(row.state, row.state), reason, row.key.credit_cw_id or None, run_id,
                   row.attempts, row.updated_at)


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: RunSummary
    items: list[RunItem]


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a run's invoices: `total` matching items in all, `items` from `offset` on (at most `limit`)."""

    run: RunSummary
    items: list[RunItem]
    total: int
    offset: int
    limit: int | None  # None: no limit
    failed_only: bool
    kind: str = "invoices"  # "payments": a payments run; its lines are in `payments`, `items` is empty
    payments: list[PaymentEvent] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        """Matching items after this page."""
        return max(0, self.total - self.offset - len(self.items) - len(self.payments))


@dataclass(frozen=True, slots=True)
class InvoiceStory:
    cw_id: int
    invoice_number: str | None
    ledger: LedgerRow | None  # where it stands now
    items: list[RunItem]  # what each run did with it, oldest first
    batch: BatchRow | None  # the CW accounting batch it went into, if any
    payments: list[Payment] = field(default_factory=list)  # QBO payments brought back onto it, oldest first
    payment_events: list[PaymentEvent] = field(default_factory=list)  # what each payments run did, oldest first

    @property
    def paid(self) -> Decimal:
        """What the payments cwqbo posted (money and credit memos applied) take off the ConnectWise balance."""
        return sum((p.amount for p in self.payments if p.state == "posted"), Decimal("0"))


@dataclass(frozen=True, slots=True)
class Attention:
    """One invoice an operator should look at, and why."""

    kind: str  # "failed" | "not-batched" | "stale-intent" | "payment-failed"
    cw_id: int
    invoice_number: str | None
    detail: str
    since: str | None
    run_id: int | None


def _rows(store: Readable, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return rows(store, sql, params or [])


def runs(store: Readable, limit: int = 20, failed_only: bool = False) -> list[RunSummary]:
    """Most recent runs first; `failed_only` keeps runs that failed, were partial or were interrupted."""
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    where = ""
    params: list[Any] = []
    if failed_only:
        where = f"where status in ({', '.join('?' for _ in FAILED_STATUSES)}) or failed > 0"
        params.extend(FAILED_STATUSES)
    rows = _rows(store, f"select * from runs {where} order by id desc limit ?", [*params, limit])
    return [RunSummary.from_row(r) for r in rows]


def run_detail(store: Readable, run_id: int) -> RunDetail:
    rows = _rows(store, "select * from runs where id = ?", [run_id])
    if not rows:
        raise UsageError(f"no run {run_id} in the local history", hint="list runs with `cwqbo history`")
    items = _rows(store, "select * from run_items where run_id = ? order by invoice_number, cw_id", [run_id])
    return RunDetail(RunSummary.from_row(rows[0]), [RunItem.from_row(r) for r in items])


def _run_summary(store: Readable, run_id: int) -> RunSummary:
    rows = _rows(store, "select * from runs where id = ?", [run_id])
    if not rows:
        raise UsageError(f"no run {run_id} in the local history", hint="list runs with `cwqbo history`")
    return RunSummary.from_row(rows[0])


def run_page(store: Readable, run_id: int, *, limit: int | None = 50, offset: int = 0,
             failed_only: bool = False) -> RunPage:
    """A page of one run's invoices, counted and paged in SQL (a run of 10,000 invoices reads one page)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1 (or 0 for all), got {limit}")
    if offset < 0:
        raise UsageError(f"--offset cannot be negative, got {offset}")
    run = _run_summary(store, run_id)
    if _is_payments_run(store, run):
        return _payments_page(store, run, limit=limit, offset=offset, failed_only=failed_only)
    where = "run_id = ?" + (" and outcome = 'failed'" if failed_only else "")
    total = int(store.db.execute(f"select count(*) from run_items where {where}", [run_id]).fetchone()[0])
    rows = _rows(store, f"select * from run_items where {where} order by invoice_number, cw_id limit ? offset ?",
                 [run_id, -1 if limit is None else limit, offset])
    return RunPage(run, [RunItem.from_row(r) for r in rows], total, offset, limit, failed_only)


PAYMENTS_TRIGGER = "payments"
EVENT_SQL = ("select e.*, p.payment_date, p.type, p.credit_cw_id from payment_events e "
             "left join payments p on p.id = e.payment_row")


def _is_payments_run(store: Readable, run: RunSummary) -> bool:
    """A payments run (trigger `payments`), or any run that recorded payment events and no invoices."""
    if run.trigger == PAYMENTS_TRIGGER:
        return True
    has = "select exists(select 1 from {} where run_id = ?)"
    return (bool(store.db.execute(has.format("payment_events"), [run.id]).fetchone()[0])
            and not store.db.execute(has.format("run_items"), [run.id]).fetchone()[0])


def _payments_page(store: Readable, run: RunSummary, *, limit: int | None, offset: int,
                   failed_only: bool) -> RunPage:
    """A page of a payments run's events, in the order they happened, counted and paged in SQL."""
    where = "e.run_id = ?" + (" and e.outcome = 'failed'" if failed_only else "")
    total = int(store.db.execute(f"select count(*) from payment_events e where {where}", [run.id]).fetchone()[0])
    rows = _rows(store, f"{EVENT_SQL} where {where} order by e.rowid limit ? offset ?",
                 [run.id, -1 if limit is None else limit, offset])
    return RunPage(run, [], total, offset, limit, failed_only, kind="payments",
                   payments=[PaymentEvent.from_row(r) for r in rows])


def _find_cw_id(store: Readable, number_or_id: str | int) -> tuple[int, str | None]:
    """An invoice number (as CW shows it) or a CW invoice id → (cw id, number)."""
    text = str(number_or_id).strip()
    if not text:
        raise UsageError("give an invoice number or ConnectWise invoice id")
    for sql in ("select cw_id, invoice_number from ledger where invoice_number = ?",
                "select cw_id, invoice_number from run_items where invoice_number = ? order by run_id desc limit 1",
                "select cw_id, number as invoice_number from invoices where number = ?"):
        rows = _rows(store, sql, [text])
        if rows:
            return int(rows[0]["cw_id"]), rows[0]["invoice_number"]
    if text.isdigit():
        cw_id = int(text)
        for sql in ("select invoice_number from ledger where cw_id = ?",
                    "select invoice_number from run_items where cw_id = ? order by run_id desc limit 1",
                    "select number as invoice_number from invoices where cw_id = ?"):
            rows = _rows(store, sql, [cw_id])
            if rows:
                return cw_id, rows[0]["invoice_number"]
    raise UsageError(f"no invoice '{text}' in the local history",
                     hint="use the number ConnectWise shows, or its invoice id; `cwqbo history` lists runs")


def invoice_story(store: Readable, number_or_id: str | int) -> InvoiceStory:
    """Everything cwqbo recorded about one invoice: its ledger row, every run that touched it, its batch."""
    from cwqbo.state import ledger
    from cwqbo.state import payments as pledger

    cw_id, number = _find_cw_id(store, number_or_id)
    led = ledger.get(store, cw_id)
    items = [RunItem.from_row(r) for r in
             _rows(store, "select * from run_items where cw_id = ? order by run_id, at", [cw_id])]
    batch = None
    identifier = led.batch_identifier if led else None
    if identifier is None:  # a batch recorded but not yet confirmed names the invoice only in its JSON list
        for row in _rows(store, "select identifier, invoice_ids from batches order by identifier desc"):
            if cw_id in _ids(row.get("invoice_ids")):
                identifier = row["identifier"]
                break
    if identifier:
        batch = ledger.get_batch(store, identifier)
    event_rows = _rows(store, f"{EVENT_SQL} where e.cw_invoice_id = ? order by e.rowid", [cw_id])
    last_run = {int(r["payment_row"]): int(r["run_id"]) for r in event_rows if r.get("payment_row") is not None}
    payments = [_payment(r, last_run.get(r.id)) for r in pledger.for_invoice(store, cw_id)]
    events = [PaymentEvent.from_row(r) for r in event_rows]
    return InvoiceStory(cw_id, number or (led.invoice_number if led else None), led, items, batch, payments, events)


def _ids(text: Any) -> list[int]:
    import json

    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return []
    return [int(v) for v in value] if isinstance(value, list) else []


def needs_attention(store: Readable) -> list[Attention]:
    """Failed invoices, invoices in QBO but not yet in a CW batch, and intents a dead run left behind."""
    from cwqbo.state import payments as pledger

    out: list[Attention] = []
    for r in _rows(store, "select * from ledger where state = 'failed' order by updated_at, cw_id"):
        out.append(Attention("failed", int(r["cw_id"]), r.get("invoice_number"), r.get("error") or "failed",
                             r.get("updated_at"), r.get("run_id")))
    for r in _rows(store, "select * from ledger where state = 'created' order by updated_at, cw_id"):
        out.append(Attention("not-batched", int(r["cw_id"]), r.get("invoice_number"),
                             f"in QuickBooks as {r.get('entity') or 'document'} {r.get('qbo_id') or '?'}, "
                             "not yet in a ConnectWise accounting batch", r.get("updated_at"), r.get("run_id")))
    stale_sql = ("select l.* from ledger l left join runs r on r.id = l.run_id where l.state = 'intent' "
                 "and (r.id is null or r.status is null or r.status != 'running') order by l.updated_at, l.cw_id")
    for r in _rows(store, stale_sql):
        out.append(Attention("stale-intent", int(r["cw_id"]), r.get("invoice_number"),
                             "a run stopped between recording the intent and confirming it in QuickBooks; "
                             "the next sync checks QuickBooks before retrying", r.get("updated_at"), r.get("run_id")))
    for p in pledger.in_states(store, "failed"):
        out.append(Attention("payment-failed", p.key.cw_invoice_id, p.invoice_number or None,
                             f"QuickBooks payment {p.key.qbo_payment_id} of {p.amount}: {p.error or 'failed'}",
                             p.updated_at, p.run_id))
    return out
