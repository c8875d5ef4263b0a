"""Shared helpers for the end-to-end tests: a loopback sandbox in this process, a connected temp home, the CLI.

The sandbox's state lives in the test process (a background thread serves it on 127.0.0.1), so a test can
kill the `cwqbo` subprocess at any point and then look at exactly what QuickBooks and ConnectWise hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from cwqbo import money
from cwqbo.sandbox.faults import DropConnection
from cwqbo.sandbox.generator import LONG_INVOICE_NUMBER
from cwqbo.sandbox.server import QBO_CLIENT_ID, QBO_CLIENT_SECRET, Sandbox

PROFILE = "demo"
CLI_TIMEOUT = 90.0
KILLED = -signal.SIGKILL


@dataclass
class E2E:
    """One connected CWQBO_HOME talking to one loopback sandbox."""

    home: Path
    sandbox: Sandbox
    url: str
    expected: dict[int, dict[str, Any]] = field(default_factory=dict)  # cw_id → CW invoice that must end in QBO
    must_fail: set[str] = field(default_factory=set)  # invoice numbers that fail on purpose
    documents_answered: list[int] = field(default_factory=list)  # documents_held_after: each answered call's items

    # -- running the CLI ------------------------------------------------------------------------------

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CWQBO_")}
        env.update({"CWQBO_HOME": str(self.home), "COLUMNS": "200", **(extra or {})})
        return env

    def run_cli(self, *args: str, env: dict[str, str] | None = None,
                timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """`python -m cwqbo ARGS` in a fresh interpreter (so CWQBO_CRASH_AT's SIGKILL takes only it)."""
        return subprocess.run([sys.executable, "-m", "cwqbo", *args], capture_output=True, text=True,
                              env=self.env(env), stdin=subprocess.DEVNULL, timeout=timeout)

    def start_cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "cwqbo", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(env), stdin=subprocess.DEVNULL)

    def sync_until_done(self, attempts: int = 4) -> subprocess.CompletedProcess[str]:
        """Re-run `sync --all --json` (no crash) until it finishes with 0 or 1 — what cron would do."""
        last: subprocess.CompletedProcess[str] | None = None
        for _ in range(attempts):
            last = self.run_cli("sync", "--all", "--json")
            if last.returncode in (0, 1):
                return last
        assert last is not None
        raise AssertionError(f"sync never finished: exit {last.returncode}\n{last.stderr}")

    def invoke(self, *args: str) -> Any:
        """The same CLI in this process (Typer's CliRunner): for read-only checks, without interpreter start-up."""
        from typer.testing import CliRunner

        from cwqbo.cli.main import app

        return CliRunner().invoke(app, list(args), env={"CWQBO_HOME": str(self.home), "CWQBO_CRASH_AT": ""})

    def sync_fast(self, *args: str, scale: float = 500.0) -> Any:
        """`cwqbo sync ARGS` in this process with the app's clock running `scale`× fast.

        Retry and 429 back-offs are real seconds in a subprocess (1, 2, 4, 8 … s); a scaled clock lets a
        storm of faults play out in well under a second while every request still crosses the loopback socket.
        """
        from unittest import mock

        from cwqbo.clock import ScaledClock

        with mock.patch("cwqbo.context.Clock", lambda: ScaledClock(scale)):
            return self.invoke("sync", *args)

    def sync_fast_until_done(self, attempts: int = 4) -> Any:
        last: Any = None
        for _ in range(attempts):
            last = self.sync_fast("--all")
            if last.exit_code in (0, 1):
                return last
        raise AssertionError(f"sync never finished: exit {last.exit_code}\n{last.output}")

    def json_of(self, *args: str) -> dict[str, Any]:
        r = self.invoke(*args, "--json")
        assert r.stdout.strip(), f"`cwqbo {' '.join(args)} --json` printed nothing (exit {r.exit_code}): {r.output}"
        body: dict[str, Any] = money.loads(r.stdout)
        return body

    # -- the remote side ------------------------------------------------------------------------------

    def remote_state(self) -> dict[str, Any]:
        """What the sandbox reports at /_sandbox/state (QBO documents, CW batches, faults)."""
        with httpx.Client(timeout=10) as client:
            response = client.get(f"{self.url}/_sandbox/state")
        response.raise_for_status()
        state: dict[str, Any] = money.loads(response.content)
        return state

    def control(self, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        with httpx.Client(timeout=10) as client:
            response = client.post(f"{self.url}/_sandbox/{route}", content=money.dumps(body or {}),
                                    headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        out: dict[str, Any] = money.loads(response.content)
        return out

    def faults(self, **knobs: Any) -> None:
        self.control("faults", {k: (Decimal(str(v)) if isinstance(v, float) else v) for k, v in knobs.items()})

    def clear_faults(self) -> None:
        self.faults(throttle_next=0, error_next=0, error_rate=0.0, timeout_next=0, timeout_seconds=0.0,
                    drop_after_commit_next=0, latency_seconds=0.0, paths=[])

    @contextlib.contextmanager
    def documents_held_after(self, answered: int) -> Iterator[None]:
        """QBO answers the first `answered` document batch calls; later ones hang and create nothing until the block
        ends, then drop. A kill in a run that sends ahead then leaves exactly those documents in QBO, whatever the
        machine's speed (customer batches are not counted: they may or may not travel in batch calls)."""
        qbo = self.sandbox.qbo
        original = qbo._api
        seen: list[int] = []
        released = threading.Event()
        self.documents_answered.clear()

        def gated(request: httpx.Request, tid: str, in_flight: int) -> httpx.Response:
            body = request.content
            if request.url.path.endswith("/batch") and (b'"Invoice"' in body or b'"CreditMemo"' in body):
                seen.append(1)  # list.append is atomic: the server's threads may count at once
                if len(seen) > answered:
                    released.wait(CLI_TIMEOUT)
                    raise DropConnection("held by the test, never answered")
                self.documents_answered.append(len(json.loads(body)["BatchItemRequest"]))
            return original(request, tid, in_flight)

        qbo._api = gated  # type: ignore[method-assign]
        try:
            yield
        finally:
            qbo._api = original  # type: ignore[method-assign]
            released.set()

    def expire_access_tokens(self) -> None:
        self.control("expire-access-tokens")

    def docs(self) -> list[dict[str, Any]]:
        """Every Invoice and CreditMemo in the simulated QuickBooks company."""
        return [{**d, "_entity": e} for e in ("Invoice", "CreditMemo") for d in self.sandbox.qbo.documents(e)]

    def doc_counts(self) -> Counter[str]:
        return Counter(str(d.get("DocNumber")) for d in self.docs())

    def cw_batches(self) -> list[dict[str, Any]]:
        return [{**b, "invoices": self.sandbox.cw.invoices_in_batch(b["id"])} for b in self.sandbox.cw.batches()
                if str(b["batchIdentifier"]).startswith("cwqbo-")]

    def batched_ids(self) -> Counter[int]:
        """Invoices in cwqbo's CW batches, read from the GL entries each batch holds (a batch never lists them)."""
        return Counter(int(i) for b in self.cw_batches() for i in b["invoices"])

    @property
    def batchable(self) -> set[int]:
        """Expected invoices that can go into a CW batch: all but those ConnectWise keeps without GL entries."""
        return set(self.expected) - set(self.sandbox.cw.no_gl_invoice_ids())

    def tokens(self, secrets_file: Path | None = None) -> dict[str, Any]:
        raw = json.loads((secrets_file or self.secrets_file).read_text(encoding="utf-8"))
        key = next(k for k in raw if k.endswith("qbo_tokens") or "token" in k.lower())
        tokens: dict[str, Any] = json.loads(raw[key])
        return tokens

    def revoke_refresh_token(self) -> None:
        """Disconnect the app on the QuickBooks side (what a user does under Apps → Disconnect)."""
        token = self.tokens()["refresh_token"]
        with httpx.Client(timeout=10) as client:
            r = client.post(f"{self.url}/v2/oauth2/tokens/revoke", auth=(QBO_CLIENT_ID, QBO_CLIENT_SECRET),
                            json={"token": token})
        assert r.status_code == 200, r.text

    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.json"

    # -- the exactly-once oracle ----------------------------------------------------------------------

    def assert_exactly_once(self) -> None:
        """Every invoice that should sync is in QBO once with CW's total, and batched once; nothing else."""
        counts = self.doc_counts()
        dupes = {n: c for n, c in counts.items() if c > 1}
        assert not dupes, f"duplicate QuickBooks documents: {dupes}"
        by_number = {str(d.get("DocNumber")): d for d in self.docs()}
        missing = [inv["invoiceNumber"] for inv in self.expected.values() if inv["invoiceNumber"] not in by_number]
        assert not missing, f"invoices lost (never reached QuickBooks): {missing}"
        expected_numbers = {inv["invoiceNumber"] for inv in self.expected.values()}
        extra = sorted(set(by_number) - expected_numbers)
        assert not extra, f"QuickBooks holds documents that should not be there: {extra}"
        for inv in self.expected.values():
            doc = by_number[inv["invoiceNumber"]]
            want_entity = "CreditMemo" if money.to_decimal(inv["total"]) < 0 else "Invoice"
            assert doc["_entity"] == want_entity, (inv["invoiceNumber"], doc["_entity"])
            assert money.to_decimal(doc["TotalAmt"]) == abs(money.to_decimal(inv["total"])), (
                f"{inv['invoiceNumber']}: QBO total {doc['TotalAmt']} != CW total {inv['total']}")
        for entity, key in (("Customer", "DisplayName"), ("Item", "Name")):
            names = Counter(str(o.get(key)) for o in self.sandbox.qbo.documents(entity))
            assert max(names.values(), default=1) == 1, f"duplicate QBO {entity}s: {[n for n, c in names.items() if c > 1]}"
        batched = self.batched_ids()
        twice = {i: c for i, c in batched.items() if c > 1}
        assert not twice, f"invoices in more than one ConnectWise batch: {twice}"
        assert set(batched) == self.batchable, (
            f"CW batches differ from QBO: unbatched {sorted(self.batchable - set(batched))}, "
            f"batched but not expected {sorted(set(batched) - self.batchable)}")

    def assert_ledger_settled(self) -> None:
        """No invoice left half-done ('intent') in the local ledger."""
        import sqlite3

        db = sqlite3.connect(self.home / f"cwqbo-{PROFILE}.db")
        try:
            states = dict(db.execute("select state, count(*) from ledger group by state").fetchall())
        finally:
            db.close()
        assert states.get("intent", 0) == 0, f"ledger rows stuck in 'intent': {states}"

    def assert_cli_accounts_for_everything(self, *, by_run: bool = False) -> None:
        """`list-unsynced --json` lists only the planned failures; `history --json` knows every synced invoice.

        History accounts for an invoice through a run's items (`history show RUN`) or, failing that, through
        its own story (`history --invoice N`: in QBO, with the document id QBO has, and batched).
        With by_run=True the run items alone must account for it.
        """
        unsynced = self.json_of("list-unsynced")
        numbers = {str(i.get("number")) for i in _items(unsynced["data"])}
        assert numbers == self.must_fail, f"list-unsynced shows {sorted(numbers)}, expected {sorted(self.must_fail)}"
        runs = self.json_of("history")["data"]["runs"]
        assert runs, "history has no runs"
        seen: set[str] = set()
        for run in runs:
            detail = self.json_of("history", "show", str(run["id"]), "--limit", "0")
            seen |= {str(i.get("number") or i.get("invoice_number")) for i in _items(detail["data"])
                     if i.get("outcome") in ("created", "adopted", "updated")}
        want = {inv["invoiceNumber"] for inv in self.expected.values()}
        if by_run:
            assert want <= seen, f"no run's items account for: {sorted(want - seen)}"
            return
        qbo_ids = {str(d.get("DocNumber")): str(d["Id"]) for d in self.docs()}
        for number in sorted(want - seen)[:5]:  # a sample: each story is one more CLI call
            story = self.json_of("history", "--invoice", number)["data"]["invoice"]
            row = story.get("ledger") or {}
            assert row.get("state") == "batched" and str(row.get("qbo_id")) == qbo_ids[number], (
                f"history does not account for {number}: {row}")


def _items(data: Any) -> list[dict[str, Any]]:
    """The per-invoice rows of a --json envelope's data, whatever the key is called."""
    if isinstance(data, list):
        return data
    for key in ("invoices", "items", "run_items"):
        if isinstance(data.get(key), list):
            return list(data[key])
    for value in data.values():
        if isinstance(value, dict):
            found = _items(value)
            if found:
                return found
    return []


def expected_from(sandbox: Sandbox) -> tuple[dict[int, dict[str, Any]], set[str]]:
    """Closed, not-yet-exported CW invoices: all must reach QBO except the one whose number is too long."""
    unposted = set(sandbox.cw.unposted_ids())
    expected: dict[int, dict[str, Any]] = {}
    must_fail: set[str] = set()
    for inv in sandbox.cw.invoices():
        if not sandbox.cw.is_closed(int(inv["id"])) or inv["id"] not in unposted:
            continue
        if inv["invoiceNumber"] == LONG_INVOICE_NUMBER:
            must_fail.add(inv["invoiceNumber"])
            continue
        expected[int(inv["id"])] = {"invoiceNumber": str(inv["invoiceNumber"]), "total": inv["total"]}
    return expected, must_fail


def connect_home(home: Path, sandbox: Sandbox, url: str) -> None:
    """A file-secret-store profile connected through the same core functions `cwqbo demo` uses."""
    from cwqbo import connect
    from cwqbo.context import AppContext
    from cwqbo.settings.config import Config, Paths

    actx = AppContext(Paths(home, home), Config(default_profile=PROFILE), PROFILE)
    actx.ensure_profile().secret_store = "file"
    creds = sandbox.credentials(url)
    connect.connect_sandbox_connectwise(actx, creds["connectwise"])
    connect.connect_sandbox_quickbooks(actx, creds["quickbooks"])
    actx.save_config()


def make_e2e(home: Path, *, invoices: int, seed: int = 5) -> Iterator[E2E]:
    """Start a sandbox (background thread), connect `home` to it, yield; stop the server after."""
    sandbox = Sandbox(seed=seed, invoices=invoices)
    server = sandbox.start()
    try:
        connect_home(home, sandbox, server.url)
        expected, must_fail = expected_from(sandbox)
        yield E2E(home, sandbox, server.url, expected, must_fail)
    finally:
        server.stop()


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
