"""The payments ledger: one row per QBO payment line → ConnectWise invoice (and credit memo applied).

ConnectWise invoice payments have no idempotency key and no memo, so this table is the only memory of what cwqbo
posted. Rule 1 again: a row is committed in state `intent` *before* the CW POST (and `reversing` before a DELETE),
so a crash between the call and its record is always visible to the next run, which reads the invoice's payments
back instead of posting blind. States: intent → posted → reversing → reversed; failed (retried each run);
cancelled (a failed row whose QBO payment went away before it ever reached ConnectWise).
Amounts are TEXT holding exact Decimal strings. These functions only read and write SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from cwqbo.state.sql import rows as _rows
from cwqbo.state.sql import transaction as _tx

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.state.store import Readable, Store

PaymentState = Literal["intent", "posted", "reversing", "reversed", "failed", "cancelled"]
LIVE_STATES = ("intent", "posted", "reversing")  # rows that stand (or may stand) for a payment in ConnectWise
WATERMARK_KEY = "payments.watermark"



@dataclass(frozen=True, slots=True)
class Key:
    """What one CW payment stands for: a QBO payment's money (or one credit memo) applied to one CW invoice."""

    qbo_payment_id: str
    cw_invoice_id: int
    credit_cw_id: int = 0  # the CW credit memo applied; 0 = money


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: int
    key: Key
    qbo_entity: str
    qbo_invoice_id: str | None
    qbo_credit_id: str | None
    invoice_number: str
    state: PaymentState
    amount: Decimal
    payment_date: str  # YYYY-MM-DD
    type: str
    qbo_updated: str | None
    cw_payment_id: int | None
    error: str | None
    run_id: int | None
    attempts: int
    created_at: str | None
    updated_at: str | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> PaymentRow:
        return cls(id=int(r["id"]), key=Key(str(r["qbo_payment_id"]), int(r["cw_invoice_id"]),
                                            int(r.get("credit_cw_id") or 0)),
                   qbo_entity=r.get("qbo_entity") or "Invoice", qbo_invoice_id=r.get("qbo_invoice_id"),
                   qbo_credit_id=r.get("qbo_credit_id"), invoice_number=r.get("invoice_number") or "",
                   state=r["state"], amount=Decimal(str(r["amount"])), payment_date=str(r["payment_date"]),
                   type=str(r["type"]), qbo_updated=r.get("qbo_updated"),
                   cw_payment_id=None if r.get("cw_payment_id") is None else int(r["cw_payment_id"]),
                   error=r.get("error"), run_id=r.get("run_id"), attempts=int(r.get("attempts") or 0),
                   created_at=r.get("created_at"), updated_at=r.get("updated_at"))


@dataclass(frozen=True, slots=True)
class Intent:
    """The CW payment about to be posted (recorded, committed, before the POST)."""

    key: Key
    qbo_entity: str
    qbo_invoice_id: str
    qbo_credit_id: str | None
    invoice_number: str
    amount: Decimal
    payment_date: str
    type: str
    qbo_updated: str | None


@dataclass(frozen=True, slots=True)
class Write:
    """What the ledger must now say about one row: `posted` (with the CW payment id), `reversed`, `failed`
    (with why; a CW payment id that may exist is kept), `cancelled`."""

    row_id: int
    state: Literal["posted", "reversed", "failed", "cancelled"]
    cw_payment_id: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a payment run's story (`payment_events`), for `history`."""

    row_id: int | None
    qbo_payment_id: str
    cw_invoice_id: int
    invoice_number: str
    outcome: str
    amount: Decimal | None = None
    cw_payment_id: int | None = None
    error: str | None = None


# -- reading -------------------------------------------------------------------------------------------

def get(store: Store, row_id: int) -> PaymentRow | None:
    rows = _rows(store, "select * from payments where id = ?", [row_id])
    return PaymentRow.from_row(rows[0]) if rows else None


def all_rows(store: Store) -> list[PaymentRow]:
    return [PaymentRow.from_row(r) for r in _rows(store, "select * from payments order by id")]


def in_states(store: Readable, *states: PaymentState) -> list[PaymentRow]:
    marks = ", ".join("?" for _ in states)
    return [PaymentRow.from_row(r) for r in _rows(store, f"select * from payments where state in ({marks}) "
                                                         "order by id", states)]


def live(store: Store, qbo_payment_id: str) -> list[PaymentRow]:
    """The rows of one QBO payment that stand for a payment in ConnectWise (or may: an unsettled intent)."""
    return [PaymentRow.from_row(r) for r in _rows(
        store, "select * from payments where qbo_payment_id = ? and state in ('intent', 'posted', 'reversing') "
               "order by id", [qbo_payment_id])]


def latest_failed(store: Store, key: Key) -> PaymentRow | None:
    rows = _rows(store, "select * from payments where qbo_payment_id = ? and cw_invoice_id = ? and credit_cw_id = ? "
                        "and state = 'failed' order by id desc limit 1",
                 [key.qbo_payment_id, key.cw_invoice_id, key.credit_cw_id])
    return PaymentRow.from_row(rows[0]) if rows else None


