"""`cwqbo sync`: send Closed invoices to QuickBooks exactly once and batch them in ConnectWise.

Thin: parse options, take the per-profile sync lock, call `sync.run_sync`, render its report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import typer

from cwqbo.cli import render
from cwqbo.errors import EXIT_OK, EXIT_SOME_FAILED, CwqboError, LockedError, UsageError

if TYPE_CHECKING:  # the engine is imported inside the command: `cwqbo --help` must not load it
    from cwqbo.state.cache import CachedInvoice
    from cwqbo.context import AppContext
    from cwqbo.sync.engine import ItemResult, SyncDeps, SyncEvent, SyncReport
    from cwqbo.sync.model import Trigger


def _is_tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_command)


def sync_command(
    ctx: typer.Context,
    select: bool = typer.Option(False, "--select", help="Pick invoices from a checklist (interactive terminals)."),
    all_: bool = typer.Option(False, "--all", help="Every unsynced invoice (quiet unless something fails; for cron)."),
    invoice: list[str] = typer.Option([], "--invoice", "-i", help="A ConnectWise invoice number (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be created; write nothing anywhere."),
    update: bool = typer.Option(False, "--update", help="Also update QBO documents of invoices changed since sync."),
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Use the local cache; don't read ConnectWise first."),
    json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    payments: bool = typer.Option(False, "--payments", help="Bring QuickBooks payments back to ConnectWise invoices "
                                  "(alone, or after invoices with --all; `--all` does it when payments.enabled)."),
) -> None:
    """Sync Closed invoices to QuickBooks Online and batch them in ConnectWise."""
    from cwqbo.cli.main import get_app_context, use_json
    from cwqbo.sync.engine import NOOP_MESSAGE, SyncOptions, SyncReport, scheduled_noop

    as_json = use_json(ctx, "sync", json_out)
    if payments and not (select or all_ or invoice):
        _payments_only(get_app_context(ctx), dry_run=dry_run, as_json=as_json)
    if sum([select, all_, bool(invoice)]) != 1:
        raise UsageError("choose exactly one of --select, --all or --invoice N",
                         hint="e.g. `cwqbo sync --all`, or `cwqbo sync --invoice 1042 --invoice 1043`")
    if select and (as_json or not _is_tty()):
        raise UsageError("--select needs an interactive terminal",
                         hint="use `--invoice N` (repeatable) or `--all` in scripts and cron")
    app_ctx = get_app_context(ctx)
    scheduled = os.environ.get("CWQBO_SCHEDULED") == "1"
    trigger: Trigger = "scheduled" if scheduled else "select" if select else "all" if all_ else "invoice"
    if scheduled_noop(app_ctx.profile.prefs, SyncOptions(trigger=trigger)):
        # Before the lock and any remote call: a cron entry left behind in manual mode costs nothing.
        report = SyncReport(run_id=None, status="noop", message=NOOP_MESSAGE)
        if as_json:
            render.emit_json("sync", "ok", EXIT_OK, report_data(report))  # data.status says "noop"
        else:
            render.info(NOOP_MESSAGE)
        raise typer.Exit(EXIT_OK)
    with ExitStack() as keep:  # the store stays open until the report is shown: it reads its items from there
        try:
            report = _run_locked(app_ctx, keep, select=select, all_=all_, invoice=invoice, dry_run=dry_run,
                                 update=update, no_refresh=no_refresh, as_json=as_json, trigger=trigger)
        except CwqboError as exc:
            if not dry_run and not isinstance(exc, UsageError | LockedError):  # a run that could not complete
                _notify(app_ctx, None, exc.exit_code, error=str(exc))
            raise
        _finish_command(app_ctx, report, all_=all_, payments=payments, dry_run=dry_run, as_json=as_json)


def _finish_command(app_ctx: AppContext, report: SyncReport, *, all_: bool, payments: bool, dry_run: bool,
                    as_json: bool) -> None:
    """Notify, bring payments back when asked, show the report; exits with the run's code."""
    code = EXIT_OK if report.ok else EXIT_SOME_FAILED
    warning = None if report.dry_run else _notify(app_ctx, report, code)
    pay = None
    if all_ and (payments or app_ctx.profile.prefs.payments.enabled) and report.status != "noop":
        from cwqbo.cli import payments as payments_cli  # after invoices, so cron does both

        pay = payments_cli.run(app_ctx, dry_run=dry_run, quiet_repeats=True)
        code = max(code, payments_cli.exit_code(pay))
    if as_json:
        data = report_data(report)
        extra: list[dict[str, Any]] = []
        status = report.status
        if pay is not None:
            from cwqbo.cli import payments as payments_cli

            data["payments"] = payments_cli.report_data(pay)
            extra = payments_cli.errors(pay)
            status = "failed" if report.status == "failed" and pay.status == "failed" else (
                "partial" if code else report.status)
        render.emit_json("sync", status, code, data,
                         [{"code": "invoice_failed", "message": f"{i.number}: {i.error}"}
                          for i in report.items if i.outcome == "failed"]
                         + ([{"code": "batch_failed", "message": report.batch_error}] if report.batch_error else [])
                         + extra + ([{"code": "notify_failed", "message": warning}] if warning else []))
    else:
        show_report(report, quiet=all_ and not _is_tty())
        if pay is not None:
            from cwqbo.cli import payments as payments_cli

            payments_cli.show(pay, quiet=not _is_tty())
    raise typer.Exit(code)


