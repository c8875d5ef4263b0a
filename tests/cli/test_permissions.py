from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwqbo import http
from cwqbo.cli.main import app

CW_ARGS = ["connect", "connectwise", "--site", "127.0.0.1:8999", "--scheme", "http", "--company", "cwqbo_demo",
           "--public-key", "sandbox-public", "--client-id", "00000000-0000-4000-8000-00000000c1d0",
           "--private-key", "sandbox-private"]
TIME_FIX = "Security Roles › Time & Expense › Time Entry › Inquire Level: All"


@pytest.fixture
def sandbox(home: Path, runner: CliRunner) -> Iterator[object]:
    from cwqbo.sandbox.server import Sandbox

    sb = Sandbox(invoices=2)
    http.set_transport_override(sb.transport())
    assert runner.invoke(app, CW_ARGS).exit_code == 0
    yield sb


def test_all_rights_present(sandbox: object, runner: CliRunner) -> None:
    result = runner.invoke(app, ["check-permissions"])
    assert result.exit_code == 0, result.output
    assert "Time Entry" in result.stdout and "MISSING" not in result.stdout


def test_missing_right_shows_exact_fix_and_exits_3(sandbox: object, runner: CliRunner) -> None:
    sandbox.cw.set_permission("Time Entry", "None")  # type: ignore[attr-defined]
    result = runner.invoke(app, ["check-permissions"])
    assert result.exit_code == 3
    assert "MISSING" in result.stdout and TIME_FIX in result.stdout


def test_json_lists_failed_areas(sandbox: object, runner: CliRunner) -> None:
    sandbox.cw.set_permission("Time Entry", "None")  # type: ignore[attr-defined]
    result = runner.invoke(app, ["check-permissions", "--json"])
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["command"] == "check-permissions" and doc["exit_code"] == 3
    assert [e["fix"] for e in doc["errors"]] == [TIME_FIX]
    assert any(p["area"].endswith("Time Entry") and p["ok"] is False for p in doc["data"]["probes"])


def test_not_connected_is_exit_3_with_hint(home: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["check-permissions"])
    assert result.exit_code == 3
    assert "connect connectwise" in result.stderr
