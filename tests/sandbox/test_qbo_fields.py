"""The QBO simulator invents no field: every key it serves is in Intuit's API reference (or a real recording).

`cwqbo.sandbox.quickbooks.fields.FIELDS` is derived from qbTypesDump (a scrape of the Accounting API reference); the
first test re-derives it. The schema walk then runs cwqbo's real sync against a seeded sandbox (so every kind of
document cwqbo creates is created by cwqbo's own client, over HTTP), reads and queries every entity the simulator
serves, and fails on any key — recursively, wherever the reference types the object — that Intuit lacks. The
response envelopes are checked against the recorded sandbox answers instead. Every request cwqbo sent on the way
is held to the same tables (what the simulator would refuse is what Intuit's schema lacks).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from cwqbo import http, money
from cwqbo.sync import engine as sync
from cwqbo.clock import ManualClock
from cwqbo.connectwise.client import CWClient
from cwqbo.settings.prefs import Filters, Prefs, TaxPrefs
from cwqbo.quickbooks.client import QBOClient
from cwqbo.sandbox.quickbooks import fields as qbo_fields
from cwqbo.sandbox import server as sv
from cwqbo.sandbox.quickbooks.simulator import DirectTokens
from cwqbo.sandbox.quickbooks.schema import ENTITY_BY_PATH, WRITABLE
from cwqbo.state.store import Store

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "qbo"
DUMP = SHARED / "qbTypesDump.json"
SAMPLES = SHARED / "qbo_sample_payloads.json"
BASE = f"/v3/company/{sv.QBO_REALM_ID}"

# Envelope keys the recordings show (qbo_sample_payloads.json), per kind of answer. The walk fails on any other.
ENVELOPES = {
    "entity": {"time"},  # + the entity name: create_invoice, create_customer, delete_invoice, void_invoice
    "query": {"QueryResponse", "time"},  # get_display_name, misc_ampersand
    "query_response": {"startPosition", "maxResults", "totalCount"},  # + the entity name; totalCount: count(*)
    "batch": {"BatchItemResponse", "time"},  # batch_basic
    "batch_item": {"bId", "Fault", "QueryResponse"},  # + the entity name: batch_basic
    "fault": {"Fault", "time"},  # error_400_json, error_validation
    "fault_body": {"Error", "type"},
    "fault_error": {"Message", "Detail", "code", "element"},  # error_500 (element), error_400_json (none)
}
# Envelope keys no recording holds, with the source that documents them.
NOT_RECORDED = {"totalCount": "quickbooks.md §5 (count(*) returns QueryResponse.totalCount); python-quickbooks "
                              "quickbooks/mixins.py ListMixin.count reads QueryResponse.totalCount"}


@pytest.mark.skipif(not DUMP.exists(), reason="../shared/data/qbo not present (the dump is not shipped)")
def test_committed_table_matches_a_fresh_derivation() -> None:
    derived = qbo_fields.derive(json.loads(DUMP.read_text(encoding="utf-8")))
    assert derived == qbo_fields.FIELDS, "regenerate: python -m cwqbo.sandbox.quickbooks.fields <qbTypesDump.json>"


def test_table_covers_every_served_entity_with_nested_types() -> None:
    assert set(qbo_fields.SERVED) == set(ENTITY_BY_PATH.values())
    assert {p for p in qbo_fields.FIELDS if "." not in p} == set(ENTITY_BY_PATH.values())
    assert "SalesItemLineDetail" in qbo_fields.FIELDS["Invoice.Line"]
    assert qbo_fields.FIELDS["Invoice.Line.SalesItemLineDetail.ItemRef"] == ["name", "value"]
    assert "TaxCodeRef" in qbo_fields.FIELDS["CreditMemo.Line.SalesItemLineDetail"]
    assert "domain" not in qbo_fields.FIELDS["Invoice"]  # only the recordings show it
    assert "Invoice.DueDate" not in qbo_fields.FIELDS  # a date wrapper is a plain string


@pytest.mark.skipif(not SAMPLES.exists(), reason="../shared/data/qbo not present (recordings are not shipped)")
def test_every_exception_is_in_a_recording() -> None:
    """RECORDED and the envelope keys list only what a real sandbox answer holds."""
    interactions = json.loads(SAMPLES.read_text(encoding="utf-8"))["interactions"]
    seen: set[str] = set()

    def keys(obj: Any) -> None:
        if isinstance(obj, dict):
            seen.update(obj)
            for v in obj.values():
                keys(v)
        elif isinstance(obj, list):
            for v in obj:
                keys(v)

    for recs in interactions.values():
        for rec in recs:
            keys(rec["response"].get("body"))
    for fields in qbo_fields.RECORDED.values():
        assert set(fields) <= seen
    for envelope in ENVELOPES.values():
        assert envelope - set(NOT_RECORDED) <= seen
    assert not set(NOT_RECORDED) & seen  # recorded after all: drop it from NOT_RECORDED


def test_walker_catches_an_invented_field() -> None:
    r = qbo_fields.RESPONSE
    assert qbo_fields.invented(r, "Invoice", {"Id": "1", "CustomerRef": {"value": "1", "type": "Customer"}}) == [
        "Invoice.CustomerRef.type (not in Invoice.CustomerRef)"]
    assert qbo_fields.invented(r, "Invoice", {"Line": [{"SalesItemLineDetail": {"ItemRef": {}, "Rate": 1}}]}) == [
        "Invoice.Line[0].SalesItemLineDetail.Rate (not in Invoice.Line.SalesItemLineDetail)"]
    assert qbo_fields.invented(r, "TaxCode", {"Foo": {"a": 1}}) == ["TaxCode.Foo (not in TaxCode)"]
    assert qbo_fields.invented(r, "Invoice", {"BillAddr": {"Lat": "INVALID", "Geo": {"x": 1}}}) == [
        "Invoice.BillAddr.Geo (not in Invoice.BillAddr)"]


# --- the walk ---------------------------------------------------------------------------------------------------


@dataclass
class Wire:
    """Every QBO API exchange of a run: (method, path, params, request body, status, answer)."""

    sandbox: sv.Sandbox
    log: list[tuple[str, str, dict[str, str], Any, int, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = self.sandbox.handle(request)
        path = request.url.path
        if path.startswith("/v3/"):
            request.read()
            params = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
            sent = money.loads(request.content) if request.content and request.method == "POST" \
                and not path.endswith("/query") else (request.content.decode() or None)
            self.log.append((request.method, path, params, sent, response.status_code, money.loads(response.content)))
        return response


def envelope_problems(path: str, body: Any) -> list[str]:
    """Keys of an answer's envelope the recordings never show; entity bodies go to the field walk."""
    bad: list[str] = []
    entities = set(ENTITY_BY_PATH.values())
    if "Fault" in body:
        bad += [f"{path}: {k}" for k in set(body) - ENVELOPES["fault"]]
        bad += [f"{path}: Fault.{k}" for k in set(body["Fault"]) - ENVELOPES["fault_body"]]
        for err in body["Fault"]["Error"]:
            bad += [f"{path}: Fault.Error.{k}" for k in set(err) - ENVELOPES["fault_error"]]
    elif "QueryResponse" in body:
        bad += [f"{path}: {k}" for k in set(body) - ENVELOPES["query"]]
        bad += [f"{path}: QueryResponse.{k}" for k in set(body["QueryResponse"]) - ENVELOPES["query_response"] - entities]
    elif "BatchItemResponse" in body:
        bad += [f"{path}: {k}" for k in set(body) - ENVELOPES["batch"]]
        for item in body["BatchItemResponse"]:
            bad += [f"{path}: BatchItemResponse.{k}" for k in set(item) - ENVELOPES["batch_item"] - entities]
            if "Fault" in item:
                bad += envelope_problems(f"{path} item", {"Fault": item["Fault"], "time": ""})
    else:
        bad += [f"{path}: {k}" for k in set(body) - ENVELOPES["entity"] - entities]
    return bad


