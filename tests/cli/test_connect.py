from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import keyring
import pytest
from keyring.backends import null
from typer.testing import CliRunner

from cwqbo import http
from cwqbo.cli import connect as connect_cli
from cwqbo.cli.main import app
from cwqbo.clock import Clock
from cwqbo.settings.config import load_config
from cwqbo.sandbox.bridge import LoopbackServer
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

REALM = "9341453000000000"
CW_ARGS = ["connect", "connectwise", "--site", "127.0.0.1:8999", "--scheme", "http", "--company", "cwqbo_demo",
           "--public-key", "sandbox-public", "--client-id", "00000000-0000-4000-8000-00000000c1d0"]


@pytest.fixture
def sandbox_transport() -> Iterator[None]:
    from cwqbo.sandbox.server import Sandbox

    http.set_transport_override(Sandbox(invoices=2).transport())
    yield


@pytest.fixture
def qbo() -> Iterator[tuple[QBOSimulator, str]]:
    sim = QBOSimulator(Clock(), Faults())
    with LoopbackServer(sim.handle) as server:
        yield sim, server.url


def fake_browser(auth_url: str) -> str:
    """What the user does with --no-browser: open the link, approve, copy the address landed on."""
    response = httpx.get(auth_url, follow_redirects=False)
    assert response.status_code == 302
    return response.headers["location"]


def qbo_args(url: str, *extra: str) -> list[str]:
    return ["connect", "quickbooks", "--environment", "simulator", "--simulator-url", url,
            "--client-id", "sandbox-client-id", "--secret-store", "file", *extra]


# -- ConnectWise ----------------------------------------------------------------------------------------


def test_connect_connectwise_stores_settings_and_key(home: Path, runner: CliRunner, sandbox_transport: None,
                                                     memory_keyring: object) -> None:
    result = runner.invoke(app, [*CW_ARGS, "--private-key", "sandbox-private"])
    assert result.exit_code == 0, result.output
    assert "Connected to ConnectWise" in result.stderr
    cw = load_config(home / "config.toml").profile().connectwise
    assert (cw.site, cw.company_id, cw.scheme) == ("127.0.0.1:8999", "cwqbo_demo", "http")
    assert keyring.get_password("cwqbo", "default/cw_private_key") == "sandbox-private"
    assert "sandbox-private" not in (home / "config.toml").read_text()


def test_private_key_from_env(home: Path, runner: CliRunner, sandbox_transport: None) -> None:
    result = runner.invoke(app, CW_ARGS, env={"CWQBO_CW_PRIVATE_KEY": "sandbox-private"})
    assert result.exit_code == 0, result.output


def test_wrong_company_is_a_clear_error(home: Path, runner: CliRunner, sandbox_transport: None) -> None:
    args = [a if a != "cwqbo_demo" else "nosuchco" for a in CW_ARGS]
    result = runner.invoke(app, [*args, "--private-key", "sandbox-private"])
    assert result.exit_code == 2
    assert "nosuchco" in result.stderr and "not found" in result.stderr
    assert "Traceback" not in result.output


def test_bad_keys_exit_3(home: Path, runner: CliRunner, sandbox_transport: None) -> None:
    result = runner.invoke(app, [*CW_ARGS, "--private-key", "wrong"])
    assert result.exit_code == 3, result.output
    assert "401" in result.stderr or "rejected" in result.stderr
    assert not (home / "config.toml").exists()


def test_missing_client_id_without_tty(home: Path, runner: CliRunner, sandbox_transport: None) -> None:
    args = CW_ARGS[: CW_ARGS.index("--client-id")]
    result = runner.invoke(app, [*args, "--private-key", "sandbox-private"])
    assert result.exit_code == 2
    assert "missing --client-id" in result.stderr


def test_unreachable_site(home: Path, runner: CliRunner) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http.set_transport_override(httpx.MockTransport(refuse))
    result = runner.invoke(app, ["connect", "connectwise", "--site", "nosuch.example.com", "--company", "x",
                                 "--public-key", "p", "--private-key", "k", "--client-id", "c"])
    assert result.exit_code in (2, 4)
    assert "cannot reach" in result.stderr and "nosuch.example.com" in result.stderr


def test_null_keyring_is_refused(home: Path, runner: CliRunner, sandbox_transport: None) -> None:
    keyring.set_keyring(null.Keyring())
    result = runner.invoke(app, [*CW_ARGS, "--private-key", "sandbox-private"])
    assert result.exit_code == 3
    assert "--secret-store file" in result.stderr


def test_file_secret_store_is_recorded(home: Path, runner: CliRunner, sandbox_transport: None) -> None:
    result = runner.invoke(app, [*CW_ARGS, "--private-key", "sandbox-private", "--secret-store", "file"])
    assert result.exit_code == 0, result.output
    assert load_config(home / "config.toml").profile().secret_store == "file"
    assert json.loads((home / "secrets.json").read_text())["default/cw_private_key"] == "sandbox-private"


# -- QuickBooks -----------------------------------------------------------------------------------------


