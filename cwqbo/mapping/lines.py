"""The document's lines: which QBO item each ConnectWise line books to, how time entries are grouped and
described (hours × rate only when it really makes the amount), cents that add up to the CW subtotal exactly,
and the QBO SalesItemLine with a Qty × UnitPrice that equals its Amount.

`plan_lines` is the one line plan that `needs()` and `build_document()` share, so they can never disagree about
which items an invoice uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from cwqbo import money
from cwqbo.mapping.refs import ItemRef
from cwqbo.mapping.text import clean_name, clean_text, truncate
from cwqbo.models import CWInvoice, InvoiceLine
from cwqbo.quickbooks.limits import MAX_LENGTHS
from cwqbo.settings.prefs import Prefs

DESCRIPTION_MAX = MAX_LENGTHS["Invoice"].get("Line.Description", 4000)
ITEM_NAME_MAX = MAX_LENGTHS["Item"].get("Name", 100)
ZERO = Decimal("0")
_PRICE_QUANTUM = Decimal("0.00001")  # QBO amounts are "10.5 format"


@dataclass(slots=True)
class PlannedLine:
    """One line the document will carry, before QBO ids are known."""

    item: str | None  # QBO item name; None = unmapped
    cw_key: str  # what the user would map (for error messages)
    kind: str
    taxable: bool
    amount: Decimal  # exact CW amount, already sign-flipped for credit memos
    qty: Decimal | None
    unit_price: Decimal | None
    description: str
    service_date: date | None = None


def credit_sign(inv: CWInvoice) -> Decimal:
    """-1 when the document is a credit memo (negative total), else 1: QBO credit memos carry positive amounts,
    so CW's signs are flipped."""
    flip = inv.total < 0 or (inv.total == 0 and inv.subtotal < 0)
    return Decimal(-1) if flip else Decimal(1)


def item_for_line(line: InvoiceLine, prefs: Prefs) -> tuple[str | None, str]:
    """(QBO item name or None when unmapped, the CW key a user would map) for one CW line."""
    im = prefs.items
    if line.kind == "product":
        key, table = line.item_key, im.product
    elif line.kind == "time":
        if prefs.time.item_source == "work_role":
            key, table = (line.work_role or line.item_key or ""), im.work_role
        else:
            key, table = (line.work_type or line.item_key or ""), im.work_type
    elif line.kind == "expense":
        key, table = (line.expense_type or line.item_key or ""), im.expense_type
    elif line.kind == "agreement":
        return (im.agreement or im.fallback or None), "agreement"
    else:
        return (im.fallback or None), line.kind
    key = key or ""
    if key in table:
        return table[key], key
    if im.create_missing and clean_name(key):
        return truncate(clean_name(key), ITEM_NAME_MAX), key
    return (im.fallback or None), key


def _hours(value: Decimal | None, prefs: Prefs) -> str:
    """Hours as shown to the customer, rounded half-up to time.hours_rounding (the amount is never rounded)."""
    if value is None:
        return ""
    try:
        step = Decimal(prefs.time.hours_rounding)
        q = (value / step).to_integral_value(rounding=ROUND_HALF_UP) * step if step > 0 else value
    except (InvalidOperation, ValueError):
        q = value
    return format(q.normalize(), "f")


def _hours_at(hours: Decimal, rate: Decimal, amount: Decimal, prefs: Prefs) -> str:
    """'2 h @ 150.00' when the hours shown × the rate is the line amount; otherwise the hours and the amount
    ('0.25 h, 49.50'): a customer must never be able to multiply the description to a different amount.
    Hours, rate and amount are shown positive (a credit memo credits positive hours)."""
    shown = _hours(abs(hours), prefs)
    amount = abs(amount)
    try:
        matches = money.round_cents(Decimal(shown) * abs(rate)) == amount
    except InvalidOperation:
        matches = False
    if matches:
        return f"{shown} h @ {money.money_str(abs(rate))}"
    return f"{shown} h, {money.money_str(amount)}"


def _time_subject(line: InvoiceLine) -> str | None:
    """The entry's own description, unless it only repeats the ticket and notes (ConnectWise records compose
    'ServiceTicket #9001 — Reset VPN' from exactly those two, and they are shown on their own)."""
    desc = (line.description or "").strip()
    composed = " — ".join(x for x in (line.ticket, line.notes) if x)
    if not desc or desc == composed or desc in (line.ticket, line.notes):
        return None
    return desc


def _join(*parts: str | None, sep: str = " · ") -> str:
    return sep.join(p for p in parts if p)


