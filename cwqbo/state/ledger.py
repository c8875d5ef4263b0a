"""The sync ledger: what cwqbo intended, sent, confirmed and batched, one row per ConnectWise invoice.

Rule 1 of the design lives here: an intent (with its deterministic requestid) is committed *before*
the QuickBooks call, so a crash between the two is always visible to the next run. Rule 2 too:
`created_not_batched` lists exactly the invoices confirmed in QBO that still need a CW batch.
These functions only read and write SQLite; they never talk to a remote service.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from cwqbo.state import runs
from cwqbo.state.sql import dec as _dec
from cwqbo.state.sql import iso
from cwqbo.state.sql import money_text as _money
from cwqbo.state.sql import rows as _rows
from cwqbo.state.sql import transaction as _tx
from cwqbo.state.store import Readable, Store

# Fixed forever: changing it would change every requestid and defeat replay protection after an upgrade.
NAMESPACE = uuid.UUID("5d3c8f1e-2b7a-4c61-9e0f-6a1b2c3d4e5f")

LedgerState = Literal["intent", "created", "batched", "failed"]


def request_id(realm: str, cw_id: int, payload_hash: str) -> str:
    """Deterministic QBO requestid: the same document for the same realm always replays, never duplicates."""
    return str(uuid.uuid5(NAMESPACE, f"{realm}:{cw_id}:{payload_hash}"))


def batch_request_id(request_ids: Iterable[str], salt: str = "") -> str:
    """Requestid for one QBO batch call (≤ 36 chars): its items' requestids plus `salt` (the run).

    Within a run the client retries a lost batch with this same id (QBO replays, never re-creates). Across
    runs the salt changes it on purpose: QBO would otherwise replay an old refusal forever after the user
    fixed its cause; a later run is protected by the DocNumber probe instead.
    """
    return str(uuid.uuid5(NAMESPACE, f"batch:{salt}:" + ",".join(sorted(request_ids))))


@dataclass(frozen=True, slots=True)
class LedgerRow:
    cw_id: int
    invoice_number: str
    entity: str
    state: LedgerState
    request_id: str | None
    payload_hash: str | None
    content_hash: str | None
    cw_total: Decimal | None
    qbo_id: str | None
    qbo_sync_token: str | None
    qbo_total: Decimal | None
    intuit_tid: str | None
    error: str | None
    batch_identifier: str | None
    run_id: int | None
    attempts: int
    created_at: str | None
    updated_at: str | None
    doc_number: str | None = None  # the DocNumber last sent to QBO (m004)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LedgerRow:
        return cls(cw_id=int(row["cw_id"]), invoice_number=row.get("invoice_number") or "",
                   entity=row.get("entity") or "Invoice", state=row["state"], request_id=row.get("request_id"),
                   payload_hash=row.get("payload_hash"), content_hash=row.get("content_hash"),
                   cw_total=_dec(row.get("cw_total")), qbo_id=row.get("qbo_id"),
                   qbo_sync_token=row.get("qbo_sync_token"), qbo_total=_dec(row.get("qbo_total")),
                   intuit_tid=row.get("intuit_tid"), error=row.get("error"),
                   batch_identifier=row.get("batch_identifier"), run_id=row.get("run_id"),
                   attempts=int(row.get("attempts") or 0), created_at=row.get("created_at"),
                   updated_at=row.get("updated_at"), doc_number=row.get("doc_number"))


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A ConnectWise batch cwqbo meant to create. States: `pending` (recorded before the POST, outcome unknown),
    `posted` (ConnectWise answered 2xx but the batch is not yet verified: never posted again), `created`
    (verified: it holds exactly our GL entries), `failed` (not created; its invoices go into a later batch)."""

    identifier: str
    state: str
    cw_batch_id: int | None
    invoice_ids: list[int]
    run_id: int | None
    created_at: str | None
    error: str | None
    gl_entry_ids: list[int]


# -- ledger rows ---------------------------------------------------------------------------------------

def get(store: Readable, cw_id: int) -> LedgerRow | None:
    rows = _rows(store, "select * from ledger where cw_id = ?", [cw_id])
    return LedgerRow.from_row(rows[0]) if rows else None


def all_rows(store: Store) -> list[LedgerRow]:
    return [LedgerRow.from_row(r) for r in _rows(store, "select * from ledger order by cw_id")]


def _update(store: Store, cw_id: int, values: dict[str, Any]) -> None:
    """Set these columns on an invoice's existing row (its state stays)."""
    sets = ", ".join(f"[{k}] = ?" for k in values)
    store.db.execute(f"update ledger set {sets} where cw_id = ?", [*values.values(), cw_id])


