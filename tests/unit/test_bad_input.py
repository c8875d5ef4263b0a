"""Hostile invoice data: mapping either refuses it with one readable line or yields a payload QBO accepts.

What a user would notice: a weird company name, a huge invoice or an over-long number never crashes a sync,
never books a cent more or less than ConnectWise billed, and one bad invoice never blocks the good ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cwqbo import http, money
from cwqbo.state import cache
from cwqbo.state import ledger
from cwqbo.sync import engine as sync
from cwqbo.clock import ManualClock
from cwqbo.connectwise.client import CWClient
from cwqbo.errors import CwqboError
from cwqbo.mapping.document import build_document, needs
from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.refs import ItemRef, Refs
from cwqbo.models import Address, CompanyRef, CWInvoice, InvoiceLine
from cwqbo.settings.prefs import Filters, Prefs
from cwqbo.quickbooks.client import QBOClient
from cwqbo.sandbox import server as sv
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import DirectTokens, QBOSimulator
from cwqbo.quickbooks.limits import MAX_LENGTHS
from cwqbo.state.store import Store

HOSTILE = ["O'Brien \"Quotes\" & Sons", "A:B:C::", "C:\\path\\to\\", "Ünïcödé Straße", "😀🎉 Emoji Co 👩‍👩‍👧",
           "'; DROP TABLE invoices; --", "x\" or 1=1 or name=\"", "\\'", "  spaced   out  ", "ｆｕｌｌｗｉｄｔｈ",
           "e\u0301\u0301 combining", "\u202eRTL override", "tab\tnew\nline", ""]
text = st.one_of(st.sampled_from(HOSTILE),
                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=80))
cents = st.decimals(min_value=Decimal("-5000"), max_value=Decimal("5000"), places=2)


def _line(kind: str, qty: Decimal, price: Decimal, desc: str, key: str, taxable: bool) -> InvoiceLine:
    # what ConnectWise stores as the extended amount (half-up to cents; not through the code under test)
    amount = (qty * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    extra: dict[str, Any] = {}
    if kind == "time":
        extra = {"member": desc[:10], "work_type": key, "work_role": key, "ticket": f"#{desc[:5]}", "notes": desc,
                 "hours": qty}
    elif kind == "expense":
        extra = {"expense_type": key}
    return InvoiceLine(kind=kind, source_id=1, description=desc, quantity=qty, unit_price=price,  # type: ignore[arg-type]
                       amount=amount, taxable=taxable, item_key=key, service_date=dt.date(2026, 3, 1), **extra)


lines_st = st.lists(st.builds(
    _line, st.sampled_from(["product", "time", "expense", "agreement", "adjustment"]),
    st.decimals(min_value=Decimal("-20"), max_value=Decimal("50"), places=2),
    st.decimals(min_value=Decimal("-300"), max_value=Decimal("900"), places=4),
    text, text, st.booleans()), max_size=12)


def _invoice(number: str, company: str, identifier: str, lines: list[InvoiceLine], extra_subtotal: Decimal,
             tax: Decimal, memo: str, addr: str, long_desc: bool = False) -> CWInvoice:
    subtotal = sum((ln.amount for ln in lines), Decimal("0")) + extra_subtotal
    tax = abs(tax) if subtotal >= 0 else -abs(tax)
    return CWInvoice(
        id=7, number=number, type="CreditMemo" if subtotal + tax < 0 else "Standard", status_id=3,
        status_name="Closed", company=CompanyRef(17, identifier, company), date=dt.date(2026, 3, 2),
        due_date=dt.date(2026, 4, 1), subtotal=subtotal, sales_tax=tax, total=subtotal + tax, lines=tuple(lines),
        customer_po=memo, reference=memo, top_comment=memo, bottom_comment=memo * 30 if long_desc else memo,
        billing_address=Address(line1=addr * 40, city=addr * 30, zip=addr * 5, country=addr),
        shipping_address=Address(line1=addr))


invoices_st = st.builds(
    _invoice, st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=28), text, text, lines_st,
    st.one_of(st.just(Decimal("0")), cents), st.decimals(min_value=Decimal("0"), max_value=Decimal("400"), places=2),
    text, text, st.booleans())


def _sim() -> QBOSimulator:
    sim = QBOSimulator(ManualClock(start=1_795_500_000.0), Faults(), realm_id=sv.QBO_REALM_ID)
    sim.add("Customer", {"DisplayName": "Hostile Test Customer"})
    return sim


@pytest.fixture(scope="module")
def qbo() -> QBOSimulator:
    return _sim()


def _refs_for(inv: CWInvoice, prefs: Prefs, sim: QBOSimulator) -> Refs:
    """Every item name the invoice needs → one real item in the simulated QBO company."""
    item = next(d for d in sim.documents("Item") if d.get("Type") in ("Service", "NonInventory"))
    customer = sim.documents("Customer")[0]
    names = needs(inv, prefs, us=True).items
    return Refs(customer_id=customer["Id"], items={n: ItemRef(item["Id"], item["Name"]) for n in names}, us=True)


def _post(sim: QBOSimulator, entity: str, payload: dict[str, Any]) -> httpx.Response:
    token = sim.issue_tokens()["access_token"]
    req = httpx.Request("POST", f"http://sim/v3/company/{sv.QBO_REALM_ID}/{entity.lower()}?minorversion=75",
                        content=money.dumps(payload).encode(), headers={"Authorization": f"Bearer {token}",
                                                                        "Content-Type": "application/json",
                                                                        "Accept": "application/json"})
    return sim.handle(req)


def _assert_one_line(err: CwqboError) -> None:
    message = str(err)
    assert message.strip() and "\n" not in message and "Traceback" not in message, repr(message)
    assert err.hint is None or "\n" not in err.hint


def _assert_within_limits(entity: str, payload: dict[str, Any]) -> None:
    from cwqbo.sandbox.quickbooks.simulator import _values_at  # the simulator's own path walker

    for path, limit in MAX_LENGTHS[entity].items():
        for value in _values_at(payload, path.split(".")):
            if isinstance(value, str):
                assert len(value) <= limit, f"{path} is {len(value)} > {limit}"


def _check(inv: CWInvoice, prefs: Prefs, sim: QBOSimulator, *, post: bool) -> Any:
    try:
        doc = build_document(inv, prefs, _refs_for(inv, prefs, sim))
    except MappingError as exc:
        _assert_one_line(exc)
        return exc
    payload = doc.payload
    _assert_within_limits(doc.entity, payload)
    amounts = [ln["Amount"] for ln in payload["Line"]]
    assert all(isinstance(a, Decimal) and a * 100 == (a * 100).to_integral_value() for a in amounts), \
        "line amounts not in cents"
    sign = Decimal(-1) if doc.entity == "CreditMemo" or inv.total < 0 else Decimal(1)
    if inv.total == 0:
        sign = Decimal(-1) if inv.subtotal < 0 else Decimal(1)
    assert sum(amounts, Decimal("0")) == sign * inv.subtotal, "lines do not sum to the CW subtotal"
    assert doc.expected_total == sign * inv.total, "expected total is not the CW total"
    for ln in payload["Line"]:
        d = ln["SalesItemLineDetail"]
        assert d["Qty"] * d["UnitPrice"] == ln["Amount"], "QBO would reject with 6070"
    if post:
        r = _post(sim, doc.entity, payload)
        body = money.loads(r.content)
        assert r.status_code == 200, body  # QuickBooks (simulated) accepts it: lengths, shape, Qty x UnitPrice
        created = body[doc.entity]
        assert Decimal(str(created["TotalAmt"])) == sign * inv.total, "QBO total drifted"
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(invoices_st, st.sampled_from(["summary", "condensed", "detailed"]), st.booleans())
def test_hostile_invoices_map_or_fail_readably(qbo: QBOSimulator, inv: CWInvoice, detail: str,
                                               create_missing: bool) -> None:
    prefs = Prefs()
    prefs.time.detail = detail  # type: ignore[assignment]
    prefs.items.create_missing = create_missing
    if len(inv.number) > 21:
        with pytest.raises(MappingError) as info:
            build_document(inv, prefs, _refs_for(inv, prefs, qbo))
        _assert_one_line(info.value)
        assert "21" in str(info.value)
        return
    result = _check(inv, prefs, qbo, post=False)
    if isinstance(result, MappingError):
        assert inv.subtotal == 0 or "item" in str(result), str(result)


positive_invoices_st = st.builds(
    _invoice, st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=21), text, text,
    st.lists(st.builds(_line, st.sampled_from(["product", "time", "expense", "agreement"]),
                       st.decimals(min_value=Decimal("0.01"), max_value=Decimal("50"), places=2),
                       st.decimals(min_value=Decimal("0"), max_value=Decimal("900"), places=4),
                       text, text, st.booleans()), max_size=10),
    st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2),
    st.decimals(min_value=Decimal("0"), max_value=Decimal("400"), places=2), text, text, st.booleans())


@settings(max_examples=30, deadline=None)
@given(positive_invoices_st)
def test_positive_hostile_invoices_are_accepted_by_the_simulator(inv: CWInvoice) -> None:
    assume(inv.total > 0)
    sim = _sim()
    doc = _check(inv, Prefs(), sim, post=True)
    if isinstance(doc, MappingError):  # only a document with nothing to put on a line may be refused
        assert inv.subtotal == 0 and "no lines" in str(doc), str(doc)


def test_two_thousand_lines_sum_exactly_and_are_accepted(qbo: QBOSimulator) -> None:
    lines = [_line("product", Decimal("3"), Decimal("0.3333"), f"part {i} " + "ü" * 20, "P", i % 2 == 0)
             for i in range(2000)]
    inv = _invoice("BIG-2000", "Big Co", "BIG", lines, Decimal("0"), Decimal("12.34"), "m", "a")
    doc = _check(inv, Prefs(), qbo, post=True)
    assert len(doc.payload["Line"]) == 2000
    assert doc.expected_total == inv.total == Decimal("2012.34")


def test_descriptions_over_4000_characters_are_cut_on_a_character_boundary(qbo: QBOSimulator) -> None:
    desc = "a" * 3998 + "👩\u200d👩\u200d👧" + "b" * 2000
    inv = _invoice("LONG-DESC", "Co", "CO", [_line("product", Decimal("1"), Decimal("10"), desc, "P", False)],
                   Decimal("0"), Decimal("0"), "memo " * 400, "x" * 600)
    doc = _check(inv, Prefs(), qbo, post=True)
    text_ = doc.payload["Line"][0]["Description"]
    assert len(text_) <= 4000 and text_.endswith("…") and "\u200d…" not in text_
    assert len(doc.payload["CustomerMemo"]["value"]) <= 1000


@pytest.mark.parametrize("number", ["1" * 22, "INV-" + "9" * 30, "Ω" * 22])
def test_invoice_number_over_21_characters_is_refused_with_a_fix(qbo: QBOSimulator, number: str) -> None:
    inv = _invoice(number, "Co", "CO", [_line("product", Decimal("1"), Decimal("10"), "d", "P", False)],
                   Decimal("0"), Decimal("0"), "", "")
    with pytest.raises(MappingError) as info:
        build_document(inv, Prefs(), _refs_for(inv, Prefs(), qbo))
    _assert_one_line(info.value)
    assert "21" in info.value.reason and info.value.fix


def test_empty_and_zero_invoices_are_refused_readably(qbo: QBOSimulator) -> None:
    for lines in ([], [_line("product", Decimal("0"), Decimal("10"), "free", "P", False)]):
        inv = _invoice("ZERO-1", "Co", "CO", lines, Decimal("0"), Decimal("0"), "", "")
        with pytest.raises(MappingError) as info:
            build_document(inv, Prefs(), _refs_for(inv, Prefs(), qbo))
        _assert_one_line(info.value)
        assert "zero" in str(info.value)


def test_negative_invoice_becomes_a_credit_memo_with_positive_amounts(qbo: QBOSimulator) -> None:
    inv = _invoice("CM-1", "Co", "CO", [_line("product", Decimal("-2"), Decimal("12.505"), "refund", "P", True)],
                   Decimal("0"), Decimal("1.23"), "", "")
    doc = _check(inv, Prefs(), qbo, post=True)
    assert doc.entity == "CreditMemo" and doc.expected_total == Decimal("26.24")
    assert [ln["Amount"] for ln in doc.payload["Line"]] == [Decimal("25.01")]
    assert all(ln["Amount"] > 0 for ln in doc.payload["Line"])


def test_missing_company_from_connectwise_is_a_clear_error() -> None:
    from cwqbo.connectwise.records import build_invoice

    raw = {"id": 5, "invoiceNumber": "X1", "date": "2026-01-01T00:00:00Z", "subtotal": 1, "total": 1,
           "salesTax": 0, "status": {"id": 3, "name": "Closed"}, "type": "Standard"}
    with pytest.raises(CwqboError) as info:
        build_invoice(raw)
    _assert_one_line(info.value)
    assert "company" in str(info.value)


# -- through the engine --------------------------------------------------------------------------------

@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[sv.Sandbox, Store, ManualClock]]:
    clock = ManualClock(start=1_795_500_000.0)
    sandbox = sv.Sandbox(seed=2, invoices=6, clock=clock)
    http.set_transport_override(sandbox.transport())
    store = Store.open(tmp_path / "cwqbo.db")
    try:
        yield sandbox, store, clock
    finally:
        store.close()
        http.set_transport_override(None)


def _run(sandbox: sv.Sandbox, store: Store, clock: ManualClock, prefs: Prefs | None = None) -> sync.SyncReport:
    qbo = QBOClient("http://127.0.0.1:9", sv.QBO_REALM_ID, DirectTokens(sandbox.qbo), clock=clock)
    cw = CWClient(site="127.0.0.1:9", company_id=sv.CW_COMPANY, public_key=sv.CW_PUBLIC_KEY,
                  private_key=sv.CW_PRIVATE_KEY, client_id=sv.CW_CLIENT_ID, codebase=sv.CW_CODEBASE,
                  scheme="http", clock=clock)
    deps = sync.SyncDeps(store, cw, qbo, prefs or Prefs(), Filters(), sv.QBO_REALM_ID, clock)
    return sync.run_sync(deps, sync.SyncOptions())


HOSTILE_COMPANIES = ["O'Brien \"Quotes\" & Sons", "A:B:C", "C:\\dir\\", "😀 Emoji 👩‍👩‍👧 Co", "x' OR '1'='1"]


def _add_hostile(sandbox: sv.Sandbox) -> dict[str, str]:
    """Hostile invoices next to the generated good ones; returns number → what is special about it."""
    cw = sandbox.cw
    added: dict[str, str] = {}
    for i, name in enumerate(HOSTILE_COMPANIES):
        company = {"id": 900 + i, "identifier": f"H{i}", "name": name}
        inv = cw.add_invoice(company=company, invoiceNumber=f"H-{i}",
                             products=[{"quantity": "2", "price": "19.995", "description": name + " \\\" ' :"}],
                             tax_rate=Decimal("0.0825"))
        added[inv["invoiceNumber"]] = "hostile name"
    added[cw.add_invoice(invoiceNumber="EMPTY-1")["invoiceNumber"]] = "empty"
    added[cw.add_invoice(invoiceNumber="ZERO-1", products=[{"quantity": "0", "price": "5"}])["invoiceNumber"]] = "zero"
    added[cw.add_invoice(invoiceNumber="NEG-1", products=[{"quantity": "-1", "price": "40.10"}])["invoiceNumber"]] = \
        "credit"
    added[cw.add_invoice(invoiceNumber="N" * 25, products=[{"quantity": "1", "price": "5"}])["invoiceNumber"]] = "long"
    added[cw.add_invoice(invoiceNumber="DESC-1", products=[{"quantity": "1", "price": "5",
                                                            "description": "Ж" * 5000}])["invoiceNumber"]] = "desc"
    added[cw.add_invoice(invoiceNumber="MANY-1", products=[{"quantity": "1", "price": "0.01"}] * 400)
          ["invoiceNumber"]] = "many lines"
    return added


def test_hostile_invoices_never_block_the_good_ones(world: tuple[sv.Sandbox, Store, ManualClock]) -> None:
    sandbox, store, clock = world
    added = _add_hostile(sandbox)
    closed = {s["id"] for s in sandbox.cw.to_state()["billing_statuses"] if s["closedFlag"]}
    good = [i["invoiceNumber"] for i in sandbox.cw.invoices()  # listed before the run batches them
            if i["id"] in sandbox.cw.unposted_ids() and i["status"]["id"] in closed
            and i["invoiceNumber"] not in added]
    assert len([n for n in good if len(n) <= 21]) >= 3
    report = _run(sandbox, store, clock)  # must not raise
    outcome = {i.number: i for i in report.items}
    docs = {d["DocNumber"]: d for e in ("Invoice", "CreditMemo") for d in sandbox.qbo.documents(e)}
    # every generated invoice that is a valid document still made it (the generator seeds one long number)
    for number in good:
        if len(number) <= 21:
            assert number in docs, f"good invoice {number} was blocked: {outcome.get(number)}"
    for number, why in added.items():
        item = outcome.get(number)
        if why in ("hostile name", "credit", "desc", "many lines"):
            assert item is not None and item.outcome == "created", (number, item)
            cw_inv = cache.get(store, item.cw_id)
            assert Decimal(str(docs[number]["TotalAmt"])) == abs(cw_inv.total), number
        elif why == "long":
            assert item is not None and item.outcome == "failed" and "21" in (item.error or "")
            assert "\n" not in (item.error or "")
        else:  # empty / zero: nothing booked, reported or skipped, never created
            assert number not in docs
    # hostile names kept their meaning (the colon is QBO's hierarchy separator)
    names = {c["DisplayName"] for c in sandbox.qbo.documents("Customer")}
    assert "O'Brien \"Quotes\" & Sons" in names and "x' OR '1'='1" in names and "A - B - C" in names
    # and a rerun books nothing twice
    again = _run(sandbox, store, clock)
    assert again.created == 0
    assert len({d["DocNumber"] for e in ("Invoice", "CreditMemo") for d in sandbox.qbo.documents(e)}) == len(docs)
    assert all(r.state != "intent" for r in ledger.all_rows(store))


@pytest.mark.parametrize("number", ["\n", "A\nB", "X\x1b[31mRED", "\t"])
def test_control_characters_in_an_invoice_number_keep_the_error_on_one_line(qbo: QBOSimulator, number: str) -> None:
    """Found by the property test above: an empty invoice numbered '\\n' produced a two-line error."""
    inv = _invoice(number, "Co", "CO", [], Decimal("0"), Decimal("0"), "", "")
    with pytest.raises(MappingError) as info:
        build_document(inv, Prefs(), _refs_for(inv, Prefs(), qbo))
    _assert_one_line(info.value)
    assert "\x1b" not in str(info.value)


def test_tax_only_invoice_without_lines_is_refused_not_sent_empty(qbo: QBOSimulator) -> None:
    """Found by the property test: zero subtotal + 0.01 sales tax produced a payload with no lines (QBO 2020)."""
    from cwqbo.mapping.document import readiness

    inv = _invoice("TAX-ONLY", "Co", "CO", [], Decimal("0"), Decimal("0.01"), "", "")
    with pytest.raises(MappingError) as info:
        build_document(inv, Prefs(), _refs_for(inv, Prefs(), qbo))
    _assert_one_line(info.value)
    assert "no lines" in str(info.value)
    assert readiness(inv, Prefs())[0] == "invalid"
