"""Pure mapping: one ConnectWise invoice + prefs + resolved QBO references → one QBO Invoice / CreditMemo payload.

No I/O here. The sync engine calls `needs()` to learn which QBO objects must exist (customer, items, tax codes,
terms, classes, departments, custom fields), resolves them to ids (`Refs`), then calls `build_document()`.
After the create it calls `reconcile()` to compare QBO's `TotalAmt` with the ConnectWise total, to the cent.
`needs()` and `build_document()` share one line plan (`_plan`), so they can never disagree about which items
an invoice uses.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from cwqbo import money
from cwqbo.errors import CwqboError
from cwqbo.models import PROBLEMS, Address, CompanyRef, CWInvoice, InvoiceLine
from cwqbo.settings.prefs import Prefs
from cwqbo.quickbooks.limits import TABLE as _LIMITS

_INV_LIMITS: dict[str, int] = _LIMITS["max_lengths"]["Invoice"]
DOCNUMBER_MAX = _INV_LIMITS.get("DocNumber", 21)
DESCRIPTION_MAX = _INV_LIMITS.get("Line.Description", 4000)
CUSTOMER_MEMO_MAX = _INV_LIMITS.get("CustomerMemo.value", 1000)
PRIVATE_NOTE_MAX = _INV_LIMITS.get("PrivateNote", 4000)
DISPLAY_NAME_MAX = _LIMITS["max_lengths"]["Customer"].get("DisplayName", 500)
COMPANY_NAME_MAX = _LIMITS["max_lengths"]["Customer"].get("CompanyName", 100)
ITEM_NAME_MAX = _LIMITS["max_lengths"]["Item"].get("Name", 100)
CUSTOM_FIELD_MAX = 31  # legacy string custom fields (reference §3.8)
CUSTOM_FIELDS_MAX = 3
CUSTOM_FIELD_SOURCES = ("customer_po", "reference", "site", "ticket", "project")
ELLIPSIS = "…"
ZERO = Decimal("0")
_PRICE_QUANTUM = Decimal("0.00001")  # QBO amounts are "10.5 format"

Entity = Literal["Invoice", "CreditMemo"]
Readiness = Literal["ready", "needs a customer", "needs an item", "needs a tax code", "kept for review", "invalid"]


class MappingError(CwqboError):
    """An invoice that cannot become a QBO document as configured; `reason` says why, `fix` what to change."""

    def __init__(self, reason: str, fix: str = "", *, status: Readiness = "invalid") -> None:
        # CW text (invoice numbers, item keys) can hold newlines/control characters: keep the message one line
        reason, fix = one_line(reason), one_line(fix)
        super().__init__(reason, hint=fix or None)
        self.reason = reason
        self.fix = fix
        self.status: Readiness = status  # how list-unsynced / check-permissions classify it

    def explained(self) -> str:
        """Reason and fix on one line: what the sync summary and history show the operator."""
        return f"{self.reason} — fix: {self.fix}" if self.fix else self.reason


# ---------------------------------------------------------------------------------------------------------------
# text helpers

def one_line(text: str) -> str:
    """`text` with control characters (newlines, tabs, escapes) shown as escapes, so a message stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def truncate(text: str, limit: int) -> str:
    """Cut to at most `limit` characters, ending in '…', without leaving a dangling combining mark or surrogate."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = limit - len(ELLIPSIS)
    # back off so the kept text does not end inside a grapheme: never keep half a surrogate pair, never
    # separate a base character from the combining marks / joiners / variation selectors that follow it
    while cut > 0 and (_joins_previous(text[cut]) or "\ud800" <= text[cut - 1] <= "\udbff" or text[cut - 1] == "\u200d"):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


def _joins_previous(ch: str) -> bool:
    return (unicodedata.combining(ch) != 0 or "\udc00" <= ch <= "\udfff" or ch == "\u200d"
            or "\ufe00" <= ch <= "\ufe0f" or unicodedata.category(ch) in ("Mn", "Me", "Mc")
            or "\U0001f3fb" <= ch <= "\U0001f3ff")


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


def clean_name(name: str) -> str:
    """QBO names: ':' is the hierarchy separator, so it becomes ' - '; whitespace collapsed and trimmed.

    Control characters (NUL, escapes, DEL, C1 controls) are whitespace here like tabs and newlines: each becomes a
    space before the run of spaces collapses, so 'Acme\x00Dental' is 'Acme Dental' and nothing invisible reaches
    QuickBooks.
    """
    if not name.isprintable():
        name = "".join(" " if _is_control(ch) else ch for ch in name)
    return re.sub(r"\s+", " ", name.replace(":", " - ")).strip()


_clean_name = clean_name


def clean_text(text: str) -> str:
    """Free text QBO shows the customer (descriptions, memo, notes): line breaks kept (CR LF / CR → LF), tabs
    kept, every other control character (NUL, escapes, DEL, C1) stripped."""
    if text.isprintable():
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or not _is_control(ch))


# ---------------------------------------------------------------------------------------------------------------
# customers

def _addr(a: Address | None) -> dict[str, str] | None:
    if a is None:
        return None
    ml = _INV_LIMITS
    pairs = [("Line1", a.line1), ("Line2", a.line2), ("City", a.city), ("CountrySubDivisionCode", a.state),
             ("PostalCode", a.zip), ("Country", a.country)]
    out = {k: truncate(clean_name(v), ml.get(f"BillAddr.{k}", 500)) for k, v in pairs if v and clean_name(v)}
    return out or None


@dataclass(frozen=True, slots=True)
class CustomerSpec:
    """What the engine needs to find or create the QBO customer for an invoice."""

    key: str  # the value matched against QBO Customer.DisplayName
    display_name: str
    company_name: str
    cw_company_id: int
    identifier: str
    fallback_name: str  # DisplayName to use when display_name collides with a vendor/employee/other customer
    bill_addr: dict[str, str] | None = None
    ship_addr: dict[str, str] | None = None
    currency: str | None = None  # ISO code of the invoice; a new customer is created in it (multicurrency on)


def customer_display_name(company: CompanyRef, prefs: Prefs) -> str:
    """DisplayName for a CW company: its name (or identifier, per fields.customer_match), QBO-safe, ≤ 500 chars."""
    raw = company.identifier if prefs.fields.customer_match == "identifier" else company.name
    name = _clean_name(raw or "") or _clean_name(company.name or "") or f"CW company {company.id}"
    return truncate(name, DISPLAY_NAME_MAX)


def disambiguated_name(name: str, company: CompanyRef) -> str:
    """Deterministic alternative DisplayName, e.g. 'Northwind Traders (CW 17)', when `name` is taken."""
    suffix = f" (CW {company.id})"
    if name.endswith(suffix):
        return name
    return truncate(name, DISPLAY_NAME_MAX - len(suffix)) + suffix


def customer_spec(inv: CWInvoice, prefs: Prefs) -> CustomerSpec:
    display = customer_display_name(inv.company, prefs)
    return CustomerSpec(
        key=display, display_name=display,
        company_name=truncate(_clean_name(inv.company.name or "") or display, COMPANY_NAME_MAX),
        cw_company_id=inv.company.id, identifier=inv.company.identifier,
        fallback_name=disambiguated_name(display, inv.company),
        bill_addr=_addr(inv.billing_address), ship_addr=_addr(inv.shipping_address),
        currency=(inv.currency or "").upper() or None)


# ---------------------------------------------------------------------------------------------------------------
# needs and refs

@dataclass(frozen=True, slots=True)
class Needs:
    customer: CustomerSpec
    items: set[str] = field(default_factory=set)
    tax_codes: set[str] = field(default_factory=set)
    terms: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    departments: set[str] = field(default_factory=set)
    custom_fields: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class ItemRef:
    id: str
    name: str
    taxable: bool | None = None


@dataclass(frozen=True, slots=True)
class Refs:
    """QBO ids the engine resolved for the names in `Needs` (by name)."""

    customer_id: str
    items: dict[str, ItemRef] = field(default_factory=dict)
    tax_codes: dict[str, str] = field(default_factory=dict)
    terms: dict[str, str] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    departments: dict[str, str] = field(default_factory=dict)
    custom_fields: dict[str, str] = field(default_factory=dict)  # custom field name → DefinitionId
    us_automated_tax: bool = False
    us: bool = True  # US tax model (TAX/NON line codes); False → per-line TaxCode ids + GlobalTaxCalculation
    class_per_line: bool = False  # Preferences.AccountingInfoPrefs.ClassTrackingPerTxnLine
    # Preferences.CurrencyPrefs.HomeCurrency (None: not known, no currency check) and .MultiCurrencyEnabled
    home_currency: str | None = None
    multicurrency: bool = False
    customer_currency: str | None = None  # the resolved customer's CurrencyRef.value (None: home currency)


@dataclass(frozen=True, slots=True)
class CompanyFacts:
    """What mapping needs to know of the connected QBO company (CompanyInfo.Country, Preferences.CurrencyPrefs)."""

    country: str | None = None  # None: not known yet
    home_currency: str | None = None
    multicurrency: bool = False

    @property
    def us(self) -> bool | None:
        return None if self.country is None else self.country.upper() == "US"


def company_facts(preferences: dict[str, Any] | None, country: str | None = None) -> CompanyFacts:
    """CompanyFacts from a QBO Preferences object and CompanyInfo.Country.

    `Preferences.CurrencyPrefs.HomeCurrency` is a reference (`{"value": "USD"}`, python-quickbooks
    `CurrencyPrefs.class_dict = {"HomeCurrency": Ref}`); a bare code is accepted too.
    `MultiCurrencyEnabled` is a boolean (python-quickbooks defaults it to False).
    """
    cur = (preferences or {}).get("CurrencyPrefs") or {}
    home = cur.get("HomeCurrency")
    code = home.get("value") if isinstance(home, dict) else home
    return CompanyFacts(country=(str(country).upper() or None) if country else None,
                        home_currency=str(code).upper() if code else None,
                        multicurrency=cur.get("MultiCurrencyEnabled") in (True, "true"))


@dataclass(frozen=True, slots=True)
class QBODocument:
    entity: Entity
    payload: dict[str, Any]
    doc_number: str
    expected_total: Decimal
    tax: Decimal = ZERO  # the tax in expected_total (lines + tax = expected_total): what a dry-run preview shows


# ---------------------------------------------------------------------------------------------------------------
# the line plan (shared by needs() and build_document())

@dataclass(slots=True)
class _Planned:
    item: str | None  # QBO item name; None = unmapped
    cw_key: str  # what the user would map (for error messages)
    kind: str
    taxable: bool
    amount: Decimal  # exact CW amount, already sign-flipped for credit memos
    qty: Decimal | None
    unit_price: Decimal | None
    description: str
    service_date: Any = None


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
    if im.create_missing and _clean_name(key):
        return truncate(_clean_name(key), ITEM_NAME_MAX), key
    return (im.fallback or None), key


def _hours(value: Decimal | None, prefs: Prefs) -> str:
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


def _plan(inv: CWInvoice, prefs: Prefs) -> list[_Planned]:
    sign = Decimal(-1) if _flip(inv) else Decimal(1)
    planned: list[_Planned] = []
    groups: dict[tuple[Any, ...], tuple[_Planned, list[InvoiceLine]]] = {}
    detail = prefs.time.detail
    for line in inv.lines:
        item, key = item_for_line(line, prefs)
        taxable = line.taxable and inv.taxable
        if line.kind == "time" and detail != "detailed":
            gkey: tuple[Any, ...] = (item, key, taxable)
            if detail == "condensed":
                gkey += (line.ticket or "", line.work_role or "")
            if gkey not in groups:
                slot = _Planned(item, key, "time", taxable, ZERO, None, None, "")
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
        planned.append(_Planned(item, key, line.kind, taxable, sign * line.amount,
                                sign * line.quantity, line.unit_price, desc, line.service_date))
    # fill the grouped time lines
    for p, lines in groups.values():
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
    # an invoice with no detail but an amount becomes one line on the fallback item
    if not planned and inv.subtotal != 0:
        planned.append(_Planned(prefs.items.fallback or None, "invoice", "total", inv.taxable, sign * inv.subtotal,
                                None, None, f"ConnectWise invoice {inv.number}", None))
    _fit_to_subtotal(planned, sign * inv.subtotal, prefs)
    return planned


def _fit_to_subtotal(planned: list[_Planned], target: Decimal, prefs: Prefs) -> None:
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
        planned.append(_Planned(prefs.items.fallback or None, "subtotal difference", "adjustment", False, diff,
                                None, None, "Difference to the ConnectWise subtotal", None))


def _flip(inv: CWInvoice) -> bool:
    """Credit memos carry positive amounts in QBO: flip CW's signs when the document total is negative."""
    return inv.total < 0 or (inv.total == 0 and inv.subtotal < 0)


