"""Retries are logged to the cwqbo log file, reach the terminal only with -v, and a quiet run (cron) prints
nothing: stamina's own `stamina.retry_scheduled` line must never reach stderr, where cron mails it to the user."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stamina

from cwqbo import http
from cwqbo.cli import main as cli_main
from cwqbo.clock import ManualClock
from cwqbo.connectwise.client import CWClient
from cwqbo.quickbooks.client import QBOClient

ROOT = Path(__file__).resolve().parents[2]


class Tokens:
    def access_token(self) -> str:
        return "t"

    def force_refresh(self) -> str:
        return "t"


def flaky(ok: httpx.Response) -> httpx.MockTransport:
    """503 on the first request, then `ok`."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        return httpx.Response(503, json={"message": "busy"}) if len(seen) == 1 else ok

    return httpx.MockTransport(handler)


def retrying_calls() -> tuple[CWClient, QBOClient]:
    """One ConnectWise GET and one QBO read, each retried once."""
    cw = CWClient("na.myconnectwise.net", "acme", "pub", "priv", "cid", "v2026_1/", clock=ManualClock(),
                  client=httpx.Client(transport=flaky(httpx.Response(200, json=[{"id": 1}]))))
    assert cw.get_json("/finance/invoices") == [{"id": 1}]
    qbo = QBOClient("http://qbo.test", "1", Tokens(), clock=ManualClock(),
                    client=httpx.Client(transport=flaky(httpx.Response(200, json={"Preferences": {"Id": "1"}}))))
    assert qbo.preferences().obj == {"Id": "1"}
    assert cw.retries == 1 and qbo.retries == 1
    return cw, qbo


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """Undo `setup_logging` (handlers on the "cwqbo" logger, propagation off) after the test."""
    yield
    logger = logging.getLogger("cwqbo")
    for handler in cli_main._handlers:
        logger.removeHandler(handler)
        handler.close()
    cli_main._handlers.clear()
    logger.propagate = True


@pytest.fixture
def fresh_stamina(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """stamina as a new process has it: default instrumentation, not yet quieted by cwqbo."""
    monkeypatch.setattr(http, "_stamina_quiet", False)
    stamina.instrumentation.set_on_retry_hooks(None)
    was_active = stamina.is_active()
    with stamina.set_testing(False):
        stamina.set_active(True)
        yield
    stamina.set_active(was_active)
    stamina.instrumentation.set_on_retry_hooks(())


def test_a_quiet_run_writes_retries_to_the_log_file_only(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                         caplog: pytest.LogCaptureFixture, cli_logging: None,
                                                         fresh_stamina: None) -> None:
    caplog.set_level(logging.DEBUG)
    log_file = cli_main.setup_logging(tmp_path, verbose=0)
    retrying_calls()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert not [r for r in caplog.records if r.name.startswith("stamina")]  # its instrumentation is off
    text = log_file.read_text(encoding="utf-8")
    assert "cwqbo.http: ConnectWise GET /finance/invoices: HTTP 503; retrying in" in text
    assert "cwqbo.http: QuickBooks Online GET preferences: HTTP 503; retrying in" in text
    assert "stamina" not in text


def test_with_v_the_retry_is_shown_on_the_terminal(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                    cli_logging: None, fresh_stamina: None) -> None:
    cli_main.setup_logging(tmp_path, verbose=1)
    retrying_calls()
    out, err = capfd.readouterr()
    assert out == ""
    assert "INFO cwqbo.http: ConnectWise GET /finance/invoices: HTTP 503; retrying in" in err
    assert "INFO cwqbo.http: QuickBooks Online GET preferences: HTTP 503; retrying in" in err
    assert "stamina" not in err


SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from cwqbo.cli.main import setup_logging
    from tests.unit.test_retry_logging import retrying_calls

    log_file = setup_logging(Path(sys.argv[1]), int(sys.argv[2]))
    retrying_calls()
    print(log_file)
""")


@pytest.mark.parametrize("verbose", [0, 1])
def test_in_a_fresh_process_as_cron_runs_it(tmp_path: Path, verbose: int) -> None:
    """No pytest logging handlers here: Python's last-resort handler would print stamina's line to stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(verbose)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    log_text = Path(proc.stdout.strip()).read_text(encoding="utf-8")
    assert log_text.count("HTTP 503; retrying in") == 2
    if verbose:
        assert proc.stderr.count("HTTP 503; retrying in") == 2 and "stamina" not in proc.stderr
    else:
        assert proc.stderr == ""
