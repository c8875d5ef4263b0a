"""The payment client functions (cwqbo.connectwise.payments, cwqbo.quickbooks.payments) against both simulators,
and the third-party clients (pyconnectwise, python-quickbooks) reading the simulators' payments unchanged."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cwqbo import http
from cwqbo.clock import ManualClock
from cwqbo.connectwise import payments as cw_payments
from cwqbo.connectwise.client import CWClient
from cwqbo.quickbooks import payments as qbo_payments
from cwqbo.quickbooks.client import QBOClient
from cwqbo.sandbox import server as sv
from cwqbo.sandbox.quickbooks.simulator import DirectTokens

D = Decimal
LINE = {"Amount": "100.00", "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}}}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_795_500_000.0)


@pytest.fixture
def box(clock: ManualClock) -> Iterator[sv.Sandbox]:
    sandbox = sv.Sandbox(seed=3, invoices=6, clock=clock)
    http.set_transport_override(httpx.MockTransport(sandbox.handle))
    try:
        yield sandbox
    finally:
        http.set_transport_override(None)


@pytest.fixture
def qbo(box: sv.Sandbox, clock: ManualClock) -> QBOClient:
    return QBOClient("http://127.0.0.1:9", sv.QBO_REALM_ID, DirectTokens(box.qbo), clock=clock)


@pytest.fixture
def cw(clock: ManualClock) -> CWClient:
    return CWClient(site="127.0.0.1:9", company_id=sv.CW_COMPANY, public_key=sv.CW_PUBLIC_KEY,
                    private_key=sv.CW_PRIVATE_KEY, client_id=sv.CW_CLIENT_ID, codebase=sv.CW_CODEBASE, scheme="http",
                    clock=clock)


def qbo_invoice(qbo: QBOClient, name: str) -> tuple[str, str]:
    cust = qbo.create("Customer", {"DisplayName": name}, f"c-{name}").obj["Id"]
    inv = qbo.create("Invoice", {"CustomerRef": {"value": cust}, "Line": [LINE]}, f"i-{name}").obj["Id"]
    return str(cust), str(inv)


# --- QuickBooks ---------------------------------------------------------------------------------------------------


def test_changed_since_pages_by_time_including_ties_and_edits(box: sv.Sandbox, qbo: QBOClient,
                                                              clock: ManualClock) -> None:
    cust, inv = qbo_invoice(qbo, "Pager")
    made = []
    for n in range(7):  # seven payments, the first five in one second (ties across pages of 2)
        if n >= 5:
            clock.advance(10)
        made.append(box.qbo.receive_payment(cust, [("Invoice", inv, D("1.00"))], date="2026-11-21")["Id"])
    everything = qbo_payments.payments_changed_since(qbo, None, page_size=2)
    assert [p["Id"] for p in everything] == made
    since = box.qbo.get("Payment", made[5])["MetaData"]["LastUpdatedTime"]  # type: ignore[index]
    assert [p["Id"] for p in qbo_payments.payments_changed_since(qbo, since, page_size=2)] == made[5:]
    clock.advance(10)
    box.qbo.edit_payment(made[0], PrivateNote="moved")
    latest = qbo_payments.payments_changed_since(qbo, since, page_size=2)
    assert [p["Id"] for p in latest] == [made[5], made[6], made[0]]
    assert latest[-1]["PrivateNote"] == "moved"


def test_a_void_comes_back_from_the_query_with_zero_amounts(box: sv.Sandbox, qbo: QBOClient,
                                                            clock: ManualClock) -> None:
    cust, inv = qbo_invoice(qbo, "Voider")
    p = box.qbo.receive_payment(cust, [("Invoice", inv, D("100.00"))], date="2026-11-21")
    clock.advance(5)
    box.qbo.void_payment(p["Id"])
    (row,) = qbo_payments.payments_changed_since(qbo, p["MetaData"]["LastUpdatedTime"])
    assert (row["TotalAmt"], row["Line"], row["PrivateNote"]) == (0, [], "Voided")
    assert qbo.read("Invoice", inv).obj["Balance"] == D("100.00")


def test_deleted_payments_come_from_cdc_and_read_says_none(box: sv.Sandbox, qbo: QBOClient,
                                                           clock: ManualClock) -> None:
    cust, inv = qbo_invoice(qbo, "Deleter")
    keep = box.qbo.receive_payment(cust, [("Invoice", inv, D("10.00"))], date="2026-11-21")
    gone = box.qbo.receive_payment(cust, [("Invoice", inv, D("20.00"))], date="2026-11-21")
    since = keep["MetaData"]["LastUpdatedTime"]
    clock.advance(5)
    box.qbo.delete_payment(gone["Id"])
    assert qbo_payments.deleted_payment_ids_since(qbo, since) == [gone["Id"]]
    assert qbo_payments.read_payment(qbo, gone["Id"]) is None
    assert qbo_payments.read_payment(qbo, keep["Id"])["TotalAmt"] == D("10.00")  # type: ignore[index]
    assert [p["Id"] for p in qbo_payments.payments_changed_since(qbo, since)] == [keep["Id"]]


# --- ConnectWise --------------------------------------------------------------------------------------------------


def _closed_invoice(box: sv.Sandbox) -> dict[str, Any]:
    return next(i for i in box.cw.invoices() if box.cw.is_closed(i["id"]) and i["type"] != "CreditMemo"
                and D(i["balance"]) > 1)


def test_cw_post_list_and_delete(box: sv.Sandbox, cw: CWClient) -> None:
    inv = _closed_invoice(box)
    start = D(inv["balance"])
    made = cw_payments.add_invoice_payment(cw, inv["id"], type="Payment", amount=D("1.00"),
                                           payment_date=dt.date(2026, 11, 21), applied_by="cwqbo",
                                           credit_invoice_id=None)
    assert made["paymentDate"] == "2026-11-21T00:00:00Z" and made["amount"] == D("1.00")
    assert cw_payments.invoice(cw, inv["id"])["balance"] == start - 1
    assert [p["id"] for p in cw_payments.invoice_payments(cw, inv["id"])] == [made["id"]]
    cw_payments.delete_invoice_payment(cw, inv["id"], made["id"])
    cw_payments.delete_invoice_payment(cw, inv["id"], made["id"])  # already gone: a 404 verified by a GET
    assert cw_payments.invoice(cw, inv["id"])["balance"] == start
    assert cw_payments.invoice_payments(cw, inv["id"]) == []


def test_cw_post_is_never_retried_and_bad_amounts_never_leave(box: sv.Sandbox, cw: CWClient,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    inv = _closed_invoice(box)
    sent: list[dict[str, Any]] = []
    real = cw.post_json

    def spy(path: str, body: Any, *, idempotent: bool = False) -> Any:
        sent.append({"path": path, "idempotent": idempotent})
        return real(path, body, idempotent=idempotent)

    monkeypatch.setattr(cw, "post_json", spy)
    cw_payments.add_invoice_payment(cw, inv["id"], type="Payment", amount=D("1.00"),
                                    payment_date=dt.date(2026, 11, 21), applied_by=None, credit_invoice_id=None)
    assert sent == [{"path": f"/finance/invoices/{inv['id']}/payments", "idempotent": False}]
    for amount in (D("0"), D("-1"), D("1.001"), 1.5):
        with pytest.raises((ValueError, TypeError)):
            cw_payments.add_invoice_payment(cw, inv["id"], type="Payment", amount=amount,  # type: ignore[arg-type]
                                            payment_date=dt.date(2026, 11, 21), applied_by=None,
                                            credit_invoice_id=None)
    assert len(sent) == 1


def test_sandbox_control_route_receives_and_voids_a_payment(box: sv.Sandbox, qbo: QBOClient) -> None:
    cust, inv = qbo_invoice(qbo, "Control")
    api = httpx.Client(transport=httpx.MockTransport(box.handle), base_url="http://sandbox.test")
    got = api.post("/_sandbox/qbo/payments", json={"customer_id": cust, "lines": [["Invoice", inv, "40.00"]],
                                                    "date": "2026-11-21"})
    assert got.status_code == 200, got.text
    pid = got.json()["Payment"]["Id"]
    assert qbo.read("Invoice", inv).obj["Balance"] == D("60.00")
    assert api.post("/_sandbox/qbo/payments", json={"action": "void", "id": pid}).status_code == 200
    assert qbo.read("Invoice", inv).obj["Balance"] == D("100.00")
    too_much = api.post("/_sandbox/qbo/payments", json={"customer_id": cust, "lines": [["Invoice", inv, "101"]],
                                                         "date": "2026-11-21"})
    assert too_much.status_code == 400 and too_much.json()["fault"]["code"] == "6000"


# --- third-party clients ------------------------------------------------------------------------------------------


def test_pyconnectwise_reads_invoice_payments(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyconnectwise")
    from tests.sandbox.test_pyconnectwise import LoopbackManageClient

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    sandbox = sv.Sandbox(seed=5, invoices=8)
    server = sandbox.start()
    try:
        creds = sandbox.credentials(server.url)["connectwise"]
        client = LoopbackManageClient(creds["company_id"], creds["site"], creds["client_id"], creds["public_key"],
                                      creds["private_key"])
        inv = _closed_invoice(sandbox)
        posted = client.finance.invoices.id(inv["id"]).payments.post(
            data={"type": "Payment", "amount": 1.25, "paymentDate": "2026-11-21T00:00:00Z"})
        listed = client.finance.invoices.id(inv["id"]).payments.get()
        assert [(p.id, p.amount, p.invoice.id) for p in listed] == [(posted.id, 1.25, inv["id"])]
        one = client.finance.invoices.id(inv["id"]).payments.id(posted.id).get()
        assert one.payment_date is not None and one.payment_date.date() == dt.date(2026, 11, 21)
        client.finance.invoices.id(inv["id"]).payments.id(posted.id).delete()
        assert sandbox.cw.invoice_payments(inv["id"]) == []
    finally:
        server.stop()


def test_python_quickbooks_reads_and_voids_a_payment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("quickbooks")
    pytest.importorskip("intuitlib")
    from intuitlib.client import AuthClient  # type: ignore[import-untyped]
    from quickbooks import QuickBooks  # type: ignore[import-untyped]
    from quickbooks.objects.payment import Payment  # type: ignore[import-untyped]

    from cwqbo.sandbox.bridge import LoopbackServer

    sandbox = sv.Sandbox(seed=1, invoices=2, clock=ManualClock(start=1_795_500_000.0))
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    with LoopbackServer(sandbox.qbo.handle) as server:
        http.set_transport_override(httpx.MockTransport(sandbox.handle))
        try:
            direct = QBOClient("http://127.0.0.1:9", sv.QBO_REALM_ID, DirectTokens(sandbox.qbo), clock=sandbox.clock)
            cust, inv = qbo_invoice(direct, "PyQB")
        finally:
            http.set_transport_override(None)
        p = sandbox.qbo.receive_payment(cust, [("Invoice", inv, D("12.50"))], date="2026-11-21")
        auth = AuthClient("sandbox-client-id", "sandbox-client-secret", "http://127.0.0.1/callback",
                          environment=f"{server.url}/.well-known/openid_sandbox_configuration")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qb = QuickBooks(auth_client=auth, refresh_token=sandbox.qbo.issue_tokens()["refresh_token"],
                            company_id=sv.QBO_REALM_ID, minorversion=75)
        qb.api_url_v3 = f"{server.url}/v3"
        qb.sandbox = False
        qb.use_decimal = True
        got = Payment.get(p["Id"], qb=qb)
        assert got.TotalAmt == D("12.50") and got.Line[0].LinkedTxn[0].TxnId == inv
        assert [x.Id for x in Payment.filter(CustomerRef=cust, qb=qb)] == [p["Id"]]
        got.void(qb=qb)  # python-quickbooks sends ?operation=update&include=void
        assert sandbox.qbo.get("Payment", p["Id"])["PrivateNote"] == "Voided"  # type: ignore[index]