def entity_for(inv: CWInvoice) -> Entity:
    return "CreditMemo" if inv.is_credit else "Invoice"


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


def check_source(inv: CWInvoice) -> None:
    """Refuse an invoice whose ConnectWise record cannot be posted as sent (no total, no invoice number)."""
    problems = inv.extra.get(PROBLEMS) if isinstance(inv.extra, dict) else None
    if problems:
        raise MappingError("; ".join(str(p) for p in problems),
                           "complete the invoice in ConnectWise (re-open, fix, close) and sync again")


_NO_LINES = "invoice {number} has no lines to send (zero subtotal, total {total})"
_NO_LINES_FIX = "QuickBooks needs at least one line: add a line in ConnectWise, or exclude the invoice"


def _is_empty(inv: CWInvoice) -> bool:
    return inv.subtotal == 0 and inv.total == 0 and all(ln.amount == 0 for ln in inv.lines)


def custom_values(inv: CWInvoice, prefs: Prefs) -> list[tuple[str, str]]:
    """(QBO custom field name, value) for each mapped CW field that has a value on this invoice."""
    source = {"customer_po": inv.customer_po, "reference": inv.reference, "site": inv.site_name}
    out: list[tuple[str, str]] = []
    for cw_field, qbo_name in prefs.fields.custom_fields.items():
        value = source[cw_field] if cw_field in source else inv.extra.get(cw_field)
        text = clean_name(str(value)) if value is not None else ""
        if not text:
            continue
        out.append((qbo_name, truncate(text, CUSTOM_FIELD_MAX)))
    return out


