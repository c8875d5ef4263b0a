"""Domain records shared by the ConnectWise client, the local cache, mapping and the sync engine.

A CWInvoice is what we know of one ConnectWise invoice, with its line detail, in exact Decimal.
It round-trips through JSON (for the SQLite cache) without losing a digit.
"""

from __future__ import annotations

import hashlib
import msgspec
import datetime as _dt
from datetime import date
from decimal import Decimal
from typing import Any, Literal


VOLATILE_FIELDS = ("status_id", "status_name", "last_updated")

# `CWInvoice.extra` key: why ConnectWise's record cannot become a QBO document (e.g. no total, no number).
# Only present when there is a problem, so the content hash of every sound invoice is unchanged.
PROBLEMS = "problems"

LineKind = Literal["product", "time", "expense", "agreement", "adjustment", "total"]


# The records are msgspec Structs, not dataclasses: frozen alike, but built in C (a 16-field InvoiceLine in ~0.2 µs,
# not ~3.6) and, with gc=False, never walked by the cyclic collector. That is safe because none can be part of a
# cycle: their fields are numbers, text, dates, other records and `extra`'s plain JSON values.
class CompanyRef(msgspec.Struct, frozen=True, gc=False):
    id: int
    identifier: str
    name: str


class Address(msgspec.Struct, frozen=True, gc=False):
    line1: str = ""
    line2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = ""


class InvoiceLine(msgspec.Struct, frozen=True, gc=False):
    """One billable line. `amount` is the extended amount with CW's sign (negative on credits)."""

    kind: LineKind
    source_id: int | None
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    taxable: bool
    item_key: str  # product identifier, work type / role name, expense type name, or "" for agreement/adjustment
    service_date: date | None = None
    # time-entry detail (kind == "time")
    member: str | None = None
    work_type: str | None = None
    work_role: str | None = None
    ticket: str | None = None  # e.g. "ServiceTicket #1234"
    notes: str | None = None
    hours: Decimal | None = None
    # expense detail (kind == "expense")
    expense_type: str | None = None


class CWInvoice(msgspec.Struct, frozen=True, gc=False):
    id: int
    number: str
    type: str  # Standard, Agreement, CreditMemo, DownPayment, Miscellaneous, Progress
    status_id: int
    status_name: str
    company: CompanyRef
    date: _dt.date
    due_date: _dt.date | None
    subtotal: Decimal
    sales_tax: Decimal
    total: Decimal
    lines: tuple[InvoiceLine, ...]
    bill_to: CompanyRef | None = None
    terms: str | None = None
    customer_po: str | None = None
    reference: str | None = None
    location_id: int | None = None
    department_id: int | None = None
    tax_code: str | None = None
    taxable: bool = True
    currency: str | None = None
    billing_address: Address | None = None
    shipping_address: Address | None = None
    top_comment: str | None = None
    bottom_comment: str | None = None
    site_name: str | None = None
    last_updated: str = ""
    extra: dict[str, Any] = msgspec.field(default_factory=dict)  # ticket/project numbers etc. for custom-field mapping

    @property
    def is_credit(self) -> bool:
        return self.type == "CreditMemo" or self.total < 0

    def content_hash(self) -> str:
        """Stable hash of what the QBO document is made from; detects invoices edited since they were synced.

        Bookkeeping fields (status, last-updated time) are left out: re-opening and re-closing an invoice
        without editing it is not a change to send to QuickBooks.
        """
        return invoice_json_text_and_hash(self)[1]


def invoice_to_json(inv: CWInvoice) -> dict[str, Any]:
    """Plain JSON-safe dict: Decimals and dates as strings (the cache's record, read back)."""
    record: dict[str, Any] = msgspec.json.decode(invoice_json_text(inv))
    return record


def invoice_json_text(inv: CWInvoice) -> str:
    """Compact JSON text of the record (Decimals and dates as strings): what the cache stores."""
    return invoice_json_text_and_hash(inv)[0]


_encode = msgspec.json.Encoder().encode


def invoice_json_text_and_hash(inv: CWInvoice) -> tuple[str, str]:
    """The cache's JSON text of `inv` and `inv.content_hash()`, from one walk and one encoding of the record.

    The hash covers the record without its bookkeeping fields; the stored text is those very bytes with the
    bookkeeping fields appended, so the record is encoded once, not once for the cache and again for the hash.
    msgspec walks and encodes it in C; the bytes are those `json.dumps(ensure_ascii=False)` wrote of the same
    record before (Decimals as `str()`, dates ISO), so every hash a ledger already holds still matches.
    """
    _refuse_floats(inv.extra)
    record = msgspec.to_builtins(inv, str_keys=True)
    volatile = {k: record.pop(k) for k in VOLATILE_FIELDS}
    kept = _encode(record)
    return (kept[:-1] + b"," + _encode(volatile)[1:]).decode(), hashlib.sha256(kept).hexdigest()[:32]


def _refuse_floats(value: Any) -> None:
    """`extra` is the one untyped part of a record: a float there would be stored as if it were exact."""
    if isinstance(value, float):
        raise TypeError(f"refusing float {value!r} in an invoice record: use Decimal")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _refuse_floats(item)


_LINE_DECIMALS = frozenset({"quantity", "unit_price", "amount", "hours"})


def _line_from_json(d: dict[str, Any]) -> InvoiceLine:
    kw: dict[str, Any] = {}
    for name in InvoiceLine.__struct_fields__:
        v = d.get(name)
        if v is not None:
            if name in _LINE_DECIMALS:
                v = Decimal(v)
            elif name == "service_date":
                v = date.fromisoformat(v)
        kw[name] = v
    return InvoiceLine(**kw)


def invoice_from_json(d: dict[str, Any]) -> CWInvoice:
    kw: dict[str, Any] = {}
    for name in CWInvoice.__struct_fields__:
        if name not in d:
            continue
        v = d[name]
        if v is None:
            kw[name] = None
        elif name in ("subtotal", "sales_tax", "total"):
            kw[name] = Decimal(v)
        elif name in ("date", "due_date"):
            kw[name] = date.fromisoformat(v)
        elif name in ("company", "bill_to"):
            kw[name] = CompanyRef(**v)
        elif name in ("billing_address", "shipping_address"):
            kw[name] = Address(**v)
        elif name == "lines":
            kw[name] = tuple(_line_from_json(x) for x in v)
        else:
            kw[name] = v
    return CWInvoice(**kw)