def _upsert(store: Store, cw_id: int, values: dict[str, Any]) -> None:
    """Insert the invoice's row, or set these columns on it: one statement. `values` holds the state."""
    cols = ["cw_id", *values]
    updates = ", ".join(f"[{k}] = excluded.[{k}]" for k in values)
    store.db.execute(f"insert into ledger ({', '.join(f'[{c}]' for c in cols)}) values "
                     f"({', '.join('?' for _ in cols)}) on conflict (cw_id) do update set {updates}",
                     [cw_id, *values.values()])


@dataclass(frozen=True, slots=True)
class Intent:
    """What is about to be sent to QBO for one invoice (recorded before the call)."""

    cw_id: int
    number: str
    entity: str
    request_id: str
    payload_hash: str
    content_hash: str
    cw_total: Decimal
    doc_number: str | None = None


def record_intents(store: Store, intents: Iterable[Intent], run_id: int | None, *, now: str | None = None) -> None:
    """Commit a chunk's intents in one transaction (one statement); must return before the QBO call is made.

    A row that already exists keeps its first `created_at` and counts one more attempt; a DocNumber is kept
    unless the intent names one."""
    at = now or iso()
    rows = [(it.cw_id, it.number, it.entity, it.request_id, it.payload_hash, it.content_hash, _money(it.cw_total),
             run_id, at, at, it.doc_number) for it in intents]
    with _tx(store):
        store.db.conn.executemany(
            "insert into ledger (cw_id, invoice_number, entity, state, request_id, payload_hash, content_hash, "
            "cw_total, error, run_id, attempts, created_at, updated_at, doc_number) "
            "values (?, ?, ?, 'intent', ?, ?, ?, ?, null, ?, 1, ?, ?, ?) "
            "on conflict (cw_id) do update set invoice_number = excluded.invoice_number, entity = excluded.entity, "
            "state = 'intent', request_id = excluded.request_id, payload_hash = excluded.payload_hash, "
            "content_hash = excluded.content_hash, cw_total = excluded.cw_total, error = null, "
            "run_id = excluded.run_id, attempts = ledger.attempts + 1, "
            "created_at = coalesce(ledger.created_at, excluded.created_at), updated_at = excluded.updated_at, "
            "doc_number = coalesce(excluded.doc_number, ledger.doc_number)", rows)


def get_many(store: Store, cw_ids: Iterable[int]) -> dict[int, LedgerRow]:
    """The ledger rows of these invoices (one query per 900 ids), by CW id."""
    ids = list(cw_ids)
    out: dict[int, LedgerRow] = {}
    for start in range(0, len(ids), 900):
        part = ids[start:start + 900]
        for row in _rows(store, f"select * from ledger where cw_id in ({', '.join('?' for _ in part)})", part):
            out[int(row["cw_id"])] = LedgerRow.from_row(row)
    return out


_CREATED = ("insert into ledger (cw_id, state, qbo_id, qbo_sync_token, qbo_total, intuit_tid, error, updated_at, "
            "doc_number) values (?, 'created', ?, ?, ?, ?, null, ?, ?) on conflict (cw_id) do update set "
            "state = 'created', qbo_id = excluded.qbo_id, qbo_sync_token = excluded.qbo_sync_token, "
            "qbo_total = excluded.qbo_total, intuit_tid = excluded.intuit_tid, error = null, "
            "updated_at = excluded.updated_at, doc_number = coalesce(excluded.doc_number, ledger.doc_number)")


def _created_row(cw_id: int, qbo_id: str, sync_token: str | None, qbo_total: Decimal | None, tid: str | None,
                 at: str, doc_number: str | None) -> tuple[Any, ...]:
    return (cw_id, qbo_id, sync_token, _money(qbo_total), tid, at, doc_number)


def mark_created(store: Store, cw_id: int, *, qbo_id: str, sync_token: str | None, qbo_total: Decimal | None,
                 tid: str | None, now: str | None = None, doc_number: str | None = None) -> None:
    """QBO confirmed the document: its id, token and total; the DocNumber is kept unless one is named."""
    with _tx(store):
        store.db.conn.execute(_CREATED, _created_row(cw_id, qbo_id, sync_token, qbo_total, tid, now or iso(),
                                                     doc_number))


