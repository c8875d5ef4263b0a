"""The local invoice cache: what ConnectWise told us, kept in the `invoices` table.

Discovery writes it (one transaction per page); `list-unsynced`, `sync` and `status` read it.
"Unsynced" is computed here in one SQL query against the ledger, so listing thousands of cached
invoices costs no remote call and no per-row decoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, Literal

from cwqbo import money
from cwqbo.errors import UsageError
from cwqbo.models import CWInvoice, invoice_from_json, invoice_json_text_and_hash
from cwqbo.state.store import Store

SortKey = Literal["date", "number", "company", "total"]
SORT_KEYS: tuple[str, ...] = ("date", "number", "company", "total")
DONE_STATES = ("created", "batched")

_COLUMNS = ("cw_id", "number", "type", "status_name", "closed", "company_id", "company_identifier",
            "company_name", "date", "total", "subtotal", "sales_tax", "line_count", "location_id",
            "department_id", "tax_code", "in_scope", "unposted", "content_hash", "last_updated",
            "fetched_at", "data")


@dataclass(frozen=True, slots=True)
class CachedInvoice:
    """One cached invoice's summary columns; `.invoice()` decodes the full record when needed."""

    cw_id: int
    number: str
    type: str
    status_name: str
    closed: bool
    company_id: int | None
    company_identifier: str
    company_name: str
    date: date | None
    total: Decimal
    subtotal: Decimal
    sales_tax: Decimal
    line_count: int
    location_id: int | None
    department_id: int | None
    tax_code: str | None
    in_scope: bool
    unposted: bool
    content_hash: str
    last_updated: str
    fetched_at: str
    data: str = field(default="", repr=False, compare=False)

    def invoice(self) -> CWInvoice:
        return decode(self.data)


def decode(data: str) -> CWInvoice:
    """A cached record (the `data` column) as the CWInvoice it was stored from."""
    return invoice_from_json(money.loads(data))


@dataclass(frozen=True, slots=True)
class ChangedInvoice:
    """An invoice already in QuickBooks whose ConnectWise content changed since (e.g. re-opened and edited)."""

    cached: CachedInvoice
    state: str
    qbo_id: str | None
    synced_hash: str


def invoice_row(inv: CWInvoice, *, in_scope: bool, unposted: bool, fetched_at: str,
                closed: bool = True) -> dict[str, Any]:
    """The `invoices` row for a CWInvoice (pure): money as exact strings, the record as JSON.

    """
    data, content_hash = invoice_json_text_and_hash(inv)
    return {
        "cw_id": inv.id, "number": inv.number, "type": inv.type, "status_name": inv.status_name,
        "closed": int(closed), "company_id": inv.company.id, "company_identifier": inv.company.identifier,
        "company_name": inv.company.name, "date": inv.date.isoformat() if inv.date else None,
        "total": str(inv.total), "subtotal": str(inv.subtotal), "sales_tax": str(inv.sales_tax),
        "line_count": len(inv.lines), "location_id": inv.location_id, "department_id": inv.department_id,
        "tax_code": inv.tax_code, "in_scope": int(in_scope), "unposted": int(unposted),
        "content_hash": content_hash, "last_updated": inv.last_updated,
        "fetched_at": fetched_at, "data": data,
    }


_UPSERT = (
    f"INSERT INTO invoices ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT(cw_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "cw_id")
)


def upsert_invoices(store: Store, invoices: Iterable[CWInvoice], *, in_scope: bool = True,
                    unposted_ids: set[int] | frozenset[int], fetched_at: str,
                    closed: bool = True) -> list[tuple[CWInvoice, str]]:
    """Insert or refresh a page of invoices in one transaction; returns them with the content hashes stored, so a
    sync can send a page it has just read without decoding it back from the cache."""
    stored = list(invoices)
    rows = [invoice_row(inv, in_scope=in_scope, unposted=inv.id in unposted_ids, fetched_at=fetched_at,
                        closed=closed) for inv in stored]
    if not rows:
        return []
    with store.transaction() as db:
        db.conn.executemany(_UPSERT, [tuple(r[c] for c in _COLUMNS) for r in rows])
    return [(inv, str(r["content_hash"])) for inv, r in zip(stored, rows, strict=True)]


