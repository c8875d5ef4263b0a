"""Issue 11: the optional webhook. A run with failures (or every run, with on = "always") is POSTed as JSON with a
Slack/Teams `text`; a webhook that fails never changes the exit code or loses the run, and no secret is sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from cwqbo.settings.config import ConfigError, NotifySettings, load_config
from tests.cli.test_bad_input_cli import Env
from tests.cli.test_local_files import connected, env  # noqa: F401 - fixtures


class Hook:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.status = 200
        self.url = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            data = self.rfile.read(int(self.headers["Content-Length"]))
            state.raw.append(data)
            state.bodies.append(json.loads(data))
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXXXsecretpath"
    yield state
    server.shutdown()
    server.server_close()


def configure(env: Env, url: str, on: str = "failures") -> None:
    config = env.home / "config.toml"
    text = config.read_text().split("\n[profiles.demo.notify]")[0]
    config.write_text(text + f'\n[profiles.demo.notify]\nwebhook_url = "{url}"\non = "{on}"\n')


def secrets_of(env: Env) -> list[str]:
    data = json.loads((env.home / "secrets.json").read_text())
    values: list[str] = []
    for key, value in data.items():
        if key.startswith("//"):
            continue
        values.append(value)
        try:
            inner = json.loads(value)
        except ValueError:
            continue
        if isinstance(inner, dict):
            values += [v for v in inner.values() if isinstance(v, str) and len(v) > 8]
    return values


def test_run_with_failures_is_posted_with_reasons_and_no_secrets(env: Env, hook: Hook) -> None:  # noqa: F811
    configure(env, hook.url)
    result = env.invoke("sync", "--all", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1, result.stderr  # the seeded sandbox has invoices that must fail
    [sent] = hook.bodies
    assert sent["run_id"] == doc["data"]["run_id"] and sent["profile"] == "demo"
    assert sent["status"] in ("partial", "failed") and sent["counts"]["failed"] == doc["data"]["failed"] > 0
    failed = [i for i in doc["data"]["items"] if i["outcome"] == "failed"]
    assert {(f["number"], f["reason"]) for f in sent["failed_invoices"]} == {(i["number"], i["reason"]) for i in failed}
    assert sent["text"].startswith(f"cwqbo sync [demo] run {sent['run_id']}: {sent['status']}")
    assert all(i["number"] in sent["text"] for i in failed)
    raw = hook.raw[0].decode()
    for secret in secrets_of(env):
        assert secret not in raw


def test_clean_run_is_not_posted_unless_always(env: Env, hook: Hook) -> None:  # noqa: F811
    configure(env, hook.url)
    assert env.invoke("sync", "--all").exit_code == 1 and len(hook.bodies) == 1
    hook.bodies.clear()
    again = env.invoke("sync", "--all")  # nothing new to send: a clean run
    assert again.exit_code == 0, again.stderr
    assert hook.bodies == []
    assert env.invoke("sync", "--all", "--dry-run").exit_code in (0, 1) and hook.bodies == []  # dry runs: never
    configure(env, hook.url, on="always")
    assert env.invoke("sync", "--all").exit_code == 0
    [sent] = hook.bodies
    assert sent["status"] == "ok" and sent["exit_code"] == 0 and sent["failed_invoices"] == []
    assert "0 failed" in sent["text"]


def test_failing_webhook_is_one_warning_and_keeps_the_exit_code(env: Env, hook: Hook) -> None:  # noqa: F811
    hook.status = 500
    configure(env, hook.url)
    result = env.invoke("sync", "--all")
    assert result.exit_code == 1  # what the sync itself says, not the webhook
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning: notification")]
    assert warnings == [f"warning: notification not sent: the webhook at {hook.url.split('/')[2]} answered HTTP 500"]
    assert "secretpath" not in result.stderr
    runs = json.loads(env.invoke("history", "--json").stdout)["data"]["runs"]
    assert len(runs) == 1 and runs[0]["failed"] > 0  # the run is recorded


def test_unreachable_webhook_keeps_the_exit_code(env: Env) -> None:  # noqa: F811
    configure(env, "http://127.0.0.1:9/hook")
    result = env.invoke("sync", "--all")
    assert result.exit_code == 1 and "warning: notification not sent: could not reach the webhook" in result.stderr


def test_notify_config_is_validated(tmp_path: Path) -> None:
    base = 'default_profile = "a"\n[profiles.a.notify]\n'
    path = tmp_path / "c.toml"
    path.write_text(base + 'webhook_url = "https://hooks.slack.com/services/x"\n')
    assert load_config(path).profile().notify == NotifySettings("https://hooks.slack.com/services/x", "failures")
    for bad, key in (('webhook_url = "ftp://x"', "webhook_url"), ('on = "sometimes"', "on"),
                     ('url = "https://x"', "url")):
        path.write_text(base + bad + "\n")
        with pytest.raises(ConfigError, match=rf"c.toml:3: profiles.a.notify.{key}"):
            load_config(path)
