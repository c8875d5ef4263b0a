"""`cwqbo refilter`: validate, save the filters, re-read ConnectWise in full, report what changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cwqbo import http
from cwqbo.cli.main import app
from cwqbo.settings.config import load_config

CW_ARGS = ["connect", "connectwise", "--site", "127.0.0.1:8999", "--scheme", "http", "--company", "cwqbo_demo",
           "--public-key", "sandbox-public", "--client-id", "00000000-0000-4000-8000-00000000c1d0",
           "--private-key", "sandbox-private"]


@pytest.fixture
def sandbox(home: Path, runner: CliRunner) -> Iterator[Any]:
    from cwqbo.sandbox.server import Sandbox

    sb = Sandbox(seed=5, invoices=30)
    http.set_transport_override(sb.transport())
    assert runner.invoke(app, CW_ARGS).exit_code == 0
    yield sb


def unsynced_ids(runner: CliRunner) -> set[int]:
    doc = json.loads(runner.invoke(app, ["list-unsynced", "--no-refresh", "--json"]).stdout)
    return {i["cw_id"] for i in doc["data"]["invoices"]}


def closed(sb: Any) -> list[dict[str, Any]]:
    ids = {s["id"] for s in sb.cw.to_state()["billing_statuses"] if s["closedFlag"]}
    return [r for r in sb.cw.invoices() if r["status"]["id"] in ids]


def closed_unposted(sb: Any) -> list[dict[str, Any]]:
    unposted = set(sb.cw.unposted_ids())
    return [r for r in closed(sb) if r["id"] in unposted]


def test_refilter_saves_and_narrows_the_cache(sandbox: Any, runner: CliRunner, home: Path) -> None:
    runner.invoke(app, ["list-unsynced"])
    everything = unsynced_ids(runner)
    wanted = [r for r in closed_unposted(sandbox) if r["type"] == "Standard"]
    assert wanted and len(wanted) < len(everything)
    result = runner.invoke(app, ["refilter", "--type", "standard", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["data"]
    assert doc["left_scope"] == len([r for r in closed(sandbox) if r["type"] != "Standard"])
    assert doc["in_scope"] == doc["fetched"] == len([r for r in closed(sandbox) if r["type"] == "Standard"])
    assert doc["filters"]["invoice_types"] == ["Standard"]
    assert load_config(home / "config.toml").profile().filters.invoice_types == ["Standard"]
    assert unsynced_ids(runner) == {r["id"] for r in wanted}
    # --clear brings everything back
    result = runner.invoke(app, ["refilter", "--clear"])
    assert result.exit_code == 0, result.output
    assert "left scope" in result.stdout
    assert unsynced_ids(runner) == everything


def test_refilter_human_report_counts(sandbox: Any, runner: CliRunner) -> None:
    runner.invoke(app, ["list-unsynced"])
    keep = closed_unposted(sandbox)[0]["company"]["identifier"]
    others = {r["company"]["identifier"] for r in closed(sandbox)} - {keep}
    args = ["refilter"] + [a for c in sorted(others) for a in ("--exclude-company", c)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    kept = {r["id"] for r in closed_unposted(sandbox) if r["company"]["identifier"] == keep}
    assert unsynced_ids(runner) == kept
    left = len([r for r in closed(sandbox) if r["company"]["identifier"] != keep])
    assert f"{left} left scope" in result.stdout
    assert "Filters saved" in result.stdout


def test_bad_input_saves_nothing(sandbox: Any, runner: CliRunner, home: Path) -> None:
    before = (home / "config.toml").read_text()
    for args, needle in ((["--from-date", "31/01/2026"], "--from-date must be a date"),
                         (["--type", "Invoice"], "unknown invoice type 'Invoice'"),
                         (["--status", "Sent"], "not a closed billing status"),
                         (["--status", "Nope"], "'Nope' is not a ConnectWise billing status"),
                         (["--location", "0"], "--location takes positive")):
        result = runner.invoke(app, ["refilter", *args])
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.output
    assert (home / "config.toml").read_text() == before


def test_import_toml_and_show(sandbox: Any, runner: CliRunner, home: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("filters.toml").write_text('[filters]\nfrom_date = 2026-09-10\ninvoice_types = ["Standard", "Agreement"]\n')
    result = runner.invoke(app, ["refilter", "--import", "filters.toml"])
    assert result.exit_code == 0, result.output
    f = load_config(home / "config.toml").profile().filters
    assert f.from_date == date(2026, 9, 10) and f.invoice_types == ["Standard", "Agreement"]
    expected = {r["id"] for r in closed_unposted(sandbox)
                if r["type"] in ("Standard", "Agreement") and r["date"][:10] >= "2026-09-10"}
    assert unsynced_ids(runner) == expected
    shown = runner.invoke(app, ["refilter", "--show"])
    assert shown.exit_code == 0 and "2026-09-10" in shown.stdout and "Standard, Agreement" in shown.stdout
    Path("bad.toml").write_text("from_date = [")
    result = runner.invoke(app, ["refilter", "--import", "bad.toml"])
    assert result.exit_code == 2 and "not valid TOML" in result.stderr
    result = runner.invoke(app, ["refilter", "--import", "missing.toml"])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_refilter_needs_a_connection(home: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["refilter", "--type", "Standard"])
    assert result.exit_code == 3
    assert "nothing was saved" in result.stderr
    assert not (home / "config.toml").exists()


def test_discovery_waits_for_no_sync(sandbox: Any, runner: CliRunner, home: Path) -> None:
    """A sync in progress owns the cache: refilter refuses (exit 75, filters unchanged), list-unsynced lists the
    cache without re-reading ConnectWise."""
    from filelock import FileLock

    from cwqbo.settings.config import Paths

    runner.invoke(app, ["list-unsynced"])
    before = (home / "config.toml").read_bytes()
    lock_dir = Paths.from_env().lock_dir
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / "default.sync.lock")):
        refused = runner.invoke(app, ["refilter", "--type", "standard"])
        assert refused.exit_code == 75 and "another cwqbo sync is running" in refused.stderr
        assert (home / "config.toml").read_bytes() == before
        listed = runner.invoke(app, ["list-unsynced"])
        assert listed.exit_code == 0 and "a sync is running: showing the local cache" in listed.stderr
        assert runner.invoke(app, ["list-unsynced", "--refresh"]).exit_code == 75


def test_refilter_on_thousands_of_invoices(home: Path, runner: CliRunner) -> None:
    """A full re-read of 3,000 invoices stays in bulk (≤ 0.05 CW calls per invoice) and lands exactly."""
    from cwqbo.sandbox.server import Sandbox

    sb = Sandbox(seed=11, invoices=3000)
    http.set_transport_override(sb.transport())
    assert runner.invoke(app, CW_ARGS).exit_code == 0
    result = runner.invoke(app, ["refilter", "--from-date", "2026-09-15", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["data"]
    wanted = [r for r in closed(sb) if r["date"][:10] >= "2026-09-15"]
    assert 1000 < doc["in_scope"] == len(wanted)
    assert doc["cw_calls"] <= 0.05 * doc["fetched"]
    unposted = set(sb.cw.unposted_ids())
    assert unsynced_ids(runner) == {r["id"] for r in wanted if r["id"] in unposted}
