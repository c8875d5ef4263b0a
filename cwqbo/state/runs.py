"""Sync runs and their items: what each run did, invoice by invoice, for `history`.

A run row is written when the run starts and finished when it ends; its items are written in the same
transaction as the ledger rows they describe (`ledger.apply`), so a killed run still shows what it did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from cwqbo.state.sql import iso
from cwqbo.state.sql import money_text as _money
from cwqbo.state.sql import rows as _rows
from cwqbo.state.sql import transaction as _tx
from cwqbo.state.store import Store

Outcome = Literal["created", "adopted", "updated", "failed", "waiting", "skipped", "dry-run"]
RunStatus = Literal["running", "ok", "partial", "failed", "interrupted"]


def start_run(store: Store, *, trigger: str, dry_run: bool, user: str = "", host: str = "", pid: int = 0,
              now: str | None = None) -> int:
    with _tx(store):
        cursor = store.db.execute(
            "insert into runs (started_at, trigger, user, host, pid, dry_run, status, selected, created, failed, "
            "skipped) values (?, ?, ?, ?, ?, ?, 'running', 0, 0, 0, 0)",
            [now or iso(), trigger, user, host, pid, int(dry_run)])
        assert cursor.lastrowid is not None, "an insert yields a row id"
        return cursor.lastrowid


def finish_run(store: Store, run_id: int, *, status: RunStatus, selected: int, created: int, failed: int,
               skipped: int, batch_identifier: str | None, qbo_calls: int, cw_calls: int, duration_ms: int,
               message: str | None = None, now: str | None = None) -> None:
    with _tx(store):
        store.db.execute(
            "update runs set finished_at = ?, status = ?, selected = ?, created = ?, failed = ?, skipped = ?, "
            "batch_identifier = ?, qbo_calls = ?, cw_calls = ?, duration_ms = ?, message = ? where id = ?",
            [now or iso(), status, selected, created, failed, skipped, batch_identifier, qbo_calls, cw_calls,
             duration_ms, message, run_id])


def mark_interrupted_runs(store: Store) -> int:
    """Runs left 'running' by a process that died (the sync lock guarantees none is alive).

    Their counts come from the run items they wrote before dying (written with their ledger rows), so `history`
    shows what a killed run really did, not 0/0/0/0.
    """
    with _tx(store):
        cursor = store.db.execute(
            "update runs set status = 'interrupted', "
            "selected = (select count(*) from run_items i where i.run_id = runs.id), "
            "created = (select count(*) from run_items i where i.run_id = runs.id "
            "           and i.outcome in ('created', 'adopted', 'updated')), "
            "failed = (select count(*) from run_items i where i.run_id = runs.id and i.outcome = 'failed'), "
            "skipped = (select count(*) from run_items i where i.run_id = runs.id and i.outcome = 'skipped'), "
            "message = coalesce(message, 'killed or crashed before it finished; the next run settled what it left') "
            "where status = 'running'")
        return cursor.rowcount


def discard_run(store: Store, run_id: int) -> None:
    """Forget a run that did nothing at all (e.g. refused a mistyped invoice number): history keeps real runs."""
    with _tx(store):
        store.db.execute("delete from run_items where run_id = ?", [run_id])
        store.db.execute("delete from runs where id = ?", [run_id])


def run(store: Store, run_id: int) -> dict[str, Any] | None:
    rows = _rows(store, "select * from runs where id = ?", [run_id])
    return rows[0] if rows else None


@dataclass(frozen=True, slots=True)
class Item:
    """One invoice's outcome in one run (a row of run_items)."""

    cw_id: int
    number: str
    outcome: Outcome
    entity: str | None = None
    qbo_id: str | None = None
    cw_total: Decimal | None = None
    qbo_total: Decimal | None = None
    tid: str | None = None
    error: str | None = None


def record_items(store: Store, run_id: int, items: Iterable[Item], *, now: str | None = None) -> None:
    at = now or iso()
    with _tx(store):
        store.db.conn.executemany(
            "insert or replace into run_items (run_id, cw_id, invoice_number, outcome, entity, qbo_id, cw_total, "
            "qbo_total, intuit_tid, error, at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, it.cw_id, it.number, it.outcome, it.entity, it.qbo_id, _money(it.cw_total),
              _money(it.qbo_total), it.tid, it.error, at) for it in items])


def run_items(store: Store, run_id: int) -> list[dict[str, Any]]:
    return _rows(store, "select * from run_items where run_id = ? order by cw_id", [run_id])


ITEM_COLUMNS = ("cw_id", "invoice_number", "company_name", "cw_total", "outcome", "qbo_id", "entity", "intuit_tid",
                "error", "qbo_total")


def item_page(store: Store, run_id: int, *, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Up to `limit` of a run's items written after row `after`, in the order they were written: (rowid, then
    ITEM_COLUMNS), the company's name from the invoice cache ("" when the invoice is not cached)."""
    return store.db.execute(
        "select r.rowid, r.cw_id, r.invoice_number, coalesce(i.company_name, ''), r.cw_total, r.outcome, r.qbo_id, "
        "r.entity, r.intuit_tid, r.error, r.qbo_total from run_items r left join invoices i on i.cw_id = r.cw_id "
        "where r.run_id = ? and r.rowid > ? order by r.rowid limit ?", [run_id, after, limit]).fetchall()


def item_count(store: Store, run_id: int) -> int:
    return int(store.db.execute("select count(*) from run_items where run_id = ?", [run_id]).fetchone()[0])


def outcome_counts(store: Store, run_id: int) -> dict[str, int]:
    return {str(outcome): int(n) for outcome, n in store.db.execute(
        "select outcome, count(*) from run_items where run_id = ? group by outcome", [run_id])}
