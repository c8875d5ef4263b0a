"""`cwqbo history` as a user runs it: tables, JSON envelopes, empty states, --failed, --invoice, show RUN."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwqbo.state import ledger

from cwqbo.state import runs
from cwqbo.cli import render
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
    r1 = runs.start_run(store, trigger="all", dry_run=False, user="ana", host="office-pc", pid=1,
                          now="2026-11-01T10:00:00Z")
    record_intent(store, 101, "INV-101", "Invoice", "rid-101", "ph", "ch", Decimal("1234.56"), r1)
    ledger.mark_created(store, 101, qbo_id="55", sync_token="0", qbo_total=Decimal("1234.56"), tid="tid-aaa")
    record_item(store, r1, 101, "INV-101", "created", entity="Invoice", qbo_id="55",
                       cw_total=Decimal("1234.56"), qbo_total=Decimal("1234.56"), tid="tid-aaa")
    ledger.record_batch_pending(store, "cwqbo-2026-11-01-001", [101], r1)
    ledger.mark_batch_created(store, "cwqbo-2026-11-01-001", 9001)
    runs.finish_run(store, r1, status="ok", selected=1, created=1, failed=0, skipped=0,
                      batch_identifier="cwqbo-2026-11-01-001", qbo_calls=4, cw_calls=6, duration_ms=2300)
    r2 = runs.start_run(store, trigger="scheduled", dry_run=False, user="cron", host="srv", pid=2,
                          now="2026-11-02T06:00:00Z")
    record_intent(store, 102, "INV-102", "CreditMemo", "rid-102", "ph", "ch", Decimal("-20.00"), r2)
    ledger.mark_failed(store, 102, error="QBO error 6000: the item is inactive", tid="tid-bbb")
    record_item(store, r2, 102, "INV-102", "failed", entity="CreditMemo", cw_total=Decimal("-20.00"),
                       tid="tid-bbb", error="QBO error 6000: the item is inactive")
    runs.finish_run(store, r2, status="partial", selected=1, created=0, failed=1, skipped=0,
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


# -- payments brought back from QuickBooks -----------------------------------------------------------------------

@pytest.fixture
def paid(filled: dict[str, int], home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """After `filled`: INV-101 (1,234.56) paid in full, INV-103 (100.00) paid in part, a payment across INV-103 and
    INV-104 of which ConnectWise refuses the INV-104 line, and on INV-103 a payment voided after it was posted."""
    from tests.unit.payments_fake import FakeRemote
    from cwqbo.settings.prefs import Prefs
    from cwqbo.sync.payments import run_payments
    from cwqbo.sync.payments_model import PaymentDeps, PaymentOptions

    monkeypatch.setenv("COLUMNS", "80")  # a pipe of 80 columns, with fresh consoles
    for name in ("out", "err"):
        monkeypatch.delitem(vars(render), name, raising=False)
    store = open_store(home)
    remote = FakeRemote()
    for cw_id, qbo_id, total in ((103, "60", "100.00"), (104, "61", "75.00")):
        record_intent(store, cw_id, f"INV-{cw_id}", "Invoice", f"rid-{cw_id}", "ph", "ch", Decimal(total), None)
        ledger.mark_created(store, cw_id, qbo_id=qbo_id, sync_token="0", qbo_total=Decimal(total), tid=None)
        remote.cw_totals[cw_id] = remote.qbo_totals[("Invoice", qbo_id)] = Decimal(total)
    remote.cw_totals[101] = remote.qbo_totals[("Invoice", "55")] = Decimal("1234.56")
    remote.cw_totals[104] = Decimal("10.00")  # ConnectWise refuses 75.00 on it
    remote.receive("901", [("Invoice", "55", "1234.56")], day="2026-11-20", method="Check")
    remote.receive("902", [("Invoice", "60", "40.00")], day="2026-11-21")
    remote.receive("903", [("Invoice", "60", "25.00"), ("Invoice", "61", "75.00")], day="2026-11-22")
    deps = PaymentDeps(store=store, remote=remote, prefs=Prefs())
    first = run_payments(deps, PaymentOptions())
    remote.void("902")
    second = run_payments(deps, PaymentOptions())
    store.close()
    assert first.run_id is not None and second.run_id is not None
    return {"first": first.run_id, "second": second.run_id}


def _fits(out: str, title: str) -> bool:
    """The table titled `title` and everything under it (reasons wrap to the terminal) fit 80 columns."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    return all(len(line) <= 80 for line in lines[start:])


