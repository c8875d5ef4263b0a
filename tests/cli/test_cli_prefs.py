"""`cwqbo prefs`: what a user sees and what ends up in config.toml (nothing, when a change is refused)."""

from __future__ import annotations

import json
import stat
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwqbo.cli.main import app


def config(home: Path) -> dict:
    path = home / "config.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def prefs_of(home: Path) -> dict:
    return config(home)["profiles"]["default"]["prefs"]


def run(runner: CliRunner, *args: str) -> object:
    return runner.invoke(app, list(args))


def test_show_defaults_as_tables_and_json(home: Path, runner: CliRunner) -> None:
    result = run(runner, "prefs")
    assert result.exit_code == 0, result.output
    for text in ("Preferences for profile default", "tax.mode", "pin_cw", "time.detail", "filters.from_date"):
        assert text in result.stdout
    result = run(runner, "prefs", "show", "--json")
    doc = json.loads(result.stdout)
    assert doc["command"] == "prefs show" and doc["data"]["prefs"]["tax"]["mode"] == "pin_cw"


def test_set_saves_and_reports_the_change(home: Path, runner: CliRunner) -> None:
    result = run(runner, "prefs", "set", "tax.mode", "line_item")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "tax.mode = line_item (was pin_cw)"
    assert prefs_of(home)["tax"]["mode"] == "line_item"
    assert run(runner, "prefs", "set", "filters.location_ids", "1,2").exit_code == 0
    assert config(home)["profiles"]["default"]["filters"]["location_ids"] == [1, 2]
    assert "line_item" in json.loads(run(runner, "prefs", "show", "--json").stdout)["data"]["prefs"]["tax"]["mode"]


