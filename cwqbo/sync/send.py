"""Sending invoices to QuickBooks exactly once: map and resolve, probe DocNumbers, create in batches, reconcile.

Every create is preceded by a committed ledger intent carrying a deterministic requestid; before creating, the
DocNumbers are probed so a document we made (its `cwqbo:{cw_id}` marker) is adopted, never sent twice, and
anyone else's is a readable failure. A confirmed document is reconciled against CW's total before it is recorded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cwqbo import crashpoints, money
from cwqbo.state import ledger
from cwqbo.mapping import document, reconciliation
from cwqbo.mapping.document import QBODocument
from cwqbo.mapping.lines import PlannedLine
from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.reconciliation import Reconciliation
from cwqbo.errors import AuthError, ConfigError, CwqboError, PermissionDenied, kept_failing
from cwqbo.sync.markers import owner_of, with_marker
from cwqbo.models import CWInvoice
from cwqbo.quickbooks import query as qbo_query
from cwqbo.quickbooks.throttle import Throttle
from cwqbo.quickbooks.client import BatchItemResult, BatchOp, QBOError, QBOFault
from cwqbo.in_flight import LIMIT as IN_FLIGHT, in_flight
from cwqbo.sync.run_state import RunState, Work
from cwqbo.sync.model import PlanLine, PlannedDocument

CHUNK = 30  # QBO batch limit
BATCHES_AHEAD = 20  # QBO batch calls queued while the next slice is prepared: ~30 s of the batch budget, 600 documents
# A batch call's share of the batch budget (60/40 s) holds as many single requests (~475 a minute): creates beyond
# this many per queued document batch would keep this thread longer than the queue keeps the batch budget busy.
SINGLES_PER_BATCH_SLOT = 12
SINGLES_RESERVE = 60  # of the 475 single requests a minute: the next slices' lookups and DocNumber probes
PROBE_CHUNK = 300  # DocNumbers per IN (...) probe: a whole slice (engine.SLICE); long statements go as a POST body
DOC_ENTITIES = ("Invoice", "CreditMemo")
CUSTOM_TXN_MESSAGE = ("QuickBooks numbers documents itself (Custom transaction numbers is off), so cwqbo cannot "
                      "find what it sent and could create duplicates; nothing was sent")
CUSTOM_TXN_HINT = "turn on Custom transaction numbers in QuickBooks › Account and settings › Sales, then run again"


def fault_text(fault: QBOFault | None, fallback: str = "QuickBooks Online refused the document") -> str:
    if fault is None:
        return fallback
    return str(fault)


def _doc(w: Work) -> QBODocument:
    """The document of an invoice past mapping (every stage after `prepare` has one)."""
    assert w.doc is not None, f"invoice {w.inv.number} has no QBO document yet"
    return w.doc


def _sent_text(w: Work) -> str:
    """The payload text `prepare` serialised and hashed: what is sent, byte for byte."""
    assert w.payload_text, f"invoice {w.inv.number} has no serialised payload yet"
    return w.payload_text


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _plan_lines(payload: dict[str, Any]) -> tuple[PlanLine, ...]:
    out = []
    for line in payload.get("Line", []) or []:
        if line.get("DetailType") in ("SubTotalLineDetail",):
            continue
        detail = line.get("SalesItemLineDetail") or {}
        item = (detail.get("ItemRef") or {}).get("name") or (detail.get("ItemRef") or {}).get("value")
        out.append(PlanLine(str(line.get("Description") or ""), money.to_decimal(line.get("Amount", 0)), item))
    return tuple(out)


class Sender:
    """The QBO create path of one run (also used by recovery, with the requestids the crashed run chose).

    Every invoice ends settled on the run (`RunState.settle`/`fail`): an outcome record. The stage boundaries
    (after mapping, after the probe, after each QBO batch) commit what was settled in one transaction.
    """

    def __init__(self, run: RunState) -> None:
        self.run = run
        self._sending: deque[tuple[list[Work], Future[dict[str, BatchItemResult]]]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        # QBO's country and Preferences, read by the run's first resolve and reused by the next slices'
        self._company: tuple[str | None, dict[str, Any] | None] = (None, None)
        # Probed documents short of a whole batch call, sent with the next slice's (or by `drain`): a batch call
        # is a 40th of a minute's budget however few documents it carries. No intent is recorded for them yet.
        self._held: list[Work] = []

    def process(self, invoices: Sequence[CWInvoice], forced_request_ids: dict[int, str] | None = None, *,
                hashes: dict[int, str] | None = None) -> None:
        if not invoices:
            return
        forced = forced_request_ids or {}
        known = hashes or {}
        works = [Work(inv, content_hash=known.get(inv.id, "")) for inv in invoices]
        ready = self.prepare(works)
        self._queue(ready, forced, more=True)

    def _queue(self, ready: list[Work], forced: dict[int, str], *, more: bool) -> None:
        """Probe these documents and hand them to the sender thread 30 to a batch call; while `more` slices follow,
        the last part-call waits in `_held` for their documents."""
        if self.run.options.dry_run:
            for w in ready:
                doc = _doc(w)
                self.run.report.plan.append(PlannedDocument(w.inv.id, w.inv.number, w.inv.company.name,
                                                            doc.entity, doc.doc_number, doc.expected_total,
                                                            _plan_lines(w.payload or {}), tax=doc.tax))
                self.run.settle(self.run.result(w.inv, "dry-run", entity=doc.entity), None, w)
            return
        for w in ready:
            w.request_id = forced.get(w.inv.id) or ledger.request_id(self.run.deps.realm, w.inv.id, w.payload_hash)
        to_send = self._held + self.probe(ready)
        self.run.commit()
        whole = len(to_send) - len(to_send) % CHUNK if more else len(to_send)
        self._held = to_send[whole:]
        for start in range(0, whole, CHUNK):
            self.send_chunk(to_send[start:start + CHUNK])

    def send_held(self) -> None:
        """No slice follows: send the documents held back for a whole batch call."""
        if self._held:
            self._queue([], {}, more=False)

    def drain(self) -> None:
        """Send the documents held back, then wait for every batch still on its way and settle it; the run's later
        stages need them all settled."""
        self.send_held()
        try:
            while self._sending:
                self._settle(*self._sending.popleft())
        finally:
            if self._pool is not None and not self._sending:
                self._pool.shutdown(wait=True)
                self._pool = None

    def close(self) -> None:
        """After an error: let calls already sent finish (their intents are settled by the next run)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._sending.clear()
        self._held.clear()

    def _singles_limit(self) -> int:
        """How many customers or items to create as single requests before batch calls beat them: what the single
        budget can start while the document batches already queued are sent (nothing queued: what it can start
        now), less a reserve for the next slices' lookups and probes and for a minute of batch calls (they count
        against the 500 a minute too). A client without a throttle (a test double) gets the queue's share."""
        queued = sum(1 for _, sent in self._sending if not sent.done())
        throttle = getattr(self.run.deps.qbo, "throttle", None)
        if not isinstance(throttle, Throttle):
            return max(IN_FLIGHT + 1, SINGLES_PER_BATCH_SLOT * queued)
        if not throttle.batch_slots_free():
            return throttle.per_minute  # a batch call would wait for the window as long, then take a document's slot
        busy_for = queued * throttle.batch_window / throttle.batch_per_minute
        return max(0, throttle.free_within(busy_for) - SINGLES_RESERVE - throttle.batch_per_minute)

    def prepare(self, works: list[Work]) -> list[Work]:
        """needs → bulk resolve → documents; a mapping or resolve problem fails that invoice only."""
        deps = self.run.deps
        needs: dict[int, Any] = {}
        plans: dict[int, list[PlannedLine]] = {}
        for w in works:
            try:
                needs[w.inv.id], plans[w.inv.id] = document.needs_and_plan(w.inv, deps.prefs)
            except MappingError as exc:
                self.run.fail(w, exc.explained())
        if not needs:
            self.run.commit()
            return []
        self.run.emit("resolve", f"matching customers and items for {len(needs)} invoice(s)")
        from cwqbo.sync.resolve import Resolver
        resolver = Resolver(deps.qbo, deps.store, deps.realm, deps.prefs, country=self._company[0])
        resolver.preferences = self._company[1]
        resolver.singles_limit = self._singles_limit()
        resolved = resolver.resolve(needs, create=not self.run.options.dry_run, dry_run=self.run.options.dry_run)
        self._company = (resolver.country, resolver.preferences)
        sales = (getattr(resolved, "preferences", None) or {}).get("SalesFormsPrefs") or {}
        if sales.get("CustomTxnNumbers") is False:
            raise ConfigError(CUSTOM_TXN_MESSAGE, hint=CUSTOM_TXN_HINT)
        if self.run.options.dry_run:
            self.run.report.would_create.extend(resolved.would_create or [])
        ready: list[Work] = []
        for w in works:
            if w.result is not None:
                continue
            if w.inv.id in resolved.errors:
                self.run.fail(w, str(resolved.errors[w.inv.id]))
                continue
            refs = resolved.refs.get(w.inv.id)
            if refs is None:
                self.run.fail(w, "QuickBooks references could not be resolved")
                continue
            w.refs = refs
            try:
                w.doc = document.build_document(w.inv, deps.prefs, refs, plan=plans[w.inv.id])
            except MappingError as exc:
                self.run.fail(w, exc.explained())
                continue
            w.payload = with_marker(_doc(w).payload, w.inv.id)
            w.payload_text, w.payload_hash = document.payload_json(w.payload)
            ready.append(w)
        self.run.commit()  # the mapping failures, in one transaction
        return ready

    def probe(self, works: list[Work]) -> list[Work]:
        """(f) Look every DocNumber up in QBO first: adopt ours, refuse someone else's, send the rest."""
        if not works:
            return []
        self.run.emit("probe", f"checking {len(works)} document number(s) in QuickBooks")
        pending: list[Work] = []
        sent_as: dict[int, str] = {}  # DocNumber an earlier attempt went out under, when it differs from today's
        rows = ledger.get_many(self.run.deps.store, [w.inv.id for w in works])  # one query for the slice
        for w in works:
            row = rows.get(w.inv.id)
            if row is not None and row.qbo_id and not row.doc_number and self.settle_known(w, row):
                continue
            if row is not None and row.doc_number and row.doc_number != _doc(w).doc_number:
                sent_as[w.inv.id] = row.doc_number
            pending.append(w)
        found = self.lookup_docs([_doc(w).doc_number for w in pending] + list(sent_as.values()))
        to_send: list[Work] = []
        for w in pending:
            old = sent_as.get(w.inv.id)
            mine = [(e, o) for e, o in found.get(old, []) if owner_of(o.get("PrivateNote")) == w.inv.id] if old else []
            if mine:  # the earlier attempt reached QBO under its old number: never a second document
                entity, obj = mine[0]
                if entity == _doc(w).entity:
                    self.confirm(w, obj, None, adopted=True)
                else:
                    self.run.fail(w, f"QuickBooks already has {entity} {obj.get('Id')} (number {old}) for this invoice; "
                                   f"void or delete it in QuickBooks to send it again as a {_doc(w).entity}")
                continue
            hits = found.get(_doc(w).doc_number, [])
            if not hits:
                to_send.append(w)
                continue
            self.settle_existing(w, hits, tid=None)
        return to_send

    def settle_known(self, w: Work, row: ledger.LedgerRow) -> bool:
        """A row that kept a qbo_id but not the number it was sent under: read that document; True if settled."""
        try:
            obj = self.run.deps.qbo.read(row.entity, str(row.qbo_id)).obj
        except QBOError as exc:
            if exc.has_code("610") or exc.status == 404:  # deleted in QBO: probe and send as usual
                return False
            self.run.fail(w, f"could not read its QuickBooks {row.entity} {row.qbo_id} ({exc}); not sent again",
                        tid=exc.tid, qbo_id=row.qbo_id)
            return True
        if owner_of(obj.get("PrivateNote")) != w.inv.id:
            return False
        if row.entity != _doc(w).entity:
            self.run.fail(w, f"QuickBooks already has {row.entity} {row.qbo_id} for this invoice; void or delete it "
                           f"in QuickBooks to send it again as a {_doc(w).entity}", qbo_id=row.qbo_id)
            return True
        self.confirm(w, obj, None, adopted=True)
        return True

    def lookup_docs(self, doc_numbers: Iterable[str]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """DocNumber → [(entity, object)] for Invoices and CreditMemos carrying it."""
        numbers = sorted(set(doc_numbers))
        statements = [(entity, f"SELECT Id, DocNumber, TotalAmt, SyncToken, PrivateNote FROM {entity} WHERE "
                               f"{qbo_query.in_('DocNumber', numbers[start:start + PROBE_CHUNK])} MAXRESULTS 1000")
                      for entity in DOC_ENTITIES for start in range(0, len(numbers), PROBE_CHUNK)]
        answers = in_flight(self.run.deps.qbo.query, [text for _, text in statements])  # single requests, a few at once
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for (entity, _), rows in zip(statements, answers, strict=True):
            for row in rows:
                out.setdefault(str(row.get("DocNumber")), []).append((entity, row))
        return out

    def settle_existing(self, w: Work, hits: list[tuple[str, dict[str, Any]]], tid: str | None) -> None:
        """A document with our DocNumber exists: adopt it if it is ours, else fail with who holds the number."""
        ours = [(e, o) for e, o in hits if owner_of(o.get("PrivateNote")) == w.inv.id and e == _doc(w).entity]
        if ours:
            entity, obj = ours[0]
            self.confirm(w, obj, tid, adopted=True)
            return
        holder, theirs = hits[0]
        self.run.fail(w, f"QuickBooks already has {holder} {theirs.get('Id')} with number {_doc(w).doc_number}, not "
                         "created by cwqbo for this invoice; rename or remove it in QuickBooks, or set a DocNumber "
                         "prefix", tid=tid)

    def send_chunk(self, chunk: list[Work]) -> None:
        """Commit the chunk's intents, then hand its batch call to the sender thread and go on preparing.

        QBO's batch budget (40 calls a minute) is the bottleneck: while the sender thread waits for it, this thread
        maps, resolves and probes the next slice on the separate single-request budget. At most BATCHES_AHEAD
        chunks are on their way; results are settled here, in order, one transaction per chunk.
        """
        deps = self.run.deps
        ledger.record_intents(deps.store, [self._intent(w) for w in chunk], self.run.run_id, now=self.run.now())
        crashpoints.crashpoint("sync.after_intent")
        ops = [BatchOp.create_text(str(i), _doc(w).entity, _sent_text(w)) for i, w in enumerate(chunk)]
        self.run.emit("create", f"sending {len(chunk)} document(s) to QuickBooks")
        request_id = ledger.batch_request_id((w.request_id for w in chunk), salt=f"run-{self.run.run_id}")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cwqbo-batch")
        self._sending.append((chunk, self._pool.submit(deps.qbo.batch, ops, request_id, documents=True)))
        while self._sending and (len(self._sending) > BATCHES_AHEAD or self._sending[0][1].done()):
            self._settle(*self._sending.popleft())

    def _settle(self, chunk: list[Work], sent: Future[dict[str, BatchItemResult]]) -> None:
        try:
            results = sent.result()
        except (AuthError, PermissionDenied):
            raise  # nothing more can be done this run; the intents are settled by the next one
        except CwqboError as exc:
            # The outcome is unknown (or the batch was refused whole): find out what QBO has.
            self.after_lost_batch(chunk, exc)
            if kept_failing(exc):
                raise  # QBO is down or throttling past every retry: stop (exit 4); the next run recovers
            return
        crashpoints.crashpoint("sync.after_qbo_response")
        for i, w in enumerate(chunk):
            res = results.get(str(i))
            if res is None:
                self.run.fail(w, "QuickBooks answered without this document's result")
                continue
            self.handle_result(w, res)
        crashpoints.crashpoint("sync.before_ledger_write")
        self.run.commit()

    def after_lost_batch(self, chunk: list[Work], exc: CwqboError) -> None:
        tid = getattr(exc, "tid", None)
        try:
            found = self.lookup_docs([_doc(w).doc_number for w in chunk])
        except CwqboError:
            found = None
        for w in chunk:
            hits = (found or {}).get(_doc(w).doc_number, [])
            if hits:
                self.settle_existing(w, hits, tid)
            elif found is not None:
                self.run.fail(w, f"not created: {exc}", tid=tid)
            else:  # can't tell: keep the intent, the next run settles it
                self.run.settle(self.run.result(w.inv, "failed", entity=w.entity, tid=tid,
                                                error=f"outcome unknown ({exc}); the next run checks QuickBooks"),
                                None, w)
        self.run.commit()

    def handle_result(self, w: Work, res: BatchItemResult) -> None:
        if res.ok and res.obj is not None:
            self.confirm(w, res.obj, res.tid, adopted=False)
            return
        fault = res.faults[0] if res.faults else None
        doc_number = _doc(w).doc_number
        if fault is not None and fault.code == "6140":
            try:
                hits = self.lookup_docs([doc_number]).get(doc_number, [])
            except CwqboError as exc:
                self.run.fail(w, f"{fault_text(fault)}; lookup failed: {exc}", tid=res.tid)
                return
            if hits:
                self.settle_existing(w, hits, res.tid)
                return
        self.run.fail(w, fault_text(fault), tid=res.tid)

    def confirm(self, w: Work, obj: dict[str, Any], tid: str | None, *, adopted: bool) -> None:
        """Reconcile the QBO total with CW's and settle the invoice; a mismatch never loses the document id.

        A document adopted by the probe (no intent of this run yet) carries its intent in the same write.
        """
        entity = _doc(w).entity
        obj, rec, tid, ok, warning = self.settle_total(w, obj, tid)
        qbo_id, token, qbo_total = str(obj.get("Id")), _text(obj.get("SyncToken")), rec.qbo_total
        doc_number = _text(obj.get("DocNumber"))
        intent = self._intent(w) if adopted else None
        sent, kept = (w.payload or {}).get("DocNumber"), obj.get("DocNumber")
        renumbered = not adopted and sent is not None and str(kept) != str(sent)
        if renumbered:  # QBO ignored our number: a later probe could never find it, so never batch it
            ok = False
            warning = (f"QuickBooks numbered it {kept} instead of {sent} (turn on Custom transaction numbers in "
                       "QuickBooks › Account and settings › Sales)")
        if ok:
            self.run.settle(self.run.result(w.inv, "adopted" if adopted else "created", qbo_id=qbo_id,
                                            entity=entity, tid=tid, qbo_total=qbo_total, error=warning),
                            ledger.Write(w.inv.id, "created", tid=tid, qbo_id=qbo_id, sync_token=token,
                                         qbo_total=qbo_total, doc_number=doc_number, intent=intent), w)
            return
        error = (warning + "; " if warning else "") + (
            f"{'' if renumbered else rec.note or 'totals differ'} (QBO {entity} {qbo_id} kept for review; "
            "nothing batched)").lstrip()
        res = self.run.result(w.inv, "failed", error=error, tid=tid, entity=entity, qbo_id=qbo_id,
                              qbo_total=qbo_total)
        self.run.settle(res, ledger.Write(w.inv.id, "failed", error=error, tid=tid, qbo_id=qbo_id, sync_token=token,
                                          qbo_total=qbo_total, doc_number=doc_number, intent=intent), w)

    def settle_total(self, w: Work, obj: dict[str, Any],
                     tid: str | None) -> tuple[dict[str, Any], Reconciliation, str | None, bool, str | None]:
        """Reconcile QBO's total with CW's and apply `tax.on_mismatch`, for creates and updates alike.

        Returns the (possibly adjusted) document, the reconciliation, the tid of the last call, whether the
        document may be batched, and a warning for the operator.
        """
        prefs = self.run.deps.prefs
        rec = reconciliation.reconcile(_doc(w), obj, prefs)
        warning: str | None = None
        if not rec.ok and prefs.tax.on_mismatch == "adjust":
            obj, rec, tid, warning = self.adjust(w, obj, rec, tid)
        elif not rec.ok and prefs.tax.on_mismatch == "warn":
            warning = f"accepted with a difference of {money.money_str(rec.difference)}: {rec.note}"
        return obj, rec, tid, rec.ok or prefs.tax.on_mismatch == "warn", warning

    def _intent(self, w: Work) -> ledger.Intent:
        return ledger.Intent(w.inv.id, w.inv.number, _doc(w).entity, w.request_id, w.payload_hash,
                             w.hash(), _doc(w).expected_total, _text((w.payload or {}).get("DocNumber")))

    def adjust(self, w: Work, obj: dict[str, Any], rec: Reconciliation,
               tid: str | None) -> tuple[dict[str, Any], Reconciliation, str | None, str | None]:
        """tax.on_mismatch = adjust: add one non-taxable line for the difference (sparse update), re-check."""
        deps = self.run.deps
        try:
            assert w.refs is not None, "a mapped invoice has its references"
            line = reconciliation.adjustment_line(rec.difference, w.refs, deps.prefs)
            current = deps.qbo.read(_doc(w).entity, str(obj.get("Id"))).obj
            lines = [ln for ln in current.get("Line", []) if ln.get("DetailType") != "SubTotalLineDetail"]
            rid = ledger.request_id(deps.realm, w.inv.id, f"adjust:{w.payload_hash}:{current.get('SyncToken')}")
            updated = deps.qbo.update(_doc(w).entity, {"Id": current["Id"], "SyncToken": current["SyncToken"],
                                                  "Line": [*lines, line]}, rid)
        except (MappingError, QBOError) as exc:
            return obj, rec, tid, f"could not add the adjustment line ({exc})"
        after = reconciliation.reconcile(_doc(w), updated.obj, deps.prefs)
        note = f"added an adjustment line of {money.money_str(rec.difference)} ({rec.note})"
        return updated.obj, after, updated.tid, note