def _dimension(inv: CWInvoice, source: str, table: dict[str, str]) -> str | None:
    if source == "location" and inv.location_id is not None:
        return table.get(str(inv.location_id))
    if source == "department" and inv.department_id is not None:
        return table.get(str(inv.department_id))
    return None


def _tax_code_names(inv: CWInvoice, prefs: Prefs, plan: list[_Planned]) -> set[str]:
    """Non-US TaxCode names this invoice needs (static: from prefs only)."""
    tp = prefs.tax
    names: set[str] = set()
    for p in plan:
        if tp.mode == "line_item" or not p.taxable:
            names.add(tp.exempt_code)
        else:
            names.add(tp.codes.get(inv.tax_code or "", "") or tp.default_code)
    if tp.mode == "line_item" and inv.sales_tax:
        names.add(tp.exempt_code)
    if tp.on_mismatch == "adjust":
        names.add(tp.exempt_code)
    return {n for n in names if n}


def needs(inv: CWInvoice, prefs: Prefs, *, us: bool | None = None) -> Needs:
    """Every QBO object (by name) that building this invoice will reference. Pass `us=True` to skip tax codes."""
    check_source(inv)
    plan = _plan(inv, prefs)
    items = {p.item for p in plan if p.item}
    if prefs.tax.mode == "line_item" and inv.sales_tax:
        items.add(prefs.tax.line_item)
    if prefs.tax.on_mismatch == "adjust" and prefs.tax.adjustment_item:
        items.add(prefs.tax.adjustment_item)
    terms = {prefs.fields.terms_map[inv.terms]} if inv.terms and inv.terms in prefs.fields.terms_map else set()
    cls = _dimension(inv, prefs.fields.class_source, prefs.fields.class_map)
    dep = _dimension(inv, prefs.fields.department_source, prefs.fields.department_map)
    return Needs(
        customer=customer_spec(inv, prefs), items=items,
        tax_codes=set() if us else _tax_code_names(inv, prefs, plan),
        terms=terms, classes={cls} if cls else set(), departments={dep} if dep else set(),
        custom_fields={name for name, _ in custom_values(inv, prefs)})