def test_invoice_story_shows_the_payment_that_paid_it(runner: CliRunner, paid: dict[str, int]) -> None:
    code, out, _ = run(runner, "history", "--invoice", "INV-101")
    assert code == 0 and _fits(out, "Payments brought back"), out
    assert "batched" in out and "cwqbo-2026-11-01-001" in out  # created and batched, as before
    assert "Paid: 1,234.56 of 1,234.56" in out and "paid in full" in out
    row = next(line for line in out.splitlines() if line.startswith("901"))
    assert row.split() == ["901", "1001", "2026-11-20", "1,234.56", "Other", "posted", str(paid["first"])]


def test_invoice_story_shows_partial_reversed_and_failed_payments(runner: CliRunner, paid: dict[str, int]) -> None:
    code, out, _ = run(runner, "history", "--invoice", "INV-103")
    assert code == 0 and _fits(out, "Payments brought back"), out
    assert "Paid: 25.00 of 100.00" in out and "paid in full" not in out
    states = {line.split()[0]: line.split()[5] for line in out.splitlines() if line[:3] in ("902", "903")}
    assert states == {"902": "reversed", "903": "posted"}
    assert "QBO 902  voided in QuickBooks" in out
    code, out, _ = run(runner, "history", "--invoice", "INV-104")
    assert code == 0 and "Paid: 0.00 of 75.00" in out
    assert "failed" in out and "refused the payment of 75.00" in " ".join(out.split())  # reasons wrap


def test_invoice_story_json_carries_the_payments(runner: CliRunner, paid: dict[str, int]) -> None:
    doc = json.loads(run(runner, "history", "--invoice", "103", "--json")[1])
    assert doc["status"] == "ok" and doc["exit_code"] == 0
    story = doc["data"]["invoice"]
    got = [(p["qbo_payment_id"], p["cw_payment_id"] is not None, p["amount"], p["payment_date"], p["type"],
            p["state"], p["reason"]) for p in story["payments"]]
    assert got == [("902", True, "40.00", "2026-11-21", "Other", "reversed", "voided in QuickBooks"),
                   ("903", True, "25.00", "2026-11-22", "Other", "posted", None)]
    assert [(e["qbo_payment_id"], e["outcome"], e["run_id"]) for e in story["payment_events"]] == [
        ("902", "posted", paid["first"]), ("903", "posted", paid["first"]), ("902", "reversed", paid["second"])]
    [failed] = json.loads(run(runner, "history", "--invoice", "INV-104", "--json")[1])["data"]["invoice"]["payments"]
    assert failed["state"] == "failed" and failed["cw_payment_id"] is None and "refused" in failed["reason"]


def test_show_a_payments_run(runner: CliRunner, paid: dict[str, int]) -> None:
    code, out, _ = run(runner, "history", "show", str(paid["first"]))
    assert code == 0 and _fits(out, "Payments 1–4 of 4"), out
    assert "— payments by" in out and "Payments 1–4 of 4" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("INV-")]
    assert [(r[0], r[1], r[2]) for r in rows] == [("INV-101", "posted", "901"), ("INV-103", "posted", "902"),
                                                  ("INV-103", "posted", "903"), ("INV-104", "failed", "903")]
    assert "Reasons:" in out and "refused" in out
    code, out, _ = run(runner, "history", "show", str(paid["second"]))
    assert code == 0 and "reversed" in out and "voided in QuickBooks" in out


def test_show_a_payments_run_pages_and_filters(runner: CliRunner, paid: dict[str, int]) -> None:
    code, out, _ = run(runner, "history", "show", str(paid["first"]), "--limit", "2", "--page", "2")
    assert code == 0 and "Payments 3–4 of 4" in out and "INV-101" not in out
    code, out, _ = run(runner, "history", "show", str(paid["first"]), "--limit", "3")
    assert "… 1 more payments: --offset 3 or --page 2" in out
    code, out, _ = run(runner, "history", "show", str(paid["first"]), "--failed")
    assert "Failed payments 1–1 of 1" in out and "INV-101" not in out and "INV-104" in out
    doc = json.loads(run(runner, "history", "show", str(paid["first"]), "--json", "--limit", "1", "--offset", "3")[1])
    data = doc["data"]
    assert data["kind"] == "payments" and data["run"]["trigger"] == "payments"
    assert data["page"] == {"total": 4, "offset": 3, "limit": 1, "returned": 1, "remaining": 0,
                            "failed_only": False}
    [e] = data["payments"]
    assert (e["invoice_number"], e["qbo_payment_id"], e["outcome"], e["amount"], e["cw_payment_id"]) == (
        "INV-104", "903", "failed", "75.00", None)
    assert "refused" in e["error"]


def test_failed_history_names_failed_payments(runner: CliRunner, paid: dict[str, int]) -> None:
    doc = json.loads(run(runner, "history", "--failed", "--json")[1])
    kinds = {(a["kind"], a["invoice_number"]) for a in doc["data"]["attention"]}
    assert ("payment-failed", "INV-104") in kinds