def plan_lines(inv: CWInvoice, prefs: Prefs) -> list[PlannedLine]:
    """The document's lines in CW order: time grouped per time.detail, amounts in cents summing to the subtotal."""
    sign = credit_sign(inv)
    planned: list[PlannedLine] = []
    groups: dict[tuple[Any, ...], tuple[PlannedLine, list[InvoiceLine]]] = {}
    detail = prefs.time.detail
    for line in inv.lines:
        item, key = item_for_line(line, prefs)
        taxable = line.taxable and inv.taxable
        if line.kind == "time" and detail != "detailed":
            gkey: tuple[Any, ...] = (item, key, taxable)
            if detail == "condensed":
                gkey += (line.ticket or "", line.work_role or "")
            if gkey not in groups:
                slot = PlannedLine(item, key, "time", taxable, ZERO, None, None, "")
                groups[gkey] = (slot, [])
                planned.append(slot)
            groups[gkey][1].append(line)
            continue
        desc = line.description or ""
        if line.kind == "time":  # detailed: one line per entry
            desc = _join(line.service_date.isoformat() if line.service_date else None, line.member,
                         _hours_at(line.quantity, line.unit_price, line.amount, prefs), line.ticket,
                         _time_subject(line))
            if prefs.time.include_notes and line.notes:
                desc = f"{desc}\n{line.notes}"
        planned.append(PlannedLine(item, key, line.kind, taxable, sign * line.amount,
                                   sign * line.quantity, line.unit_price, desc, line.service_date))
    for p, lines in groups.values():
        _fill_time_group(p, lines, sign, prefs)
    # an invoice with no detail but an amount becomes one line on the fallback item
    if not planned and inv.subtotal != 0:
        planned.append(PlannedLine(prefs.items.fallback or None, "invoice", "total", inv.taxable,
                                   sign * inv.subtotal, None, None, f"ConnectWise invoice {inv.number}", None))
    _fit_to_subtotal(planned, sign * inv.subtotal, prefs)
    return planned


def _fill_time_group(p: PlannedLine, lines: list[InvoiceLine], sign: Decimal, prefs: Prefs) -> None:
    """Amount, hours, rate, date and description of one grouped time line (summary or condensed detail)."""
    detail = prefs.time.detail
    qty = sum((ln.quantity for ln in lines), ZERO)
    hours = abs(qty)  # time quantity is hours; shown positive (a credit memo credits positive hours)
    prices = {ln.unit_price for ln in lines}
    p.amount = sign * sum((ln.amount for ln in lines), ZERO)
    p.qty = sign * qty
    p.unit_price = prices.pop() if len(prices) == 1 else None
    dates = [ln.service_date for ln in lines if ln.service_date]
    p.service_date = max(dates) if dates else None
    if detail == "condensed":
        first = lines[0]
        p.description = _join(first.ticket, first.work_role or p.cw_key, f"{_hours(hours, prefs)} h")
        if prefs.time.include_notes:
            notes = [ln.notes for ln in lines if ln.notes]
            if notes:
                p.description += "\n" + "\n".join(dict.fromkeys(notes))
    else:
        p.description = _join(p.cw_key or "Time", f"{_hours(hours, prefs)} h", sep=": ")


def _fit_to_subtotal(planned: list[PlannedLine], target: Decimal, prefs: Prefs) -> None:
    """Round every amount to cents so that they sum to the CW subtotal exactly (largest remainder), or add a
    difference line when CW's subtotal holds something its lines don't (agreement amount, down payment)."""
    if not planned:
        return
    target = money.round_cents(target)
    exact = [p.amount for p in planned]
    rounded = [money.round_cents(a) for a in exact]
    diff = target - sum(rounded, ZERO)
    rounding_slack = money.CENT * len(planned) / 2
    if diff and abs(target - sum(exact, ZERO)) < money.CENT and abs(diff) <= rounding_slack:
        step = money.CENT if diff > 0 else -money.CENT
        # give the cents to the lines that rounding moved furthest the other way (ties: earliest line)
        ranked = sorted(range(len(planned)),
                        key=lambda i: (-(exact[i] - rounded[i]) if step > 0 else exact[i] - rounded[i], i))
        n = int(abs(diff) / money.CENT)
        for i in ranked[:n]:
            rounded[i] += step
        diff = ZERO
    for p, r in zip(planned, rounded):
        p.amount = r
    if diff:
        planned.append(PlannedLine(prefs.items.fallback or None, "subtotal difference", "adjustment", False, diff,
                                   None, None, "Difference to the ConnectWise subtotal", None))


def qty_price(amount: Decimal, qty: Decimal | None, unit_price: Decimal | None) -> tuple[Decimal, Decimal]:
    """Qty and UnitPrice with Qty × UnitPrice == Amount exactly (QBO error 6070 otherwise); else 1 × Amount."""
    if qty is not None and unit_price is not None and qty < 0 and unit_price < 0:
        qty, unit_price = -qty, -unit_price  # a credit line flipped twice reads better as positive × positive
    if qty is not None and qty != 0:
        if unit_price is not None and qty * unit_price == amount:
            return qty, unit_price
        try:
            price: Decimal | None = (amount / qty).quantize(_PRICE_QUANTUM).normalize()
        except InvalidOperation:
            price = None
        if price is not None and qty * price == amount:
            return qty, price
    return Decimal(1), amount


def sales_line(amount: Decimal, qty: Decimal | None, unit_price: Decimal | None, description: str, item: ItemRef,
               tax_code: dict[str, str], service_date: date | None = None) -> dict[str, Any]:
    """One QBO SalesItemLine: the item, Qty × UnitPrice == Amount, the tax code, a clean description."""
    q, up = qty_price(amount, qty, unit_price)
    detail: dict[str, Any] = {"ItemRef": {"value": item.id, "name": item.name}, "Qty": q, "UnitPrice": up,
                              "TaxCodeRef": tax_code}
    if service_date is not None:
        detail["ServiceDate"] = service_date.isoformat()
    line: dict[str, Any] = {"DetailType": "SalesItemLineDetail", "Amount": amount}
    if description:
        line["Description"] = truncate(clean_text(description), DESCRIPTION_MAX)
    line["SalesItemLineDetail"] = detail
    return line
