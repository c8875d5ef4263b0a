"""History queries over a store filled through the ledger API (the way the sync engine records runs)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cwqbo.state import history
from cwqbo.state import ledger
from cwqbo.errors import UsageError
from cwqbo.state.store import Store
from tests.ledger_rows import record_intent, record_item


def fill(store: Store) -> dict[str, int]:
    """Three runs: an ok one, a partial one with a failure, and a dead one that left an intent."""
    r1 = ledger.start_run(store, trigger="all", dry_run=False, user="ana", host="box", pid=1,
                          now="2026-11-01T10:00:00Z")
    record_intent(store, 101, "INV-101", "Invoice", "rid-101", "ph", "ch", Decimal("1234.56"), r1)
    ledger.mark_created(store, 101, qbo_id="55", sync_token="0", qbo_total=Decimal("1234.56"), tid="tid-1")
    record_item(store, r1, 101, "INV-101", "created", entity="Invoice", qbo_id="55",
                       cw_total=Decimal("1234.56"), qbo_total=Decimal("1234.56"), tid="tid-1",
                       now="2026-11-01T10:00:05Z")
    ledger.record_batch_pending(store, "cwqbo-2026-11-01-001", [101], r1)
    ledger.mark_batch_created(store, "cwqbo-2026-11-01-001", 9001)
    ledger.finish_run(store, r1, status="ok", selected=1, created=1, failed=0, skipped=0,
                      batch_identifier="cwqbo-2026-11-01-001", qbo_calls=4, cw_calls=6, duration_ms=2300)
    r2 = ledger.start_run(store, trigger="scheduled", dry_run=False, user="cron", host="box", pid=2,
                          now="2026-11-02T06:00:00Z")
    record_intent(store, 102, "INV-102", "CreditMemo", "rid-102", "ph", "ch", Decimal("-20.00"), r2)
    ledger.mark_failed(store, 102, error="QBO error 6000: bad item", tid="tid-2")
    record_item(store, r2, 102, "INV-102", "failed", entity="CreditMemo", cw_total=Decimal("-20.00"),
                       tid="tid-2", error="QBO error 6000: bad item")
    record_intent(store, 103, "INV-103", "Invoice", "rid-103", "ph", "ch", Decimal("10.00"), r2)
    ledger.mark_created(store, 103, qbo_id="56", sync_token="0", qbo_total=Decimal("10.00"), tid="tid-3")
    record_item(store, r2, 103, "INV-103", "created", entity="Invoice", qbo_id="56",
                       cw_total=Decimal("10.00"), qbo_total=Decimal("10.00"), tid="tid-3")
    ledger.finish_run(store, r2, status="partial", selected=2, created=1, failed=1, skipped=0,
                      batch_identifier=None, qbo_calls=3, cw_calls=2, duration_ms=125_000, message="1 failed")
    r3 = ledger.start_run(store, trigger="invoice", dry_run=False, user="ana", host="box", pid=3)
    record_intent(store, 104, "INV-104", "Invoice", "rid-104", "ph", "ch", Decimal("5.00"), r3)
    ledger.mark_interrupted_runs(store)
    # the failed invoice is retried and succeeds in a later run
    r4 = ledger.start_run(store, trigger="invoice", dry_run=False, user="ana", host="box", pid=4)
    record_item(store, r4, 102, "INV-102", "created", entity="CreditMemo", qbo_id="57",
                       cw_total=Decimal("-20.00"), qbo_total=Decimal("-20.00"), tid="tid-4")
    ledger.finish_run(store, r4, status="ok", selected=1, created=1, failed=0, skipped=0, batch_identifier=None,
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
    r = ledger.start_run(s, trigger="all", dry_run=False)
    record_intent(s, 1, "INV-1", "Invoice", "rid", "ph", "ch", Decimal("1.00"), r)
    assert history.needs_attention(s) == []


def test_empty_store() -> None:
    s = Store.memory()
    assert history.runs(s) == [] and history.needs_attention(s) == []
