"""QBOClient parses real Intuit sandbox traffic (the qbo_api VCR cassettes in ../shared/data/qbo).

Each cassette is replayed in order through an httpx.MockTransport; the client must send the same kind
of request and make sense of the recorded response byte for byte (exact Decimals, tids, both fault shapes).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.errors import AuthError
from cwqbo.quickbooks import query as q
from cwqbo.quickbooks.client import BatchOp, QBOClient, QBOError, parse_faults

yaml = pytest.importorskip("yaml")

VCR_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "qbo" / "qbo_api_vcr"
pytestmark = pytest.mark.skipif(not VCR_DIR.is_dir(), reason="../shared/data/qbo recordings not present")
REALM = "-COMPANY_ID-"
_SKIP_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "connection"}


class Replay:
    """Serves a cassette's responses in order and keeps the requests the client sent."""

    def __init__(self, name: str) -> None:
        data = yaml.safe_load((VCR_DIR / f"{name}.yml").read_text(encoding="utf-8"))
        self.interactions: list[dict[str, Any]] = data["http_interactions"]
        self.sent: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert len(self.sent) < len(self.interactions), f"unexpected extra request {request.method} {request.url}"
        recorded = self.interactions[len(self.sent)]
        self.sent.append(request)
        assert request.method == recorded["request"]["method"].upper()
        rec_path = httpx.URL(recorded["request"]["uri"]).path.replace(f"/company/{REALM}", "")
        assert request.url.path.replace(f"/company/{REALM}", "") == rec_path
        resp = recorded["response"]
        headers = [(k, v) for k, vals in resp["headers"].items() if k.lower() not in _SKIP_HEADERS for v in vals]
        return httpx.Response(resp["status"]["code"], headers=headers, content=resp["body"]["string"].encode("utf-8"))


class StaticTokens:
    def __init__(self) -> None:
        self.refreshes = 0

    def access_token(self) -> str:
        return "recorded-token"

    def force_refresh(self) -> str:
        self.refreshes += 1
        return "refreshed-token"


def client_for(name: str, tokens: StaticTokens | None = None) -> tuple[QBOClient, Replay]:
    replay = Replay(name)
    qbo = QBOClient("https://sandbox-quickbooks.api.intuit.com/v3", REALM, tokens or StaticTokens(), clock=ManualClock(),
                    client=httpx.Client(transport=httpx.MockTransport(replay.handle)))
    return qbo, replay


def test_create_invoice_response() -> None:
    qbo, replay = client_for("create_invoice")
    payload = {"Line": [{"Amount": Decimal("100.0"), "DetailType": "SalesItemLineDetail",
                         "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"}}}],
               "CustomerRef": {"value": "1"}}
    result = qbo.create("Invoice", payload, request_id="rec-1")
    inv = result.obj
    assert inv["Id"] == "266" and inv["SyncToken"] == "0" and inv["DocNumber"] == "1043"
    assert inv["TotalAmt"] == Decimal("100") and isinstance(inv["TotalAmt"], Decimal)
    assert isinstance(inv["Line"][0]["Amount"], Decimal)
    assert result.tid == "1-5f732f5f-25dcb83b777d318c396aaf06"
    assert replay.sent[0].url.params["requestid"] == "rec-1"
    assert b'"Amount":100.0' in replay.sent[0].content  # Decimal written as an exact JSON number


def test_create_customer_response() -> None:
    qbo, _ = client_for("create_customer")
    cust = qbo.create("Customer", {"DisplayName": "Doe5, Jane"}, request_id="c-1").obj
    assert cust["Id"] == "70" and cust["DisplayName"] == "Doe5, Jane" and cust["Balance"] == 0


