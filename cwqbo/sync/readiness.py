"""Whether each unsynced invoice would sync as configured (`list-unsynced`, the `--select` checklist).

The verdict is `mapping.readiness` (the sync's own mapping, with every reference assumed found), judged against
the connected QuickBooks company as the last sync read it, memoised in the store's `readiness` table.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from functools import partial

from cwqbo import money
from cwqbo.errors import CwqboError, StoreError
from cwqbo.mapping.document import readiness as judge
from cwqbo.models import CWInvoice
from cwqbo.settings.prefs import Prefs, prefs_to_dict
from cwqbo.state import cache
from cwqbo.state.cache import CachedInvoice
from cwqbo.state.store import Store
from cwqbo.sync.ref_cache import stored_company_facts

Verdict = tuple[str, str]
PageHook = Callable[[list[tuple[CWInvoice, str]]], None]  # `discover.refresh`'s on_page

log = logging.getLogger(__name__)

_SAVE_EVERY = 1000


class _Judge:
    """`mapping.readiness` against one basis (prefs, the QBO company facts, the documents kept for review), with the
    verdicts memoised a thousand at a time. A verdict is memoised by content hash and a hash of prefs and facts,
    so it is reused only while it is what `mapping.readiness` would say now."""

    def __init__(self, store: Store, prefs: Prefs, realm: str | None) -> None:
        self.store = store
        self.prefs = prefs
        self.facts = stored_company_facts(store, realm) if realm else None
        self.prefs_hash = hashlib.sha256((money.dumps(mapping_prefs(prefs)) + repr(self.facts)).encode()
                                         ).hexdigest()[:32]
        # Depends on the ledger, not only on content and prefs: judged every time, never memoised.
        self.kept = {int(cw_id): str(error) for cw_id, error in store.db.execute(
            "SELECT cw_id, error FROM ledger WHERE state = 'failed' AND qbo_id IS NOT NULL")}
        self.fresh: list[tuple[int, str, str, str, str]] = []

    def __call__(self, cw_id: int, content_hash: str, load: Callable[[], CWInvoice]) -> Verdict:
        try:
            status, reason = judge(load(), self.prefs, company=self.facts, kept_for_review=self.kept.get(cw_id))
        except (CwqboError, ValueError) as exc:  # an unreadable record is itself the reason; not memoised
            return "invalid", f"cannot map: {exc}"
        if cw_id not in self.kept:
            self.fresh.append((cw_id, content_hash, self.prefs_hash, status, reason))
            if len(self.fresh) >= _SAVE_EVERY:
                self.save()
        return status, reason

    def save(self) -> None:
        """Write the verdicts judged since the last save; failing to never fails the listing."""
        fresh, self.fresh = self.fresh, []
        if not fresh:
            return
        try:
            with self.store.transaction():
                self.store.db.conn.executemany("INSERT OR REPLACE INTO readiness (cw_id, content_hash, prefs_hash, "
                                               "status, reason) VALUES (?, ?, ?, ?, ?)", fresh)
        except (StoreError, sqlite3.Error):
            pass  # read-only or busy database: the listing is still right, just not memoised


def readiness(store: Store, rows: Sequence[CachedInvoice], prefs: Prefs,
              realm: str | None = None) -> list[Verdict]:
    """`mapping.readiness` of each row, memoised in the store by invoice content, prefs and QBO company facts.

    With `realm`, invoices are judged against the connected company as the last sync read it (country, home
    currency, multicurrency), and a document kept for review is never "ready": the same checks the sync runs.
    A verdict is reused only while the content hash, the prefs and those facts are unchanged, so it is always
    what `mapping.readiness` would say now. Failing to save the memo never fails the listing.
    """
    verdict = _Judge(store, prefs, realm)
    memo = _memoised(store, verdict.prefs_hash, [row.cw_id for row in rows])
    verdicts: list[Verdict] = []
    for row in rows:
        known = memo.get(row.cw_id)
        if known is not None and known[0] == row.content_hash and row.cw_id not in verdict.kept:
            verdicts.append((known[1], known[2]))
        else:
            verdicts.append(verdict(row.cw_id, row.content_hash, row.invoice))
    verdict.save()
    return verdicts


def listing_json(store: Store, prefs: Prefs, realm: str | None = None, *, since: date | None = None,
                 company: str | None = None, sort: str = "date") -> Iterator[str]:
    """Each unsynced invoice as compact JSON text, with its verdict, in `sort` order (not "total").

    SQLite builds the items from the summary columns and the memoised verdicts, so listing 100,000 invoices costs
    about what reading them does; an invoice without a valid memo comes with its record from the same query and is
    judged here, as `readiness` would judge it (and memoised).
    """
    verdict = _Judge(store, prefs, realm)
    for cw_id, text, record in cache.unsynced_json(store, verdict.prefs_hash, since=since, company=company, sort=sort):
        if record is None:
            yield text
            continue
        content_hash, data = record
        yield cache.with_verdict(text, *verdict(cw_id, content_hash, partial(cache.decode, data)))
    verdict.save()


def memoise_pages(store: Store, prefs: Prefs, realm: str | None = None) -> PageHook:
    """A `discover.refresh(on_page=)` hook that judges each stored page's unsynced invoices while they are decoded
    anyway, and memoises the verdicts, so the next `list-unsynced --json` answers from the memo instead of judging
    the whole cache. For refreshes whose listing would judge them all (refilter, `list-unsynced --json`) and for a
    sync's that leaves most of them unsynced (one invoice, a selection, a dry run); never for `sync --all`'s, which
    sends them. Invoices already memoised for this content are skipped; a failure only leaves the memo incomplete."""
    verdict = _Judge(store, prefs, realm)

    def on_page(page: list[tuple[CWInvoice, str]]) -> None:
        try:
            listed = set(cache.unsynced_among(store, [inv.id for inv, _ in page]))
            known = _memoised(store, verdict.prefs_hash, sorted(listed))
            for inv, content_hash in page:
                memo = known.get(inv.id)
                if inv.id in listed and (memo is None or memo[0] != content_hash):
                    verdict(inv.id, content_hash, partial(_same, inv))
            verdict.save()
        except Exception as exc:  # noqa: BLE001 - a memo is an optimisation: the listing judges what is missing
            verdict.fresh.clear()
            log.warning("readiness not memoised for a page of the refresh: %s", exc)

    return on_page


def mapping_prefs(prefs: Prefs) -> dict[str, object]:
    """The prefs a verdict depends on: all but when sync runs (mode, schedule) and how payments come back, which
    `mapping` never reads, so changing those keeps the memo (re-judging 100,000 invoices takes ~13 s)."""
    basis = prefs_to_dict(prefs)
    for key in _NOT_MAPPING:
        basis.pop(key, None)
    return basis


_NOT_MAPPING = ("sync_mode", "schedule", "payments")


def _same(inv: CWInvoice) -> CWInvoice:
    return inv


def _memoised(store: Store, prefs_hash: str, cw_ids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
    """(content hash, status, reason) memoised under this prefs hash for each of these invoices that has one: read
    by id, so a page of 200 rows does not read every memo."""
    found: dict[int, tuple[str, str, str]] = {}
    for start in range(0, len(cw_ids), 900):  # under SQLite's bound-parameter limit
        part = list(cw_ids[start:start + 900])
        found.update((int(i), (str(h), str(st), str(r))) for i, h, st, r in store.db.execute(
            f"SELECT cw_id, content_hash, status, reason FROM readiness WHERE prefs_hash = ? AND cw_id IN "
            f"({', '.join('?' for _ in part)})", [prefs_hash, *part]))
    return found
