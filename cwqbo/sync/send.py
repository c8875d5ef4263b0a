"""Sending invoices to QuickBooks exactly once: map and resolve, probe DocNumbers, create in batches, reconcile.

Every create is preceded by a committed ledger intent carrying a deterministic requestid; before creating, the
DocNumbers are probed so a document we made (its `cwqbo:{cw_id}` marker) is adopted, never sent twice, and
anyone else's is a readable failure. A confirmed document is reconciled against CW's total before it is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cwqbo import crashpoints, money
from cwqbo.state import ledger
from cwqbo.mapping import document as mapping
from cwqbo.errors import AuthError, ConfigError, CwqboError
from cwqbo.sync.markers import owner_of, with_marker
from cwqbo.models import CWInvoice
from cwqbo.quickbooks import query as qbo_query
from cwqbo.quickbooks.client import BatchItemResult, BatchOp, QBOError, QBOFault
from cwqbo.sync.run_state import RunState, Work
from cwqbo.sync.model import PlanLine, PlannedDocument

CHUNK = 30  # QBO batch limit
PROBE_CHUNK = 250  # DocNumbers per IN (...) probe (long statements go as a POST body)
DOC_ENTITIES = ("Invoice", "CreditMemo")
CUSTOM_TXN_MESSAGE = ("QuickBooks numbers documents itself (Custom transaction numbers is off), so cwqbo cannot "
                      "find what it sent and could create duplicates; nothing was sent")
CUSTOM_TXN_HINT = "turn on Custom transaction numbers in QuickBooks › Account and settings › Sales, then run again"


def fault_text(fault: QBOFault | None, fallback: str = "QuickBooks Online refused the document") -> str:
    if fault is None:
        return fallback
    return str(fault)


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
    """The QBO create path of one run (also used by recovery, with the requestids the crashed run chose)."""

    def __init__(self, run: RunState) -> None:
        self.r = run

    def process(self, invoices: Sequence[CWInvoice], forced_request_ids: dict[int, str] | None = None) -> None:
        if not invoices:
            return
        forced = forced_request_ids or {}
        works = [Work(inv) for inv in invoices]
        ready = self.prepare(works)
        if self.r.o.dry_run:
            for w in ready:
                self.r.report.plan.append(PlannedDocument(w.inv.id, w.inv.number, w.inv.company.name,
                                                          w.doc.entity, w.doc.doc_number, w.doc.expected_total,
                                                          _plan_lines(w.payload or {}), tax=w.doc.tax))
                self.r.finish_item(w, self.r.result(w.inv, "dry-run", entity=w.doc.entity))
            return
        for w in ready:
            w.request_id = forced.get(w.inv.id) or ledger.request_id(self.r.d.realm, w.inv.id, w.payload_hash)
        to_send = self.probe(ready)
        for start in range(0, len(to_send), CHUNK):
            self.send_chunk(to_send[start:start + CHUNK])

    def prepare(self, works: list[Work]) -> list[Work]:
        """needs → bulk resolve → documents; a mapping or resolve problem fails that invoice only."""
        d = self.r.d
        needs: dict[int, Any] = {}
        for w in works:
            try:
                needs[w.inv.id] = mapping.needs(w.inv, d.prefs)
            except mapping.MappingError as exc:
                self.r.fail(w, exc.explained())
        if not needs:
            return []
        self.r.emit("resolve", f"matching customers and items for {len(needs)} invoice(s)")
        from cwqbo.sync.resolve import Resolver
        resolved = Resolver(d.qbo, d.store, d.realm, d.prefs).resolve(needs, create=not self.r.o.dry_run,
                                                                         dry_run=self.r.o.dry_run)
        sales = (getattr(resolved, "preferences", None) or {}).get("SalesFormsPrefs") or {}
        if sales.get("CustomTxnNumbers") is False:
            raise ConfigError(CUSTOM_TXN_MESSAGE, hint=CUSTOM_TXN_HINT)
        if self.r.o.dry_run:
            self.r.report.would_create.extend(resolved.would_create or [])
        ready: list[Work] = []
        for w in works:
            if w.result is not None:
                continue
            if w.inv.id in resolved.errors:
                self.r.fail(w, str(resolved.errors[w.inv.id]))
                continue
            refs = resolved.refs.get(w.inv.id)
            if refs is None:
                self.r.fail(w, "QuickBooks references could not be resolved")
                continue
            w.refs = refs
            try:
                w.doc = mapping.build_document(w.inv, d.prefs, refs)
            except mapping.MappingError as exc:
                self.r.fail(w, exc.explained())
                continue
            w.payload = with_marker(w.doc.payload, w.inv.id)
            w.payload_hash = mapping.payload_hash(w.payload)
            ready.append(w)
        return ready

    def probe(self, works: list[Work]) -> list[Work]:
        """(f) Look every DocNumber up in QBO first: adopt ours, refuse someone else's, send the rest."""
        if not works:
            return []
        self.r.emit("probe", f"checking {len(works)} document number(s) in QuickBooks")
        pending: list[Work] = []
        sent_as: dict[int, str] = {}  # DocNumber an earlier attempt went out under, when it differs from today's
        for w in works:
            row = ledger.get(self.r.d.store, w.inv.id)
            if row is not None and row.qbo_id and not row.doc_number and self.settle_known(w, row):
                continue
            if row is not None and row.doc_number and row.doc_number != w.doc.doc_number:
                sent_as[w.inv.id] = row.doc_number
            pending.append(w)
        found = self.lookup_docs([w.doc.doc_number for w in pending] + list(sent_as.values()))
        to_send: list[Work] = []
        for w in pending:
            old = sent_as.get(w.inv.id)
            mine = [(e, o) for e, o in found.get(old, []) if owner_of(o.get("PrivateNote")) == w.inv.id] if old else []
            if mine:  # the earlier attempt reached QBO under its old number: never a second document
                entity, obj = mine[0]
                if entity == w.doc.entity:
                    self.confirm(w, obj, None, adopted=True)
                else:
                    self.r.fail(w, f"QuickBooks already has {entity} {obj.get('Id')} (number {old}) for this invoice; "
                                   f"void or delete it in QuickBooks to send it again as a {w.doc.entity}")
                continue
            hits = found.get(w.doc.doc_number, [])
            if not hits:
                to_send.append(w)
                continue
            self.settle_existing(w, hits, tid=None)
        return to_send

    def settle_known(self, w: Work, row: ledger.LedgerRow) -> bool:
        """A row that kept a qbo_id but not the number it was sent under: read that document; True if settled."""
        try:
            obj = self.r.d.qbo.read(row.entity, str(row.qbo_id)).obj
        except QBOError as exc:
            if exc.has_code("610") or exc.status == 404:  # deleted in QBO: probe and send as usual
                return False
            self.r.fail(w, f"could not read its QuickBooks {row.entity} {row.qbo_id} ({exc}); not sent again",
                        tid=exc.tid, qbo_id=row.qbo_id)
            return True
        if owner_of(obj.get("PrivateNote")) != w.inv.id:
            return False
        if row.entity != w.doc.entity:
            self.r.fail(w, f"QuickBooks already has {row.entity} {row.qbo_id} for this invoice; void or delete it "
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
                for row in self.r.d.qbo.query(statement):
                    out.setdefault(str(row.get("DocNumber")), []).append((entity, row))
        return out

    def settle_existing(self, w: Work, hits: list[tuple[str, dict[str, Any]]], tid: str | None) -> None:
        """A document with our DocNumber exists: adopt it if it is ours, else fail with who holds the number."""
        ours = [(e, o) for e, o in hits if owner_of(o.get("PrivateNote")) == w.inv.id and e == w.doc.entity]
        if ours:
            entity, obj = ours[0]
            self.confirm(w, obj, tid, adopted=True)
            return
        entity, obj = hits[0]
        self.r.fail(w, f"QuickBooks already has {entity} {obj.get('Id')} with number {w.doc.doc_number}, not created "
                       f"by cwqbo for this invoice; rename or remove it in QuickBooks, or set a DocNumber prefix",
                    tid=tid)

    def send_chunk(self, chunk: list[Work]) -> None:
        d = self.r.d
        ledger.record_intents(d.store, [self._intent(w) for w in chunk], self.r.run_id, now=self.r.now())
        crashpoints.crashpoint("sync.after_intent")
        ops = [BatchOp.create(str(i), w.doc.entity, w.payload or {}) for i, w in enumerate(chunk)]
        self.r.emit("create", f"sending {len(chunk)} document(s) to QuickBooks")
        try:
            results = d.qbo.batch(ops, request_id=ledger.batch_request_id((w.request_id for w in chunk),
                                                                             salt=f"run-{self.r.run_id}"))
        except AuthError:
            raise  # nothing more can be done this run; the intents are settled by the next one
        except CwqboError as exc:
            # The outcome is unknown (or the batch was refused whole): find out what QBO has.
            self.after_lost_batch(chunk, exc)
            return
        crashpoints.crashpoint("sync.after_qbo_response")
        writes: list[Callable[[], None]] = []
        for i, w in enumerate(chunk):
            res = results.get(str(i))
            if res is None:
                writes.append(self._deferred_fail(w, "QuickBooks answered without this document's result"))
                continue
            writes.extend(self.handle_result(w, res))
        crashpoints.crashpoint("sync.before_ledger_write")
        with d.store.transaction():
            for write in writes:
                write()
            self.r.flush_items()

    def after_lost_batch(self, chunk: list[Work], exc: CwqboError) -> None:
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
                self.r.fail(w, f"not created: {exc}", tid=tid)
            else:  # can't tell: keep the intent, the next run settles it
                self.r.finish_item(w, self.r.result(w.inv, "failed", entity=w.doc.entity, tid=tid,
                                                    error=f"outcome unknown ({exc}); the next run checks QuickBooks"))

    def handle_result(self, w: Work, res: BatchItemResult) -> list[Callable[[], None]]:
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

    def _deferred_fail(self, w: Work, error: str, tid: str | None = None) -> Callable[[], None]:
        self.r.fail(w, error, tid=tid, write=False)
        store, cw_id, now = self.r.d.store, w.inv.id, self.r.now()
        return lambda: ledger.mark_failed(store, cw_id, error=error, tid=tid, now=now, commit=False)

    def confirm(self, w: Work, obj: dict[str, Any], tid: str | None, *, adopted: bool,
                commit: bool = True) -> Callable[[], None]:
        """Reconcile the QBO total with CW's; a mismatch never loses the document id.

        With commit=False the ledger write is returned (the caller writes a chunk's results together);
        with commit=True (a document adopted before any intent of this run) it is written now.
        """
        d = self.r.d
        entity = w.doc.entity
        obj, rec, tid, ok, warning = self.settle_total(w, obj, tid)
        qbo_id, token, qbo_total = str(obj.get("Id")), obj.get("SyncToken"), rec.qbo_total
        doc_number = None if obj.get("DocNumber") is None else str(obj.get("DocNumber"))
        store, cw_id, now = d.store, w.inv.id, self.r.now()
        sent, kept = (w.payload or {}).get("DocNumber"), obj.get("DocNumber")
        renumbered = not adopted and sent is not None and str(kept) != str(sent)
        if renumbered:  # QBO ignored our number: a later probe could never find it, so never batch it
            ok = False
            warning = (f"QuickBooks numbered it {kept} instead of {sent} (turn on Custom transaction numbers in "
                       "QuickBooks › Account and settings › Sales)")
        if ok:
            self.r.finish_item(w, self.r.result(w.inv, "adopted" if adopted else "created", qbo_id=qbo_id,
                                                entity=entity, tid=tid, qbo_total=qbo_total, error=warning))
        else:
            error = (warning + "; " if warning else "") + (
                f"{'' if renumbered else rec.note or 'totals differ'} (QBO {entity} {qbo_id} kept for review; "
                "nothing batched)").lstrip()
            self.r.fail(w, error, tid=tid, qbo_id=qbo_id, qbo_total=qbo_total, write=False)

        def write() -> None:
            if ok:
                ledger.mark_created(store, cw_id, qbo_id=qbo_id, sync_token=token, qbo_total=qbo_total, tid=tid,
                                    now=now, commit=False, doc_number=doc_number)
            else:
                ledger.mark_failed(store, cw_id, error=error, tid=tid, qbo_id=qbo_id, sync_token=token,
                                   qbo_total=qbo_total, now=now, commit=False, doc_number=doc_number)
        if commit:
            with store.transaction():
                ledger.record_intents(store, [self._intent(w)], self.r.run_id, now=now)
                write()
                self.r.flush_items()
        return write

    def settle_total(self, w: Work, obj: dict[str, Any],
                     tid: str | None) -> tuple[dict[str, Any], Any, str | None, bool, str | None]:
        """Reconcile QBO's total with CW's and apply `tax.on_mismatch`, for creates and updates alike.

        Returns the (possibly adjusted) document, the reconciliation, the tid of the last call, whether the
        document may be batched, and a warning for the operator.
        """
        prefs = self.r.d.prefs
        rec = mapping.reconcile(w.doc, obj, prefs)
        warning: str | None = None
        if not rec.ok and prefs.tax.on_mismatch == "adjust":
            obj, rec, tid, warning = self.adjust(w, obj, rec, tid)
        elif not rec.ok and prefs.tax.on_mismatch == "warn":
            warning = f"accepted with a difference of {money.money_str(rec.difference)}: {rec.note}"
        return obj, rec, tid, rec.ok or prefs.tax.on_mismatch == "warn", warning

    def _intent(self, w: Work) -> ledger.Intent:
        return ledger.Intent(w.inv.id, w.inv.number, w.doc.entity, w.request_id, w.payload_hash,
                             w.inv.content_hash(), w.doc.expected_total, (w.payload or {}).get("DocNumber"))

    def adjust(self, w: Work, obj: dict[str, Any], rec: Any,
               tid: str | None) -> tuple[dict[str, Any], Any, str | None, str | None]:
        """tax.on_mismatch = adjust: add one non-taxable line for the difference (sparse update), re-check."""
        d = self.r.d
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