def update_flags(store: Store, ids: Iterable[int], *, in_scope: bool | None = None,
                 closed: bool | None = None, unposted: bool | None = None) -> int:
    """Set scope / closed / unposted on cached rows by id (e.g. an invoice re-opened or batched elsewhere)."""
    sets = [(name, int(val)) for name, val in (("in_scope", in_scope), ("closed", closed),
                                                ("unposted", unposted)) if val is not None]
    id_list = list(ids)
    if not sets or not id_list:
        return 0
    sql = f"UPDATE invoices SET {', '.join(f'{n} = ?' for n, _ in sets)} WHERE cw_id = ?"
    values = [v for _, v in sets]
    with store.transaction() as db:
        cur = db.conn.executemany(sql, [(*values, i) for i in id_list])
    return max(cur.rowcount, 0)


def cached_ids(store: Store, ids: Iterable[int]) -> set[int]:
    """Which of `ids` are in the cache (chunked to stay under SQLite's parameter limit)."""
    found: set[int] = set()
    id_list = list(ids)
    for i in range(0, len(id_list), 500):
        chunk = id_list[i:i + 500]
        q = f"SELECT cw_id FROM invoices WHERE cw_id IN ({', '.join('?' for _ in chunk)})"
        found.update(r[0] for r in store.db.execute(q, chunk).fetchall())
    return found


@dataclass(frozen=True, slots=True)
class _LazyCachedInvoice(CachedInvoice):
    """A cached invoice read without its record JSON: `.invoice()` fetches it from the store when asked."""

    store: Store | None = field(default=None, repr=False, compare=False)

    def invoice(self) -> CWInvoice:
        data = self.data
        if not data and self.store is not None:
            found = self.store.db.execute("SELECT data FROM invoices WHERE cw_id = ?", [self.cw_id]).fetchone()
            data = found[0] if found else ""
        return decode(data)


def _from_row(row: Sequence[Any], store: Store | None = None) -> CachedInvoice:
    d = dict(zip(_COLUMNS, row, strict=False))
    cls = CachedInvoice if store is None else _LazyCachedInvoice
    extra: dict[str, Any] = {} if store is None else {"store": store}
    return cls(
        cw_id=d["cw_id"], number=d["number"] or "", type=d["type"] or "", status_name=d["status_name"] or "",
        closed=bool(d["closed"]), company_id=d["company_id"], company_identifier=d["company_identifier"] or "",
        company_name=d["company_name"] or "", date=date.fromisoformat(d["date"]) if d["date"] else None,
        total=Decimal(d["total"] or "0"), subtotal=Decimal(d["subtotal"] or "0"),
        sales_tax=Decimal(d["sales_tax"] or "0"), line_count=d["line_count"] or 0,
        location_id=d["location_id"], department_id=d["department_id"], tax_code=d["tax_code"],
        in_scope=bool(d["in_scope"]), unposted=bool(d["unposted"]), content_hash=d["content_hash"] or "",
        last_updated=d["last_updated"] or "", fetched_at=d["fetched_at"] or "", data=d.get("data") or "", **extra,
    )


_SELECT = ", ".join(f"i.{c}" for c in _COLUMNS)
_SELECT_LIGHT = ", ".join(f"i.{c}" for c in _COLUMNS if c != "data")
_ORDER = {
    "date": "i.date, i.number, i.cw_id",
    "number": "i.number, i.cw_id",
    "company": "i.company_name COLLATE NOCASE, i.date, i.number, i.cw_id",
    "total": "i.cw_id",  # re-sorted exactly (Decimal) in Python below
}


def _unsynced_where(since: date | None, company: str | None, join: str = "") -> tuple[str, list[Any]]:
    """The FROM … WHERE of the unsynced listing; `join` adds a LEFT JOIN (its parameters come first)."""
    where = ["i.in_scope = 1", "i.closed = 1", "i.unposted = 1",
             f"(l.state IS NULL OR l.state NOT IN ({', '.join('?' for _ in DONE_STATES)}))"]
    params: list[Any] = list(DONE_STATES)
    if since is not None:
        where.append("i.date >= ?")
        params.append(since.isoformat())
    if company:
        where.append("(i.company_identifier = ? COLLATE NOCASE OR instr(lower(i.company_name), lower(?)) > 0)")
        params += [company, company]
    return f"FROM invoices i LEFT JOIN ledger l ON l.cw_id = i.cw_id {join} WHERE {' AND '.join(where)}", params


