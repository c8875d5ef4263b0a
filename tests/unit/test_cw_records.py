"""build_invoice: raw ConnectWise JSON → CWInvoice whose lines always sum to the subtotal, in exact cents."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cwqbo import money
from cwqbo.connectwise.records import build_invoice
from cwqbo.errors import RemoteError
from cwqbo.models import invoice_from_json, invoice_to_json

D = Decimal


def raw_invoice(**over: Any) -> dict[str, Any]:
    # JSON text through money.loads, exactly as the client receives it
    base = money.loads("""{
      "id": 4711, "invoiceNumber": "INV-10432", "type": "Standard",
      "status": {"id": 3, "name": "Closed"},
      "company": {"id": 19, "identifier": "AcmeDental", "name": "Acme Dental"},
      "billToCompany": {"id": 19, "identifier": "AcmeDental", "name": "Acme Dental"},
      "billingSite": {"id": 4, "name": "Main"}, "billingTerms": {"id": 1, "name": "Net 30"},
      "reference": "Ticket #7000", "customerPO": "PO-55", "date": "2026-09-01T00:00:00Z",
      "dueDate": "2026-10-01T00:00:00Z", "locationId": 2, "departmentId": 11, "taxableFlag": true,
      "taxCode": {"id": 2, "name": "Sales Tax 8.25%"}, "currency": {"id": 1, "isoCode": "USD", "name": "US Dollar"},
      "serviceTotal": 290.00, "expenseTotal": 42.10, "productTotal": 579.98, "agreementAmount": 0.00,
      "serviceAdjustmentAmount": 0.00, "subtotal": 912.08, "salesTax": 47.85, "total": 959.93,
      "billingSiteAddressLine1": "1 Main St", "billingSiteCity": "Austin", "billingSiteState": {"identifier": "TX",
      "name": "TX"}, "billingSiteZip": "78701",
      "_info": {"lastUpdated": "2026-09-02T10:00:00Z"}}""")
    base.update(over)
    return base


PRODUCTS = money.loads("""[
  {"id": 2, "catalogItem": {"id": 2, "identifier": "MON-27"}, "description": "27 inch monitor",
   "customerDescription": "27\\" monitor", "sequenceNumber": 2, "quantity": 2, "price": 289.99, "discount": 0.00,
   "billableOption": "Billable", "taxableFlag": true, "invoice": {"id": 4711}},
  {"id": 9, "catalogItem": {"id": 5, "identifier": "CABLE-C6"}, "description": "Cat6", "sequenceNumber": 1,
   "quantity": 3, "price": 4.35, "discount": 0.00, "billableOption": "DoNotBill", "taxableFlag": true,
   "invoice": {"id": 4711}}
]""")
TIMES = money.loads("""[
  {"id": 31, "chargeToId": 7000, "chargeToType": "ServiceTicket", "member": {"id": 101, "identifier": "jlee",
   "name": "Jordan Lee"}, "workType": {"id": 1, "name": "Regular"}, "workRole": {"id": 2, "name": "Senior Engineer"},
   "timeStart": "2026-08-28T14:00:00Z", "actualHours": 2.1, "hoursBilled": 2.00, "billableOption": "Billable",
   "notes": "Replaced failing switch", "hourlyRate": 145.00, "invoice": {"id": 4711}},
  {"id": 32, "chargeToId": 7000, "chargeToType": "ServiceTicket", "member": {"id": 102, "name": "Alex Smith"},
   "workType": {"id": 3, "name": "Remote"}, "workRole": {"id": 3, "name": "Help Desk"}, "actualHours": 0.5,
   "hoursBilled": 0.5, "billableOption": "NoCharge", "notes": "Follow-up call", "hourlyRate": 95.00,
   "invoice": {"id": 4711}}
]""")
EXPENSES = money.loads("""[
  {"id": 7, "chargeToId": 7000, "chargeToType": "ServiceTicket", "type": {"id": 1, "name": "Mileage"},
   "member": {"id": 101, "name": "Jordan Lee"}, "amount": 40.00, "invoiceAmount": 42.10, "billableOption": "Billable",
   "date": "2026-08-28T00:00:00Z", "notes": "Site visit mileage", "taxes": [], "invoice": {"id": 4711}}
]""")


def total(inv: Any) -> Decimal:
    return sum((ln.amount for ln in inv.lines), D("0"))


def test_standard_invoice_lines_kinds_amounts_and_header() -> None:
    inv = build_invoice(raw_invoice(), PRODUCTS, TIMES, EXPENSES)
    kinds = [ln.kind for ln in inv.lines]
    assert kinds == ["product", "time", "time", "expense"]  # DoNotBill product dropped, no balancing line
    prod, t1, t2, exp = inv.lines
    assert (prod.item_key, prod.quantity, prod.unit_price, prod.amount, prod.taxable) == \
        ("MON-27", D("2"), D("289.99"), D("579.98"), True)
    assert prod.description == '27" monitor'
    assert (t1.amount, t1.hours, t1.member, t1.work_type, t1.work_role, t1.item_key) == \
        (D("290.00"), D("2.00"), "Jordan Lee", "Regular", "Senior Engineer", "Regular")
    assert t1.ticket == "ServiceTicket #7000" and t1.notes == "Replaced failing switch"
    assert t1.service_date == date(2026, 8, 28) and t1.taxable is False
    assert t2.amount == D("0.00")  # no charge: shown, but free
    assert (exp.amount, exp.item_key, exp.expense_type) == (D("42.10"), "Mileage", "Mileage")
    assert total(inv) == inv.subtotal == D("912.08")
    assert (inv.total, inv.sales_tax, inv.number, inv.status_name) == (D("959.93"), D("47.85"), "INV-10432", "Closed")
    assert inv.date == date(2026, 9, 1) and inv.due_date == date(2026, 10, 1)
    assert inv.terms == "Net 30" and inv.tax_code == "Sales Tax 8.25%" and inv.currency == "USD"
    assert inv.billing_address is not None and inv.billing_address.state == "TX"
    assert inv.extra["tickets"] == ["ServiceTicket #7000"]
    assert all(isinstance(ln.amount, Decimal) for ln in inv.lines)


def test_round_trips_through_cache_json() -> None:
    inv = build_invoice(raw_invoice(), PRODUCTS, TIMES, EXPENSES)
    assert invoice_from_json(money.loads(money.dumps(invoice_to_json(inv)))) == inv


def test_records_are_immutable_and_left_to_reference_counting() -> None:
    """A built invoice can't be changed in place, and the cyclic collector never walks it: a sync holds a page of a
    thousand of them, and every full collection used to walk them all (they can hold no cycle)."""
    import gc

    import msgspec

    inv = build_invoice(raw_invoice(), PRODUCTS, TIMES, EXPENSES)
    records = [inv, inv.company, inv.bill_to, inv.billing_address, *inv.lines]
    assert not any(gc.is_tracked(r) for r in records)
    with pytest.raises(AttributeError):
        inv.total = D("0")  # type: ignore[misc]
    with pytest.raises(AttributeError):
        inv.lines[0].amount = D("0")  # type: ignore[misc]
    changed = msgspec.structs.replace(inv, total=D("1.00"))
    assert changed.total == D("1.00") and inv.total == D("959.93") and changed != inv


def test_agreement_invoice_gets_agreement_line_for_unitemised_amount() -> None:
    raw = raw_invoice(type="Agreement", agreementAmount=D("1500.00"), subtotal=D("1790.00"), salesTax=D("0"),
                      total=D("1790.00"), agreement={"id": 8, "name": "Managed Services Gold"}, taxableFlag=False)
    inv = build_invoice(raw, [], TIMES[:1], [])
    assert [ln.kind for ln in inv.lines] == ["time", "agreement"]
    ag = inv.lines[1]
    assert ag.amount == D("1500.00") and ag.description == "Agreement: Managed Services Gold"
    assert total(inv) == D("1790.00")


def test_manual_amount_becomes_adjustment_line_and_is_taxable_when_tax_is_unexplained() -> None:
    raw = raw_invoice(type="Miscellaneous", subtotal=D("250.00"), salesTax=D("20.63"), total=D("270.63"))
    inv = build_invoice(raw)
    assert len(inv.lines) == 1
    adj = inv.lines[0]
    assert (adj.kind, adj.amount, adj.taxable) == ("adjustment", D("250.00"), True)


def test_service_adjustment_is_named() -> None:
    raw = raw_invoice(serviceAdjustmentAmount=D("-40.00"), subtotal=D("872.08"))
    inv = build_invoice(raw, PRODUCTS, TIMES, EXPENSES)
    assert inv.lines[-1].kind == "adjustment"
    assert inv.lines[-1].description == "Service adjustment"
    assert inv.lines[-1].amount == D("-40.00")
    assert total(inv) == D("872.08")


def test_credit_memo_keeps_cw_signs() -> None:
    prods = [dict(PRODUCTS[0], quantity=D("-2"))]
    raw = raw_invoice(type="Credit Memo", subtotal=D("-579.98"), salesTax=D("-47.85"), total=D("-627.83"))
    inv = build_invoice(raw, prods)
    assert inv.type == "CreditMemo" and inv.is_credit
    assert [ln.amount for ln in inv.lines] == [D("-579.98")]


def test_credit_memo_with_positive_detail_is_mirrored_not_padded() -> None:
    raw = raw_invoice(type="CreditMemo", subtotal=D("-579.98"), salesTax=D("0"), total=D("-579.98"))
    inv = build_invoice(raw, PRODUCTS[:1])
    assert [(ln.kind, ln.amount, ln.quantity) for ln in inv.lines] == [("product", D("-579.98"), D("-2"))]


def test_status_name_from_statuses_lookup() -> None:
    raw = raw_invoice(status={"id": 4})
    assert build_invoice(raw, PRODUCTS, TIMES, EXPENSES, statuses={4: "Closed - Paid"}).status_name == "Closed - Paid"
    assert build_invoice(raw, PRODUCTS, TIMES, EXPENSES,
                         statuses=[{"id": 4, "name": "Paid"}]).status_name == "Paid"


@pytest.mark.parametrize("over, msg", [
    ({"id": None}, "without an id"),
    ({"company": None}, "no company"),
    ({"date": "yesterday"}, "unreadable date"),
    ({"subtotal": "12,00"}, "unreadable subtotal"),
])
def test_bad_payloads_are_remote_errors(over: dict[str, Any], msg: str) -> None:
    with pytest.raises(RemoteError, match=msg):
        build_invoice(raw_invoice(**over))


def test_float_amounts_are_refused() -> None:
    with pytest.raises(RemoteError, match="subtotal"):
        build_invoice(raw_invoice(subtotal=912.08))


cents = st.decimals(min_value=D("-5000"), max_value=D("5000"), places=2)


@settings(max_examples=200, deadline=None)
@given(subtotal=cents, agreement=cents,
       prods=st.lists(st.tuples(st.integers(-5, 20), cents), max_size=5),
       hours=st.lists(st.tuples(st.decimals(min_value=D("0"), max_value=D("12"), places=2), cents), max_size=5))
def test_lines_always_sum_to_subtotal(subtotal: Decimal, agreement: Decimal, prods: list[Any],
                                      hours: list[Any]) -> None:
    products = [{"id": i, "quantity": D(q), "price": p, "catalogItem": {"identifier": "X"}}
                for i, (q, p) in enumerate(prods)]
    times = [{"id": i, "hoursBilled": h, "hourlyRate": r, "workType": {"name": "Regular"}}
             for i, (h, r) in enumerate(hours)]
    inv = build_invoice(raw_invoice(subtotal=subtotal, agreementAmount=agreement, total=subtotal), products, times)
    assert total(inv) == subtotal
    assert all(ln.amount == ln.amount.quantize(D("0.01")) for ln in inv.lines)