def _payments_only(app_ctx: AppContext, *, dry_run: bool, as_json: bool) -> None:
    """`sync --payments`: bring QuickBooks payments back to ConnectWise, nothing else; exits."""
    from cwqbo.cli import payments as payments_cli

    pay = payments_cli.run(app_ctx, dry_run=dry_run, quiet_repeats=False)
    code = payments_cli.exit_code(pay)
    if as_json:
        render.emit_json("sync", pay.status, code, {"payments": payments_cli.report_data(pay)},
                         payments_cli.errors(pay))
    else:
        payments_cli.show(pay)
    raise typer.Exit(code)


def _notify(app_ctx: AppContext, report: SyncReport | None, code: int, *, error: str | None = None) -> str | None:
    """Tell the profile's webhook (if any) about the run; a failure is one warning line, never another exit code."""
    from cwqbo.notify import RunOutcome, notify_run

    try:
        settings = app_ctx.profile.notify
    except CwqboError:
        return None
    warning = notify_run(settings, RunOutcome(app_ctx.profile_name, report, error, code))
    if warning:
        render.warn(warning)
    return warning


def _run_locked(app_ctx: AppContext, keep: ExitStack, *, select: bool, all_: bool, invoice: list[str],
                dry_run: bool, update: bool, no_refresh: bool, as_json: bool, trigger: Trigger) -> SyncReport:
    """The run, under the sync lock; the store is left open on `keep` (the report reads its items from it)."""
    from cwqbo.sync.engine import SyncDeps, SyncOptions, run_sync

    with app_ctx.sync_lock(), ExitStack() as opened:
        profile = app_ctx.profile
        # Credentials first: a refused secrets file or an unreachable service must not create a database.
        cw = opened.enter_context(closing(app_ctx.cw_client()))
        qbo = opened.enter_context(closing(app_ctx.qbo_client()))
        store = keep.enter_context(closing(app_ctx.open_store()))
        deps = SyncDeps(store=store, cw=cw, qbo=qbo, prefs=profile.prefs,
                        filters=profile.filters, realm=str(profile.quickbooks.realm_id), clock=app_ctx.clock)
        refresh = not no_refresh
        numbers: tuple[str, ...] = tuple(invoice)
        if select:
            numbers = _choose(deps, refresh)
            refresh = False
            if not numbers:
                render.info("nothing selected")
                raise typer.Exit(EXIT_OK)
        options = SyncOptions(selection="all" if all_ else "invoices", invoice_numbers=numbers,
                              dry_run=dry_run, update_changed=update, refresh=refresh, trigger=trigger)
        with _progress(enabled=_is_tty() and not as_json) as progress:
            report = run_sync(deps, options, progress)
    return report


COMPANY_CELLS = 28


