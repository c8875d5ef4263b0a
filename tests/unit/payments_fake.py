"""An in-memory QuickBooks + ConnectWise for the payments engine's unit tests (the engine's `Remote` seam).

QBO invoice balances follow their linked payments; a CW invoice's balance follows its payments and refuses one
that would take it below zero (HTTP 400), as ConnectWise does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from cwqbo.errors import RemoteError
from cwqbo.settings.prefs import Prefs
from cwqbo.state import ledger
from cwqbo.state.store import Store
from cwqbo.sync.payments import run_payments
from cwqbo.sync.payments_model import PaymentDeps, PaymentOptions, PaymentsReport


@dataclass
class FakeRemote:
    cw_totals: dict[int, Decimal] = field(default_factory=dict)  # CW invoice id → total
    cw_currency: dict[int, str] = field(default_factory=dict)
    cw_payments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    qbo_totals: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    qbo_payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    lose_next_post_answer: int = 0  # the POST lands, the answer is lost (RemoteError without status)
    posts: int = 0
    deletes: int = 0
    _next_id: int = 1000
    _tick: int = 0

    # -- test helpers --------------------------------------------------------------------------------
    def receive(self, pid: str, lines: list[tuple[str, str, str]], *, day: str = "2026-03-02",
                method: str | None = None, currency: str | None = None) -> dict[str, Any]:
        """A QBO Payment whose lines link (entity, qbo id, amount)."""
        self._tick += 1
        pay: dict[str, Any] = {
            "Id": pid, "TxnDate": day,
            "TotalAmt": sum((Decimal(a) if e == "Invoice" else -Decimal(a) for e, _, a in lines), Decimal(0)),
            "Line": [{"Amount": Decimal(a), "LinkedTxn": [{"TxnId": q, "TxnType": e}]} for e, q, a in lines],
            "MetaData": {"LastUpdatedTime": self._stamp()}}
        if method:
            pay["PaymentMethodRef"] = {"value": "7", "name": method}
        if currency:
            pay["CurrencyRef"] = {"value": currency}
        self.qbo_payments[pid] = pay
        return pay

    def void(self, pid: str) -> None:
        pay = self.qbo_payments[pid]
        lines = [{**ln, "Amount": Decimal(0)} for ln in pay["Line"]]
        self.receive_raw(pid, {**pay, "TotalAmt": Decimal(0), "Line": lines})

    def edit(self, pid: str, lines: list[tuple[str, str, str]]) -> None:
        pay = self.qbo_payments[pid]
        self.receive(pid, lines, day=pay["TxnDate"])

    def delete(self, pid: str) -> None:
        del self.qbo_payments[pid]
        self.deleted.append(pid)

    def receive_raw(self, pid: str, pay: dict[str, Any]) -> None:
        self._tick += 1
        self.qbo_payments[pid] = {**pay, "MetaData": {"LastUpdatedTime": self._stamp()}}

    def _stamp(self) -> str:
        """QBO's LastUpdatedTime: local time with an offset, moving on at each change."""
        return f"2026-03-02T10:{self._tick // 60:02d}:{self._tick % 60:02d}-08:00"

    def cw_balance(self, invoice_id: int) -> Decimal:
        return self.cw_totals[invoice_id] - sum((p["amount"] for p in self.cw_payments.get(invoice_id, [])),
                                                Decimal(0))

    # -- Remote --------------------------------------------------------------------------------------
    def invoice(self, invoice_id: int) -> dict[str, Any]:
        return {"id": invoice_id, "balance": self.cw_balance(invoice_id),
                "currency": {"currencyCode": self.cw_currency.get(invoice_id, "USD")}}

    def invoice_payments(self, invoice_id: int) -> list[dict[str, Any]]:
        return [dict(p) for p in self.cw_payments.get(invoice_id, [])]

    def add_payment(self, invoice_id: int, *, type: str, amount: Decimal, payment_date: date,
                    credit_invoice_id: int | None) -> dict[str, Any]:
        self.posts += 1
        if amount > self.cw_balance(invoice_id):
            raise RemoteError(f"ConnectWise rejected POST /finance/invoices/{invoice_id}/payments: the payment "
                              "would take the balance below zero", status=400)
        self._next_id += 1
        pay = {"id": self._next_id, "type": type, "amount": amount, "paymentDate": f"{payment_date}T00:00:00Z",
               "invoice": {"id": invoice_id}}
        if credit_invoice_id:
            pay["credit"] = {"id": credit_invoice_id}
        self.cw_payments.setdefault(invoice_id, []).append(pay)
        if self.lose_next_post_answer:
            self.lose_next_post_answer -= 1
            raise RemoteError("ConnectWise did not answer (ReadTimeout)")
        return dict(pay)

    def delete_payment(self, invoice_id: int, payment_id: int) -> None:
        self.deletes += 1
        self.cw_payments[invoice_id] = [p for p in self.cw_payments[invoice_id] if p["id"] != payment_id]

    def payments_changed_since(self, since: str | None) -> list[dict[str, Any]]:
        from cwqbo.sync.payments import _parse_ts

        rows = [p for p in self.qbo_payments.values()
                if since is None or _parse_ts(p["MetaData"]["LastUpdatedTime"]) >= _parse_ts(since)]
        return sorted(rows, key=lambda p: _parse_ts(p["MetaData"]["LastUpdatedTime"]))

    def deleted_payment_ids_since(self, since: str) -> list[str]:
        return list(self.deleted)

    def read_payment(self, payment_id: str) -> dict[str, Any] | None:
        return self.qbo_payments.get(payment_id)

    def qbo_balance(self, entity: str, qbo_id: str) -> Decimal | None:
        paid = Decimal(0)
        for pay in self.qbo_payments.values():
            for ln in pay["Line"]:
                if any(t["TxnId"] == qbo_id and t["TxnType"] == entity for t in ln["LinkedTxn"]):
                    paid += ln["Amount"]
        return self.qbo_totals[(entity, qbo_id)] - paid

    def payment_method_name(self, method_id: str) -> str | None:
        return None


