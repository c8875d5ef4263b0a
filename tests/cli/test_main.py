from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cwqbo import __version__
from cwqbo.cli.main import app, redact
from cwqbo.errors import AuthError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def extra_command() -> Iterator[dict[str, BaseException]]:
    """Registers a throw-away `boom` command that raises whatever the test puts in the dict."""
    to_raise: dict[str, BaseException] = {}

    def boom(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
        from cwqbo.cli.main import use_json

        use_json(ctx, "boom", json_out)
        raise to_raise["exc"]

    app.command("boom")(boom)
    yield to_raise
    app.registered_commands[:] = [c for c in app.registered_commands if c.name != "boom"]


def test_help_lists_commands(home: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("connect", "check-permissions"):
        assert command in result.stdout


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"cwqbo {__version__}"


def test_cwqbo_error_is_one_line_with_hint_and_exit_code(home: Path, runner: CliRunner,
                                                         extra_command: dict[str, BaseException]) -> None:
    extra_command["exc"] = AuthError("QuickBooks connection expired or revoked — re-run `cwqbo connect quickbooks`",
                                     hint="tokens last 100 days")
    result = runner.invoke(app, ["boom"])
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: QuickBooks connection expired or revoked — re-run `cwqbo connect quickbooks`",
                     "hint: tokens last 100 days"]
    assert result.stdout == ""


def test_json_mode_errors_are_an_envelope(home: Path, runner: CliRunner,
                                          extra_command: dict[str, BaseException]) -> None:
    extra_command["exc"] = AuthError("nope")
    result = runner.invoke(app, ["boom", "--json"])
    doc = json.loads(result.stdout)
    assert doc["status"] == "error" and doc["exit_code"] == 3 and doc["errors"][0]["message"] == "nope"


def test_unexpected_exception_is_one_line_naming_the_log(home: Path, runner: CliRunner,
                                                         extra_command: dict[str, BaseException]) -> None:
    extra_command["exc"] = RuntimeError("Authorization: Bearer eyJsecretTOKEN refresh_token=RT1-abc")
    result = runner.invoke(app, ["boom"])
    assert result.exit_code == 70
    log_file = home / "logs" / "cwqbo.log"
    assert result.stderr.count("\n") <= 2 and str(log_file) in result.stderr
    assert "Traceback" not in result.output and "eyJsecretTOKEN" not in result.output
    text = log_file.read_text()
    assert "Traceback" in text and "RuntimeError" in text
    assert "eyJsecretTOKEN" not in text and "RT1-abc" not in text


def test_keyboard_interrupt_exits_130(home: Path, runner: CliRunner,
                                      extra_command: dict[str, BaseException]) -> None:
    extra_command["exc"] = KeyboardInterrupt()
    assert runner.invoke(app, ["boom"]).exit_code == 130


def test_broken_config_is_exit_2_with_location(home: Path, runner: CliRunner) -> None:
    (home / "config.toml").write_text('default_profile = "default"\n[profiles.default]\nsecrt_store = "file"\n')
    result = runner.invoke(app, ["connect", "--status"])
    assert result.exit_code == 2
    assert f"{home / 'config.toml'}:3: profiles.default.secrt_store: unknown key" in result.stderr


def test_config_option_and_unknown_profile(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('default_profile = "a"\n[profiles.a]\nsecret_store = "file"\n')
    result = runner.invoke(app, ["--config", str(other), "--profile", "b", "connect", "--status"])
    assert result.exit_code == 2 and "no profile named 'b'" in result.stderr


@pytest.mark.parametrize("line, secret", [
    ("Authorization: Basic Y3dxYm86c2VjcmV0", "Y3dxYm86c2VjcmV0"),
    ('{"access_token": "eyJabc", "expires_in": 3600}', "eyJabc"),
    ("grant_type=refresh_token&refresh_token=RT1-xyz&x=1", "RT1-xyz"),
    ("client_secret='abc123'", "abc123"),
    ("GET https://user:pa55@example.com/x", "pa55"),
])
def test_redact(line: str, secret: str) -> None:
    assert secret not in redact(line)


def test_help_does_not_import_heavy_libraries_from_foundation_modules() -> None:
    code = ("import sys, cwqbo.cli.connect, cwqbo.cli.permissions, cwqbo.cli.render, cwqbo.context, cwqbo.settings.secrets;"
            "print(sorted(m for m in ('httpx', 'sqlite_utils', 'keyring', 'filelock') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_money_and_envelope_keep_decimals_exact() -> None:
    from decimal import Decimal

    from cwqbo.cli.render import envelope, money

    assert money(Decimal("1234.5")) == "1,234.50"
    assert money(Decimal("2.005")) == "2.01"  # half-up like the rest of cwqbo, never float
    doc = envelope("x", "success", 0, {"total": Decimal("12345678901234.10")})
    assert json.loads(json.dumps(doc))["data"]["total"] == "12345678901234.10"
    assert set(doc) == {"cwqbo_result_version", "command", "status", "exit_code", "data", "errors"}


def test_the_suite_cannot_reach_the_network() -> None:
    import socket

    import pytest as _pytest

    with _pytest.raises(OSError, match="tried to reach the network"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
