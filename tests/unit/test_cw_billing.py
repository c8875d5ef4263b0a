"""ConnectWise line amounts from the schema's own fields (pyconnectwise `ProductItem`, `TimeEntry`, `ExpenseEntry`),
as ConnectWise bills them; a record without a total or a number fails its invoice, not the run."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cwqbo import money
from cwqbo.mapping.document import build_document, doc_number, needs, readiness
from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.refs import ItemRef, Refs
from cwqbo.connectwise.records import build_invoice
from cwqbo.settings.prefs import Prefs

D = Decimal


def raw(subtotal: str, tax: str = "0", **over: Any) -> dict[str, Any]:
    base = money.loads(f"""{{
      "id": 5001, "invoiceNumber": "INV-5001", "type": "Standard", "status": {{"id": 3, "name": "Closed"}},
      "company": {{"id": 19, "identifier": "AcmeDental", "name": "Acme Dental"}}, "date": "2026-09-01T00:00:00Z",
      "taxableFlag": true, "subtotal": {subtotal}, "salesTax": {tax}, "total": {D(subtotal) + D(tax)},
      "currency": {{"id": 1, "symbol": "$", "currencyCode": "USD", "name": "US Dollars"}}}}""")
    base.update(over)
    return base


def kinds_amounts(inv: Any) -> list[tuple[str, Decimal]]:
    return [(ln.kind, ln.amount) for ln in inv.lines]


# --- products: quantity − quantityCancelled, × price, − discount; no extPrice in the schema -----------------

def test_cancelled_quantity_is_not_billed() -> None:
    product = money.loads("""{"id": 1, "catalogItem": {"identifier": "SSD-1TB"}, "quantity": 5, "quantityCancelled": 2,
        "price": 120.00, "discount": 10.00, "billableOption": "Billable", "taxableFlag": true}""")
    inv = build_invoice(raw("350.00"), [product])
    assert kinds_amounts(inv) == [("product", D("350.00"))]  # 3 × 120 − 10, no adjustment line
    assert inv.lines[0].quantity == D("3")


def test_a_fully_cancelled_product_is_not_on_the_invoice() -> None:
    cancelled = money.loads("""{"id": 2, "catalogItem": {"identifier": "DOCK"}, "quantity": 1, "cancelledFlag": true,
        "price": 199.00, "billableOption": "Billable"}""")
    kept = money.loads("""{"id": 3, "catalogItem": {"identifier": "MOUSE"}, "quantity": 2, "price": 25.00}""")
    inv = build_invoice(raw("50.00"), [cancelled, kept])
    assert kinds_amounts(inv) == [("product", D("50.00"))]


def test_extprice_is_not_a_connectwise_field_and_is_ignored() -> None:
    product = money.loads("""{"id": 4, "catalogItem": {"identifier": "CABLE"}, "quantity": 4, "price": 2.50,
        "extPrice": 999.00}""")
    inv = build_invoice(raw("10.00"), [product])
    assert kinds_amounts(inv) == [("product", D("10.00"))]


# --- time: only invoice hours reach the invoice ---------------------------------------------------------------

def time_entry(**over: Any) -> dict[str, Any]:
    base = money.loads("""{"id": 31, "chargeToId": 9001, "chargeToType": "ServiceTicket",
        "member": {"id": 1, "name": "Jordan Lee"}, "workType": {"name": "Remote"}, "timeStart": "2026-08-28T14:00:00Z",
        "actualHours": 3.0, "hoursBilled": 3.0, "billableOption": "Billable", "notes": "Reset VPN",
        "hourlyRate": 150.00}""")
    base.update(over)
    return base


def test_agreement_covered_hours_are_not_billed() -> None:
    entry = time_entry(agreementHours=money.loads("2.0"), invoiceHours=money.loads("1.0"),
                       agreementAmount=money.loads("300.00"))
    inv = build_invoice(raw("150.00"), (), [entry])
    # before: 3 h × 150 = 450 and a −300 "invoice adjustment" line
    assert kinds_amounts(inv) == [("time", D("150.00"))]
    assert inv.lines[0].hours == D("1.0")


def test_agreement_hours_without_invoice_hours_are_subtracted() -> None:
    entry = time_entry(agreementHours=money.loads("2.5"))
    inv = build_invoice(raw("75.00"), (), [entry])
    assert kinds_amounts(inv) == [("time", D("75.00"))]


def test_time_fully_covered_by_the_agreement_is_not_an_invoice_line() -> None:
    covered = time_entry(id=32, agreementHours=money.loads("3.0"), invoiceHours=money.loads("0"))
    billed = time_entry(id=33, hoursBilled=money.loads("1.0"), actualHours=money.loads("1.0"))
    inv = build_invoice(raw("150.00"), (), [covered, billed])
    assert [ln.source_id for ln in inv.lines] == [33]


def test_no_default_billing_bills_nothing() -> None:
    inv = build_invoice(raw("0.00"), (), [time_entry(billableOption="NoDefault")])
    assert inv.lines == ()


def test_expense_bill_amount_is_used_when_there_is_no_invoice_amount() -> None:
    expense = money.loads("""{"id": 7, "type": {"name": "Mileage"}, "amount": 40.00, "billAmount": 46.00,
        "billableOption": "Billable", "date": "2026-08-28T00:00:00Z"}""")
    inv = build_invoice(raw("46.00"), (), (), [expense])
    assert kinds_amounts(inv) == [("expense", D("46.00"))]


# --- currency code from the CurrencyReference schema ------------------------------------------------------------

def test_currency_code_comes_from_currency_code_not_the_name() -> None:
    inv = build_invoice(raw("0.00", currency=money.loads('{"id": 2, "currencyCode": "cad", "name": "Canadian"}')))
    assert inv.currency == "CAD"
    assert build_invoice(raw("0.00", currency=money.loads('{"id": 2, "name": "US Dollars"}'))).currency is None


# --- no total / no number: that invoice fails with the reason -------------------------------------------------

def test_null_total_fails_the_invoice_with_the_reason() -> None:
    product = money.loads('{"id": 1, "catalogItem": {"identifier": "X"}, "quantity": 1, "price": 100.00}')
    inv = build_invoice(raw("100.00", total=None), [product])  # building never raises: the run goes on
    with pytest.raises(MappingError, match="INV-5001 without a total, so there is nothing to check"):
        needs(inv, Prefs())
    with pytest.raises(MappingError, match="without a total"):
        build_document(inv, Prefs(), Refs("1", items={"X": ItemRef("1", "X")}))
    status, reason = readiness(inv, Prefs())
    assert status == "invalid" and "without a total" in reason


def test_null_invoice_number_never_becomes_the_record_id() -> None:
    product = money.loads('{"id": 1, "catalogItem": {"identifier": "X"}, "quantity": 1, "price": 100.00}')
    inv = build_invoice(raw("100.00", invoiceNumber=None), [product])
    assert inv.number != "5001"
    with pytest.raises(MappingError, match="invoice id 5001 without an invoice number") as exc:
        doc_number(inv, Prefs())
    assert "\n" not in exc.value.explained()
    assert readiness(inv, Prefs())[0] == "invalid"


def test_a_sound_invoice_keeps_its_content_hash_shape() -> None:
    """The problem marker is only present on a broken record, so sound invoices hash as before."""
    inv = build_invoice(raw("0.00"))
    assert "problems" not in inv.extra