def checklist_titles(rows: Sequence[CachedInvoice], verdicts: Sequence[tuple[str, str]]) -> list[str]:
    """One aligned line per invoice: readiness mark, number, date, company, total, and why not (if not ready).

    Widths are counted in terminal cells (a CJK character takes two), so columns line up whatever the names;
    invoice numbers, dates and totals are never cut, only a long company name is.
    """
    from rich.cells import cell_len, set_cell_size

    number_w = max([cell_len(r.number) for r in rows] + [6])
    totals = [render.money(r.total) for r in rows]
    total_w = max([len(t) for t in totals] + [5])
    out = []
    for r, total, (status, reason) in zip(rows, totals, verdicts, strict=True):
        ready = status == "ready"
        company = r.company_name or r.company_identifier
        name = company if cell_len(company) <= COMPANY_CELLS else set_cell_size(company, COMPANY_CELLS - 1) + "…"
        line = (f"{'✓' if ready else '✗'} {set_cell_size(r.number, number_w)}  {str(r.date or ''):<10}  "
                f"{set_cell_size(name, COMPANY_CELLS)}  {total:>{total_w}}")
        out.append(line if ready else f"{line}  not ready: {reason or status}")
    return out


def _choose(deps: SyncDeps, refresh: bool) -> tuple[str, ...]:
    """Refresh, let the user tick invoices (questionary checkbox, with readiness marks), then confirm."""
    import questionary

    from cwqbo.state import cache
    from cwqbo.sync.readiness import readiness

    if refresh:
        from cwqbo.sync import discover

        render.info("reading Closed invoices from ConnectWise…")
        discover.refresh(deps.cw, deps.store, deps.filters, clock=deps.clock)
    rows = cache.unsynced(deps.store)
    if not rows:
        render.info("no unsynced invoices")
        return ()
    verdicts = readiness(deps.store, rows, deps.prefs, deps.realm)
    choices = [questionary.Choice(title, value=r.number)
               for r, title in zip(rows, checklist_titles(rows, verdicts), strict=True)]
    not_ready = sum(1 for status, _ in verdicts if status != "ready")
    if not_ready:
        render.info(f"✗ marks {not_ready} invoice(s) that would fail as things stand (see the reason on the line)")
    # unsafe_ask: Ctrl-C raises KeyboardInterrupt (exit 130) instead of reading as "nothing selected" (exit 0).
    picked = questionary.checkbox("Invoices to sync (space to tick, enter to go):", choices=choices).unsafe_ask()
    if not picked:
        return ()
    chosen = [r for r in rows if r.number in set(picked)]
    total = sum((r.total for r in chosen), Decimal(0))
    doomed = sum(1 for r, (status, _) in zip(rows, verdicts, strict=True) if r.number in set(picked)
                 and status != "ready")
    question = f"Sync {len(chosen)} invoice(s) totalling {render.money(total)}?"
    if doomed:
        question += f" ({doomed} marked not ready will fail)"
    if not questionary.confirm(question, default=False).unsafe_ask():
        render.info("cancelled: nothing was sent")
        raise typer.Exit(EXIT_OK)
    return tuple(picked)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[SyncEvent], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=render.err,
                  transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def on_event(event: SyncEvent) -> None:
            bar.update(task, description=event.message[:60] or event.phase,
                       total=event.total or None, completed=event.done)
        yield on_event


# -- rendering -----------------------------------------------------------------------------------------

def _item_json(i: ItemResult) -> dict[str, Any]:
    return {"cw_id": i.cw_id, "number": i.number, "company": i.company, "total": i.total, "outcome": i.outcome,
            "qbo_id": i.qbo_id, "entity": i.entity, "qbo_total": i.qbo_total, "intuit_tid": i.tid,
            "reason": i.error}


def report_data(report: SyncReport) -> dict[str, Any]:
    return {"run_id": report.run_id, "dry_run": report.dry_run, "status": report.status,
            "created": report.created, "failed": report.failed, "skipped": report.skipped,
            "batch_identifier": report.batch_identifier, "batch_identifiers": report.batch_identifiers,
            "batch_error": report.batch_error,
            "qbo_calls": report.qbo_calls, "cw_calls": report.cw_calls, "duration_seconds": round(report.duration, 3),
            "message": report.message, "items": [_item_json(i) for i in report.items],
            "waiting": report.waiting,
            "plan": [{"cw_id": p.cw_id, "number": p.number, "company": p.company, "entity": p.entity,
                      "doc_number": p.doc_number, "total": p.total, "tax": p.tax,
                      "lines": [{"description": ln.description, "item": ln.item, "amount": ln.amount}
                                for ln in p.lines]} for p in report.plan],
            "plan_updates": [{"cw_id": u.cw_id, "number": u.number, "entity": u.entity, "qbo_id": u.qbo_id,
                              "old_total": u.old_total, "new_total": u.new_total, "sync_token": u.sync_token}
                             for u in report.plan_updates],
            "plan_batch": list(report.plan_batch),
            "would_create": [{"kind": w.kind, "name": w.name} for w in report.would_create]}


