"""Issue 11: `history show RUN` on a big run pages in SQL (--limit/--offset/--page/--failed) instead of printing
every invoice, and history tables stay readable at 80 columns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwqbo.state import history
from cwqbo.state import ledger
from cwqbo.state import runs
from cwqbo.cli import render
from cwqbo.cli.main import app
from cwqbo.settings.config import Paths
from cwqbo.context import AppContext
from cwqbo.state.runs import Item

RUN_SIZE = 3000
LONG_REASON = ("QBO error 6000: a business validation error occurred while processing this request; the item "
               "'Managed Services - Premium Tier (per seat, billed monthly)' is inactive")


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """stdout is a pipe of 80 columns (rich's default for a pipe), with fresh consoles."""
    monkeypatch.setenv("COLUMNS", "80")
    for name in ("out", "err"):
        render.__dict__.pop(name, None)
    yield
    for name in ("out", "err"):
        render.__dict__.pop(name, None)


@pytest.fixture
def big_run(home: Path) -> int:
    store = AppContext.load(Paths.from_env()).open_store()
    run = runs.start_run(store, trigger="scheduled", dry_run=False, user="cron", host="srv", pid=7,
                           now="2026-11-02T06:00:00Z")
    items = [Item(10_000 + n, f"INV-2026-{n:06d}", "failed" if n % 100 == 7 else "created", "Invoice",
                  None if n % 100 == 7 else str(n), Decimal("1234567.89"), None if n % 100 == 7 else
                  Decimal("1234567.89"), f"tid-{n}", LONG_REASON if n % 100 == 7 else None) for n in range(RUN_SIZE)]
    runs.record_items(store, run, items, now="2026-11-02T06:01:00Z")
    runs.finish_run(store, run, status="partial", selected=RUN_SIZE, created=RUN_SIZE - RUN_SIZE // 100,
                      failed=RUN_SIZE // 100, skipped=0, batch_identifier="cwqbo-2026-11-02-001", qbo_calls=1,
                      cw_calls=1, duration_ms=1000)
    store.close()
    return run


def invoices_in(out: str) -> list[str]:
    return re.findall(r"^(INV-2026-\d{6})\s", out, flags=re.M)


def test_show_pages_a_big_run(runner: CliRunner, big_run: int) -> None:
    result = runner.invoke(app, ["history", "show", str(big_run)])
    assert result.exit_code == 0, result.stderr
    shown = invoices_in(result.stdout)
    assert shown == [f"INV-2026-{n:06d}" for n in range(50)]
    assert f"Invoices 1–50 of {RUN_SIZE}" in result.stdout
    assert f"{RUN_SIZE - 50} more invoices: --offset 50 or --page 2" in result.stdout
    assert len(result.stdout) < 20_000

    page3 = runner.invoke(app, ["history", "show", str(big_run), "--page", "3", "--limit", "20"])
    assert invoices_in(page3.stdout) == [f"INV-2026-{n:06d}" for n in range(40, 60)]
    tail = runner.invoke(app, ["history", "show", str(big_run), "--offset", str(RUN_SIZE - 5)])
    assert len(invoices_in(tail.stdout)) == 5 and "more invoices" not in tail.stdout


def test_show_failed_only(runner: CliRunner, big_run: int) -> None:
    result = runner.invoke(app, ["history", "show", str(big_run), "--failed", "--limit", "10"])
    assert result.exit_code == 0, result.stderr
    assert invoices_in(result.stdout) == [f"INV-2026-{n:06d}" for n in range(7, 1000, 100)]
    assert f"Failed invoices 1–10 of {RUN_SIZE // 100}" in result.stdout
    assert f"{RUN_SIZE // 100 - 10} more failed invoices" in result.stdout
    doc = json.loads(runner.invoke(app, ["history", "show", str(big_run), "--failed", "--json"]).stdout)
    assert doc["data"]["page"] == {"total": RUN_SIZE // 100, "offset": 0, "limit": 50, "returned": RUN_SIZE // 100,
                                   "remaining": 0, "failed_only": True}
    assert {i["outcome"] for i in doc["data"]["items"]} == {"failed"}


def test_json_pages_too_and_limit_0_is_everything(runner: CliRunner, big_run: int) -> None:
    doc = json.loads(runner.invoke(app, ["history", "show", str(big_run), "--json", "--offset", "100"]).stdout)
    assert len(doc["data"]["items"]) == 50 and doc["data"]["items"][0]["invoice_number"] == "INV-2026-000100"
    assert doc["data"]["page"]["remaining"] == RUN_SIZE - 150
    everything = json.loads(runner.invoke(app, ["history", "show", str(big_run), "--json", "--limit", "0"]).stdout)
    assert len(everything["data"]["items"]) == RUN_SIZE


def test_paging_is_done_in_sql(big_run: int, home: Path) -> None:
    store = AppContext.load(Paths.from_env()).open_store()
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    page = history.run_page(store, big_run, limit=25, offset=2000)
    store.close()
    assert page.total == RUN_SIZE and len(page.items) == 25 and page.remaining == RUN_SIZE - 2025
    selects = [s for s in seen if "from run_items" in s.lower()]
    assert any("limit 25 offset 2000" in s.lower() for s in selects), selects
    assert any("count(*)" in s.lower() for s in selects), selects


def test_show_and_history_are_readable_at_80_columns(runner: CliRunner, big_run: int, narrow: None) -> None:
    out = runner.invoke(app, ["history", "show", str(big_run), "--failed", "--limit", "3"]).stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "1,234,567.89" in out and not re.search(r"\S…", out)
    assert invoices_in(out) == ["INV-2026-000007", "INV-2026-000107", "INV-2026-000207"]
    # the reason is under the table, whole (wrapped, not cut)
    assert " ".join(out.split()).count(" ".join(LONG_REASON.split())) == 3
    runs = runner.invoke(app, ["history"]).stdout
    assert max(len(line) for line in runs.splitlines()) <= 80 and not re.search(r"\S…", runs)
    assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d", runs) and "cwqbo-2026-11-02-001" in runs
