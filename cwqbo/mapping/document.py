"""Pure mapping: one ConnectWise invoice + prefs + resolved QBO references → one QBO Invoice / CreditMemo payload.

No I/O here. The sync engine calls `needs()` to learn which QBO objects must exist (customer, items, tax codes,
terms, classes, departments, custom fields), resolves them to ids (`Refs`), then calls `build_document()`.
After the create it calls `reconciliation.reconcile()` to compare QBO's `TotalAmt` with the ConnectWise total,
to the cent. This module owns the document itself (entity, DocNumber, the payload and its hash) and
`readiness()`, which runs the same mapping to judge an invoice before any sync; the rules it applies live in
`lines`, `tax`, `customers`, `fields` and `currency`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from cwqbo import money
from cwqbo.mapping.currency import currency_ref
from cwqbo.mapping.customers import address, customer_display_name, customer_spec
from cwqbo.mapping.errors import MappingError, Readiness
from cwqbo.mapping.fields import (
    class_name, custom_fields, custom_values, customer_memo, department_name, private_note, terms_name,
)
from cwqbo.mapping.lines import ZERO, PlannedLine, plan_lines, sales_line
from cwqbo.mapping.refs import CompanyFacts, ItemRef, Needs, Refs, ref_id
from cwqbo.mapping.tax import document_sales_tax, document_tax, expected_total, line_tax_code, tax_code_names, tax_line
from cwqbo.models import PROBLEMS, CWInvoice
from cwqbo.quickbooks.limits import MAX_LENGTHS
from cwqbo.settings.prefs import Prefs

DOCNUMBER_MAX = MAX_LENGTHS["Invoice"].get("DocNumber", 21)

Entity = Literal["Invoice", "CreditMemo"]


@dataclass(frozen=True, slots=True)
class QBODocument:
    """The payload to send and the total QuickBooks must answer with."""

    entity: Entity
    payload: dict[str, Any]
    doc_number: str
    expected_total: Decimal
    tax: Decimal = ZERO  # the tax in expected_total (lines + tax = expected_total): what a dry-run preview shows


def entity_for(inv: CWInvoice) -> Entity:
    """CreditMemo for a CW credit memo, else Invoice."""
    return "CreditMemo" if inv.is_credit else "Invoice"


def check_source(inv: CWInvoice) -> None:
    """Refuse an invoice whose ConnectWise record cannot be posted as sent (no total, no invoice number)."""
    problems = inv.extra.get(PROBLEMS) if isinstance(inv.extra, dict) else None
    if problems:
        raise MappingError("; ".join(str(p) for p in problems),
                           "complete the invoice in ConnectWise (re-open, fix, close) and sync again")


def doc_number(inv: CWInvoice, prefs: Prefs) -> str:
    """prefix + CW number; refuse anything QBO would reject (> 21 characters)."""
    check_source(inv)
    prefix = prefs.fields.docnumber_prefix
    number = f"{prefix}{inv.number}".strip()
    if len(number) > DOCNUMBER_MAX:
        bare = inv.number.strip()
        if not prefix or len(bare) > DOCNUMBER_MAX:
            # the ConnectWise number alone is too long: no prefix setting can help
            fix = (f"renumber the invoice in ConnectWise to at most {DOCNUMBER_MAX} characters, or exclude it"
                   + (" (the fields.docnumber_prefix alone would not fix it)" if prefix else ""))
        else:
            room = DOCNUMBER_MAX - len(bare)
            shorter = (f"shorten fields.docnumber_prefix to at most {room} character(s), or clear it "
                       "(cwqbo prefs set fields.docnumber_prefix '')" if room else
                       "clear fields.docnumber_prefix (cwqbo prefs set fields.docnumber_prefix '')")
            fix = f"{shorter}, or renumber the invoice in ConnectWise"
        raise MappingError(
            f"invoice number {number} is {len(number)} characters; QuickBooks allows {DOCNUMBER_MAX}", fix)
    return number


_NO_LINES = "invoice {number} has no lines to send (zero subtotal, total {total})"
_NO_LINES_FIX = "QuickBooks needs at least one line: add a line in ConnectWise, or exclude the invoice"


def _is_empty(inv: CWInvoice) -> bool:
    return inv.subtotal == 0 and inv.total == 0 and all(ln.amount == 0 for ln in inv.lines)


def needs(inv: CWInvoice, prefs: Prefs, *, us: bool | None = None) -> Needs:
    """Every QBO object (by name) that building this invoice will reference. Pass `us=True` to skip tax codes.

    A DocNumber QBO would refuse fails here, before any QBO lookup is spent on the invoice."""
    return needs_and_plan(inv, prefs, us=us)[0]


def needs_and_plan(inv: CWInvoice, prefs: Prefs, *, us: bool | None = None) -> tuple[Needs, list[PlannedLine]]:
    """`needs`, with the line plan it was computed from: `build_document(..., plan=)` takes it, so a sync plans each
    invoice's lines once."""
    check_source(inv)
    doc_number(inv, prefs)
    plan = plan_lines(inv, prefs)
    items = {p.item for p in plan if p.item}
    if prefs.tax.mode == "line_item" and inv.sales_tax:
        items.add(prefs.tax.line_item)
    if prefs.tax.on_mismatch == "adjust" and prefs.tax.adjustment_item:
        items.add(prefs.tax.adjustment_item)
    terms = terms_name(inv, prefs)
    cls = class_name(inv, prefs)
    dep = department_name(inv, prefs)
    return Needs(
        customer=customer_spec(inv, prefs), items=items,
        tax_codes=set() if us else tax_code_names(inv, prefs, plan),
        terms={terms} if terms is not None else set(), classes={cls} if cls else set(),
        departments={dep} if dep else set(),
        custom_fields={name for name, _ in custom_values(inv, prefs)}), plan


