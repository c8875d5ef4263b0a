"""Raw ConnectWise JSON → CWInvoice (pure).

The lines of a built invoice always sum exactly to the CW subtotal: detail CW does not itemise
(agreement amounts, service adjustments, manual amounts) becomes an explicit agreement/adjustment line,
so the QBO document can never silently disagree with what the customer was billed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec

from cwqbo.errors import RemoteError
from cwqbo.models import PROBLEMS, Address, CompanyRef, CWInvoice, InvoiceLine
from cwqbo.money import round_cents, to_decimal

SKIP_BILLABLE = frozenset({"DoNotBill"})  # not on the invoice at all
ZERO_BILLABLE = frozenset({"NoCharge"})  # printed on the invoice at no charge
NOT_BILLED = frozenset({"NoDefault"})  # time/expense with no billing decision: ConnectWise bills nothing
ZERO = Decimal("0")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ref_name(ref: Any) -> str:
    if isinstance(ref, Mapping):
        return str(ref.get("name") or ref.get("identifier") or "")
    return ""


def _company(ref: Any) -> CompanyRef | None:
    if not isinstance(ref, Mapping) or ref.get("id") is None:
        return None
    return CompanyRef(id=int(ref["id"]), identifier=str(ref.get("identifier") or ""),
                      name=str(ref.get("name") or ""))


def parse_date(value: Any) -> date | None:
    """CW dates are `2026-01-15T00:00:00Z` meaning the calendar day; take the day as written."""
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise RemoteError(f"ConnectWise sent an unreadable date: {value!r}") from exc


def _amount(raw: Mapping[str, Any], key: str, where: str) -> Decimal:
    try:
        return to_decimal(raw.get(key))
    except (TypeError, ValueError) as exc:
        raise RemoteError(f"ConnectWise {where} has an unreadable {key}: {raw.get(key)!r}") from exc


def _address(raw: Mapping[str, Any], prefix: str) -> Address | None:
    keys = ("AddressLine1", "AddressLine2", "City", "State", "Zip", "Country")
    vals = [raw.get(prefix + k) for k in keys]
    if not any(vals):
        return None
    state = vals[3]
    country = vals[5]
    return Address(line1=str(vals[0] or ""), line2=str(vals[1] or ""), city=str(vals[2] or ""),
                   state=_ref_name(state) if isinstance(state, Mapping) else str(state or ""),
                   zip=str(vals[4] or ""),
                   country=_ref_name(country) if isinstance(country, Mapping) else str(country or ""))


def _ticket(entry: Mapping[str, Any]) -> str | None:
    kind = entry.get("chargeToType")
    cid = entry.get("chargeToId")
    if kind and cid is not None:
        return f"{kind} #{cid}"
    ticket = entry.get("ticket")
    if isinstance(ticket, Mapping) and ticket.get("id") is not None:
        return f"ServiceTicket #{ticket['id']}"
    return None


def _billing(row: Mapping[str, Any]) -> str:
    """`billableOption` (pyconnectwise `TimeEntry`/`ExpenseEntry`: Billable, DoNotBill, NoCharge, NoDefault;
    `ProductItem`: Billable, DoNotBill, NoCharge). A missing value is Billable (older records omit it)."""
    return str(row.get("billableOption") or "Billable")


def _optional(raw: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    return None if raw.get(key) is None else _amount(raw, key, where)


def product_line(p: Mapping[str, Any]) -> InvoiceLine | None:
    """A product line from ConnectWise's own `ProductItem` fields (pyconnectwise `ProductItem`).

    The schema has no extended price: the line is billed quantity × `price` − `discount`, where the billed
    quantity is `quantity` − `quantityCancelled` (a cancelled quantity is not billed; `cancelledFlag` with no
    `quantityCancelled` cancels the whole line). `discount` is the line's discount amount. `billableOption`
    DoNotBill leaves the line off the invoice, NoCharge prints it at no charge. `taxableFlag` is the line's
    taxability; `customerDescription` (else `description`) is what the customer reads.
    """
    option = _billing(p)
    if option in SKIP_BILLABLE:
        return None
    where = f"product {p.get('id')}"
    ordered = _amount(p, "quantity", where)
    cancelled = _optional(p, "quantityCancelled", where)
    if cancelled is None and p.get("cancelledFlag") is True:
        cancelled = ordered
    qty = ordered - (cancelled or ZERO)
    if cancelled and qty == 0:
        return None  # cancelled in full: nothing of it is billed
    price = _amount(p, "price", where)
    if option in ZERO_BILLABLE:
        amount = ZERO
        price = ZERO
    else:
        amount = round_cents(qty * price - _amount(p, "discount", where))
    catalog = _mapping(p.get("catalogItem"))
    return InvoiceLine(kind="product", source_id=p.get("id"),
                       description=str(p.get("customerDescription") or p.get("description") or ""),
                       quantity=qty, unit_price=price, amount=amount,
                       taxable=bool(p.get("taxableFlag")), item_key=str(catalog.get("identifier") or ""),
                       service_date=parse_date(p.get("purchaseDate") or p.get("invoiceDate")))


def _invoice_hours(t: Mapping[str, Any], where: str) -> Decimal:
    """Hours ConnectWise puts on the invoice (pyconnectwise `TimeEntry`): `invoiceHours` when sent; else the
    billable hours (`hoursBilled`, else `actualHours`) less the hours an agreement covers (`agreementHours`)."""
    if t.get("invoiceHours") is not None:
        return _amount(t, "invoiceHours", where)
    billed = _amount(t, "hoursBilled", where) if t.get("hoursBilled") is not None \
        else _amount(t, "actualHours", where)
    covered = _optional(t, "agreementHours", where)
    if covered:
        return max(billed - covered, ZERO) if billed >= 0 else min(billed - covered, ZERO)
    return billed


def time_line(t: Mapping[str, Any]) -> InvoiceLine | None:
    """A time entry as ConnectWise bills it (pyconnectwise `TimeEntry`): invoice hours × `hourlyRate`.

    Agreement time: hours an agreement covers (`agreementHours`, valued in `agreementAmount`) are paid by the
    agreement, not by this invoice; only `invoiceHours` reach it (an entry fully covered by its agreement is not
    an invoice line). The schema has no billed-amount field for time. `billableOption` DoNotBill or NoDefault
    bills nothing (the entry is left off), NoCharge prints it at no charge. Services are non-taxable unless
    `taxableFlag` says so.
    """
    option = _billing(t)
    if option in SKIP_BILLABLE or option in NOT_BILLED:
        return None
    where = f"time entry {t.get('id')}"
    hours = _invoice_hours(t, where)
    if hours == 0 and (_optional(t, "agreementHours", where) or t.get("invoiceHours") is not None):
        return None  # all of it is covered by the agreement: nothing reaches the invoice
    rate = _amount(t, "hourlyRate", where)
    if option in ZERO_BILLABLE:
        rate = ZERO
    amount = round_cents(hours * rate)
    work_type = _ref_name(t.get("workType")) or None
    work_role = _ref_name(t.get("workRole")) or None
    member = t.get("member")
    member_name = (str(member.get("name") or member.get("identifier") or "")
                   if isinstance(member, Mapping) else None) or None
    notes = str(t.get("notes") or "").strip() or None
    ticket = _ticket(t)
    desc = " — ".join(x for x in (ticket, notes) if x) or work_type or "Services"
    return InvoiceLine(kind="time", source_id=t.get("id"), description=desc, quantity=hours,
                       unit_price=rate, amount=amount, taxable=bool(t.get("taxableFlag")),
                       item_key=work_type or work_role or "", service_date=parse_date(t.get("timeStart")),
                       member=member_name, work_type=work_type, work_role=work_role, ticket=ticket,
                       notes=notes, hours=hours)


def expense_line(e: Mapping[str, Any]) -> InvoiceLine | None:
    """A billed expense (pyconnectwise `ExpenseEntry`): `invoiceAmount` (what reaches the invoice, net of
    any `agreementAmount` coverage), else `billAmount`, else the raw `amount`. `billableOption` as for time."""
    option = _billing(e)
    if option in SKIP_BILLABLE or option in NOT_BILLED:
        return None
    where = f"expense {e.get('id')}"
    key = next((k for k in ("invoiceAmount", "billAmount") if e.get(k) is not None), "amount")
    amount = ZERO if option in ZERO_BILLABLE else round_cents(_amount(e, key, where))
    etype = _ref_name(e.get("type")) or None
    member = e.get("member")
    taxes = e.get("taxes") or []
    taxable = bool(e.get("taxableFlag")) or any(
        isinstance(x, Mapping) and to_decimal(x.get("amount")) != 0 for x in taxes)
    return InvoiceLine(kind="expense", source_id=e.get("id"),
                       description=str(e.get("notes") or etype or "Expense").strip(),
                       quantity=Decimal("1"), unit_price=amount, amount=amount, taxable=taxable,
                       item_key=etype or "", service_date=parse_date(e.get("date")),
                       member=(_ref_name(member) or None) if isinstance(member, Mapping) else None,
                       ticket=_ticket(e), expense_type=etype)


def _balancing_lines(raw: Mapping[str, Any], diff: Decimal, taxable: bool) -> list[InvoiceLine]:
    """Lines that account for `diff` = subtotal − itemised detail: agreement amount first, then the rest."""
    out: list[InvoiceLine] = []
    agreement = _amount(raw, "agreementAmount", "invoice")
    if agreement != 0 and diff != 0 and (agreement > 0) == (diff > 0):
        part = agreement if abs(agreement) <= abs(diff) else diff
        name = _ref_name(raw.get("agreement"))
        out.append(InvoiceLine(kind="agreement", source_id=None,
                               description=f"Agreement: {name}" if name else "Agreement amount",
                               quantity=Decimal("1"), unit_price=part, amount=part, taxable=taxable,
                               item_key=name))
        diff -= part
    if diff != 0:
        svc_adj = _amount(raw, "serviceAdjustmentAmount", "invoice")
        desc = "Service adjustment" if svc_adj == diff else "Invoice adjustment"
        out.append(InvoiceLine(kind="adjustment", source_id=None, description=desc,
                               quantity=Decimal("1"), unit_price=diff, amount=diff, taxable=taxable,
                               item_key=""))
    return out


def build_invoice(raw: Mapping[str, Any], products: Iterable[Mapping[str, Any]] = (),
                  time_entries: Iterable[Mapping[str, Any]] = (), expenses: Iterable[Mapping[str, Any]] = (),
                  *, statuses: Mapping[int, str] | Iterable[Mapping[str, Any]] | None = None) -> CWInvoice:
    """One CW invoice with its detail; `statuses` (id → name, or billing status records) fills the status name."""
    if not isinstance(raw, Mapping) or raw.get("id") is None:
        raise RemoteError("ConnectWise sent an invoice without an id")
    inv_id = int(raw["id"])
    where = f"invoice {raw.get('invoiceNumber') or inv_id}"
    company = _company(raw.get("company"))
    if company is None:
        raise RemoteError(f"ConnectWise {where} has no company")
    inv_date = parse_date(raw.get("date"))
    if inv_date is None:
        raise RemoteError(f"ConnectWise {where} has no date")

    kind = str(raw.get("type") or "Standard").replace(" ", "")  # "Credit Memo" → "CreditMemo"
    subtotal = _amount(raw, "subtotal", where)
    sales_tax = _amount(raw, "salesTax", where)
    # A missing total or number fails this invoice in mapping (see `models.PROBLEMS`), never the run: with no
    # total there is nothing to reconcile QuickBooks against, and the record id is no invoice number (as a
    # DocNumber it could collide with a real one).
    problems: list[str] = []
    if raw.get("total") is None:
        problems.append(f"ConnectWise sent {where} without a total, so there is nothing to check the "
                        "QuickBooks total against")
        total = subtotal + sales_tax
    else:
        total = _amount(raw, "total", where)
    number = str(raw.get("invoiceNumber") or "").strip()
    if not number:
        problems.append(f"ConnectWise sent invoice id {inv_id} without an invoice number")

    detail: list[InvoiceLine] = []
    for build, rows in ((product_line, products), (time_line, time_entries), (expense_line, expenses)):
        for row in sorted(rows, key=lambda r: (r.get("sequenceNumber") or 0, r.get("id") or 0)):
            line = build(row)
            if line is not None:
                detail.append(line)

    # Credit memos: CW may list the detail with positive amounts under a negative subtotal.
    itemised = sum((ln.amount for ln in detail), ZERO)
    if (kind == "CreditMemo" or total < 0) and itemised != 0 and itemised == -subtotal:
        detail = [_negate(ln) for ln in detail]
        itemised = -itemised

    any_taxable = any(ln.taxable for ln in detail)
    balance_taxable = bool(raw.get("taxableFlag")) and sales_tax != 0 and not any_taxable
    lines = detail + _balancing_lines(raw, subtotal - itemised, balance_taxable)

    status = _mapping(raw.get("status"))
    status_id = int(status.get("id") or 0)
    status_name = str(status.get("name") or "") or _status_name(statuses, status_id)
    currency = raw.get("currency")
    info = _mapping(raw.get("_info"))
    extra = {k: raw[k] for k in ("applyToType", "applyToId", "specialInvoiceFlag") if raw.get(k) is not None}
    tickets = sorted({ln.ticket for ln in lines if ln.ticket})
    if tickets:
        extra["tickets"] = tickets
    if problems:
        extra[PROBLEMS] = problems
    return CWInvoice(
        id=inv_id, number=number, type=kind,
        status_id=status_id, status_name=status_name, company=company, date=inv_date,
        due_date=parse_date(raw.get("dueDate")), subtotal=subtotal, sales_tax=sales_tax, total=total,
        lines=tuple(lines), bill_to=_company(raw.get("billToCompany")),
        terms=_ref_name(raw.get("billingTerms")) or None, customer_po=raw.get("customerPO") or None,
        reference=raw.get("reference") or None, location_id=raw.get("locationId"),
        department_id=raw.get("departmentId"), tax_code=_ref_name(raw.get("taxCode")) or None,
        taxable=bool(raw.get("taxableFlag", True)),
        currency=_currency_code(currency),
        billing_address=_address(raw, "billingSite"), shipping_address=_address(raw, "shippingSite"),
        top_comment=raw.get("topComment") or None, bottom_comment=raw.get("bottomComment") or None,
        site_name=_ref_name(raw.get("billingSite")) or None, last_updated=str(info.get("lastUpdated") or ""),
        extra=extra,
    )


def _currency_code(ref: Any) -> str | None:
    """ISO code of the invoice's currency: pyconnectwise `CurrencyReference.currencyCode` (else
    `currencyIdentifier`; `isoCode` as older simulator data sent it). A bare name is no code: None."""
    if isinstance(ref, Mapping):
        for key in ("currencyCode", "isoCode", "currencyIdentifier"):
            code = str(ref.get(key) or "").strip().upper()
            if code:
                return code
        return None
    code = str(ref or "").strip().upper()
    return code if len(code) == 3 and code.isalpha() else None


def _negate(ln: InvoiceLine) -> InvoiceLine:
    return msgspec.structs.replace(ln, amount=-ln.amount, quantity=-ln.quantity)


def _status_name(statuses: Mapping[int, str] | Iterable[Mapping[str, Any]] | None, status_id: int) -> str:
    if statuses is None:
        return ""
    if isinstance(statuses, Mapping):
        return str(statuses.get(status_id, ""))
    for s in statuses:
        if int(s.get("id") or 0) == status_id:
            return str(s.get("name") or "")
    return ""
