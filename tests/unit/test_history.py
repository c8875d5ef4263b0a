"""History queries over a store filled through the ledger API (the way the sync engine records runs)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cwqbo.state import history
from cwqbo.state import ledger
from cwqbo.state import runs
from cwqbo.errors import UsageError
from cwqbo.state.store import Store
from tests.ledger_rows import record_intent, record_item
from tests.unit.payments_fake import PWorld, new_world

D = Decimal


def fill(store: Store) -> dict[str, int]:
    """Three runs: an ok one, a partial one with a failure, and a dead one that left an intent."""
    r1 = runs.start_run(store, trigger="all", dry_run=False, user="ana", host="box", pid=1,
                          now="2026-11-01T10:00:00Z")
    record_intent(store, 101, "INV-101", "Invoice", "rid-101", "ph", "ch", Decimal("1234.56"), r1)
    ledger.mark_created(store, 101, qbo_id="55", sync_token="0", qbo_total=Decimal("1234.56"), tid="tid-1")
    record_item(store, r1, 101, "INV-101", "created", entity="Invoice", qbo_id="55",
                       cw_total=Decimal("1234.56"), qbo_total=Decimal("1234.56"), tid="tid-1",
                       now="2026-11-01T10:00:05Z")
    ledger.record_batch_pending(store, "cwqbo-2026-11-01-001", [101], r1)
    ledger.mark_batch_created(store, "cwqbo-2026-11-01-001", 9001)
    runs.finish_run(store, r1, status="ok", selected=1, created=1, failed=0, skipped=0,
                      batch_identifier="cwqbo-2026-11-01-001", qbo_calls=4, cw_calls=6, duration_ms=2300)
    r2 = runs.start_run(store, trigger="scheduled", dry_run=False, user="cron", host="box", pid=2,
                          now="2026-11-02T06:00:00Z")
    record_intent(store, 102, "INV-102", "CreditMemo", "rid-102", "ph", "ch", Decimal("-20.00"), r2)
    ledger.mark_failed(store, 102, error="QBO error 6000: bad item", tid="tid-2")
    record_item(store, r2, 102, "INV-102", "failed", entity="CreditMemo", cw_total=Decimal("-20.00"),
                       tid="tid-2", error="QBO error 6000: bad item")
    record_intent(store, 103, "INV-103", "Invoice", "rid-103", "ph", "ch", Decimal("10.00"), r2)
    ledger.mark_created(store, 103, qbo_id="56", sync_token="0", qbo_total=Decimal("10.00"), tid="tid-3")
    record_item(store, r2, 103, "INV-103", "created", entity="Invoice", qbo_id="56",
                       cw_total=Decimal("10.00"), qbo_total=Decimal("10.00"), tid="tid-3")
    runs.finish_run(store, r2, status="partial", selected=2, created=1, failed=1, skipped=0,
                      batch_identifier=None, qbo_calls=3, cw_calls=2, duration_ms=125_000, message="1 failed")
    r3 = runs.start_run(store, trigger="invoice", dry_run=False, user="ana", host="box", pid=3)
    record_intent(store, 104, "INV-104", "Invoice", "rid-104", "ph", "ch", Decimal("5.00"), r3)
    runs.mark_interrupted_runs(store)
    # the failed invoice is retried and succeeds in a later run
    r4 = runs.start_run(store, trigger="invoice", dry_run=False, user="ana", host="box", pid=4)
    record_item(store, r4, 102, "INV-102", "created", entity="CreditMemo", qbo_id="57",
                       cw_total=Decimal("-20.00"), qbo_total=Decimal("-20.00"), tid="tid-4")
    runs.finish_run(store, r4, status="ok", selected=1, created=1, failed=0, skipped=0, batch_identifier=None,
                      qbo_calls=1, cw_calls=1, duration_ms=800)
    return {"ok": r1, "partial": r2, "dead": r3, "retry": r4}


@pytest.fixture
def store() -> Store:
    s = Store.memory()
    fill(s)
    return s


def test_runs_newest_first_and_limit(store: Store) -> None:
    found = history.runs(store)
    assert [r.status for r in found] == ["ok", "interrupted", "partial", "ok"]
    assert found[-1].user == "ana" and found[-1].batch_identifier == "cwqbo-2026-11-01-001"
    assert [r.id for r in history.runs(store, limit=2)] == [found[0].id, found[1].id]
    with pytest.raises(UsageError):
        history.runs(store, limit=0)


def test_failed_only(store: Store) -> None:
    assert [r.status for r in history.runs(store, failed_only=True)] == ["interrupted", "partial"]


def test_run_detail_money_is_decimal(store: Store) -> None:
    runs = history.runs(store)
    partial = next(r for r in runs if r.status == "partial")
    detail = history.run_detail(store, partial.id)
    assert [(i.invoice_number, i.outcome) for i in detail.items] == [("INV-102", "failed"), ("INV-103", "created")]
    assert detail.items[0].cw_total == Decimal("-20.00") and detail.items[0].error == "QBO error 6000: bad item"
    assert detail.items[1].qbo_total == Decimal("10.00")
    with pytest.raises(UsageError, match="no run 999"):
        history.run_detail(store, 999)


def test_invoice_story_by_number_or_id(store: Store) -> None:
    story = history.invoice_story(store, "INV-101")
    assert story.cw_id == 101 and story.ledger is not None and story.ledger.state == "batched"
    assert story.batch is not None and story.batch.cw_batch_id == 9001
    assert history.invoice_story(store, "101").invoice_number == "INV-101"
    failed_then_fixed = history.invoice_story(store, "INV-102")
    assert [i.outcome for i in failed_then_fixed.items] == ["failed", "created"]
    with pytest.raises(UsageError, match="no invoice 'INV-999'"):
        history.invoice_story(store, "INV-999")


def test_needs_attention(store: Store) -> None:
    items = {(a.kind, a.invoice_number) for a in history.needs_attention(store)}
    assert items == {("failed", "INV-102"), ("not-batched", "INV-103"), ("stale-intent", "INV-104")}


def test_intent_of_a_running_run_is_not_stale() -> None:
    s = Store.memory()
    r = runs.start_run(s, trigger="all", dry_run=False)
    record_intent(s, 1, "INV-1", "Invoice", "rid", "ph", "ch", Decimal("1.00"), r)
    assert history.needs_attention(s) == []


def test_empty_store() -> None:
    s = Store.memory()
    assert history.runs(s) == [] and history.needs_attention(s) == []


# -- payments: what the payments engine brought back, as history tells it ----------------------------------------

def paid_world() -> tuple[PWorld, dict[str, int]]:
    """Invoices cwqbo synced, then QuickBooks payments: a full one, a partial one, one across two invoices (one of
    them refused by ConnectWise), and one voided after it reached ConnectWise."""
    w = new_world()
    for cw_id, qbo_id, total in ((101, "11", "300.00"), (102, "12", "80.50"), (103, "13", "45.00")):
        w.add_document(cw_id, qbo_id, total)
        w.store.db.execute("update ledger set cw_total = ? where cw_id = ?", [total, cw_id])
    w.remote.cw_totals[103] = D("20.00")  # ConnectWise says less is owed: it refuses 45.00
    w.remote.receive("P1", [("Invoice", "11", "300.00")])
    w.remote.receive("P2", [("Invoice", "12", "30.25")], day="2026-03-03")
    w.remote.receive("P3", [("Invoice", "12", "10.00"), ("Invoice", "13", "45.00")])
    first = w.run()
    w.remote.void("P2")
    second = w.run()
    assert first.run_id is not None and second.run_id is not None
    return w, {"first": first.run_id, "second": second.run_id}


def test_invoice_story_lists_each_payment_brought_back() -> None:
    w, runs = paid_world()
    story = history.invoice_story(w.store, "INV-101")
    [p] = story.payments
    assert (p.qbo_payment_id, p.amount, p.payment_date, p.type, p.state) == ("P1", D("300.00"), "2026-03-02",
                                                                               "Other", "posted")
    assert p.cw_payment_id == w.remote.cw_payments[101][0]["id"] and p.run_id == runs["first"]
    assert story.paid == D("300.00") and isinstance(story.paid, Decimal)
    assert [(e.outcome, e.run_id) for e in story.payment_events] == [("posted", runs["first"])]


def test_invoice_story_shows_reversed_and_partial_payments() -> None:
    w, runs = paid_world()
    story = history.invoice_story(w.store, "102")
    by_id = {p.qbo_payment_id: p for p in story.payments}
    assert by_id["P2"].state == "reversed" and by_id["P2"].reason == "voided in QuickBooks"
    assert by_id["P2"].run_id == runs["second"] and by_id["P2"].cw_payment_id is not None
    assert by_id["P3"].state == "posted" and by_id["P3"].amount == D("10.00")
    assert story.paid == D("10.00")  # the voided payment no longer counts
    assert [(e.qbo_payment_id, e.outcome) for e in story.payment_events] == [
        ("P2", "posted"), ("P3", "posted"), ("P2", "reversed")]


def test_a_refused_payment_is_failed_with_its_reason_and_needs_attention() -> None:
    w, _ = paid_world()
    [p] = history.invoice_story(w.store, "INV-103").payments
    assert p.state == "failed" and p.cw_payment_id is None and p.reason is not None
    assert "refused the payment of 45.00" in p.reason
    attention = [a for a in history.needs_attention(w.store) if a.kind == "payment-failed"]
    assert [(a.invoice_number, a.cw_id) for a in attention] == [("INV-103", 103)]
    assert "P3" in attention[0].detail and "45.00" in attention[0].detail


def test_an_invoice_without_payments_has_an_empty_payment_story(store: Store) -> None:
    story = history.invoice_story(store, "INV-101")
    assert story.payments == [] and story.payment_events == [] and story.paid == D("0")


def test_run_page_of_a_payments_run_lists_its_payment_events() -> None:
    w, runs = paid_world()
    page = history.run_page(w.store, runs["first"])
    assert page.kind == "payments" and page.run.trigger == "payments" and page.items == []
    assert page.total == 4 and page.remaining == 0
    assert [(e.invoice_number, e.qbo_payment_id, e.outcome, e.amount) for e in page.payments] == [
        ("INV-101", "P1", "posted", D("300.00")), ("INV-102", "P2", "posted", D("30.25")),
        ("INV-102", "P3", "posted", D("10.00")), ("INV-103", "P3", "failed", D("45.00"))]
    assert page.payments[1].payment_date == "2026-03-03" and page.payments[1].type == "Other"
    second = history.run_page(w.store, runs["first"], limit=2, offset=2)
    assert [e.qbo_payment_id for e in second.payments] == ["P3", "P3"] and second.remaining == 0
    first_two = history.run_page(w.store, runs["first"], limit=2)
    assert first_two.remaining == 2
    failed = history.run_page(w.store, runs["first"], failed_only=True)
    assert failed.total == 1 and failed.payments[0].error and "refused" in failed.payments[0].error


def test_run_page_of_an_invoice_run_is_unchanged(store: Store) -> None:
    ok = history.runs(store)[-1]
    page = history.run_page(store, ok.id)
    assert page.kind == "invoices" and page.payments == [] and [i.invoice_number for i in page.items] == ["INV-101"]
