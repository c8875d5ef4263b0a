"""Faults a real sync meets — throttling, 5xx, timeouts, lost responses, token expiry and rotation, revoked
access, missing CW rights, a failed CW batch, two syncs at once — never cost an invoice or make a duplicate.

Retry-heavy cases run the CLI in this process with a fast clock (`E2E.sync_fast`) so back-offs take
milliseconds; the others run `python -m cwqbo` as a subprocess, as cron would.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import E2E, PROFILE, make_e2e, wait_for

pytestmark = pytest.mark.e2e

QBO_API = "/v3/company"


@pytest.fixture
def e2e(home: Path) -> Iterator[E2E]:
    yield from make_e2e(home, invoices=14, seed=7)


def _ledger_states(e2e: E2E) -> dict[str, int]:
    db = sqlite3.connect(e2e.home / f"cwqbo-{PROFILE}.db")
    try:
        return dict(db.execute("select state, count(*) from ledger group by state").fetchall())
    finally:
        db.close()


def _fault_left(e2e: E2E, knob: str) -> int:
    return int(e2e.remote_state()["faults"][knob])


# -- throttling, server errors, timeouts, lost responses ---------------------------------------------------

def test_429_storm_on_quickbooks_finishes_without_duplicates(e2e: E2E) -> None:
    e2e.faults(throttle_next=10, paths=[QBO_API])
    r = e2e.sync_fast("--all")
    assert r.exit_code == 1, r.output  # only the seeded 30-character number fails
    assert _fault_left(e2e, "throttle_next") == 0, "the storm really hit the sync"
    e2e.assert_exactly_once()
    e2e.assert_ledger_settled()


def test_429s_from_connectwise_are_waited_out(e2e: E2E) -> None:
    e2e.faults(throttle_next=2, paths=["/apis/3.0/"])
    r = e2e.run_cli("sync", "--all")
    assert r.returncode == 1, r.stderr
    assert _fault_left(e2e, "throttle_next") == 0
    e2e.assert_exactly_once()


def test_5xx_burst_is_retried(e2e: E2E) -> None:
    e2e.faults(error_next=4, paths=[QBO_API])
    r = e2e.sync_fast("--all")
    assert r.exit_code == 1, r.output
    assert _fault_left(e2e, "error_next") == 0, "the 503s really hit the sync"
    e2e.assert_exactly_once()
    e2e.assert_ledger_settled()


def test_random_server_errors_on_both_services_never_duplicate(e2e: E2E) -> None:
    e2e.faults(error_rate=0.25, seed=3)  # a quarter of every CW and QBO request answers 500
    codes = []
    for _ in range(3):
        result = e2e.sync_fast("--all")
        assert "Traceback" not in result.output
        codes.append(result.exit_code)
    # some invoices may wait for a calmer run; nothing crashes; a re-run whose only failure was already reported
    # (the 30-character number) is not a new alarm: 0
    assert set(codes) <= {0, 1, 4} and codes[0] in (1, 4), codes
    e2e.clear_faults()
    e2e.sync_fast_until_done()
    e2e.assert_exactly_once()
    e2e.assert_ledger_settled()


def test_timeouts_are_retried(e2e: E2E) -> None:
    e2e.faults(timeout_next=3, timeout_seconds=0.05, paths=[QBO_API])
    r = e2e.sync_fast("--all")
    assert r.exit_code == 1, r.output
    assert _fault_left(e2e, "timeout_next") == 0
    e2e.assert_exactly_once()
    e2e.assert_ledger_settled()


def test_connection_dropped_after_quickbooks_committed_makes_no_duplicate(e2e: E2E) -> None:
    e2e.faults(drop_after_commit_next=2, paths=[QBO_API])
    r = e2e.sync_fast("--all")
    assert _fault_left(e2e, "drop_after_commit_next") == 0
    assert "Traceback" not in r.output
    e2e.sync_fast_until_done()
    e2e.assert_exactly_once()
    e2e.assert_ledger_settled()


@pytest.mark.parametrize("knobs", [
    # lookups go up to 8 at a time, so each fault must outlast 8 requests' retries, not one's
    {"throttle_next": 200, "paths": [QBO_API]},  # longer than the client's 10-minute throttle budget
    {"error_next": 120, "paths": [QBO_API]},  # more 503s in a row than 8 × the 6 attempts
    {"timeout_next": 8, "timeout_seconds": 0.01, "paths": ["/batch"]},  # every attempt of a batch write drops
], ids=["429-forever", "503-forever", "timeouts-forever"])
def test_a_fault_outlasting_the_retries_fails_cleanly_and_the_next_run_recovers(e2e: E2E,
                                                                                knobs: dict[str, object]) -> None:
    e2e.faults(**knobs)
    r = e2e.sync_fast("--all")
    assert r.exit_code == 4, r.output  # a remote problem: one line, no traceback
    assert "Traceback" not in r.output and "QuickBooks Online" in r.output
    e2e.clear_faults()
    e2e.sync_fast_until_done()
    e2e.assert_exactly_once()
    e2e.assert_ledger_settled()
    e2e.assert_cli_accounts_for_everything()


# -- tokens --------------------------------------------------------------------------------------------

def test_access_token_expired_between_runs_is_refreshed_and_rotation_saved(e2e: E2E) -> None:
    first = next(iter(e2e.expected.values()))["invoiceNumber"]
    assert e2e.run_cli("sync", "--invoice", first).returncode == 0
    before = e2e.tokens()
    e2e.expire_access_tokens()
    r = e2e.run_cli("sync", "--all")
    assert r.returncode == 1, r.stderr
    after = e2e.tokens()
    assert after["refresh_token"] != before["refresh_token"], "the rotated refresh token was saved"
    assert after["access_token"] != before["access_token"]
    e2e.assert_exactly_once()


def test_access_token_expiring_mid_run_is_refreshed(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic: the access token expires on Intuit's side right after the run's first QBO batch call."""
    from cwqbo.quickbooks.client import QBOClient

    for e2e in make_e2e(home, invoices=70, seed=8):  # three QBO chunks, so the run goes on after the first
        before = e2e.tokens()["refresh_token"]
        real, batches = QBOClient.batch, []

        def batch(self: QBOClient, items: Any, request_id: str | None = None, **kw: Any) -> Any:
            answer = real(self, items, request_id, **kw)
            batches.append(len(items))
            if len(batches) == 1:
                e2e.expire_access_tokens()  # an hour passes on Intuit's side: every access token is now dead
            return answer

        monkeypatch.setattr(QBOClient, "batch", batch)
        result = e2e.invoke("sync", "--all")
        assert result.exit_code == 1, result.output  # the seeded 30-character number fails, alone
        assert len(batches) >= 2, "the run went on after the tokens expired"
        assert e2e.tokens()["refresh_token"] != before, "a mid-run refresh happened and was saved"
        e2e.assert_exactly_once()
        e2e.assert_ledger_settled()


