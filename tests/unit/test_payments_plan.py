"""The pure payments plan: which ConnectWise payments a QuickBooks payment stands for, and what must change."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cwqbo.state.payments import Key, OurDocument, PaymentRow
from cwqbo.sync.payments_plan import deleted_plan, diff, landed, plan_payment

DOCS = {("Invoice", "11"): OurDocument(101, "INV-101", "Invoice"),
        ("Invoice", "12"): OurDocument(102, "INV-102", "Invoice"),
        ("CreditMemo", "21"): OurDocument(201, "CM-201", "CreditMemo")}


def payment(lines: list[tuple[str, str, str]], *, pid: str = "900", total: str | None = None,
            **extra: Any) -> dict[str, Any]:
    return {"Id": pid, "TxnDate": "2026-03-02", "TotalAmt": Decimal(total) if total else None,
            "Line": [{"Amount": Decimal(a), "LinkedTxn": [{"TxnId": q, "TxnType": e}]} for e, q, a in lines],
            "MetaData": {"LastUpdatedTime": "2026-03-02T10:00:00-08:00"}, **extra}


def plan(p: dict[str, Any], **kw: Any) -> Any:
    return plan_payment(p, DOCS, type_map={"Check": "Check"}, default_type="Other", **kw)


def row(key: Key, amount: str, *, type: str = "Other", day: str = "2026-03-02", cw_payment_id: int = 5) -> PaymentRow:
    return PaymentRow(id=1, key=key, qbo_entity="Invoice", qbo_invoice_id="11", qbo_credit_id=None,
                      invoice_number="INV-101", state="posted", amount=Decimal(amount), payment_date=day, type=type,
                      qbo_updated=None, cw_payment_id=cw_payment_id, error=None, run_id=1, attempts=1,
                      created_at=None, updated_at=None)


def test_full_payment_is_one_cw_payment_of_the_whole_amount() -> None:
    p = plan(payment([("Invoice", "11", "250.00")], PaymentMethodRef={"value": "1", "name": "check"}))
    [line] = p.lines
    assert (line.key, line.amount, line.payment_date, line.type) == (Key("900", 101), Decimal("250.00"),
                                                                      "2026-03-02", "Check")
    assert line.problem is None and not p.voided


def test_partial_payment_posts_only_what_was_paid() -> None:
    [line] = plan(payment([("Invoice", "11", "99.99")])).lines
    assert line.amount == Decimal("99.99") and line.type == "Other"


def test_one_payment_across_two_invoices_is_one_cw_payment_per_invoice() -> None:
    lines = plan(payment([("Invoice", "11", "100.00"), ("Invoice", "12", "50.25"),
                          ("Invoice", "11", "0.01")])).lines
    assert {(ln.key.cw_invoice_id, ln.amount) for ln in lines} == {(101, Decimal("100.01")), (102, Decimal("50.25"))}


def test_credit_memo_applied_becomes_a_cw_payment_with_the_credit_and_the_rest_is_money() -> None:
    lines = plan(payment([("Invoice", "11", "300.00"), ("CreditMemo", "21", "120.00")], total="180.00")).lines
    by_credit = {ln.key.credit_cw_id: ln.amount for ln in lines}
    assert by_credit == {201: Decimal("120.00"), 0: Decimal("180.00")}
    assert all(ln.problem is None for ln in lines)


def test_credit_memo_not_created_by_cwqbo_fails_alone_with_a_reason() -> None:
    lines = plan(payment([("Invoice", "11", "300.00"), ("CreditMemo", "99", "100.00")], total="200.00")).lines
    refused = [ln for ln in lines if ln.problem]
    assert [ln.amount for ln in refused] == [Decimal("100.00")] and "credit memo 99" in str(refused[0].problem)
    assert [ln.amount for ln in lines if not ln.problem] == [Decimal("200.00")]


def test_lines_on_invoices_cwqbo_did_not_create_are_left_out() -> None:
    assert plan(payment([("Invoice", "77", "10.00")])).lines == ()


def test_a_payment_in_another_currency_fails_alone() -> None:
    lines = plan(payment([("Invoice", "11", "10.00")], CurrencyRef={"value": "EUR"}),
                 invoice_currency=lambda cw_id: "USD").lines
    assert "EUR" in str(lines[0].problem) and "USD" in str(lines[0].problem)


def test_voided_payment_wants_nothing_and_reverses_what_was_posted() -> None:
    p = plan(payment([("Invoice", "11", "0")], total="0"))
    assert p.voided and p.lines == ()
    acts = diff(p, [row(Key("900", 101), "250.00")])
    assert [why for _, why in acts.reverse] == ["voided in QuickBooks"] and not acts.post


def test_deleted_payment_reverses_everything_it_posted() -> None:
    acts = diff(deleted_plan("900"), [row(Key("900", 101), "250.00"), row(Key("900", 102), "5.00")])
    assert len(acts.reverse) == 2 and {why for _, why in acts.reverse} == {"deleted in QuickBooks"}


def test_edited_payment_is_reversed_and_posted_again_never_a_second_payment() -> None:
    acts = diff(plan(payment([("Invoice", "11", "200.00")])), [row(Key("900", 101), "250.00")])
    assert [r.amount for r, _ in acts.reverse] == [Decimal("250.00")]
    assert [ln.amount for ln in acts.post] == [Decimal("200.00")]


def test_unchanged_payment_changes_nothing() -> None:
    acts = diff(plan(payment([("Invoice", "11", "250.00")])), [row(Key("900", 101), "250.00")])
    assert not acts.reverse and not acts.post and len(acts.unchanged) == 1


def test_landed_adopts_only_an_unclaimed_payment_with_the_same_amount_date_type_and_credit() -> None:
    cw = [{"id": 1, "amount": Decimal("50.00"), "paymentDate": "2026-03-02T00:00:00Z", "type": "Other"},
          {"id": 2, "amount": Decimal("50.00"), "paymentDate": "2026-03-03T00:00:00Z", "type": "Other"},
          {"id": 3, "amount": Decimal("50.00"), "paymentDate": "2026-03-02T00:00:00Z", "type": "Other",
           "credit": {"id": 201}}]
    want = {"amount": Decimal("50.00"), "payment_date": "2026-03-02", "type": "Other"}
    assert landed(cw, **want, credit_cw_id=0, claimed=set()) == [1]
    assert landed(cw, **want, credit_cw_id=0, claimed={1}) == []
    assert landed(cw, **want, credit_cw_id=201, claimed=set()) == [3]
    twins = cw + [{**cw[0], "id": 4}]
    assert landed(twins, **want, credit_cw_id=0, claimed=set()) == [1, 4]  # ambiguous: the engine never posts