def test_read_then_void_invoice() -> None:
    qbo, replay = client_for("void_invoice")
    inv = qbo.read("Invoice", "264").obj
    voided = qbo.void("Invoice", inv["Id"], inv["SyncToken"], request_id="v-1")
    assert voided.obj["Id"] == "264" and voided.obj["TotalAmt"] == 0
    assert "Voided" in voided.obj.get("PrivateNote", "")
    assert replay.sent[1].url.params["operation"] == "void"


def test_read_then_sparse_update_sales_receipt() -> None:
    qbo, replay = client_for("update_sales_receipt")
    sr = qbo.read("SalesReceipt", "17").obj
    out = qbo.update("SalesReceipt", {"Id": sr["Id"], "SyncToken": sr["SyncToken"], "PrivateNote": "x"}, "u-1").obj
    assert (sr["SyncToken"], out["SyncToken"]) == ("4", "5")
    assert b'"sparse":true' in replay.sent[1].content


def test_query_with_escaped_quote_matches_the_recorded_request() -> None:
    qbo, replay = client_for("get_display_name")
    rows = qbo.query("SELECT * FROM Customer WHERE " + q.eq("DisplayName", "Amy's Bird Sanctuary"))
    recorded = httpx.URL(replay.interactions[0]["request"]["uri"]).params["query"]
    assert replay.sent[0].url.params["query"] == recorded
    assert rows[0]["DisplayName"] == "Amy's Bird Sanctuary" and rows[0]["Balance"] == Decimal("739.0")


def test_query_with_ampersand() -> None:
    qbo, replay = client_for("misc_ampersand")
    rows = qbo.query("SELECT * FROM Vendor WHERE " + q.eq("DisplayName", "Robertson & Associates"))
    assert rows[0]["Id"] == "49" and replay.sent[0].url.params["query"].endswith("'Robertson & Associates'")


def test_batch_response_mixes_objects_query_rows_and_faults() -> None:
    qbo, _ = client_for("batch_basic")
    results = qbo.batch([
        BatchOp.create("bid1", "Vendor", {"DisplayName": "Boraski Family Store"}),
        BatchOp.delete("bid2", "Invoice", "129", "0"),
        BatchOp.update("bid3", "SalesReceipt", {"Id": "11", "SyncToken": "0", "PrivateNote": "A private note."}),
        BatchOp.select("bid4", "select * from SalesReceipt where TotalAmt > '300.00'"),
    ])
    assert set(results) == {"bid1", "bid2", "bid3", "bid4"}
    assert results["bid1"].entity == "Vendor" and results["bid1"].obj["DisplayName"] == "Boraski Family Store"
    assert results["bid4"].rows is not None and all(isinstance(r["TotalAmt"], Decimal) for r in results["bid4"].rows)
    assert all(r.tid == "1-5f734f0e-58baa045003ab251111c54e6" for r in results.values())
    assert (results["bid2"].ok, results["bid2"].faults[0].code) == (False, "610")
    assert (results["bid3"].ok, results["bid3"].faults[0].code) == (False, "5010")
    assert results["bid1"].ok and results["bid4"].ok


def test_validation_fault_6240() -> None:
    qbo, _ = client_for("error_validation")
    with pytest.raises(QBOError) as info:
        qbo.create("Customer", {"DisplayName": "Weiskopf Consulting"}, request_id="c-2")
    err = info.value
    assert err.code == "6240" and err.status == 400 and err.tid == "1-5f733d9a-1d4e21aa217ba43177113df4"
    assert "Duplicate Name Exists Error" in str(err)


def test_unknown_property_fault_2010() -> None:
    qbo, _ = client_for("error_400_json")
    with pytest.raises(QBOError) as info:
        qbo.create("Invoice", {"BadJson": True}, request_id="bad")
    assert info.value.code == "2010" and 'Unrecognized field "BadJson"' in info.value.faults[0].detail


def test_400_faults_are_not_retried() -> None:
    qbo, replay = client_for("error_500")
    with pytest.raises(QBOError) as info:
        qbo.read("Customer", "1/5")
    assert info.value.code == "500" and len(replay.sent) == 1
    with pytest.raises(QBOError) as info:
        qbo.read("Customer", "1.5")
    assert info.value.code == "2030" and info.value.faults[0].element == "Id"