@dataclass
class PWorld:
    store: Store
    remote: FakeRemote
    prefs: Prefs

    def add_document(self, cw_id: int, qbo_id: str, total: str, *, entity: str = "Invoice") -> None:
        """An invoice (or credit memo) cwqbo synced: a confirmed ledger row, and the documents on both sides."""
        self.store.db.execute("insert into ledger (cw_id, invoice_number, entity, state, qbo_id) values "
                              "(?, ?, ?, 'batched', ?)", [cw_id, f"INV-{cw_id}", entity, qbo_id])
        self.remote.qbo_totals[(entity, qbo_id)] = Decimal(total)
        self.remote.cw_totals[cw_id] = Decimal(total) if entity == "Invoice" else -Decimal(total)

    def run(self, *, dry_run: bool = False, quiet_repeats: bool = False) -> PaymentsReport:
        deps = PaymentDeps(store=self.store, remote=self.remote, prefs=self.prefs)
        return run_payments(deps, PaymentOptions(dry_run=dry_run, quiet_repeats=quiet_repeats))

    def assert_matched(self) -> None:
        """Every CW balance equals QBO's, and no CW payment is there twice for the same ledger row."""
        for (entity, qbo_id), _ in self.remote.qbo_totals.items():
            if entity != "Invoice":
                continue
            cw_id = int(self.store.db.execute("select cw_id from ledger where qbo_id = ? and entity = 'Invoice'",
                                              [qbo_id]).fetchone()[0])
            assert self.remote.cw_balance(cw_id) == self.remote.qbo_balance("Invoice", qbo_id), (
                f"INV-{cw_id}: CW {self.remote.cw_balance(cw_id)} != QBO {self.remote.qbo_balance('Invoice', qbo_id)}")
        live = self.store.db.execute("select state, count(*) from payments group by state").fetchall()
        assert "intent" not in dict(live) and "reversing" not in dict(live), live


def new_world() -> PWorld:
    store = Store.memory()
    _ = ledger  # the invoice ledger is where the payments engine finds cwqbo's documents
    return PWorld(store, FakeRemote(), Prefs())
