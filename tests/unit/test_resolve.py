"""Bulk resolution of QBO references against the QBO simulator (in-process, no sockets)."""

from __future__ import annotations

import httpx
import pytest

from cwqbo.clock import ManualClock
from cwqbo.errors import RemoteError
from cwqbo.mapping.customers import CustomerSpec
from cwqbo.mapping.refs import Needs, Refs
from cwqbo.settings.prefs import Prefs
from cwqbo.quickbooks.client import QBOClient
from cwqbo.sync.model import WouldCreate
from cwqbo.sync.resolve import NEW_ID, Resolver
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import DirectTokens, QBOSimulator
from cwqbo.state.store import Store

REALM = "9341453000000000"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> QBOSimulator:
    return QBOSimulator(clock, Faults())


def client(sim: QBOSimulator, clock: ManualClock) -> QBOClient:
    http = httpx.Client(transport=httpx.MockTransport(sim.handle))
    return QBOClient("http://sim.test", REALM, DirectTokens(sim), clock=clock, client=http)


@pytest.fixture
def store() -> Store:
    return Store.memory()


def spec(cid: int, name: str) -> CustomerSpec:
    return CustomerSpec(key=name, display_name=name, company_name=name, cw_company_id=cid, identifier=f"C{cid}",
                        fallback_name=f"{name} (CW {cid})")


def need(cid: int, name: str, items: set[str] | None = None, **kw: set[str]) -> Needs:
    return Needs(customer=spec(cid, name), items=items if items is not None else {"Services"}, **kw)


def resolver(sim: QBOSimulator, clock: ManualClock, store: Store, prefs: Prefs | None = None,
             country: str | None = "US") -> Resolver:
    return Resolver(client(sim, clock), store, REALM, prefs or Prefs(), country=country)


def customers(sim: QBOSimulator) -> dict[str, str]:
    return {c["DisplayName"]: c["Id"] for c in sim.documents("Customer")}


def test_200_invoices_over_40_companies_take_a_handful_of_calls(sim, clock, store, monkeypatch) -> None:
    needs = {i: need(1 + i % 40, f"Company {1 + i % 40:02d}", {"Services", "Hours", "Hardware"})
             for i in range(200)}
    qbo = client(sim, clock)
    monkeypatch.setattr(qbo, "batch", lambda *a, **kw: pytest.fail("the batch budget is kept for documents"))
    res = Resolver(qbo, store, REALM, Prefs(), country="US").resolve(needs)
    assert res.errors == {}
    assert len(res.refs) == 200
    lookups = qbo.calls - 40
    assert lookups <= 8 and res.calls_used == qbo.calls  # a few IN (...) queries, then one create per customer
    made = customers(sim)
    assert len(made) == 40
    assert res.refs[0].customer_id == made["Company 01"] and res.refs[40].customer_id == made["Company 01"]
    assert res.refs[7].items["Hardware"].id == "4"
    # A second run finds everything in the cache: one verifying lookup, no creates.
    qbo2 = client(sim, clock)
    again = Resolver(qbo2, store, REALM, Prefs(), country="US").resolve(needs)
    assert qbo2.calls <= 12 and again.created == []  # verifying lookups only: ids, names, preferences
    assert again.refs[3].customer_id == res.refs[3].customer_id


def test_names_taken_by_vendor_or_employee_get_the_fallback(sim, clock, store) -> None:
    res = resolver(sim, clock, store).resolve({1: need(17, "Northwind Traders"), 2: need(18, "Jordan Lee"),
                                               3: need(19, "Contoso")})
    assert res.errors == {}
    made = customers(sim)
    assert set(made) == {"Northwind Traders (CW 17)", "Jordan Lee (CW 18)", "Contoso"}
    assert res.refs[1].customer_id == made["Northwind Traders (CW 17)"]
    assert sim.get("Vendor", "1")["DisplayName"] == "Northwind Traders"


@pytest.mark.parametrize("name", ["O'Brien & Sons", "Zürich Ärzte GmbH", "Back\\slash ' OR 1=1", "日本商事"])
def test_awkward_names_resolve_and_adopt_on_the_next_run(sim, clock, name) -> None:
    first = resolver(sim, clock, Store.memory()).resolve({1: need(5, name)})
    assert first.errors == {} and [c.name for c in first.created] == [name]
    # A fresh store must find the same customer by name (the query matched exactly), not make another.
    second = resolver(sim, clock, Store.memory()).resolve({1: need(5, name)})
    assert second.created == [] and second.refs[1].customer_id == first.refs[1].customer_id
    assert len(sim.documents("Customer")) == 1


def test_colon_in_a_name_is_made_qbo_safe(sim, clock, store) -> None:
    res = resolver(sim, clock, store).resolve({1: need(6, "Acme: West")})
    assert res.errors == {}
    assert list(customers(sim)) == ["Acme - West"]