def unsynced(store: Store, *, since: date | None = None, company: str | None = None,
             sort: str = "date", limit: int | None = None, light: bool = False) -> list[CachedInvoice]:
    """Closed, in-scope, still-unposted invoices that the ledger has not created in QBO.

    `company` matches the CW identifier exactly or the name as a substring (both case-insensitive).
    A failed or intent-only ledger row still counts as unsynced: the user has to see it.
    `limit` pages in SQL (sort "total" orders exactly, by Decimal, on the totals alone first). `light` leaves the
    record's JSON in the database: `.invoice()` then reads it on first use (listings that only need summaries).
    """
    if sort not in _ORDER:
        raise UsageError(f"unknown sort {sort!r}: use one of {', '.join(SORT_KEYS)}")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    frm, params = _unsynced_where(since, company)
    cols = _SELECT_LIGHT if light else _SELECT
    make = (lambda r: _from_row(r, store)) if light else _from_row
    if sort == "total":
        if limit is None:
            rows = [make(r) for r in store.db.execute(f"SELECT {cols} {frm}", params)]
            rows.sort(key=lambda c: (-c.total, c.number, c.cw_id))
            return rows
        keys = [(-Decimal(t or "0"), n or "", i) for i, n, t in
                store.db.execute(f"SELECT i.cw_id, i.number, i.total {frm}", params)]
        top = [k[2] for k in sorted(keys)[:limit]]
        by_id = {c.cw_id: c for c in (make(r) for chunk in _chunks(top, 500) for r in store.db.execute(
            f"SELECT {cols} FROM invoices i WHERE i.cw_id IN ({', '.join('?' for _ in chunk)})", chunk))}
        return [by_id[i] for i in top]
    sql = f"SELECT {cols} {frm} ORDER BY {_ORDER[sort]}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [make(r) for r in store.db.execute(sql, params)]


# The `list-unsynced --json` item, built by SQLite (json_object) from the summary columns and a memoised verdict:
# C speed at 100,000 rows. Keys and values are those of `cli.invoices.invoice_rows`.
_ITEM_JSON = (
    "json_object('cw_id', i.cw_id, 'number', coalesce(i.number, ''), 'company', json_object('id', i.company_id, "
    "'identifier', coalesce(i.company_identifier, ''), 'name', coalesce(i.company_name, '')), "
    "'date', nullif(i.date, ''), 'type', coalesce(i.type, ''), 'total', coalesce(nullif(i.total, ''), '0'), "
    "'subtotal', coalesce(nullif(i.subtotal, ''), '0'), 'sales_tax', coalesce(nullif(i.sales_tax, ''), '0'), "
    "'lines', coalesce(i.line_count, 0), 'mapping_status', r.status, 'reason', r.reason)"
)


_NO_VERDICT = '"mapping_status":null,"reason":null}'  # how an `_ITEM_JSON` item without a memo ends

# A verdict memoised for this content and these prefs; never for a document kept for review (it depends on the ledger).
_MEMO_JOIN = ("LEFT JOIN readiness r ON r.cw_id = i.cw_id AND r.prefs_hash = ? AND r.content_hash = i.content_hash "
              "AND NOT (l.state = 'failed' AND l.qbo_id IS NOT NULL)")


# One `unsynced_json` item: (cw_id, item JSON, record). The record is (content hash, record JSON) when no verdict is
# memoised for the invoice (it must be judged, and `with_verdict` completes the item), None when the item is complete.
# A plain tuple: one is made per row of a 100,000-row listing.
ListedItem = tuple[int, str, tuple[str, str] | None]