# ---------------------------------------------------------------------------------------------------------------
# building

def qty_price(amount: Decimal, qty: Decimal | None, unit_price: Decimal | None) -> tuple[Decimal, Decimal]:
    """Qty and UnitPrice with Qty × UnitPrice == Amount exactly (QBO error 6070 otherwise); else 1 × Amount."""
    if qty is not None and unit_price is not None and qty < 0 and unit_price < 0:
        qty, unit_price = -qty, -unit_price  # a credit line flipped twice reads better as positive × positive
    if qty is not None and qty != 0:
        if unit_price is not None and qty * unit_price == amount:
            return qty, unit_price
        try:
            price = (amount / qty).quantize(_PRICE_QUANTUM).normalize()
        except InvalidOperation:
            price = None
        if price is not None and qty * price == amount:
            return qty, price
    return Decimal(1), amount


def _ref(table: dict[str, Any], name: str, what: str, fix: str) -> str:
    try:
        value = table[name]
    except KeyError:
        raise MappingError(f"no QuickBooks {what} resolved for '{name}'", fix) from None
    return value.id if isinstance(value, ItemRef) else str(value)


def render_note(template: str, inv: CWInvoice) -> str:
    values = {"number": inv.number, "id": inv.id, "company": inv.company.name, "identifier": inv.company.identifier,
              "type": inv.type, "reference": inv.reference or "", "customer_po": inv.customer_po or "",
              "site": inv.site_name or "", "date": inv.date.isoformat()}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise MappingError(f"fields.private_note template is invalid: {exc}",
                           f"use placeholders among {{{', '.join(values)}}}") from None


