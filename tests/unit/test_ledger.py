"""The ledger keeps exactly-once bookkeeping: intents before calls, created-not-batched, batch numbering, runs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from cwqbo.state import ledger

from cwqbo.state import runs
from cwqbo.state.store import Store
from tests.ledger_rows import record_intent, record_item


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "cwqbo.db")
    yield s
    s.close()


def test_request_id_is_deterministic_and_fits_qbo_limits() -> None:
    a = ledger.request_id("9341453000000000", 17, "abc")
    assert a == ledger.request_id("9341453000000000", 17, "abc")
    assert a != ledger.request_id("9341453000000000", 17, "abd")
    assert a != ledger.request_id("other", 17, "abc")
    assert len(a) == 36
    assert len(ledger.batch_request_id([a, "x"])) <= 36
    assert ledger.batch_request_id([a, "x"]) == ledger.batch_request_id(["x", a])
    assert ledger.batch_request_id([a], salt="run-1") != ledger.batch_request_id([a], salt="run-2")


def test_intent_is_committed_and_visible_to_another_connection(store: Store, tmp_path: Path) -> None:
    record_intent(store, 5, "INV-5", "Invoice", "rid", "ph", "ch", Decimal("10.05"), None)
    other = Store.open(tmp_path / "cwqbo.db")
    rows = ledger.pending_intents(other)
    other.close()
    assert [(r.cw_id, r.state, r.request_id, r.cw_total) for r in rows] == [(5, "intent", "rid", Decimal("10.05"))]


def test_created_then_batched_lifecycle(store: Store) -> None:
    record_intent(store, 1, "A", "Invoice", "r1", "p", "c", Decimal("1.10"), None)
    record_intent(store, 2, "B", "CreditMemo", "r2", "p", "c", Decimal("-3.00"), None)
    ledger.mark_created(store, 1, qbo_id="101", sync_token="0", qbo_total=Decimal("1.10"), tid="t1")
    ledger.mark_failed(store, 2, error="6000: bad", tid="t2")
    assert [r.cw_id for r in ledger.created_not_batched(store)] == [1]
    assert ledger.pending_intents(store) == []
    ident = ledger.next_batch_identifier(store, date(2026, 11, 24))
    assert ident == "cwqbo-2026-11-24-001"
    ledger.record_batch_pending(store, ident, [1], None)
    assert [b.identifier for b in ledger.pending_batches(store)] == [ident]
    ledger.mark_batch_created(store, ident, 77)
    row = ledger.get(store, 1)
    assert row is not None and row.state == "batched" and row.batch_identifier == ident
    assert ledger.created_not_batched(store) == [] and ledger.pending_batches(store) == []
    failed = ledger.get(store, 2)
    assert failed is not None and failed.state == "failed" and failed.error == "6000: bad"


def test_failed_with_document_keeps_the_qbo_id(store: Store) -> None:
    record_intent(store, 3, "C", "Invoice", "r3", "p", "c", Decimal("5.00"), None)
    ledger.mark_failed(store, 3, error="total mismatch", tid="t", qbo_id="55", qbo_total=Decimal("5.01"))
    row = ledger.get(store, 3)
    assert row is not None and row.qbo_id == "55" and row.qbo_total == Decimal("5.01")
    # retrying keeps counting attempts and does not drop the document id
    record_intent(store, 3, "C", "Invoice", "r3", "p", "c", Decimal("5.00"), None)
    row = ledger.get(store, 3)
    assert row is not None and row.attempts == 2 and row.qbo_id == "55"


def test_batch_identifier_counts_local_and_remote_per_day(store: Store) -> None:
    day = date(2026, 11, 24)
    ledger.record_batch_pending(store, "cwqbo-2026-11-24-001", [1], None)
    assert ledger.next_batch_identifier(store, day) == "cwqbo-2026-11-24-002"
    assert ledger.next_batch_identifier(store, day, seen=["cwqbo-2026-11-24-007", "other-1"]) == "cwqbo-2026-11-24-008"
    assert ledger.next_batch_identifier(store, date(2026, 11, 25)) == "cwqbo-2026-11-25-001"


def test_runs_and_items_record_outcomes_exactly(store: Store) -> None:
    run_id = runs.start_run(store, trigger="all", dry_run=False, user="u", host="h", pid=1)
    assert runs.run(store, run_id)["status"] == "running"
    record_item(store, run_id, 1, "A", "created", entity="Invoice", qbo_id="9",
                       cw_total=Decimal("0.10"), qbo_total=Decimal("0.10"))
    runs.finish_run(store, run_id, status="ok", selected=1, created=1, failed=0, skipped=0,
                      batch_identifier=None, qbo_calls=3, cw_calls=2, duration_ms=5)
    assert runs.run(store, run_id)["status"] == "ok"
    assert runs.run_items(store, run_id)[0]["cw_total"] == "0.10"
    run2 = runs.start_run(store, trigger="all", dry_run=False)
    assert runs.mark_interrupted_runs(store) == 1
    assert runs.run(store, run2)["status"] == "interrupted"


def test_one_apply_writes_each_outcome_in_order_and_keeps_a_docnumber_it_does_not_name(store: Store) -> None:
    # The sender settles a batch call's confirmations together: they are written in one statement, in order with
    # the failures and retries around them, and a confirmation that names no DocNumber keeps the intent's.
    ledger.record_intents(store, [ledger.Intent(cw_id, f"N{cw_id}", "Invoice", f"r{cw_id}", "p", "c", Decimal("9.99"),
                                                f"D{cw_id}") for cw_id in (1, 2, 3, 4)], None)
    retry = ledger.Intent(3, "N3", "Invoice", "r3b", "p2", "c2", Decimal("9.99"))
    ledger.apply(store, None, [
        ledger.Write(1, "created", qbo_id="101", sync_token="0", qbo_total=Decimal("9.99"), tid="t1"),
        ledger.Write(2, "created", qbo_id="102", sync_token="1", qbo_total=Decimal("9.99"), doc_number="X2"),
        ledger.Write(3, "failed", error="6000: bad", tid="t3", intent=retry),
        ledger.Write(4, "created", qbo_id="104", sync_token="0", qbo_total=Decimal("9.99"),
                     intent=ledger.Intent(4, "N4", "Invoice", "r4b", "p2", "c2", Decimal("9.99"))),
        ledger.Write(1, "failed", error="total mismatch", qbo_id="101", qbo_total=Decimal("9.98")),
    ], [])
    rows = {r.cw_id: r for r in ledger.all_rows(store)}
    assert [(r.state, r.qbo_id, r.doc_number) for r in rows.values()] == [
        ("failed", "101", "D1"), ("created", "102", "X2"), ("failed", None, "D3"), ("created", "104", "D4")]
    assert rows[2].qbo_sync_token == "1" and rows[2].qbo_total == Decimal("9.99") and rows[1].qbo_total == Decimal("9.98")
    assert rows[3].request_id == "r3b" and rows[3].attempts == 2 and rows[4].request_id == "r4b"
