"""The ConnectWise simulator over HTTP (in-process): auth, paging, filtering, permissions, batches, faults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.sandbox.connectwise.simulator import CWSimulator
from cwqbo.sandbox.faults import DropConnection, Faults
from cwqbo.sandbox.generator import PRIOR_BATCH, generate, line_amount

CLIENT_ID = "00000000-0000-4000-8000-00000000c1d0"
AUTH = ("cwqbo_demo+sandbox-public", "sandbox-private")
BASE = "http://cw.test/v2026_1/apis/3.0"
DEC_1 = 1_796_083_200.0  # 2026-12-01, after every generated invoice


@pytest.fixture()
def sim() -> CWSimulator:
    cw = CWSimulator(ManualClock(DEC_1), Faults())
    cw.load(generate(7, 60))
    return cw


def client(sim: CWSimulator, *, auth: tuple[str, str] | None = AUTH, client_id: str | None = CLIENT_ID
           ) -> httpx.Client:
    headers = {"clientId": client_id} if client_id else {}
    return httpx.Client(transport=httpx.MockTransport(sim.handle), base_url=BASE, auth=auth, headers=headers)


def get(sim: CWSimulator, path: str, **params: Any) -> httpx.Response:
    return client(sim).get(path, params=params)


def body(resp: httpx.Response) -> Any:
    return money.loads(resp.content)


def test_company_info_gives_the_codebase_without_auth(sim: CWSimulator) -> None:
    http = httpx.Client(transport=httpx.MockTransport(sim.handle))
    info = http.get("http://cw.test/login/companyinfo/CWQBO_DEMO").json()
    assert info["Codebase"] == "v2026_1/" and info["CompanyID"] == "cwqbo_demo"
    assert http.get("http://cw.test/login/companyinfo/other").status_code == 404


@pytest.mark.parametrize("auth,client_id", [
    (("cwqbo_demo+sandbox-public", "wrong"), CLIENT_ID),
    (("other+sandbox-public", "sandbox-private"), CLIENT_ID),
    (("cwqbo_demo+nope", "sandbox-private"), CLIENT_ID),
    (None, CLIENT_ID),
    (AUTH, None),
    (AUTH, "not-a-guid"),
    (AUTH, "11111111-1111-4111-8111-111111111111"),
])
def test_bad_credentials_get_401_json(sim: CWSimulator, auth: Any, client_id: str | None) -> None:
    resp = client(sim, auth=auth, client_id=client_id).get("/finance/invoices")
    assert resp.status_code == 401
    assert resp.json()["code"] == "Unauthorized" and resp.json()["message"]


def test_paging_with_link_headers_walks_every_invoice_once(sim: CWSimulator) -> None:
    http = client(sim)
    url: str | None = "/finance/invoices?pageSize=7&orderBy=id"
    seen: list[int] = []
    pages = 0
    while url:
        resp = http.get(url)
        assert resp.status_code == 200
        seen += [r["id"] for r in resp.json()]
        url = resp.links.get("next", {}).get("url")
        pages += 1
    assert sorted(seen) == seen and len(seen) == 60 == len(set(seen))
    assert pages == 9
    first = http.get("/finance/invoices", params={"pageSize": 7})
    assert "page=9" in first.links["last"]["url"]


def test_default_and_max_page_size(sim: CWSimulator) -> None:
    assert len(get(sim, "/finance/invoices").json()) == 25
    assert len(get(sim, "/finance/invoices", pageSize=5000).json()) == 60
    assert get(sim, "/finance/invoices", page=99).json() == []
    assert get(sim, "/finance/invoices", pageSize="ten").status_code == 400


def test_conditions_fields_and_order_by(sim: CWSimulator) -> None:
    resp = get(sim, "/finance/invoices", conditions='company/name = "Northwind Traders"',
               fields="id,invoiceNumber,company/name,total", orderBy="total desc", pageSize=1000)
    rows = body(resp)
    assert rows and all(set(r) == {"id", "invoiceNumber", "company", "total"} for r in rows)
    assert all(r["company"] == {"name": "Northwind Traders"} for r in rows)
    totals = [r["total"] for r in rows]
    assert totals == sorted(totals, reverse=True) and all(isinstance(t, (Decimal, int)) for t in totals)
    count = get(sim, "/finance/invoices/count", conditions='company/name = "Northwind Traders"').json()
    assert count == {"count": len(rows)}


def test_bad_conditions_get_400_with_api_error_body(sim: CWSimulator) -> None:
    resp = get(sim, "/finance/invoices", conditions="id = = 1")
    assert resp.status_code == 400
    assert resp.json()["code"] == "InvalidObject" and resp.json()["errors"][0]["field"] == "conditions"


def test_lines_for_invoices_sum_to_their_subtotal(sim: CWSimulator) -> None:
    invoices = body(get(sim, "/finance/invoices", pageSize=1000))
    id_list = ",".join(str(i["id"]) for i in invoices)
    cond = f"invoice/id in ({id_list})"
    products = body(get(sim, "/procurement/products", conditions=cond, pageSize=1000))
    times = body(get(sim, "/time/entries", conditions=cond, pageSize=1000))
    expenses = body(get(sim, "/expense/entries", conditions=cond, pageSize=1000))
    for inv in invoices:
        lines = [line_amount("product", p) for p in products if p["invoice"]["id"] == inv["id"]]
        lines += [line_amount("time", t) for t in times if t["invoice"]["id"] == inv["id"]]
        lines += [line_amount("expense", e) for e in expenses if e["invoice"]["id"] == inv["id"]]
        assert sum(lines, Decimal(0)) == inv["subtotal"], inv["invoiceNumber"]
        assert inv["total"] == inv["subtotal"] + inv["salesTax"]


def test_permission_none_gives_403_only_on_that_area(sim: CWSimulator) -> None:
    sim.set_permission("Time Entry", "None")
    resp = get(sim, "/time/entries")
    assert resp.status_code == 403 and resp.json()["code"] == "Forbidden"
    assert get(sim, "/time/entries/count").status_code == 403
    assert get(sim, "/expense/entries").status_code == 200
    settings = get(sim, "/system/securityroles/7/settings", pageSize=100).json()
    row = next(s for s in settings if s["moduleFunctionName"] == "Time Entry")
    assert row["inquireLevel"] == "None"
    member = get(sim, "/system/members").json()[0]
    assert member["securityRole"]["id"] == 7


def test_batch_takes_gl_entry_ids_and_refuses_them_twice(sim: CWSimulator) -> None:
    http = client(sim)
    unposted = http.get("/finance/accounting/unpostedinvoices", params={"pageSize": 1000}).json()
    pick = [r["billingLogId"] for r in unposted if r["billingLogId"] not in sim.no_gl_invoice_ids()][:3]
    gl_ids = [e["id"] for i in pick for e in sim.gl_entries_of(i)]
    resp = http.post("/finance/accounting/batches", json={"batchIdentifier": "CWQBO-1", "exportInvoicesFlag": True,
                                                          "processedRecordIds": gl_ids})
    assert resp.status_code == 201
    numbers = {sim.invoice(i)["invoiceNumber"] for i in pick}
    assert {t["documentNumber"] for t in resp.json()["transactions"]} == numbers
    assert sorted(int(x) for t in resp.json()["transactions"] for x in t["glEntryIds"].split(",")) == sorted(gl_ids)
    after = [r["billingLogId"] for r in http.get("/finance/accounting/unpostedinvoices", params={"pageSize": 1000}).json()]
    assert set(after) == {r["billingLogId"] for r in unposted} - set(pick)
    again = http.post("/finance/accounting/batches", json={"batchIdentifier": "CWQBO-2", "exportInvoicesFlag": True,
                                                           "processedRecordIds": gl_ids[:1]})
    assert again.status_code == 400 and "already been exported" in again.json()["errors"][0]["message"]
    dup = http.post("/finance/accounting/batches", json={"batchIdentifier": "cwqbo-1", "exportInvoicesFlag": True,
                                                         "processedRecordIds": sim.unbatched_gl_entry_ids()[:1]})
    assert dup.status_code == 400 and dup.json()["errors"][0]["code"] == "ObjectExists"
    listed = http.get("/finance/accounting/batches", params={"conditions": 'batchIdentifier = "CWQBO-1"'}).json()
    assert set(listed[0]) == {"id", "batchIdentifier", "closedFlag", "exportInvoicesFlag", "exportExpensesFlag",
                              "exportProductsFlag", "_info"}
    entries = http.get(f"/finance/accounting/batches/{listed[0]['id']}/entries", params={"pageSize": 1000}).json()
    assert sorted(e["id"] for e in entries) == sorted(gl_ids)
    assert {e["invoice"]["id"] for e in entries} == set(pick)
    assert http.delete(f"/finance/accounting/batches/{listed[0]['id']}").status_code == 204
    assert http.get("/finance/accounting/unpostedinvoices/count").json()["count"] == len(unposted)


def test_generated_prior_batch_and_open_invoices_are_not_unposted(sim: CWSimulator) -> None:
    prior = sim.invoices_in_batch(PRIOR_BATCH)
    unposted = set(sim.unposted_ids())
    assert prior and not unposted & set(prior)
    open_ids = {i["id"] for i in sim.invoices() if not sim.is_closed(i["id"])}
    assert open_ids and not open_ids & unposted
    assert all(sim.gl_entries_of(i) == [] for i in open_ids)  # no GL entries until an invoice is Closed
    resp = client(sim).post("/finance/accounting/batches",
                            json={"batchIdentifier": "X", "exportInvoicesFlag": True, "processedRecordIds": [min(open_ids)]})
    assert resp.status_code == 400 and "not found" in resp.text


def test_close_and_reopen_change_status_and_last_updated(sim: CWSimulator) -> None:
    inv = next(i for i in sim.invoices() if not sim.is_closed(i["id"]))
    before = inv["_info"]["lastUpdated"]
    sim.close_invoice(inv["id"])
    closed = get(sim, f"/finance/invoices/{inv['id']}").json()
    assert closed["status"]["name"] == "Closed" and closed["_info"]["lastUpdated"] > before
    assert inv["id"] in sim.unposted_ids()
    sim.reopen_invoice(inv["id"])
    assert inv["id"] not in sim.unposted_ids()
    hits = get(sim, "/finance/invoices", conditions=f'_info/lastUpdated > [{closed["_info"]["lastUpdated"]}]').json()
    assert [h["id"] for h in hits] == [inv["id"]]


def test_add_invoice_computes_totals_from_lines(sim: CWSimulator) -> None:
    inv = sim.add_invoice(invoiceNumber="T-1", company="Test Co", tax_rate=Decimal("0.1"),
                          products=[{"quantity": 3, "price": Decimal("19.99")}],
                          time_entries=[{"actualHours": Decimal("1.5"), "hourlyRate": Decimal("150")}],
                          expenses=[{"amount": Decimal("12.34")}])
    assert inv["subtotal"] == Decimal("59.97") + Decimal("225.00") + Decimal("12.34")
    assert inv["salesTax"] == Decimal("6.00") and inv["total"] == inv["subtotal"] + Decimal("6.00")
    got = get(sim, "/procurement/products", conditions=f"invoice/id = {inv['id']}").json()
    assert len(got) == 1 and got[0]["company"]["name"] == "Test Co"


def test_faults_throttle_error_and_drop_after_commit(sim: CWSimulator) -> None:
    sim.faults.update({"throttle_next": 1, "error_next": 1})
    assert get(sim, "/finance/invoices").status_code == 429
    assert get(sim, "/finance/invoices").status_code == 503
    assert get(sim, "/finance/invoices").status_code == 200
    target = next(i for i in sim.unposted_ids() if sim.gl_entries_of(i))
    sim.faults.update({"drop_after_commit_next": 1})
    with pytest.raises(DropConnection):
        client(sim).post("/finance/accounting/batches", json={
            "batchIdentifier": "B", "exportInvoicesFlag": True,
            "processedRecordIds": [e["id"] for e in sim.gl_entries_of(target)]})
    assert target not in sim.unposted_ids()  # committed even though the client never saw the answer
    assert any(b["batchIdentifier"] == "B" for b in sim.batches())


def test_state_round_trip_through_json(sim: CWSimulator) -> None:
    sim.close_invoice(sim.invoices()[0]["id"])
    sim.batch_invoices("RT", [i for i in sim.unposted_ids() if sim.gl_entries_of(i)][:2])
    other = CWSimulator(ManualClock(), Faults())
    other.from_state(money.loads(money.dumps(sim.to_state())))
    assert other.unposted_ids() == sim.unposted_ids()
    assert other.batches() == sim.batches()
    assert other.invoices_in_batch("RT") == sim.invoices_in_batch("RT")
    assert other.unbatched_gl_entry_ids() == sim.unbatched_gl_entry_ids()
    assert get(other, "/finance/invoices", pageSize=1000).content == get(sim, "/finance/invoices", pageSize=1000).content


def test_timeout_and_latency_faults_use_the_clock(sim: CWSimulator) -> None:
    clock = sim.clock
    assert isinstance(clock, ManualClock)
    start = clock.now()
    sim.faults.update({"timeout_next": 1, "timeout_seconds": 30.0})
    with pytest.raises(DropConnection):
        get(sim, "/finance/invoices")
    assert clock.now() - start == 30.0
    sim.faults.update({"latency_seconds": 0.5})
    assert get(sim, "/finance/invoices/count").status_code == 200
    assert clock.now() - start == 30.5


def test_long_in_lists_over_a_large_company_stay_fast() -> None:
    import time

    big = CWSimulator(ManualClock(DEC_1), Faults())
    big.load(generate(1, 5000), copy_data=False)
    id_list = ",".join(str(1001 + i) for i in range(0, 1000, 2))
    started = time.perf_counter()
    rows = get(big, "/procurement/products", conditions=f"invoice/id in ({id_list})", pageSize=1000).json()
    assert time.perf_counter() - started < 3.0
    assert rows and all((r["invoice"]["id"] - 1001) % 2 == 0 and r["invoice"]["id"] < 2001 for r in rows)
