"""The payments engine in-process against an in-memory QuickBooks and ConnectWise (tests/unit/payments_fake.py).

What a user would notice: each QuickBooks payment on an invoice cwqbo synced appears in ConnectWise exactly once,
every ConnectWise balance equals QuickBooks' to the cent, voids/deletes/edits are undone in ConnectWise, a refused
payment fails alone with a reason, and a crash at any point is settled by the next run without a duplicate.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from cwqbo import crashpoints
from cwqbo.state import payments as pledger
from tests.unit.payments_fake import PWorld, new_world

D = Decimal


@pytest.fixture
def world() -> PWorld:
    w = new_world()
    w.add_document(101, "11", "300.00")
    w.add_document(102, "12", "80.50")
    w.add_document(103, "13", "45.00")
    w.add_document(201, "21", "120.00", entity="CreditMemo")
    return w


def _crash_at(monkeypatch: pytest.MonkeyPatch, name: str, nth: int = 1) -> type[BaseException]:
    class Crash(BaseException):
        pass

    hits = {"n": 0}

    def crashpoint(point: str) -> None:
        if point == name:
            hits["n"] += 1
            if hits["n"] == nth:
                raise Crash(point)

    monkeypatch.setattr(crashpoints, "crashpoint", crashpoint)
    return Crash


def test_full_partial_and_multi_invoice_payments_reach_connectwise_once(world: PWorld) -> None:
    r = world.remote
    r.receive("1", [("Invoice", "11", "300.00")], method="Check")
    r.receive("2", [("Invoice", "12", "30.25"), ("Invoice", "13", "45.00")])
    report = world.run()
    assert report.ok and report.posted == 3 and report.run_id is not None
    assert r.cw_balance(101) == D("0.00") and r.cw_balance(102) == D("50.25") and r.cw_balance(103) == D("0.00")
    assert [p["type"] for p in r.cw_payments[101]] == ["Other"]  # no type_map entry: the default type
    world.assert_matched()
    again = world.run()
    assert again.items == [] and r.posts == 3, "a second run posts nothing"


def test_type_map_picks_the_cw_payment_type(world: PWorld) -> None:
    world.prefs.payments.type_map = {"Check": "Check"}
    world.remote.receive("1", [("Invoice", "11", "10.00")], method="Check")
    world.run()
    assert world.remote.cw_payments[101][0]["type"] == "Check"


def test_credit_memo_applied_in_qbo_is_applied_in_connectwise(world: PWorld) -> None:
    world.remote.receive("1", [("Invoice", "11", "300.00"), ("CreditMemo", "21", "120.00")])
    report = world.run()
    assert report.ok
    credits = {p.get("credit", {}).get("id", 0): p["amount"] for p in world.remote.cw_payments[101]}
    assert credits == {201: D("120.00"), 0: D("180.00")}
    world.assert_matched()


def test_voided_deleted_and_edited_payments_are_undone_in_connectwise(world: PWorld) -> None:
    r = world.remote
    r.receive("1", [("Invoice", "11", "100.00")])
    r.receive("2", [("Invoice", "12", "80.50")])
    r.receive("3", [("Invoice", "13", "45.00")])
    world.run()
    r.void("1")
    r.delete("2")
    r.edit("3", [("Invoice", "13", "40.00")])
    report = world.run()
    assert report.ok and report.reversed == 3 and report.posted == 1, report.items
    assert r.cw_payments[101] == [] and r.cw_payments[102] == []
    assert [p["amount"] for p in r.cw_payments[103]] == [D("40.00")]
    world.assert_matched()
    states = sorted(row.state for row in pledger.all_rows(world.store))
    assert states == ["posted", "reversed", "reversed", "reversed"]


def test_a_cw_payment_changed_by_hand_is_not_removed(world: PWorld) -> None:
    r = world.remote
    r.receive("1", [("Invoice", "11", "100.00")])
    world.run()
    r.cw_payments[101][0]["amount"] = D("90.00")
    r.void("1")
    report = world.run()
    assert report.failed == 1 and "changed after cwqbo posted it" in str(report.items[0].error)
    assert len(r.cw_payments[101]) == 1


def test_a_payment_connectwise_refuses_fails_alone_with_its_reason(world: PWorld) -> None:
    r = world.remote
    r.receive("1", [("Invoice", "13", "60.00")])  # more than the invoice's balance
    r.receive("2", [("Invoice", "12", "80.50")])
    report = world.run()
    assert report.failed == 1 and report.posted == 1 and report.status == "partial"
    failed = next(i for i in report.items if i.outcome == "failed")
    assert failed.invoice_number == "INV-103" and "below zero" in str(failed.error)
    again = world.run(quiet_repeats=True)
    assert [i.outcome for i in again.items] == ["waiting"], "cron: an unchanged failure is not a new alarm"


def test_a_payment_in_another_currency_fails_alone(world: PWorld) -> None:
    world.remote.receive("1", [("Invoice", "11", "10.00")], currency="EUR")
    world.remote.receive("2", [("Invoice", "12", "10.00")])
    report = world.run()
    assert report.failed == 1 and report.posted == 1 and world.remote.posts == 1
    assert "EUR" in str(next(i for i in report.items if i.outcome == "failed").error)


def test_dry_run_previews_every_payment_and_writes_nothing(world: PWorld) -> None:
    world.remote.receive("1", [("Invoice", "11", "10.00")])
    world.remote.receive("2", [("Invoice", "12", "20.00"), ("Invoice", "13", "5.00")])
    report = world.run(dry_run=True)
    assert [i.outcome for i in report.items] == ["would-post"] * 3 and report.run_id is None
    assert world.remote.posts == 0 and pledger.all_rows(world.store) == []
    assert pledger.watermark(world.store) is None


def test_the_watermark_moves_only_when_everything_is_settled(world: PWorld,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    world.remote.receive("1", [("Invoice", "11", "10.00")])
    crash = _crash_at(monkeypatch, "payments.after_post")
    with pytest.raises(crash):
        world.run()
    assert pledger.watermark(world.store) is None
    monkeypatch.undo()
    world.run()
    assert pledger.watermark(world.store) == world.remote.qbo_payments["1"]["MetaData"]["LastUpdatedTime"]


@pytest.mark.parametrize("point,nth", [("payments.after_intent", 1), ("payments.after_intent", 3),
                                       ("payments.after_post", 1), ("payments.after_post", 4),
                                       ("payments.before_record", 1), ("payments.before_record", 2)])
def test_a_crash_at_any_payments_crashpoint_is_settled_without_a_duplicate(
        world: PWorld, monkeypatch: pytest.MonkeyPatch, point: str, nth: int) -> None:
    r = world.remote
    r.receive("1", [("Invoice", "11", "100.00")])
    r.receive("2", [("Invoice", "12", "30.00"), ("Invoice", "13", "45.00")])
    r.receive("3", [("Invoice", "11", "200.00"), ("CreditMemo", "21", "120.00")])
    crash = _crash_at(monkeypatch, point, nth)
    with pytest.raises(crash):
        world.run()
    monkeypatch.undo()
    report = world.run()
    assert report.ok, report.items
    world.assert_matched()
    assert sum(len(v) for v in r.cw_payments.values()) == 5, r.cw_payments


@pytest.mark.parametrize("nth", [1, 2])
def test_a_crash_after_a_reversal_delete_is_settled_without_deleting_twice(
        world: PWorld, monkeypatch: pytest.MonkeyPatch, nth: int) -> None:
    r = world.remote
    r.receive("1", [("Invoice", "11", "100.00")])
    r.receive("2", [("Invoice", "12", "80.50")])
    world.run()
    r.void("1")
    r.edit("2", [("Invoice", "12", "50.00")])
    crash = _crash_at(monkeypatch, "payments.after_delete", nth)
    with pytest.raises(crash):
        world.run()
    monkeypatch.undo()
    report = world.run()
    assert report.ok and r.deletes == 2
    assert r.cw_payments[101] == [] and [p["amount"] for p in r.cw_payments[102]] == [D("50.00")]
    world.assert_matched()


def test_a_lost_post_answer_is_settled_by_reading_back_never_posted_twice(world: PWorld) -> None:
    world.remote.receive("1", [("Invoice", "11", "100.00")])
    world.remote.lose_next_post_answer = 1
    report = world.run()
    assert [i.outcome for i in report.items] == ["adopted"] and world.remote.posts == 1
    world.assert_matched()


def test_an_ambiguous_recovery_never_posts_and_fails_loudly(world: PWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    r = world.remote
    r.receive("1", [("Invoice", "11", "100.00")])
    crash = _crash_at(monkeypatch, "payments.after_intent")
    with pytest.raises(crash):
        world.run()
    monkeypatch.undo()
    for pid in (1, 2):  # two identical payments typed in ConnectWise by hand meanwhile
        r.cw_payments.setdefault(101, []).append({"id": pid, "type": "Other", "amount": D("100.00"),
                                                   "paymentDate": "2026-03-02T00:00:00Z"})
    report = world.run()
    assert report.failed == 1 and "could be" in str(report.items[0].error) and r.posts == 0


def test_balances_that_differ_after_the_run_are_reported(world: PWorld) -> None:
    world.remote.receive("1", [("Invoice", "11", "100.00")])
    world.remote.cw_totals[101] = D("299.99")  # someone edited the invoice in ConnectWise
    report = world.run()
    assert not report.ok and [(m.invoice_number, m.difference) for m in report.mismatches] == [("INV-101", D("-0.01"))]


def test_payment_runs_are_in_history(world: PWorld) -> None:
    from cwqbo.state import ledger

    from cwqbo.state import runs
    world.remote.receive("1", [("Invoice", "11", "100.00")])
    report = world.run()
    assert report.run_id is not None
    run = runs.run(world.store, report.run_id)
    assert run is not None and run["trigger"] == "payments" and run["status"] == "ok" and run["created"] == 1
    events = pledger.events_for_run(world.store, report.run_id)
    assert [(e["invoice_number"], e["outcome"], e["amount"]) for e in events] == [("INV-101", "posted", "100.00")]