def build_document(inv: CWInvoice, prefs: Prefs, refs: Refs, *, plan: list[PlannedLine] | None = None) -> QBODocument:
    """The QBO payload for `inv`. Raises MappingError (reason + fix) for anything QBO would refuse or misbook.
    `plan`: the line plan `needs_and_plan` made for this invoice and these prefs (else it is made here)."""
    number = doc_number(inv, prefs)
    if _is_empty(inv):
        raise MappingError(f"invoice {inv.number} has no lines and a zero total", "nothing to sync; exclude it")
    entity = entity_for(inv)
    line_item_tax = prefs.tax.mode == "line_item"
    lines: list[dict[str, Any]] = []
    for p in plan if plan is not None else plan_lines(inv, prefs):
        if p.item is None:
            raise MappingError(f"no QuickBooks item for ConnectWise {p.kind} '{p.cw_key}'",
                               f"cwqbo prefs map item '{p.cw_key}' <QBO item>, or set items.fallback",
                               status="needs an item")
        item = refs.items.get(p.item)
        if item is None:
            raise MappingError(f"no QuickBooks item resolved for '{p.item}'", "the sync engine must resolve needs()")
        tax_code = line_tax_code(p.taxable, inv, prefs, refs, force_exempt=line_item_tax)
        lines.append(sales_line(p.amount, p.qty, p.unit_price, p.description, item, tax_code, p.service_date))
    sales_tax = document_sales_tax(inv)
    tax_ln = tax_line(inv, prefs, refs, sales_tax)
    if tax_ln is not None:
        lines.append(tax_ln)
    if not lines:  # e.g. a zero subtotal with only sales tax: QBO refuses a document without lines (2020)
        raise MappingError(_NO_LINES.format(number=inv.number, total=money.money_str(inv.total)), _NO_LINES_FIX)
    payload: dict[str, Any] = {"DocNumber": number, "TxnDate": inv.date.isoformat(),
                               "CustomerRef": {"value": refs.customer_id}}
    currency = currency_ref(inv, refs)
    if currency is not None:
        payload["CurrencyRef"] = currency
    if entity == "Invoice" and inv.due_date is not None:
        payload["DueDate"] = inv.due_date.isoformat()
    terms = terms_name(inv, prefs)
    if terms is not None:
        payload["SalesTermRef"] = {"value": ref_id(refs.terms, terms, "term", "check fields.terms_map")}
    memo = customer_memo(inv, prefs)
    if memo:
        payload["CustomerMemo"] = {"value": memo}
    note = private_note(inv, prefs)
    if note:
        payload["PrivateNote"] = note
    custom = custom_fields(inv, prefs, refs)
    if custom:
        payload["CustomField"] = custom
    cls = class_name(inv, prefs)
    if cls:
        class_ref = {"value": ref_id(refs.classes, cls, "class", "check fields.class_map")}
        if refs.class_per_line:
            for ln in lines:
                ln["SalesItemLineDetail"]["ClassRef"] = dict(class_ref)
        else:
            payload["ClassRef"] = class_ref
    dep = department_name(inv, prefs)
    if dep:
        payload["DepartmentRef"] = {"value": ref_id(refs.departments, dep, "department", "check fields.department_map")}
    bill, ship = address(inv.billing_address), address(inv.shipping_address)
    if bill:
        payload["BillAddr"] = bill
    if ship:
        payload["ShipAddr"] = ship
    payload["Line"] = lines
    payload.update(document_tax(prefs, refs, sales_tax))
    lines_total = sum((ln["Amount"] for ln in lines), ZERO)
    expected = expected_total(inv, prefs, refs, lines_total, sales_tax)
    return QBODocument(entity=entity, payload=payload, doc_number=number, expected_total=expected,
                       tax=expected - lines_total)