def test_recorded_401_lower_case_fault_triggers_one_refresh() -> None:
    tokens = StaticTokens()
    qbo, replay = client_for("error_401", tokens)
    replay.interactions = replay.interactions * 2  # the refreshed token is refused as well
    with pytest.raises(AuthError):
        qbo.read("Customer", "1")
    assert tokens.refreshes == 1
    assert [r.headers["authorization"] for r in replay.sent] == ["Bearer recorded-token", "Bearer refreshed-token"]
    body = yaml.safe_load((VCR_DIR / "error_401.yml").read_text())["http_interactions"][0]["response"]["body"]["string"]
    faults = parse_faults(money.loads(body))
    assert faults[0].code == "3200" and faults[0].detail.startswith("Token expired")


def _recorded_body(name: str, index: int = 0) -> str:
    body: str = Replay(name).interactions[index]["response"]["body"]["string"]
    return body


def test_created_documents_are_read_for_what_the_sync_reads_and_nothing_is_lost() -> None:
    """A batch of creates decodes only Id, SyncToken, DocNumber, TotalAmt, the lines' amounts and the tax: exactly
    as the whole answer has them; faults whole. Intuit's recorded Invoice and fault, in a batch answer."""
    invoice = money.loads(_recorded_body("create_invoice"))["Invoice"]
    fault = next(i for i in money.loads(_recorded_body("batch_basic"))["BatchItemResponse"] if "Fault" in i)
    text = money.dumps({"BatchItemResponse": [{"Invoice": invoice, "bId": "0"}, {**fault, "bId": "1"},
                                              {"CreditMemo": {**invoice, "TotalAmt": Decimal("-5.10")}, "bId": "2"}],
                        "time": "2020-09-29T08:49:34.212-07:00"}).encode()
    qbo = QBOClient("https://sandbox-quickbooks.api.intuit.com/v3", REALM, StaticTokens(), clock=ManualClock(),
                    client=httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=text))))
    read = qbo.batch([BatchOp.create_text(str(i), "Invoice", "{}") for i in range(3)], "rid", documents=True)
    whole = qbo.batch([BatchOp.create_text(str(i), "Invoice", "{}") for i in range(3)], "rid")
    assert read["0"].obj is not None and whole["0"].obj is not None and len(whole["0"].obj) > len(read["0"].obj)
    for bid in ("0", "2"):
        got, full = read[bid].obj, whole[bid].obj
        assert got is not None and full is not None and read[bid].entity == whole[bid].entity
        assert {k: got[k] for k in ("Id", "SyncToken", "DocNumber", "TotalAmt")} == {
            k: full[k] for k in ("Id", "SyncToken", "DocNumber", "TotalAmt")}
        assert got["Line"] == [{k: ln[k] for k in ("Amount", "DetailType") if k in ln} for ln in full["Line"]]
        assert got.get("TxnTaxDetail", {}).get("TotalTax") == full.get("TxnTaxDetail", {}).get("TotalTax")
    assert read["1"].faults == whole["1"].faults and read["1"].faults[0].code == "610"


@pytest.mark.parametrize("answer", [
    {"BatchItemResponse": [{"bId": "0", "Customer": {"Id": "7"}}]},  # an entity the sync did not create
    {"BatchItemResponse": [{"bId": "0", "Invoice": "7"}]},  # not an object
    {"BatchItemResponse": [{"bId": "0", "Invoice": {"Id": "7", "Line": {"Amount": 1}}}]},
])
def test_a_batch_answer_of_another_shape_is_read_whole(answer: dict[str, Any]) -> None:
    from cwqbo.quickbooks import created

    text = money.dumps(answer).encode()
    assert created.decode(text) == money.loads(text)
