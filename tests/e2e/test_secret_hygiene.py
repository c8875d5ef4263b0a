"""Secrets never leave the secret store: not in logs (even -vv), config, the database, --json output or
cassettes. Plus file modes, the OAuth callback listener, and log redaction.

The flow is the real one: `connect connectwise` / `connect quickbooks` (browser step answered by following the
simulator's auto-consent redirect to our CallbackListener), then list-unsynced, sync (with a forced token
refresh), history, and finally a disconnect that revokes the tokens.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import sqlite3
import stat
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cwqbo.cli.main import RedactingFilter, RedactingFormatter, app, redact
from cwqbo.settings.config import Paths
from cwqbo.errors import AuthError
from cwqbo.sandbox import server as sv

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Flow:
    def __init__(self, home: Path, sandbox: sv.Sandbox, url: str) -> None:
        self.home, self.sandbox, self.url = home, sandbox, url
        self.outputs: list[tuple[str, str]] = []  # (command, stdout+stderr)
        self.json_docs: dict[str, Any] = {}
        self.runner = CliRunner()

    def run(self, *args: str, ok: tuple[int, ...] = (0, 1)) -> Any:
        r = self.runner.invoke(app, ["-vv", *args])
        self.outputs.append((" ".join(args), r.stdout + r.stderr))
        assert r.exit_code in ok, (args, r.exit_code, r.stdout[-2000:], r.stderr[-2000:], r.exception)
        if "--json" in args:
            self.json_docs[" ".join(args)] = json.loads(r.stdout)
        return r

    def secrets(self) -> dict[str, str]:
        """Everything that would let someone act as this user, labelled for the failure message."""
        oauth = self.sandbox.qbo._state["oauth"]  # every grant the simulator ever issued
        found = {"CW private key": sv.CW_PRIVATE_KEY, "QBO client secret": sv.QBO_CLIENT_SECRET,
                 "CW basic auth": _b64(f"{sv.CW_COMPANY}+{sv.CW_PUBLIC_KEY}:{sv.CW_PRIVATE_KEY}"),
                 "QBO basic auth": _b64(f"{sv.QBO_CLIENT_ID}:{sv.QBO_CLIENT_SECRET}")}
        for kind in ("access", "refresh", "codes"):
            for i, token in enumerate(oauth[kind]):
                found[f"{kind} token #{i}"] = token
        return found


@pytest.fixture
def flow(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    sandbox = sv.Sandbox(seed=5, invoices=10)
    server = sandbox.start()
    try:
        yield Flow(home, sandbox, server.url)
    finally:
        server.stop()


def _browser_that_consents(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stand-in for the user's browser: follow the authorize URL, whose consent redirects to our listener."""
    visited: list[str] = []

    def open_(url: str, *a: Any, **k: Any) -> bool:
        visited.append(url)
        r = httpx.get(url, follow_redirects=True, timeout=10)
        visited.append(str(r.url))
        return True

    monkeypatch.setattr(webbrowser, "open", open_)
    return visited


