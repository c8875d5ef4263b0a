"""The QBO simulator's Payments: applied to invoices and credit memos, balances following, void, delete, edit, CDC.

Every answer is also walked against Intuit's field tables (qbo_fields.RESPONSE), as the schema walk does.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks import fields as qbo_fields
from cwqbo.sandbox.quickbooks.schema import REQUEST_FIELDS
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

REALM = "9341453000000000"
BASE = f"/v3/company/{REALM}"
D = Decimal
LINE = {"Amount": "100.00", "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}}}


class Api:
    def __init__(self, sim: QBOSimulator) -> None:
        self.sim = sim
        self.http = httpx.Client(transport=httpx.MockTransport(sim.handle), base_url="http://sim.test" + BASE,
                                 headers={"Authorization": f"Bearer {sim.issue_tokens()['access_token']}",
                                          "Accept": "application/json", "Content-Type": "application/json"})
        self.answers: list[tuple[str, Any]] = []

    def post(self, path: str, body: Any, **params: str) -> httpx.Response:
        resp = self.http.post(path, content=money.dumps(body), params=params)
        self.answers.append((path, money.loads(resp.content)))
        return resp

    def get(self, path: str, **params: str) -> httpx.Response:
        resp = self.http.get(path, params=params)
        self.answers.append((path, money.loads(resp.content)))
        return resp

    def ok(self, resp: httpx.Response, entity: str | None = None) -> Any:
        assert resp.status_code == 200, resp.text
        body = money.loads(resp.content)
        return body[entity] if entity else body


def fault(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    error: dict[str, Any] = money.loads(resp.content)["Fault"]["Error"][0]
    return error


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_795_500_000.0)


@pytest.fixture
def api(clock: ManualClock) -> Api:
    return Api(QBOSimulator(clock, Faults()))


def customer(api: Api, name: str) -> str:
    return str(api.ok(api.post("/customer", {"DisplayName": name}), "Customer")["Id"])


def document(api: Api, entity: str, cust: str, amount: str) -> dict[str, Any]:
    line = {**LINE, "Amount": amount}
    made: dict[str, Any] = api.ok(api.post(f"/{entity.lower()}", {"CustomerRef": {"value": cust}, "Line": [line]}),
                                  entity)
    return made


def balance(api: Api, entity: str, id_: str) -> Decimal:
    return D(api.ok(api.get(f"/{entity.lower()}/{id_}"), entity)["Balance"])


def pay(api: Api, cust: str, total: str, *links: tuple[str, str, str]) -> httpx.Response:
    return api.post("/payment", {"CustomerRef": {"value": cust}, "TotalAmt": total, "TxnDate": "2026-11-20",
                                 "Line": [{"Amount": a, "LinkedTxn": [{"TxnId": i, "TxnType": e}]}
                                          for e, i, a in links]})


def test_full_and_partial_payments_move_the_invoice_balance(api: Api) -> None:
    cust = customer(api, "Acme")
    inv = document(api, "Invoice", cust, "100.00")
    part = api.ok(pay(api, cust, "40.00", ("Invoice", inv["Id"], "40.00")), "Payment")
    assert (part["TotalAmt"], part["UnappliedAmt"], part["SyncToken"]) == (D("40.00"), D("0.00"), "0")
    assert part["Line"] == [{"Amount": D("40.00"), "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]
    assert part["DepositToAccountRef"]["name"]  # Undeposited Funds when none is named
    assert balance(api, "Invoice", inv["Id"]) == D("60.00")
    api.ok(pay(api, cust, "60.00", ("Invoice", inv["Id"], "60.00")))
    read = api.ok(api.get(f"/invoice/{inv['Id']}"), "Invoice")
    assert read["Balance"] == D("0") and read["SyncToken"] == inv["SyncToken"]
    assert [t["TxnType"] for t in read["LinkedTxn"]] == ["Payment", "Payment"]


def test_one_payment_across_several_invoices_and_an_unapplied_remainder(api: Api) -> None:
    cust = customer(api, "Multi")
    a, b = document(api, "Invoice", cust, "100.00"), document(api, "Invoice", cust, "50.00")
    p = api.ok(pay(api, cust, "160.00", ("Invoice", a["Id"], "100.00"), ("Invoice", b["Id"], "50.00")), "Payment")
    assert p["UnappliedAmt"] == D("10.00")
    assert balance(api, "Invoice", a["Id"]) == 0 and balance(api, "Invoice", b["Id"]) == 0


def test_a_credit_memo_applied_to_an_invoice_is_a_payment_of_zero(api: Api) -> None:
    cust = customer(api, "Credit")
    inv, cm = document(api, "Invoice", cust, "100.00"), document(api, "CreditMemo", cust, "30.00")
    p = api.ok(pay(api, cust, "0", ("Invoice", inv["Id"], "30.00"), ("CreditMemo", cm["Id"], "30.00")), "Payment")
    assert p["TotalAmt"] == 0 and p["UnappliedAmt"] == 0
    assert balance(api, "Invoice", inv["Id"]) == D("70.00")
    memo = api.ok(api.get(f"/creditmemo/{cm['Id']}"), "CreditMemo")
    assert memo["Balance"] == 0 and memo["RemainingCredit"] == 0


@pytest.mark.parametrize(("links", "total", "code", "words"), [
    ((("Invoice", "INV", "100.01"),), "100.01", "6000", "more than its open balance"),
    ((("Invoice", "OTHER", "10.00"),), "10.00", "6000", "another customer"),
    ((("Invoice", "999", "10.00"),), "10.00", "2500", "Invalid Reference Id"),
    ((("Invoice", "INV", "50.00"),), "40.00", "6000", "must cover"),
    ((("Invoice", "INV", "-5.00"),), "0", "6000", "positive amount"),
    ((("Estimate", "INV", "5.00"),), "5.00", "6000", "Invoice and CreditMemo only"),
    ((("CreditMemo", "CM", "30.00"),), "0", "6000", "must cover"),
])
def test_a_payment_qbo_would_refuse_changes_nothing(api: Api, links: tuple[tuple[str, str, str], ...], total: str,
                                                    code: str, words: str) -> None:
    cust, other = customer(api, "Mine"), customer(api, "Theirs")
    ids = {"INV": document(api, "Invoice", cust, "100.00")["Id"], "OTHER": document(api, "Invoice", other, "10.00")["Id"],
           "CM": document(api, "CreditMemo", cust, "30.00")["Id"], "999": "999"}
    err = fault(pay(api, cust, total, *[(e, ids[i], a) for e, i, a in links]))
    assert err["code"] == code and words in err["Detail"], err
    assert api.sim.documents("Payment") == [] and balance(api, "Invoice", ids["INV"]) == D("100.00")


def test_required_fields_and_unknown_fields_are_refused(api: Api) -> None:
    cust = customer(api, "Strict")
    assert fault(api.post("/payment", {"TotalAmt": "1"}))["code"] == "2020"
    assert fault(api.post("/payment", {"CustomerRef": {"value": cust}}))["code"] == "2020"
    err = fault(api.post("/payment", {"CustomerRef": {"value": cust}, "TotalAmt": "1", "Memo": "x"}))
    assert err["code"] == "2010" and '"Memo"' in err["Detail"]
    # not simulated in a batch: refused loudly, never half-applied
    items = api.ok(api.post("/batch", {"BatchItemRequest": [{"bId": "1", "operation": "create", "Payment": {
        "CustomerRef": {"value": cust}, "TotalAmt": "1"}}]}))["BatchItemResponse"]
    assert items[0]["Fault"]["Error"][0]["code"] == "500" and api.sim.documents("Payment") == []


@pytest.mark.parametrize("spelling", [{"operation": "void"}, {"operation": "update", "include": "void"}])
def test_void_zeroes_the_payment_and_restores_the_balance(api: Api, spelling: dict[str, str]) -> None:
    cust = customer(api, "Void")
    inv = document(api, "Invoice", cust, "100.00")
    p = api.ok(pay(api, cust, "100.00", ("Invoice", inv["Id"], "100.00")), "Payment")
    body: dict[str, Any] = {"Id": p["Id"], "SyncToken": p["SyncToken"]}
    if "include" in spelling:
        body["sparse"] = True  # python-quickbooks VoidMixin.get_void_data for a Payment
    voided = api.ok(api.post("/payment", body, **spelling), "Payment")
    assert (voided["TotalAmt"], voided["UnappliedAmt"], voided["Line"], voided["PrivateNote"], voided["SyncToken"]) == (
        0, 0, [], "Voided", "1")
    assert balance(api, "Invoice", inv["Id"]) == D("100.00")
    assert api.ok(api.get(f"/invoice/{inv['Id']}"), "Invoice")["LinkedTxn"] == []
    again = api.post("/payment", {"Id": p["Id"], "SyncToken": "1", "sparse": True, "TotalAmt": "5"})
    assert fault(again)["code"] == "6000"


def test_delete_removes_the_payment_restores_the_balance_and_needs_the_synctoken(api: Api) -> None:
    cust = customer(api, "Delete")
    inv = document(api, "Invoice", cust, "100.00")
    p = api.ok(pay(api, cust, "25.00", ("Invoice", inv["Id"], "25.00")), "Payment")
    assert fault(api.post("/payment", {"Id": p["Id"], "SyncToken": "7"}, operation="delete"))["code"] == "5010"
    gone = api.ok(api.post("/payment", {"Id": p["Id"], "SyncToken": "0"}, operation="delete"), "Payment")
    assert gone == {"domain": "QBO", "status": "Deleted", "Id": p["Id"]}
    assert fault(api.get(f"/payment/{p['Id']}"))["code"] == "610"
    assert balance(api, "Invoice", inv["Id"]) == D("100.00")


def test_a_sparse_edit_moves_the_money_and_keeps_lines_unless_sent(api: Api, clock: ManualClock) -> None:
    cust = customer(api, "Edit")
    a, b = document(api, "Invoice", cust, "100.00"), document(api, "Invoice", cust, "80.00")
    p = api.ok(pay(api, cust, "100.00", ("Invoice", a["Id"], "100.00")), "Payment")
    clock.advance(60)
    noted = api.ok(api.post("/payment", {"Id": p["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "chk 1"}),
                   "Payment")
    assert noted["Line"] == p["Line"] and noted["SyncToken"] == "1" and noted["PrivateNote"] == "chk 1"
    assert noted["MetaData"]["LastUpdatedTime"] > p["MetaData"]["LastUpdatedTime"]
    moved = api.ok(api.post("/payment", {"Id": p["Id"], "SyncToken": "1", "sparse": True, "TotalAmt": "80.00", "Line": [
        {"Amount": "80.00", "LinkedTxn": [{"TxnId": b["Id"], "TxnType": "Invoice"}]}]}), "Payment")
    assert moved["TotalAmt"] == D("80.00")
    assert balance(api, "Invoice", a["Id"]) == D("100.00") and balance(api, "Invoice", b["Id"]) == 0
    # what the payment itself applied is open to its own edit: the full amount again is allowed
    api.ok(api.post("/payment", {"Id": p["Id"], "SyncToken": "2", "sparse": True, "TotalAmt": "80.00"}))


def test_helpers_and_invoice_edits_keep_the_balance(api: Api) -> None:
    cust = customer(api, "Helpers")
    inv = document(api, "Invoice", cust, "100.00")
    p = api.sim.receive_payment(cust, [("Invoice", inv["Id"], D("30.00"))], date="2026-11-21", method="1")
    assert p["PaymentMethodRef"] == {"value": "1"} and p["TotalAmt"] == D("30.00")
    edited = api.ok(api.post("/invoice", {"Id": inv["Id"], "SyncToken": inv["SyncToken"], "sparse": True,
                                          "PrivateNote": "edited"}), "Invoice")
    assert edited["Balance"] == D("70.00") and [t["TxnId"] for t in edited["LinkedTxn"]] == [p["Id"]]
    too_small = api.post("/invoice", {"Id": inv["Id"], "SyncToken": edited["SyncToken"], "sparse": True,
                                      "Line": [{**LINE, "Amount": "20.00"}]})
    assert fault(too_small)["code"] == "6000"
    api.sim.edit_payment(p["Id"], lines=[("Invoice", inv["Id"], D("10.00"))])
    assert balance(api, "Invoice", inv["Id"]) == D("90.00")
    api.sim.void_payment(p["Id"])
    assert balance(api, "Invoice", inv["Id"]) == D("100.00")
    api.sim.delete_payment(p["Id"])
    assert api.sim.get("Payment", p["Id"]) is None


def test_query_by_last_updated_time_in_any_offset(api: Api, clock: ManualClock) -> None:
    cust = customer(api, "Query")
    inv = document(api, "Invoice", cust, "100.00")
    first = api.sim.receive_payment(cust, [("Invoice", inv["Id"], D("10"))], date="2026-11-21")
    clock.advance(120)
    second = api.sim.receive_payment(cust, [("Invoice", inv["Id"], D("10"))], date="2026-11-21")
    stamp = second["MetaData"]["LastUpdatedTime"]
    from datetime import datetime, timezone
    as_utc = datetime.fromisoformat(stamp).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for since in (stamp, as_utc):
        rows = api.ok(api.get("/query", query=f"select * from Payment where MetaData.LastUpdatedTime >= '{since}' "
                                              "orderby MetaData.LastUpdatedTime"))["QueryResponse"]["Payment"]
        assert [r["Id"] for r in rows] == [second["Id"]]
    rows = api.ok(api.get("/query", query="select * from Payment orderby MetaData.LastUpdatedTime desc "
                                          "startposition 1 maxresults 1"))["QueryResponse"]
    assert [r["Id"] for r in rows["Payment"]] == [second["Id"]] and first["Id"] != second["Id"]


def test_cdc_answers_changed_and_deleted_payments_in_intuits_shape(api: Api, clock: ManualClock) -> None:
    cust = customer(api, "CDC")
    inv = document(api, "Invoice", cust, "100.00")
    old = api.sim.receive_payment(cust, [("Invoice", inv["Id"], D("10"))], date="2026-11-21")
    clock.advance(600)
    since = api.ok(api.get(f"/payment/{old['Id']}"), "time")
    clock.advance(60)
    kept = api.sim.receive_payment(cust, [("Invoice", inv["Id"], D("20"))], date="2026-11-21")
    doomed = api.sim.receive_payment(cust, [("Invoice", inv["Id"], D("30"))], date="2026-11-21")
    api.sim.delete_payment(doomed["Id"])
    clock.advance(1)
    api.sim.void_payment(old["Id"])
    body = api.ok(api.get("/cdc", entities="Payment", changedSince=since))
    assert set(body) == {"CDCResponse", "time"}
    (response,) = body["CDCResponse"][0]["QueryResponse"]
    assert set(response) == {"Payment", "startPosition", "maxResults"} and response["maxResults"] == 3
    payments = response["Payment"]
    assert [p["Id"] for p in payments] == [kept["Id"], old["Id"], doomed["Id"]]  # active by time, then deleted
    assert payments[1]["TotalAmt"] == 0 and payments[1]["PrivateNote"] == "Voided"
    assert payments[2] == {"domain": "QBO", "status": "Deleted", "Id": doomed["Id"],
                           "MetaData": {"LastUpdatedTime": payments[2]["MetaData"]["LastUpdatedTime"]}}
    clock.advance(120)
    quiet = api.ok(api.get("/cdc", entities="Payment", changedSince=api.ok(api.get("/cdc", entities="Payment",
                                                                                   changedSince=since))["time"]))
    assert quiet["CDCResponse"][0]["QueryResponse"] == [{}]
    assert fault(api.get("/cdc", entities="Payment", changedSince="2020-01-01"))["code"] == "6000"
    assert api.get("/cdc", entities="Invoice", changedSince=since).status_code == 400


def test_python_quickbooks_reads_the_cdc_answer() -> None:
    quickbooks = pytest.importorskip("quickbooks")
    from quickbooks.cdc import change_data_capture  # type: ignore[import-untyped]
    from quickbooks.objects.payment import Payment  # type: ignore[import-untyped]

    sim = QBOSimulator(ManualClock(start=1_795_500_000.0), Faults())
    api = Api(sim)
    cust = customer(api, "PQ")
    inv = document(api, "Invoice", cust, "100.00")
    p = sim.receive_payment(cust, [("Invoice", inv["Id"], D("10"))], date="2026-11-21")
    answer = money.loads(api.http.get("/cdc", params={"entities": "Payment", "changedSince": "2026-11-01"}).content)

    class Canned:
        def change_data_capture(self, entities: str, since: str) -> dict[str, Any]:
            canned: dict[str, Any] = json.loads(money.dumps(answer))
            return canned

    result = change_data_capture([Payment], "2026-11-01", qb=Canned())
    assert [str(x.Id) for x in result.Payment] == [p["Id"]]
    assert quickbooks


def test_every_payment_answer_holds_only_schema_fields(api: Api, clock: ManualClock) -> None:
    cust = customer(api, "Walk")
    inv, cm = document(api, "Invoice", cust, "100.00"), document(api, "CreditMemo", cust, "30.00")
    p = api.ok(pay(api, cust, "0", ("Invoice", inv["Id"], "30.00"), ("CreditMemo", cm["Id"], "30.00")), "Payment")
    q = api.ok(pay(api, cust, "10.00", ("Invoice", inv["Id"], "10.00")), "Payment")
    api.get(f"/payment/{p['Id']}")
    api.get("/query", query="select * from Payment")
    api.get("/invoice/" + inv["Id"])
    api.post("/payment", {"Id": q["Id"], "SyncToken": "0"}, operation="void")
    api.post("/payment", {"Id": p["Id"], "SyncToken": "0"}, operation="delete")
    api.get("/cdc", entities="Payment", changedSince="2026-11-01")
    bad: list[str] = []
    seen = 0
    for path, body in api.answers:
        objs = [body] if isinstance(body, dict) else []
        objs += [body.get("QueryResponse", {})] if isinstance(body, dict) else []
        objs += [qr for cdc in body.get("CDCResponse", []) for qr in cdc["QueryResponse"]] if isinstance(body, dict) else []
        for holder in objs:
            for entity in ("Payment", "Invoice", "CreditMemo"):
                value = holder.get(entity)
                for obj in (value if isinstance(value, list) else [value]):
                    if isinstance(obj, dict):
                        seen += entity == "Payment"
                        bad += qbo_fields.invented(qbo_fields.RESPONSE, entity, obj, f"{path} {entity}")
    assert seen >= 7 and bad == []


def test_python_quickbooks_payment_bodies_are_accepted() -> None:
    pytest.importorskip("quickbooks")
    from quickbooks.objects.base import LinkedTxn, Ref  # type: ignore[import-untyped]
    from quickbooks.objects.payment import Payment, PaymentLine

    pmt = Payment()
    pmt.CustomerRef, pmt.TotalAmt = Ref(), 10
    line, link = PaymentLine(), LinkedTxn()
    link.TxnId, link.TxnType, link.TxnLineId = "1", "Invoice", 1
    line.Amount, line.LinkedTxn = 10, [link]
    pmt.Line = [line]
    body = json.loads(pmt.to_json())
    assert qbo_fields.first_unknown(REQUEST_FIELDS, "Payment", body) is None, body


def test_state_round_trip_keeps_payments_balances_and_tombstones(api: Api, clock: ManualClock) -> None:
    cust = customer(api, "State")
    inv = document(api, "Invoice", cust, "100.00")
    p = api.sim.receive_payment(cust, [("Invoice", inv["Id"], D("40.00"))], date="2026-11-21")
    gone = api.sim.receive_payment(cust, [("Invoice", inv["Id"], D("5.00"))], date="2026-11-21")
    api.sim.delete_payment(gone["Id"])
    again = QBOSimulator(clock, Faults())
    again.from_state(json.loads(json.dumps(api.sim.to_state())))
    assert again.get("Payment", p["Id"]) == api.sim.get("Payment", p["Id"])
    assert again.get("Payment", p["Id"])["UnappliedAmt"] == D("0")  # type: ignore[index]
    assert again.get("Invoice", inv["Id"])["Balance"] == D("60.00")  # type: ignore[index]
    assert again.to_state()["deleted"] == api.sim.to_state()["deleted"]
