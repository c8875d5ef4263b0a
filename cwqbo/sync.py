"""The sync engine: recover, discover, select, resolve, create exactly once, reconcile, batch in ConnectWise.

Exactly-once rests on three habits (see DESIGN.md, "Rules that keep money safe"):
1. every QBO create is preceded by a committed ledger intent carrying a deterministic requestid, and a
   run first settles intents left by a crashed run (adopt what QBO has, resend the rest with the *same* id);
2. before creating, the DocNumbers are probed in QBO: a document we made (its PrivateNote carries the
   `cwqbo:{cw_id}` marker) is adopted, anyone else's is a readable failure, never a second document;
3. the ConnectWise accounting batch lists exactly the invoices QBO confirmed.
The engine never prints: it returns a SyncReport and reports progress through a callback.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from cwqbo import cache, ledger, mapping, money
from cwqbo.clock import Clock
from cwqbo.connectwise import conditions as cw_cond
from cwqbo.crashpoints import crashpoint
from cwqbo.errors import AuthError, ConfigError, CwqboError, UsageError
from cwqbo.models import CWInvoice
from cwqbo.prefs import Filters, Prefs
from cwqbo.quickbooks import query as qbo_query
from cwqbo.quickbooks.client import BatchItemResult, BatchOp, QBOClient, QBOError, QBOFault
from cwqbo.store import Store

Selection = Literal["all", "invoices"]
Trigger = Literal["select", "all", "invoice", "scheduled", "demo"]

CHUNK = 30  # QBO batch limit
PROBE_CHUNK = 250  # DocNumbers per IN (...) probe (long statements go as a POST body)
MARKER_RE = re.compile(r"cwqbo:(\d+)")
PRIVATE_NOTE_MAX = 4000
DOC_ENTITIES = ("Invoice", "CreditMemo")
EXTERNAL_BATCH = "(exported outside cwqbo)"
BATCH_ATTEMPTS = 5  # identifiers tried when another profile's batches hold the next ones
PROBLEM_RE = re.compile(r"invoice (.*?) \(id (\d+)\)")
CUSTOM_TXN_MESSAGE = ("QuickBooks numbers documents itself (Custom transaction numbers is off), so cwqbo cannot "
                      "find what it sent and could create duplicates; nothing was sent")
CUSTOM_TXN_HINT = "turn on Custom transaction numbers in QuickBooks › Account and settings › Sales, then run again"
NOOP_MESSAGE = ("sync mode is manual, so this scheduled run did nothing "
                "(turn it on with `cwqbo prefs schedule --install`)")


# --- public data ------------------------------------------------------------------------------------

@dataclass
class SyncDeps:
    """Everything the engine talks to; tests pass in-process clients and a ManualClock."""

    store: Store
    cw: Any  # connectwise.client.CWClient
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
    outcome: str  # created | adopted | updated | failed | skipped | dry-run
    qbo_id: str | None = None
    entity: str | None = None
    tid: str | None = None
    error: str | None = None
    qbo_total: Decimal | None = None


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
    items: list[ItemResult] = field(default_factory=list)
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
    would_create: list[Any] = field(default_factory=list)
    batch_error: str | None = None
    batched_ids: list[int] = field(default_factory=list)
    recovered: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.batch_error is None


Progress = Callable[[SyncEvent], None]


# --- pure helpers -----------------------------------------------------------------------------------

def marker(cw_id: int) -> str:
    return f"cwqbo:{cw_id}"


def with_marker(payload: dict[str, Any], cw_id: int) -> dict[str, Any]:
    """Payload whose PrivateNote ends with our marker, so a later run can recognise the document as ours."""
    tag = marker(cw_id)
    note = str(payload.get("PrivateNote") or "")
    if MARKER_RE.search(note) and owner_of(note) == cw_id:
        return payload
    suffix = f" [{tag}]" if note else tag
    note = note[: PRIVATE_NOTE_MAX - len(suffix)] + suffix
    return {**payload, "PrivateNote": note}


def owner_of(private_note: Any) -> int | None:
    """The CW invoice id a QBO document's marker names, if any."""
    m = MARKER_RE.search(str(private_note or ""))
    return int(m.group(1)) if m else None


def fault_text(fault: QBOFault | None, fallback: str = "QuickBooks Online refused the document") -> str:
    if fault is None:
        return fallback
    return str(fault)


def run_status(created: int, failed: int, batch_error: str | None) -> str:
    if failed == 0 and batch_error is None:
        return "ok"
    if created == 0 and failed > 0:
        return "failed"
    return "partial"


def _today(clock: Clock) -> date:
    return datetime.fromtimestamp(clock.now(), UTC).date()