def _run_journey(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    site = flow.url.split("://", 1)[1].rstrip("/")
    monkeypatch.setenv("CWQBO_CW_PRIVATE_KEY", sv.CW_PRIVATE_KEY)
    monkeypatch.setenv("CWQBO_QBO_CLIENT_SECRET", sv.QBO_CLIENT_SECRET)
    flow.run("connect", "connectwise", "--site", site, "--company", sv.CW_COMPANY, "--public-key", sv.CW_PUBLIC_KEY,
             "--client-id", sv.CW_CLIENT_ID, "--scheme", "http", "--secret-store", "file", ok=(0,))
    visited = _browser_that_consents(monkeypatch)
    flow.run("connect", "quickbooks", "--environment", "simulator", "--client-id", sv.QBO_CLIENT_ID,
             "--simulator-url", flow.url, "--redirect-uri", f"http://127.0.0.1:{_free_port()}/callback",
             "--secret-store", "file", ok=(0,))
    assert visited and "/callback?" in visited[-1], visited
    flow.run("connect", "--status", "--json", ok=(0,))
    flow.run("check-permissions", ok=(0, 1, 3))
    flow.run("list-unsynced", "--json")
    flow.run("sync", "--all", "--dry-run", "--json")
    first = [i for i in flow.sandbox.cw.invoices() if len(str(i["invoiceNumber"])) <= 21][0]["invoiceNumber"]
    flow.run("sync", "--invoice", str(first), "--json")
    flow.sandbox.qbo.expire_access_tokens()  # the next sync must refresh (and rotate) the tokens
    flow.run("sync", "--all", "--json")
    flow.run("history", "--json")
    flow.run("history", "--invoice", str(first), "--json")
    flow.run("history", "--failed", "--json")
    flow.run("prefs", "show")
    flow.run("connect", "quickbooks", "--disconnect", ok=(0,))


def _home_texts(home: Path) -> dict[str, str]:
    """Every file under home as text (the secrets store excluded), plus a full dump of each database."""
    secrets_file = Paths.from_env().secrets_file
    texts: dict[str, str] = {}
    for p in sorted(home.rglob("*")):
        if not p.is_file() or p == secrets_file:
            continue
        texts[str(p.relative_to(home))] = p.read_bytes().decode("utf-8", "replace")
        if p.suffix == ".db":
            conn = sqlite3.connect(p)
            try:
                texts[f"{p.name} (dump)"] = "\n".join(conn.iterdump())
            finally:
                conn.close()
    return texts


def test_no_secret_in_any_file_output_or_cassette(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_journey(flow, monkeypatch)
    secrets = flow.secrets()
    assert sum(1 for k in secrets if k.startswith("refresh")) >= 2, "the token refresh did not happen"
    haystacks = {f"file {name}": text for name, text in _home_texts(flow.home).items()}
    haystacks.update({f"output of `cwqbo {cmd}`": out for cmd, out in flow.outputs})
    haystacks.update({f"cassette {p.relative_to(REPO)}": p.read_text(encoding="utf-8", errors="replace")
                      for p in sorted((REPO / "cassettes").rglob("*")) if p.is_file()})
    assert any(name.endswith(".log") for name in haystacks), "no log file was written"
    dumps = [text for name, text in haystacks.items() if name.endswith("(dump)")]
    assert dumps and 'INSERT INTO "runs"' in dumps[0] and 'INSERT INTO "run_items"' in dumps[0], "no history rows"
    leaks = [f"{label} in {where}" for where, text in haystacks.items() for label, value in secrets.items()
             if value and value in text]
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)
    # the --json envelopes were all produced and are plain documents
    assert {"connect --status --json", "sync --all --json", "history --json", "list-unsynced --json"} <= \
        set(flow.json_docs)
    # the secrets really are in the store (so the scan above was looking for the right strings)
    store_text = Paths.from_env().secrets_file.read_text(encoding="utf-8")
    assert sv.CW_PRIVATE_KEY in store_text


def test_config_store_and_secret_files_are_private(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_journey(flow, monkeypatch)
    paths = Paths.from_env()
    files = [paths.config_file, paths.secrets_file, *flow.home.rglob("*.db")]
    files += [p for p in flow.home.rglob("*.db-*") if p.is_file()]
    assert paths.config_file.exists() and paths.secrets_file.exists() and len(files) >= 3
    for p in files:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p.name} is mode {oct(mode)}: readable by others"


def test_callback_listener_binds_loopback_only_and_rejects_a_wrong_state() -> None:
    from cwqbo.errors import ConfigError
    from cwqbo.quickbooks.oauth import CallbackListener

    port = _free_port()
    listener = CallbackListener(f"http://127.0.0.1:{port}/callback", "expected-state").start()
    try:
        assert listener.address[0] == "127.0.0.1"
        r = httpx.get(f"http://127.0.0.1:{port}/callback?code=c&state=attacker&realmId=1", timeout=5)
        assert r.status_code == 400
        with pytest.raises(AuthError) as info:
            listener.wait(timeout=5)
        assert "state" in str(info.value).lower() and "\n" not in str(info.value)
    finally:
        listener.close()
    # `localhost` also ends up on the loopback interface, never on every interface
    listener = CallbackListener(f"http://localhost:{_free_port()}/cb", "s")
    try:
        assert listener.address[0] == "127.0.0.1"
    finally:
        listener.close()
    for uri in (f"http://0.0.0.0:{port}/cb", "https://example.com/cb", f"http://192.168.1.5:{port}/cb"):
        with pytest.raises(ConfigError):
            CallbackListener(uri, "s")


@pytest.mark.parametrize("line, secret", [
    ("GET /v3/company/1/query Authorization: Bearer eyJabc.def-ghi_jkl", "eyJabc.def-ghi_jkl"),
    ("headers={'authorization': 'Basic Y3dxYm9fZGVtbytzYW5kYm94'}", "Y3dxYm9fZGVtbytzYW5kYm94"),
    ('token response {"access_token": "eyJtok", "refresh_token": "RT1-abc", "expires_in": 3600}', "RT1-abc"),
    ('token response {"access_token": "eyJtok", "refresh_token": "RT1-abc"}', "eyJtok"),
    ("form grant_type=refresh_token&refresh_token=RT1-xyz&x=1", "RT1-xyz"),
    ("client_secret=sandbox-client-secret", "sandbox-client-secret"),
    ("'private_key': 'sandbox-private'", "sandbox-private"),
    ("proxy https://user:hunter2@proxy.example/", "hunter2"),
])
def test_log_lines_are_redacted(line: str, secret: str) -> None:
    assert secret not in redact(line)


def test_redaction_covers_formatted_args_and_tracebacks(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    logger = logging.getLogger("cwqbo.test_secret_hygiene")
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(RedactingFormatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sending %s", {"Authorization": "Bearer eyJsecretvalue"})
        try:
            raise RuntimeError('refused: {"refresh_token": "RT1-inexception"}')
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log.read_text(encoding="utf-8")
    assert "eyJsecretvalue" not in text and "RT1-inexception" not in text
    assert "<redacted>" in text