def unsynced_json(store: Store, prefs_hash: str, *, since: date | None = None, company: str | None = None,
                  sort: str = "date") -> Iterator[ListedItem]:
    """Every invoice `unsynced` lists as its item JSON, in `sort` order ("total" is refused: SQL can't order money
    exactly). Without a hit (no verdict memoised for this content and these prefs, or a document kept for review,
    whose verdict depends on the ledger) the item's verdict fields are null and its record comes with it, read
    in the same query: judging it needs no second look-up."""
    if sort not in _ORDER or sort == "total":
        raise UsageError(f"unsynced_json orders by {', '.join(k for k in SORT_KEYS if k != 'total')}, not {sort!r}")
    frm, params = _unsynced_where(since, company, join=_MEMO_JOIN)
    cursor = store.db.execute(f"SELECT i.cw_id, {_ITEM_JSON}, CASE WHEN r.status IS NULL THEN coalesce(i.content_hash, "
                              f"'') END, CASE WHEN r.status IS NULL THEN i.data END {frm} ORDER BY {_ORDER[sort]}",
                              [prefs_hash, *params])
    while batch := cursor.fetchmany(1000):
        for cw_id, text, content_hash, data in batch:
            yield cw_id, text, None if content_hash is None else (content_hash, data or "")


def with_verdict(text: str, status: str, reason: str) -> str:
    """An `unsynced_json` item judged here: its null verdict fields (the last two) replaced, without re-parsing it."""
    if not text.endswith(_NO_VERDICT):
        raise ValueError(f"not an item without a verdict: {text[-60:]!r}")
    verdict = f'"mapping_status":{encode_basestring(status)},"reason":{encode_basestring(reason)}}}'
    return text[:-len(_NO_VERDICT)] + verdict


def light_rows(store: Store, cw_ids: Sequence[int]) -> dict[int, CachedInvoice]:
    """Cached summaries by id, their record JSON read on first use."""
    out: dict[int, CachedInvoice] = {}
    for chunk in _chunks(list(cw_ids), 500):
        for r in store.db.execute(f"SELECT {_SELECT_LIGHT} FROM invoices i WHERE i.cw_id IN "
                                  f"({', '.join('?' for _ in chunk)})", chunk):
            row = _from_row(r, store)
            out[row.cw_id] = row
    return out


def unsynced_summary(store: Store, *, since: date | None = None, company: str | None = None) -> tuple[int, Decimal]:
    """How many invoices `unsynced` would list, and their exact total, without building a row.

    Counted and selected in SQL; the total is summed here as Decimal from the stored exact strings, because
    SQLite would add money as floating point.
    """
    frm, params = _unsynced_where(since, company)
    count = 0
    total = Decimal(0)
    for (text,) in store.db.execute(f"SELECT i.total {frm}", params):
        count += 1
        total += Decimal(text or "0")
    return count, total


def _chunks(ids: list[int], size: int) -> Iterable[list[int]]:
    return (ids[i:i + size] for i in range(0, len(ids), size))


def unsynced_ids(store: Store) -> list[int]:
    """The ids `unsynced` would list, oldest first, without reading their data: a run streams them in slices."""
    sql = ("SELECT i.cw_id FROM invoices i LEFT JOIN ledger l ON l.cw_id = i.cw_id "
           "WHERE i.in_scope = 1 AND i.closed = 1 AND i.unposted = 1 "
           f"AND (l.state IS NULL OR l.state NOT IN ({', '.join('?' for _ in DONE_STATES)})) ORDER BY {_ORDER['date']}")
    return [int(r[0]) for r in store.db.execute(sql, list(DONE_STATES))]


def unsynced_among(store: Store, cw_ids: Sequence[int]) -> list[int]:
    """Which of these ids `unsynced_ids` would list (a page just read from ConnectWise), in the same order."""
    wanted: set[int] = set()
    for start in range(0, len(cw_ids), 900):
        part = list(cw_ids[start:start + 900])
        sql = ("SELECT i.cw_id FROM invoices i LEFT JOIN ledger l ON l.cw_id = i.cw_id "
               f"WHERE i.cw_id IN ({', '.join('?' for _ in part)}) AND i.in_scope = 1 AND i.closed = 1 "
               f"AND i.unposted = 1 AND (l.state IS NULL OR l.state NOT IN ({', '.join('?' for _ in DONE_STATES)}))")
        wanted.update(int(r[0]) for r in store.db.execute(sql, [*part, *DONE_STATES]))
    return [i for i in cw_ids if i in wanted]


