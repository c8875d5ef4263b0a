"""The simulated ConnectWise accounting interface: GL entries, unposted rows, GL export, batches, entries.

What a client would notice: ids that never coincide, an export that changes nothing and selects by the
configured id, batches of GL entry ids only, invoices leaving the unposted list only when all their
entries are batched, and 400s (never silent empties) for anything outside the schema.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.sandbox.connectwise.simulator import CWSimulator
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.generator import generate
from cwqbo.sandbox.server import Sandbox

BASE = "http://cw.test/v2026_1/apis/3.0"
DEC_1 = 1_796_083_200.0
EXPORT = "/finance/accounting/export"
BATCHES = "/finance/accounting/batches"
UNPOSTED = "/finance/accounting/unpostedinvoices"


@pytest.fixture()
def sim() -> CWSimulator:
    cw = CWSimulator(ManualClock(DEC_1), Faults())
    cw.load(generate(7, 80, no_gl_invoice=True))
    return cw


def client(sim: CWSimulator, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(sim.handle), base_url=BASE,
                        auth=("cwqbo_demo+sandbox-public", "sandbox-private"),
                        headers={"clientId": "00000000-0000-4000-8000-00000000c1d0", **(headers or {})})


def body(resp: httpx.Response) -> Any:
    return money.loads(resp.content)


def with_gl(sim: CWSimulator) -> list[int]:
    """Unposted invoices that have GL entries (i.e. exportable)."""
    return [i for i in sim.unposted_ids() if sim.gl_entries_of(i)]


def test_gl_entry_row_and_invoice_ids_never_coincide(sim: CWSimulator) -> None:
    invoice_ids = {i["id"] for i in sim.invoices()}
    rows = body(client(sim).get(UNPOSTED, params={"pageSize": 1000}))
    row_ids = {r["id"] for r in rows}
    gl_ids = set(sim.unbatched_gl_entry_ids())
    for b in sim.batches():
        gl_ids |= set(sim.batch_entry_ids(b["id"]))
    assert rows and all(r["id"] != r["billingLogId"] and r["billingLogId"] in invoice_ids for r in rows)
    assert gl_ids and not gl_ids & invoice_ids and not gl_ids & row_ids and not row_ids & invoice_ids
    assert {r["billingLogId"]: r["id"] for r in rows} == {i: sim.unposted_row_id(i) for i in sim.unposted_ids()}


def test_closed_invoice_has_line_tax_and_receivable_entries_that_balance(sim: CWSimulator) -> None:
    inv = sim.add_invoice(invoiceNumber="GL-1", tax_rate=money.to_decimal("0.1"),
                          products=[{"quantity": 3, "price": money.to_decimal("10.00"), "quantityCancelled": 1}],
                          time_entries=[{"actualHours": 2, "hourlyRate": 100, "agreementHours": money.to_decimal("0.5")}])
    entries = sim.gl_entries_of(inv["id"])
    assert [e["kind"] for e in entries] == ["product", "time", "tax", "ar"]
    assert [e["amount"] for e in entries] == [money.to_decimal(x) for x in ("20.00", "150.00", "2.00", "172.00")]
    assert sum(e["debit"] for e in entries) == sum(e["credit"] for e in entries) == inv["total"]
    assert sim.gl_entries_of(sim.add_invoice(invoiceNumber="OPEN", closed=False)["id"]) == []


def test_unposted_rows_filter_on_every_field_including_billing_log_id(sim: CWSimulator) -> None:
    http = client(sim)
    ids = with_gl(sim)[:3]
    rows = body(http.get(UNPOSTED, params={"conditions": f"billingLogId in ({','.join(map(str, ids))})"}))
    assert sorted(r["billingLogId"] for r in rows) == sorted(ids)
    row = rows[0]
    assert body(http.get(UNPOSTED, params={"conditions": f"id = {row['id']}"})) == [row]
    assert body(http.get(f"{UNPOSTED}/{row['id']}")) == row
    assert http.get(f"{UNPOSTED}/{row['billingLogId']}").status_code == 404  # the invoice id is not the row id
    number = body(http.get(UNPOSTED, params={"conditions": f'invoiceNumber = "{row["invoiceNumber"]}"'}))
    assert number == [row]
    by_company = body(http.get(UNPOSTED, params={"conditions": f"company/id = {row['company']['id']}",
                                                 "pageSize": 1000}))
    assert row in by_company and all(r["company"]["id"] == row["company"]["id"] for r in by_company)


def test_export_changes_nothing_and_lists_gl_entry_ids(sim: CWSimulator) -> None:
    http = client(sim)
    before = (sim.unposted_ids(), sim.unbatched_gl_entry_ids(), sim.batches())
    doc = body(http.post(EXPORT, json={"batchIdentifier": "LOOK", "exportInvoicesFlag": True}))
    assert (sim.unposted_ids(), sim.unbatched_gl_entry_ids(), sim.batches()) == before
    by_number = {t["documentNumber"]: t for t in doc["transactions"]}
    expected = {sim.invoice(i)["invoiceNumber"]: i for i in with_gl(sim)}
    assert set(by_number) == set(expected)
    for number, t in by_number.items():
        inv = sim.invoice(expected[number])
        assert t["glEntryIds"] == ",".join(str(e["id"]) for e in sim.gl_entries_of(inv["id"]))
        assert t["total"] == inv["total"] and t["salesTax"] == inv["salesTax"]
        assert sum((d["total"] for d in t["detail"]), money.to_decimal(0)) == inv["subtotal"]
    assert doc["expenses"] == [] and doc["purchaseTransactions"] == []  # only when their flags are set
    others = body(http.post(EXPORT, json={"exportExpensesFlag": True, "exportProductsFlag": True}))
    assert others["transactions"] == [] and others["expenses"] and others["purchaseTransactions"]


def test_closed_invoice_without_gl_entries_is_unposted_for_ever_but_never_exported(sim: CWSimulator) -> None:
    [stuck] = sim.no_gl_invoice_ids()
    assert stuck in sim.unposted_ids() and sim.gl_entries_of(stuck) == []
    http = client(sim)
    row = sim.unposted_row_id(stuck)
    doc = body(http.post(EXPORT, json={"exportInvoicesFlag": True, "includedInvoiceIds": [row]}))
    assert doc["transactions"] == []
    everything = body(http.post(EXPORT, json={"exportInvoicesFlag": True}))
    assert sim.invoice(stuck)["invoiceNumber"] not in {t["documentNumber"] for t in everything["transactions"]}


def test_included_invoice_ids_take_the_configured_id(sim: CWSimulator) -> None:
    http = client(sim)
    pick = with_gl(sim)[:2]
    numbers = sorted(sim.invoice(i)["invoiceNumber"] for i in pick)
    rows = [sim.unposted_row_id(i) for i in pick]

    def exported(ids: list[int], **extra: Any) -> list[str]:
        doc = body(http.post(EXPORT, json={"exportInvoicesFlag": True, "includedInvoiceIds": ids, **extra}))
        return sorted(t["documentNumber"] for t in doc["transactions"])

    assert sim.export_invoice_id_field == "id"
    assert exported(rows) == numbers
    assert exported(pick) == []  # invoice ids are unknown row ids: they select nothing
    assert exported(rows, excludedInvoiceIds=rows[:1]) == numbers[1:]
    sim.set_export_invoice_id_field("billingLogId")
    assert exported(pick) == numbers and exported(rows) == []
    with pytest.raises(ValueError):
        sim.set_export_invoice_id_field("invoiceNumber")


def test_export_id_setting_through_the_control_route_survives_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    box = Sandbox(seed=3, invoices=20, state_file=state)
    control = httpx.Client(transport=box.transport(), base_url="http://sandbox.test")
    assert control.post("/_sandbox/cw/settings", json={"export_invoice_id_field": "nope"}).status_code == 400
    resp = control.post("/_sandbox/cw/settings", json={"export_invoice_id_field": "billingLogId"})
    assert resp.json() == {"export_invoice_id_field": "billingLogId"}
    assert Sandbox(state_file=state).cw.export_invoice_id_field == "billingLogId"
    assert control.get("/_sandbox/state").json()["cw"]["export_invoice_id_field"] == "billingLogId"


def test_export_and_batch_refuse_fields_outside_their_request_models(sim: CWSimulator) -> None:
    http = client(sim)
    for path, payload in ((EXPORT, {"exportInvoicesFlag": True, "invoiceIds": [1]}),
                          (BATCHES, {"batchIdentifier": "B", "exportInvoicesFlag": True, "processedRecordIds": [1],
                                     "includedInvoiceIds": [1]})):
        resp = http.post(path, json=payload)
        assert resp.status_code == 400 and resp.json()["code"] == "InvalidObject", path
        assert resp.json()["errors"][0]["field"] in ("invoiceIds", "includedInvoiceIds")
    assert http.post(EXPORT, json={"batchIdentifier": "none"}).status_code == 400  # no export flag


@pytest.mark.parametrize("ids", [None, [], "1,2"])
def test_batch_without_gl_entry_ids_is_refused(sim: CWSimulator, ids: Any) -> None:
    payload: dict[str, Any] = {"batchIdentifier": "B", "exportInvoicesFlag": True}
    if ids is not None:
        payload["processedRecordIds"] = ids
    resp = client(sim).post(BATCHES, json=payload)
    assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "processedRecordIds"
    assert all(b["batchIdentifier"] != "B" for b in sim.batches())


def test_invoice_ids_are_not_gl_entries_and_batch_nothing(sim: CWSimulator) -> None:
    before = sim.unposted_ids()
    resp = client(sim).post(BATCHES, json={"batchIdentifier": "WRONG", "exportInvoicesFlag": True,
                                           "processedRecordIds": with_gl(sim)[:3]})
    assert resp.status_code == 400 and "not found" in resp.json()["errors"][0]["message"]
    assert sim.unposted_ids() == before and all(b["batchIdentifier"] != "WRONG" for b in sim.batches())


def test_invoice_leaves_the_unposted_list_only_when_all_its_entries_are_batched(sim: CWSimulator) -> None:
    http = client(sim)
    target = with_gl(sim)[0]
    ids = [e["id"] for e in sim.gl_entries_of(target)]
    first = http.post(BATCHES, json={"batchIdentifier": "PART", "exportInvoicesFlag": True,
                                     "processedRecordIds": ids[:-1]})
    assert first.status_code == 201 and target in sim.unposted_ids()
    [t] = body(http.post(EXPORT, json={"exportInvoicesFlag": True,
                                       "includedInvoiceIds": [sim.unposted_row_id(target)]}))["transactions"]
    assert t["glEntryIds"] == str(ids[-1])  # only what is still unbatched
    assert http.post(BATCHES, json={"batchIdentifier": "REST", "exportInvoicesFlag": True,
                                    "processedRecordIds": ids[-1:]}).status_code == 201
    assert target not in sim.unposted_ids()
    assert sim.batch_entry_ids("PART") == ids[:-1] and sim.invoices_in_batch("REST") == [target]


def test_batching_a_wrong_gl_id_visibly_batches_the_wrong_thing(sim: CWSimulator) -> None:
    http = client(sim)
    doc = body(http.post(EXPORT, json={"exportExpensesFlag": True}))
    expense = doc["expenses"][0]
    stray = next(e for e in sim.unbatched_gl_entry_ids()
                 if e not in {g["id"] for i in sim.unposted_ids() for g in sim.gl_entries_of(i)})
    resp = http.post(BATCHES, json={"batchIdentifier": "OOPS", "exportInvoicesFlag": True,
                                    "processedRecordIds": [stray]})
    assert resp.status_code == 201 and body(resp)["transactions"] == []
    batch_id = next(b["id"] for b in sim.batches() if b["batchIdentifier"] == "OOPS")
    [entry] = body(http.get(f"{BATCHES}/{batch_id}/entries"))
    assert "invoice" not in entry and ("expense" in entry or "purchaseOrder" in entry)
    assert sim.invoices_in_batch("OOPS") == []
    assert expense["id"] and expense["total"] > 0


def test_batch_entries_page_filter_and_count(sim: CWSimulator) -> None:
    http = client(sim)
    pick = with_gl(sim)[:4]
    batch = sim.batch_invoices("OTHER-TOOL", pick)
    assert set(batch) == {"id", "batchIdentifier", "closedFlag", "exportInvoicesFlag", "exportExpensesFlag",
                          "exportProductsFlag", "_info"}
    url = f"{BATCHES}/{batch['id']}/entries"
    total = http.get(f"{url}/count").json()["count"]
    assert total == len(sim.batch_entry_ids("OTHER-TOOL")) and total > 4
    first = http.get(url, params={"pageSize": 2, "orderBy": "id desc"})
    assert len(first.json()) == 2 and "next" in first.links
    assert [e["id"] for e in first.json()] == sorted(sim.batch_entry_ids("OTHER-TOOL"), reverse=True)[:2]
    mine = body(http.get(url, params={"conditions": f"invoice/id = {pick[0]}", "pageSize": 1000}))
    assert {e["id"] for e in mine} == {e["id"] for e in sim.gl_entries_of(pick[0])}
    assert http.get(url, params={"conditions": "invoiceId = 1"}).status_code == 400
    assert http.get(f"{BATCHES}/999999/entries").status_code == 404


def test_drop_after_commit_still_commits_the_batch(sim: CWSimulator) -> None:
    from cwqbo.sandbox.faults import DropConnection

    target = with_gl(sim)[0]
    sim.faults.update({"drop_after_commit_next": 1})
    with pytest.raises(DropConnection):
        client(sim).post(BATCHES, json={"batchIdentifier": "DROP", "exportInvoicesFlag": True,
                                        "processedRecordIds": [e["id"] for e in sim.gl_entries_of(target)]})
    assert target not in sim.unposted_ids() and sim.invoices_in_batch("DROP") == [target]


@pytest.mark.parametrize("params", [
    {"conditions": "status/isClosed = true"},
    {"conditions": "location/id = 1"},
    {"conditions": "id = 1 and nope = 2"},
    {"orderBy": "businessUnit/name"},
    {"fields": "id,extPrice"},
])
def test_fields_outside_the_schema_are_400_not_an_empty_list(sim: CWSimulator, params: dict[str, str]) -> None:
    resp = client(sim).get("/finance/invoices", params=params)
    assert resp.status_code == 400
    assert resp.json()["code"] == "InvalidObject" and resp.json()["errors"][0]["code"] == "InvalidField"


def test_top_level_last_updated_reads_info_last_updated(sim: CWSimulator) -> None:
    http = client(sim)
    inv = sim.invoices()[0]
    sim.clock.sleep(3600)  # type: ignore[attr-defined]
    sim.update_invoice(inv["id"], reference="edited")
    stamp = sim.invoice(inv["id"])["_info"]["lastUpdated"]
    for cond in (f"lastUpdated >= [{stamp}]", f"_info/lastUpdated >= [{stamp}]"):
        assert [r["id"] for r in body(http.get("/finance/invoices", params={"conditions": cond}))] == [inv["id"]]
    rows = body(http.get("/finance/invoices", params={"orderBy": "lastUpdated desc", "pageSize": 1}))
    assert rows[0]["id"] == inv["id"]
    assert http.get("/finance/invoices", params={"conditions": "status/id in (3,4) and company/id = 1"}).status_code == 200


def test_accept_header_is_recorded_with_or_without_a_version(sim: CWSimulator) -> None:
    pinned = "application/vnd.connectwise.com+json; version=2025.1"
    assert client(sim, {"Accept": pinned}).get("/finance/invoices/count").status_code == 200
    assert sim.request_log[-1] == ("GET", "/v2026_1/apis/3.0/finance/invoices/count", pinned)
    assert client(sim).get("/finance/invoices/count").status_code == 200
    assert sim.request_log[-1][2] != pinned


def test_id_and_billing_log_id_lookups_stay_fast_on_a_large_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    big = CWSimulator(ManualClock(DEC_1), Faults())
    big.load(generate(1, 20_000), copy_data=False)
    http = client(big)
    built: list[int] = []
    real = big._unposted_record
    monkeypatch.setattr(big, "_unposted_record", lambda inv: built.append(inv["id"]) or real(inv))
    assert len(body(http.get(UNPOSTED, params={"conditions": "billingLogId in (1001, 1002, 1003) and total > 0"}))) <= 3
    assert len(built) <= 3  # looked up, not built for all 20,000 invoices and filtered
    ids = ",".join(str(1001 + i) for i in range(0, 20_000, 40))
    started = time.perf_counter()
    for path, cond in ((UNPOSTED, f"billingLogId in ({ids})"), ("/finance/invoices", f"id in ({ids})"),
                       ("/time/entries", f"invoice/id in ({ids})")):
        for _ in range(5):
            assert http.get(path, params={"conditions": cond, "pageSize": 1000}).status_code == 200
    assert time.perf_counter() - started < 3.0