def _line_tax_code(p_taxable: bool, inv: CWInvoice, prefs: Prefs, refs: Refs, force_exempt: bool) -> dict[str, str]:
    tp = prefs.tax
    if refs.us:
        return {"value": "TAX" if (p_taxable and not force_exempt) else "NON"}
    if force_exempt or not p_taxable:
        if not tp.exempt_code:
            raise MappingError("a non-taxable line needs a QuickBooks tax code, and tax.exempt_code is not set",
                               "cwqbo prefs set tax.exempt_code 'Exempt' (a TaxCode name in QuickBooks)",
                               status="needs a tax code")
        name = tp.exempt_code
    else:
        cw_code = inv.tax_code or ""
        name = tp.codes.get(cw_code, "") or tp.default_code
        if not name:
            raise MappingError(f"ConnectWise tax code '{cw_code}' has no QuickBooks tax code mapped and no default",
                               f"cwqbo prefs map tax '{cw_code}' <QBO TaxCode>, or set tax.default_code",
                               status="needs a tax code")
    return {"value": _ref(refs.tax_codes, name, "tax code", "check tax.codes / tax.default_code / tax.exempt_code")}


def _sales_line(amount: Decimal, qty: Decimal | None, unit_price: Decimal | None, description: str, item: ItemRef,
                tax_code: dict[str, str], service_date: Any = None) -> dict[str, Any]:
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