def test_connect_quickbooks_no_browser_end_to_end(home: Path, runner: CliRunner, qbo: tuple[QBOSimulator, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sim, url = qbo
    monkeypatch.setattr(connect_cli, "_ask_redirect_url", fake_browser)
    result = runner.invoke(app, qbo_args(url, "--no-browser"), env={"CWQBO_QBO_CLIENT_SECRET": "sandbox-client-secret"})
    assert result.exit_code == 0, result.output
    assert "Sandbox Company_US_1" in result.stderr and REALM in result.stderr
    secrets_file = home / "secrets.json"
    assert stat.S_IMODE(os.stat(secrets_file).st_mode) == 0o600
    stored = json.loads(secrets_file.read_text())
    tokens = json.loads(stored["default/qbo_tokens"])
    assert tokens["realm_id"] == REALM and tokens["refresh_hard_expires_at"]
    qb = load_config(home / "config.toml").profile().quickbooks
    assert (qb.realm_id, qb.environment, qb.simulator_url) == (REALM, "simulator", url)
    # the stored access token really works against the API
    r = httpx.get(f"{url}/v3/company/{REALM}/companyinfo/{REALM}", headers={
        "Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200

    status = runner.invoke(app, ["connect", "--status", "--json"])
    doc = json.loads(status.stdout)
    assert doc["cwqbo_result_version"] == "1" and doc["command"] == "connect"
    assert doc["data"]["quickbooks"]["connected"] is True and doc["data"]["quickbooks"]["realm_id"] == REALM
    assert doc["data"]["connectwise"]["connected"] is False and status.exit_code == 3

    gone = runner.invoke(app, ["connect", "quickbooks", "--disconnect"])
    assert gone.exit_code == 0, gone.output
    assert "default/qbo_tokens" not in json.loads(secrets_file.read_text())
    r = httpx.post(f"{url}/oauth2/v1/tokens/bearer", auth=("sandbox-client-id", "sandbox-client-secret"),
                   data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert r.json()["error"] == "invalid_grant"  # revoked at Intuit, not just forgotten


def test_connect_quickbooks_with_browser_and_callback(home: Path, runner: CliRunner,
                                                      qbo: tuple[QBOSimulator, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opened: list[str] = []

    def browser(auth_url: str) -> bool:
        opened.append(auth_url)
        httpx.get(auth_url, follow_redirects=True)  # consent page redirects to our loopback listener
        return True

    monkeypatch.setattr("webbrowser.open", browser)
    sim, url = qbo
    result = runner.invoke(app, qbo_args(url, "--client-secret", "sandbox-client-secret", "--redirect-uri",
                                         f"http://127.0.0.1:{port}/callback", "--timeout", "10"))
    assert result.exit_code == 0, result.output
    assert opened and load_config(home / "config.toml").profile().quickbooks.realm_id == REALM


def test_pasted_url_with_wrong_state_is_refused(home: Path, runner: CliRunner, qbo: tuple[QBOSimulator, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    sim, url = qbo
    monkeypatch.setattr(connect_cli, "_ask_redirect_url",
                        lambda auth_url: fake_browser(auth_url).replace("state=", "state=x"))
    result = runner.invoke(app, qbo_args(url, "--no-browser", "--client-secret", "sandbox-client-secret"))
    assert result.exit_code == 3
    assert "state" in result.stderr
    assert not (home / "secrets.json").exists() or "qbo_tokens" not in (home / "secrets.json").read_text()


def test_wrong_client_secret_exit_3(home: Path, runner: CliRunner, qbo: tuple[QBOSimulator, str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sim, url = qbo
    monkeypatch.setattr(connect_cli, "_ask_redirect_url", fake_browser)
    result = runner.invoke(app, qbo_args(url, "--no-browser", "--client-secret", "nope"))
    assert result.exit_code == 3
    assert "client id or client secret" in result.stderr
    assert "nope" not in result.output


def test_status_warns_when_connection_expires_soon(home: Path, runner: CliRunner, qbo: tuple[QBOSimulator, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sim, url = qbo
    monkeypatch.setattr(connect_cli, "_ask_redirect_url", fake_browser)
    assert runner.invoke(app, qbo_args(url, "--no-browser", "--client-secret", "sandbox-client-secret")).exit_code == 0
    from cwqbo.settings.secrets import FileStore, load_tokens, save_tokens
    import dataclasses
    import time

    store = FileStore(home / "secrets.json")
    tokens = load_tokens(store, "default")
    save_tokens(store, "default", dataclasses.replace(tokens, refresh_expires_at=time.time() + 5 * 86400))
    result = runner.invoke(app, ["connect", "--status"])
    assert "expires in 5 days" in result.stderr
    assert "sandbox-client-secret" not in result.output


def test_status_on_a_fresh_install_needs_no_keyring(home: Path, runner: CliRunner) -> None:
    keyring.set_keyring(null.Keyring())
    result = runner.invoke(app, ["connect"])
    assert result.exit_code == 3
    assert "not connected" in result.stdout and "connect connectwise" in result.stdout
    assert "error" not in result.stderr


def test_no_browser_with_nothing_pasted_is_a_usage_error(home: Path, runner: CliRunner,
                                                         qbo: tuple[QBOSimulator, str]) -> None:
    sim, url = qbo
    result = runner.invoke(app, qbo_args(url, "--no-browser", "--client-secret", "sandbox-client-secret"), input="")
    assert result.exit_code == 2
    assert "no redirect URL was pasted" in result.stderr
    assert url in result.stdout  # the link was shown


def test_switching_to_file_store_keeps_the_connectwise_key(home: Path, runner: CliRunner,
                                                           qbo: tuple[QBOSimulator, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from cwqbo.sandbox.server import Sandbox

    http.set_transport_override(Sandbox(invoices=2).transport())
    assert runner.invoke(app, [*CW_ARGS, "--private-key", "sandbox-private"]).exit_code == 0  # keyring
    http.set_transport_override(None)
    sim, url = qbo
    monkeypatch.setattr(connect_cli, "_ask_redirect_url", fake_browser)
    result = runner.invoke(app, qbo_args(url, "--no-browser", "--client-secret", "sandbox-client-secret"))
    assert result.exit_code == 0, result.output
    stored = json.loads((home / "secrets.json").read_text())
    assert stored["default/cw_private_key"] == "sandbox-private"
