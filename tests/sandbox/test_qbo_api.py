"""The QBO simulator's Accounting API: creates, validation faults, tax, query, batch, idempotency, limits, faults."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.sandbox.faults import DropConnection, Faults
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

REALM = "9341453000000000"
BASE = f"/v3/company/{REALM}"
D = Decimal


class Api:
    """A tiny QBO client over the simulator (in-process, no sockets)."""

    def __init__(self, sim: QBOSimulator) -> None:
        self.sim = sim
        self.http = httpx.Client(transport=httpx.MockTransport(sim.handle), base_url="http://sim.test")
        self.token = sim.issue_tokens()["access_token"]

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **extra}

    def post(self, path: str, body: Any, **params: str) -> httpx.Response:
        return self.http.post(BASE + path, content=money.dumps(body), params={"minorversion": "75", **params},
                              headers=self._headers(**{"Content-Type": "application/json"}))

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(BASE + path, params={"minorversion": "75", **params}, headers=self._headers())

    def query(self, text: str) -> httpx.Response:
        return self.get("/query", query=text)

    def ok(self, resp: httpx.Response) -> Any:
        assert resp.status_code == 200, resp.text
        return money.loads(resp.content)


def fault(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = money.loads(resp.content)
    assert body["Fault"]["type"] == "ValidationFault"
    assert "time" in body
    return body["Fault"]["Error"][0]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def sim(clock: ManualClock, faults: Faults) -> QBOSimulator:
    return QBOSimulator(clock, faults)


@pytest.fixture
def api(sim: QBOSimulator) -> Api:
    return Api(sim)


def make_customer(api: Api, name: str = "Amy's Bird Sanctuary", **extra: Any) -> dict[str, Any]:
    return api.ok(api.post("/customer", {"DisplayName": name, **extra}))["Customer"]


def invoice_body(customer_id: str, *lines: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    """lines: (item id, amount, tax code)."""
    return {"CustomerRef": {"value": customer_id}, **extra,
            "Line": [{"Amount": D(a), "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": i}, "TaxCodeRef": {"value": t}}} for i, a, t in lines]}


# --- create / read / update --------------------------------------------------------------------------


def test_create_invoice_echoes_the_whole_object_like_the_recording(api: Api, sim: QBOSimulator) -> None:
    cust = make_customer(api, BillAddr={"Line1": "4581 Finch St.", "City": "Bayshore"})
    body = invoice_body(cust["Id"], ("1", "100.00", "NON"), DocNumber="CW-1001", PrivateNote="cw 1001",
                        CustomField=[{"DefinitionId": "1", "StringValue": "PO-9", "Type": "StringType"}])
    inv = api.ok(api.post("/invoice", body))["Invoice"]
    assert inv["Id"] and inv["SyncToken"] == "0" and set(inv["MetaData"]) == {"CreateTime", "LastUpdatedTime"}
    assert inv["DocNumber"] == "CW-1001" and inv["TotalAmt"] == D("100.00") and inv["Balance"] == D("100.00")
    assert inv["Line"][-1] == {"Amount": D("100.00"), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
    assert inv["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {"value": "1", "name": "Services"}
    assert inv["TxnTaxDetail"] == {"TotalTax": D("0")}
    assert inv["CustomerRef"] == {"value": cust["Id"], "name": "Amy's Bird Sanctuary"}
    assert inv["BillAddr"]["City"] == "Bayshore"
    assert inv["CustomField"][0] == {"DefinitionId": "1", "Name": "Customer PO", "Type": "StringType",
                                     "StringValue": "PO-9"}
    # DueDate from the company default terms (Net 30)
    assert inv["DueDate"] > inv["TxnDate"]
    assert api.ok(api.get(f"/invoice/{inv['Id']}"))["Invoice"] == inv
    assert sim.documents("Invoice") == [inv]


def test_read_faults(api: Api) -> None:
    err = fault(api.get("/invoice/1.5"))
    assert (err["code"], err["Message"], err["element"]) == ("2030", "Invalid ID", "Id")
    assert fault(api.get("/invoice/999"))["code"] == "610"
    assert fault(api.get("/customer/1/5"))["code"] == "500"


def test_sparse_update_full_update_stale_and_unknown(api: Api) -> None:
    cust = make_customer(api)
    inv = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "10", "NON"), DocNumber="A1", PrivateNote="n")))["Invoice"]
    sparse = api.ok(api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0", "sparse": True, "CustomerMemo": {"value": "hi"}}))["Invoice"]
    assert sparse["SyncToken"] == "1" and sparse["PrivateNote"] == "n" and sparse["DocNumber"] == "A1"
    assert sparse["TotalAmt"] == D("10")
    err = fault(api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "x"}))
    assert err["code"] == "5010" and err["Message"] == "Stale Object Error"
    full = api.ok(api.post("/invoice", {**invoice_body(cust["Id"], ("1", "20", "NON")), "Id": inv["Id"], "SyncToken": "1"}))["Invoice"]
    assert full["SyncToken"] == "2" and "PrivateNote" not in full and full["TotalAmt"] == D("20")
    assert fault(api.post("/invoice", {"Id": "777", "SyncToken": "0", "sparse": True}))["code"] == "610"


def test_void_and_delete(api: Api) -> None:
    cust = make_customer(api)
    inv = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "100", "NON"))))["Invoice"]
    void = api.ok(api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0"}, operation="void"))["Invoice"]
    assert void["TotalAmt"] == 0 and void["Balance"] == 0 and void["PrivateNote"] == "Voided" and void["SyncToken"] == "1"
    assert void["Line"][0]["Amount"] == 0
    cm = api.ok(api.post("/creditmemo", invoice_body(cust["Id"], ("1", "5", "NON"))))["CreditMemo"]
    gone = api.ok(api.post("/creditmemo", {"Id": cm["Id"], "SyncToken": "0"}, operation="delete"))
    assert gone["CreditMemo"] == {"domain": "QBO", "status": "Deleted", "Id": cm["Id"]}
    assert fault(api.get(f"/creditmemo/{cm['Id']}"))["code"] == "610"
    assert fault(api.post("/customer", {"Id": cust["Id"], "SyncToken": "0"}, operation="delete"))["code"] == "500"


# --- validation --------------------------------------------------------------------------------------


def test_unknown_property_is_2010_like_the_recording(api: Api) -> None:
    resp = api.post("/invoice", {"BadJson": True})
    err = fault(resp)
    assert err["code"] == "2010" and err["Message"] == "Request has invalid or unsupported property"
    assert err["Detail"].startswith('Property Name:Unrecognized field "BadJson" (class com.intuit.schema.finance.v3.Invoice)')
    assert err["Detail"].endswith("specified is unsupported or invalid")
    assert "element" not in err


def test_required_fields_and_references(api: Api, sim: QBOSimulator) -> None:
    cust = make_customer(api)
    assert fault(api.post("/invoice", {"Line": invoice_body("1", ("1", "1", "NON"))["Line"]}))["code"] == "2020"
    assert fault(api.post("/invoice", {"CustomerRef": {"value": cust["Id"]}, "Line": []}))["element"] == "Line"
    assert fault(api.post("/invoice", invoice_body("999", ("1", "1", "NON"))))["code"] == "2500"
    assert fault(api.post("/invoice", invoice_body(cust["Id"], ("999", "1", "NON"))))["code"] == "2500"
    sim.add("Item", {"Name": "Old thing", "Active": False, "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    old = [i for i in sim.documents("Item") if i["Name"] == "Old thing"][0]
    assert fault(api.post("/invoice", invoice_body(cust["Id"], (old["Id"], "1", "NON"))))["code"] == "610"


def test_string_lengths_from_the_limits_table(api: Api) -> None:
    cust = make_customer(api)
    err = fault(api.post("/invoice", invoice_body(cust["Id"], ("1", "1", "NON"), DocNumber="X" * 22)))
    assert err["code"] == "2050" and "Max:21" in err["Detail"] and err["element"] == "DocNumber"
    body = invoice_body(cust["Id"], ("1", "1", "NON"))
    body["Line"][0]["Description"] = "d" * 4001
    assert fault(api.post("/invoice", body))["element"] == "Line.Description"
    assert fault(api.post("/customer", {"DisplayName": "n" * 501}))["code"] == "2050"


def test_amount_must_equal_qty_times_price(api: Api) -> None:
    cust = make_customer(api)
    body = invoice_body(cust["Id"], ("1", "100.00", "NON"))
    body["Line"][0]["SalesItemLineDetail"].update({"Qty": D("3"), "UnitPrice": D("33.33")})
    assert fault(api.post("/invoice", body))["code"] == "6070"
    body["Line"][0]["Amount"] = D("99.99")
    assert api.post("/invoice", body).status_code == 200


def test_us_line_tax_codes_must_be_tax_or_non(api: Api) -> None:
    cust = make_customer(api)
    err = fault(api.post("/invoice", invoice_body(cust["Id"], ("1", "1", "2"))))
    assert err["code"] == "6100"


def test_negative_totals_are_refused(api: Api) -> None:
    cust = make_customer(api)
    assert fault(api.post("/invoice", invoice_body(cust["Id"], ("1", "-5", "NON"))))["code"] == "6000"
    assert fault(api.post("/creditmemo", invoice_body(cust["Id"], ("1", "-5", "NON"))))["code"] == "6000"


def test_duplicate_doc_number_across_invoice_and_credit_memo(api: Api) -> None:
    cust = make_customer(api)
    cm = api.ok(api.post("/creditmemo", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="1234")))["CreditMemo"]
    err = fault(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="1234")))
    assert err["code"] == "6140" and err["Message"] == "Duplicate Document Number Error"
    assert f"DocNumber=1234 is assigned to TxnType=Credit Memo with TxnId={cm['Id']}" in err["Detail"]
    dup = api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="1234"), include="allowduplicatedocnum")
    assert dup.status_code == 200


def test_without_custom_txn_numbers_doc_numbers_are_assigned(clock: ManualClock) -> None:
    api = Api(QBOSimulator(clock, Faults(), custom_txn_numbers=False))
    cust = make_customer(api)
    a = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="CW-1")))["Invoice"]
    b = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="CW-1")))["Invoice"]
    assert a["DocNumber"] == "1001" and b["DocNumber"] == "1002"
    prefs = api.ok(api.get("/preferences"))["Preferences"]
    assert prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is False


def test_display_names_are_unique_across_people_including_inactive(api: Api, sim: QBOSimulator) -> None:
    for taken in ("Northwind Traders", "jordan lee"):
        err = fault(api.post("/customer", {"DisplayName": taken}))
        assert (err["code"], err["Message"], err["Detail"]) == ("6240", "Duplicate Name Exists Error",
                                                                 "The name supplied already exists. : null")
    sim.add("Customer", {"DisplayName": "Sleeping Co", "Active": False})
    assert fault(api.post("/customer", {"DisplayName": "Sleeping Co"}))["code"] == "6240"
    assert fault(api.post("/customer", {"DisplayName": "Parent:Child"}))["element"] == "DisplayName"
    assert fault(api.post("/item", {"Name": "Hardware", "Type": "Service", "IncomeAccountRef": {"value": "1"}}))["code"] == "6240"


def test_item_needs_an_income_account(api: Api) -> None:
    assert fault(api.post("/item", {"Name": "Consulting", "Type": "Service"}))["element"] == "IncomeAccountRef"
    item = api.ok(api.post("/item", {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "1"}}))["Item"]
    assert item["IncomeAccountRef"] == {"value": "1", "name": "Services"} and item["Active"] is True


# --- tax ---------------------------------------------------------------------------------------------


def test_us_automated_sales_tax_rounds_half_up_per_transaction(api: Api) -> None:
    cust = make_customer(api)
    inv = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("4", "1.00", "TAX"), ("4", "1.00", "TAX"),
                                                   ("1", "50.00", "NON"))))["Invoice"]
    # 2.00 x 8.25 % = 0.165 -> 0.17 half-up (banker's rounding would give 0.16)
    assert inv["TxnTaxDetail"]["TotalTax"] == D("0.17")
    assert inv["TxnTaxDetail"]["TaxLine"][0]["TaxLineDetail"]["NetAmountTaxable"] == D("2.00")
    assert inv["TotalAmt"] == D("52.17")


def test_missing_line_tax_code_follows_item_taxability(api: Api) -> None:
    cust = make_customer(api)
    body = invoice_body(cust["Id"], ("4", "100", "TAX"), ("1", "100", "NON"))
    for line in body["Line"]:
        del line["SalesItemLineDetail"]["TaxCodeRef"]
    inv = api.ok(api.post("/invoice", body))["Invoice"]
    assert [ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in inv["Line"][:2]] == ["TAX", "NON"]
    assert inv["TxnTaxDetail"]["TotalTax"] == D("8.25")


def test_explicit_total_tax_is_honoured_and_exempt_customers_pay_none(api: Api) -> None:
    cust = make_customer(api)
    body = invoice_body(cust["Id"], ("4", "100", "TAX"), TxnTaxDetail={"TotalTax": D("7.00")})
    inv = api.ok(api.post("/invoice", body))["Invoice"]
    assert inv["TxnTaxDetail"]["TotalTax"] == D("7.00") and inv["TotalAmt"] == D("107.00")
    # a sparse update that doesn't touch tax keeps the pinned amount
    upd = api.ok(api.post("/invoice", {"Id": inv["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "p"}))["Invoice"]
    assert upd["TxnTaxDetail"]["TotalTax"] == D("7.00")
    exempt = make_customer(api, "Tax Exempt Org", Taxable=False)
    inv2 = api.ok(api.post("/invoice", invoice_body(exempt["Id"], ("4", "100", "TAX"))))["Invoice"]
    assert inv2["TxnTaxDetail"]["TotalTax"] == 0 and inv2["TotalAmt"] == D("100")


def test_canada_computes_tax_per_rate_and_needs_global_tax_calculation(clock: ManualClock) -> None:
    api = Api(QBOSimulator(clock, Faults(), country="CA"))
    cust = make_customer(api, "Maple Co")
    body = invoice_body(cust["Id"], ("1", "10.10", "4"), ("1", "5.00", "2"))
    assert fault(api.post("/invoice", body))["element"] == "GlobalTaxCalculation"
    body["GlobalTaxCalculation"] = "TaxExcluded"
    inv = api.ok(api.post("/invoice", body))["Invoice"]
    lines = {tl["TaxLineDetail"]["TaxRateRef"]["value"]: tl["Amount"] for tl in inv["TxnTaxDetail"]["TaxLine"]}
    # GST 5 % on 15.10 = 0.755 -> 0.76; QST 9.975 % on 10.10 = 1.007475 -> 1.01
    assert lines == {"1": D("0.76"), "3": D("1.01")}
    assert inv["TxnTaxDetail"]["TotalTax"] == D("1.77") and inv["TotalAmt"] == D("16.87")
    assert fault(api.post("/invoice", invoice_body(cust["Id"], ("1", "1", "TAX"), GlobalTaxCalculation="TaxExcluded")))["code"] == "2500"
    no_code = invoice_body(cust["Id"], ("1", "1", "2"), GlobalTaxCalculation="TaxExcluded")
    del no_code["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"]
    assert fault(api.post("/invoice", no_code))["code"] == "6000"


# --- query -------------------------------------------------------------------------------------------


def test_query_shapes_active_filter_and_references(api: Api, sim: QBOSimulator) -> None:
    cust = make_customer(api)
    sim.add("Customer", {"DisplayName": "Gone Inc", "Active": False})
    names = [c["DisplayName"] for c in api.ok(api.query("select * from Customer"))["QueryResponse"]["Customer"]]
    assert names == ["Amy's Bird Sanctuary"]
    both = api.ok(api.query("select * from Customer where Active IN (true, false)"))["QueryResponse"]
    assert both["maxResults"] == 2 and both["startPosition"] == 1
    api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="Q-1")))
    hit = api.ok(api.query(f"select Id, DocNumber from Invoice where CustomerRef = '{cust['Id']}'"))
    assert [r["DocNumber"] for r in hit["QueryResponse"]["Invoice"]] == ["Q-1"]
    empty = api.ok(api.query("select * from Invoice where DocNumber = 'nope'"))
    assert empty["QueryResponse"] == {} and "time" in empty
    assert api.ok(api.query("select count(*) from Invoice"))["QueryResponse"] == {"totalCount": 1}
    posted = api.http.post(BASE + "/query", content=b"select * from Term where Name = 'Net 15'",
                           headers={**api._headers(), "Content-Type": "application/text"})
    assert [t["Name"] for t in api.ok(posted)["QueryResponse"]["Term"]] == ["Net 15"]


def test_query_errors(api: Api) -> None:
    err = fault(api.query("select * from Invoice where DocNumber = 'a' or DocNumber = 'b'"))
    assert (err["code"], err["Message"]) == ("4000", "Error parsing query")
    assert fault(api.query("select * from invoice"))["code"] in ("4000", "4001")
    assert fault(api.query("select * from Invoice where Bogus = '1'"))["code"] == "4001"


def test_company_info_and_preferences(api: Api) -> None:
    info = api.ok(api.get(f"/companyinfo/{REALM}"))["CompanyInfo"]
    assert info["Country"] == "US"
    prefs = api.ok(api.get("/preferences"))["Preferences"]
    names = [f["StringValue"] for g in prefs["SalesFormsPrefs"]["CustomField"] for f in g["CustomField"] if f["Type"] == "StringType"]
    assert names == ["Customer PO", "Reference", "Ticket"]
    assert prefs["AccountingInfoPrefs"]["TrackDepartments"] is True
    items = api.ok(api.query("select * from Item maxresults 1000"))["QueryResponse"]["Item"]
    assert {i["Name"] for i in items} >= {"Services", "Hours", "Managed Services", "Hardware", "Expenses",
                                          "Sales Tax", "Rounding Adjustment"}


# --- batch -------------------------------------------------------------------------------------------


def test_batch_results_are_matched_by_bid_and_items_do_not_see_each_other(api: Api) -> None:
    cust = make_customer(api)
    inv = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("1", "5", "NON"))))["Invoice"]
    items = [
        {"bId": "c1", "operation": "create", "Customer": {"DisplayName": "New Co"}},
        {"bId": "i1", "operation": "create", "Invoice": invoice_body(str(int(cust["Id"]) + 1), ("1", "5", "NON"))},
        {"bId": "d1", "operation": "delete", "Invoice": {"Id": "129", "SyncToken": "0"}},
        {"bId": "u1", "operation": "update", "Invoice": {"Id": inv["Id"], "SyncToken": "9", "sparse": True}},
        {"bId": "v1", "operation": "update", "optionsData": "void", "Invoice": {"Id": inv["Id"], "SyncToken": "0"}},
        {"bId": "q1", "Query": "select * from Customer where DisplayName = 'New Co'"},
        {"bId": "x1", "operation": "create", "Invoice": invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="B-1")},
        {"bId": "x2", "operation": "create", "Invoice": invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="B-1")},
    ]
    resp = api.post("/batch", {"BatchItemRequest": items})
    out = {r["bId"]: r for r in api.ok(resp)["BatchItemResponse"]}
    assert out["c1"]["Customer"]["DisplayName"] == "New Co"
    assert out["i1"]["Fault"]["Error"][0]["code"] == "2500"  # the new customer is invisible to its siblings
    assert out["d1"]["Fault"]["Error"][0]["code"] == "610"
    assert out["u1"]["Fault"]["Error"][0]["code"] == "5010"
    assert out["v1"]["Invoice"]["TotalAmt"] == 0
    assert out["q1"]["QueryResponse"] == {}
    assert "Invoice" in out["x1"] and out["x2"]["Fault"]["Error"][0]["code"] == "6140"


def test_batch_over_30_items_is_1040(api: Api) -> None:
    items = [{"bId": str(i), "Query": "select * from Term"} for i in range(31)]
    assert fault(api.post("/batch", {"BatchItemRequest": items}))["code"] == "1040"


# --- idempotency -------------------------------------------------------------------------------------


def test_requestid_replay_returns_the_original_response(api: Api, sim: QBOSimulator) -> None:
    cust = make_customer(api)
    body = invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="R-1")
    first = api.post("/invoice", body, requestid="req-1")
    again = api.post("/invoice", body, requestid="req-1")
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert first.headers["intuit_tid"] != again.headers["intuit_tid"]
    assert len(sim.documents("Invoice")) == 1
    assert fault(api.post("/invoice", body, requestid="r" * 51))["code"] == "2050"
    batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    assert fault(api.post("/batch", batch, requestid="b" * 37))["code"] == "2050"
    assert api.post("/batch", batch, requestid="b" * 36).status_code == 200


# --- limits ------------------------------------------------------------------------------------------


def test_500_requests_per_minute_then_xml_429(api: Api, clock: ManualClock) -> None:
    for _ in range(500):
        assert api.get("/preferences").status_code == 200
    resp = api.get("/preferences")
    assert resp.status_code == 429
    assert resp.headers["content-type"].startswith("application/xml")
    assert b'<Error code="3001"' in resp.content and b"ThrottleExceeded" in resp.content
    clock.advance(60)
    assert api.get("/preferences").status_code == 200


def test_40_batches_per_minute(api: Api, clock: ManualClock) -> None:
    batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    for _ in range(40):
        assert api.post("/batch", batch).status_code == 200
    assert api.post("/batch", batch).status_code == 429
    assert api.get("/preferences").status_code == 200  # single calls still have room
    clock.advance(61)
    assert api.post("/batch", batch).status_code == 200


def test_more_than_10_in_flight_get_429(api: Api, faults: Faults) -> None:
    faults.latency_seconds = 0.3
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        status = api.get("/preferences").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call) for _ in range(14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(429) >= 1 and statuses.count(200) >= 10
    faults.latency_seconds = 0
    assert api.sim.in_flight == 0


# --- faults ------------------------------------------------------------------------------------------


def test_fault_knobs(api: Api, faults: Faults, sim: QBOSimulator) -> None:
    make_customer(api)
    faults.throttle_next = 1
    assert api.get("/preferences").status_code == 429
    faults.error_next = 1
    resp = api.get("/preferences")
    assert resp.status_code == 503 and money.loads(resp.content)["Fault"]["type"] == "SystemFault"
    faults.update({"error_rate": 1.0, "seed": 1})
    assert api.get("/preferences").status_code == 500
    faults.error_rate = 0.0
    faults.timeout_next = 1
    with pytest.raises(DropConnection):
        sim.handle(httpx.Request("GET", f"http://sim.test{BASE}/preferences", headers=api._headers()))
    faults.paths = ["/query"]
    faults.throttle_next = 1
    assert api.get("/preferences").status_code == 200  # not a matching path: the fault waits
    assert api.query("select * from Term").status_code == 429
    faults.paths = []
    # token endpoint is never faulted
    faults.error_next = 1
    assert api.http.get("/.well-known/openid_sandbox_configuration").status_code == 200
    faults.error_next = 0


def test_drop_after_commit_then_requestid_replay_finds_the_invoice(api: Api, faults: Faults, sim: QBOSimulator) -> None:
    cust = make_customer(api)
    faults.drop_after_commit_next = 1
    body = invoice_body(cust["Id"], ("1", "5", "NON"), DocNumber="D-1")
    assert api.get("/preferences").status_code == 200  # reads don't consume the knob
    request = httpx.Request("POST", f"http://sim.test{BASE}/invoice?requestid=drop-1", headers=api._headers(),
                            content=money.dumps(body))
    with pytest.raises(DropConnection):
        sim.handle(request)
    assert [i["DocNumber"] for i in sim.documents("Invoice")] == ["D-1"]
    replay = api.post("/invoice", body, requestid="drop-1")
    assert replay.status_code == 200 and money.loads(replay.content)["Invoice"]["DocNumber"] == "D-1"
    assert len(sim.documents("Invoice")) == 1


# --- state -------------------------------------------------------------------------------------------


def test_state_round_trips_through_json_with_exact_decimals(api: Api, sim: QBOSimulator, clock: ManualClock) -> None:
    cust = make_customer(api)
    inv = api.ok(api.post("/invoice", invoice_body(cust["Id"], ("4", "10.10", "TAX"))))["Invoice"]
    text = json.dumps(sim.to_state())  # plain json: no Decimal, no float
    assert '"TotalAmt": "10.93"' in text
    other = QBOSimulator(clock, Faults())
    other.from_state(json.loads(text))
    assert other.get("Invoice", inv["Id"]) == inv
    assert other.get("Invoice", inv["Id"])["TotalAmt"] == D("10.93")
    # tokens survive too
    again = Api.__new__(Api)
    again.sim, again.token = other, api.token
    again.http = httpx.Client(transport=httpx.MockTransport(other.handle), base_url="http://sim.test")
    assert again.get(f"/invoice/{inv['Id']}").status_code == 200