def build_document(inv: CWInvoice, prefs: Prefs, refs: Refs) -> QBODocument:
    """The QBO payload for `inv`. Raises MappingError (reason + fix) for anything QBO would refuse or misbook."""
    number = doc_number(inv, prefs)
    if _is_empty(inv):
        raise MappingError(f"invoice {inv.number} has no lines and a zero total", "nothing to sync; exclude it")
    entity = entity_for(inv)
    sign = Decimal(-1) if _flip(inv) else Decimal(1)
    plan = _plan(inv, prefs)
    tp = prefs.tax
    line_item_tax = tp.mode == "line_item"
    lines: list[dict[str, Any]] = []
    for p in plan:
        if p.item is None:
            raise MappingError(f"no QuickBooks item for ConnectWise {p.kind} '{p.cw_key}'",
                               f"cwqbo prefs map item '{p.cw_key}' <QBO item>, or set items.fallback",
                               status="needs an item")
        item = refs.items.get(p.item)
        if item is None:
            raise MappingError(f"no QuickBooks item resolved for '{p.item}'", "the sync engine must resolve needs()")
        tax_code = _line_tax_code(p.taxable, inv, prefs, refs, force_exempt=line_item_tax)
        lines.append(_sales_line(p.amount, p.qty, p.unit_price, p.description, item, tax_code, p.service_date))
    sales_tax = money.round_cents(sign * inv.sales_tax)
    if line_item_tax and sales_tax:
        item = refs.items.get(tp.line_item)
        if item is None:
            raise MappingError(f"no QuickBooks item resolved for the tax line item '{tp.line_item}'",
                               "set tax.line_item to an existing item")
        lines.append(_sales_line(sales_tax, None, None, "Sales tax (ConnectWise)", item,
                                 _line_tax_code(False, inv, prefs, refs, force_exempt=True)))

    if not lines:  # e.g. a zero subtotal with only sales tax: QBO refuses a document without lines (2020)
        raise MappingError(_NO_LINES.format(number=inv.number, total=money.money_str(inv.total)), _NO_LINES_FIX)
    payload: dict[str, Any] = {"DocNumber": number, "TxnDate": inv.date.isoformat(),
                               "CustomerRef": {"value": refs.customer_id}}
    currency = currency_ref(inv, refs)
    if currency is not None:
        payload["CurrencyRef"] = currency
    if entity == "Invoice" and inv.due_date is not None:
        payload["DueDate"] = inv.due_date.isoformat()
    if inv.terms and inv.terms in prefs.fields.terms_map:
        payload["SalesTermRef"] = {"value": _ref(refs.terms, prefs.fields.terms_map[inv.terms], "term",
                                                 "check fields.terms_map")}
    memo_src = prefs.fields.customer_memo
    memo = inv.top_comment if memo_src == "top_comment" else inv.bottom_comment if memo_src == "bottom_comment" else None
    memo = clean_text(memo).strip() if memo else None
    if memo:
        payload["CustomerMemo"] = {"value": truncate(memo, CUSTOMER_MEMO_MAX)}
    if prefs.fields.private_note:
        note = clean_text(render_note(prefs.fields.private_note, inv)).strip()
        if note:
            payload["PrivateNote"] = truncate(note, PRIVATE_NOTE_MAX)
    custom = custom_values(inv, prefs)
    if custom:
        if len({n for n, _ in custom}) > CUSTOM_FIELDS_MAX:
            raise MappingError(f"{len(custom)} custom fields mapped; QuickBooks allows {CUSTOM_FIELDS_MAX}",
                               "remove some fields.custom_fields entries")
        payload["CustomField"] = [{"DefinitionId": _ref(refs.custom_fields, name, "custom field",
                                                        "enable the custom field in QuickBooks sales settings"),
                                   "Type": "StringType", "StringValue": value} for name, value in custom]
    cls = _dimension(inv, prefs.fields.class_source, prefs.fields.class_map)
    if cls:
        class_ref = {"value": _ref(refs.classes, cls, "class", "check fields.class_map")}
        if refs.class_per_line:
            for ln in lines:
                ln["SalesItemLineDetail"]["ClassRef"] = dict(class_ref)
        else:
            payload["ClassRef"] = class_ref
    dep = _dimension(inv, prefs.fields.department_source, prefs.fields.department_map)
    if dep:
        payload["DepartmentRef"] = {"value": _ref(refs.departments, dep, "department", "check fields.department_map")}
    bill, ship = _addr(inv.billing_address), _addr(inv.shipping_address)
    if bill:
        payload["BillAddr"] = bill
    if ship:
        payload["ShipAddr"] = ship
    payload["Line"] = lines
    if refs.us:
        if tp.mode == "pin_cw":
            payload["TxnTaxDetail"] = {"TotalTax": sales_tax}
        elif line_item_tax:
            payload["TxnTaxDetail"] = {"TotalTax": ZERO}
    else:
        payload["GlobalTaxCalculation"] = "TaxExcluded"
    lines_total = sum((ln["Amount"] for ln in lines), ZERO)
    if tp.mode == "qbo" or (not refs.us and not line_item_tax):
        expected = money.round_cents(sign * inv.total)  # QBO computes tax; reconcile() reports any drift
    else:
        expected = lines_total + (ZERO if line_item_tax else sales_tax)
        cw_total = money.round_cents(sign * inv.total)
        if expected != cw_total:
            # ConnectWise's own figures disagree (lines + tax ≠ total): syncing would put a total in QuickBooks
            # that ConnectWise never billed, so stop here rather than reconcile against the wrong number.
            raise MappingError(
                f"ConnectWise lines and tax add up to {money.money_str(expected)} but the invoice total is "
                f"{money.money_str(cw_total)}", "correct the invoice in ConnectWise (re-open, fix, close) and sync again")
    return QBODocument(entity=entity, payload=payload, doc_number=number, expected_total=expected,
                       tax=expected - lines_total)


