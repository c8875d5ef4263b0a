"""`cwqbo check-permissions` and the payments rights: always checked, failing the command only when payments are on
(`payments.enabled`), otherwise marked "payments only"; each failing row gives the exact security-role fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cwqbo import http
from cwqbo.cli.main import app
from tests.cli.test_permissions import CW_ARGS

DELETE_FIX = "Security Roles › Finance › Invoicing › Delete Level: All"
DELETE_AREA = "Finance › Invoicing (payments: delete)"


@pytest.fixture
def sandbox(home: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from cwqbo.sandbox.server import Sandbox

    monkeypatch.setenv("COLUMNS", "200")
    sb = Sandbox(invoices=2)
    http.set_transport_override(sb.transport())
    assert runner.invoke(app, CW_ARGS).exit_code == 0
    yield sb


def _row(out: str, area: str) -> str:
    """The status the table shows for an area."""
    return next(line for line in out.splitlines() if line.startswith(area)).removeprefix(area).strip()


def test_payments_rights_are_listed_and_ok_on_a_full_role(sandbox: Any, runner: CliRunner) -> None:
    result = runner.invoke(app, ["check-permissions"])
    assert result.exit_code == 0, result.output
    for kind in ("read", "add", "delete"):
        assert _row(result.stdout, f"Finance › Invoicing (payments: {kind})") == "ok"
    notes = result.stdout.partition("What to change:")[2]  # QuickBooks is not connected here: it has a note
    assert "(payments:" not in notes


def test_a_missing_payments_right_is_marked_payments_only_while_payments_are_off(sandbox: Any,
                                                                                  runner: CliRunner) -> None:
    sandbox.cw.set_permission("Invoicing", "None", kind="delete")
    result = runner.invoke(app, ["check-permissions"])
    assert result.exit_code == 0, result.output
    assert _row(result.stdout, DELETE_AREA) == "payments only" and "MISSING" not in result.stdout
    assert f"{DELETE_AREA}  Delete Level is None (reverse voided or deleted payments) — fix: {DELETE_FIX}" in (
        result.stdout)
    assert "needed only to bring payments back" in result.stderr
    doc = json.loads(runner.invoke(app, ["check-permissions", "--json"]).stdout)
    assert doc["status"] == "ok" and doc["exit_code"] == 0 and doc["errors"] == []
    [probe] = [p for p in doc["data"]["probes"] if p["area"] == DELETE_AREA]
    assert probe["ok"] is False and probe["required"] is False and probe["needed_for"] == "payments"


def test_with_payments_on_a_missing_payments_right_fails_with_the_exact_fix(sandbox: Any, runner: CliRunner) -> None:
    assert runner.invoke(app, ["prefs", "set", "payments.enabled", "true"]).exit_code == 0
    sandbox.cw.set_permission("Invoicing", "None", kind="delete")
    result = runner.invoke(app, ["check-permissions"])
    assert result.exit_code == 3
    assert _row(result.stdout, DELETE_AREA) == "MISSING" and f"— fix: {DELETE_FIX}" in result.stdout
    doc = json.loads(runner.invoke(app, ["check-permissions", "--json"]).stdout)
    assert doc["status"] == "error" and doc["exit_code"] == 3 and doc["data"]["payments_enabled"] is True
    assert [(e["area"], e["fix"]) for e in doc["errors"]] == [(DELETE_AREA, DELETE_FIX)]


def test_the_fix_stays_readable_at_80_columns(sandbox: Any, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from cwqbo.cli import render

    monkeypatch.setenv("COLUMNS", "80")
    for name in ("out", "err"):
        monkeypatch.delitem(vars(render), name, raising=False)
    sandbox.cw.set_permission("Invoicing", "None", kind="add")
    out = runner.invoke(app, ["check-permissions"]).stdout
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert _row(out, "Finance › Invoicing (payments: add)") == "payments only"
    assert "fix: Security Roles › Finance › Invoicing › Add Level: All" in " ".join(out.split())
