"""Issue 11: currency, control characters, time descriptions, a reconcile reason that depends on the data only,
readiness that runs the sync's own mapping, and previews whose lines and tax add up to the total."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from cwqbo import money
from cwqbo.connectwise.records import build_invoice
from cwqbo.mapping.customers import customer_display_name, customer_spec
from cwqbo.mapping.document import build_document, needs, readiness
from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.lines import item_for_line
from cwqbo.mapping.reconciliation import reconcile
from cwqbo.mapping.refs import CompanyFacts, ItemRef, Refs, company_facts
from cwqbo.models import CompanyRef, CWInvoice, InvoiceLine
from cwqbo.settings.prefs import Prefs

D = Decimal
ACME = CompanyRef(19, "AcmeDental", "Acme Dental")


def product(amount: str, key: str = "LAPTOP", description: str = "Laptop", taxable: bool = True) -> InvoiceLine:
    return InvoiceLine(kind="product", source_id=1, description=description, quantity=D(1), unit_price=D(amount),
                       amount=D(amount), taxable=taxable, item_key=key)


def inv(lines: list[InvoiceLine], *, tax: str = "0", **kw: Any) -> CWInvoice:
    subtotal = sum((ln.amount for ln in lines), D(0))
    base: dict[str, Any] = dict(id=501, number="INV501", type="Standard", status_id=1, status_name="Closed",
                                company=ACME, date=date(2026, 2, 1), due_date=None, subtotal=subtotal,
                                sales_tax=D(tax), total=subtotal + D(tax), lines=tuple(lines))
    base.update(kw)
    return CWInvoice(**base)


def refs(invoice: CWInvoice, prefs: Prefs | None = None, **kw: Any) -> Refs:
    n = needs(invoice, prefs or Prefs(), us=kw.get("us", True))
    return Refs(customer_id="58", items={i: ItemRef(f"i-{i}", i) for i in n.items},
                tax_codes={t: f"t-{t}" for t in n.tax_codes}, **kw)


# --- currency ---------------------------------------------------------------------------------------------------

CAD = inv([product("100.00")], currency="CAD")


def test_company_facts_read_currency_prefs_as_qbo_sends_them() -> None:
    facts = company_facts({"CurrencyPrefs": {"HomeCurrency": {"value": "USD"}, "MultiCurrencyEnabled": True}}, "US")
    assert facts == CompanyFacts(country="US", home_currency="USD", multicurrency=True) and facts.us is True
    assert company_facts({}, None) == CompanyFacts()


def test_foreign_invoice_with_multicurrency_off_fails_alone_with_the_fix() -> None:
    with pytest.raises(MappingError) as exc:
        build_document(CAD, Prefs(), refs(CAD, home_currency="USD"))
    assert exc.value.reason == ("invoice INV501 is in CAD but the QuickBooks company works in USD and multicurrency "
                                "is off; posting it would book CAD amounts as USD")
    assert "turn on multicurrency" in exc.value.fix
    home = inv([product("100.00")], currency="USD")
    assert "CurrencyRef" not in build_document(home, Prefs(), refs(home, home_currency="USD")).payload


def test_multicurrency_on_posts_the_invoice_currency_to_a_customer_in_it() -> None:
    doc = build_document(CAD, Prefs(), refs(CAD, home_currency="USD", multicurrency=True, customer_currency="CAD"))
    assert doc.payload["CurrencyRef"] == {"value": "CAD"} and "ExchangeRate" not in doc.payload
    assert doc.expected_total == D("100.00")
    assert customer_spec(CAD, Prefs()).currency == "CAD"  # a new customer is created in the invoice's currency


def test_multicurrency_on_and_a_customer_in_another_currency_is_a_clear_failure() -> None:
    with pytest.raises(MappingError, match="is in CAD but its QuickBooks customer is in USD"):
        build_document(CAD, Prefs(), refs(CAD, home_currency="USD", multicurrency=True, customer_currency="USD"))
    with pytest.raises(MappingError, match="is in CAD but its QuickBooks customer is in USD"):
        build_document(CAD, Prefs(), refs(CAD, home_currency="USD", multicurrency=True))  # no CurrencyRef = home
    home = inv([product("100.00")])
    doc = build_document(home, Prefs(), refs(home, home_currency="USD", multicurrency=True))
    assert doc.payload["CurrencyRef"] == {"value": "USD"}  # required when multicurrency is on


# --- control characters ---------------------------------------------------------------------------------------

def test_control_characters_never_reach_quickbooks() -> None:
    company = CompanyRef(7, "nul", "Acme\x00Dental\x1b[31m\x07")
    assert customer_display_name(company, Prefs()) == "Acme Dental [31m"
    prefs = Prefs()
    prefs.items.create_missing = True
    line = product("10.00", key="SSD\x00 1TB", description="Disk\x00 one\r\nsecond line\x7f")
    assert item_for_line(line, prefs) == ("SSD 1TB", "SSD\x00 1TB")
    invoice = inv([line], bottom_comment="Thanks\x00!", company=company)
    payload = build_document(invoice, prefs, refs(invoice, prefs)).payload
    assert payload["Line"][0]["Description"] == "Disk one\nsecond line"
    assert payload["CustomerMemo"] == {"value": "Thanks!"}


# --- time descriptions -------------------------------------------------------------------------------------------

def cw_time(hours: str, rate: str, amount_total: str, *, credit: bool = False) -> CWInvoice:
    entry = money.loads(f"""{{"id": 31, "chargeToId": 9001, "chargeToType": "ServiceTicket",
        "member": {{"name": "Jordan Lee"}}, "workType": {{"name": "Remote"}}, "timeStart": "2026-08-28T14:00:00Z",
        "hoursBilled": {hours}, "billableOption": "Billable", "notes": "Reset VPN", "hourlyRate": {rate}}}""")
    raw = money.loads(f"""{{"id": 9, "invoiceNumber": "INV9", "type": "{'CreditMemo' if credit else 'Standard'}",
        "company": {{"id": 19, "identifier": "AcmeDental", "name": "Acme Dental"}}, "date": "2026-09-01T00:00:00Z",
        "subtotal": {amount_total}, "salesTax": 0, "total": {amount_total}}}""")
    return build_invoice(raw, (), [entry])


def detailed(prefs: Prefs | None = None) -> Prefs:
    prefs = prefs or Prefs()
    prefs.time.detail = "detailed"
    return prefs


def test_detailed_time_line_names_the_ticket_and_notes_once() -> None:
    invoice = cw_time("2", "150.00", "300.00")
    payload = build_document(invoice, detailed(), refs(invoice)).payload
    assert payload["Line"][0]["Description"] == \
        "2026-08-28 · Jordan Lee · 2 h @ 150.00 · ServiceTicket #9001\nReset VPN"


def test_hours_at_rate_is_claimed_when_half_up_cents_make_the_amount() -> None:
    """0.25 h × 198.02 = 49.505, which half-up makes 49.51 (half-to-even would make 49.50): the rate is shown."""
    invoice = cw_time("0.25", "198.02", "49.51")
    prefs = detailed()
    prefs.time.include_notes = False
    payload = build_document(invoice, prefs, refs(invoice)).payload
    assert payload["Line"][0]["Amount"] == D("49.51")
    assert payload["Line"][0]["Description"] == "2026-08-28 · Jordan Lee · 0.25 h @ 198.02 · ServiceTicket #9001"


def test_rounded_hours_never_claim_a_rate_that_does_not_make_the_amount() -> None:
    invoice = cw_time("0.33", "150.00", "49.50")
    prefs = detailed()
    prefs.time.hours_rounding = "0.25"
    prefs.time.include_notes = False
    payload = build_document(invoice, prefs, refs(invoice)).payload
    assert payload["Line"][0]["Description"] == "2026-08-28 · Jordan Lee · 0.25 h, 49.50 · ServiceTicket #9001"
    assert payload["Line"][0]["Amount"] == D("49.50")


def test_credit_memo_time_lines_show_positive_hours() -> None:
    invoice = cw_time("-4.5", "100.00", "-450.00", credit=True)
    payload = build_document(invoice, detailed(), refs(invoice)).payload
    assert payload["Line"][0]["Description"] == \
        "2026-08-28 · Jordan Lee · 4.5 h @ 100.00 · ServiceTicket #9001\nReset VPN"
    summary = build_document(invoice, Prefs(), refs(invoice)).payload
    assert summary["Line"][0]["Description"] == "Remote: 4.5 h"


# --- reconcile: same input, same reason ---------------------------------------------------------------------------

def test_tax_mismatch_reason_is_the_same_from_a_create_response_and_a_query() -> None:
    invoice = inv([product("100.00")], tax="8.75")
    doc = build_document(invoice, Prefs(), refs(invoice))
    created = {"TotalAmt": D("108.25"), "TxnTaxDetail": {"TotalTax": D("8.25")},
               "Line": [{"DetailType": "SalesItemLineDetail", "Amount": D("100.00")},
                        {"DetailType": "SubTotalLineDetail", "Amount": D("100.00")}]}
    found_later = {"Id": "7", "DocNumber": "INV501", "TotalAmt": D("108.25")}  # DocNumber probe: a few fields
    first, second = reconcile(doc, created, Prefs()), reconcile(doc, found_later, Prefs())
    assert first.note == second.note == ("QuickBooks total 108.25 differs from ConnectWise 108.75 by 0.50: QuickBooks "
                                         "calculated tax 8.25 where ConnectWise charged 8.75 (tax engine, pinned tax "
                                         "ignored)")


def test_line_amounts_that_differ_are_named_with_both_sums() -> None:
    invoice = inv([product("100.00")], tax="8.75")
    doc = build_document(invoice, Prefs(), refs(invoice))
    changed = {"TotalAmt": D("98.75"), "TxnTaxDetail": {"TotalTax": D("8.75")},
               "Line": [{"DetailType": "SalesItemLineDetail", "Amount": D("90.00")}]}
    assert reconcile(doc, changed, Prefs()).note.endswith(
        "QuickBooks line amounts add up to 90.00 where cwqbo sent 100.00")


# --- readiness = the sync's mapping ---------------------------------------------------------------------------------

def test_a_non_us_company_without_tax_codes_is_not_ready() -> None:
    invoice = inv([product("100.00")], tax="13.00", tax_code="Ontario")
    assert readiness(invoice, Prefs()) == ("ready", "")  # no company facts: a US company is assumed
    status, reason = readiness(invoice, Prefs(), company=CompanyFacts(country="CA", home_currency="CAD"))
    assert status == "needs a tax code" and "'Ontario' has no QuickBooks tax code mapped" in reason


def test_a_document_kept_for_review_is_not_ready() -> None:
    invoice = inv([product("100.00")])
    kept = "totals differ (QBO Invoice 12 kept for review; nothing batched)"
    assert readiness(invoice, Prefs(), kept_for_review=kept) == ("kept for review", kept)


def test_readiness_refuses_what_build_document_refuses() -> None:
    foreign = inv([product("100.00")], currency="EUR")
    status, reason = readiness(foreign, Prefs(), company=CompanyFacts("US", "USD", False))
    assert status == "invalid" and "is in EUR but the QuickBooks company works in USD" in reason
    bad_total = msgspec.structs.replace(inv([product("100.00")], tax="8.25"), total=D("100.00"))
    assert readiness(bad_total, Prefs())[0] == "invalid"  # lines + tax ≠ total, as the sync refuses it


# --- preview: lines + tax = total shown --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,tax,lines_total", [("pin_cw", D("8.25"), D("100.00")),
                                                  ("line_item", D("0"), D("108.25")),  # tax is a line
                                                  ("qbo", D("8.25"), D("100.00"))])
def test_preview_tax_makes_the_lines_add_up_to_the_total(mode: str, tax: Decimal, lines_total: Decimal) -> None:
    prefs = Prefs()
    prefs.tax.mode = mode  # type: ignore[assignment]
    invoice = inv([product("60.00"), product("40.00", key="MOUSE")], tax="8.25")
    doc = build_document(invoice, prefs, refs(invoice, prefs))
    lines = sum((ln["Amount"] for ln in doc.payload["Line"]), D(0))
    assert lines == lines_total and doc.tax == tax and doc.expected_total == D("108.25")


def test_resolver_display_names_are_cleaned_the_same_way() -> None:
    from cwqbo.sync.lookup import safe_display_name

    assert safe_display_name("Acme\x00Dental\tLtd") == "Acme Dental Ltd"
