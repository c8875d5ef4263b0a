"""`cwqbo history` as a user runs it: tables, JSON envelopes, empty states, --failed, --invoice, show RUN."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwqbo.state import ledger
from cwqbo.cli.main import app
from cwqbo.settings.config import Paths
from cwqbo.context import AppContext
from cwqbo.state.store import Store
from tests.ledger_rows import record_intent, record_item


def open_store(home: Path) -> Store:
    return AppContext.load(Paths.from_env()).open_store()


@pytest.fixture
def filled(home: Path) -> dict[str, int]:
    store = open_store(home)
    r1 = ledger.start_run(store, trigger="all", dry_run=False, user="ana", host="office-pc", pid=1,
                          now="2026-11-01T10:00:00Z")
    record_intent(store, 101, "INV-101", "Invoice", "rid-101", "ph", "ch", Decimal("1234.56"), r1)
    ledger.mark_created(store, 101, qbo_id="55", sync_token="0", qbo_total=Decimal("1234.56"), tid="tid-aaa")
    record_item(store, r1, 101, "INV-101", "created", entity="Invoice", qbo_id="55",
                       cw_total=Decimal("1234.56"), qbo_total=Decimal("1234.56"), tid="tid-aaa")
    ledger.record_batch_pending(store, "cwqbo-2026-11-01-001", [101], r1)
    ledger.mark_batch_created(store, "cwqbo-2026-11-01-001", 9001)
    ledger.finish_run(store, r1, status="ok", selected=1, created=1, failed=0, skipped=0,
                      batch_identifier="cwqbo-2026-11-01-001", qbo_calls=4, cw_calls=6, duration_ms=2300)
    r2 = ledger.start_run(store, trigger="scheduled", dry_run=False, user="cron", host="srv", pid=2,
                          now="2026-11-02T06:00:00Z")
    record_intent(store, 102, "INV-102", "CreditMemo", "rid-102", "ph", "ch", Decimal("-20.00"), r2)
    ledger.mark_failed(store, 102, error="QBO error 6000: the item is inactive", tid="tid-bbb")
    record_item(store, r2, 102, "INV-102", "failed", entity="CreditMemo", cw_total=Decimal("-20.00"),
                       tid="tid-bbb", error="QBO error 6000: the item is inactive")
    ledger.finish_run(store, r2, status="partial", selected=1, created=0, failed=1, skipped=0,
                      batch_identifier=None, qbo_calls=2, cw_calls=2, duration_ms=125_000)
    store.close()
    return {"ok": r1, "partial": r2}


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_empty_history_is_plain(runner: CliRunner, home: Path) -> None:
    code, out, _ = run(runner, "history")
    assert code == 0 and "No sync runs yet" in out
    code, out, _ = run(runner, "history", "--failed")
    assert code == 0 and "nothing needs attention" in out
    code, out, _ = run(runner, "history", "--json")
    assert json.loads(out)["data"] == {"runs": []}


def test_history_table(runner: CliRunner, filled: dict[str, int]) -> None:
    code, out, err = run(runner, "history")
    assert code == 0, err
    assert "ana@office-pc" in out and "cron@srv" in out
    assert "cwqbo-2026-11-01-001" in out
    assert "2.3s" in out and "2m 05s" in out and "partial" in out
    assert out.index("cron@srv") < out.index("ana@office-pc")  # newest first


def test_history_json_shape(runner: CliRunner, filled: dict[str, int]) -> None:
    code, out, _ = run(runner, "history", "--json", "--limit", "1")
    doc = json.loads(out)
    assert doc["cwqbo_result_version"] == "1" and doc["command"] == "history" and doc["exit_code"] == 0
    [r] = doc["data"]["runs"]
    assert r["id"] == filled["partial"] and r["status"] == "partial" and r["failed"] == 1


def test_failed_lists_what_needs_attention(runner: CliRunner, filled: dict[str, int]) -> None:
    code, out, _ = run(runner, "history", "--failed")
    assert code == 0
    assert "Needs attention" in out and "INV-102" in out and "the item is inactive" in out
    assert "ana@office-pc" not in out  # the ok run is not listed
    doc = json.loads(run(runner, "history", "--failed", "--json")[1])
    assert [r["status"] for r in doc["data"]["runs"]] == ["partial"]
    assert [(a["kind"], a["invoice_number"]) for a in doc["data"]["attention"]] == [("failed", "INV-102")]


def test_show_run(runner: CliRunner, filled: dict[str, int]) -> None:
    code, out, _ = run(runner, "history", "show", str(filled["ok"]))
    assert code == 0 and "INV-101" in out and "Invoice 55" in out and "1,234.56" in out and "tid-aaa" in out
    doc = json.loads(run(runner, "history", "show", str(filled["partial"]), "--json")[1])
    [item] = doc["data"]["items"]
    assert item["cw_total"] == "-20.00" and item["error"].startswith("QBO error 6000")
    assert doc["data"]["run"]["trigger"] == "scheduled"


def test_show_unknown_run_is_a_clear_error(runner: CliRunner, filled: dict[str, int]) -> None:
    code, _, err = run(runner, "history", "show", "999")
    assert code == 2 and "no run 999" in err and "Traceback" not in err


def test_invoice_story(runner: CliRunner, filled: dict[str, int]) -> None:
    code, out, _ = run(runner, "history", "--invoice", "INV-101")
    assert code == 0
    assert "batched" in out and "cwqbo-2026-11-01-001" in out and "CW batch id 9001" in out and "tid-aaa" in out
    doc = json.loads(run(runner, "history", "--invoice", "102", "--json")[1])
    story = doc["data"]["invoice"]
    assert story["ledger"]["state"] == "failed" and story["ledger"]["cw_total"] == "-20.00"
    assert [i["outcome"] for i in story["items"]] == ["failed"]
    code, _, err = run(runner, "history", "--invoice", "nope")
    assert code == 2 and "no invoice 'nope'" in err
