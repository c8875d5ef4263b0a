"""CW invoice + prefs → QBO payload: every preference visibly changes the document; totals are exact."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.errors import CwqboError
from cwqbo.mapping.customers import customer_display_name, disambiguated_name
from cwqbo.mapping.document import build_document, needs, payload_json, readiness
from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.reconciliation import adjustment_line, reconcile
from cwqbo.mapping.refs import ItemRef, Needs, Refs
from cwqbo.mapping.text import truncate
from cwqbo.models import Address, CompanyRef, CWInvoice, InvoiceLine
from cwqbo.settings.prefs import Prefs
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

D = Decimal
NORTHWIND = CompanyRef(17, "NorthwindT", "Northwind Traders")


def time_line(amount: str, hours: str = "1", rate: str | None = None, *, work_type: str = "Remote",
              work_role: str = "Engineer", ticket: str = "ServiceTicket #1", member: str = "jlee",
              notes: str | None = "fixed printer", day: int = 5, taxable: bool = False) -> InvoiceLine:
    return InvoiceLine(kind="time", source_id=day, description="Printer broken", quantity=D(hours),
                       unit_price=D(rate) if rate else D(amount) / D(hours), amount=D(amount), taxable=taxable,
                       item_key=work_type, service_date=date(2026, 1, day), member=member, work_type=work_type,
                       work_role=work_role, ticket=ticket, notes=notes, hours=D(hours))


def product_line(amount: str, qty: str = "1", key: str = "LAPTOP", taxable: bool = True,
                 description: str = "Laptop") -> InvoiceLine:
    return InvoiceLine(kind="product", source_id=9, description=description, quantity=D(qty),
                       unit_price=D(amount) / D(qty), amount=D(amount), taxable=taxable, item_key=key)


def make_inv(lines: list[InvoiceLine] | tuple[InvoiceLine, ...] = (), *, tax: str = "0", **kw: Any) -> CWInvoice:
    subtotal = sum((ln.amount for ln in lines), D(0))
    base: dict[str, Any] = dict(id=98765, number="INV1001", type="Standard", status_id=1, status_name="Closed",
                                company=NORTHWIND, date=date(2026, 1, 31), due_date=date(2026, 3, 2),
                                subtotal=subtotal, sales_tax=D(tax), total=subtotal + D(tax), lines=tuple(lines))
    base.update(kw)
    return CWInvoice(**base)


def refs_for(n: Needs, **kw: Any) -> Refs:
    """Pretend the engine resolved every needed name to an id."""
    return Refs(customer_id="58",
                items={name: ItemRef(f"i-{name}", name) for name in n.items},
                tax_codes={name: f"t-{name}" for name in n.tax_codes},
                terms={name: f"term-{name}" for name in n.terms},
                classes={name: f"c-{name}" for name in n.classes},
                departments={name: f"d-{name}" for name in n.departments},
                custom_fields={name: f"def-{name}" for name in n.custom_fields}, **kw)


def build(inv: CWInvoice, prefs: Prefs | None = None, **refkw: Any) -> tuple[dict[str, Any], Any]:
    prefs = prefs or Prefs()
    doc = build_document(inv, prefs, refs_for(needs(inv, prefs, us=refkw.get("us", True)), **refkw))
    return doc.payload, doc


def item_names(payload: dict[str, Any]) -> list[str]:
    return [ln["SalesItemLineDetail"]["ItemRef"]["name"] for ln in payload["Line"]]


def amounts(payload: dict[str, Any]) -> list[Decimal]:
    return [ln["Amount"] for ln in payload["Line"]]


def in_cents(amount: Decimal) -> bool:
    """Whether `amount` is a whole number of cents (checked without the rounding code under test)."""
    return (amount * 100) == (amount * 100).to_integral_value()


BASIC = make_inv([time_line("150", "1"), time_line("300", "2", day=6), product_line("999.99")], tax="80.00",
                 bottom_comment="Thanks!", top_comment="Top text", customer_po="PO-4711", reference="REF9",
                 terms="Net 30 days", location_id=3, department_id=10, tax_code="Ontario",
                 billing_address=Address("1 Main St", "", "Springfield", "IL", "62701", "USA"))


# --- header fields -----------------------------------------------------------------------------------

def test_default_payload_is_a_valid_us_invoice_with_pinned_tax() -> None:
    payload, doc = build(BASIC)
    assert doc.entity == "Invoice" and doc.doc_number == "INV1001" == payload["DocNumber"]
    assert payload["CustomerRef"] == {"value": "58"}
    assert payload["TxnDate"] == "2026-01-31" and payload["DueDate"] == "2026-03-02"
    assert payload["TxnTaxDetail"] == {"TotalTax": D("80.00")}
    assert amounts(payload) == [D("450.00"), D("999.99")]  # the two Remote entries summarised, the laptop
    assert doc.expected_total == D("1529.99")
    assert payload["BillAddr"] == {"Line1": "1 Main St", "City": "Springfield", "CountrySubDivisionCode": "IL",
                                   "PostalCode": "62701", "Country": "USA"}
    assert payload["CustomerMemo"] == {"value": "Thanks!"}
    assert payload["PrivateNote"] == "ConnectWise invoice INV1001 (id 98765)"
    for key in ("SalesTermRef", "ClassRef", "DepartmentRef", "CustomField", "GlobalTaxCalculation"):
        assert key not in payload


def test_docnumber_prefix_is_prepended() -> None:
    prefs = Prefs()
    prefs.fields.docnumber_prefix = "CW-"
    payload, doc = build(BASIC, prefs)
    assert payload["DocNumber"] == doc.doc_number == "CW-INV1001"


def test_docnumber_over_21_characters_is_refused_with_a_fix() -> None:
    inv = make_inv([product_line("10")], number="1234567890123456789012")
    with pytest.raises(MappingError) as exc:
        build(inv)
    assert str(exc.value) == "invoice number 1234567890123456789012 is 22 characters; QuickBooks allows 21"
    # no prefix is set, so clearing it cannot help: the fix is the number itself
    assert exc.value.hint == "renumber the invoice in ConnectWise to at most 21 characters, or exclude it"
    assert isinstance(exc.value, CwqboError)
    prefs = Prefs()
    prefs.fields.docnumber_prefix = "CW-"
    with pytest.raises(MappingError, match="is 24 characters") as exc:
        build(make_inv([product_line("10")], number="123456789012345678901"), prefs)
    assert exc.value.hint == ("clear fields.docnumber_prefix (cwqbo prefs set fields.docnumber_prefix ''), "
                              "or renumber the invoice in ConnectWise")
    with pytest.raises(MappingError, match="is 23 characters") as exc:
        build(make_inv([product_line("10")], number="12345678901234567890"), prefs)
    assert exc.value.hint.startswith("shorten fields.docnumber_prefix to at most 1 character(s)")
    assert readiness(inv, Prefs())[0] == "invalid"


def test_customer_memo_source() -> None:
    prefs = Prefs()
    prefs.fields.customer_memo = "top_comment"
    assert build(BASIC, prefs)[0]["CustomerMemo"] == {"value": "Top text"}
    prefs.fields.customer_memo = "none"
    assert "CustomerMemo" not in build(BASIC, prefs)[0]


def test_customer_memo_is_truncated_to_1000() -> None:
    payload, _ = build(msgspec.structs.replace(BASIC, bottom_comment="x" * 1500))
    assert len(payload["CustomerMemo"]["value"]) == 1000 and payload["CustomerMemo"]["value"].endswith("…")


def test_private_note_template_and_off() -> None:
    prefs = Prefs()
    prefs.fields.private_note = "{company} / {reference}"
    assert build(BASIC, prefs)[0]["PrivateNote"] == "Northwind Traders / REF9"
    prefs.fields.private_note = ""
    assert "PrivateNote" not in build(BASIC, prefs)[0]
    prefs.fields.private_note = "{nope}"
    with pytest.raises(MappingError, match="private_note"):
        build(BASIC, prefs)


def test_custom_fields_by_definition_id_truncated_to_31() -> None:
    prefs = Prefs()
    prefs.fields.custom_fields = {"customer_po": "Customer PO", "reference": "Reference", "ticket": "Ticket"}
    inv = msgspec.structs.replace(BASIC, reference="R" * 40)  # no ticket in extra → that field is skipped
    n = needs(inv, prefs)
    assert n.custom_fields == {"Customer PO", "Reference"}
    payload, _ = build(inv, prefs)
    assert payload["CustomField"] == [
        {"DefinitionId": "def-Customer PO", "Type": "StringType", "StringValue": "PO-4711"},
        {"DefinitionId": "def-Reference", "Type": "StringType", "StringValue": "R" * 30 + "…"}]
    inv2 = msgspec.structs.replace(BASIC, extra={"ticket": "#4711"})
    assert build(inv2, prefs)[0]["CustomField"][-1]["StringValue"] == "#4711"


def test_class_and_department_from_location_and_department() -> None:
    prefs = Prefs()
    prefs.fields.class_source = "location"
    prefs.fields.class_map = {"3": "Managed Services"}
    prefs.fields.department_source = "department"
    prefs.fields.department_map = {"10": "Head Office"}
    n = needs(BASIC, prefs)
    assert n.classes == {"Managed Services"} and n.departments == {"Head Office"}
    payload, _ = build(BASIC, prefs)
    assert payload["ClassRef"] == {"value": "c-Managed Services"}
    assert payload["DepartmentRef"] == {"value": "d-Head Office"}
    per_line, _ = build(BASIC, prefs, class_per_line=True)
    assert "ClassRef" not in per_line
    assert all(ln["SalesItemLineDetail"]["ClassRef"] == {"value": "c-Managed Services"} for ln in per_line["Line"])


def test_terms_map() -> None:
    prefs = Prefs()
    prefs.fields.terms_map = {"Net 30 days": "Net 30"}
    assert needs(BASIC, prefs).terms == {"Net 30"}
    assert build(BASIC, prefs)[0]["SalesTermRef"] == {"value": "term-Net 30"}


# --- customers -----------------------------------------------------------------------------------------

def test_customer_match_name_or_identifier() -> None:
    assert needs(BASIC, Prefs()).customer.key == "Northwind Traders"
    prefs = Prefs()
    prefs.fields.customer_match = "identifier"
    assert needs(BASIC, prefs).customer.key == "NorthwindT"


def test_display_name_rules() -> None:
    odd = CompanyRef(5, "X", "  Acme:West   Coast  ")
    assert customer_display_name(odd, Prefs()) == "Acme - West Coast"
    long = CompanyRef(6, "L", "A" * 600)
    assert len(customer_display_name(long, Prefs())) == 500
    assert disambiguated_name("Northwind Traders", NORTHWIND) == "Northwind Traders (CW 17)"
    assert len(disambiguated_name("A" * 500, NORTHWIND)) == 500
    assert needs(BASIC, Prefs()).customer.fallback_name == "Northwind Traders (CW 17)"


# --- items ------------------------------------------------------------------------------------------------

def test_item_mappings_and_fallback() -> None:
    assert set(item_names(build(BASIC)[0])) == {"Services"}
    prefs = Prefs()
    prefs.items.work_type = {"Remote": "Hours"}
    prefs.items.product = {"LAPTOP": "Hardware"}
    assert item_names(build(BASIC, prefs)[0]) == ["Hours", "Hardware"]
    prefs.items.fallback = "Misc"
    prefs.items.product = {}
    assert item_names(build(BASIC, prefs)[0]) == ["Hours", "Misc"]


def test_item_source_work_role() -> None:
    prefs = Prefs()
    prefs.time.item_source = "work_role"
    prefs.items.work_role = {"Engineer": "Engineering"}
    prefs.items.work_type = {"Remote": "Hours"}
    assert item_names(build(BASIC, prefs)[0])[0] == "Engineering"


def test_create_missing_items_uses_the_cw_key() -> None:
    prefs = Prefs()
    prefs.items.create_missing = True
    assert needs(BASIC, prefs).items == {"Remote", "LAPTOP"}


def test_unmapped_item_without_fallback_is_refused() -> None:
    prefs = Prefs()
    prefs.items.fallback = ""
    assert readiness(BASIC, prefs) == ("needs an item", "no item mapped for product 'LAPTOP', time 'Remote'")
    with pytest.raises(MappingError, match="no QuickBooks item for ConnectWise"):
        build_document(BASIC, prefs, Refs(customer_id="1"))


# --- time detail -------------------------------------------------------------------------------------

TIMES = make_inv([time_line("150", "1", ticket="ServiceTicket #1", work_role="Engineer", notes="n1"),
                  time_line("300", "2", ticket="ServiceTicket #1", work_role="Engineer", day=6, notes="n2"),
                  time_line("75", "0.5", ticket="ServiceTicket #2", work_role="Engineer", day=7, notes=None),
                  time_line("200", "1", ticket="ServiceTicket #2", work_role="Senior", day=8, notes=None)])


def test_time_summary_is_one_line_per_item_key() -> None:
    payload, _ = build(TIMES)
    assert len(payload["Line"]) == 1
    line = payload["Line"][0]
    assert line["Amount"] == D("725") and line["Description"] == "Remote: 4.5 h"
    d = line["SalesItemLineDetail"]
    assert d["Qty"] * d["UnitPrice"] == line["Amount"]


def test_time_condensed_is_one_line_per_ticket_and_role() -> None:
    prefs = Prefs()
    prefs.time.detail = "condensed"
    payload, _ = build(TIMES, prefs)
    assert amounts(payload) == [D("450"), D("75"), D("200")]
    assert payload["Line"][0]["Description"] == "ServiceTicket #1 · Engineer · 3 h\nn1\nn2"
    d = payload["Line"][0]["SalesItemLineDetail"]
    assert (d["Qty"], d["UnitPrice"]) == (D("3"), D("150"))


def test_time_detailed_is_one_line_per_entry_with_notes_optional() -> None:
    prefs = Prefs()
    prefs.time.detail = "detailed"
    payload, _ = build(TIMES, prefs)
    assert len(payload["Line"]) == 4
    first = payload["Line"][0]
    assert first["Description"] == "2026-01-05 · jlee · 1 h @ 150.00 · ServiceTicket #1 · Printer broken\nn1"
    assert first["SalesItemLineDetail"]["ServiceDate"] == "2026-01-05"
    prefs.time.include_notes = False
    assert "n1" not in build(TIMES, prefs)[0]["Line"][0]["Description"]


def test_hours_rounding_changes_displayed_hours_not_amount() -> None:
    inv = make_inv([time_line("100", "1.3333", rate="75.0018751875")])
    prefs = Prefs()
    prefs.time.hours_rounding = "0.25"
    line = build(inv, prefs)[0]["Line"][0]
    assert line["Description"] == "Remote: 1.25 h" and line["Amount"] == D("100")


# --- credit memos, amounts, descriptions ----------------------------------------------------------

def test_negative_invoice_becomes_credit_memo_with_positive_lines() -> None:
    inv = make_inv([product_line("-100", "-2"), time_line("-50", "1", rate="-50")], tax="-8.00", type="CreditMemo")
    payload, doc = build(inv)
    assert doc.entity == "CreditMemo" and "DueDate" not in payload
    assert amounts(payload) == [D("100"), D("50")]
    for ln in payload["Line"]:
        assert ln["SalesItemLineDetail"]["Qty"] > 0 and ln["SalesItemLineDetail"]["UnitPrice"] > 0
    assert payload["TxnTaxDetail"] == {"TotalTax": D("8.00")}
    assert doc.expected_total == D("158.00")


def test_qty_times_price_must_be_exact_else_one_times_amount() -> None:
    inv = make_inv([product_line("100.00", "3")])  # 33.333… per unit is not representable
    d = build(inv)[0]["Line"][0]["SalesItemLineDetail"]
    assert (d["Qty"], d["UnitPrice"]) == (D(1), D("100.00"))
    inv = make_inv([product_line("100.00", "8")])
    d = build(inv)[0]["Line"][0]["SalesItemLineDetail"]
    assert (d["Qty"], d["UnitPrice"]) == (D(8), D("12.5"))


def test_long_description_is_truncated_with_an_ellipsis() -> None:
    inv = make_inv([product_line("10", description="é" * 5000)])
    desc = build(inv)[0]["Line"][0]["Description"]
    assert len(desc) == 4000 and desc.endswith("…")


def test_truncate_never_splits_a_combining_sequence() -> None:
    text = "a" * 8 + "e\u0301" + "zzzz"  # cut would fall between 'e' and its accent
    assert truncate(text, 10) == "a" * 8 + "…"
    assert truncate("ab\U0001F44D\U0001F3FDcd", 4) == "ab…"  # thumbs up + skin tone stay together
    assert truncate("short", 10) == "short"


def test_sub_cent_line_amounts_are_rounded_to_sum_to_the_subtotal() -> None:
    lines = [product_line("0.335", key="A"), product_line("0.335", key="B"), product_line("0.33", key="C")]
    inv = make_inv(lines, subtotal=D("1.00"), total=D("1.00"))
    got = amounts(build(inv)[0])
    assert got == [D("0.33"), D("0.34"), D("0.33")]  # half-up gives 0.34 + 0.34 + 0.33; the first gives back a cent


def test_cents_round_half_up_as_invoices_are_printed() -> None:
    """Half a cent rounds away from zero, never to even: 0.125 → 0.13, 2.675 → 2.68, -0.005 → -0.01."""
    assert money.round_cents(D("0.125")) == D("0.13")
    assert money.round_cents(D("0.135")) == D("0.14")
    assert money.round_cents(D("2.675")) == D("2.68")
    assert money.round_cents(D("-0.005")) == D("-0.01")
    assert money.round_cents(D("10.004")) == D("10.00")
    assert money.money_str(D("0.125")) == "0.13"
    # in a document: two half-cent lines each round up and make the subtotal, with no difference line
    inv = make_inv([product_line("0.125", key="A"), product_line("0.125", key="B")], subtotal=D("0.26"),
                   total=D("0.26"))
    assert amounts(build(inv)[0]) == [D("0.13"), D("0.13")]
    credit = make_inv([product_line("-0.125", key="A"), product_line("-0.125", key="B")], subtotal=D("-0.26"),
                      total=D("-0.26"))
    payload, doc = build(credit)
    assert doc.entity == "CreditMemo" and amounts(payload) == [D("0.13"), D("0.13")]
    assert doc.expected_total == D("0.26")


def test_subtotal_not_covered_by_lines_adds_a_difference_line() -> None:
    inv = make_inv([product_line("100")], subtotal=D("250"), total=D("250"))
    payload, doc = build(inv)
    assert amounts(payload) == [D("100"), D("150")]
    assert payload["Line"][1]["Description"] == "Difference to the ConnectWise subtotal"


def test_invoice_without_lines_becomes_one_fallback_line_and_empty_is_invalid() -> None:
    inv = make_inv([], subtotal=D("500"), total=D("500"))
    payload, _ = build(inv)
    assert amounts(payload) == [D("500")] and item_names(payload) == ["Services"]
    empty = make_inv([])
    assert readiness(empty, Prefs()) == ("invalid", "no lines and a zero total")
    with pytest.raises(MappingError, match="no lines"):
        build(empty)


lines_strategy = st.lists(
    st.tuples(st.sampled_from(["product", "time"]), st.integers(-50_000, 500_000), st.integers(1, 40),
              st.booleans(), st.sampled_from(["Remote", "Onsite", "LAPTOP"])),
    min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(lines_strategy, st.sampled_from(["summary", "condensed", "detailed"]), st.integers(0, 9_999))
def test_line_amounts_always_sum_to_the_subtotal_and_total_matches(raw: list[Any], detail: str, tax: int) -> None:
    lines = []
    for kind, cents, qty, taxable, key in raw:
        amount = D(cents) / 100
        if kind == "time":
            lines.append(time_line(str(amount), str(D(qty) / 4), work_type=key, taxable=taxable,
                                   ticket=f"T{qty % 3}"))
        else:
            lines.append(product_line(str(amount), str(qty), key=key, taxable=taxable))
    inv = make_inv(lines, tax=str(D(tax) / 100))
    if inv.total == 0 and inv.subtotal == 0:
        return
    prefs = Prefs()
    prefs.time.detail = detail  # type: ignore[assignment]
    payload, doc = build(inv, prefs)
    sign = -1 if inv.total < 0 else 1
    assert sum(amounts(payload)) == sign * inv.subtotal
    assert doc.expected_total == sign * inv.total
    assert payload["TxnTaxDetail"]["TotalTax"] == sign * inv.sales_tax
    for ln in payload["Line"]:
        d = ln["SalesItemLineDetail"]
        assert in_cents(ln["Amount"])
        assert d["Qty"] * d["UnitPrice"] == ln["Amount"]


# --- tax modes --------------------------------------------------------------------------------------------

MIXED = make_inv([time_line("150", "1", taxable=False), product_line("1000", taxable=True)], tax="62.50",
                 tax_code="Ontario")


def test_us_line_codes_follow_cw_taxability() -> None:
    payload, _ = build(MIXED)
    assert [ln["SalesItemLineDetail"]["TaxCodeRef"] for ln in payload["Line"]] == [{"value": "NON"}, {"value": "TAX"}]
    nontax = msgspec.structs.replace(MIXED, taxable=False)
    assert {ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in build(nontax)[0]["Line"]} == {"NON"}


def test_tax_mode_qbo_lets_qbo_compute() -> None:
    prefs = Prefs()
    prefs.tax.mode = "qbo"
    payload, doc = build(MIXED, prefs)
    assert "TxnTaxDetail" not in payload and doc.expected_total == D("1212.50")


def test_tax_mode_line_item_adds_a_tax_line_and_no_qbo_tax() -> None:
    prefs = Prefs()
    prefs.tax.mode = "line_item"
    assert "Sales Tax" in needs(MIXED, prefs).items
    payload, doc = build(MIXED, prefs)
    assert item_names(payload)[-1] == "Sales Tax" and amounts(payload)[-1] == D("62.50")
    assert {ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in payload["Line"]} == {"NON"}
    assert payload["TxnTaxDetail"] == {"TotalTax": D(0)}
    assert doc.expected_total == sum(amounts(payload)) == D("1212.50")


def test_non_us_uses_mapped_tax_codes() -> None:
    prefs = Prefs()
    prefs.tax.codes = {"Ontario": "HST ON"}
    prefs.tax.exempt_code = "Exempt"
    assert needs(MIXED, prefs).tax_codes == {"HST ON", "Exempt"}
    assert needs(MIXED, prefs, us=True).tax_codes == set()
    payload, _ = build(MIXED, prefs, us=False)
    assert [ln["SalesItemLineDetail"]["TaxCodeRef"] for ln in payload["Line"]] == [
        {"value": "t-Exempt"}, {"value": "t-HST ON"}]
    assert payload["GlobalTaxCalculation"] == "TaxExcluded" and "TxnTaxDetail" not in payload


def test_non_us_default_code_and_missing_mapping() -> None:
    prefs = Prefs()
    prefs.tax.exempt_code = "Exempt"
    assert readiness(MIXED, prefs, us=False)[0] == "needs a tax code"
    with pytest.raises(MappingError, match="tax code 'Ontario' has no QuickBooks tax code"):
        build(MIXED, prefs, us=False)
    prefs.tax.default_code = "GST"
    assert readiness(MIXED, prefs, us=False) == ("ready", "")
    assert build(MIXED, prefs, us=False)[0]["Line"][1]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "t-GST"}


# --- hashing and reconciliation --------------------------------------------------------------------

def test_payload_hash_is_of_the_exact_text_sent_and_stable_and_sensitive() -> None:
    a, _ = build(BASIC)
    b, _ = build(BASIC)
    text, digest = payload_json(a)
    assert payload_json(b) == (text, digest) and len(digest) == 64
    assert hashlib.sha256(text.encode()).hexdigest() == digest and money.loads(text) == a  # what QBO receives
    assert "e+" not in text.lower() and '"Amount":' in text  # exact numbers, never float notation
    prefs = Prefs()
    prefs.fields.docnumber_prefix = "X"
    assert payload_json(build(BASIC, prefs)[0])[1] != digest


def test_reconcile_exact_to_the_cent() -> None:
    _, doc = build(MIXED)
    ok = reconcile(doc, {"TotalAmt": D("1212.50")}, Prefs())
    assert ok.ok and ok.difference == 0
    prefs = Prefs()
    prefs.tax.on_mismatch = "adjust"
    bad = reconcile(doc, {"TotalAmt": D("1212.49"), "TxnTaxDetail": {"TotalTax": D("62.49")}}, prefs)
    assert not bad.ok and bad.difference == D("0.01") and bad.action == "adjust"
    assert "tax engine" in bad.note
    line = adjustment_line(bad.difference, Refs("58", items={"Rounding Adjustment": ItemRef("7", "Rounding Adjustment")}),
                           prefs)
    assert line["Amount"] == D("0.01") and line["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}


# --- against the QBO simulator: the payload is accepted and reconciles ------------------------------------

REALM = "9341453000000000"


class Sim:
    def __init__(self, country: str = "US") -> None:
        self.sim = QBOSimulator(ManualClock(), Faults(), country=country)
        self.http = httpx.Client(transport=httpx.MockTransport(self.sim.handle), base_url="http://sim.test")
        self.headers = {"Authorization": f"Bearer {self.sim.issue_tokens()['access_token']}",
                        "Accept": "application/json", "Content-Type": "application/json"}

    def post(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.http.post(f"/v3/company/{REALM}/{entity.lower()}", content=money.dumps(body),
                              params={"minorversion": "75"}, headers=self.headers)
        assert resp.status_code == 200, resp.text
        return money.loads(resp.content)[entity]

    def query(self, q: str) -> list[dict[str, Any]]:
        resp = self.http.get(f"/v3/company/{REALM}/query", params={"query": q, "minorversion": "75"},
                             headers=self.headers)
        data = money.loads(resp.content)["QueryResponse"]
        return next((v for k, v in data.items() if isinstance(v, list)), [])


@pytest.mark.parametrize("mode", ["pin_cw", "line_item"])
def test_simulator_accepts_the_payload_and_totals_reconcile(mode: str) -> None:
    sim = Sim()
    prefs = Prefs()
    prefs.tax.mode = mode  # type: ignore[assignment]
    prefs.items.product = {"LAPTOP": "Hardware"}
    prefs.fields.terms_map = {"Net 30 days": "Net 30"}
    prefs.fields.custom_fields = {"customer_po": "Customer PO"}
    n = needs(BASIC, prefs)
    cust = sim.post("Customer", {"DisplayName": n.customer.fallback_name})  # vendor holds the plain name
    items = {i["Name"]: ItemRef(i["Id"], i["Name"]) for i in sim.query("select * from Item")}
    terms = {t["Name"]: t["Id"] for t in sim.query("select * from Term")}
    refs = Refs(customer_id=cust["Id"], items=items, terms=terms, custom_fields={"Customer PO": "1"})
    doc = build_document(BASIC, prefs, refs)
    created = sim.post(doc.entity, doc.payload)
    rec = reconcile(doc, created, prefs)
    assert rec.ok, rec.note
    assert created["DocNumber"] == "INV1001" and created["SalesTermRef"]["value"] == terms["Net 30"]
    assert created["CustomField"][0]["StringValue"] == "PO-4711"


def test_simulator_credit_memo_reconciles() -> None:
    sim = Sim()
    inv = make_inv([product_line("-100", "-2"), time_line("-50.50", "1")], tax="-8.08", type="CreditMemo")
    cust = sim.post("Customer", {"DisplayName": "Acme"})
    items = {i["Name"]: ItemRef(i["Id"], i["Name"]) for i in sim.query("select * from Item")}
    doc = build_document(inv, Prefs(), Refs(customer_id=cust["Id"], items=items))
    assert reconcile(doc, sim.post("CreditMemo", doc.payload), Prefs()).ok


def test_simulator_non_us_tax_codes_and_a_drift_is_reported() -> None:
    sim = Sim("CA")
    prefs = Prefs()
    prefs.tax.codes = {"Ontario": "HST ON"}
    prefs.tax.exempt_code = "Exempt"
    cust = sim.post("Customer", {"DisplayName": "Acme"})
    items = {i["Name"]: ItemRef(i["Id"], i["Name"]) for i in sim.query("select * from Item")}
    codes = {c["Name"]: c["Id"] for c in sim.query("select * from TaxCode")}
    refs = Refs(customer_id=cust["Id"], items=items, tax_codes=codes, us=False)
    good = msgspec.structs.replace(MIXED, sales_tax=D("130.00"), total=D("1280.00"))
    doc = build_document(good, prefs, refs)
    assert reconcile(doc, sim.post("Invoice", doc.payload), prefs).ok
    drift = msgspec.structs.replace(MIXED, number="INV1002", sales_tax=D("129.99"), total=D("1279.99"))
    doc = build_document(drift, prefs, refs)
    rec = reconcile(doc, sim.post("Invoice", doc.payload), prefs)
    assert not rec.ok and rec.difference == D("-0.01") and rec.action == "fail"
    assert "QuickBooks calculated tax 130.00 where ConnectWise charged 129.99" in rec.note


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 9_999_999), min_size=1, max_size=20))
def test_sub_cent_amounts_always_round_to_the_subtotal(mills: list[int]) -> None:
    lines = [product_line(str(D(m) / 1000), key=f"K{i}") for i, m in enumerate(mills)]
    subtotal = D((sum(mills) + 5) // 10) / 100  # the exact sum of the mills, half-up to cents
    payload, _ = build(make_inv(lines, subtotal=subtotal, total=subtotal))
    got = amounts(payload)
    assert sum(got) == subtotal and len(got) == len(lines)
    assert all(in_cents(a) and abs(a - ln.amount) < D("0.01") for a, ln in zip(got, lines))


def test_a_cw_total_that_lines_and_tax_do_not_make_is_refused() -> None:
    """Pinning CW's tax must not hide a CW invoice whose own total disagrees with its lines + tax."""
    good = make_inv([product_line("100")], tax="8.25")
    payload, doc = build(good)
    assert doc.expected_total == D("108.25")
    bad = msgspec.structs.replace(good, total=D("100.00"))
    with pytest.raises(MappingError, match="add up to 108.25 but the invoice total is 100.00"):
        build(bad)
