"""The simulated ConnectWise general-ledger side: GL entries, unposted invoice rows, GL export and batches.

Facts (../shared/reference/connectwise-accounting.md, pyconnectwise's models):
- A Closed invoice has GL entries: one per billed line, one per tax, one accounts-receivable entry. Their ids
  ("GL Entry RecIDs", `CreateAccountingBatchRequest.processedRecordIds`) come from their own sequence, far
  away from invoice ids and unposted-row ids.
- `UnpostedInvoice` rows have their own `id` and `billingLogId` = the invoice id. An invoice is unposted while
  Closed and while any of its GL entries is in no batch. A Closed invoice without GL entries stays on the
  unposted list for ever and never appears in an export (nexnow.net, "How to clear unposted invoices from
  ConnectWise's accounting interface").
- `POST /finance/accounting/export` reads, changes nothing; `GLExportTransaction.glEntryIds` is a comma-separated
  string. `POST /finance/accounting/batches` takes GL entry ids and answers a `GLExport` of what it batched.
  `AccountingBatch` records hold only id, identifier, closedFlag, the export flags and `_info`; `BatchEntry`
  rows (`/batches/{id}/entries`) list what a batch holds.
- Other tools' work is seeded too: unposted expense-report and procurement GL entries, so a wrong id batches
  something visibly wrong.

State is plain JSON-able data (Decimals for money) kept under the simulator's state key "gl"; `GLLedger`
adds the indexes. The caller holds the simulator's lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from cwqbo.sandbox.generator import line_amount

GL_ID_START = 50_000_001  # GL entry RecIDs
ROW_ID_START = 7_000_001  # UnpostedInvoice.id
ZERO = Decimal("0")

AR_ACCOUNT = ("1200", "Accounts Receivable")
TAX_ACCOUNT = ("2200", "Sales Tax Payable")
REVENUE_ACCOUNTS = {"product": ("4000", "Product Sales"), "time": ("4100", "Service Revenue"),
                    "expense": ("4200", "Reimbursed Expenses"), "agreement": ("4300", "Agreement Revenue")}
EXPENSE_ACCOUNTS = (("6100", "Travel Expense"), ("2100", "Employee Reimbursements Payable"))
PROCUREMENT_ACCOUNTS = (("1300", "Inventory"), ("2000", "Accounts Payable"))
EXPORT_ID_FIELDS = ("id", "billingLogId")


def empty_state() -> dict[str, Any]:
    return {"entries": [], "rows": [], "no_gl": [], "batches": [],
            "next": {"gl": GL_ID_START, "row": ROW_ID_START, "batch": 1},
            "settings": {"export_invoice_id_field": "id"}}


class GLError(Exception):
    """A refusal: `field` names the request field, `code` ConnectWise's error code."""

    def __init__(self, message: str, field: str, code: str = "InvalidField") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def _sides(amount: Decimal, natural: str) -> tuple[Decimal, Decimal]:
    """(debit, credit) for an amount whose natural side is `natural` ("debit"/"credit"); negatives swap sides."""
    if (amount >= 0) == (natural == "debit"):
        return abs(amount), ZERO
    return ZERO, abs(amount)


