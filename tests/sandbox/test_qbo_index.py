"""The QBO simulator's Id / DocNumber / name indexes: same answers as a scan, at a dict lookup's cost."""

from __future__ import annotations

import copy
import time
from typing import Any

from cwqbo.clock import ManualClock
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.index import IndexedTable
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator
from tests.sandbox.test_qbo_api import Api, fault, invoice_body, make_customer


def _sim() -> QBOSimulator:
    return QBOSimulator(ManualClock(), Faults())


def _ids(api: Api, text: str) -> list[str]:
    body = api.ok(api.query(text))["QueryResponse"]
    return [r["Id"] for rows in body.values() if isinstance(rows, list) for r in rows]


def test_every_table_is_indexed_and_state_round_trips_as_plain_data() -> None:
    sim = _sim()
    assert all(isinstance(t, IndexedTable) for t in sim._entities.values())
    state = sim.to_state()
    assert all(type(t) is dict for t in state["entities"].values())
    assert type(copy.deepcopy(sim._entities["Item"])) is dict
    other = _sim()
    other.from_state(state)
    assert isinstance(other._entities["Item"], IndexedTable)


def test_equality_and_in_on_indexed_fields_answer_like_a_scan() -> None:
    api = Api(_sim())
    cust = make_customer(api, "Acme Ltd")
    make_customer(api, "Beta Co")
    inv = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="CW-7")))["Invoice"]
    assert _ids(api, "select * from Customer where DisplayName = 'acme ltd'") == [cust["Id"]]  # case-insensitive
    assert _ids(api, "select * from Customer where DisplayName = 'acme'") == []
    assert _ids(api, "select * from Customer where DisplayName IN ('Beta Co', 'ACME LTD')") == \
        sorted(_ids(api, "select * from Customer"), key=int)
    assert _ids(api, f"select Id from Invoice where Id = '{inv['Id']}'") == [inv["Id"]]
    assert _ids(api, "select * from Invoice where DocNumber IN ('CW-7', 'CW-8') and TotalAmt > '1'") == [inv["Id"]]
    assert _ids(api, "select * from Invoice where DocNumber = 'CW-7' and TotalAmt > '100'") == []
    assert _ids(api, "select * from Item where Name = 'hours'") == ["2"]
    assert _ids(api, "select * from TaxCode where Id = 'tax'") == ["TAX"]


def test_a_renamed_or_deleted_row_is_found_by_its_new_key_only() -> None:
    api = Api(_sim())
    cust = make_customer(api, "Old Name")
    api.ok(api.post("/customer", {"Id": cust["Id"], "SyncToken": "0", "sparse": True, "DisplayName": "New Name"}))
    assert _ids(api, "select * from Customer where DisplayName = 'Old Name'") == []
    assert _ids(api, "select * from Customer where DisplayName = 'New Name'") == [cust["Id"]]
    make_customer(api, "Old Name")  # the old name is free again
    inv = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="D-1")))["Invoice"]
    api.ok(api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0"}, operation="delete"))
    assert _ids(api, "select * from Invoice where DocNumber = 'D-1'") == []
    api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="D-1")))  # number free again


def test_duplicates_are_still_refused_across_sales_forms_and_names() -> None:
    api = Api(_sim())
    cust = make_customer(api, "Acme")
    assert fault(api.post("/customer", {"DisplayName": " ACME "}))["code"] == "6240"
    api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="X-1")))
    err = fault(api.post("/salesreceipt", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="X-1")))
    assert err["code"] == "6140" and "TxnType=Invoice" in err["Detail"]
    api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="x-1")))  # case matters


def test_a_batch_query_sees_the_snapshot_not_its_siblings_writes() -> None:
    api = Api(_sim())
    cust = make_customer(api, "Acme")
    items: list[dict[str, Any]] = [
        {"bId": "u", "operation": "update", "Customer": {"Id": cust["Id"], "SyncToken": "0", "sparse": True,
                                                         "DisplayName": "Renamed"}},
        {"bId": "c", "operation": "create", "Customer": {"DisplayName": "Fresh"}},
        {"bId": "q1", "Query": "select * from Customer where DisplayName = 'Acme'"},
        {"bId": "q2", "Query": "select * from Customer where DisplayName IN ('Renamed', 'Fresh')"},
    ]
    out = {r["bId"]: r for r in api.ok(api.post("/batch", {"BatchItemRequest": items}))["BatchItemResponse"]}
    assert [c["Id"] for c in out["q1"]["QueryResponse"]["Customer"]] == [cust["Id"]]
    assert out["q2"]["QueryResponse"] == {}


def test_lookups_stay_flat_at_100000_documents() -> None:
    sim = _sim()
    table = sim._entities["Invoice"]
    for n in range(100_000):
        table[str(n + 1)] = {"Id": str(n + 1), "DocNumber": f"CW-{n}", "Active": True}
    t0 = time.perf_counter()
    for n in range(0, 100_000, 1000):
        sim._check_doc_number(f"NEW-{n}", "Invoice", None)
        assert sim._run_query(f"select Id from Invoice where DocNumber = 'CW-{n}'", sim._entities)["Invoice"]
    assert time.perf_counter() - t0 < 5  # a scan would be ~100 x 2 x 100,000 row visits; this is 200 lookups