def test_second_process_with_the_old_refresh_token_still_works(e2e: E2E, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    shutil.copytree(e2e.home, other)  # a second machine/process that read the secrets before the rotation
    e2e.expire_access_tokens()
    assert e2e.run_cli("sync", "--all").returncode == 1
    rotated = e2e.tokens()["refresh_token"]
    assert rotated != e2e.tokens(other / "secrets.json")["refresh_token"]
    twin = E2E(other, e2e.sandbox, e2e.url, e2e.expected, e2e.must_fail)
    status = twin.run_cli("connect", "--status")
    assert status.returncode == 0, status.stderr
    e2e.expire_access_tokens()
    r = twin.run_cli("sync", "--all")  # refreshes with the superseded token: inside Intuit's grace period
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    e2e.assert_exactly_once()  # the copy's empty ledger adopted QBO's documents instead of duplicating them


def test_revoked_connection_exits_3_and_says_to_reconnect(e2e: E2E) -> None:
    e2e.revoke_refresh_token()
    e2e.expire_access_tokens()
    r = e2e.run_cli("sync", "--all")
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "cwqbo connect quickbooks" in r.stderr and "Traceback" not in r.stderr
    assert e2e.docs() == []


# -- ConnectWise rights and the accounting batch -------------------------------------------------------

def test_no_right_to_time_entries_exits_3_and_points_to_check_permissions(e2e: E2E) -> None:
    e2e.control("cw/permission", {"area": "Time Entry", "level": "None"})
    r = e2e.run_cli("sync", "--all")
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "check-permissions" in r.stderr and "Traceback" not in r.stderr
    assert e2e.docs() == []


def test_failed_cw_batch_leaves_invoices_in_qbo_unbatched_then_next_run_batches(e2e: E2E) -> None:
    e2e.control("cw/permission", {"area": "Accounting Interface", "level": "None", "kind": "add"})
    r = e2e.run_cli("sync", "--all", "--json")
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)["data"]
    assert data["batch_identifier"] is None and "not created" in data["batch_error"]
    assert "check-permissions" in data["batch_error"] or "Accounting Interface" in data["batch_error"]
    assert len(e2e.doc_counts()) == len(e2e.expected) and e2e.cw_batches() == []
    assert _ledger_states(e2e).get("created") == len(e2e.expected), "in QBO, not batched"
    e2e.control("cw/permission", {"area": "Accounting Interface", "level": "All", "kind": "add"})
    again = e2e.run_cli("sync", "--all")
    assert again.returncode == 0, again.stderr  # batched now; the known 30-character failure only waits
    e2e.assert_exactly_once()
    e2e.assert_cli_accounts_for_everything()


def test_cw_batch_response_lost_after_commit_is_not_batched_twice(e2e: E2E) -> None:
    e2e.faults(drop_after_commit_next=1, paths=["/finance/accounting/batches"])
    r = e2e.run_cli("sync", "--all")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert _fault_left(e2e, "drop_after_commit_next") == 0, "the batch response really was lost"
    e2e.clear_faults()
    assert e2e.run_cli("sync", "--all").returncode == 0  # nothing new failed: the known failure waits
    e2e.assert_exactly_once()
    assert len(e2e.cw_batches()) == 1
    e2e.assert_cli_accounts_for_everything()


# -- two syncs at once ----------------------------------------------------------------------------------

def test_second_sync_while_one_runs_exits_75_and_nothing_is_duplicated(e2e: E2E) -> None:
    e2e.faults(latency_seconds=0.1, paths=[QBO_API])
    pid_file = e2e.home / "locks" / f"{PROFILE}.sync.pid"
    first = e2e.start_cli("sync", "--all")
    try:
        assert wait_for(pid_file.exists, timeout=20), "the first sync never took the lock"
        second = e2e.run_cli("sync", "--all")
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 75, (second.returncode, second.stderr)
    assert "another cwqbo sync is running" in second.stderr
    assert first.returncode == 1, err
    e2e.clear_faults()
    e2e.assert_exactly_once()
    runs = e2e.json_of("history")["data"]["runs"]
    assert len(runs) == 1, "the refused sync never started a run"