def items_table(items: Sequence[ItemResult], title: str | None = None) -> Any:
    """Invoices and outcomes; reasons go below the table, one per invoice, so they stay readable at 80 columns."""
    from rich.console import Group
    from rich.text import Text

    table = render.table(["Number", "Company", "Total", "Outcome", "QBO id"],
                         [(i.number, i.company, i.total, i.outcome, i.qbo_id or "") for i in items], title=title)
    reasons = [Text(f"  {i.number}: {i.error}") for i in items if i.error]
    return Group(table, *reasons) if reasons else table


def show_report(report: SyncReport, *, quiet: bool = False) -> None:
    out = render.out
    if report.status == "noop":
        render.info(report.message or "nothing to do")
        return
    if report.dry_run:
        show_plan(report)
        return
    failed = [i for i in report.items if i.outcome == "failed"]
    if not quiet:
        if report.items:
            out.print(items_table(report.items))
        else:
            out.print("Nothing to sync: every Closed invoice in scope is already in QuickBooks.")
    elif failed:
        out.print(items_table(failed, title="Failed invoices"))
    from cwqbo.sync.model import CHANGED_REASON  # loaded by the run already

    changed = [i for i in report.items if i.outcome == "skipped" and (i.error or "").startswith(CHANGED_REASON)]
    if quiet and changed:
        out.print(f"Changed in ConnectWise after they were synced (run `cwqbo sync --update` to update QuickBooks): "
                  + ", ".join(i.number for i in changed), markup=False)
    summary = f"{report.created} sent to QuickBooks, {report.failed} failed, {report.skipped} skipped"
    if report.batch_identifier:
        summary += f"; ConnectWise batch {report.batch_identifier} ({len(report.batched_ids)} invoices)"
    if not quiet or failed or report.batch_error:
        out.print(summary)
    if report.batch_error:
        render.warn(report.batch_error)
    if failed:
        render.info("see `cwqbo history` for details; fix the reasons above and run sync again")


def show_plan(report: SyncReport) -> None:
    out = render.out
    out.print("[bold]Dry run[/bold]: nothing was written to QuickBooks, ConnectWise or the ledger.")
    if report.would_create:
        # Names come from ConnectWise: print them as text, never as rich markup.
        out.print("Would create in QuickBooks: " + ", ".join(
            f"{w.kind} '{w.name}'" for w in report.would_create), markup=False)
    for p in report.plan:
        rows = [(ln.item or "", ln.description[:60], ln.amount) for ln in p.lines]
        if p.tax:
            rows.append(("", "Sales tax", p.tax))  # lines + tax = the total in the title
        out.print(render.table(["Item", "Description", "Amount"], rows,
                               title=f"{p.entity} {p.doc_number} — {p.company} — total {render.money(p.total)}"))
    if report.plan_updates:
        out.print(render.table(["Number", "Document", "Now in QuickBooks", "Would become", "SyncToken"],
                               [(u.number, f"{u.entity} {u.qbo_id}",
                                 render.money(u.old_total) if u.old_total is not None else "?",
                                 render.money(u.new_total), u.sync_token or "") for u in report.plan_updates],
                               title="Would update in QuickBooks (changed in ConnectWise since they were synced)"))
    failed = [i for i in report.items if i.outcome == "failed"]
    if failed:
        out.print(items_table(failed, title="Would fail"))
    if report.plan_batch:
        out.print(f"Would export and batch in ConnectWise: {len(report.plan_batch)} invoice(s) "
                  f"({', '.join(report.plan_batch[:10])}{', …' if len(report.plan_batch) > 10 else ''})", markup=False)
    out.print(f"{len(report.plan)} document(s) would be created, {len(report.plan_updates)} updated, "
              f"{len(failed)} would fail.")
