"""`cwqbo sync` as a subprocess against a loopback sandbox: exit codes, output, crash-and-rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cwqbo.sandbox.generator import LONG_INVOICE_NUMBER
from cwqbo.sandbox.server import Sandbox
from tests.e2e.harness import connect_home

pytestmark = pytest.mark.e2e


@dataclass
class Env:
    home: Path
    sandbox: Sandbox

    def run(self, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CWQBO_")}
        env.update({"CWQBO_HOME": str(self.home), "COLUMNS": "200", **(extra or {})})
        return subprocess.run([sys.executable, "-m", "cwqbo", *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=60)

    def invoke(self, *args: str) -> Any:
        """In-process (CliRunner): same code path without a new interpreter; for quick checks."""
        from typer.testing import CliRunner

        from cwqbo.cli.main import app

        return CliRunner().invoke(app, list(args))

    def docs(self) -> list[dict[str, Any]]:
        return [d for e in ("Invoice", "CreditMemo") for d in self.sandbox.qbo.documents(e)]

    def batches(self) -> list[dict[str, Any]]:
        """cwqbo's CW batches, each with the invoices whose GL entries it holds (a batch record never lists them)."""
        return [{**b, "invoices": self.sandbox.cw.invoices_in_batch(b["id"])} for b in self.sandbox.cw.batches()
                if b["batchIdentifier"].startswith("cwqbo-")]


@pytest.fixture
def env(home: Path) -> Iterator[Env]:

    sandbox = Sandbox(seed=3, invoices=30)
    server = sandbox.start()
    try:
        connect_home(home, sandbox, server.url)
        yield Env(home, sandbox)
    finally:
        server.stop()


def test_sync_needs_exactly_one_selection(home: Path) -> None:
    e = Env(home, None)  # type: ignore[arg-type]
    for args in ((), ("--all", "--invoice", "1")):
        r = e.invoke("sync", *args)
        assert r.exit_code == 2 and "exactly one of --select, --all or --invoice" in r.stderr


def test_select_without_a_terminal_is_a_usage_error(home: Path) -> None:
    r = Env(home, None).run("sync", "--select")  # type: ignore[arg-type]
    assert r.returncode == 2, r.stderr
    assert "--select needs an interactive terminal" in r.stderr and "--invoice" in r.stderr
    assert "Traceback" not in r.stderr


def test_sync_all_json_then_rerun_creates_nothing(env: Env) -> None:
    r = env.run("sync", "--all", "--json")
    body = json.loads(r.stdout)
    assert r.returncode == 1, r.stderr  # the seeded 30-character invoice number fails, alone
    assert body["command"] == "sync" and body["exit_code"] == 1
    data = body["data"]
    failed = [i for i in data["items"] if i["outcome"] == "failed"]
    assert [i["number"] for i in failed] == [LONG_INVOICE_NUMBER] and "21" in failed[0]["reason"]
    created = [i for i in data["items"] if i["outcome"] == "created"]
    assert len(created) == len(env.docs()) >= 15
    assert all(isinstance(i["total"], str) for i in created), "money is a string in --json"
    assert [b["batchIdentifier"] for b in env.batches()] == [data["batch_identifier"]]
    assert sorted(env.batches()[0]["invoices"]) == sorted(i["cw_id"] for i in created)
    again = env.run("sync", "--all", "--json")
    assert json.loads(again.stdout)["data"]["created"] == 0
    assert len(env.docs()) == len(created) and len(env.batches()) == 1


def test_sync_one_invoice_prints_a_summary_table(env: Env) -> None:
    number = next(str(i["invoiceNumber"]) for i in env.sandbox.cw.invoices()
                  if i["id"] in env.sandbox.cw.unposted_ids() and i["invoiceNumber"] != LONG_INVOICE_NUMBER)
    r = env.run("sync", "--invoice", number)
    assert r.returncode == 0, r.stderr
    assert number in r.stdout and "created" in r.stdout and "cwqbo-" in r.stdout
    assert [d["DocNumber"] for d in env.docs()] == [number]


def test_unknown_invoice_number_is_a_clear_error(env: Env) -> None:
    r = env.invoke("sync", "--invoice", "NO-SUCH-1")
    assert r.exit_code == 2 and "NO-SUCH-1" in r.stderr and "not among" in r.stderr
    assert env.docs() == []


