"""ConnectWise's Accounting Interface read as data: unposted rows, GL exports, and whether an export holds exactly
the invoices we mean to batch. Pure functions; the calls live in `client.py`, the flow in `cw_batch.py`.

What the published REST schema says (pyconnectwise's generated models; ../shared/reference/connectwise-accounting.md):
- `UnpostedInvoice` rows have their own `id` and a `billingLogId`, the invoice (Billing Log) record id.
- `POST /finance/accounting/export` (`ExportAccountingBatchRequest`) answers a `GLExport` whose `transactions` carry
  `documentNumber`, `total` and `glEntryIds`, a comma-separated string of GL entry RecIDs. The export changes nothing.
- `POST /finance/accounting/batches` (`CreateAccountingBatchRequest`) takes those GL entry RecIDs as
  `processedRecordIds`; an `AccountingBatch` record never lists invoices, `/batches/{id}/entries` (`BatchEntry`) does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from cwqbo import money
from cwqbo.money import to_decimal

# GLExport lists that hold documents other than invoices: an export of "only our invoices" must leave them empty.
OTHER_DOCUMENTS = ("expenses", "expenseBills", "purchaseTransactions", "adjustmentTransactions",
                   "inventoryTransfers")


@dataclass(frozen=True, slots=True)
class UnpostedRow:
    """One row of `/finance/accounting/unpostedinvoices`."""

    row_id: int
    invoice_id: int  # billingLogId
    number: str


@dataclass(frozen=True, slots=True)
class Expected:
    """An invoice we mean to batch: its CW id, number and the total we put in QuickBooks."""

    cw_id: int
    number: str
    total: Decimal


@dataclass
class ExportCheck:
    """What a GL export holds, measured against what we asked for."""

    gl_ids: dict[int, list[int]] = field(default_factory=dict)  # cw_id → its GL entry ids (exact matches only)
    missing: list[Expected] = field(default_factory=list)  # asked for, not in the export (e.g. no GL entries)
    problems: list[str] = field(default_factory=list)  # any of these forbids batching anything

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.gl_ids)

    def all_gl_ids(self) -> list[int]:
        return sorted(i for ids in self.gl_ids.values() for i in ids)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


UNPOSTED_ROW_FIELDS = ("id", "billingLogId", "invoiceNumber")  # all `unposted_row` reads (asked for with `fields=`)


def unposted_row(raw: Mapping[str, Any]) -> UnpostedRow | None:
    """An unposted row, or None when it lacks its own id or its billingLogId (then it can't be linked)."""
    row_id, invoice_id = _int(raw.get("id")), _int(raw.get("billingLogId"))
    if row_id is None or invoice_id is None:
        return None
    return UnpostedRow(row_id=row_id, invoice_id=invoice_id, number=str(raw.get("invoiceNumber") or ""))


def export_invoice_id(row: UnpostedRow) -> int:
    """The id `ExportAccountingBatchRequest.includedInvoiceIds` takes for one unposted invoice.

    The schema leaves it open: the unposted row's own `id` or its `billingLogId`. We send the row id, because the
    sibling field `includedProductIds: list[str]` matches `UnpostedProcurement.unpostedProductId: str`, an
    unposted-row id rather than the product's. A wrong guess cannot batch anything wrong: `check_export` compares
    the export's document numbers and totals with ours before a single GL entry is batched, and refuses otherwise.
    """
    return row.row_id


def parse_gl_entry_ids(raw: Any) -> list[int]:
    """`GLExportTransaction.glEntryIds` ("101,102, 103") → [101, 102, 103]; ValueError on anything else."""
    if isinstance(raw, list):
        parts = [str(p) for p in raw]
    elif isinstance(raw, str):
        parts = [p for p in (s.strip() for s in raw.split(",")) if p]
    else:
        raise ValueError(f"glEntryIds is {type(raw).__name__}, not a comma-separated string")
    ids = []
    for part in parts:
        if not part.strip().isdigit():
            raise ValueError(f"glEntryIds holds {part!r}, not a GL entry id")
        ids.append(int(part))
    return ids


class _ExportTransaction(msgspec.Struct):
    documentNumber: Any = None
    total: Any = None
    glEntryIds: Any = None


class _ExportRead(msgspec.Struct):
    """The parts of a GLExport that `check_export` reads; the GL detail (most of its ~2 KB an invoice) is skipped."""

    transactions: list[_ExportTransaction] | None = None
    expenses: list[msgspec.Raw] | None = None
    expenseBills: list[msgspec.Raw] | None = None
    purchaseTransactions: list[msgspec.Raw] | None = None
    adjustmentTransactions: list[msgspec.Raw] | None = None
    inventoryTransfers: list[msgspec.Raw] | None = None


_EXPORT_DECODER = msgspec.json.Decoder(_ExportRead, float_hook=Decimal)
_EXPORT_TX = ("documentNumber", "total", "glEntryIds")


def decode_export(content: bytes) -> Any:
    """A GLExport answer as `check_export` reads it: a dict of the keys it uses, amounts exact.

    An answer of another shape (a transaction that is not an object, say) is decoded whole instead, so that
    `check_export` names what is wrong with it; ValueError when it is not JSON at all.
    """
    try:
        read = _EXPORT_DECODER.decode(content)
    except msgspec.ValidationError:
        return money.loads(content)
    out: dict[str, Any] = {}
    for key in _ExportRead.__struct_fields__:
        value = getattr(read, key)
        if value is None:
            continue
        if key == "transactions":
            value = [{k: getattr(tx, k) for k in _EXPORT_TX} for tx in value]
        out[key] = value
    return out


def check_export(export: Any, expected: Iterable[Expected]) -> ExportCheck:
    """Whether a GL export holds exactly our invoices, with our totals, and each one's GL entry ids.

    Anything we did not ask for (another document, an expense, a duplicate, a total that differs, a malformed or
    shared GL entry id) is a problem: the caller batches nothing. Invoices we asked for that the export lacks are
    `missing` (ConnectWise exports only invoices that have GL entries); the rest may still be batched.
    """
    want = {e.number: e for e in expected}
    check = ExportCheck()
    if not isinstance(export, Mapping):
        check.problems.append("ConnectWise's GL export is not an object")
        return check
    for key in OTHER_DOCUMENTS:
        others = export.get(key) or []
        if others:
            check.problems.append(f"the GL export also holds {len(others)} {key} entries that cwqbo did not ask for")
    transactions = export.get("transactions") or []
    if not isinstance(transactions, list):
        check.problems.append("the GL export's transactions are not a list")
        return check
    seen_numbers: set[str] = set()
    owner_of_gl: dict[int, str] = {}
    for tx in transactions:
        number = str(tx.get("documentNumber") or "") if isinstance(tx, Mapping) else ""
        exp = want.get(number)
        if exp is None:
            check.problems.append(f"the GL export holds document {number or '(no number)'}, which cwqbo did not "
                                  "ask for")
            continue
        if number in seen_numbers:
            check.problems.append(f"the GL export holds document {number} twice")
            continue
        seen_numbers.add(number)
        total = _total(tx.get("total"))
        if total is None or abs(total) != abs(exp.total):
            check.problems.append(f"the GL export's total for {number} is {tx.get('total')}, where QuickBooks "
                                  f"holds {exp.total}")
            continue
        try:
            ids = parse_gl_entry_ids(tx.get("glEntryIds"))
        except ValueError as exc:
            check.problems.append(f"the GL export's entry ids for {number} are unreadable: {exc}")
            continue
        if not ids:
            check.problems.append(f"the GL export lists no GL entry ids for {number}")
            continue
        for gl in ids:
            if gl in owner_of_gl and owner_of_gl[gl] != number:
                check.problems.append(f"GL entry {gl} is listed for both {owner_of_gl[gl]} and {number}")
            owner_of_gl[gl] = number
        check.gl_ids[exp.cw_id] = sorted(set(ids))
    check.missing = [e for n, e in want.items() if n not in seen_numbers]
    if len(check.missing) > 1 and not seen_numbers and not check.problems:
        # Several invoices, none exported: more likely ConnectWise reads includedInvoiceIds otherwise than
        # export_invoice_id assumes than that none of them has GL entries. Say both; batch nothing.
        check.problems.append(f"the GL export holds none of the {len(check.missing)} invoices cwqbo asked for "
                              "(either ConnectWise holds no GL entries for them, or it reads includedInvoiceIds as "
                              "another id than the unposted rows' own ids)")
    return check


def _total(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return to_decimal(value)
    except (TypeError, ValueError, ArithmeticError):
        return None