@pytest.mark.parametrize("args, message", [
    (["tax.mode", "magic"], "error: tax.mode: must be one of qbo, pin_cw, line_item (got 'magic')"),
    (["tax.modee", "qbo"], "error: tax.modee: unknown preference (did you mean tax.mode?)"),
    (["schedule", "whenever"], "error: schedule: 'whenever' is not a valid cron expression"),
])
def test_refused_set_writes_nothing(home: Path, runner: CliRunner, args: list[str], message: str) -> None:
    run(runner, "prefs", "set", "fields.docnumber_prefix", "CW-")
    before = (home / "config.toml").read_bytes()
    result = run(runner, "prefs", "set", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and "Traceback" not in result.output
    assert (home / "config.toml").read_bytes() == before


def test_unset_and_map(home: Path, runner: CliRunner) -> None:
    assert run(runner, "prefs", "map", "item", "LAPTOP", "Hardware").exit_code == 0
    assert run(runner, "prefs", "map", "work_type", "Remote Support", "Hours").exit_code == 0
    assert run(runner, "prefs", "map", "tax", "Ontario", "HST ON").exit_code == 0
    assert run(runner, "prefs", "map", "term", "Net 30 Days", "Net 30").exit_code == 0
    assert run(runner, "prefs", "map", "item", "SKU.1", "Hardware").exit_code == 0  # dotted CW key
    result = run(runner, "prefs", "map", "class", "3", "Projects")
    assert result.exit_code == 0 and "fields.class_source is none" in result.stderr
    p = prefs_of(home)
    assert p["items"]["product"] == {"LAPTOP": "Hardware", "SKU.1": "Hardware"}
    assert p["items"]["work_type"] == {"Remote Support": "Hours"}
    assert p["tax"]["codes"] == {"Ontario": "HST ON"} and p["fields"]["terms_map"] == {"Net 30 Days": "Net 30"}
    assert p["fields"]["class_map"] == {"3": "Projects"}
    assert run(runner, "prefs", "map", "class", "north", "Projects").exit_code == 2
    assert run(runner, "prefs", "map", "colour", "a", "b").exit_code == 2
    assert run(runner, "prefs", "unset", "items.product.LAPTOP").exit_code == 0
    assert prefs_of(home)["items"]["product"] == {"SKU.1": "Hardware"}
    run(runner, "prefs", "set", "tax.mode", "qbo")
    assert run(runner, "prefs", "unset", "tax.mode").exit_code == 0
    assert prefs_of(home)["tax"]["mode"] == "pin_cw"


def test_export_then_import_round_trips_and_bad_import_changes_nothing(home: Path, runner: CliRunner,
                                                                        tmp_path: Path) -> None:
    run(runner, "prefs", "set", "time.detail", "detailed")
    run(runner, "prefs", "set", "filters.from_date", "2026-01-01")
    out = tmp_path / "exported.toml"
    assert run(runner, "prefs", "export", str(out)).exit_code == 0
    stdout_copy = run(runner, "prefs", "export").stdout
    assert tomllib.loads(stdout_copy) == tomllib.loads(out.read_text())
    run(runner, "prefs", "set", "time.detail", "summary")
    assert run(runner, "prefs", "import", str(out)).exit_code == 0
    assert prefs_of(home)["time"]["detail"] == "detailed"
    bad = tmp_path / "bad.toml"
    bad.write_text('[prefs]\nsync_mode = "manual"\n[prefs.time]\ndetail = "summary"\n[prefs.tax]\nmode = "x"\n')
    before = (home / "config.toml").read_bytes()
    result = run(runner, "prefs", "import", str(bad))
    assert result.exit_code == 2 and "prefs.tax.mode: must be one of" in result.stderr
    assert "nothing was imported" in result.stderr
    assert (home / "config.toml").read_bytes() == before
    assert run(runner, "prefs", "import", str(tmp_path / "missing.toml")).exit_code == 2


@pytest.fixture
def fake_crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    table = tmp_path / "crontab.txt"
    script = bindir / "crontab"
    script.write_text(
        f"#!{sys.executable}\nimport sys, pathlib\np = pathlib.Path({str(table)!r})\n"
        "if sys.argv[1] == '-l':\n"
        "    if not p.exists():\n        sys.stderr.write('no crontab for tester\\n'); sys.exit(1)\n"
        "    sys.stdout.write(p.read_text())\nelse:\n    p.write_text(sys.stdin.read())\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ.get('PATH', '')}")
    return table


def test_schedule_install_uninstall_and_print(home: Path, runner: CliRunner, fake_crontab: Path) -> None:
    result = run(runner, "prefs", "schedule", "30 5 * * 1-5", "--install")
    assert result.exit_code == 0, result.output
    assert "Next runs" in result.stdout and "Crontab entry installed." in result.stdout
    assert "30 5 * * 1-5 CWQBO_SCHEDULED=1" in fake_crontab.read_text()
    assert "--profile default sync --all" in fake_crontab.read_text()
    p = prefs_of(home)
    assert p["schedule"] == "30 5 * * 1-5" and p["sync_mode"] == "automatic"
    assert "already up to date" in run(runner, "prefs", "schedule", "--install").stdout
    printed = run(runner, "prefs", "schedule", "--print").stdout
    assert "# cwqbo:default" in printed and "sync --all" in printed
    units = run(runner, "prefs", "schedule", "--print", "--systemd").stdout
    assert "OnCalendar=Mon..Fri *-*-* 05:30:00" in units
    result = run(runner, "prefs", "schedule", "--uninstall")
    assert result.exit_code == 0 and "Crontab entry removed." in result.stdout
    assert "sync --all" not in fake_crontab.read_text() and prefs_of(home)["sync_mode"] == "manual"
    data = json.loads(run(runner, "prefs", "schedule", "--json").stdout)["data"]
    assert data["schedule"] == "30 5 * * 1-5" and len(data["next_runs"]) == 5


def test_schedule_bad_expression_changes_nothing(home: Path, runner: CliRunner, fake_crontab: Path) -> None:
    result = run(runner, "prefs", "schedule", "99 * * * *", "--install")
    assert result.exit_code == 2 and "not a valid cron expression" in result.stderr
    assert not fake_crontab.exists() and not (home / "config.toml").exists()
    assert run(runner, "prefs", "schedule", "--systemd").exit_code == 2


def test_fields_without_a_store_and_with_a_cached_invoice(home: Path, runner: CliRunner) -> None:
    result = run(runner, "prefs", "fields")
    assert result.exit_code == 0, result.output
    assert "DocNumber" in result.stdout and "no cached invoice" in result.stderr
    from datetime import date
    from decimal import Decimal

    from cwqbo.state import cache
    from cwqbo.settings.config import Paths
    from cwqbo.models import CompanyRef, CWInvoice
    from cwqbo.state.store import Store

    run(runner, "prefs", "set", "fields.docnumber_prefix", "CW-")
    inv = CWInvoice(id=1, number="INV77", type="Standard", status_id=1, status_name="Closed",
                    company=CompanyRef(4, "ACME", "Acme: West"), date=date(2026, 1, 2), due_date=None,
                    subtotal=Decimal("10"), sales_tax=Decimal("0"), total=Decimal("10"), lines=())
    db = Paths.from_env().db_file("default")
    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store.open(db)
    cache.upsert_invoices(store, [inv], fetched_at="2026-01-02T00:00:00Z", unposted_ids={1})
    store.close()
    result = run(runner, "prefs", "fields")
    assert result.exit_code == 0, result.output
    assert "sample: invoice INV77" in result.stdout and "CW-INV77" in result.stdout
    assert "Acme - West" in result.stdout


def test_keys_lists_every_key(home: Path, runner: CliRunner) -> None:
    result = run(runner, "prefs", "keys")
    assert result.exit_code == 0 and "items.product.SUBKEY" in result.stdout and "tax.exempt_code" in result.stdout