class GLLedger:
    """GL entries and batches over `state` (see the module docstring)."""

    def __init__(self, state: dict[str, Any], invoices: Callable[[], dict[int, dict[str, Any]]],
                 is_closed: Callable[[dict[str, Any]], bool], now: Callable[[], str]) -> None:
        self.state = state
        self._invoices = invoices
        self._is_closed = is_closed
        self._now = now
        self.reindex()

    # -- indexes --------------------------------------------------------------------------------------

    def reindex(self) -> None:
        st = self.state
        self.by_id: dict[int, dict[str, Any]] = {e["id"]: e for e in st["entries"]}
        self.by_invoice: dict[int, list[dict[str, Any]]] = {}
        for e in st["entries"]:
            if e["invoiceId"] is not None:
                self.by_invoice.setdefault(e["invoiceId"], []).append(e)
        self.row_of: dict[int, int] = {inv: row for inv, row in st["rows"]}
        self.invoice_of_row: dict[int, int] = {row: inv for inv, row in st["rows"]}
        self.no_gl: set[int] = set(st["no_gl"])
        self.batch_by_id: dict[int, dict[str, Any]] = {b["id"]: b for b in st["batches"]}

    def _take(self, kind: str) -> int:
        value: int = self.state["next"][kind]
        self.state["next"][kind] = value + 1
        return value

    @property
    def export_id_field(self) -> str:
        return str(self.state["settings"]["export_invoice_id_field"])

    def set_export_id_field(self, value: str) -> None:
        if value not in EXPORT_ID_FIELDS:
            raise ValueError(f"export_invoice_id_field must be one of {', '.join(EXPORT_ID_FIELDS)}")
        self.state["settings"]["export_invoice_id_field"] = value

    # -- posting --------------------------------------------------------------------------------------

    def _add(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry["id"] = self._take("gl")
        entry.setdefault("batchId", None)
        self.state["entries"].append(entry)
        self.by_id[entry["id"]] = entry
        if entry["invoiceId"] is not None:
            self.by_invoice.setdefault(entry["invoiceId"], []).append(entry)
        return entry

    def ensure_row(self, invoice_id: int) -> int:
        row = self.row_of.get(invoice_id)
        if row is None:
            row = self._take("row")
            self.state["rows"].append([invoice_id, row])
            self.row_of[invoice_id] = row
            self.invoice_of_row[row] = invoice_id
        return row

    def post_invoice(self, inv: dict[str, Any], lines: dict[str, list[dict[str, Any]]]) -> None:
        """Create the GL entries of a just-Closed invoice (nothing if it has some already or keeps none)."""
        inv_id = inv["id"]
        self.ensure_row(inv_id)
        if inv_id in self.no_gl or self.by_invoice.get(inv_id):
            return
        base = {"source": "invoice", "invoiceId": inv_id, "invoiceNumber": inv["invoiceNumber"],
                "date": inv.get("date")}
        for kind, rows in (("product", lines.get("products", [])), ("time", lines.get("time_entries", [])),
                           ("expense", lines.get("expenses", []))):
            for line in rows:
                amount = line_amount(kind, line)
                if amount == 0:
                    continue
                account_kind = "agreement" if kind == "product" and line.get("agreement") else kind
                number, name = REVENUE_ACCOUNTS[account_kind]
                debit, credit = _sides(amount, "credit")
                item = None
                if kind == "product":
                    item = (line.get("catalogItem") or {}).get("identifier")
                elif kind == "time":
                    item = (line.get("workType") or {}).get("name")
                else:
                    item = (line.get("type") or {}).get("name")
                self._add({**base, "kind": kind, "lineId": line["id"], "accountNumber": number, "accountType": name,
                           "debit": debit, "credit": credit, "amount": amount, "item": item,
                           "description": _describe(kind, line), "quantity": _quantity(kind, line),
                           "price": _price(kind, line), "taxable": bool(line.get("taxableFlag")),
                           "cost": line.get("cost") if kind == "product" else None})
        tax = inv.get("salesTax") or ZERO
        if tax != 0:
            debit, credit = _sides(tax, "credit")
            self._add({**base, "kind": "tax", "lineId": None, "accountNumber": TAX_ACCOUNT[0],
                       "accountType": TAX_ACCOUNT[1], "debit": debit, "credit": credit, "amount": tax,
                       "item": (inv.get("taxCode") or {}).get("name"), "description": "Sales tax"})
        debit, credit = _sides(inv["total"], "debit")
        self._add({**base, "kind": "ar", "lineId": None, "accountNumber": AR_ACCOUNT[0], "accountType": AR_ACCOUNT[1],
                   "debit": debit, "credit": credit, "amount": inv["total"], "item": None,
                   "description": inv["invoiceNumber"]})

    def unpost_invoice(self, invoice_id: int) -> None:
        """A re-opened invoice loses its GL entries, unless part of them is already batched."""
        entries = self.by_invoice.get(invoice_id) or []
        if not entries or any(e["batchId"] is not None for e in entries):
            return
        gone = {e["id"] for e in entries}
        self.state["entries"] = [e for e in self.state["entries"] if e["id"] not in gone]
        for id_ in gone:
            self.by_id.pop(id_, None)
        self.by_invoice.pop(invoice_id, None)

    def keep_without_gl(self, invoice_id: int) -> None:
        """Seed an invoice that ConnectWise closed without GL entries (stays unposted, never exported)."""
        self.ensure_row(invoice_id)
        if invoice_id not in self.no_gl:
            self.no_gl.add(invoice_id)
            self.state["no_gl"].append(invoice_id)

    def seed_other(self, source: str, records: Iterable[dict[str, Any]]) -> None:
        """Other tools' unposted work: expense reports ("expense") or procurement ("procurement") GL pairs."""
        accounts = EXPENSE_ACCOUNTS if source == "expense" else PROCUREMENT_ACCOUNTS
        for rec in records:
            amount = rec["amount"]
            for (number, name), natural in zip(accounts, ("debit", "credit")):
                debit, credit = _sides(amount, natural)
                self._add({"source": source, "invoiceId": None, "kind": source, "lineId": rec["id"],
                           "accountNumber": number, "accountType": name, "debit": debit, "credit": credit,
                           "amount": amount, "item": rec.get("item"), "description": rec.get("description"),
                           "date": rec.get("date"), "ref": rec})

    # -- queries --------------------------------------------------------------------------------------

    def entries_of(self, invoice_id: int) -> list[dict[str, Any]]:
        return list(self.by_invoice.get(invoice_id) or [])

    def is_unposted(self, inv: dict[str, Any]) -> bool:
        if not self._is_closed(inv):
            return False
        if inv["id"] in self.no_gl:
            return True
        entries = self.by_invoice.get(inv["id"])
        return not entries or any(e["batchId"] is None for e in entries)

    def exportable(self, inv: dict[str, Any]) -> list[dict[str, Any]]:
        """The invoice's GL entries in no batch (empty if it is not Closed)."""
        if not self._is_closed(inv):
            return []
        return [e for e in self.by_invoice.get(inv["id"]) or [] if e["batchId"] is None]

    # -- batches --------------------------------------------------------------------------------------

    def create_batch(self, identifier: str, entry_ids: list[int], flags: dict[str, bool]) -> dict[str, Any]:
        now = self._now()
        batch: dict[str, Any] = {"id": self._take("batch"), "batchIdentifier": identifier, "closedFlag": False,
                 "exportInvoicesFlag": bool(flags.get("exportInvoicesFlag")),
                 "exportExpensesFlag": bool(flags.get("exportExpensesFlag")),
                 "exportProductsFlag": bool(flags.get("exportProductsFlag")),
                 "_info": {"dateEntered": now, "lastUpdated": now, "enteredBy": "cwqbo-api", "updatedBy": "cwqbo-api"}}
        self.state["batches"].append(batch)
        self.batch_by_id[batch["id"]] = batch
        for id_ in entry_ids:
            self.by_id[id_]["batchId"] = batch["id"]
        return batch

    def check_batchable(self, raw: Any) -> list[int]:
        """The GL entry ids of a batch request, or GLError (missing/empty, not a GL entry, already batched)."""
        if not isinstance(raw, list) or not raw:
            raise GLError("processedRecordIds may not be empty", "processedRecordIds", "NullValue")
        ids: list[int] = []
        for value in raw:
            if isinstance(value, bool) or not isinstance(value, int):
                raise GLError(f"processedRecordIds contains an invalid id {value!r}", "processedRecordIds")
            if value not in ids:
                ids.append(value)
        for id_ in ids:
            entry = self.by_id.get(id_)
            if entry is None:
                raise GLError(f"GL entry recId {id_} not found", "processedRecordIds")
            if entry["batchId"] is not None:
                batch = self.batch_by_id[entry["batchId"]]
                raise GLError(f"GL entry {id_} has already been exported in batch {batch['batchIdentifier']}",
                              "processedRecordIds", "AlreadyExported")
        return ids

    def delete_batch(self, batch_id: int) -> bool:
        batch = self.batch_by_id.pop(batch_id, None)
        if batch is None:
            return False
        self.state["batches"] = [b for b in self.state["batches"] if b["id"] != batch_id]
        for e in self.state["entries"]:
            if e["batchId"] == batch_id:
                e["batchId"] = None
        return True

    def batch_entries(self, batch_id: int) -> list[dict[str, Any]]:
        return [e for e in self.state["entries"] if e["batchId"] == batch_id]

    def invoices_in_batch(self, batch_id: int) -> list[int]:
        seen: list[int] = []
        for e in self.batch_entries(batch_id):
            if e["invoiceId"] is not None and e["invoiceId"] not in seen:
                seen.append(e["invoiceId"])
        return seen


def _describe(kind: str, line: dict[str, Any]) -> str:
    if kind == "product":
        return str(line.get("description") or "")
    if kind == "time":
        return str(line.get("notes") or "")
    return str(line.get("notes") or "")


def _quantity(kind: str, line: dict[str, Any]) -> Decimal | None:
    if kind == "product":
        return Decimal(line.get("quantity") or 0) - Decimal(line.get("quantityCancelled") or 0)
    if kind == "time":
        return Decimal(line.get("invoiceHours") or 0)
    return Decimal(1)


def _price(kind: str, line: dict[str, Any]) -> Decimal | None:
    if kind == "product":
        return Decimal(line.get("price") or 0)
    if kind == "time":
        return Decimal(line.get("hourlyRate") or 0)
    return line_amount(kind, line)


def iso_now(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