def mark_failed(store: Store, cw_id: int, *, error: str, tid: str | None, qbo_id: str | None = None,
                sync_token: str | None = None, qbo_total: Decimal | None = None, number: str | None = None,
                entity: str | None = None, cw_total: Decimal | None = None, run_id: int | None = None,
                now: str | None = None, commit: bool = True, doc_number: str | None = None) -> None:
    """Failed; a document QBO did create (e.g. a total mismatch) keeps its qbo_id so it is never lost."""
    at = now or iso()
    values: dict[str, Any] = {"state": "failed", "error": error, "intuit_tid": tid, "updated_at": at}
    if qbo_id is not None:
        values.update(qbo_id=qbo_id, qbo_sync_token=sync_token, qbo_total=_money(qbo_total))
    for key, value in (("invoice_number", number), ("entity", entity), ("cw_total", _money(cw_total)),
                       ("run_id", run_id), ("doc_number", doc_number)):
        if value is not None:
            values[key] = value
    if get(store, cw_id) is None:
        values.setdefault("created_at", at)
    if commit:
        with _tx(store):
            _upsert(store, cw_id, values)
    else:
        _upsert(store, cw_id, values)


def pending_intents(store: Store) -> list[LedgerRow]:
    """Intents whose outcome is unknown (the process died between intent and result)."""
    return [LedgerRow.from_row(r) for r in _rows(store, "select * from ledger where state = 'intent' order by cw_id")]


def created_not_batched(store: Store) -> list[LedgerRow]:
    """Confirmed in QBO, not yet in a created CW batch."""
    return [LedgerRow.from_row(r) for r in _rows(store, "select * from ledger where state = 'created' order by cw_id")]


def created_not_batched_ids(store: Store) -> list[int]:
    """The same invoices' ids only: what a large run can hold at once (the rows are read a part at a time)."""
    return [int(r["cw_id"]) for r in _rows(store, "select cw_id from ledger where state = 'created' order by cw_id")]


def mark_batched(store: Store, cw_ids: Iterable[int], identifier: str, *, now: str | None = None) -> None:
    at = now or iso()
    with _tx(store):
        for cw_id in cw_ids:
            store.db.execute("update ledger set state = 'batched', batch_identifier = ?, updated_at = ? "
                             "where cw_id = ?", [identifier, at, cw_id])


# -- CW accounting batches -----------------------------------------------------------------------------

def next_batch_identifier(store: Store, day: date, seen: Iterable[str] = ()) -> str:
    """`cwqbo-YYYY-MM-DD-NNN`, NNN one past the highest used that day locally or already seen in ConnectWise."""
    prefix = f"cwqbo-{day.isoformat()}-"
    used = [r["identifier"] for r in _rows(store, "select identifier from batches where identifier like ?",
                                           [prefix + "%"])]
    highest = 0
    for ident in [*used, *seen]:
        if ident.startswith(prefix) and ident[len(prefix):].isdigit():
            highest = max(highest, int(ident[len(prefix):]))
    return f"{prefix}{highest + 1:03d}"


def _batch(row: dict[str, Any]) -> BatchRow:
    ids = json.loads(row["invoice_ids"]) if row.get("invoice_ids") else []
    gl = json.loads(row["gl_entry_ids"]) if row.get("gl_entry_ids") else []
    return BatchRow(identifier=row["identifier"], state=row["state"], cw_batch_id=row.get("cw_batch_id"),
                    invoice_ids=[int(i) for i in ids], run_id=row.get("run_id"), created_at=row.get("created_at"),
                    error=row.get("error"), gl_entry_ids=[int(i) for i in gl])


def record_batch_pending(store: Store, identifier: str, invoice_ids: Iterable[int], run_id: int | None, *,
                         gl_entry_ids: Iterable[int] = (), now: str | None = None) -> None:
    """Committed before the CW POST, so a crash mid-POST is checked (not blindly re-sent) next run."""
    with _tx(store):
        store.db.execute("insert or replace into batches (identifier, state, cw_batch_id, invoice_ids, gl_entry_ids, "
                         "run_id, created_at, error) values (?, 'pending', null, ?, ?, ?, ?, null)",
                         [identifier, json.dumps(sorted(int(i) for i in invoice_ids)),
                          json.dumps(sorted(int(i) for i in gl_entry_ids)), run_id, now or iso()])


def mark_batch_posted(store: Store, identifier: str, note: str | None = None) -> None:
    """ConnectWise answered 2xx: from now on this batch is only ever looked at, never posted again."""
    with _tx(store):
        store.db.execute("update batches set state = 'posted', error = ? where identifier = ? and state = 'pending'",
                         [note, identifier])


def mark_batch_created(store: Store, identifier: str, cw_batch_id: int | None, *, now: str | None = None) -> None:
    """The batch exists in CW: record it and move its invoices to 'batched' in one transaction."""
    batch = get_batch(store, identifier)
    at = now or iso()
    with _tx(store):
        store.db.execute("update batches set state = 'created', cw_batch_id = ?, error = null where identifier = ?",
                         [cw_batch_id, identifier])
        store.db.conn.executemany("update ledger set state = 'batched', batch_identifier = ?, updated_at = ?, "
                                  "error = null where cw_id = ? and state = 'created'",
                                  [(identifier, at, cw_id) for cw_id in (batch.invoice_ids if batch else [])])


