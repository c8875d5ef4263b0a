"""Discovery: filters → conditions, bulk reads (call budget), incremental refresh, resumable full refresh."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cwqbo.state import cache
from cwqbo.sync import discover
from cwqbo.clock import ManualClock
from cwqbo.errors import ConfigError, RemoteError
from cwqbo.settings.prefs import Filters
from cwqbo.sandbox.connectwise.conditions import compile_conditions
from cwqbo.state.store import Store

STATUSES = [
    {"id": 1, "name": "New", "closedFlag": False},
    {"id": 2, "name": "Sent", "closedFlag": False},
    {"id": 3, "name": "Closed", "closedFlag": True},
    {"id": 4, "name": "Paid", "closedFlag": True},
]
IDS_PER_CHUNK = 450  # roughly what fits a 5 KB `invoice/id in (...)`


def raw_invoice(i: int, *, status: int = 3, day: str = "2026-03-01", location: int = 1, department: int = 10,
                kind: str = "Standard", company: str = "ACME", updated: str = "2026-03-02T00:00:00Z",
                total: str = "100.00") -> dict[str, Any]:
    name = {s["id"]: s["name"] for s in STATUSES}[status]
    amount = Decimal(total)
    return {"id": i, "invoiceNumber": f"INV{i}", "type": kind, "status": {"id": status, "name": name},
            "company": {"id": 7, "identifier": company, "name": company.title()},
            "date": f"{day}T00:00:00Z", "subtotal": amount, "salesTax": Decimal("0"), "total": amount,
            "locationId": location, "departmentId": department, "_info": {"lastUpdated": updated}}


class FakeCW:
    """Just enough of CWClient: evaluates real `conditions` text and counts calls the way HTTP would."""

    def __init__(self, invoices: list[dict[str, Any]], *, unposted: set[int] | None = None) -> None:
        self.invoices = {r["id"]: r for r in invoices}
        self.unposted = {r["id"] for r in invoices} if unposted is None else unposted
        self.calls = 0
        self.queries: list[str | None] = []
        self.fail_on_page: int | None = None
        self.line_requests: list[int] = []

    def billing_statuses(self) -> list[dict[str, Any]]:
        self.calls += 1
        return STATUSES

    def iter_invoices(self, conditions: str | None = None, fields: Iterable[str] | None = None) -> Iterator[dict]:
        self.queries.append(conditions)
        pred = compile_conditions(conditions)
        rows = [r for _, r in sorted(self.invoices.items()) if pred(r)]
        for n, start in enumerate(range(0, max(len(rows), 1), 1000), 1):
            self.calls += 1
            if self.fail_on_page == n:
                raise RemoteError("ConnectWise answered 503 three times")
            yield from rows[start:start + 1000]

    def _chunked(self, ids: Iterable[int]) -> list[int]:
        ids = list(ids)
        self.calls += math.ceil(len(ids) / IDS_PER_CHUNK)
        return ids

    def products_for(self, ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        ids = self._chunked(ids)
        self.line_requests.extend(ids)
        return {i: [{"id": i * 10, "catalogItem": {"identifier": "WIDGET"}, "description": "Widget",
                     "quantity": Decimal("1"), "price": self.invoices[i]["subtotal"], "invoice": {"id": i}}]
                for i in ids}

    def time_entries_for(self, ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        return {i: [] for i in self._chunked(ids)}

    def expenses_for(self, ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        return {i: [] for i in self._chunked(ids)}

    def unposted_invoice_ids(self, ids: Iterable[int] | None = None) -> set[int]:
        return {i for i in self._chunked(ids or []) if i in self.unposted}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "cwqbo-default.db")
    yield s
    s.close()


def scope(filters: Filters) -> discover.Scope:
    return discover.resolve_scope(filters, STATUSES)


def test_default_filters_select_closed_statuses_by_id() -> None:
    assert discover.scope_conditions(scope(Filters())) == "status/id in (3, 4)"


def test_every_filter_becomes_a_safely_quoted_condition() -> None:
    f = Filters(from_date=date(2026, 1, 1), location_ids=[1, 2], department_ids=[10], billing_statuses=["paid"],
                invoice_types=["Standard", "CreditMemo"], exclude_companies=['Evil"Co) or (id>0', "INTERNAL"])
    text = discover.scope_conditions(scope(f))
    assert text == ('(status/id in (4)) and (date>=[2026-01-01T00:00:00Z]) and (locationId in (1, 2)) and '
                    '(departmentId in (10)) and (type in ("Standard", "CreditMemo")) and '
                    '(company/identifier not in ("Evil\\"Co) or (id>0", "INTERNAL"))')
    pred = compile_conditions(text)  # parses as one expression; the quote did not escape its string
    ok = raw_invoice(1, status=4, location=2)
    assert pred(ok)
    assert not pred({**ok, "company": {"identifier": 'Evil"Co) or (id>0'}})
    assert not pred(raw_invoice(2, status=3))


def test_status_filter_must_name_a_closed_status() -> None:
    with pytest.raises(ConfigError, match="not a closed billing status"):
        scope(Filters(billing_statuses=["Sent"]))
    with pytest.raises(ConfigError, match="'Nope' is not a ConnectWise billing status"):
        scope(Filters(billing_statuses=["Nope"]))


def test_local_scope_rule_agrees_with_the_server_conditions() -> None:
    f = Filters(from_date=date(2026, 2, 1), location_ids=[1], department_ids=[10, 11], invoice_types=["Standard"],
                exclude_companies=["internal"])
    s = scope(f)
    pred = compile_conditions(discover.scope_conditions(s))
    samples = [raw_invoice(1), raw_invoice(2, status=2), raw_invoice(3, day="2026-01-31"), raw_invoice(4, location=2),
               raw_invoice(5, department=11), raw_invoice(6, kind="CreditMemo"), raw_invoice(7, company="INTERNAL"),
               raw_invoice(8, status=4, day="2026-02-01")]
    assert [discover.raw_in_scope(r, s) for r in samples] == [bool(pred(r)) for r in samples]
    assert [r["id"] for r in samples if discover.raw_in_scope(r, s)] == [1, 5, 8]


def test_full_refresh_stores_in_scope_invoices_with_lines_within_call_budget(store: Store) -> None:
    invs = [raw_invoice(i, status=3 if i % 5 else 2, total=f"{i}.25") for i in range(1, 3001)]
    cw = FakeCW(invs, unposted={i for i in range(1, 3001) if i % 3})
    result = discover.refresh(cw, store, Filters(), clock=ManualClock())
    in_scope = [i for i in range(1, 3001) if i % 5]
    assert result.full and result.fetched == len(in_scope) == result.in_scope
    assert result.unposted == len([i for i in in_scope if i % 3])
    assert result.cw_calls == cw.calls
    assert result.cw_calls / result.fetched <= 0.05
    rows = cache.unsynced(store, limit=None)
    assert {r.cw_id for r in rows} == {i for i in in_scope if i % 3}
    inv = cache.get(store, 4)
    assert inv.total == Decimal("4.25") and inv.status_name == "Closed" and len(inv.lines) == 1
    assert store.get_meta(discover.WATERMARK) == "2026-03-02T00:00:00Z"


def test_incremental_refresh_reads_only_changes_and_notices_reopen_and_outside_batching(store: Store) -> None:
    cw = FakeCW([raw_invoice(i, updated=f"2026-03-02T00:00:{i:02d}Z") for i in range(1, 11)])
    discover.refresh(cw, store, Filters(), clock=ManualClock())
    assert len(cache.unsynced(store)) == 10
    cw.invoices[2] = raw_invoice(2, status=1, updated="2026-03-05T00:00:00Z")  # re-opened in CW
    cw.invoices[3] = raw_invoice(3, total="333.00", updated="2026-03-05T00:00:00Z")  # edited
    cw.invoices[11] = raw_invoice(11, updated="2026-03-06T00:00:00Z")  # newly closed
    cw.unposted.discard(4)  # batched by another tool; lastUpdated unchanged
    cw.unposted.add(11)
    cw.line_requests.clear()
    result = discover.refresh(cw, store, Filters(), clock=ManualClock())
    assert not result.full
    assert cw.queries[-1] == "_info/lastUpdated>=[2026-03-02T00:00:10Z]"
    assert sorted(cw.line_requests) == [3, 10, 11]  # changed (and the watermark's own second), not all
    assert result.removed == 1
    assert {r.cw_id for r in cache.unsynced(store)} == {1, 3, 5, 6, 7, 8, 9, 10, 11}
    assert cache.get(store, 3).total == Decimal("333.00")
    assert store.get_meta(discover.WATERMARK) == "2026-03-06T00:00:00Z"


def test_changed_filters_force_a_full_refresh_that_retires_unmatched(store: Store) -> None:
    cw = FakeCW([raw_invoice(i, location=1 if i <= 5 else 2) for i in range(1, 11)])
    discover.refresh(cw, store, Filters(), clock=ManualClock())
    result = discover.refresh(cw, store, Filters(location_ids=[2]), clock=ManualClock())
    assert result.full and result.removed == 5 and result.in_scope == 5
    assert "locationId in (2)" in (cw.queries[-1] or "")
    assert {r.cw_id for r in cache.unsynced(store)} == {6, 7, 8, 9, 10}


def test_interrupted_full_refresh_resumes_where_it_stopped(store: Store) -> None:
    cw = FakeCW([raw_invoice(i) for i in range(1, 2501)])
    discover.refresh(cw, store, Filters(), clock=ManualClock())
    del cw.invoices[2]  # gone from scope: must be retired by the next full refresh, even across a crash
    cw.fail_on_page = 2
    with pytest.raises(RemoteError):
        discover.refresh(cw, store, Filters(), full=True, clock=ManualClock())
    assert store.get_meta(discover.FULL_CURSOR) == "1001"
    assert store.get_meta(discover.WATERMARK) == "2026-03-02T00:00:00Z"  # unchanged until success
    assert cache.find(store, 2).in_scope  # not retired by a half-finished run
    cw.fail_on_page = None
    cw.line_requests.clear()
    result = discover.refresh(cw, store, Filters(), clock=ManualClock())  # plain refresh resumes
    assert result.full and result.resumed
    assert "(id>1001)" in (cw.queries[-1] or "")
    assert min(cw.line_requests) == 1002  # the first page was not read again
    assert result.removed == 1
    assert store.get_meta(discover.FULL_CURSOR) is None
    assert len(cache.unsynced(store)) == 2499


def test_progress_reports_growing_counts(store: Store) -> None:
    cw = FakeCW([raw_invoice(i) for i in range(1, 2101)])
    seen: list[tuple[int, int | None]] = []
    discover.refresh(cw, store, Filters(), clock=ManualClock(), progress=lambda d, t: seen.append((d, t)))
    assert [d for d, _ in seen] == [0, 1000, 2000, 2100]


def test_against_the_sandbox_simulator_through_the_real_client(store: Store) -> None:
    import httpx

    from cwqbo.connectwise.client import CWClient
    from cwqbo.sandbox import server as sv

    clock = ManualClock(start=1_800_000_000)  # after the generated invoices' lastUpdated stamps
    sb = sv.Sandbox(seed=3, invoices=60, clock=clock)
    cw = CWClient(site="127.0.0.1:9", company_id=sv.CW_COMPANY, public_key=sv.CW_PUBLIC_KEY,
                  private_key=sv.CW_PRIVATE_KEY, client_id=sv.CW_CLIENT_ID, codebase=sv.CW_CODEBASE,
                  scheme="http", clock=clock, client=httpx.Client(transport=sb.transport()))
    result = discover.refresh(cw, store, Filters(), clock=clock)
    closed_ids = {s["id"] for s in sb.cw.to_state()["billing_statuses"] if s["closedFlag"]}
    closed = {r["id"] for r in sb.cw.invoices() if r["status"]["id"] in closed_ids}
    expected = closed & set(sb.cw.unposted_ids())
    assert result.in_scope == len(closed) and closed
    assert {r.cw_id for r in cache.unsynced(store)} == expected
    for row in cache.unsynced(store):  # every cent as CW has it
        assert row.total == Decimal(str(sb.cw.invoice(row.cw_id)["total"]))

    victim = min(expected)
    sb.cw.reopen_invoice(victim)
    clock.advance(60)
    again = discover.refresh(cw, store, Filters(), clock=clock)
    assert not again.full and again.removed == 1
    assert victim not in {r.cw_id for r in cache.unsynced(store)}
    assert again.cw_calls <= 8


def test_an_unreadable_invoice_is_skipped_and_reported_not_fatal(store: Store) -> None:
    bad = raw_invoice(2)
    del bad["company"]
    cw = FakeCW([raw_invoice(1), bad, raw_invoice(3)])
    result = discover.refresh(cw, store, Filters(), clock=ManualClock())
    assert result.in_scope == 2 and len(result.problems) == 1
    assert "INV2" in result.problems[0] and "no company" in result.problems[0]
    assert {r.cw_id for r in cache.unsynced(store)} == {1, 3}