def payload_json(payload: dict[str, Any]) -> tuple[str, str]:
    """The exact JSON text sent to QBO (keys in the order mapping builds them, numbers exact) and its sha256.

    Serialised once: the batch call sends this very text, so the hash (and the requestid derived from it) is of
    the bytes QuickBooks receives. Same invoice, same prefs, same references → same text → same requestid.
    """
    text = money.dumps(payload)
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


_CHECK_ID = "(check)"  # the id readiness gives every reference it assumes the sync would resolve


def _unmapped(plan: list[PlannedLine]) -> str:
    """Readiness's reason for lines without a QBO item ('' when every line has one)."""
    names = sorted({f"{p.kind} '{p.cw_key}'" for p in plan if p.item is None})
    return "no item mapped for " + ", ".join(names) if names else ""


def readiness(inv: CWInvoice, prefs: Prefs, *, us: bool | None = None,
              known_customers: Collection[str] | None = None, company: CompanyFacts | None = None,
              kept_for_review: str | None = None) -> tuple[Readiness, str]:
    """Whether `inv` can sync as configured: ('ready', '') or (status, readable reason).

    It runs the sync's own mapping (`needs` and `build_document`) with every reference the sync would resolve
    assumed found, so an invoice the dry run fails for a mapping reason is never called ready. `company` (the
    connected QBO company: country, home currency, multicurrency) decides the tax model and the currency check;
    without it a company is taken to be US unless non-US tax codes are mapped. `kept_for_review` is the ledger's
    error for an invoice whose QBO document was kept for review: such an invoice is not synced again until
    someone resolves it.
    """
    if kept_for_review:
        return "kept for review", kept_for_review
    if us is None and company is not None:
        us = company.us
    if us is None:
        us = not (prefs.tax.codes or prefs.tax.default_code)
    try:
        check_source(inv)
        doc_number(inv, prefs)
    except MappingError as exc:
        return exc.status, exc.reason
    if _is_empty(inv):
        return "invalid", "no lines and a zero total"
    if known_customers is not None and not prefs.fields.create_missing_customers:
        name = customer_display_name(inv.company, prefs)
        if name not in known_customers:
            return "needs a customer", f"no QuickBooks customer named '{name}' (creating customers is off)"
    try:
        n, plan = needs_and_plan(inv, prefs, us=us)  # the lines planned once, and that plan built below
    except Exception as exc:
        # An unmapped item is still the reason given first, as though it had been checked before `needs`.
        unmapped = _unmapped(plan_lines(inv, prefs))
        if unmapped:
            return "needs an item", unmapped
        if isinstance(exc, MappingError):
            return exc.status, exc.reason
        raise
    unmapped = _unmapped(plan)
    if unmapped:
        return "needs an item", unmapped
    try:
        refs = Refs(customer_id=_CHECK_ID, items={name: ItemRef(_CHECK_ID, name) for name in n.items},
                    tax_codes={name: _CHECK_ID for name in n.tax_codes}, terms={t: _CHECK_ID for t in n.terms},
                    classes={c: _CHECK_ID for c in n.classes}, departments={d: _CHECK_ID for d in n.departments},
                    custom_fields={f: _CHECK_ID for f in n.custom_fields}, us=us,
                    home_currency=company.home_currency if company else None,
                    multicurrency=company.multicurrency if company else False,
                    customer_currency=(inv.currency or None) if company and company.multicurrency else None)
        build_document(inv, prefs, refs, plan=plan)
    except MappingError as exc:
        return exc.status, exc.reason
    return "ready", ""