def test_crash_after_customer_create_before_recording_makes_no_duplicate(sim, clock) -> None:
    needs = {i: need(100 + i, f"Client {i}") for i in range(35)}  # 35 creates, 8 at a time
    first = resolver(sim, clock, Store.memory()).resolve(needs)
    assert len(first.created) == 35
    # The store was lost (crash before commit): a new resolver on an empty store runs again.
    second = resolver(sim, clock, Store.memory()).resolve(needs)
    assert second.created == [] and second.errors == {}
    assert len(sim.documents("Customer")) == 35
    assert {i: r.customer_id for i, r in second.refs.items()} == {i: r.customer_id for i, r in first.refs.items()}


def test_duplicate_name_fault_is_adopted(sim, clock, store, monkeypatch) -> None:
    # The lookup says the name is free, but by the time the batch runs someone created it: QBO answers 6240.
    r = resolver(sim, clock, store)
    real = r._queries

    def lookup_then_race(statements):  # type: ignore[no-untyped-def]
        out = real(statements)
        if not sim.documents("Customer"):
            sim.add("Customer", {"DisplayName": "Racy Ltd"})
        return out

    monkeypatch.setattr(r, "_queries", lookup_then_race)
    res = r.resolve({1: need(9, "Racy Ltd")})
    assert res.errors == {} and res.created == []
    assert res.refs[1].customer_id == customers(sim)["Racy Ltd"]
    assert len(sim.documents("Customer")) == 1


def test_two_cw_companies_with_one_name_get_distinct_customers(sim, clock, store) -> None:
    res = resolver(sim, clock, store).resolve({1: need(30, "Acme"), 2: need(31, "Acme")})
    assert res.errors == {}
    made = customers(sim)
    assert res.refs[1].customer_id == made["Acme"] and res.refs[2].customer_id == made["Acme (CW 31)"]


def test_dry_run_creates_nothing_and_lists_what_it_would(sim, clock, store) -> None:
    prefs = Prefs()
    prefs.items.create_missing = True
    res = resolver(sim, clock, store, prefs).resolve({1: need(1, "New Co", {"Services", "Widgets"})}, dry_run=True)
    assert sim.documents("Customer") == []
    assert len(sim.documents("Item")) == 7
    assert set(res.would_create) == {WouldCreate("customer", "New Co"), WouldCreate("item", "Widgets")}
    assert res.refs[1].customer_id == NEW_ID and res.refs[1].items["Services"].id == "1"
    assert store.db["qbo_refs"].count == 0


def test_missing_item_is_an_error_unless_create_missing(sim, clock, store) -> None:
    res = resolver(sim, clock, store).resolve({1: need(1, "A", {"Widgets"}), 2: need(2, "B")})
    assert 1 not in res.refs and "no QBO item 'Widgets'" in res.errors[1] and "items.create_missing" in res.errors[1]
    assert 2 in res.refs
    prefs = Prefs()
    prefs.items.create_missing = True
    res2 = resolver(sim, clock, store, prefs).resolve({1: need(1, "A", {"Widgets"})})
    assert res2.errors == {}
    item = sim.get("Item", res2.refs[1].items["Widgets"].id)
    assert item["Type"] == "Service" and item["IncomeAccountRef"]["value"] == "1"  # the Services income account


def test_stale_cached_customer_is_resolved_again(sim, clock, store) -> None:
    first = resolver(sim, clock, store).resolve({1: need(1, "Gone Ltd")})
    old = first.refs[1].customer_id
    row = dict(sim._entities["Customer"][old])
    row["Active"] = False
    row["DisplayName"] = "Gone Ltd (deleted)"
    sim._entities["Customer"][old] = row
    second = resolver(sim, clock, store).resolve({1: need(1, "Gone Ltd")})
    assert second.errors == {}
    assert second.refs[1].customer_id != old and second.refs[1].customer_id == customers(sim)["Gone Ltd"]


def test_terms_classes_departments_custom_fields_and_preferences(sim, clock, store) -> None:
    res = resolver(sim, clock, store, country=None).resolve({
        1: need(1, "A", terms={"Net 30"}, classes={"Projects"}, departments={"Field Services"},
                custom_fields={"Customer PO", "Ticket"}),
        2: need(2, "B", terms={"Net 99"}, custom_fields={"Nope"})})
    refs: Refs = res.refs[1]
    assert refs.terms == {"Net 30": "3"} and refs.classes == {"Projects": "5000000000000000002"}
    assert refs.departments == {"Field Services": "2"}
    assert refs.custom_fields == {"Customer PO": "1", "Ticket": "3"}
    assert refs.us and refs.us_automated_tax and refs.class_per_line
    assert "no QBO term 'Net 99'" in res.errors[2] and "custom field 'Nope'" in res.errors[2]


def test_non_us_tax_codes_by_name(clock, store) -> None:
    sim = QBOSimulator(clock, Faults(), country="CA")
    codes = {c["Name"]: c["Id"] for c in sim.documents("TaxCode")}
    name = sorted(codes)[0]
    res = resolver(sim, clock, store, country="CA").resolve({1: need(1, "A", tax_codes={name}),
                                                              2: need(2, "B", tax_codes={"Martian VAT"})})
    assert res.refs[1].tax_codes == {name: codes[name]} and not res.refs[1].us
    assert not res.refs[1].us_automated_tax
    assert "no QBO tax code 'Martian VAT'" in res.errors[2]


