"""The payments engine: QuickBooks payments on cwqbo's invoices become ConnectWise invoice payments, exactly once.

A second engine beside the invoice engine, with the same habits (DESIGN.md, "Rules that keep money safe"):
1. every CW POST (and DELETE) is preceded by a committed payments-ledger row (`intent`, `reversing`); a run first
   settles what a crash left by reading the invoice's CW payments back: the one that landed (same amount, date,
   type and credit, not claimed by another row) is adopted; none landed → posted again; several → that payment
   fails loudly and is never posted blind (CW payments have no idempotency key and no memo);
2. the watermark (QBO `MetaData.LastUpdatedTime`, in `meta`) moves only when every payment up to it is settled;
3. after posting, each touched invoice's CW balance must equal its QBO balance to the cent, or the difference is
   reported. Outcomes reach the ledger through `state.payments.apply`, one transaction per QBO payment.
The engine never prints: it returns a PaymentsReport.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cwqbo import crashpoints
from cwqbo.errors import AuthError, CwqboError, PermissionDenied, RemoteError
from cwqbo.state import ledger
from cwqbo.state import runs
from cwqbo.state.sql import iso
from cwqbo.state import payments as pledger
from cwqbo.state.payments import Event, PaymentRow, Write
from cwqbo.sync.payments_model import (Mismatch, PaymentDeps, PaymentItem, PaymentOptions, PaymentOutcome,
                                       PaymentsReport)
from cwqbo.sync.payments_plan import (Line, PaymentPlan, deleted_plan, diff, landed, method_name, plan_payment,
                                      unchanged_in_cw)

REFUSAL_STATUSES = frozenset({400, 404, 409, 422})


def run_payments(deps: PaymentDeps, options: PaymentOptions) -> PaymentsReport:
    """One payments run; raises CwqboError when it cannot go on (auth, a service down, the store)."""
    return _Run(deps, options).execute()


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _latest(values: list[str]) -> str | None:
    return max(values, key=_parse_ts) if values else None


class _Run:
    def __init__(self, deps: PaymentDeps, options: PaymentOptions) -> None:
        self.deps = deps
        self.options = options
        self.report = PaymentsReport(run_id=None, dry_run=options.dry_run)
        self.run_id: int | None = None
        self.writes: list[Write] = []
        self.events: list[Event] = []
        self.touched: dict[int, tuple[str, str]] = {}  # CW invoice id → (number, QBO invoice id)
        self._invoices: dict[int, dict[str, Any]] = {}
        self._methods: dict[str, str | None] = {}
        self.recovered_keys: set[pledger.Key] = set()
        self._calls = deps.calls() if deps.calls else (0, 0)

    def now(self) -> str:
        return iso(self.deps.clock.now())

    # -- the run -------------------------------------------------------------------------------------

    def execute(self) -> PaymentsReport:
        started = time.monotonic()
        store = self.deps.store
        if not self.options.dry_run:
            runs.mark_interrupted_runs(store)
            self.run_id = runs.start_run(store, trigger=self.options.trigger, dry_run=False, user=_user(),
                                           host=socket.gethostname(), pid=os.getpid(), now=self.now())
            self.report.run_id = self.run_id
        try:
            self._stages()
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._commit()  # what was settled before the error is true
            self._finish(started, status="failed" if isinstance(exc, Exception) else "interrupted",
                         message=str(exc) or type(exc).__name__)
            raise
        self._finish(started)
        return self.report

    def _stages(self) -> None:
        """recover → read QBO payments (changed, deleted, failed before) → plan and settle each → reconcile."""
        remote, store = self.deps.remote, self.deps.store
        if not self.options.dry_run:
            self._recover()
        since = pledger.watermark(store)
        changed = remote.payments_changed_since(since)
        deleted = set(remote.deleted_payment_ids_since(since)) if since else set()
        self.report.read = len(changed)
        work: dict[str, dict[str, Any] | None] = {str(p.get("Id")): p for p in changed}
        for pid in deleted:
            work[pid] = None
        for row in pledger.in_states(store, "failed"):  # tried before and refused: try again
            if row.key.qbo_payment_id not in work and row.cw_payment_id is None:
                work[row.key.qbo_payment_id] = remote.read_payment(row.key.qbo_payment_id)
        docs = pledger.our_documents(store)
        for pid, payment in work.items():
            plan = deleted_plan(pid) if payment is None else self._plan(payment, docs)
            self._settle(plan)
            self._commit()
        if not self.options.dry_run:
            self._reconcile()
            unsettled = pledger.in_states(store, "intent", "reversing")
            mark = _latest([u for u in [since, *(p.get("MetaData", {}).get("LastUpdatedTime") for p in changed)]
                            if u])
            if not unsettled and mark and mark != since:
                pledger.set_watermark(store, mark)
            self.report.watermark = mark if not unsettled else since
        else:
            self.report.watermark = since

    def _plan(self, payment: dict[str, Any], docs: dict[tuple[str, str], pledger.OurDocument]) -> PaymentPlan:
        prefs = self.deps.prefs.payments
        method = method_name(payment)
        ref = payment.get("PaymentMethodRef")
        if method is None and isinstance(ref, dict) and ref.get("value"):
            key = str(ref["value"])
            if key not in self._methods:
                try:
                    self._methods[key] = self.deps.remote.payment_method_name(key)
                except (AuthError, PermissionDenied):
                    raise
                except RemoteError:  # an unreadable method: the default type, as for an unmapped one
                    self._methods[key] = None
            method = self._methods[key]
        return plan_payment(payment, docs, type_map=prefs.type_map, default_type=prefs.default_type,
                            method=method, home_currency=self._home_currency(),
                            invoice_currency=self._invoice_currency)

    def _home_currency(self) -> str | None:
        from cwqbo.sync.ref_cache import stored_company_facts

        facts = stored_company_facts(self.deps.store, self.deps.realm)
        return facts.home_currency if facts else None

    def _invoice_currency(self, cw_id: int) -> str | None:
        currency = self._cw_invoice(cw_id).get("currency")
        code = currency.get("currencyCode") if isinstance(currency, dict) else None
        return str(code) if code else None

    def _cw_invoice(self, cw_id: int) -> dict[str, Any]:
        if cw_id not in self._invoices:
            self._invoices[cw_id] = self.deps.remote.invoice(cw_id)
        return self._invoices[cw_id]

    def _settle(self, plan: PaymentPlan) -> None:
        acts = diff(plan, [r for r in pledger.live(self.deps.store, plan.qbo_payment_id) if r.state == "posted"])
        for row, why in acts.reverse:
            self._reverse(row, why)
        for line in acts.refuse:
            self._refuse(line)
        for line in acts.post:
            if line.key not in self.recovered_keys:
                self._post(line)
        if not self.options.dry_run:  # failed rows the payment no longer wants (voided, deleted, edited)
            wanted = {ln.key for ln in plan.lines}
            for row in pledger.in_states(self.deps.store, "failed"):
                if (row.key.qbo_payment_id == plan.qbo_payment_id and row.cw_payment_id is None
                        and row.key not in wanted):
                    self.writes.append(Write(row.id, "cancelled", error=f"no longer wanted: {_why(plan)}"))

    # -- outcomes ------------------------------------------------------------------------------------

    def _item(self, line: Line | PaymentRow, outcome: PaymentOutcome, *, row_id: int | None = None,
              cw_payment_id: int | None = None, error: str | None = None) -> None:
        item = PaymentItem(qbo_payment_id=line.key.qbo_payment_id, cw_invoice_id=line.key.cw_invoice_id,
                           invoice_number=line.invoice_number, amount=line.amount, payment_date=line.payment_date,
                           type=line.type, outcome=outcome, credit_cw_id=line.key.credit_cw_id,
                           cw_payment_id=cw_payment_id, error=error)
        self.report.items.append(item)
        self.events.append(Event(row_id, item.qbo_payment_id, item.cw_invoice_id, item.invoice_number, outcome,
                                 item.amount, cw_payment_id, error))
        if outcome in ("posted", "adopted", "reversed") and line.qbo_invoice_id:
            self.touched[line.key.cw_invoice_id] = (line.invoice_number, line.qbo_invoice_id)

    def _fail(self, line: Line | PaymentRow, row_id: int, error: str, *, prior_error: str | None = None,
              cw_payment_id: int | None = None) -> None:
        waiting = prior_error == error and self.options.quiet_repeats
        self.writes.append(Write(row_id, "failed", cw_payment_id=cw_payment_id, error=error))
        self._item(line, "waiting" if waiting else "failed", row_id=row_id, error=error)

    def _commit(self) -> None:
        if self.options.dry_run or not (self.writes or self.events):
            return
        crashpoints.crashpoint("payments.before_record")
        pledger.apply(self.deps.store, self.run_id, self.writes, self.events, now=self.now())
        self.writes, self.events = [], []

    # -- posting -------------------------------------------------------------------------------------

    def _refuse(self, line: Line) -> None:
        assert line.problem is not None
        if self.options.dry_run:
            self._item(line, "failed", error=line.problem)
            return
        prior = pledger.latest_failed(self.deps.store, line.key)
        row = pledger.record_intent(self.deps.store, line.intent(), self.run_id, now=self.now())
        self._fail(line, row.id, line.problem, prior_error=prior.error if prior else None)

    def _post(self, line: Line) -> None:
        if self.options.dry_run:
            self._item(line, "would-post")
            return
        store = self.deps.store
        prior = pledger.latest_failed(store, line.key)
        row = pledger.record_intent(store, line.intent(), self.run_id, now=self.now())
        crashpoints.crashpoint("payments.after_intent")
        if row.attempts > 1 and self._adopt(row, prior.error if prior else None):  # tried before: read back
            return
        try:
            created = self.deps.remote.add_payment(
                line.key.cw_invoice_id, type=line.type, amount=line.amount,
                payment_date=date.fromisoformat(line.payment_date),
                credit_invoice_id=line.key.credit_cw_id or None)
        except (AuthError, PermissionDenied):
            raise  # the whole run stops; the intent is settled by the next run
        except RemoteError as exc:
            if exc.status in REFUSAL_STATUSES:
                self._fail(line, row.id, f"ConnectWise refused the payment of {line.amount} on invoice "
                                         f"{line.invoice_number}: {exc}", prior_error=prior.error if prior else None)
                return
            if not self._adopt(row, None, lost=str(exc)):
                self._fail(line, row.id, f"ConnectWise did not confirm the payment of {line.amount} on invoice "
                                         f"{line.invoice_number} ({exc}) and it is not there; tried again next run")
            return
        crashpoints.crashpoint("payments.after_post")
        cw_id = created.get("id")
        if cw_id is None:  # answered without an id: settle it by reading back
            if not self._adopt(row, None, lost="ConnectWise answered without a payment id"):
                self._fail(line, row.id, "ConnectWise answered without a payment id; tried again next run")
            return
        self.writes.append(Write(row.id, "posted", cw_payment_id=int(cw_id)))
        self._item(line, "posted", row_id=row.id, cw_payment_id=int(cw_id))

    def _adopt(self, row: PaymentRow, prior_error: str | None, *, lost: str | None = None) -> bool:
        """Read the invoice's CW payments back: adopt the one that landed (True), fail on ambiguity (True), or
        say nothing landed (False: the caller may post)."""
        store = self.deps.store
        found = landed(self.deps.remote.invoice_payments(row.key.cw_invoice_id), amount=row.amount,
                       payment_date=row.payment_date, type=row.type, credit_cw_id=row.key.credit_cw_id,
                       claimed=pledger.claimed(store, row.key.cw_invoice_id, except_row=row.id))
        if len(found) == 1:
            self.writes.append(Write(row.id, "posted", cw_payment_id=found[0]))
            self._item(row, "adopted", row_id=row.id, cw_payment_id=found[0])
            return True
        if len(found) > 1:
            self._fail(row, row.id, f"{len(found)} unclaimed ConnectWise payments of {row.amount} on "
                                    f"{row.payment_date} ({row.type}) on invoice {row.invoice_number} could be "
                                    f"QuickBooks payment {row.key.qbo_payment_id}; not posted: remove the extra "
                                    "one in ConnectWise by hand, then sync again", prior_error=prior_error)
            return True
        return False

    # -- reversing -----------------------------------------------------------------------------------

    def _reverse(self, row: PaymentRow, why: str) -> None:
        if self.options.dry_run:
            self._item(row, "would-reverse", error=why)
            return
        pledger.mark_reversing(self.deps.store, row.id, now=self.now())
        self._settle_reversing(row, why)

    def _settle_reversing(self, row: PaymentRow, why: str) -> None:
        """DELETE the CW payment cwqbo posted for `row`, after checking it is there and unchanged."""
        if row.cw_payment_id is None:
            self.writes.append(Write(row.id, "reversed", error=why))
            return
        current = next((p for p in self.deps.remote.invoice_payments(row.key.cw_invoice_id)
                        if p.get("id") is not None and int(p["id"]) == row.cw_payment_id), None)
        if current is None:  # already gone (deleted by hand, or our DELETE landed before a crash)
            self.writes.append(Write(row.id, "reversed", error=why))
            self._item(row, "reversed", row_id=row.id, cw_payment_id=row.cw_payment_id, error=why)
            return
        if not unchanged_in_cw(current, row):
            self._fail(row, row.id, f"QuickBooks payment {row.key.qbo_payment_id} was {why.split(' in ')[0]}, but "
                                    f"ConnectWise payment {row.cw_payment_id} on invoice {row.invoice_number} was "
                                    "changed after cwqbo posted it; not removed: settle it by hand",
                       cw_payment_id=row.cw_payment_id)
            return
        try:
            self.deps.remote.delete_payment(row.key.cw_invoice_id, row.cw_payment_id)
        except (AuthError, PermissionDenied):
            raise
        except RemoteError as exc:
            if exc.status in REFUSAL_STATUSES:
                self._fail(row, row.id, f"ConnectWise refused to remove payment {row.cw_payment_id} on invoice "
                                        f"{row.invoice_number} ({why}): {exc}", cw_payment_id=row.cw_payment_id)
            else:  # may have landed: left `reversing`, settled by reading back next run
                self._item(row, "failed", row_id=row.id, error=f"removing payment {row.cw_payment_id} on invoice "
                                                               f"{row.invoice_number} was not confirmed ({exc})")
            return
        crashpoints.crashpoint("payments.after_delete")
        self.writes.append(Write(row.id, "reversed", cw_payment_id=row.cw_payment_id, error=why))
        self._item(row, "reversed", row_id=row.id, cw_payment_id=row.cw_payment_id, error=why)

    # -- recovery and reconciliation -----------------------------------------------------------------

    def _recover(self) -> None:
        """Settle what a crashed run left: intents (adopt what landed, else back to failed so this run posts
        it again after reading back) and reversals (DELETE if still there)."""
        store = self.deps.store
        for row in pledger.in_states(store, "intent"):
            self.report.recovered += 1
            if self._adopt(row, None):
                self.recovered_keys.add(row.key)  # adopted, or ambiguous: reported once, not posted again
            else:
                self.writes.append(Write(row.id, "failed", error="interrupted before ConnectWise answered; "
                                                                  "not in ConnectWise"))
            self._commit()
        for row in pledger.in_states(store, "reversing"):
            self.report.recovered += 1
            self._settle_reversing(row, "interrupted reversal")
            self._commit()

    def _reconcile(self) -> None:
        """Each invoice a payment touched: CW balance == QBO balance, or the difference is reported."""
        for cw_id, (number, qbo_id) in sorted(self.touched.items()):
            try:
                cw_balance = self.deps.remote.invoice(cw_id).get("balance")
                qbo_balance = self.deps.remote.qbo_balance("Invoice", qbo_id)
            except (AuthError, PermissionDenied):
                raise
            except CwqboError as exc:
                self.report.mismatches.append(Mismatch(cw_id, number, None, None))
                self.report.message = f"could not reconcile invoice {number}: {exc}"
                continue
            cw = None if cw_balance is None else Decimal(str(cw_balance))
            if cw is None or qbo_balance is None or cw != qbo_balance:
                self.report.mismatches.append(Mismatch(cw_id, number, cw, qbo_balance))

    def _finish(self, started: float, status: runs.RunStatus | None = None, message: str | None = None) -> None:
        rep = self.report
        rep.duration = time.monotonic() - started
        if self.deps.calls:
            cw_calls, qbo_calls = self.deps.calls()
            rep.cw_calls, rep.qbo_calls = cw_calls - self._calls[0], qbo_calls - self._calls[1]
        done = rep.posted + rep.reversed
        final: runs.RunStatus = status or ("ok" if rep.ok else "failed" if done == 0 and rep.failed else "partial")
        rep.status = final
        rep.message = message or rep.message or _summary(rep)
        if self.run_id is None:
            return
        runs.finish_run(self.deps.store, self.run_id, status=final, selected=len(rep.items), created=done,
                          failed=rep.failed, skipped=rep.waiting, batch_identifier=None, qbo_calls=rep.qbo_calls,
                          cw_calls=rep.cw_calls, duration_ms=int(rep.duration * 1000), message=rep.message,
                          now=self.now())


def _why(plan: PaymentPlan) -> str:
    return "deleted in QuickBooks" if plan.deleted else "voided in QuickBooks" if plan.voided else "changed"


def _summary(rep: PaymentsReport) -> str:
    text = (f"payments: {rep.posted} posted to ConnectWise, {rep.reversed} reversed, {rep.failed} failed"
            + (f", {rep.waiting} still waiting" if rep.waiting else ""))
    if rep.mismatches:
        text += f"; {len(rep.mismatches)} invoice balance(s) differ from QuickBooks"
    return text


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        return ""