def currency_ref(inv: CWInvoice, refs: Refs) -> dict[str, str] | None:
    """The document's CurrencyRef, or None to leave it out; MappingError when QuickBooks cannot book it.

    Intuit (Invoice.CurrencyRef, qbTypesDump): "This must be defined if multicurrency is enabled for the
    company"; Customer.CurrencyRef: "Once set, it cannot be changed … If not specified, currency for this
    customer is the home currency". So: multicurrency off → only home-currency invoices (no CurrencyRef);
    on → CurrencyRef always, and the customer must be in the invoice's currency. ConnectWise's invoice and
    CurrencyReference carry no exchange rate (pyconnectwise `Invoice`, `CurrencyReference`), so ExchangeRate
    is left to QuickBooks. An invoice with no currency in ConnectWise is taken to be in the home currency.
    """
    home = refs.home_currency
    if not home:
        return None  # the engine did not tell us the company's currency: nothing to check against
    home = home.upper()
    doc = (inv.currency or home).upper()
    if not refs.multicurrency:
        if doc != home:
            raise MappingError(
                f"invoice {inv.number} is in {doc} but the QuickBooks company works in {home} and multicurrency "
                f"is off; posting it would book {doc} amounts as {home}",
                "turn on multicurrency in QuickBooks (Settings › Account and settings › Advanced › Currency), or "
                "exclude the invoice and enter it by hand", status="invalid")
        return None
    customer = (refs.customer_currency or home).upper()
    if customer != doc:
        raise MappingError(
            f"invoice {inv.number} is in {doc} but its QuickBooks customer is in {customer} (a customer's currency "
            "never changes)",
            f"bill this company through a QuickBooks customer in {doc}: rename the existing customer in QuickBooks so "
            f"cwqbo creates one in {doc}, or exclude the invoice")
    return {"value": doc}


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Decimal):
        return obj.normalize()
    return obj


