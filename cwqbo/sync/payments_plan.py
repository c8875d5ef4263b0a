"""Pure planning for payments: QBO Payment → the ConnectWise invoice payments it stands for, and what to change.

No I/O here, so every rule that decides money is unit-tested on plain dicts:
- one CW payment per (QBO payment, CW invoice): several lines on one invoice add up;
- a credit memo applied in QBO (lines linking an Invoice and a CreditMemo, often TotalAmt 0) becomes a CW payment
  with `credit` = the CW credit memo, allocated to the payment's invoices in line order; the rest is money;
- a voided payment (zero amounts) and a deleted one want nothing: what cwqbo posted for them is reversed;
- an edited payment is a reversal plus a new post, never a second payment beside the first;
- a line refused before any call (another currency, a credit memo cwqbo did not sync) fails alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cwqbo.state.payments import Intent, Key, OurDocument, PaymentRow

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Line:
    """One CW payment a QBO payment wants; `problem` set when it must fail without any call."""

    key: Key
    qbo_invoice_id: str
    invoice_number: str
    amount: Decimal
    payment_date: str
    type: str
    qbo_updated: str | None
    qbo_credit_id: str | None = None
    problem: str | None = None

    def intent(self) -> Intent:
        return Intent(key=self.key, qbo_entity="Invoice", qbo_invoice_id=self.qbo_invoice_id,
                      qbo_credit_id=self.qbo_credit_id, invoice_number=self.invoice_number, amount=self.amount,
                      payment_date=self.payment_date, type=self.type, qbo_updated=self.qbo_updated)


@dataclass(frozen=True, slots=True)
class PaymentPlan:
    qbo_payment_id: str
    updated: str | None  # MetaData.LastUpdatedTime
    lines: tuple[Line, ...]
    voided: bool = False
    deleted: bool = False


@dataclass
class Actions:
    """What to do for one QBO payment, given what the ledger says cwqbo already posted for it."""

    post: list[Line] = field(default_factory=list)
    reverse: list[tuple[PaymentRow, str]] = field(default_factory=list)  # (row, why)
    unchanged: list[PaymentRow] = field(default_factory=list)
    refuse: list[Line] = field(default_factory=list)


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def updated_of(payment: Mapping[str, Any]) -> str | None:
    meta = payment.get("MetaData")
    value = meta.get("LastUpdatedTime") if isinstance(meta, Mapping) else None
    return str(value) if value else None


def method_name(payment: Mapping[str, Any]) -> str | None:
    ref = payment.get("PaymentMethodRef")
    return str(ref.get("name")) if isinstance(ref, Mapping) and ref.get("name") else None


def cw_type(method: str | None, type_map: Mapping[str, str], default_type: str) -> str:
    """The CW payment type for a QBO payment method name (`payments.type_map`, else `payments.default_type`)."""
    if method:
        for name, cw in type_map.items():
            if name.casefold() == method.casefold():
                return cw
    return default_type


def _links(payment: Mapping[str, Any]) -> list[tuple[str, str, Decimal]]:
    """(TxnType, TxnId, amount) per payment line, in line order; a line is counted once, on its first link."""
    out = []
    for line in payment.get("Line") or []:
        if not isinstance(line, Mapping):
            continue
        for link in line.get("LinkedTxn") or []:
            if isinstance(link, Mapping) and link.get("TxnType") in ("Invoice", "CreditMemo"):
                out.append((str(link["TxnType"]), str(link.get("TxnId")), _dec(line.get("Amount"))))
                break
    return out


def plan_payment(payment: Mapping[str, Any], docs: Mapping[tuple[str, str], OurDocument], *,
                 type_map: Mapping[str, str], default_type: str, method: str | None = None,
                 home_currency: str | None = None,
                 invoice_currency: Callable[[int], str | None] | None = None) -> PaymentPlan:
    """The CW payments `payment` stands for. Lines on documents cwqbo did not create are not ours: left out."""
    pid = str(payment.get("Id"))
    updated = updated_of(payment)
    kind = cw_type(method or method_name(payment), type_map, default_type)
    day = str(payment.get("TxnDate") or "")[:10]
    currency_ref = payment.get("CurrencyRef")
    currency = (str(currency_ref.get("value")) if isinstance(currency_ref, Mapping) and currency_ref.get("value")
                else home_currency)
    invoices: dict[str, Decimal] = {}
    credits: dict[str, Decimal] = {}
    for txn_type, txn_id, amount in _links(payment):
        bucket = invoices if txn_type == "Invoice" else credits
        bucket[txn_id] = bucket.get(txn_id, ZERO) + amount
    voided = all(a == ZERO for a in (*invoices.values(), *credits.values()))
    credit_left = [(cid, amt) for cid, amt in credits.items() if amt > ZERO]
    lines: list[Line] = []
    for qbo_id, amount in invoices.items():
        doc = docs.get(("Invoice", qbo_id))
        remaining = amount
        parts: list[tuple[Decimal, str | None]] = []  # (amount, QBO credit memo id or None for money)
        while remaining > ZERO and credit_left:
            cid, avail = credit_left[0]
            used = min(avail, remaining)
            parts.append((used, cid))
            remaining -= used
            credit_left[0] = (cid, avail - used)
            if credit_left[0][1] <= ZERO:
                credit_left.pop(0)
        if remaining > ZERO:
            parts.append((remaining, None))
        if doc is None:
            continue  # not an invoice cwqbo created: not ours to bring back
        for part, credit_id in parts:
            credit = docs.get(("CreditMemo", credit_id)) if credit_id is not None else None
            problem = None
            if credit_id is not None and credit is None:
                problem = (f"QuickBooks applied credit memo {credit_id}, which cwqbo did not create, to invoice "
                           f"{doc.number}: apply that credit in ConnectWise by hand")
            inv_currency = (invoice_currency(doc.cw_id) if invoice_currency and currency else None) or home_currency
            if problem is None and currency and inv_currency and currency.upper() != inv_currency.upper():
                problem = (f"QuickBooks payment {pid} is in {currency.upper()} but ConnectWise invoice {doc.number} "
                           f"is in {inv_currency.upper()}: record it in ConnectWise by hand")
            lines.append(Line(key=Key(pid, doc.cw_id, _credit_key(credit, credit_id)), qbo_invoice_id=qbo_id,
                              invoice_number=doc.number, amount=part, payment_date=day, type=kind,
                              qbo_updated=updated, qbo_credit_id=credit_id, problem=problem))
    return PaymentPlan(pid, updated, tuple(_merge(lines)), voided=voided)


def _credit_key(credit: OurDocument | None, qbo_credit_id: str | None) -> int:
    """The key's credit part: the CW credit memo; 0 for money; for a QBO credit memo cwqbo did not create (which
    can only fail), minus its QBO id, so it never merges with the money paid on the same invoice."""
    if credit is not None:
        return credit.cw_id
    if qbo_credit_id is None:
        return 0
    return -int(qbo_credit_id) if qbo_credit_id.isdigit() else -1


def _merge(lines: list[Line]) -> list[Line]:
    """Two parts for the same key (an invoice on two lines) become one payment of their sum."""
    out: dict[Key, Line] = {}
    for ln in lines:
        prev = out.get(ln.key)
        out[ln.key] = ln if prev is None else Line(**{**_fields(prev), "amount": prev.amount + ln.amount})
    return list(out.values())


def _fields(ln: Line) -> dict[str, Any]:
    return {f: getattr(ln, f) for f in Line.__slots__}


def deleted_plan(qbo_payment_id: str) -> PaymentPlan:
    return PaymentPlan(qbo_payment_id, None, (), deleted=True)


def same(row: PaymentRow, line: Line) -> bool:
    return row.amount == line.amount and row.payment_date == line.payment_date and row.type == line.type


def diff(plan: PaymentPlan, rows: list[PaymentRow]) -> Actions:
    """Compare what the payment wants with the CW payments cwqbo posted for it (posted rows)."""
    acts = Actions()
    wanted = {ln.key: ln for ln in plan.lines}
    why = ("deleted in QuickBooks" if plan.deleted else "voided in QuickBooks" if plan.voided
           else "changed in QuickBooks")
    kept: set[Key] = set()
    for row in rows:
        line = wanted.get(row.key)
        if line is not None and line.problem is None and same(row, line) and row.key not in kept:
            acts.unchanged.append(row)
            kept.add(row.key)
        else:
            acts.reverse.append((row, why))
    for line in plan.lines:
        if line.key in kept:
            continue
        if line.problem is not None:
            acts.refuse.append(line)
        elif line.amount > ZERO:
            acts.post.append(line)
    return acts


def landed(cw_payments: list[dict[str, Any]], *, amount: Decimal, payment_date: str, type: str,
           credit_cw_id: int, claimed: set[int]) -> list[int]:
    """Ids of the invoice's CW payments that could be this one: same amount, date, type and credit memo, and
    not already claimed by another ledger row. Exactly one → adopt it; several → ambiguous, never post."""
    out = []
    for p in cw_payments:
        pid = p.get("id")
        if pid is None or int(pid) in claimed:
            continue
        credit = p.get("credit")
        credit_id = int(credit["id"]) if isinstance(credit, Mapping) and credit.get("id") is not None else 0
        if (_dec(p.get("amount")) == amount and str(p.get("paymentDate") or "")[:10] == payment_date
                and str(p.get("type") or "") == type and credit_id == credit_cw_id):
            out.append(int(pid))
    return out


def unchanged_in_cw(cw_payment: Mapping[str, Any], row: PaymentRow) -> bool:
    """A CW payment still as cwqbo posted it (safe to DELETE for a reversal)."""
    credit = cw_payment.get("credit")
    credit_id = int(credit["id"]) if isinstance(credit, Mapping) and credit.get("id") is not None else 0
    return (_dec(cw_payment.get("amount")) == row.amount and str(cw_payment.get("paymentDate") or "")[:10]
            == row.payment_date and str(cw_payment.get("type") or "") == row.type
            and credit_id == row.key.credit_cw_id)