def test_dry_run_writes_nothing(env: Env) -> None:
    r = env.invoke("sync", "--all", "--dry-run")
    assert "Dry run" in r.stdout and "would be created" in r.stdout
    assert env.docs() == [] and env.batches() == []
    assert r.exit_code == 1  # the seeded 30-character invoice number would fail


def test_killed_mid_sync_then_rerun_is_exactly_once(env: Env) -> None:
    r = env.run("sync", "--all", extra={"CWQBO_CRASH_AT": "sync.after_qbo_response"})
    assert r.returncode == -signal.SIGKILL
    committed = len(env.docs())
    assert committed > 0 and env.batches() == []
    again = env.run("sync", "--all", "--json")
    data = json.loads(again.stdout)["data"]
    numbers = [d["DocNumber"] for d in env.docs()]
    assert len(numbers) == len(set(numbers)), "no duplicate documents after the crash"
    assert any(i["outcome"] == "adopted" for i in data["items"])
    synced = [i["cw_id"] for i in data["items"] if i["outcome"] in ("created", "adopted")]
    assert sorted(env.batches()[0]["invoices"]) == sorted(synced)


def test_second_sync_while_one_runs_exits_75(env: Env) -> None:
    from filelock import FileLock

    lock = FileLock(str(env.home / "locks" / "demo.sync.lock"))
    (env.home / "locks").mkdir(exist_ok=True)
    with lock:
        r = env.run("sync", "--all")
    assert r.returncode == 75 and "another cwqbo sync is running" in r.stderr


def test_scheduled_run_in_manual_mode_is_a_quiet_noop(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CWQBO_SCHEDULED", "1")
    r = env.invoke("sync", "--all")
    assert r.exit_code == 0 and "manual" in r.stderr
    assert env.docs() == []


def test_select_on_a_terminal_syncs_the_ticked_invoices(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process (CliRunner) so the checklist can be answered; the sandbox is still on loopback."""
    import questionary
    from typer.testing import CliRunner

    from cwqbo.cli import sync as cli_sync
    from cwqbo.cli.main import app

    offered: list[str] = []

    class Answer:
        def __init__(self, choices: list[Any]) -> None:
            offered.extend(c.value for c in choices)

        def unsafe_ask(self) -> list[str]:
            return [offered[0]]

    class Yes:
        def unsafe_ask(self) -> bool:
            return True

    monkeypatch.setattr(cli_sync, "_is_tty", lambda: True)
    monkeypatch.setattr(questionary, "checkbox", lambda message, choices: Answer(choices))
    monkeypatch.setattr(questionary, "confirm", lambda message, default=False: Yes())
    result = CliRunner().invoke(app, ["sync", "--select"])
    assert result.exit_code == 0, result.output
    assert len(offered) >= 15
    assert [d["DocNumber"] for d in env.docs()] == [offered[0]]


def test_a_sync_of_one_invoice_judges_the_rest_as_it_reads_so_the_next_listing_judges_nothing(
        env: Env, judged: list[int]) -> None:
    """A sync that leaves most of the cache unsynced (one invoice here; a selection or a dry run alike) memoises the
    verdicts of each page it reads: the `--json` listing after it answers from the memo (no wait at 100,000)."""
    invoices = [r for r in env.sandbox.cw.invoices() if r["id"] in set(env.sandbox.cw.unposted_ids())
                and r["invoiceNumber"] != LONG_INVOICE_NUMBER]
    from cwqbo.settings.paths import Paths
    from cwqbo.state.store import Store
    from cwqbo.sync.discover import WATERMARK
    from tests.e2e.harness import PROFILE

    r = env.invoke("sync", "--invoice", invoices[0]["invoiceNumber"])  # the first run learns the QBO company
    assert r.exit_code == 0, r.output
    store = Store.open(Paths(env.home, env.home).db_file(PROFILE))
    store.set_meta(WATERMARK, None)  # the next run reads every invoice again (as after a filter change)
    store.close()
    judged.clear()
    r = env.invoke("sync", "--invoice", invoices[1]["invoiceNumber"])
    assert r.exit_code == 0, r.output
    assert len(judged) >= len(invoices) - 2, "the sync's refresh judged the pages it stored"
    judged.clear()
    listing = env.invoke("list-unsynced", "--no-refresh", "--json")
    listed = {i["cw_id"] for i in json.loads(listing.stdout)["data"]["invoices"]}
    assert judged == [] and not {invoices[0]["id"], invoices[1]["id"]} & listed and len(listed) >= len(invoices) - 2