def payload_hash(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, exact numbers); same document → same hash → same requestid."""
    return hashlib.sha256(money.dumps(_canonical(payload)).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# reconciliation

@dataclass(frozen=True, slots=True)
class Reconciliation:
    ok: bool
    cw_total: Decimal
    qbo_total: Decimal
    difference: Decimal  # cw_total - qbo_total
    note: str
    action: Literal["none", "fail", "adjust", "warn"] = "none"


def _sales_lines_total(lines: Any) -> Decimal | None:
    if not isinstance(lines, list):
        return None
    return sum((money.to_decimal(ln.get("Amount")) for ln in lines
                if isinstance(ln, dict) and ln.get("DetailType") == "SalesItemLineDetail"), ZERO)


def reconcile(doc: QBODocument, qbo_obj: dict[str, Any], prefs: Prefs) -> Reconciliation:
    """Compare QBO's TotalAmt with what CW billed, exactly to the cent; `action` follows tax.on_mismatch.

    The reason is diagnosed from the figures alone, so the same document and the same QBO answer always get
    the same reason, whether QBO's answer is a create response or a later read or query: when QBO's line
    amounts (or, if its answer has no lines, the ones we sent) equal ours, the difference is tax — QBO's tax
    being `TxnTaxDetail.TotalTax` or, when its answer has none, its total less the lines; otherwise the lines
    themselves differ.
    """
    qbo_total = money.round_cents(money.to_decimal(qbo_obj.get("TotalAmt")))
    cw_total = money.round_cents(doc.expected_total)
    diff = cw_total - qbo_total
    if diff == 0:
        return Reconciliation(True, cw_total, qbo_total, ZERO, "totals match")
    sent_tax = (doc.payload.get("TxnTaxDetail") or {}).get("TotalTax")
    lines_sent = _sales_lines_total(doc.payload.get("Line")) or ZERO
    qbo_lines = _sales_lines_total(qbo_obj.get("Line"))
    if qbo_lines is None or qbo_lines == 0 and lines_sent != 0 and not qbo_obj.get("Line"):
        qbo_lines = lines_sent  # QBO's answer did not include its lines (a query of a few fields)
    if money.round_cents(qbo_lines) == money.round_cents(lines_sent):
        tax_detail = qbo_obj.get("TxnTaxDetail") or {}
        qbo_tax = (money.to_decimal(tax_detail["TotalTax"]) if tax_detail.get("TotalTax") is not None
                   else qbo_total - qbo_lines)
        expected_tax = cw_total - lines_sent
        why = (f"QuickBooks calculated tax {money.money_str(qbo_tax)} where ConnectWise charged "
               f"{money.money_str(expected_tax)} (tax engine" + (", pinned tax ignored)" if sent_tax is not None else ")"))
    else:
        why = (f"QuickBooks line amounts add up to {money.money_str(qbo_lines)} where cwqbo sent "
               f"{money.money_str(lines_sent)}")
    mode = prefs.tax.on_mismatch
    note = f"QuickBooks total {qbo_total} differs from ConnectWise {cw_total} by {diff}: {why}"
    return Reconciliation(False, cw_total, qbo_total, diff, note, mode)


def adjustment_line(diff: Decimal, refs: Refs, prefs: Prefs | None = None) -> dict[str, Any]:
    """A non-taxable line of `diff` on tax.adjustment_item, to add (sparse update) when on_mismatch == 'adjust'."""
    prefs = prefs or Prefs()
    name = prefs.tax.adjustment_item
    item = refs.items.get(name)
    if item is None:
        raise MappingError(f"no QuickBooks item resolved for the adjustment item '{name}'",
                           "set tax.adjustment_item to an existing item")
    if refs.us:
        code = {"value": "NON"}
    else:
        code = {"value": _ref(refs.tax_codes, prefs.tax.exempt_code, "tax code", "set tax.exempt_code")}
    amount = money.round_cents(diff)
    return _sales_line(amount, None, None, "Adjustment to match the ConnectWise total", item, code)


# ---------------------------------------------------------------------------------------------------------------
# readiness (list-unsynced)

_CHECK_ID = "(check)"  # the id readiness gives every reference it assumes the sync would resolve


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
    plan = _plan(inv, prefs)
    unmapped = sorted({f"{p.kind} '{p.cw_key}'" for p in plan if p.item is None})
    if unmapped:
        return "needs an item", "no item mapped for " + ", ".join(unmapped)
    try:
        n = needs(inv, prefs, us=us)
        refs = Refs(customer_id=_CHECK_ID, items={name: ItemRef(_CHECK_ID, name) for name in n.items},
                    tax_codes={name: _CHECK_ID for name in n.tax_codes}, terms={t: _CHECK_ID for t in n.terms},
                    classes={c: _CHECK_ID for c in n.classes}, departments={d: _CHECK_ID for d in n.departments},
                    custom_fields={f: _CHECK_ID for f in n.custom_fields}, us=us,
                    home_currency=company.home_currency if company else None,
                    multicurrency=company.multicurrency if company else False,
                    customer_currency=(inv.currency or None) if company and company.multicurrency else None)
        build_document(inv, prefs, refs)
    except MappingError as exc:
        return exc.status, exc.reason
    return "ready", ""
