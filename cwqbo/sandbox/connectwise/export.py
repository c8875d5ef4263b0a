"""GL export documents of the simulated ConnectWise: `GLExport`, `GLExportTransaction(Detail)`, `BatchEntry`.

Only fields of pyconnectwise's models (ConnectWise's published schema) are written; see `cw_gl` for the facts.
Reading of the fields used:
- `GLExportTransaction.id`: the unposted-invoice row id (the schema types it int; which id it carries is not
  documented — clients must link by `documentNumber`, which is the invoice number).
- `documentType`: the invoice's `type` (Standard, Agreement, CreditMemo, ...).
- `accountNumber`: the receivable account; `taxAccountNumber`: the sales-tax account.
- `detail`: one `GLExportTransactionDetail` per billed line (`id` = its GL entry id, `total` = signed amount).
- `glEntryIds`: every unbatched GL entry of the invoice (lines, tax, receivable), comma-separated.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from cwqbo.sandbox.connectwise.gl import AR_ACCOUNT, TAX_ACCOUNT, GLLedger
from cwqbo.sandbox.instants import instant

ZERO = Decimal("0")


def empty_export() -> dict[str, Any]:
    return {"adjustmentTransactions": [], "customers": [], "expenseBills": [], "expenses": [], "exportSettings": {},
            "inventoryTransfers": [], "purchaseTransactions": [], "transactions": []}


def transaction(ledger: GLLedger, inv: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One `GLExportTransaction` for `inv` made of `entries` (its GL entries being exported or batched)."""
    detail = []
    for e in entries:
        if e["kind"] in ("tax", "ar"):
            continue
        line: dict[str, Any] = {"id": e["id"], "accountNumber": e["accountNumber"], "description": e["description"],
                                "documentDate": inv.get("date"), "documentType": inv.get("type"),
                                "quantity": e.get("quantity"), "itemPrice": e.get("price"), "total": e["amount"],
                                "taxableFlag": bool(e.get("taxable")), "currency": inv.get("currency"),
                                "itemDescription": e["description"]}
        if e["kind"] == "product":
            line["product"] = {"id": e["lineId"], "description": e["description"]}
            if e.get("item"):
                line["item"] = {"id": e["lineId"], "identifier": e["item"]}
            if e.get("cost") is not None:
                line["cost"] = e["cost"]
        elif e["kind"] == "time":
            line["timeEntry"] = {"id": e["lineId"]}
        detail.append(line)
    return {"id": ledger.row_of.get(inv["id"]), "documentNumber": inv["invoiceNumber"],
            "documentType": inv.get("type"), "documentDate": inv.get("date"), "dueDate": inv.get("dueDate"),
            "company": inv.get("company"), "shipToCompany": inv.get("shipToCompany"),
            "billingTerms": inv.get("billingTerms"), "currency": inv.get("currency"), "taxCode": inv.get("taxCode"),
            "accountNumber": AR_ACCOUNT[0], "taxAccountNumber": TAX_ACCOUNT[0], "description": inv.get("reference"),
            "taxable": bool(inv.get("taxableFlag")), "total": inv["total"], "salesTax": inv.get("salesTax", ZERO),
            "detail": detail, "glEntryIds": ",".join(str(e["id"]) for e in entries)}


def other_documents(entries: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`GLExportExpense` and `GLExportPurchaseTransaction` documents for seeded expense/procurement entries."""
    expenses: dict[int, dict[str, Any]] = {}
    purchases: dict[int, dict[str, Any]] = {}
    for e in entries:
        ref = e.get("ref") or {}
        if e["source"] == "expense" and e["lineId"] not in expenses:
            expenses[e["lineId"]] = {"id": e["lineId"], "accountNumber": e["accountNumber"],
                                     "apAccountNumber": "2100", "documentDate": e.get("date"),
                                     "documentType": "ExpenseReport", "description": e.get("description"),
                                     "member": ref.get("member"), "total": e["amount"]}
        elif e["source"] == "procurement" and e["lineId"] not in purchases:
            purchases[e["lineId"]] = {"id": str(e["lineId"]), "apAccountNumber": "2000",
                                      "documentNumber": ref.get("poNumber"), "documentDate": e.get("date"),
                                      "description": e.get("description"), "company": ref.get("vendor"),
                                      "vendorNumber": ref.get("vendorNumber"), "total": e["amount"]}
    return list(expenses.values()), list(purchases.values())


def gl_export(ledger: GLLedger, invoices: dict[int, dict[str, Any]], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A `GLExport` of exactly `entries` (grouped per invoice, in entry order)."""
    out = empty_export()
    by_invoice: dict[int, list[dict[str, Any]]] = {}
    others = []
    for e in entries:
        if e["invoiceId"] is not None:
            by_invoice.setdefault(e["invoiceId"], []).append(e)
        else:
            others.append(e)
    out["transactions"] = [transaction(ledger, invoices[i], es) for i, es in by_invoice.items()]
    out["expenses"], out["purchaseTransactions"] = other_documents(others)
    return out


def select_export(ledger: GLLedger, invoices: dict[int, dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The unbatched GL entries an `ExportAccountingBatchRequest` selects (invoices, expenses, procurement)."""
    chosen: list[dict[str, Any]] = []
    if body.get("exportInvoicesFlag"):
        to_invoice = (ledger.invoice_of_row.get if ledger.export_id_field == "id"
                      else (lambda i: i if i in invoices else None))
        included = body.get("includedInvoiceIds")
        excluded = {to_invoice(i) for i in body.get("excludedInvoiceIds") or []}
        if included:
            ids = [to_invoice(i) for i in included]
            candidates = [invoices[i] for i in dict.fromkeys(i for i in ids if i is not None) if i in invoices]
        else:
            candidates = [invoices[i] for i in ledger.by_invoice if i in invoices]
        thru = instant(body.get("thruDate"))
        location = body.get("locationId")
        for inv in candidates:
            if inv["id"] in excluded or (location is not None and inv.get("locationId") != location):
                continue
            day = instant(inv.get("date"))
            if thru is not None and day is not None and day > thru:
                continue
            chosen += ledger.exportable(inv)
    for source, flag, inc_key, exc_key, conv in (
            ("expense", "exportExpensesFlag", "includedExpenseIds", "excludedExpenseIds", int),
            ("procurement", "exportProductsFlag", "includedProductIds", "excludedProductIds", str)):
        if not body.get(flag):
            continue
        inc = body.get(inc_key)
        exc = set(body.get(exc_key) or [])
        for e in ledger.state["entries"]:
            if e["source"] != source or e["batchId"] is not None:
                continue
            key = conv(e["lineId"])
            if (inc and key not in inc) or key in exc:
                continue
            chosen.append(e)
    return chosen


def batch_entry(e: dict[str, Any]) -> dict[str, Any]:
    """A `BatchEntry` row for GL entry `e`."""
    row: dict[str, Any] = {"id": e["id"], "accountNumber": e["accountNumber"], "accountType": e["accountType"],
                           "debit": e["debit"], "credit": e["credit"], "name": e.get("description") or "",
                           "item": e.get("item")}
    if e.get("cost") is not None:
        row["cost"] = e["cost"]
    if e["invoiceId"] is not None:
        row["invoice"] = {"id": e["invoiceId"], "identifier": e["invoiceNumber"]}
    elif e["source"] == "expense":
        row["expense"] = {"id": e["lineId"], "amount": e["amount"]}
    else:
        ref = e.get("ref") or {}
        row["purchaseOrder"] = {"id": ref.get("poId"), "name": ref.get("poNumber")}
    return row