def load_many(store: Store, cw_ids: Sequence[int]) -> list[CWInvoice]:
    """These cached invoices, decoded, in the order asked (ids not in the cache are left out)."""
    return [inv for inv, _ in load_with_hashes(store, cw_ids)]


def load_with_hashes(store: Store, cw_ids: Sequence[int]) -> list[tuple[CWInvoice, str]]:
    """`load_many`, each invoice with the content hash the cache stored for it (no need to hash it again)."""
    found: dict[int, CachedInvoice] = {}
    for start in range(0, len(cw_ids), 900):  # under SQLite's bound-parameter limit
        part = list(cw_ids[start:start + 900])
        sql = f"SELECT {_SELECT} FROM invoices i WHERE i.cw_id IN ({', '.join('?' for _ in part)})"
        found.update((row.cw_id, row) for row in map(_from_row, store.db.execute(sql, part).fetchall()))
    return [(found[i].invoice(), found[i].content_hash) for i in cw_ids if i in found]


def changed(store: Store) -> list[ChangedInvoice]:
    """Invoices the ledger created or batched whose cached content no longer matches what was synced."""
    sql = (f"SELECT {_SELECT}, l.state, l.qbo_id, l.content_hash FROM ledger l "
           "JOIN invoices i ON i.cw_id = l.cw_id "
           f"WHERE l.state IN ({', '.join('?' for _ in DONE_STATES)}) AND l.content_hash IS NOT NULL "
           "AND i.content_hash IS NOT NULL AND i.content_hash != l.content_hash ORDER BY i.date, i.number")
    out = []
    n = len(_COLUMNS)
    for row in store.db.execute(sql, list(DONE_STATES)).fetchall():
        out.append(ChangedInvoice(cached=_from_row(row[:n]), state=row[n], qbo_id=row[n + 1],
                                  synced_hash=row[n + 2]))
    return out


def find(store: Store, cw_id: int) -> CachedInvoice | None:
    row = store.db.execute(f"SELECT {_SELECT} FROM invoices i WHERE i.cw_id = ?", [cw_id]).fetchone()
    return None if row is None else _from_row(row)


def get(store: Store, cw_id: int) -> CWInvoice:
    """The full cached invoice; a missing id is a user-facing error (it may just need a refresh)."""
    cached = find(store, cw_id)
    if cached is None:
        raise UsageError(f"invoice id {cw_id} is not in the local cache",
                         hint="run `cwqbo list-unsynced` (it refreshes from ConnectWise) and check the id")
    return cached.invoice()


def by_number(store: Store, number: str) -> CWInvoice | None:
    """The cached invoice with this CW invoice number (exact, then case-insensitive), or None."""
    row = store.db.execute(
        f"SELECT {_SELECT} FROM invoices i WHERE i.number = ? ORDER BY i.in_scope DESC, i.cw_id LIMIT 1",
        [number]).fetchone()
    if row is None:
        row = store.db.execute(
            f"SELECT {_SELECT} FROM invoices i WHERE i.number = ? COLLATE NOCASE "
            "ORDER BY i.in_scope DESC, i.cw_id LIMIT 1", [number]).fetchone()
    return None if row is None else _from_row(row).invoice()


def counts(store: Store) -> dict[str, int]:
    """Cache totals for status screens: cached, in scope, unsynced."""
    cached_n, in_scope_n = store.db.execute(
        "SELECT count(*), coalesce(sum(in_scope), 0) FROM invoices").fetchone()
    unsynced_n = store.db.execute(
        "SELECT count(*) FROM invoices i LEFT JOIN ledger l ON l.cw_id = i.cw_id WHERE i.in_scope = 1 "
        "AND i.closed = 1 AND i.unposted = 1 AND (l.state IS NULL OR l.state NOT IN (?, ?))",
        list(DONE_STATES)).fetchone()[0]
    return {"cached": cached_n, "in_scope": in_scope_n, "unsynced": unsynced_n}
