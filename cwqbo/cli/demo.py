"""`cwqbo demo`: the whole journey against the built-in sandbox — no accounts, no network, under a minute.

Starts both simulated services on 127.0.0.1 in a thread, sets up a throwaway profile in a temporary
CWQBO_HOME, connects through the same code paths a real user's `connect` uses (ConnectWise companyinfo
and key check; QuickBooks OAuth code flow, whose simulated consent screen approves at once), then lists
unsynced invoices, syncs them all, and shows the history and the ConnectWise batch. Then a bookkeeper receives three
payments in QuickBooks (through the sandbox's control route), the payments engine that `sync --payments` runs brings
them back onto the ConnectWise invoices, and the balances on both sides are shown side by side.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cwqbo.cli import render

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.sync.model import ItemResult
    from cwqbo.sync.payments_model import PaymentsReport, Remote

DEMO_PROFILE = "demo"
CENT = Decimal("0.01")


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
    from cwqbo.state import runs
    from cwqbo.cli.sync import items_table
    from cwqbo.settings.config import Config
    from cwqbo.settings.paths import Paths
    from cwqbo.context import AppContext
    from cwqbo.sync.engine import SyncDeps, SyncOptions, run_sync
    from cwqbo.sync.payments_model import ClientRemote

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
        run = runs.run(store, report.run_id) if report.run_id is not None else None
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

        _step(8, "cwqbo sync --payments")
        paid = _receive_payments(url, sandbox, created, day=_today(actx.clock.now()))
        remote = ClientRemote(cw, qbo)
        with actx.sync_lock():
            pay = _bring_payments_back(store, remote, profile.prefs, realm, actx.clock,
                                       lambda: (cw.calls, qbo.calls))
        balances = _balances(pay, remote, {i.cw_id: str(i.qbo_id) for i in created if i.qbo_id})
        code = _show_payments(pay, paid, balances)
    finally:
        for client in clients:
            client.close()
        store.close()

    _step(9, "Try next")
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
                  f"  cwqbo history\n  cwqbo sync --all      # a re-run creates nothing new"
                  + (f"\n  cwqbo history --invoice {paid[0][1][0][0]}   # created, batched and paid" if paid else ""))
    elif keep:
        out.print(f"The demo home is kept (config, ledger and history):\n  export CWQBO_HOME={home}\n"
                  "  cwqbo history")
    else:
        out.print("  cwqbo demo --keep           keep the demo home and explore it with the other commands\n"
                  "  cwqbo sandbox serve         run the sandbox yourself and `cwqbo connect` to it\n"
                  "  cwqbo connect               connect your real ConnectWise and QuickBooks")
    return code


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


def _today(now: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(now, UTC).date().isoformat()


Received = tuple[str, list[tuple[str, Decimal, Decimal]]]  # (what, [(invoice number, amount, balance before)])


def _receive_payments(url: str, sandbox: Any, created: list[ItemResult], *, day: str) -> list[Received]:
    """What a bookkeeper does in QuickBooks: a full payment, a partial one, and one payment across two invoices of
    one customer, received through the sandbox's control route (`POST /_sandbox/qbo/payments`). Invoices in the
    QuickBooks home currency with money still owed on both sides are chosen; fewer when there are too few."""
    from cwqbo import http, money

    home = sandbox.qbo.preferences["CurrencyPrefs"]["HomeCurrency"]["value"]
    docs = {str(d["Id"]): d for d in sandbox.qbo.documents("Invoice")}
    open_: list[tuple[ItemResult, dict[str, Any]]] = []
    for item in created:
        doc = docs.get(str(item.qbo_id)) if item.entity == "Invoice" else None
        currency = (doc or {}).get("CurrencyRef", {}).get("value", home)
        cw_currency = (sandbox.cw.invoice(item.cw_id).get("currency") or {}).get("currencyCode", home)
        if doc is not None and money.to_decimal(doc["Balance"]) > CENT and currency == cw_currency == home:
            open_.append((item, doc))
    plans: list[tuple[str, list[tuple[ItemResult, dict[str, Any], Decimal]]]] = []
    pair = next((found[:2] for found in _by_customer(open_).values() if len(found) >= 2), [])
    if len(open_) - len(pair) < 2:  # too few invoices for all three: a full and a partial payment first
        pair = []
    rest = [x for x in open_ if x not in pair]
    if rest:
        item, doc = rest.pop(0)
        plans.append(("a full payment", [(item, doc, money.to_decimal(doc["Balance"]))]))
    if rest:
        item, doc = rest.pop(0)
        half = (money.to_decimal(doc["Balance"]) / 2).quantize(CENT, rounding=ROUND_DOWN)
        plans.append(("a partial payment", [(item, doc, half)]))
    if not pair:
        pair = next((found[:2] for found in _by_customer(rest).values() if len(found) >= 2), [])
    if pair:
        plans.append(("one payment for two invoices", [(i, d, money.to_decimal(d["Balance"])) for i, d in pair]))
    received: list[Received] = []
    with http.new_client() as client:
        for what, lines in plans:
            body = {"action": "receive", "customer_id": str(lines[0][1]["CustomerRef"]["value"]), "date": day,
                    "lines": [["Invoice", str(d["Id"]), amount] for _, d, amount in lines]}
            response = client.post(f"{url}/_sandbox/qbo/payments", content=money.dumps(body),
                                   headers={"Content-Type": "application/json"})
            if response.status_code != 200:
                render.warn(f"the sandbox did not take the payment ({what}): {response.text}")
                continue
            received.append((what, [(i.number, amount, money.to_decimal(d["Balance"])) for i, d, amount in lines]))
    return received


def _by_customer(invoices: list[tuple[ItemResult, dict[str, Any]]]
                 ) -> dict[str, list[tuple[ItemResult, dict[str, Any]]]]:
    out: dict[str, list[tuple[ItemResult, dict[str, Any]]]] = {}
    for item, doc in invoices:
        out.setdefault(str(doc["CustomerRef"]["value"]), []).append((item, doc))
    return out


def _bring_payments_back(store: Any, remote: Remote, prefs: Any, realm: str, clock: Any,
                         calls: Any) -> PaymentsReport:
    """The payments run, through the same engine function `cwqbo sync --payments` calls."""
    from cwqbo.sync.payments import run_payments
    from cwqbo.sync.payments_model import PaymentDeps, PaymentOptions

    deps = PaymentDeps(store=store, remote=remote, prefs=prefs, realm=realm, clock=clock, calls=calls)
    return run_payments(deps, PaymentOptions())


def _right(value: Decimal | None) -> Any:
    from rich.text import Text

    return Text(render.money(value) if value is not None else "?", justify="right")


Balances = dict[int, tuple[Decimal | None, Decimal | None]]  # CW invoice id → (CW balance, QBO balance)


def _balances(pay: PaymentsReport, remote: Remote, qbo_of: dict[int, str]) -> Balances:
    """Each invoice a payment reached, read back from both services after the run."""
    out: Balances = {}
    for i in pay.items:
        if i.outcome in ("posted", "adopted") and i.cw_invoice_id not in out:
            cw_balance = remote.invoice(i.cw_invoice_id).get("balance")
            qbo_id = qbo_of.get(i.cw_invoice_id)
            out[i.cw_invoice_id] = (None if cw_balance is None else Decimal(str(cw_balance)),
                                    remote.qbo_balance("Invoice", qbo_id) if qbo_id else None)
    return out


def _show_payments(pay: PaymentsReport, received: list[Received], balances: Balances) -> int:
    """The QuickBooks payments received, what reached ConnectWise, and both balances of each invoice after it."""
    out = render.out
    if not received:
        out.print("No invoice reached QuickBooks with money owed in the home currency, so no payment was received.",
                  markup=False)
        return 0
    rows_in = [(what if k == 0 else "", number, amount, _right(before))
               for what, lines in received for k, (number, amount, before) in enumerate(lines)]
    out.print(render.table(["Payment", "Invoice", "Amount", "Owed before"], rows_in,
                           title=f"In QuickBooks, a bookkeeper receives {_n(len(received), 'payment')}"))
    landed = [i for i in pay.items if i.outcome in ("posted", "adopted")]
    rows = [(i.invoice_number, i.qbo_payment_id, i.cw_payment_id or "", i.amount, _right(balances[i.cw_invoice_id][0]),
             _right(balances[i.cw_invoice_id][1])) for i in landed]
    out.print(render.table(["Invoice", "QBO payment", "CW payment", "Amount", "CW balance", "QBO balance"], rows,
                           title="Payments posted to ConnectWise invoices"))
    matching = all(cw is not None and cw == qbo for cw, qbo in balances.values())
    out.print(f"{_n(len(received), 'QuickBooks payment')} became {_n(pay.posted, 'ConnectWise payment')}, "
              f"{pay.failed} failed.", markup=False)
    out.print(("Every balance matches QuickBooks" if matching and not pay.mismatches
               else "Some balances differ from QuickBooks")
              + f"; {pay.cw_calls} ConnectWise calls, {pay.qbo_calls} QuickBooks calls, {pay.duration:.1f} s.",
              markup=False)
    for item in pay.items:
        if item.outcome == "failed":
            render.warn(f"{item.invoice_number}: {item.error}")
    return 0 if pay.ok and matching else 1


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
