"""Records a test adds to the simulated ConnectWise, completed the way ConnectWise fills them.

`CWSimulator.add_invoice` takes only the fields a test cares about; these functions add every other field a
real invoice, product, time or expense line carries, with totals computed from the lines. `unposted_record`
is an invoice's row on the accounting interface's unposted list.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from cwqbo import money
from cwqbo.sandbox.generator import line_amount

KINDS = ("products", "time_entries", "expenses")
TOTAL_OF = {"products": "productTotal", "time_entries": "serviceTotal", "expenses": "expenseTotal"}
ID_SEQUENCE = {"products": "product", "time_entries": "time", "expenses": "expense"}


def fill_line(kind: str, line: dict[str, Any], *, invoice: dict[str, Any], company: dict[str, Any], day: str,
              stamp: dict[str, str], tax_rate: Decimal, take_id: Callable[[str], int]) -> tuple[Decimal, Decimal]:
    """Complete a line of `kind` in place; returns (its billed amount, the part of it that is taxable)."""
    line.setdefault("id", take_id(ID_SEQUENCE[kind]))
    line.setdefault("invoice", invoice)
    line.setdefault("company", company)
    line.setdefault("billableOption", "Billable")
    line.setdefault("_info", dict(stamp))
    taxable = Decimal("0")
    if kind == "products":
        line.setdefault("catalogItem", {"id": 1, "identifier": "MISC"})
        line.setdefault("description", line["catalogItem"]["identifier"])
        line["quantity"] = money.to_decimal(line.get("quantity", 1))
        line["price"] = money.to_decimal(line.get("price", 0))
        line["quantityCancelled"] = money.to_decimal(line.get("quantityCancelled", 0))
        line.setdefault("taxableFlag", tax_rate > 0)
        amount = line_amount("product", line)
        if line["taxableFlag"]:
            taxable = amount
    elif kind == "time_entries":
        line.setdefault("chargeToType", "ServiceTicket")
        line.setdefault("member", {"id": 101, "identifier": "jlee", "name": "Jordan Lee"})
        line.setdefault("workType", {"id": 1, "name": "Regular"})
        line.setdefault("workRole", {"id": 1, "name": "Engineer"})
        line.setdefault("timeStart", day)
        line["actualHours"] = money.to_decimal(line.get("actualHours", 1))
        line["hourlyRate"] = money.to_decimal(line.get("hourlyRate", 0))
        billable = line["billableOption"] == "Billable"
        line.setdefault("hoursBilled", line["actualHours"] if billable else Decimal("0"))
        line["agreementHours"] = money.to_decimal(line.get("agreementHours", 0))
        line.setdefault("agreementAmount", money.round_cents(line["agreementHours"] * line["hourlyRate"]))
        line.setdefault("invoiceHours", line["hoursBilled"] - line["agreementHours"] if billable else Decimal("0"))
        line.setdefault("notes", "")
        amount = line_amount("time", line)
    else:
        line.setdefault("type", {"id": 1, "name": "Mileage"})
        line.setdefault("date", day)
        line.setdefault("notes", "")
        line["amount"] = money.to_decimal(line.get("amount", 0))
        line.setdefault("invoiceAmount", line["amount"])
        amount = line_amount("expense", line)
    return amount, taxable


def fill_invoice(inv: dict[str, Any], totals: dict[str, Decimal], taxable: Decimal, *, tax_rate: Decimal,
                 company: dict[str, Any], day: str, stamp: dict[str, str]) -> None:
    """Complete an invoice in place from its line totals (fields a test set are kept)."""
    subtotal = sum(totals.values(), Decimal("0"))
    tax = money.round_cents(taxable * tax_rate)
    inv.setdefault("type", "CreditMemo" if subtotal < 0 else "Standard")
    for key, value in totals.items():
        inv.setdefault(key, value)
    inv.setdefault("subtotal", subtotal)
    inv.setdefault("salesTax", tax)
    inv.setdefault("total", inv["subtotal"] + inv["salesTax"])
    inv.setdefault("balance", inv["total"])
    inv.setdefault("agreementAmount", Decimal("0"))
    inv.setdefault("billToCompany", company)
    inv.setdefault("shipToCompany", company)
    inv.setdefault("applyToType", "All")
    inv.setdefault("dueDate", day)
    inv.setdefault("billingTerms", {"id": 1, "name": "Net 30"})
    inv.setdefault("taxCode", {"id": 1, "name": "Tax Exempt"} if tax_rate == 0 else {"id": 2, "name": "Sales Tax"})
    inv.setdefault("taxableFlag", tax_rate > 0)
    inv.setdefault("locationId", 1)
    inv.setdefault("departmentId", 10)
    for key in ("customerPO", "reference", "topComment", "bottomComment", "internalNotes"):
        inv.setdefault(key, "")
    inv.setdefault("currency", {"id": 1, "symbol": "$", "currencyCode": "USD", "name": "US Dollar"})
    inv.setdefault("_info", dict(stamp))


def unposted_record(inv: dict[str, Any], company: dict[str, Any], row_id: int) -> dict[str, Any]:
    """The invoice's `UnpostedInvoice` row (`row_id` is the row's own id, not the invoice's)."""
    return {"id": row_id, "billingLogId": inv["id"], "locationId": inv.get("locationId"),
            "departmentId": inv.get("departmentId"), "company": inv["company"],
            "accountNumber": company.get("accountNumber", ""), "billToCompany": inv.get("billToCompany"),
            "billToSite": inv.get("billingSite"), "shipToCompany": inv.get("shipToCompany"),
            "shipToSite": inv.get("shippingSite"), "invoiceNumber": inv["invoiceNumber"],
            "invoiceDate": inv.get("date"), "invoiceType": inv.get("type"), "description": inv.get("reference", ""),
            "billingTerms": inv.get("billingTerms"), "dueDate": inv.get("dueDate"),
            "currency": inv.get("currency"), "subTotal": inv["subtotal"], "total": inv["total"],
            "invoiceTaxableFlag": inv.get("taxableFlag", False), "taxCode": inv.get("taxCode"),
            "avalaraTaxFlag": False, "itemTaxableFlag": False, "salesTaxAmount": inv["salesTax"],
            "createdBy": (inv.get("_info") or {}).get("updatedBy", "jlee"),
            "dateClosed": (inv.get("_info") or {}).get("lastUpdated"), "_info": inv.get("_info")}
