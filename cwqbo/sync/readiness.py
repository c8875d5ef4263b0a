"""Whether each unsynced invoice would sync as configured (`list-unsynced`, the `--select` checklist).

The verdict is `mapping.readiness` (the sync's own mapping, with every reference assumed found), judged against
the connected QuickBooks company as the last sync read it, memoised in the store's `readiness` table.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import date

from cwqbo import money
from cwqbo.errors import CwqboError, StoreError
from cwqbo.mapping.document import readiness as judge
from cwqbo.settings.prefs import Prefs, prefs_to_dict
from cwqbo.state import cache
from cwqbo.state.cache import CachedInvoice
from cwqbo.state.store import Store
from cwqbo.sync.ref_cache import stored_company_facts


def readiness(store: Store, rows: Sequence[CachedInvoice], prefs: Prefs,
              realm: str | None = None) -> list[tuple[str, str]]:
    """`mapping.readiness` of each row, memoised in the store by invoice content, prefs and QBO company facts.

    With `realm`, invoices are judged against the connected company as the last sync read it (country, home
    currency, multicurrency), and a document kept for review is never "ready": the same checks the sync runs.
    A verdict is reused only while the content hash, the prefs and those facts are unchanged, so it is always
    what `mapping.readiness` would say now. Failing to save the memo never fails the listing.
    """
    facts = stored_company_facts(store, realm) if realm else None
    prefs_hash = _prefs_hash(prefs, facts)
    kept = {int(cw_id): str(error) for cw_id, error in store.db.execute(
        "SELECT cw_id, error FROM ledger WHERE state = 'failed' AND qbo_id IS NOT NULL")}
    memo = {cw_id: (content, status, reason) for cw_id, content, status, reason in store.db.execute(
        "SELECT cw_id, content_hash, status, reason FROM readiness WHERE prefs_hash = ?", [prefs_hash])}
    verdicts: list[tuple[str, str]] = []
    fresh: list[tuple[int, str, str, str, str]] = []
    for row in rows:
        known = memo.get(row.cw_id)
        if known is not None and known[0] == row.content_hash and row.cw_id not in kept:
            verdicts.append((known[1], known[2]))
            continue
        try:
            status, reason = judge(row.invoice(), prefs, company=facts, kept_for_review=kept.get(row.cw_id))
        except (CwqboError, ValueError) as exc:  # an unreadable record is itself the reason; not memoised
            verdicts.append(("invalid", f"cannot map: {exc}"))
            continue
        verdicts.append((status, reason))
        if row.cw_id in kept:
            continue  # depends on the ledger, not only on content and prefs: never memoised
        fresh.append((row.cw_id, row.content_hash, prefs_hash, status, reason))
    if fresh:
        try:
            with store.transaction():
                store.db.conn.executemany("INSERT OR REPLACE INTO readiness (cw_id, content_hash, prefs_hash, status, "
                                     "reason) VALUES (?, ?, ?, ?, ?)", fresh)
        except (StoreError, sqlite3.Error):
            pass  # read-only or busy database: the listing is still right, just not memoised
    return verdicts


def _prefs_hash(prefs: Prefs, facts: object) -> str:
    return hashlib.sha256((money.dumps(prefs_to_dict(prefs)) + repr(facts)).encode()).hexdigest()[:32]


def listing_json(store: Store, prefs: Prefs, realm: str | None = None, *, since: date | None = None,
                 company: str | None = None, sort: str = "date") -> Iterator[str]:
    """Each unsynced invoice as compact JSON text, with its verdict, in `sort` order (not "total").

    SQLite builds the items from the summary columns and the memoised verdicts, so listing 100,000 invoices costs
    about what reading them does; the invoices without a valid memo are judged here, 1,000 at a time, as
    `readiness` would judge them (and memoised).
    """
    facts = stored_company_facts(store, realm) if realm else None
    prefs_hash = _prefs_hash(prefs, facts)
    chunk: list[tuple[int, str, bool]] = []
    for row in cache.unsynced_json(store, prefs_hash, since=since, company=company, sort=sort):
        chunk.append(row)
        if len(chunk) == 1000:
            yield from _judged(store, chunk, prefs, realm)
            chunk = []
    yield from _judged(store, chunk, prefs, realm)


def _judged(store: Store, chunk: list[tuple[int, str, bool]], prefs: Prefs, realm: str | None) -> Iterator[str]:
    misses = [cw_id for cw_id, _, hit in chunk if not hit]
    verdicts: dict[int, tuple[str, str]] = {}
    if misses:
        rows = cache.light_rows(store, misses)
        found = [rows[i] for i in misses if i in rows]
        verdicts = dict(zip((r.cw_id for r in found), readiness(store, found, prefs, realm), strict=True))
    for cw_id, text, hit in chunk:
        if hit:
            yield text
            continue
        item = json.loads(text)
        item["mapping_status"], item["reason"] = verdicts.get(cw_id, ("invalid", "not in the cache any more"))
        yield json.dumps(item, ensure_ascii=False, separators=(",", ":"))
