"""`cwqbo demo`: the whole journey against the built-in sandbox — no accounts, no network, under a minute.

Starts both simulated services on 127.0.0.1 in a thread, sets up a throwaway profile in a temporary
CWQBO_HOME, connects through the same code paths a real user's `connect` uses (ConnectWise companyinfo
and key check; QuickBooks OAuth code flow, whose simulated consent screen approves at once), then lists
unsynced invoices, syncs them all, and shows the history and the ConnectWise batch.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from cwqbo.cli import render

DEMO_PROFILE = "demo"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    invoices: int = typer.Option(40, "--invoices", min=1, max=2000, help="How many sandbox invoices to generate."),
    seed: int = typer.Option(1, "--seed", help="Seed for the generated data (same seed, same invoices)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the demo home and print how to keep exploring it."),
) -> None:
    """Run the full sync journey against a local sandbox (no accounts, no network)."""
    from cwqbo.sandbox.server import Sandbox

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="cwqbo-demo-"))
    sandbox = Sandbox(seed=seed, invoices=invoices)
    server = sandbox.start()
    code = 0
    try:
        code = _journey(home, sandbox, server.url, keep)
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    render.out.print(f"\nDemo finished in {time.monotonic() - started:.1f} s.")
    raise typer.Exit(code)


def _step(n: int, text: str) -> None:
    render.out.print(f"\n[bold cyan]{n}.[/bold cyan] [bold]{text}[/bold]")


def _journey(home: Path, sandbox: Any, url: str, keep: bool) -> int:
    from cwqbo import connect
    from cwqbo.state import cache
    from cwqbo.sync import discover
    from cwqbo.state import ledger
    from cwqbo.cli.sync import items_table
    from cwqbo.settings.config import Config, Paths
    from cwqbo.context import AppContext
    from cwqbo.sync.engine import SyncDeps, SyncOptions, run_sync

    out = render.out
    creds = sandbox.credentials(url)
    _step(1, "Sandbox")
    out.print(f"Simulated ConnectWise and QuickBooks Online are listening on {url} "
              f"({sandbox.n_invoices} generated invoices, seed {sandbox.seed}).")
    out.print(f"Demo home (CWQBO_HOME): {home}")

    paths = Paths(home, home)
    config = Config(default_profile=DEMO_PROFILE)
    actx = AppContext(paths, config, DEMO_PROFILE)
    profile = actx.ensure_profile()
    profile.secret_store = "file"

    _step(2, "Connect ConnectWise (companyinfo + API key check)")
    cw_done = connect.connect_sandbox_connectwise(actx, creds["connectwise"])
    cw_name = cw_done.settings.company_name or cw_done.settings.company_id
    out.print(f"Connected to ConnectWise company [bold]{cw_name}[/bold] at {creds['connectwise']['site']}.")

    _step(3, "Connect QuickBooks Online (OAuth 2.0 authorization-code flow)")
    qbo_done = connect.connect_sandbox_quickbooks(actx, creds["quickbooks"])
    realm = qbo_done.realm_id
    out.print(f"Authorized; connected to QuickBooks company [bold]{qbo_done.company_name}[/bold] (realm {realm}).")
    actx.save_config()

    store = actx.open_store()
    clients: list[Any] = []
    try:
        cw = actx.cw_client()
        clients.append(cw)
        qbo = actx.qbo_client()
        clients.append(qbo)

        _step(4, "cwqbo list-unsynced")
        discover.refresh(cw, store, profile.filters, clock=actx.clock)
        rows = cache.unsynced(store)
        shown = rows[:12]
        out.print(render.table(["Number", "Date", "Company", "Type", "Total"],
                               [(r.number, r.date, r.company_name, r.type, r.total) for r in shown],
                               title=f"{len(rows)} Closed invoices not yet in QuickBooks"))
        if len(rows) > len(shown):
            out.print(f"… and {len(rows) - len(shown)} more.")

        _step(5, "cwqbo sync --all")
        with actx.sync_lock():
            report = run_sync(SyncDeps(store=store, cw=cw, qbo=qbo, prefs=profile.prefs, filters=profile.filters,
                                       realm=realm, clock=actx.clock),
                              SyncOptions(selection="all", refresh=False, trigger="demo"))
        created = [i for i in report.items if i.outcome in ("created", "adopted")]
        failed = [i for i in report.items if i.outcome == "failed"]
        out.print(items_table(created[:8], title=f"{len(created)} documents created in QuickBooks (first 8)"))
        if failed:
            out.print(items_table(failed, title="Failed (on purpose: the sandbox seeds problem invoices)"))
        out.print(f"{report.created} sent, {report.failed} failed, {report.qbo_calls} QuickBooks calls, "
                  f"{report.cw_calls} ConnectWise calls, {report.duration:.1f} s.")

        _step(6, "cwqbo history")
        run = ledger.run(store, report.run_id) if report.run_id is not None else None
        if run:
            started = str(run["started_at"] or "")[:16].replace("T", " ")
            out.print(render.table(["Run", "Started (UTC)", "Status", "Created", "Failed", "ConnectWise batch"],
                                   [(run["id"], started, run["status"], run["created"], run["failed"],
                                     run["batch_identifier"] or "")]))

        _step(7, "The ConnectWise accounting batch")
        batch = _cw_batch(url, sandbox, report.batch_identifier)
        if report.batch_identifier and batch is not None:
            out.print(f"ConnectWise batch [bold]{report.batch_identifier}[/bold] holds exactly the "
                      f"{len(batch)} invoices QuickBooks confirmed.")
        elif report.batch_error:
            render.warn(report.batch_error)
    finally:
        for client in clients:
            client.close()
        store.close()

    _step(8, "Try next")
    saved = False
    if keep:
        try:
            sandbox.save_state(home / "sandbox-state.json")
            saved = True
        except (TypeError, ValueError, OSError) as exc:
            render.warn(f"the sandbox's data could not be saved ({exc}); the demo home is kept without it")
    if saved:
        port = url.rsplit(":", 1)[-1]
        out.print(f"The demo home is kept. Start its sandbox again (same port, same data) and explore:\n"
                  f"  cwqbo sandbox serve --port {port} --state {home / 'sandbox-state.json'} &\n"
                  f"  export CWQBO_HOME={home}\n"
                  f"  cwqbo history\n  cwqbo sync --all      # a re-run creates nothing new")
    elif keep:
        out.print(f"The demo home is kept (config, ledger and history):\n  export CWQBO_HOME={home}\n"
                  "  cwqbo history")
    else:
        out.print("  cwqbo demo --keep           keep the demo home and explore it with the other commands\n"
                  "  cwqbo sandbox serve         run the sandbox yourself and `cwqbo connect` to it\n"
                  "  cwqbo connect               connect your real ConnectWise and QuickBooks")
    return 0


def _cw_batch(url: str, sandbox: Any, identifier: str | None) -> list[int] | None:
    """The batch's invoice ids as the sandbox reports them (`/_sandbox/state`)."""
    if not identifier:
        return None
    from cwqbo import http, money

    batches: list[dict[str, Any]] = []
    try:
        with http.new_client() as client:
            response = client.get(f"{url}/_sandbox/state")
        if response.status_code == 200:
            batches = money.loads(response.content).get("cw", {}).get("batches", [])
    except Exception:  # noqa: BLE001 - the summary is a nicety; fall back to the in-process view
        batches = []
    if not batches:
        batches = [{"batchIdentifier": b["batchIdentifier"], "invoiceIds": sandbox.cw.invoices_in_batch(b["id"])}
                   for b in sandbox.cw.batches()]
    for b in batches:
        if b.get("batchIdentifier") == identifier:
            return [int(i) for i in b.get("invoiceIds") or []]
    return None