def claimed(store: Store, cw_invoice_id: int, *, except_row: int | None = None) -> set[int]:
    """CW payment ids on this invoice that a ledger row already stands for (never adopted by another row)."""
    rows = store.db.execute("select id, cw_payment_id from payments where cw_invoice_id = ? and cw_payment_id is "
                            "not null and state in ('posted', 'reversing', 'failed')", [cw_invoice_id]).fetchall()
    return {int(pid) for rid, pid in rows if rid != except_row}


def for_invoice(store: Readable, cw_invoice_id: int) -> list[PaymentRow]:
    return [PaymentRow.from_row(r) for r in _rows(store, "select * from payments where cw_invoice_id = ? "
                                                         "order by id", [cw_invoice_id])]


def events_for_run(store: Store, run_id: int) -> list[dict[str, Any]]:
    return _rows(store, "select * from payment_events where run_id = ? order by rowid", [run_id])


def events_for_invoice(store: Store, cw_invoice_id: int) -> list[dict[str, Any]]:
    return _rows(store, "select * from payment_events where cw_invoice_id = ? order by rowid", [cw_invoice_id])


def watermark(store: Store) -> str | None:
    """QBO `MetaData.LastUpdatedTime` up to which every payment is settled (None: never run)."""
    return store.get_meta(WATERMARK_KEY)


def set_watermark(store: Store, value: str) -> None:
    with _tx(store):
        store.set_meta(WATERMARK_KEY, value)


# -- writing -------------------------------------------------------------------------------------------

def record_intent(store: Store, it: Intent, run_id: int | None, *, now: str) -> PaymentRow:
    """Commit the intent before the POST. A failed row for the same key is reused (its attempts count on: a
    row tried before is read back in ConnectWise before it is posted again)."""
    prior = latest_failed(store, it.key)
    values = {"qbo_entity": it.qbo_entity, "qbo_invoice_id": it.qbo_invoice_id, "qbo_credit_id": it.qbo_credit_id,
              "invoice_number": it.invoice_number, "state": "intent", "amount": str(it.amount),
              "payment_date": it.payment_date, "type": it.type, "qbo_updated": it.qbo_updated, "error": None,
              "run_id": run_id, "updated_at": now}
    with _tx(store):
        if prior is not None:
            sets = ", ".join(f"[{k}] = ?" for k in values)
            store.db.execute(f"update payments set {sets}, attempts = attempts + 1 where id = ?",
                             [*values.values(), prior.id])
            row_id = prior.id
        else:
            cols = {"qbo_payment_id": it.key.qbo_payment_id, "cw_invoice_id": it.key.cw_invoice_id,
                    "credit_cw_id": it.key.credit_cw_id, **values, "attempts": 1, "created_at": now}
            cursor = store.db.execute(f"insert into payments ({', '.join(f'[{c}]' for c in cols)}) values "
                                      f"({', '.join('?' for _ in cols)})", list(cols.values()))
            assert cursor.lastrowid is not None
            row_id = cursor.lastrowid
    row = get(store, row_id)
    assert row is not None
    return row


def record_failure(store: Store, it: Intent, error: str, run_id: int | None, *, now: str) -> PaymentRow:
    """A payment line refused before any call (another currency, a credit memo cwqbo did not sync): a failed row,
    so history shows it and the next run tries it again."""
    row = record_intent(store, it, run_id, now=now)
    apply(store, run_id, [Write(row.id, "failed", error=error)], [], now=now)
    return get(store, row.id) or row


def mark_reversing(store: Store, row_id: int, *, now: str) -> None:
    """Committed before the DELETE: a crash after it is settled by reading the invoice's payments back."""
    with _tx(store):
        store.db.execute("update payments set state = 'reversing', updated_at = ? where id = ?", [now, row_id])


def apply(store: Store, run_id: int | None, writes: Iterable[Write], events: Iterable[Event], *, now: str) -> None:
    """The one way outcomes reach the payments ledger: every write and its events in one transaction."""
    with _tx(store):
        for w in writes:
            values: dict[str, Any] = {"state": w.state, "error": w.error, "updated_at": now}
            if w.cw_payment_id is not None:
                values["cw_payment_id"] = w.cw_payment_id
            sets = ", ".join(f"[{k}] = ?" for k in values)
            store.db.execute(f"update payments set {sets} where id = ?", [*values.values(), w.row_id])
        if run_id is not None:
            for e in events:
                store.db.execute(
                    "insert into payment_events (run_id, payment_row, qbo_payment_id, cw_invoice_id, invoice_number, "
                    "outcome, amount, cw_payment_id, error, at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, e.row_id, e.qbo_payment_id, e.cw_invoice_id, e.invoice_number, e.outcome,
                     None if e.amount is None else str(e.amount), e.cw_payment_id, e.error, now])


# -- the documents cwqbo created (read from the invoice ledger) ----------------------------------------

@dataclass(frozen=True, slots=True)
class OurDocument:
    cw_id: int
    number: str
    entity: str


def our_documents(store: Store) -> dict[tuple[str, str], OurDocument]:
    """(QBO entity, QBO id) → the CW invoice cwqbo created it from (confirmed rows only)."""
    out: dict[tuple[str, str], OurDocument] = {}
    for r in store.db.execute("select cw_id, invoice_number, entity, qbo_id from ledger where qbo_id is not null "
                              "and state in ('created', 'batched')").fetchall():
        entity = str(r[2] or "Invoice")
        out[(entity, str(r[3]))] = OurDocument(int(r[0]), str(r[1] or ""), entity)
    return out
