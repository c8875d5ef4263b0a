"""Payments on the command line: `sync --payments`, the payments part of `sync --all`, `list-unsynced --payments`.

Thin: take the sync lock, open the clients, call `sync.payments.run_payments`, render its report (or its `--json`).
"""

from __future__ import annotations

from contextlib import ExitStack, closing
from typing import TYPE_CHECKING, Any

from cwqbo.cli import render
from cwqbo.errors import EXIT_OK, EXIT_SOME_FAILED

if TYPE_CHECKING:  # the engine is imported inside the commands: `cwqbo --help` must not load it
    from cwqbo.context import AppContext
    from cwqbo.sync.payments_model import PaymentItem, PaymentsReport


def run(app_ctx: AppContext, *, dry_run: bool, quiet_repeats: bool, locked: bool = False) -> PaymentsReport:
    """One payments run under the profile's sync lock (`locked`: the caller holds it already)."""
    from cwqbo.sync.payments import run_payments
    from cwqbo.sync.payments_model import ClientRemote, PaymentDeps, PaymentOptions

    with ExitStack() as opened:
        if not locked:
            opened.enter_context(app_ctx.sync_lock())
        profile = app_ctx.profile
        cw = opened.enter_context(closing(app_ctx.cw_client()))
        qbo = opened.enter_context(closing(app_ctx.qbo_client()))
        store = opened.enter_context(closing(app_ctx.open_store()))
        deps = PaymentDeps(store=store, remote=ClientRemote(cw, qbo), prefs=profile.prefs,
                           realm=str(profile.quickbooks.realm_id), clock=app_ctx.clock,
                           calls=lambda: (cw.calls, qbo.calls))
        return run_payments(deps, PaymentOptions(dry_run=dry_run, quiet_repeats=quiet_repeats))


def exit_code(report: PaymentsReport) -> int:
    return EXIT_OK if report.ok else EXIT_SOME_FAILED


def errors(report: PaymentsReport) -> list[dict[str, Any]]:
    """The `--json` envelope's errors for a payments report: failed payments and balances that differ."""
    out = [{"code": "payment_failed", "message": f"{i.invoice_number}: {i.error}"}
           for i in report.items if i.outcome == "failed"]
    out += [{"code": "balance_mismatch", "message": _mismatch_text(m.invoice_number, m.cw_balance, m.qbo_balance)}
            for m in report.mismatches]
    return out


def _mismatch_text(number: str, cw: Any, qbo: Any) -> str:
    if cw is None or qbo is None:
        return f"invoice {number}: could not compare its ConnectWise and QuickBooks balances"
    return (f"invoice {number}: ConnectWise balance {render.money(cw)} but QuickBooks balance {render.money(qbo)} "
            f"(difference {render.money(cw - qbo)})")


def _item_json(i: PaymentItem) -> dict[str, Any]:
    return {"qbo_payment_id": i.qbo_payment_id, "cw_invoice_id": i.cw_invoice_id, "number": i.invoice_number,
            "amount": i.amount, "payment_date": i.payment_date, "type": i.type, "outcome": i.outcome,
            "credit_cw_id": i.credit_cw_id or None, "cw_payment_id": i.cw_payment_id, "reason": i.error}


def report_data(report: PaymentsReport) -> dict[str, Any]:
    return {"run_id": report.run_id, "dry_run": report.dry_run, "status": report.status, "posted": report.posted,
            "reversed": report.reversed, "failed": report.failed, "waiting": report.waiting,
            "recovered": report.recovered, "read": report.read, "watermark": report.watermark,
            "message": report.message, "cw_calls": report.cw_calls, "qbo_calls": report.qbo_calls,
            "duration_seconds": round(report.duration, 3), "items": [_item_json(i) for i in report.items],
            "mismatches": [{"cw_invoice_id": m.cw_invoice_id, "number": m.invoice_number,
                            "cw_balance": m.cw_balance, "qbo_balance": m.qbo_balance, "difference": m.difference}
                           for m in report.mismatches]}


def show(report: PaymentsReport, *, quiet: bool = False) -> None:
    """Human output; `quiet` (cron) prints only failures and balance differences."""
    out = render.out
    failed = [i for i in report.items if i.outcome == "failed"]
    shown = failed if quiet else report.items
    if report.dry_run:
        out.print("[bold]Dry run[/bold]: no payment was written to ConnectWise or the ledger.")
    if shown:
        title = ("Failed payments" if quiet else "Payments that would change in ConnectWise" if report.dry_run
                 else "Payments")
        out.print(render.table(
            ["Number", "Date", "Amount", "Type", "Outcome", "QBO payment", "CW payment"],
            [(i.invoice_number, i.payment_date, i.amount, i.type + (" (credit memo)" if i.credit_cw_id else ""),
              i.outcome, i.qbo_payment_id, i.cw_payment_id or "") for i in shown], title=title))
        render.notes_below("Reasons:", [(i.invoice_number, i.error) for i in shown if i.error])
    elif not quiet:
        out.print("No payments to bring back: ConnectWise already has every QuickBooks payment on cwqbo's invoices.",
                  markup=False)
    for m in report.mismatches:
        render.warn(_mismatch_text(m.invoice_number, m.cw_balance, m.qbo_balance))
    if report.dry_run:
        out.print(f"{report.count('would-post')} payment(s) would be posted, {report.count('would-reverse')} "
                  f"reversed, {len(failed)} would fail.", markup=False)
    elif not quiet or failed or report.mismatches:
        out.print(report.message or "", markup=False)


def list_unsynced(app_ctx: AppContext, *, as_json: bool) -> int:
    """`list-unsynced --payments`: QuickBooks payments on cwqbo's invoices that ConnectWise does not have yet (a
    dry run: reads both services, writes nothing)."""
    report = run(app_ctx, dry_run=True, quiet_repeats=False)
    pending = [i for i in report.items if i.outcome in ("would-post", "would-reverse", "failed")]
    if as_json:
        render.emit_json("list-unsynced", "ok", EXIT_OK, {"payments": [_item_json(i) for i in pending]})
        return EXIT_OK
    if not pending:
        render.out.print("Every QuickBooks payment on cwqbo's invoices is in ConnectWise.", markup=False)
        return EXIT_OK
    render.out.print(render.table(
        ["Number", "Date", "Amount", "Type", "Would", "QBO payment"],
        [(i.invoice_number, i.payment_date, i.amount, i.type,
          {"would-post": "post", "would-reverse": "reverse"}.get(i.outcome, "fail"), i.qbo_payment_id)
         for i in pending], title="QuickBooks payments not yet in ConnectWise"))
    render.notes_below("Reasons:", [(i.invoice_number, i.error) for i in pending if i.error])
    render.info("bring them back with `cwqbo sync --payments`")
    return EXIT_OK
