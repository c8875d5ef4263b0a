"""The payments ledger: intents committed before the call, outcomes applied in one transaction, money as TEXT."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from cwqbo.state import payments as pledger
from cwqbo.state.payments import Event, Intent, Key, Write
from cwqbo.state.store import Store

NOW = "2026-03-02T10:00:00Z"


def intent(amount: str = "10.10", key: Key = Key("900", 101)) -> Intent:
    return Intent(key=key, qbo_entity="Invoice", qbo_invoice_id="11", qbo_credit_id=None, invoice_number="INV-101",
                  amount=Decimal(amount), payment_date="2026-03-02", type="Check", qbo_updated=None)


def test_an_intent_is_committed_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        row = pledger.record_intent(store, intent(), run_id=None, now=NOW)
    with Store.open(path) as store:
        [again] = pledger.in_states(store, "intent")
    assert again.id == row.id and again.amount == Decimal("10.10") and again.attempts == 1
    raw = sqlite3.connect(path).execute("select amount, typeof(amount) from payments").fetchone()
    assert raw == ("10.10", "text"), "money is stored as exact text, never a float"


def test_a_failed_row_is_reused_and_counts_its_attempts() -> None:
    store = Store.memory()
    row = pledger.record_intent(store, intent(), None, now=NOW)
    pledger.apply(store, None, [Write(row.id, "failed", error="refused")], [], now=NOW)
    again = pledger.record_intent(store, intent("9.00"), None, now=NOW)
    assert again.id == row.id and again.attempts == 2 and again.amount == Decimal("9.00") and again.error is None


def test_posted_ids_are_claimed_so_no_other_row_adopts_them() -> None:
    store = Store.memory()
    a = pledger.record_intent(store, intent(), None, now=NOW)
    b = pledger.record_intent(store, intent(key=Key("901", 101)), None, now=NOW)
    pledger.apply(store, None, [Write(a.id, "posted", cw_payment_id=55)], [], now=NOW)
    assert pledger.claimed(store, 101, except_row=b.id) == {55}
    assert pledger.claimed(store, 101, except_row=a.id) == set()


def test_outcomes_and_events_are_written_together() -> None:
    store = Store.memory()
    row = pledger.record_intent(store, intent(), None, now=NOW)
    pledger.apply(store, 7, [Write(row.id, "posted", cw_payment_id=55)],
                  [Event(row.id, "900", 101, "INV-101", "posted", Decimal("10.10"), 55)], now=NOW)
    assert pledger.get(store, row.id).state == "posted"  # type: ignore[union-attr]
    assert [(e["outcome"], e["amount"], e["cw_payment_id"]) for e in pledger.events_for_run(store, 7)] == [
        ("posted", "10.10", 55)]
    assert [r.cw_payment_id for r in pledger.for_invoice(store, 101)] == [55]


def test_the_watermark_lives_in_meta() -> None:
    store = Store.memory()
    assert pledger.watermark(store) is None
    pledger.set_watermark(store, "2026-03-02T10:00:00-08:00")
    assert pledger.watermark(store) == "2026-03-02T10:00:00-08:00"
