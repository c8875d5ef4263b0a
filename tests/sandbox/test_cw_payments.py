"""The CW simulator's invoice payments: schema-held bodies and answers, balances following, refusals, state, GL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.sandbox.connectwise.simulator import CWSimulator
from cwqbo.sandbox.faults import Faults

BASE = "http://cw.test/v2026_1/apis/3.0"
D = Decimal
DEC_1 = 1_796_083_200.0


@pytest.fixture
def sim() -> CWSimulator:
    return CWSimulator(ManualClock(DEC_1), Faults())


@pytest.fixture
def http(sim: CWSimulator) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(sim.handle), base_url=BASE,
                        auth=("cwqbo_demo+sandbox-public", "sandbox-private"),
                        headers={"clientId": "00000000-0000-4000-8000-00000000c1d0"})


def invoice(sim: CWSimulator, amount: str = "100", **fields: Any) -> int:
    made = sim.add_invoice(products=[{"quantity": 1, "price": D(amount)}], **fields)
    return int(made["id"])


def post(http: httpx.Client, invoice_id: int, **body: Any) -> httpx.Response:
    body.setdefault("type", "Payment")
    return http.post(f"/finance/invoices/{invoice_id}/payments", content=money.dumps(body),
                     headers={"Content-Type": "application/json"})


def error(resp: httpx.Response, status: int = 400) -> str:
    assert resp.status_code == status, resp.text
    return str(resp.json().get("errors", [{}])[0].get("message") or resp.json()["message"])


def test_full_and_partial_payments_and_the_invoice_balance(sim: CWSimulator, http: httpx.Client) -> None:
    inv = invoice(sim)
    before = sim.invoice(inv)
    made = post(http, inv, amount="40.00", paymentDate="2026-11-20T00:00:00Z", appliedBy="cwqbo")
    assert made.status_code == 201, made.text
    payment = money.loads(made.content)
    assert payment == {"id": payment["id"], "type": "Payment", "amount": D("40.00"),
                       "paymentDate": "2026-11-20T00:00:00Z", "appliedBy": "cwqbo",
                       "invoice": {"id": inv, "identifier": before["invoiceNumber"]},
                       "_info": payment["_info"]}
    after = sim.invoice(inv)
    assert (after["balance"], after["payments"]) == (D("60.00"), D("40.00"))
    assert after["_info"]["lastUpdated"] > before["_info"]["lastUpdated"]
    post(http, inv, amount="60.00", paymentDate="2026-11-21")
    assert sim.invoice(inv)["balance"] == 0
    listed = money.loads(http.get(f"/finance/invoices/{inv}/payments").content)
    assert [p["amount"] for p in listed] == [D("40.00"), D("60.00")] == [p["amount"] for p in sim.invoice_payments(inv)]
    assert money.loads(http.get(f"/finance/invoices/{inv}/payments/{payment['id']}").content) == payment
    assert http.get(f"/finance/invoices/{inv}/payments/count").json() == {"count": 2}
    assert money.loads(http.get(f"/finance/invoices/{inv}/payments",
                                params={"conditions": "amount = 60"}).content)[0]["amount"] == D("60.00")


def test_payments_on_several_invoices_stay_on_their_invoice(sim: CWSimulator, http: httpx.Client) -> None:
    a, b = invoice(sim), invoice(sim, "50")
    post(http, a, amount="100.00")
    post(http, b, amount="20.00")
    assert (sim.invoice(a)["balance"], sim.invoice(b)["balance"]) == (0, D("30.00"))
    assert [p["invoice"]["id"] for p in sim.invoice_payments(b)] == [b]


def test_a_credit_memo_applied_moves_credits_and_both_balances(sim: CWSimulator, http: httpx.Client) -> None:
    inv, memo = invoice(sim), invoice(sim, "-30")
    assert sim.invoice(memo)["type"] == "CreditMemo"
    made = post(http, inv, amount="30.00", credit={"id": memo})
    assert made.status_code == 201, made.text
    assert money.loads(made.content)["credit"] == {"id": memo, "identifier": sim.invoice(memo)["invoiceNumber"]}
    assert (sim.invoice(inv)["balance"], sim.invoice(inv)["credits"]) == (D("70.00"), D("30.00"))
    assert sim.invoice(memo)["balance"] == 0
    assert "more than the credit memo" in error(post(http, invoice(sim), amount="1.00", credit={"id": memo}))


def test_delete_restores_the_balance(sim: CWSimulator, http: httpx.Client) -> None:
    inv, memo = invoice(sim), invoice(sim, "-30")
    cash = money.loads(post(http, inv, amount="25.00").content)
    credit = money.loads(post(http, inv, amount="30.00", credit={"id": memo}).content)
    assert http.delete(f"/finance/invoices/{inv}/payments/{cash['id']}").status_code == 204
    assert http.delete(f"/finance/invoices/{inv}/payments/{credit['id']}").status_code == 204
    assert (sim.invoice(inv)["balance"], sim.invoice(inv)["payments"], sim.invoice(inv)["credits"]) == (D("100"), 0, 0)
    assert sim.invoice(memo)["balance"] == D("-30")
    assert http.delete(f"/finance/invoices/{inv}/payments/{cash['id']}").status_code == 404
    assert sim.invoice_payments(inv) == []


@pytest.mark.parametrize(("body", "words"), [
    ({"amount": "100.01"}, "more than the invoice balance"),
    ({"amount": "0"}, "positive"),
    ({"amount": "-5"}, "positive"),
    ({"amount": "1.005"}, "whole cents"),
    ({"amount": "1", "memo": "x"}, "memo is not a field of Payment"),
    ({"amount": "1", "type": None}, "type is required"),
    ({"type": "Payment"}, "amount is required"),
    ({"amount": "1", "invoice": {"id": 1}}, "invoice of the request path"),
    ({"amount": "1", "credit": {"id": 99999}}, "closed credit memo"),
    ({"amount": "1", "paymentDate": "soon"}, "not a valid date"),
])
def test_what_connectwise_would_refuse_changes_nothing(sim: CWSimulator, http: httpx.Client, body: dict[str, Any],
                                                       words: str) -> None:
    inv = invoice(sim)
    assert words in error(post(http, inv, **body))
    assert sim.invoice(inv)["balance"] == D("100") and sim.invoice_payments(inv) == []


def test_an_open_invoice_a_credit_memo_and_a_missing_invoice_take_no_payment(sim: CWSimulator,
                                                                             http: httpx.Client) -> None:
    assert "not a closed invoice" in error(post(http, invoice(sim, closed=False), amount="1"))
    assert "not a closed invoice" in error(post(http, invoice(sim, "-10"), amount="1"))
    assert error(post(http, 424242, amount="1"), 404)
    assert http.get("/finance/invoices/424242/payments").status_code == 404
    assert http.put(f"/finance/invoices/{invoice(sim)}/payments/1", json={}).status_code == 405


def test_rights_and_the_gl_are_respected(sim: CWSimulator, http: httpx.Client) -> None:
    inv = invoice(sim)
    entries = sim.gl_entries_of(inv)
    sim.set_permission("Invoicing", "None", kind="add")
    assert post(http, inv, amount="1").status_code == 403
    sim.set_permission("Invoicing", "All", kind="add")
    assert post(http, inv, amount="1").status_code == 201
    assert sim.gl_entries_of(inv) == entries  # payments are not part of the invoice's GL export here


def test_state_round_trip_keeps_payments_and_ids(sim: CWSimulator, http: httpx.Client) -> None:
    inv = invoice(sim)
    first = money.loads(post(http, inv, amount="10").content)
    again = CWSimulator(ManualClock(DEC_1), Faults())
    again.from_state(money.loads(sim.state_json()))
    assert again.invoice_payments(inv) == sim.invoice_payments(inv)
    old = sim.to_state()
    del old["payments"]
    del old["next_id"]["payment"]
    again.from_state(old)  # a state file from before payments
    assert again.invoice_payments(inv) == []
    again.from_state(money.loads(sim.state_json()))
    http2 = httpx.Client(transport=httpx.MockTransport(again.handle), base_url=BASE,
                         auth=("cwqbo_demo+sandbox-public", "sandbox-private"),
                         headers={"clientId": "00000000-0000-4000-8000-00000000c1d0"})
    assert money.loads(post(http2, inv, amount="10").content)["id"] == first["id"] + 1


def test_answers_hold_only_schema_fields_and_pyconnectwise_parses_them(sim: CWSimulator, http: httpx.Client) -> None:
    pytest.importorskip("pyconnectwise")
    from pyconnectwise.models.manage import Payment

    from tests.sandbox.test_cw_schema import invented

    inv, memo = invoice(sim), invoice(sim, "-30")
    post(http, inv, amount="30.00", credit={"id": memo}, appliedBy="x", paymentDate="2026-11-20")
    post(http, inv, amount="5.00")
    rows = money.loads(http.get(f"/finance/invoices/{inv}/payments").content)
    assert len(rows) == 2
    bad = [b for r in rows for b in invented(Payment, r, "payment")]
    assert bad == []
    parsed = [Payment.model_validate(r) for r in rows]
    assert parsed[0].credit is not None and parsed[0].credit.id == memo and parsed[1].amount == 5.0
