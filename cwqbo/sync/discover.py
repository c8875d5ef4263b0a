"""Discovery: bring ConnectWise's Closed invoices (with their lines) into the local cache, in bulk.

A refresh reads invoices 1,000 per page and, for each page, the products, time entries, expenses
and unposted flags of the whole page with `in (...)` calls, so the cost is about 0.015 calls per
invoice and memory stays flat (one page at a time, written in one transaction).

- **Full** (first run, `--full`, or after the filters changed): the scope conditions go to CW; at
  the end, cached invoices CW no longer matched leave scope. Progress (last id stored, ids seen)
  is kept in the store, so an interrupted full refresh resumes where it stopped.
- **Incremental**: everything CW changed since the watermark (`_info/lastUpdated >= [wm]`, no scope
  conditions, so an invoice re-opened or moved out of scope is noticed too); each invoice is
  classified locally with the same rules. Then the unposted flags of the cached candidates are
  re-read, because another tool batching an invoice does not change its lastUpdated.
The watermark is the newest lastUpdated CW showed us, saved only once the refresh succeeded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cwqbo import collector
from cwqbo.state import cache
from cwqbo.clock import Clock
from cwqbo.connectwise import conditions as cond
from cwqbo.errors import ConfigError, CwqboError
from cwqbo.models import CWInvoice
from cwqbo.settings.prefs import Filters
from cwqbo.state.store import Store, utc_iso

PAGE_SIZE = 1000
WATERMARK = "cache.watermark"
FILTERS_HASH = "cache.filters_hash"
FULL_CURSOR = "discover.full.cursor"
FULL_FILTERS = "discover.full.filters_hash"
FULL_MAX_UPDATED = "discover.full.max_updated"
FULL_STARTED = "discover.full.started_at"
NO_WATERMARK_MARGIN_S = 86_400  # when a full refresh saw nothing, look back a day from our own clock

Progress = Callable[[int, "int | None"], None]
PageHook = Callable[[list[tuple[CWInvoice, str]]], None]  # a page's invoices and content hashes, once cached


class CWLike(Protocol):
    """What discovery needs from `connectwise.client.CWClient` (tests pass fakes)."""

    calls: int

    def billing_statuses(self) -> list[dict[str, Any]]: ...
    def iter_invoices(self, conditions: str | None = None,
                      fields: Iterable[str] | None = None) -> Iterator[dict[str, Any]]: ...
    def products_for(self, invoice_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]: ...
    def time_entries_for(self, invoice_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]: ...
    def expenses_for(self, invoice_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]: ...
    def unposted_invoice_ids(self, invoice_ids: Iterable[int] | None = None) -> set[int]: ...


@dataclass(frozen=True, slots=True)
class DiscoverResult:
    fetched: int  # invoices read from CW this refresh
    in_scope: int  # of those, in scope (stored with their lines)
    unposted: int  # of those, still unposted in CW
    removed: int  # cached invoices that left scope
    cw_calls: int
    full: bool = False
    resumed: bool = False
    watermark: str | None = None
    problems: tuple[str, ...] = ()  # invoices CW sent that could not be read (skipped, not fatal)


@dataclass(frozen=True, slots=True)
class Scope:
    """Filters resolved against CW: which billing status ids count (only closed ones)."""

    filters: Filters
    status_ids: tuple[int, ...]
    closed_ids: frozenset[int]
    names: Mapping[int, str] = field(default_factory=dict)  # status id → name, for records without one


# -- pure parts ---------------------------------------------------------------------------------
def filters_hash(filters: Filters) -> str:
    """Identifies a set of filters; a change forces a full refresh."""
    d = asdict(filters)
    d["from_date"] = filters.from_date.isoformat() if filters.from_date else None
    for key in ("billing_statuses", "invoice_types", "exclude_companies"):
        d[key] = sorted(str(v).casefold() for v in d[key])
    for key in ("location_ids", "department_ids"):
        d[key] = sorted(int(v) for v in d[key])
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def resolve_scope(filters: Filters, statuses: Iterable[Mapping[str, Any]]) -> Scope:
    """Closed billing statuses (by id, since names can be renamed) narrowed by the filter's names."""
    rows = list(statuses)
    closed = {int(s["id"]): str(s.get("name") or "") for s in rows if s.get("closedFlag")}
    if not closed:
        raise ConfigError("ConnectWise has no billing status flagged Closed",
                          hint="mark the closed status(es) under Setup Tables › Billing Status")
    names = {int(s["id"]): str(s.get("name") or "") for s in rows}
    if not filters.billing_statuses:
        return Scope(filters, tuple(sorted(closed)), frozenset(closed), names)
    by_name = {str(s.get("name") or "").casefold(): s for s in rows}
    ids = []
    for name in filters.billing_statuses:
        s = by_name.get(name.casefold())
        if s is None:
            raise ConfigError(f"filter status {name!r} is not a ConnectWise billing status "
                              f"(closed ones: {', '.join(sorted(closed.values()))})")
        if not s.get("closedFlag"):
            raise ConfigError(f"filter status {name!r} is not a closed billing status; only Closed invoices sync")
        ids.append(int(s["id"]))
    return Scope(filters, tuple(sorted(set(ids))), frozenset(closed), names)


