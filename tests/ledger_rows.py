"""Ledger rows for tests, one at a time: product code writes them in bulk (`record_intents`, `apply`)."""

from __future__ import annotations

from decimal import Decimal

from cwqbo.state import ledger

from cwqbo.state import runs
from cwqbo.state.store import Store


def record_intent(store: Store, cw_id: int, number: str, entity: str, request_id: str, payload_hash: str,
                  content_hash: str, cw_total: Decimal, run_id: int | None, *, now: str | None = None) -> None:
    ledger.record_intents(store, [ledger.Intent(cw_id, number, entity, request_id, payload_hash, content_hash,
                                                cw_total)], run_id, now=now)


def record_item(store: Store, run_id: int, cw_id: int, number: str, outcome: runs.Outcome, *,
                entity: str | None = None, qbo_id: str | None = None, cw_total: Decimal | None = None,
                qbo_total: Decimal | None = None, tid: str | None = None, error: str | None = None,
                now: str | None = None) -> None:
    runs.record_items(store, run_id, [runs.Item(cw_id, number, outcome, entity, qbo_id, cw_total, qbo_total,
                                                    tid, error)], now=now)
