"""What happened: past sync runs, one run's invoices, one invoice's whole story, and what needs attention.

Read-only queries over the store (runs, run_items, ledger, batches); `cli/history.py` renders them.
An operator uses this to answer "did invoice 1234 reach QuickBooks, when, as what, and was it batched?"
without opening SQLite. Money comes back as Decimal (the store keeps exact TEXT).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cwqbo.state import ledger
from cwqbo.state.ledger import BatchRow, LedgerRow
from cwqbo.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.state.store import Store

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

    @property
    def remaining(self) -> int:
        """Matching items after this page."""
        return max(0, self.total - self.offset - len(self.items))


@dataclass(frozen=True, slots=True)
class InvoiceStory:
    cw_id: int
    invoice_number: str | None
    ledger: LedgerRow | None  # where it stands now
    items: list[RunItem]  # what each run did with it, oldest first
    batch: BatchRow | None  # the CW accounting batch it went into, if any


@dataclass(frozen=True, slots=True)
class Attention:
    """One invoice an operator should look at, and why."""

    kind: str  # "failed" | "not-batched" | "stale-intent"
    cw_id: int
    invoice_number: str | None
    detail: str
    since: str | None
    run_id: int | None


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def _rows(store: Store, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return [dict(r) for r in store.db.query(sql, params or [])]


def runs(store: Store, limit: int = 20, failed_only: bool = False) -> list[RunSummary]:
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


def run_detail(store: Store, run_id: int) -> RunDetail:
    rows = _rows(store, "select * from runs where id = ?", [run_id])
    if not rows:
        raise UsageError(f"no run {run_id} in the local history", hint="list runs with `cwqbo history`")
    items = _rows(store, "select * from run_items where run_id = ? order by invoice_number, cw_id", [run_id])
    return RunDetail(RunSummary.from_row(rows[0]), [RunItem.from_row(r) for r in items])


def _run_summary(store: Store, run_id: int) -> RunSummary:
    rows = _rows(store, "select * from runs where id = ?", [run_id])
    if not rows:
        raise UsageError(f"no run {run_id} in the local history", hint="list runs with `cwqbo history`")
    return RunSummary.from_row(rows[0])


def run_page(store: Store, run_id: int, *, limit: int | None = 50, offset: int = 0,
             failed_only: bool = False) -> RunPage:
    """A page of one run's invoices, counted and paged in SQL (a run of 10,000 invoices reads one page)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1 (or 0 for all), got {limit}")
    if offset < 0:
        raise UsageError(f"--offset cannot be negative, got {offset}")
    run = _run_summary(store, run_id)
    where = "run_id = ?" + (" and outcome = 'failed'" if failed_only else "")
    total = int(store.db.execute(f"select count(*) from run_items where {where}", [run_id]).fetchone()[0])
    rows = _rows(store, f"select * from run_items where {where} order by invoice_number, cw_id limit ? offset ?",
                 [run_id, -1 if limit is None else limit, offset])
    return RunPage(run, [RunItem.from_row(r) for r in rows], total, offset, limit, failed_only)


def _find_cw_id(store: Store, number_or_id: str | int) -> tuple[int, str | None]:
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


def invoice_story(store: Store, number_or_id: str | int) -> InvoiceStory:
    """Everything cwqbo recorded about one invoice: its ledger row, every run that touched it, its batch."""
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
    return InvoiceStory(cw_id, number or (led.invoice_number if led else None), led, items, batch)


def _ids(text: Any) -> list[int]:
    import json

    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return []
    return [int(v) for v in value] if isinstance(value, list) else []


def needs_attention(store: Store) -> list[Attention]:
    """Failed invoices, invoices in QBO but not yet in a CW batch, and intents a dead run left behind."""
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
    return out
