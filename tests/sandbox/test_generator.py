"""Generated ConnectWise data: exact sums, the variety the sync must cope with, determinism and speed."""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal

from cwqbo import money
from cwqbo.sandbox.generator import CLOSED_STATUS_IDS, generate, line_amount


def test_lines_sum_exactly_and_total_is_subtotal_plus_tax() -> None:
    data = generate(3, 500)
    by_invoice: dict[int, Decimal] = defaultdict(Decimal)
    taxable: dict[int, Decimal] = defaultdict(Decimal)
    for p in data.products:
        amount = money.round_cents((p["quantity"] - p["quantityCancelled"]) * p["price"])
        by_invoice[p["invoice"]["id"]] += amount
        if p["taxableFlag"]:
            taxable[p["invoice"]["id"]] += amount
    for t in data.time_entries:  # covered time is not charged: invoiceHours x rate is
        charged = t["invoiceHours"] if t["billableOption"] == "Billable" else 0
        by_invoice[t["invoice"]["id"]] += money.round_cents(charged * t["hourlyRate"])
    for e in data.expenses:
        by_invoice[e["invoice"]["id"]] += e["invoiceAmount"]
    for inv in data.invoices:
        assert by_invoice[inv["id"]] == inv["subtotal"], inv["invoiceNumber"]
        assert inv["total"] == inv["subtotal"] + inv["salesTax"]
        assert inv["salesTax"] == money.round_cents(taxable[inv["id"]] * (Decimal("0.0825") if taxable[inv["id"]] else 0))
        for key in ("subtotal", "total", "salesTax"):
            assert isinstance(inv[key], Decimal) and inv[key] == inv[key].quantize(Decimal("0.01"))


def test_variety_the_sync_must_handle() -> None:
    data = generate(1, 400)
    invoices = data.invoices
    types = {i["type"] for i in invoices}
    assert {"Standard", "Agreement", "CreditMemo"} <= types
    assert all(i["total"] < 0 for i in invoices if i["type"] == "CreditMemo")
    names = {c["name"] for c in data.companies}
    assert {"Northwind Traders", "O'Brien & Søn", "Acme: West"} <= names
    assert any(i["company"]["name"] == "Northwind Traders" for i in invoices)
    assert sum(len(i["invoiceNumber"]) > 21 for i in invoices) == 1
    assert any(len(p["description"]) > 4000 for p in data.products)
    not_closed = sum(i["status"]["id"] not in CLOSED_STATUS_IDS for i in invoices)
    assert 0.05 * len(invoices) < not_closed < 0.15 * len(invoices)
    assert any(i["salesTax"] > 0 for i in invoices) and any(i["salesTax"] == 0 for i in invoices)
    with_all = [i for i in invoices if any(t["invoice"]["id"] == i["id"] for t in data.time_entries)
                and any(e["invoice"]["id"] == i["id"] for e in data.expenses)]
    assert with_all
    assert data.batches and all(i in {x["id"] for x in invoices} for i in data.batches[0]["invoiceIds"])


def test_time_and_products_carry_what_connectwise_bills() -> None:
    data = generate(2, 600)
    times = data.time_entries
    covered = [t for t in times if t["agreement"] and t["agreementHours"] > 0]
    assert covered and all(t["invoiceHours"] == t["hoursBilled"] - t["agreementHours"] for t in covered)
    assert any(t["invoiceHours"] == 0 and t["actualHours"] > 0 for t in covered)  # fully covered: charges nothing
    assert any(0 < t["invoiceHours"] < t["actualHours"] for t in covered)  # partly covered: the overage is charged
    no_charge = [t for t in times if t["billableOption"] == "NoCharge"]
    assert no_charge and all(line_amount("time", t) == 0 for t in no_charge)
    assert all(t["agreementAmount"] == money.round_cents(t["agreementHours"] * t["hourlyRate"]) for t in times)
    cancelled = [p for p in data.products if p["quantityCancelled"] > 0]
    assert cancelled and all(line_amount("product", p) == money.round_cents((p["quantity"] - 1) * p["price"])
                             for p in cancelled)
    assert data.other_gl["expense"] and data.other_gl["procurement"]
    assert not data.no_gl_invoice_ids, "the stuck invoice is opt-in"
    assert generate(2, 600, no_gl_invoice=True).no_gl_invoice_ids == [1006]


def test_same_seed_same_data_other_seed_different() -> None:
    a, b, c = generate(5, 100), generate(5, 100), generate(6, 100)
    assert money.dumps(a.invoices) == money.dumps(b.invoices)
    assert money.dumps(a.products) == money.dumps(b.products)
    assert money.dumps(a.time_entries) == money.dumps(b.time_entries)
    assert money.dumps(a.other_gl) == money.dumps(b.other_gl)
    assert money.dumps(a.invoices) != money.dumps(c.invoices)


def test_ten_thousand_invoices_are_fast() -> None:
    started = time.perf_counter()
    data = generate(1, 10_000)
    assert time.perf_counter() - started < 2.0
    assert len(data.invoices) == 10_000 and len({i["invoiceNumber"] for i in data.invoices}) == 10_000


def test_tiny_data_sets_work() -> None:
    data = generate(1, 1)
    assert len(data.invoices) == 1 and data.invoices[0]["invoiceNumber"]