def _plan_lines(payload: dict[str, Any]) -> tuple[PlanLine, ...]:
    out = []
    for line in payload.get("Line", []) or []:
        if line.get("DetailType") in ("SubTotalLineDetail",):
            continue
        detail = line.get("SalesItemLineDetail") or {}
        item = (detail.get("ItemRef") or {}).get("name") or (detail.get("ItemRef") or {}).get("value")
        out.append(PlanLine(str(line.get("Description") or ""), money.to_decimal(line.get("Amount", 0)), item))
    return tuple(out)


# --- the engine -------------------------------------------------------------------------------------

@dataclass
class _Work:
    """One invoice on its way through a run."""

    inv: CWInvoice
    doc: Any = None  # mapping.QBODocument
    refs: Any = None  # mapping.Refs
    payload: dict[str, Any] | None = None
    payload_hash: str = ""
    request_id: str = ""
    result: ItemResult | None = None


class _Engine:
    def __init__(self, deps: SyncDeps, options: SyncOptions, progress: Progress | None) -> None:
        self.d = deps
        self.o = options
        self._progress = progress
        self.report = SyncReport(run_id=None, dry_run=options.dry_run)
        self.run_id: int | None = None
        self._qbo0 = getattr(deps.qbo, "calls", 0)
        self._cw0 = getattr(deps.cw, "calls", 0)
        self._done = 0
        self._unwritten: list[ItemResult] = []  # run items not yet in run_items (written with their ledger rows)
        self._total = 0

    # -- plumbing ------------------------------------------------------------------------------------

    def emit(self, phase: str, message: str = "", item: ItemResult | None = None) -> None:
        if self._progress is not None:
            self._progress(SyncEvent(phase, message, self._done, self._total, item))

    def now(self) -> str:
        return ledger.iso(self.d.clock.now())

    def finish_item(self, work: _Work, result: ItemResult) -> None:
        work.result = result
        self.report.items.append(result)
        self._unwritten.append(result)
        self._done += 1
        self.emit("item", f"{result.number}: {result.outcome}", result)

    def flush_items(self) -> None:
        """Write finished items to run_items, so `history` accounts for a run even if it is killed later.

        Called inside the same transaction as the ledger rows they describe.
        """
        if self.run_id is None or self.o.dry_run or not self._unwritten:
            return
        ledger.record_items(self.d.store, self.run_id, [
            ledger.Item(i.cw_id, i.number, i.outcome, i.entity, i.qbo_id, i.total, i.qbo_total, i.tid, i.error)
            for i in self._unwritten], now=self.now())
        self._unwritten.clear()

    def _result(self, inv: CWInvoice, outcome: str, **kw: Any) -> ItemResult:
        return ItemResult(cw_id=inv.id, number=inv.number, company=inv.company.name, total=inv.total,
                          outcome=outcome, **kw)

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> SyncReport:
        started = time.monotonic()
        d, o = self.d, self.o
        if not o.dry_run:
            ledger.mark_interrupted_runs(d.store)
            self.run_id = ledger.start_run(d.store, trigger=o.trigger, dry_run=False, user=_user(),
                                           host=socket.gethostname(), pid=os.getpid(), now=self.now())
            self.report.run_id = self.run_id
        try:
            handled: set[int] = set()
            if not o.dry_run:
                handled = self.recover()
                self.settle_pending_batches()
            if o.refresh:
                self.emit("discover", "reading Closed invoices from ConnectWise")
                from cwqbo import discover  # imported late: discover pulls in the CW client
                found = discover.refresh(d.cw, d.store, d.filters, full=o.full_refresh, clock=d.clock,
                                         progress=self._discover_progress)
                self.report_problems(getattr(found, "problems", ()) or ())
            invoices, skipped = self.select(handled)
            for res in skipped:
                self.report.items.append(res)
            changed = [] if o.selection == "invoices" else self.changed(handled)
            self._total = len(invoices) + len(changed)
            self.emit("plan", f"{len(invoices)} invoice(s) to send")
            self.process(invoices)
            self.handle_changed(changed)
            if not o.dry_run:
                self.batch_confirmed()
        except BaseException as exc:
            if self.run_id is not None:
                try:
                    self._finish(started, status="failed" if isinstance(exc, Exception) else "interrupted",
                                 message=str(exc) or type(exc).__name__)
                except Exception:  # noqa: BLE001 - never mask the original error; the next run marks it
                    pass
            raise
        self._finish(started)
        return self.report

    def report_problems(self, problems: Iterable[str]) -> None:
        """Invoices CW sent that discover could not read: failed items, so they are never silently left out."""
        wanted = set(self.o.invoice_numbers)
        for text in problems:
            m = PROBLEM_RE.search(text)
            number, cw_id = (m.group(1), int(m.group(2))) if m else ("?", 0)
            if self.o.selection == "invoices" and number not in wanted:
                continue
            res = ItemResult(cw_id=cw_id, number=number, company="", total=Decimal(0), outcome="failed",
                             error=f"{text} (fix it in ConnectWise; it was not synced)")
            self.report.items.append(res)
            self._unwritten.append(res)
            self.emit("item", f"{number}: failed", res)

    def _discover_progress(self, done: Any = None, total: Any = None, *args: Any, **kwargs: Any) -> None:
        read = f"{done} of {total}" if total else f"{done or 0}"
        self.emit("discover", f"read {read} invoice(s) from ConnectWise")

    def _finish(self, started: float, status: str | None = None, message: str | None = None) -> None:
        r = self.report
        r.created = sum(1 for i in r.items if i.outcome in ("created", "adopted", "updated"))
        r.failed = sum(1 for i in r.items if i.outcome == "failed")
        r.skipped = sum(1 for i in r.items if i.outcome == "skipped")
        r.qbo_calls = getattr(self.d.qbo, "calls", 0) - self._qbo0
        r.cw_calls = getattr(self.d.cw, "calls", 0) - self._cw0
        r.duration = time.monotonic() - started
        r.status = status or run_status(r.created, r.failed, r.batch_error)
        r.message = message or r.message
        if self.run_id is None:
            return
        self.flush_items()
        ledger.finish_run(self.d.store, self.run_id, status=r.status, selected=len(r.items), created=r.created,
                          failed=r.failed, skipped=r.skipped, batch_identifier=r.batch_identifier,
                          qbo_calls=r.qbo_calls, cw_calls=r.cw_calls, duration_ms=int(r.duration * 1000),
                          message=r.message or r.batch_error, now=self.now())

    # -- (a) recovery of intents left by a crashed run -------------------------------------------------

    def recover(self) -> set[int]:
        """Settle 'intent' rows: adopt what QBO has, resend the rest with the same requestid."""
        rows = ledger.pending_intents(self.d.store)
        if not rows:
            return set()
        self.emit("recover", f"checking {len(rows)} invoice(s) interrupted by an earlier run")
        invoices: list[CWInvoice] = []
        forced: dict[int, str] = {}
        for row in rows:
            inv = _cached(self.d.store, row.cw_id)
            if inv is None:
                ledger.mark_failed(self.d.store, row.cw_id, error="interrupted, and no longer in the local cache; "
                                   "run `cwqbo sync` with a refresh", tid=None, now=self.now())
                continue
            invoices.append(inv)
            if row.request_id:
                forced[row.cw_id] = row.request_id
        self._total += len(invoices)
        self.process(invoices, forced_request_ids=forced)
        self.report.recovered = len(invoices)
        return {inv.id for inv in invoices}

    # -- (b) CW batches whose outcome is unknown -------------------------------------------------------

    def settle_pending_batches(self) -> None:
        for batch in ledger.pending_batches(self.d.store):
            self.emit("batch", f"checking ConnectWise batch {batch.identifier}")
            try:
                row = self.d.cw.find_batch(batch.identifier)
                if isinstance(row, dict) and self.d.cw.batch_holds(row, batch.invoice_ids):
                    ledger.mark_batch_created(self.d.store, batch.identifier, _int(row.get("id")), now=self.now())
                    continue
                if isinstance(row, dict):  # same identifier, other invoices: another profile's batch
                    ledger.mark_batch_failed(self.d.store, batch.identifier, "the identifier is used in ConnectWise "
                                             "by a batch of other invoices; its invoices go into the next batch")
                    continue
                ledger.mark_batch_failed(self.d.store, batch.identifier, "not found in ConnectWise after an "
                                         "interrupted run; its invoices go into the next batch")
            except CwqboError as exc:
                # Leave it pending: a later run checks again; don't batch its invoices twice meanwhile.
                self.report.batch_error = f"could not check batch {batch.identifier}: {exc}"

    # -- (d) selection ---------------------------------------------------------------------------------

    def select(self, handled: set[int]) -> tuple[list[CWInvoice], list[ItemResult]]:
        store = self.d.store
        if self.o.selection == "all":
            invs = [i for i in _unsynced(store) if i.id not in handled]
            return invs, []
        invoices: list[CWInvoice] = []
        skipped: list[ItemResult] = []
        seen: set[int] = set()
        for number in self.o.invoice_numbers:
            rows = store.db.execute("select cw_id, closed, status_name, in_scope, unposted from invoices "
                                    "where number = ?", [number]).fetchall()
            if not rows:
                raise UsageError(f"invoice {number} is not among the Closed invoices cwqbo knows",
                                 hint="check the number, or run `cwqbo list-unsynced` to refresh and see them")
            cw_id, closed, status_name, _in_scope, _unposted = rows[0]
            if not closed:
                raise UsageError(f"invoice {number} is not Closed in ConnectWise (status: {status_name})",
                                 hint="close it in ConnectWise first; only Closed invoices are synced")
            if cw_id in seen or cw_id in handled:
                continue
            seen.add(cw_id)
            inv = _cached(store, cw_id)
            if inv is None:  # pragma: no cover - row exists but data unreadable
                raise UsageError(f"invoice {number} is in the cache without its detail; refresh and retry")
            row = ledger.get(store, cw_id)
            if row is not None and row.state in ("created", "batched"):
                skipped.append(self._result(inv, "skipped", qbo_id=row.qbo_id, entity=row.entity,
                                            error=f"already in QuickBooks ({row.entity} {row.qbo_id})"))
                continue
            if not _unposted:
                skipped.append(self._result(inv, "skipped", error="already exported in a ConnectWise accounting "
                                                                  "batch (not by cwqbo); not sent again"))
                continue
            invoices.append(inv)
        return invoices, skipped

    def changed(self, handled: set[int]) -> list[CWInvoice]:
        return [i for i in _changed(self.d.store) if i.id not in handled]

    # -- (e)-(g) map, resolve, probe, create ---------------------------------------------------------

    def process(self, invoices: Sequence[CWInvoice], forced_request_ids: dict[int, str] | None = None) -> None:
        if not invoices:
            return
        forced = forced_request_ids or {}
        works = [_Work(inv) for inv in invoices]
        ready = self.prepare(works)
        if self.o.dry_run:
            for w in ready:
                self.report.plan.append(PlannedDocument(w.inv.id, w.inv.number, w.inv.company.name, w.doc.entity,
                                                        w.doc.doc_number, w.doc.expected_total,
                                                        _plan_lines(w.payload or {})))
                self.finish_item(w, self._result(w.inv, "dry-run", entity=w.doc.entity))
            return
        for w in ready:
            w.request_id = forced.get(w.inv.id) or ledger.request_id(self.d.realm, w.inv.id, w.payload_hash)
        to_send = self.probe(ready)
        for start in range(0, len(to_send), CHUNK):
            self.send_chunk(to_send[start:start + CHUNK])

    def prepare(self, works: list[_Work]) -> list[_Work]:
        """needs → bulk resolve → documents; a mapping or resolve problem fails that invoice only."""
        d = self.d
        needs: dict[int, Any] = {}
        for w in works:
            try:
                needs[w.inv.id] = mapping.needs(w.inv, d.prefs)
            except mapping.MappingError as exc:
                self.fail(w, str(exc))
        if not needs:
            return []
        self.emit("resolve", f"matching customers and items for {len(needs)} invoice(s)")
        from cwqbo.resolve import Resolver
        resolved = Resolver(d.qbo, d.store, d.realm, d.prefs).resolve(needs, create=not self.o.dry_run,
                                                                         dry_run=self.o.dry_run)
        sales = (getattr(resolved, "preferences", None) or {}).get("SalesFormsPrefs") or {}
        if sales.get("CustomTxnNumbers") is False:
            raise ConfigError(CUSTOM_TXN_MESSAGE, hint=CUSTOM_TXN_HINT)
        if self.o.dry_run:
            self.report.would_create.extend(resolved.would_create or [])
        ready: list[_Work] = []
        for w in works:
            if w.result is not None:
                continue
            if w.inv.id in resolved.errors:
                self.fail(w, str(resolved.errors[w.inv.id]))
                continue
            refs = resolved.refs.get(w.inv.id)
            if refs is None:
                self.fail(w, "QuickBooks references could not be resolved")
                continue
            w.refs = refs
            try:
                w.doc = mapping.build_document(w.inv, d.prefs, refs)
            except mapping.MappingError as exc:
                self.fail(w, str(exc))
                continue
            w.payload = with_marker(w.doc.payload, w.inv.id)
            w.payload_hash = mapping.payload_hash(w.payload)
            ready.append(w)
        return ready

    def fail(self, w: _Work, error: str, *, tid: str | None = None, entity: str | None = None,
             qbo_id: str | None = None, qbo_total: Decimal | None = None, write: bool = True) -> ItemResult:
        entity = entity or (w.doc.entity if w.doc is not None else None)
        res = self._result(w.inv, "failed", error=error, tid=tid, entity=entity, qbo_id=qbo_id, qbo_total=qbo_total)
        if write and not self.o.dry_run:
            ledger.mark_failed(self.d.store, w.inv.id, error=error, tid=tid, qbo_id=qbo_id, qbo_total=qbo_total,
                               number=w.inv.number, entity=entity, cw_total=w.inv.total, run_id=self.run_id,
                               now=self.now())
        self.finish_item(w, res)
        return res

    def probe(self, works: list[_Work]) -> list[_Work]:
        """(f) Look every DocNumber up in QBO first: adopt ours, refuse someone else's, send the rest."""
        if not works:
            return []
        self.emit("probe", f"checking {len(works)} document number(s) in QuickBooks")
        pending: list[_Work] = []
        sent_as: dict[int, str] = {}  # DocNumber an earlier attempt went out under, when it differs from today's
        for w in works:
            row = ledger.get(self.d.store, w.inv.id)
            if row is not None and row.qbo_id and not row.doc_number and self.settle_known(w, row):
                continue
            if row is not None and row.doc_number and row.doc_number != w.doc.doc_number:
                sent_as[w.inv.id] = row.doc_number
            pending.append(w)
        found = self.lookup_docs([w.doc.doc_number for w in pending] + list(sent_as.values()))
        to_send: list[_Work] = []
        for w in pending:
            old = sent_as.get(w.inv.id)
            mine = [(e, o) for e, o in found.get(old, []) if owner_of(o.get("PrivateNote")) == w.inv.id] if old else []
            if mine:  # the earlier attempt reached QBO under its old number: never a second document
                entity, obj = mine[0]
                if entity == w.doc.entity:
                    self.confirm(w, obj, None, adopted=True)
                else:
                    self.fail(w, f"QuickBooks already has {entity} {obj.get('Id')} (number {old}) for this invoice; "
                                 f"void or delete it in QuickBooks to send it again as a {w.doc.entity}")
                continue
            hits = found.get(w.doc.doc_number, [])
            if not hits:
                to_send.append(w)
                continue
            self.settle_existing(w, hits, tid=None)
        return to_send

    def settle_known(self, w: _Work, row: ledger.LedgerRow) -> bool:
        """A row that kept a qbo_id but not the number it was sent under: read that document; True if settled."""
        try:
            obj = self.d.qbo.read(row.entity, str(row.qbo_id)).obj
        except QBOError as exc:
            if exc.has_code("610") or exc.status == 404:  # deleted in QBO: probe and send as usual
                return False
            self.fail(w, f"could not read its QuickBooks {row.entity} {row.qbo_id} ({exc}); not sent again",
                      tid=exc.tid, qbo_id=row.qbo_id)
            return True
        if owner_of(obj.get("PrivateNote")) != w.inv.id:
            return False
        if row.entity != w.doc.entity:
            self.fail(w, f"QuickBooks already has {row.entity} {row.qbo_id} for this invoice; void or delete it "
                         f"in QuickBooks to send it again as a {w.doc.entity}", qbo_id=row.qbo_id)
            return True
        self.confirm(w, obj, None, adopted=True)
        return True

    def lookup_docs(self, doc_numbers: Iterable[str]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """DocNumber → [(entity, object)] for Invoices and CreditMemos carrying it."""
        numbers = sorted(set(doc_numbers))
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for entity in DOC_ENTITIES:
            for start in range(0, len(numbers), PROBE_CHUNK):
                part = numbers[start:start + PROBE_CHUNK]
                statement = (f"SELECT Id, DocNumber, TotalAmt, SyncToken, PrivateNote FROM {entity} WHERE "
                             f"{qbo_query.in_('DocNumber', part)} MAXRESULTS 1000")
                for row in self.d.qbo.query(statement):
                    out.setdefault(str(row.get("DocNumber")), []).append((entity, row))
        return out

    def settle_existing(self, w: _Work, hits: list[tuple[str, dict[str, Any]]], tid: str | None) -> None:
        """A document with our DocNumber exists: adopt it if it is ours, else fail with who holds the number."""
        ours = [(e, o) for e, o in hits if owner_of(o.get("PrivateNote")) == w.inv.id and e == w.doc.entity]
        if ours:
            entity, obj = ours[0]
            self.confirm(w, obj, tid, adopted=True)
            return
        entity, obj = hits[0]
        self.fail(w, f"QuickBooks already has {entity} {obj.get('Id')} with number {w.doc.doc_number}, not created "
                     f"by cwqbo for this invoice; rename or remove it in QuickBooks, or set a DocNumber prefix",
                  tid=tid)

    def send_chunk(self, chunk: list[_Work]) -> None:
        d = self.d
        ledger.record_intents(d.store, [self._intent(w) for w in chunk], self.run_id, now=self.now())
        crashpoint("sync.after_intent")
        ops = [BatchOp.create(str(i), w.doc.entity, w.payload or {}) for i, w in enumerate(chunk)]
        self.emit("create", f"sending {len(chunk)} document(s) to QuickBooks")
        try:
            results = d.qbo.batch(ops, request_id=ledger.batch_request_id((w.request_id for w in chunk),
                                                                             salt=f"run-{self.run_id}"))
        except AuthError:
            raise  # nothing more can be done this run; the intents are settled by the next one
        except CwqboError as exc:
            # The outcome is unknown (or the batch was refused whole): find out what QBO has.
            self.after_lost_batch(chunk, exc)
            return
        crashpoint("sync.after_qbo_response")
        writes: list[Callable[[], None]] = []
        for i, w in enumerate(chunk):
            res = results.get(str(i))
            if res is None:
                writes.append(self._deferred_fail(w, "QuickBooks answered without this document's result"))
                continue
            writes.extend(self.handle_result(w, res))
        crashpoint("sync.before_ledger_write")
        with d.store.transaction():
            for write in writes:
                write()
            self.flush_items()

    def after_lost_batch(self, chunk: list[_Work], exc: CwqboError) -> None:
        tid = getattr(exc, "tid", None)
        try:
            found = self.lookup_docs([w.doc.doc_number for w in chunk])
        except CwqboError:
            found = None
        for w in chunk:
            hits = (found or {}).get(w.doc.doc_number, [])
            if hits:
                self.settle_existing(w, hits, tid)
            elif found is not None:
                self.fail(w, f"not created: {exc}", tid=tid)
            else:  # can't tell: keep the intent, the next run settles it
                self.finish_item(w, self._result(w.inv, "failed", entity=w.doc.entity, tid=tid,
                                                 error=f"outcome unknown ({exc}); the next run checks QuickBooks"))

    def handle_result(self, w: _Work, res: BatchItemResult) -> list[Callable[[], None]]:
        if res.ok and res.obj is not None:
            return [self.confirm(w, res.obj, res.tid, adopted=False, commit=False)]
        fault = res.faults[0] if res.faults else None
        if fault is not None and fault.code == "6140":
            try:
                hits = self.lookup_docs([w.doc.doc_number]).get(w.doc.doc_number, [])
            except CwqboError as exc:
                return [self._deferred_fail(w, f"{fault_text(fault)}; lookup failed: {exc}", res.tid)]
            if hits:
                self.settle_existing(w, hits, res.tid)
                return []
        return [self._deferred_fail(w, fault_text(fault), res.tid)]

    def _deferred_fail(self, w: _Work, error: str, tid: str | None = None) -> Callable[[], None]:
        self.fail(w, error, tid=tid, write=False)
        store, cw_id, now = self.d.store, w.inv.id, self.now()
        return lambda: ledger.mark_failed(store, cw_id, error=error, tid=tid, now=now, commit=False)

    def confirm(self, w: _Work, obj: dict[str, Any], tid: str | None, *, adopted: bool,
                commit: bool = True) -> Callable[[], None]:
        """Reconcile the QBO total with CW's; a mismatch never loses the document id.

        With commit=False the ledger write is returned (the caller writes a chunk's results together);
        with commit=True (a document adopted before any intent of this run) it is written now.
        """
        d = self.d
        entity = w.doc.entity
        rec = mapping.reconcile(w.doc, obj, d.prefs)
        warning: str | None = None
        if not rec.ok and d.prefs.tax.on_mismatch == "adjust":
            obj, rec, tid, warning = self.adjust(w, obj, rec, tid)
        elif not rec.ok and d.prefs.tax.on_mismatch == "warn":
            warning = f"accepted with a difference of {money.money_str(rec.difference)}: {rec.note}"
        qbo_id, token, qbo_total = str(obj.get("Id")), obj.get("SyncToken"), rec.qbo_total
        doc_number = None if obj.get("DocNumber") is None else str(obj.get("DocNumber"))
        store, cw_id, now = d.store, w.inv.id, self.now()
        ok = rec.ok or d.prefs.tax.on_mismatch == "warn"
        sent, kept = (w.payload or {}).get("DocNumber"), obj.get("DocNumber")
        renumbered = not adopted and sent is not None and str(kept) != str(sent)
        if renumbered:  # QBO ignored our number: a later probe could never find it, so never batch it
            ok = False
            warning = (f"QuickBooks numbered it {kept} instead of {sent} (turn on Custom transaction numbers in "
                       "QuickBooks › Account and settings › Sales)")
        if ok:
            self.finish_item(w, self._result(w.inv, "adopted" if adopted else "created", qbo_id=qbo_id,
                                             entity=entity, tid=tid, qbo_total=qbo_total, error=warning))
        else:
            error = (warning + "; " if warning else "") + (
                f"{'' if renumbered else rec.note or 'totals differ'} (QBO {entity} {qbo_id} kept for review; "
                "nothing batched)").lstrip()
            self.fail(w, error, tid=tid, qbo_id=qbo_id, qbo_total=qbo_total, write=False)

        def write() -> None:
            if ok:
                ledger.mark_created(store, cw_id, qbo_id=qbo_id, sync_token=token, qbo_total=qbo_total, tid=tid,
                                    now=now, commit=False, doc_number=doc_number)
            else:
                ledger.mark_failed(store, cw_id, error=error, tid=tid, qbo_id=qbo_id, sync_token=token,
                                   qbo_total=qbo_total, now=now, commit=False, doc_number=doc_number)
        if commit:
            with store.transaction():
                ledger.record_intents(store, [self._intent(w)], self.run_id, now=now)
                write()
                self.flush_items()
        return write

    def _intent(self, w: _Work) -> ledger.Intent:
        return ledger.Intent(w.inv.id, w.inv.number, w.doc.entity, w.request_id, w.payload_hash,
                             w.inv.content_hash(), w.doc.expected_total, (w.payload or {}).get("DocNumber"))

    def adjust(self, w: _Work, obj: dict[str, Any], rec: Any,
               tid: str | None) -> tuple[dict[str, Any], Any, str | None, str | None]:
        """tax.on_mismatch = adjust: add one non-taxable line for the difference (sparse update), re-check."""
        d = self.d
        try:
            line = mapping.adjustment_line(rec.difference, w.refs, d.prefs)
            current = d.qbo.read(w.doc.entity, str(obj.get("Id"))).obj
            lines = [ln for ln in current.get("Line", []) if ln.get("DetailType") != "SubTotalLineDetail"]
            rid = ledger.request_id(d.realm, w.inv.id, f"adjust:{w.payload_hash}:{current.get('SyncToken')}")
            updated = d.qbo.update(w.doc.entity, {"Id": current["Id"], "SyncToken": current["SyncToken"],
                                                  "Line": [*lines, line]}, rid)
        except (mapping.MappingError, QBOError) as exc:
            return obj, rec, tid, f"could not add the adjustment line ({exc})"
        after = mapping.reconcile(w.doc, updated.obj, d.prefs)
        note = f"added an adjustment line of {money.money_str(rec.difference)} ({rec.note})"
        return updated.obj, after, updated.tid, note

    # -- (i) invoices changed in CW after they were synced ---------------------------------------------

    def handle_changed(self, invoices: list[CWInvoice]) -> None:
        if not invoices:
            return
        if not self.o.update_changed or self.o.dry_run:
            for inv in invoices:
                row = ledger.get(self.d.store, inv.id)
                self._done += 1
                res = self._result(inv, "skipped", qbo_id=row.qbo_id if row else None,
                                   entity=row.entity if row else None,
                                   error="changed in ConnectWise after it was synced; run with --update to update "
                                         "the QuickBooks document")
                self.report.items.append(res)
                self.emit("item", f"{inv.number}: changed", res)
            return
        works = [_Work(inv) for inv in invoices]
        for w in self.prepare(works):
            self.update_one(w)

    def update_one(self, w: _Work) -> None:
        d = self.d
        row = ledger.get(d.store, w.inv.id)
        if row is None or not row.qbo_id:
            self.fail(w, "changed in ConnectWise but its QuickBooks document is unknown", write=False)
            return
        try:
            current = d.qbo.read(row.entity, row.qbo_id)
            payload = {**(w.payload or {}), "Id": row.qbo_id, "SyncToken": current.obj.get("SyncToken")}
            payload.pop("DocNumber", None) if payload.get("DocNumber") == current.obj.get("DocNumber") else None
            rid = ledger.request_id(d.realm, w.inv.id, "update:" + w.payload_hash + ":" +
                                    str(current.obj.get("SyncToken")))
            result = d.qbo.update(row.entity, payload, rid)
        except QBOError as exc:
            self.fail(w, str(exc), tid=exc.tid, write=False)
            return
        rec = mapping.reconcile(w.doc, result.obj, d.prefs)
        error = None if rec.ok else (f"total differs by {money.money_str(rec.difference)}"
                                     + (f": {rec.note}" if rec.note else "")
                                     + f" (QBO {row.entity} {row.qbo_id} kept for review; nothing batched)")
        if rec.ok:
            ledger.set_content(d.store, w.inv.id, content_hash=w.inv.content_hash(), payload_hash=w.payload_hash,
                               sync_token=result.obj.get("SyncToken"), qbo_total=rec.qbo_total,
                               cw_total=w.inv.total, tid=result.tid, now=self.now())
        else:  # never leave it 'created': the batch would export a total QBO doesn't match
            ledger.mark_failed(d.store, w.inv.id, error=error or "", tid=result.tid, qbo_id=row.qbo_id,
                               sync_token=result.obj.get("SyncToken"), qbo_total=rec.qbo_total,
                               cw_total=w.inv.total, now=self.now())
        res = self._result(w.inv, "updated" if rec.ok else "failed", qbo_id=row.qbo_id, entity=row.entity,
                           tid=result.tid, qbo_total=rec.qbo_total, error=error)
        self.finish_item(w, res)

    # -- (h) the ConnectWise batch ---------------------------------------------------------------------

    def _still_unposted(self, ids: list[int]) -> list[int]:
        """The ids CW still lists as unposted; those exported by someone else (and still Closed) are recorded so.

        A re-opened invoice is off the unposted list too, but it stays created-not-batched for a later run.
        """
        d = self.d
        try:
            still = d.cw.unposted_invoice_ids(ids)
        except CwqboError as exc:
            self.report.batch_error = f"could not read ConnectWise's unposted invoices: {exc}"
            return []
        gone = [i for i in ids if i not in still and _closed(d.store, i)]
        if gone:  # exported by someone else after we created them: nothing left to batch for those
            ledger.mark_batched(d.store, gone, EXTERNAL_BATCH, now=self.now())
            self.report.message = (f"{len(gone)} invoice(s) were already exported in ConnectWise by someone else; "
                                   "they are in QuickBooks and were not batched again")
        return [i for i in ids if i in still]

    def batch_confirmed(self) -> None:
        from cwqbo.connectwise.client import BatchIdentifierTaken  # late, like discover: keeps imports light

        d = self.d
        if any(b for b in ledger.pending_batches(d.store)):
            return  # an unsettled batch may already hold these invoices; settle it first (next run)
        stale = {inv.id for inv in _changed(d.store)}  # edited in CW since: QBO holds an older total
        rows = [r for r in ledger.created_not_batched(d.store) if r.cw_id not in stale]
        if not rows:
            return
        ids = [r.cw_id for r in rows]
        self.emit("batch", f"creating a ConnectWise accounting batch of {len(ids)} invoice(s)")
        day = _today(d.clock)
        ids = self._still_unposted(ids)
        if not ids:
            return
        try:
            seen = [str(b.get("batchIdentifier")) for b in
                    (d.cw.list_batches(cw_cond.cmp("batchIdentifier", "like", f"cwqbo-{day.isoformat()}-%")) or [])
                    if isinstance(b, dict)]
        except CwqboError as exc:
            self.report.batch_error = f"could not read ConnectWise batches: {exc}"
            return
        for _attempt in range(BATCH_ATTEMPTS):
            ident = ledger.next_batch_identifier(d.store, day, seen)
            ledger.record_batch_pending(d.store, ident, ids, self.run_id, now=self.now())
            crashpoint("sync.before_cw_batch")
            try:
                created = d.cw.create_batch(ident, ids)
                break
            except BatchIdentifierTaken as exc:  # another profile took it meanwhile: try the next one
                ledger.mark_batch_failed(d.store, ident, str(exc))
                seen.append(ident)
                ids = self._still_unposted(ids)  # its batch may hold some of ours
                if not ids:
                    return
            except CwqboError as exc:
                ledger.mark_batch_failed(d.store, ident, str(exc))
                self.report.batch_error = (f"ConnectWise batch {ident} was not created ({exc}); the invoices are "
                                           "in QuickBooks and the next run batches them")
                return
        else:
            self.report.batch_error = (f"no free ConnectWise batch identifier after {ident}; the invoices are in "
                                       "QuickBooks and the next run batches them")
            return
        crashpoint("sync.after_cw_batch")
        cw_batch_id = _int(created.get("id")) if isinstance(created, dict) else _int(created)
        ledger.mark_batch_created(d.store, ident, cw_batch_id, now=self.now())
        self.report.batch_identifier = ident
        self.report.batched_ids = ids


def run_sync(deps: SyncDeps, options: SyncOptions, progress: Progress | None = None) -> SyncReport:
    """One sync run; returns what happened to every selected invoice. Raises CwqboError on fatal problems."""
    if options.selection == "invoices" and not options.invoice_numbers:
        raise UsageError("no invoice numbers given")
    if scheduled_noop(deps.prefs, options):
        return SyncReport(run_id=None, status="noop", dry_run=options.dry_run, message=NOOP_MESSAGE)
    return _Engine(deps, options, progress).run()


def scheduled_noop(prefs: Prefs, options: SyncOptions) -> bool:
    scheduled = options.trigger == "scheduled" or os.environ.get("CWQBO_SCHEDULED") == "1"
    return scheduled and prefs.sync_mode == "manual"


# --- cache adapters -----------------------------------------------------------------------------------

def _cached(store: Store, cw_id: int) -> CWInvoice | None:
    found = cache.find(store, cw_id)
    return found.invoice() if found is not None else None


def _unsynced(store: Store) -> list[CWInvoice]:
    return [row.invoice() for row in cache.unsynced(store)]


def _changed(store: Store) -> list[CWInvoice]:
    return [c.cached.invoice() for c in cache.changed(store)]


def _closed(store: Store, cw_id: int) -> bool:
    """Still Closed per the cache: off the unposted list because someone exported it, not re-opened."""
    found = cache.find(store, cw_id)
    return found is not None and bool(found.closed)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        return ""
