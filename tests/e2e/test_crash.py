"""Exactly-once under SIGKILL: kill `cwqbo sync --all` at every crash point, re-run, and audit both sides.

The sandbox lives in this test process, so after the kill we see exactly what QuickBooks and ConnectWise hold;
re-running sync (as cron would) must leave every Closed invoice in QBO once, with CW's total, batched once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import KILLED, E2E, make_e2e

pytestmark = pytest.mark.e2e

INVOICES = 125  # ≥ 100 closed, unsynced invoices: four QBO batch chunks of 30

# (crash spec, expire access tokens first so the run must refresh)
KILL_POINTS = [
    ("sync.after_intent", False),
    ("sync.after_intent:2", False),
    ("qbo.after_write_response", False),
    ("qbo.after_write_response:3", False),
    ("sync.after_qbo_response", False),
    ("sync.after_qbo_response:3", False),
    ("sync.before_ledger_write", False),
    ("sync.before_ledger_write:2", False),
    ("sync.before_cw_batch", False),
    ("sync.after_cw_batch", False),
    ("oauth.after_refresh_response", True),
    ("oauth.after_refresh_saved", True),
]


@pytest.fixture
def e2e(home: Path) -> Iterator[E2E]:
    yield from make_e2e(home, invoices=INVOICES, seed=11)


def test_the_crash_matrix_has_at_least_100_invoices_to_sync(e2e: E2E) -> None:
    assert len(e2e.expected) >= 100


@pytest.mark.parametrize(("crash_at", "expire_first"), KILL_POINTS, ids=[k for k, _ in KILL_POINTS])
def test_killed_sync_then_rerun_is_exactly_once(e2e: E2E, crash_at: str, expire_first: bool) -> None:
    if expire_first:
        e2e.expire_access_tokens()  # the first QBO call gets 401 → refresh → the oauth crash points
        before = e2e.tokens()["refresh_token"]
    crashed = e2e.run_cli("sync", "--all", env={"CWQBO_CRASH_AT": crash_at})
    assert crashed.returncode == KILLED, f"{crash_at} never fired (exit {crashed.returncode}): {crashed.stderr}"
    if crash_at.startswith("sync.before_cw_batch") or crash_at.startswith("sync.after_cw_batch"):
        assert len(e2e.doc_counts()) == len(e2e.expected), "every document was in QBO before the batch step"
    if crash_at == "oauth.after_refresh_saved":
        assert e2e.tokens()["refresh_token"] != before, "the rotated refresh token was saved before use"

    final = e2e.sync_until_done()
    assert final.returncode == 1, final.stderr  # the seeded 30-character invoice number fails, alone
    assert "Traceback" not in final.stderr

    e2e.assert_exactly_once()
    e2e.assert_ledger_settled()
    e2e.assert_cli_accounts_for_everything()


def test_rerun_after_recovery_creates_nothing(e2e: E2E) -> None:
    assert e2e.run_cli("sync", "--all", env={"CWQBO_CRASH_AT": "sync.after_qbo_response:2"}).returncode == KILLED
    e2e.sync_until_done()
    again = e2e.run_cli("sync", "--all", "--json")
    assert again.returncode == 1, again.stderr
    assert e2e.json_of("history")["data"]["runs"][0]["created"] == 0
    e2e.assert_exactly_once()


@pytest.mark.xfail(strict=True, reason="BUG: a SIGKILLed run's items are only written at the end of the run, so "
                   "the invoices it created appear in no run (`history show` of the interrupted run is empty and "
                   "`history --invoice N` says 'No run has touched it yet'); cwqbo/sync.py records run_items "
                   "only in _finish")
def test_history_shows_what_a_killed_run_created(e2e: E2E) -> None:
    assert e2e.run_cli("sync", "--all", env={"CWQBO_CRASH_AT": "sync.before_cw_batch"}).returncode == KILLED
    e2e.sync_until_done()
    e2e.assert_exactly_once()
    number = next(iter(e2e.expected.values()))["invoiceNumber"]
    story = e2e.invoke("history", "--invoice", number)
    assert "No run has touched it yet" not in story.stdout, story.stdout
    e2e.assert_cli_accounts_for_everything(by_run=True)