def entity_objects(body: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(entity, object) for every entity object in an answer."""
    if not isinstance(body, dict):
        return
    for key, value in body.items():
        if key in qbo_fields.SERVED:
            for obj in value if isinstance(value, list) else [value]:
                yield key, obj
        elif key in ("QueryResponse",):
            yield from entity_objects(value)
        elif key == "BatchItemResponse":
            for item in value:
                yield from entity_objects(item)


@pytest.fixture(scope="module", params=["US", "CA"])
def wire(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    clock = ManualClock(start=1_795_500_000.0)
    sandbox = sv.Sandbox(seed=2, invoices=24, clock=clock, country=request.param)
    wire = Wire(sandbox)
    http.set_transport_override(httpx.MockTransport(wire.handle))
    store = Store.open(tmp_path_factory.mktemp("walk") / "cwqbo.db")
    try:
        qbo = QBOClient("http://127.0.0.1:9", sv.QBO_REALM_ID, DirectTokens(sandbox.qbo), clock=clock)
        cw = CWClient(site="127.0.0.1:9", company_id=sv.CW_COMPANY, public_key=sv.CW_PUBLIC_KEY,
                      private_key=sv.CW_PRIVATE_KEY, client_id=sv.CW_CLIENT_ID, codebase=sv.CW_CODEBASE,
                      scheme="http", clock=clock)
        prefs = Prefs() if request.param == "US" else dataclasses.replace(
            Prefs(), tax=TaxPrefs(default_code="HST ON", exempt_code="Exempt"))
        report = sync.run_sync(sync.SyncDeps(store, cw, qbo, prefs, Filters(), sv.QBO_REALM_ID, clock),
                               sync.SyncOptions())
        assert report is not None
        # a payment received on a synced invoice (issue 13), so the walk reads and queries Payment too
        paid = sandbox.qbo.documents("Invoice")[-1]
        sandbox.qbo.receive_payment(paid["CustomerRef"]["value"], [("Invoice", paid["Id"], paid["Balance"])],
                                    date=paid["TxnDate"])
        api = httpx.Client(transport=httpx.MockTransport(wire.handle), base_url="http://qbo.test",
                           headers={"Authorization": f"Bearer {sandbox.qbo.issue_tokens()['access_token']}",
                                    "Accept": "application/json"})
        # Read and query every served entity; a few more shapes of answer (count, projection, empty, batch, fault).
        for entity in ENTITY_BY_PATH.values():
            rows = money.loads(api.get(f"{BASE}/query", params={"query": f"select * from {entity}"}).content)
            found = rows["QueryResponse"].get(entity, [])
            assert found or entity in ("Employee",) or entity in WRITABLE, entity
            for row in found[:3]:
                one = sandbox.qbo.documents(entity)[0]["Id"] if entity == "CompanyInfo" else row["Id"]
                path = "preferences" if entity == "Preferences" else f"{entity.lower()}/{one}"
                assert api.get(f"{BASE}/{path}").status_code == 200, path
            api.get(f"{BASE}/query", params={"query": f"select count(*) from {entity}"})
        api.get(f"{BASE}/query", params={"query": "select Id, DocNumber from Invoice"})
        api.get(f"{BASE}/query", params={"query": "select * from Invoice where DocNumber = 'no such'"})
        api.get(f"{BASE}/customer/999999")
        non_us = {} if request.param == "US" else {"GlobalTaxCalculation": "TaxExcluded"}
        batch = api.post(f"{BASE}/batch", content=money.dumps({"BatchItemRequest": [
            {"bId": "1", "Query": "select * from Item"},
            {"bId": "2", "operation": "create", "Vendor": {"DisplayName": "Schema Walk Vendor"}},
            {"bId": "3", "operation": "create", "Customer": {"DisplayName": "Schema Walk Customer"}},
            {"bId": "4", "operation": "update", "Customer": {"Id": "999", "SyncToken": "0", "sparse": True}},
            # shaped like the recorded update_sales_receipt.yml body
            {"bId": "5", "operation": "create", "SalesReceipt": {**non_us, "CustomerRef": {"value": "1"}, "Line": [
                {"Description": "Custom Design", "Amount": "337.50", "DetailType": "SalesItemLineDetail",
                 "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "UnitPrice": 75, "Qty": "4.5",
                                         "TaxCodeRef": {"value": "NON" if request.param == "US" else "6"}}}]}}]}),
            headers={"Content-Type": "application/json"})
        answered = {i["bId"]: set(i) - {"bId"} for i in money.loads(batch.content)["BatchItemResponse"]}
        assert answered == {"1": {"QueryResponse"}, "2": {"Vendor"}, "3": {"Customer"}, "4": {"Fault"},
                            "5": {"SalesReceipt"}}
        first, second = sandbox.qbo.documents("Invoice")[:2]
        for doc, operation in ((first, "void"), (second, "delete")):
            api.post(f"{BASE}/invoice", params={"operation": operation}, headers={"Content-Type": "application/json"},
                     content=money.dumps({"Id": doc["Id"], "SyncToken": doc["SyncToken"]}))
        created = [e for m, _p, _q, _s, st, b in wire.log if m == "POST" for e, _ in entity_objects(b)]
        assert "Invoice" in created and "CreditMemo" in created and "Customer" in created, set(created)
        yield wire
    finally:
        store.close()
        http.set_transport_override(None)


def test_every_answer_holds_only_schema_fields(wire: Wire) -> None:
    bad: list[str] = []
    entities_seen: set[str] = set()
    for method, path, _params, _sent, _status, body in wire.log:
        where = f"{method} {path.removeprefix(BASE)}"
        bad += envelope_problems(where, body)
        for entity, obj in entity_objects(body):
            entities_seen.add(entity)
            bad += qbo_fields.invented(qbo_fields.RESPONSE, entity, obj, f"{where} {entity}")
    assert entities_seen == set(ENTITY_BY_PATH.values())
    assert sorted(set(bad)) == []


def test_every_body_cwqbo_sends_is_in_the_schema(wire: Wire) -> None:
    """cwqbo's own client sends only what Intuit's schema has (the simulator refuses anything else)."""
    bad: list[str] = []
    for method, path, params, sent, _status, _body in wire.log:
        if method != "POST" or not isinstance(sent, dict):
            continue
        entity = ENTITY_BY_PATH.get(path.rsplit("/", 1)[-1].lower())
        items = [(entity, sent)] if entity else [
            (next(k for k in item if k in qbo_fields.SERVED), item) for item in sent.get("BatchItemRequest", [])
            if "Query" not in item]
        for name, obj in items:
            payload = obj[name] if obj is not sent else obj
            bad += qbo_fields.invented(qbo_fields.REQUEST, name, payload, f"{path} {params} {name}", strict=False)
    assert sorted(set(bad)) == []


# --- request discipline and queries: the simulator refuses what Intuit's schema lacks -------------------------------


@pytest.fixture
def api() -> httpx.Client:
    sandbox = sv.Sandbox(seed=1, invoices=2, clock=ManualClock(start=1_795_500_000.0))
    token = sandbox.qbo.issue_tokens()["access_token"]
    return httpx.Client(transport=httpx.MockTransport(sandbox.handle), base_url="http://qbo.test" + BASE,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                 "Content-Type": "application/json"})


def _fault(resp: httpx.Response, code: str) -> str:
    assert resp.status_code == 400, resp.text
    err = money.loads(resp.content)["Fault"]["Error"][0]
    assert err["code"] == code, err
    return str(err["Detail"])


LINE: dict[str, Any] = {"Amount": "10.00", "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": "10.00", "TaxCodeRef": {"value": "NON"}}}


@pytest.mark.parametrize(("path", "body", "cls", "field"), [
    ("/vendor", {"DisplayName": "V", "Rating": 5}, "Vendor", "Rating"),
    ("/salesreceipt", {"CustomerRef": {"value": "1"}, "Line": [LINE], "Rush": True}, "SalesReceipt", "Rush"),
    ("/invoice", {"CustomerRef": {"value": "1"}, "Line": [{**LINE, "SalesItemLineDetail": {
        **LINE["SalesItemLineDetail"], "Rate": "10"}}]}, "SalesItemLineDetail", "Rate"),
    ("/invoice", {"CustomerRef": {"value": "1", "id": "1"}, "Line": [LINE]}, "ReferenceType", "id"),
    ("/creditmemo", {"CustomerRef": {"value": "1"}, "Line": [LINE], "BillAddr": {"Line1": "x", "Street": "y"}},
     "PhysicalAddress", "Street"),
    ("/customer", {"DisplayName": "C", "PrimaryEmailAddr": {"Address": "a@b.example", "Verified": True}},
     "PrimaryEmailAddr", "Verified"),
    ("/item", {"Name": "I", "Type": "Service", "IncomeAccountRef": {"value": "1"}, "Color": "red"}, "Item", "Color"),
])
def test_a_field_the_schema_lacks_is_refused_at_any_depth(api: httpx.Client, path: str, body: dict[str, Any],
                                                          cls: str, field: str) -> None:
    detail = _fault(api.post(path, content=money.dumps(body)), "2010")
    assert f'Unrecognized field "{field}" (class com.intuit.schema.finance.v3.{cls})' in detail


def test_a_field_the_schema_lacks_is_refused_in_a_batch_item_too(api: httpx.Client) -> None:
    resp = api.post("/batch", content=money.dumps({"BatchItemRequest": [
        {"bId": "a", "operation": "create", "Customer": {"DisplayName": "Fine"}},
        {"bId": "b", "operation": "create", "Customer": {"DisplayName": "Bad", "Nickname": "x"}}]}))
    items = {i["bId"]: i for i in money.loads(resp.content)["BatchItemResponse"]}
    assert items["a"]["Customer"]["DisplayName"] == "Fine"
    assert items["b"]["Fault"]["Error"][0]["code"] == "2010"
    assert '"Nickname"' in items["b"]["Fault"]["Error"][0]["Detail"]


def test_a_sparse_update_with_an_unknown_field_changes_nothing(api: httpx.Client) -> None:
    made = money.loads(api.post("/customer", content=money.dumps({"DisplayName": "Sparse"})).content)["Customer"]
    _fault(api.post("/customer", content=money.dumps({"Id": made["Id"], "SyncToken": "0", "sparse": True,
                                                      "Notes": "n", "Mood": "ok"})), "2010")
    again = money.loads(api.get(f"/customer/{made['Id']}").content)["Customer"]
    assert again["SyncToken"] == "0" and "Notes" not in again


@pytest.mark.parametrize("query", [
    "select * from Invoice where Bogus = '1'",
    "select * from Customer where PrimaryEmailAddr.Verified = true",
    "select * from TaxCode where Rate > '1'",
    "select * from Invoice orderby Bogus",
    "select * from Item where Active = true orderby Name, Colour desc",
    "select count(*) from Vendor where Rating = '5'",
])
def test_a_query_on_a_property_the_entity_lacks_is_4001_not_an_empty_answer(api: httpx.Client, query: str) -> None:
    resp = api.get("/query", params={"query": query})
    assert resp.status_code == 400, resp.text
    err = money.loads(resp.content)["Fault"]["Error"][0]
    assert (err["code"], err["Message"]) == ("4001", "Invalid query")
    assert err["Detail"].startswith("QueryValidationError: property '") and err["Detail"].endswith("' is not queryable")


@pytest.mark.parametrize("query", [
    "select * from Invoice where MetaData.LastUpdatedTime > '2020-01-01' orderby MetaData.LastUpdatedTime desc",
    "select * from Invoice where CustomerRef = '1' orderby TxnDate",
    "select * from Customer where DisplayName like 'A%' orderby DisplayName",
    "select * from TaxCode where Name = 'TAX'",
    "select * from Item where Active in (true, false)",
])
def test_a_query_on_schema_properties_is_answered(api: httpx.Client, query: str) -> None:
    resp = api.get("/query", params={"query": query})
    assert resp.status_code == 200, resp.text
    assert set(money.loads(resp.content)) == {"QueryResponse", "time"}


def _filled(obj: Any, depth: int = 0) -> Any:
    """A python-quickbooks object with every nested object its class declares, as a user filling a form would."""
    for name, cls in getattr(obj, "class_dict", {}).items():
        if name in ("Line",) or depth > 3:
            continue
        setattr(obj, name, _filled(cls(), depth + 1))
    return obj


def test_python_quickbooks_bodies_are_accepted() -> None:
    """Every writable entity's `to_json()` (with every nested object filled) passes the shape check unchanged."""
    pytest.importorskip("quickbooks")
    from quickbooks.objects import (creditmemo, customer, detailline, invoice, item,  # type: ignore[import-untyped]
                                    salesreceipt, vendor)

    from cwqbo.sandbox.quickbooks.schema import REQUEST_FIELDS

    objects = {"Customer": customer.Customer, "Vendor": vendor.Vendor, "Item": item.Item, "Invoice": invoice.Invoice,
               "CreditMemo": creditmemo.CreditMemo, "SalesReceipt": salesreceipt.SalesReceipt}
    for entity, cls in objects.items():
        obj = _filled(cls())
        if entity in ("Invoice", "CreditMemo", "SalesReceipt"):
            obj.Line = [_filled(line()) for line in (detailline.SalesItemLine, detailline.DiscountLine,
                                                    detailline.DescriptionOnlyLine, detailline.SubtotalLine)]
        body = json.loads(obj.to_json())
        assert qbo_fields.first_unknown(REQUEST_FIELDS, entity, body) is None, (entity, body)