def scope_conditions(scope: Scope) -> str:
    """The CW `conditions` selecting in-scope invoices; every value goes through conditions.py."""
    f = scope.filters
    return cond.and_(
        cond.in_("status/id", scope.status_ids),
        cond.cmp("date", ">=", f.from_date) if f.from_date else None,
        cond.in_("locationId", [int(i) for i in f.location_ids]) if f.location_ids else None,
        cond.in_("departmentId", [int(i) for i in f.department_ids]) if f.department_ids else None,
        cond.in_("type", list(f.invoice_types)) if f.invoice_types else None,
        f"company/identifier not in ({', '.join(cond.literal(c) for c in f.exclude_companies)})"
        if f.exclude_companies else None,
    )


def _norm_type(value: Any) -> str:
    return str(value or "").replace(" ", "").casefold()


def _ref_id(raw: Mapping[str, Any], flat: str, nested: str) -> int | None:
    v = raw.get(flat)
    if v is None and isinstance(raw.get(nested), Mapping):
        v = raw[nested].get("id")
    return None if v is None else int(v)


def _submap(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested ConnectWise reference (`status`, `company`, `_info`), or an empty one when absent or malformed."""
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def raw_in_scope(raw: Mapping[str, Any], scope: Scope) -> bool:
    """The same rule as `scope_conditions`, applied locally to an invoice record (incremental refresh)."""
    f = scope.filters
    status = _submap(raw, "status")
    if int(status.get("id") or 0) not in scope.status_ids:
        return False
    if f.from_date and str(raw.get("date") or "")[:10] < f.from_date.isoformat():
        return False
    if f.location_ids and _ref_id(raw, "locationId", "location") not in {int(i) for i in f.location_ids}:
        return False
    if f.department_ids and _ref_id(raw, "departmentId", "department") not in {int(i) for i in f.department_ids}:
        return False
    if f.invoice_types and _norm_type(raw.get("type")) not in {_norm_type(t) for t in f.invoice_types}:
        return False
    company = _submap(raw, "company")
    if f.exclude_companies and str(company.get("identifier") or "").casefold() in {
            c.casefold() for c in f.exclude_companies}:
        return False
    return True


def _pages(records: Iterator[dict[str, Any]], size: int = PAGE_SIZE) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    for rec in records:
        page.append(rec)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def _updated(raw: Mapping[str, Any]) -> str:
    info = _submap(raw, "_info")
    return str(info.get("lastUpdated") or "")


def _parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# -- I/O ----------------------------------------------------------------------------------------
def refresh(cw: CWLike, store: Store, filters: Filters, *, full: bool = False, clock: Clock | None = None,
            progress: Progress | None = None, on_page: PageHook | None = None) -> DiscoverResult:
    """Refresh the cache from ConnectWise; full when asked, on first use, or when the filters changed.

    `on_page` is called with each page's invoices (and their content hashes) once the page is stored, so a sync can
    start sending while the rest is still being read."""
    from cwqbo.connectwise.records import build_invoice

    clock = clock or Clock()
    calls0 = cw.calls
    scope = resolve_scope(filters, cw.billing_statuses())
    fhash = filters_hash(filters)
    watermark = store.get_meta(WATERMARK)
    pending_full = store.get_meta(FULL_CURSOR) is not None
    with collector.relaxed():  # a refilter of 100,000 invoices decodes a page at a time: see cwqbo/collector.py
        if full or pending_full or watermark is None or store.get_meta(FILTERS_HASH) != fhash:
            return _full(cw, store, scope, fhash, clock, progress, calls0, build_invoice, on_page)
        return _incremental(cw, store, scope, watermark, clock, progress, calls0, build_invoice, on_page)


def _store_page(cw: CWLike, store: Store, raws: list[dict[str, Any]], scope: Scope, fetched_at: str,
                build: Callable[..., Any], *, seen: bool, problems: list[str],
                on_page: PageHook | None) -> int:
    """Fetch one page's lines and unposted flags in bulk, write it in one transaction, then hand it to `on_page`;
    returns how many of the page are unposted.

    An invoice that cannot be read (no company, a non-numeric amount) is skipped and reported in
    `problems`; it never stops the other 999 of its page.
    """
    ids = [int(r["id"]) for r in raws]
    products = cw.products_for(ids)
    times = cw.time_entries_for(ids)
    expenses = cw.expenses_for(ids)
    unposted = cw.unposted_invoice_ids(ids)
    invoices = []
    for r, i in zip(raws, ids, strict=True):
        try:
            invoices.append(build(r, products.get(i, ()), times.get(i, ()), expenses.get(i, ()),
                                  statuses=scope.names))
        except (CwqboError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"invoice {r.get('invoiceNumber') or i} (id {i}) skipped: {exc}")
    with store.transaction() as db:
        stored = cache.upsert_invoices(store, invoices, in_scope=True, unposted_ids=unposted, fetched_at=fetched_at)
        if seen:
            db.conn.executemany("INSERT OR REPLACE INTO discover_seen (cw_id, last_updated) VALUES (?, ?)",
                                [(inv.id, inv.last_updated) for inv in invoices])
    if on_page is not None:
        on_page(stored)
    return sum(1 for inv in invoices if inv.id in unposted)


def _full(cw: CWLike, store: Store, scope: Scope, fhash: str, clock: Clock, progress: Progress | None,
          calls0: int, build: Callable[..., Any], on_page: PageHook | None = None) -> DiscoverResult:
    conditions = scope_conditions(scope)
    cursor_text = store.get_meta(FULL_CURSOR)
    resumed = cursor_text is not None and store.get_meta(FULL_FILTERS) == fhash
    if resumed:
        cursor = int(cursor_text or 0)
        max_updated = store.get_meta(FULL_MAX_UPDATED) or ""
    else:
        cursor, max_updated = 0, ""
        with store.transaction() as db:
            db.execute("DELETE FROM discover_seen")
            store.set_meta(FULL_CURSOR, "0")
            store.set_meta(FULL_FILTERS, fhash)
            store.set_meta(FULL_MAX_UPDATED, "")
            store.set_meta(FULL_STARTED, utc_iso(clock.now()))
    query = cond.and_(conditions, cond.cmp("id", ">", cursor)) if cursor else conditions
    done = int(store.db.execute("SELECT count(*) FROM discover_seen").fetchone()[0]) if resumed else 0
    total = None
    if progress is not None:
        count = getattr(cw, "count", None)
        total = done + count("/finance/invoices", query) if callable(count) else None
        progress(done, total)
    fetched = in_scope = unposted = 0
    problems: list[str] = []
    fetched_at = utc_iso(clock.now())
    for raws in _pages(cw.iter_invoices(query)):
        before = len(problems)
        unposted += _store_page(cw, store, raws, scope, fetched_at, build, seen=True, problems=problems,
                                on_page=on_page)
        fetched += len(raws)
        in_scope += len(raws) - (len(problems) - before)
        max_updated = max([max_updated, *(_updated(r) for r in raws)])
        with store.transaction():
            store.set_meta(FULL_CURSOR, str(max(int(r["id"]) for r in raws)))
            store.set_meta(FULL_MAX_UPDATED, max_updated)
        done += len(raws)
        if progress is not None:
            progress(done, total)
    with store.transaction() as db:
        cur = db.execute("UPDATE invoices SET in_scope = 0 WHERE in_scope = 1 "
                         "AND cw_id NOT IN (SELECT cw_id FROM discover_seen)")
        removed = max(cur.rowcount, 0)
        watermark = max_updated or utc_iso(clock.now() - NO_WATERMARK_MARGIN_S)
        store.set_meta(WATERMARK, watermark)
        store.set_meta(FILTERS_HASH, fhash)
        for key in (FULL_CURSOR, FULL_FILTERS, FULL_MAX_UPDATED, FULL_STARTED):
            store.set_meta(key, None)
        db.execute("DELETE FROM discover_seen")
    return DiscoverResult(fetched=fetched, in_scope=in_scope, unposted=unposted, removed=removed,
                          cw_calls=cw.calls - calls0, full=True, resumed=resumed, watermark=watermark,
                          problems=tuple(problems))


def _incremental(cw: CWLike, store: Store, scope: Scope, watermark: str, clock: Clock,
                 progress: Progress | None, calls0: int, build: Callable[..., Any],
                 on_page: PageHook | None = None) -> DiscoverResult:
    query = cond.cmp("_info/lastUpdated", ">=", _parse_stamp(watermark))
    fetched = in_scope = unposted = removed = 0
    problems: list[str] = []
    max_updated = watermark
    fetched_at = utc_iso(clock.now())
    touched: set[int] = set()
    if progress is not None:
        progress(0, None)
    for raws in _pages(cw.iter_invoices(query)):
        fetched += len(raws)
        inside = [r for r in raws if raw_in_scope(r, scope)]
        outside = [r for r in raws if not raw_in_scope(r, scope)]
        if inside:
            before = len(problems)
            unposted += _store_page(cw, store, inside, scope, fetched_at, build, seen=False, problems=problems,
                                    on_page=on_page)
            in_scope += len(inside) - (len(problems) - before)
            touched.update(int(r["id"]) for r in inside)
        if outside:
            removed += _leave_scope(store, outside, scope)
        max_updated = max([max_updated, *(_updated(r) for r in raws)])
        if progress is not None:
            progress(fetched, None)
    # Batched by someone else (or by us in another profile) without lastUpdated moving: re-read the flags.
    candidates = [r[0] for r in store.db.execute(
        "SELECT cw_id FROM invoices WHERE in_scope = 1 AND unposted = 1").fetchall() if r[0] not in touched]
    if candidates:
        still = cw.unposted_invoice_ids(candidates)
        cache.update_flags(store, [i for i in candidates if i not in still], unposted=False)
    store.set_meta(WATERMARK, max_updated)
    return DiscoverResult(fetched=fetched, in_scope=in_scope, unposted=unposted, removed=removed,
                          cw_calls=cw.calls - calls0, full=False, resumed=False, watermark=max_updated,
                          problems=tuple(problems))


def _leave_scope(store: Store, raws: list[dict[str, Any]], scope: Scope) -> int:
    """Cached invoices CW now reports out of scope (re-opened, re-filtered): flag them; returns how many left."""
    ids = [int(r["id"]) for r in raws]
    known = cache.cached_ids(store, ids)
    if not known:
        return 0
    was_in = {r[0] for r in store.db.execute(
        f"SELECT cw_id FROM invoices WHERE in_scope = 1 AND cw_id IN ({', '.join('?' for _ in known)})",
        list(known)).fetchall()}
    with store.transaction() as db:
        for r in raws:
            i = int(r["id"])
            if i in known:
                status = _submap(r, "status")
                closed = int(status.get("id") or 0) in scope.closed_ids
                db.execute("UPDATE invoices SET in_scope = 0, closed = ?, last_updated = ? WHERE cw_id = ?",
                           [int(closed), _updated(r), i])
    return len(was_in)