def mark_batch_failed(store: Store, identifier: str, error: str) -> None:
    """Not created in ConnectWise (never for a `posted` batch: ConnectWise accepted that one)."""
    with _tx(store):
        store.db.execute("update batches set state = 'failed', error = ? where identifier = ? and state != 'posted'",
                         [error, identifier])


def note_unbatchable(store: Store, errors: dict[int, str], *, now: str | None = None) -> set[int]:
    """Why confirmed invoices could not go into a CW batch; returns those whose reason is new (not yet reported)."""
    fresh: set[int] = set()
    with _tx(store):
        for cw_id, error in errors.items():
            row = store.db.execute("select error from ledger where cw_id = ? and state = 'created'", [cw_id]).fetchone()
            if row is None or row[0] == error:
                continue
            fresh.add(cw_id)
            store.db.execute("update ledger set error = ?, updated_at = ? where cw_id = ?", [error, now or iso(), cw_id])
    return fresh


def note_batch_error(store: Store, identifier: str, error: str) -> None:
    """Why an unsettled batch is still unsettled, for `history`; its state stays."""
    with _tx(store):
        store.db.execute("update batches set error = ? where identifier = ?", [error, identifier])


def get_batch(store: Readable, identifier: str) -> BatchRow | None:
    rows = _rows(store, "select * from batches where identifier = ?", [identifier])
    return _batch(rows[0]) if rows else None


def pending_batches(store: Store) -> list[BatchRow]:
    """Batches whose outcome is not settled yet (`pending` or `posted`): their invoices wait for them."""
    return [_batch(r) for r in _rows(store, "select * from batches where state in ('pending', 'posted') "
                                            "order by identifier")]


def batches(store: Store) -> list[BatchRow]:
    return [_batch(r) for r in _rows(store, "select * from batches order by identifier")]


@dataclass(frozen=True, slots=True)
class Write:
    """What the ledger must now say about one invoice: confirmed in QBO (`created`), its QBO document brought up
    to date with an edit made in ConnectWise (`updated`: content and payload hashes move on), or `failed`.

    `intent` is set for a document adopted before this run recorded an intent for it (found by the probe): the
    intent is written with it, so the row always says which request and payload it stands for.
    """

    cw_id: int
    state: Literal["created", "updated", "failed"]
    error: str | None = None
    tid: str | None = None
    qbo_id: str | None = None
    sync_token: str | None = None
    qbo_total: Decimal | None = None
    doc_number: str | None = None
    number: str | None = None
    entity: str | None = None
    cw_total: Decimal | None = None
    first_run: int | None = None  # for a failure: the run that first reported it (else this run)
    intent: Intent | None = None
    content_hash: str | None = None  # `updated` only
    payload_hash: str | None = None  # `updated` only


def apply(store: Store, run_id: int | None, writes: Iterable[Write], items: Iterable[runs.Item], *,
          now: str | None = None) -> None:
    """The one way a run's outcomes reach the ledger: every write and its run items in one transaction."""
    at = now or iso()
    with _tx(store):
        created: list[tuple[Any, ...]] = []  # consecutive confirmations, written in one statement
        for w in writes:
            if created and (w.intent is not None or w.state != "created"):
                store.db.conn.executemany(_CREATED, created)
                created = []
            if w.intent is not None:
                record_intents(store, [w.intent], run_id, now=at)
            if w.state == "created":
                assert w.qbo_id is not None, "a created document has a QBO id"
                created.append(_created_row(w.cw_id, w.qbo_id, w.sync_token, w.qbo_total, w.tid, at, w.doc_number))
            elif w.state == "updated":
                _update(store, w.cw_id, {"content_hash": w.content_hash, "payload_hash": w.payload_hash,
                                         "qbo_sync_token": w.sync_token, "qbo_total": _money(w.qbo_total),
                                         "cw_total": _money(w.cw_total), "intuit_tid": w.tid, "updated_at": at})
            else:
                mark_failed(store, w.cw_id, error=w.error or "failed", tid=w.tid, qbo_id=w.qbo_id,
                            sync_token=w.sync_token, qbo_total=w.qbo_total, number=w.number, entity=w.entity,
                            cw_total=w.cw_total, run_id=w.first_run if w.first_run is not None else run_id,
                            now=at, commit=False, doc_number=w.doc_number)
        if created:
            store.db.conn.executemany(_CREATED, created)
        if run_id is not None:
            runs.record_items(store, run_id, items, now=at)