def test_customer_creation_off_is_an_error(sim, clock, store) -> None:
    prefs = Prefs()
    prefs.fields.create_missing_customers = False
    res = resolver(sim, clock, store, prefs).resolve({1: need(1, "Nobody")})
    assert "no QBO customer 'Nobody'" in res.errors[1] and sim.documents("Customer") == []


def test_inactive_same_name_customer_is_reported(sim, clock, store) -> None:
    sim.add("Customer", {"DisplayName": "Sleepy Co", "Active": False})
    res = resolver(sim, clock, store).resolve({1: need(1, "Sleepy Co")})
    assert "inactive" in res.errors[1] and len(sim.documents("Customer")) == 1


def test_refused_lookup_is_a_remote_error(sim, clock, store) -> None:
    r = resolver(sim, clock, store)
    sim._state["entities"].pop("Term")  # the simulator now rejects Term queries
    with pytest.raises(RemoteError, match="lookup"):
        r.resolve({1: need(1, "A", terms={"Net 30"})})


def test_cache_survives_reopening_the_store_file(sim, clock, tmp_path) -> None:
    path = tmp_path / "cwqbo.db"
    with Store.open(path) as s:
        first = resolver(sim, clock, s).resolve({1: need(1, "Kept Ltd")})
    with Store.open(path) as s:
        rows = {r["kind"]: r["qbo_id"] for r in s.db["qbo_refs"].rows}
        assert rows["customer"] == first.refs[1].customer_id and rows["item"] == "1"
        sim.add("Customer", {"DisplayName": "Kept Ltd (CW 1)"})  # a name clash now can't change the choice
        again = resolver(sim, clock, s).resolve({1: need(1, "Kept Ltd")})
        assert again.refs[1].customer_id == first.refs[1].customer_id and again.created == []


def test_nothing_to_resolve_costs_no_call(sim, clock, store) -> None:
    qbo = client(sim, clock)
    res = Resolver(qbo, store, REALM, Prefs()).resolve({})
    assert res.refs == {} and qbo.calls == 0


def test_creates_beyond_the_singles_limit_go_30_to_a_batch_call(sim, clock, monkeypatch) -> None:
    calls: list[int] = []
    needs = {i: need(300 + i, f"Batchable {i}") for i in range(35)}
    tight = resolver(sim, clock, Store.memory())
    tight.singles_limit = 5  # the single budget can start only 5 before the queued documents are sent
    real = type(tight.qbo).batch
    monkeypatch.setattr(type(tight.qbo), "batch", lambda self, items, request_id=None, **kw: calls.append(len(items))
                        or real(self, items, request_id))
    singles: list[str] = []
    create = tight.qbo.create
    tight.qbo.create = (  # type: ignore[method-assign]
        lambda entity, payload, rid: singles.append(entity) or create(entity, payload, rid))
    assert tight.resolve(needs).errors == {} and calls == [30] and singles == ["Customer"] * 5
    roomy = resolver(sim, clock, Store.memory())  # a handful beyond the limit is not worth a document's slot
    roomy.singles_limit = 30
    more = {i: need(400 + i, f"Single {i}") for i in range(35)}
    calls.clear()
    assert roomy.resolve(more).errors == {} and calls == []
    assert len([c for c in customers(sim) if c.startswith(("Batchable", "Single"))]) == 70


def test_a_second_run_verifies_cached_customers_by_id_without_looking_up_names(sim, clock, store) -> None:
    needs = {i: need(1 + i, f"Company {i}") for i in range(60)}
    first = resolver(sim, clock, store).resolve(needs)
    assert first.errors == {} and len(first.created) == 60
    statements: list[str] = []
    again = resolver(sim, clock, store)
    real = again.qbo.query
    again.qbo.query = lambda text: statements.append(text) or real(text)  # type: ignore[method-assign]
    second = again.resolve(needs)
    assert second.created == [] and second.refs[5].customer_id == first.refs[5].customer_id
    assert not any("DisplayName" in text or "Name IN" in text for text in statements)  # no name lookups
    assert sum("FROM Customer" in text.replace("from", "FROM") for text in statements) == 1  # 60 cached ids


def test_a_name_a_vendor_holds_gets_the_fallback_when_customers_go_in_batch_calls(sim, clock, store) -> None:
    # No vendor is looked up beforehand: QBO's 6240 on the batch item tells, and the company is chosen again.
    batched = resolver(sim, clock, store)
    batched.singles_limit = 0
    needs = {i: need(50 + i, f"Batch Co {i}") for i in range(12)} | {99: need(17, "Northwind Traders")}
    res = batched.resolve(needs)
    assert res.errors == {}
    made = customers(sim)
    assert res.refs[99].customer_id == made["Northwind Traders (CW 17)"] and "Northwind Traders" not in made
    assert sim.get("Vendor", "1")["DisplayName"] == "Northwind Traders"
