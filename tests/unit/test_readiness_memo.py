"""The readiness memo filled while a refresh stores its pages, and the listing that reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cwqbo.settings.prefs import FieldMappings, PaymentsPrefs, Prefs
from cwqbo.state import cache
from cwqbo.state.store import Store
from cwqbo.sync.readiness import listing_json, memoise_pages, readiness
from tests.unit.test_cache import ledger, make_invoice

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "cwqbo-default.db")
    yield s
    s.close()


def memo_ids(store: Store) -> list[int]:
    return [r[0] for r in store.db.execute("SELECT cw_id FROM readiness ORDER BY cw_id")]


def test_a_stored_page_is_judged_once_and_the_listing_reuses_it(store: Store, judged: list[int]) -> None:
    """Only unsynced invoices are judged; a document kept for review is judged but never memoised (its verdict
    depends on the ledger); a page stored again is not judged again; the listing judges only what has no memo."""
    prefs = Prefs()
    page = cache.upsert_invoices(store, [make_invoice(i) for i in (1, 2, 3, 4)], unposted_ids={1, 2, 3, 4},
                                 fetched_at="t")
    ledger(store, 2, "created")  # already in QuickBooks: not listed, not judged
    store.db["ledger"].insert({"cw_id": 3, "state": "failed", "qbo_id": "7", "error": "kept: totals differ"})
    hook = memoise_pages(store, prefs)
    hook(page)
    assert judged == [1, 3, 4] and memo_ids(store) == [1, 4]
    judged.clear()
    hook(page)
    assert judged == [3]
    judged.clear()
    items = [json.loads(text) for text in listing_json(store, prefs)]
    assert judged == [3]
    assert [(i["cw_id"], i["mapping_status"]) for i in items] == [(1, "ready"), (3, "kept for review"), (4, "ready")]


def test_a_page_that_cannot_be_judged_never_fails_the_refresh(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(inv: Any, prefs: Prefs, **kw: Any) -> Any:
        raise TypeError("a bug in mapping")

    page = cache.upsert_invoices(store, [make_invoice(1)], unposted_ids={1}, fetched_at="t")
    monkeypatch.setattr("cwqbo.sync.readiness.judge", broken)
    memoise_pages(store, Prefs())(page)  # no exception: the listing judges it (and shows the error) instead
    assert memo_ids(store) == []


def test_a_verdict_written_into_sqlites_item_says_exactly_what_readiness_says(store: Store) -> None:
    """Quotes, backslashes and non-ASCII in a reason survive being spliced into the item SQLite built."""
    odd = make_invoice(1, number='Ñ"\\' + "Ü" * 20, day=0)
    cache.upsert_invoices(store, [odd, make_invoice(2)], unposted_ids={1, 2}, fetched_at="t")
    items = [json.loads(text) for text in listing_json(store, Prefs())]
    expected = readiness(store, cache.unsynced(store), Prefs())
    assert [(i["mapping_status"], i["reason"]) for i in items] == expected
    assert items[0]["reason"].startswith('invoice number Ñ"\\ÜÜ') and items[1]["mapping_status"] == "ready"


def test_changing_when_sync_runs_or_payments_keeps_the_memo_and_a_mapping_change_does_not(
        store: Store, judged: list[int]) -> None:
    """A verdict is reused across prefs that mapping never reads (mode, schedule, payments) and judged again when a
    pref it reads changes."""
    cache.upsert_invoices(store, [make_invoice(1), make_invoice(2)], unposted_ids={1, 2}, fetched_at="t")
    list(listing_json(store, Prefs()))
    assert judged == [1, 2]
    judged.clear()
    other_run = Prefs(sync_mode="automatic", schedule="0 7 * * 1", payments=PaymentsPrefs(enabled=True))
    list(listing_json(store, other_run))
    assert judged == []
    other_mapping = Prefs(fields=FieldMappings(docnumber_prefix="CW-"))
    list(listing_json(store, other_mapping))
    assert judged == [1, 2]


def test_mapping_reads_none_of_the_prefs_the_memo_leaves_out() -> None:
    """The memo's basis leaves out sync mode, schedule and payments; that holds only while mapping never reads them."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "cwqbo" / "mapping").glob("*.py"))
    read = set(re.findall(r"prefs\.([a-z_]+)", source))
    assert read and not read & {"sync_mode", "schedule", "payments"}
