"""`cwqbo history`: past runs, one run's invoices or payments (`history show RUN`), one invoice's story
(`--invoice N`: created, batched, and the QuickBooks payments brought back)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.state.history import Attention, InvoiceStory, Payment, RunPage, RunSummary

NOTHING_YET = "No sync runs yet: nothing synced yet. Run `cwqbo sync` to make the first one."
NOTHING_YET_FAILED = "Nothing synced yet: no failed runs and nothing needs attention."

history_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.add_typer(history_app, name="history")


def _local(ts: str | None, seconds: bool = True) -> str:
    """Store timestamps are UTC; people read local time."""
    if not ts:
        return ""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m {secs:02d}s"


def _who(run: RunSummary) -> str:
    if run.user and run.host:
        return f"{run.user}@{run.host}"
    return run.user or run.host or ""


def _open_store(ctx: typer.Context) -> Any:
    """The database, or None when nothing was ever synced: history is read-only and creates no file."""
    from cwqbo.cli.main import get_app_context

    return get_app_context(ctx).open_existing_store()


@history_app.callback()
def history(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", "-n", help="How many recent runs to list."),
    failed: bool = typer.Option(False, "--failed", help="Only runs with failures, plus invoices needing attention."),
    invoice: Optional[str] = typer.Option(None, "--invoice", "-i",
                                          help="Show one invoice's whole story (CW number or invoice id)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """What past syncs did: recent runs (newest first), one run's invoices, one invoice's story.

    \b
    Examples:
      cwqbo history
      cwqbo history --failed
      cwqbo history --invoice 10042
      cwqbo history show 12
    """
    if ctx.invoked_subcommand is not None:
        return
    from cwqbo.state import history as core
    from cwqbo.cli import render
    from cwqbo.cli.main import use_json

    use_json(ctx, "history", json_out)
    store = _open_store(ctx)
    if store is None:
        if json_out:
            render.emit_json("history", "ok", 0, {"runs": [], "attention": []} if failed else {"runs": []})
        else:
            render.out.print(NOTHING_YET_FAILED if failed else NOTHING_YET, markup=False)
        return
    try:
        if invoice is not None:
            story = core.invoice_story(store, invoice)
            if json_out:
                render.emit_json("history", "ok", 0, {"invoice": story})
            else:
                _print_story(story)
            return
        found = core.runs(store, limit=limit, failed_only=failed)
        attention = core.needs_attention(store) if failed else []
    finally:
        store.close()
    if json_out:
        data: dict[str, Any] = {"runs": found}
        if failed:
            data["attention"] = attention
        render.emit_json("history", "ok", 0, data)
        return
    if not found and not attention:
        render.out.print("No failed runs and nothing needs attention." if failed
                         else "No sync runs yet. Run `cwqbo sync` to make the first one.", markup=False)
        return
    if found:
        # Eight narrow columns fit 80 columns; batch identifiers go below, skipped counts are in `history show`.
        rows = [(r.id, _local(r.started_at, seconds=False),
                 (r.trigger or "") + (" (dry)" if r.dry_run else ""), r.created, r.failed,
                 _duration(r.duration_ms), r.status or "", _who(r)) for r in found]
        render.out.print(render.table(["Run", "Started", "Trigger", "Sent", "Failed", "Took", "Status", "By"], rows,
                                      title="Runs with failures" if failed else "Sync runs"))
        render.notes_below("ConnectWise batches:", [(f"run {r.id}", r.batch_identifier) for r in found
                                                    if r.batch_identifier])
    if failed:
        _print_attention(attention)


def _print_attention(items: list[Attention]) -> None:
    from cwqbo.cli import render

    if not items:
        render.out.print("No invoices need attention.", markup=False)
        return
    rows = [(a.invoice_number or "", a.cw_id, a.kind, _local(a.since, seconds=False), a.run_id or "") for a in items]
    render.out.print(render.table(["Invoice", "CW id", "Problem", "Since", "Run"], rows, title="Needs attention"))
    render.notes_below("Details:", [(a.invoice_number or str(a.cw_id), a.detail) for a in items])


def _print_story(story: InvoiceStory) -> None:
    from cwqbo.cli import render

    title = f"Invoice {story.invoice_number or '?'} (CW id {story.cw_id})"
    render.out.print(title, markup=False)
    led = story.ledger
    if led is None:
        render.out.print("  Not sent to QuickBooks yet.", markup=False)
    else:
        where = f"{led.entity} {led.qbo_id}" if led.qbo_id else led.entity
        render.out.print(f"  State: {led.state} — QuickBooks {where}; CW total {render.money(led.cw_total)}, "
                         f"QBO total {render.money(led.qbo_total)}; attempts {led.attempts}", markup=False)
        if led.error:
            render.out.print(f"  Last error: {led.error}", markup=False)
        if led.intuit_tid:
            render.out.print(f"  Intuit tid: {led.intuit_tid}", markup=False)
    if story.batch is not None:
        b = story.batch
        render.out.print(f"  ConnectWise batch: {b.identifier} ({b.state}"
                         + (f", CW batch id {b.cw_batch_id}" if b.cw_batch_id else "") + ")", markup=False)
    if led is not None or story.payments:
        render.out.print(_paid_line(story), markup=False)
    if story.items:
        rows = [(i.run_id, _local(i.at), i.outcome or "", f"{i.entity or ''} {i.qbo_id or ''}".strip(), i.cw_total,
                 i.qbo_total) for i in story.items]
        render.out.print(render.table(["Run", "At", "Outcome", "QBO", "CW total", "QBO total"], rows,
                                      title="Runs that touched it"))
        render.notes_below("Errors and Intuit transaction ids:",
                           [(f"run {i.run_id}", "; ".join(x for x in (i.error, f"tid {i.intuit_tid}"
                                                                      if i.intuit_tid else "") if x))
                            for i in story.items if i.error or i.intuit_tid])
    else:
        render.out.print("  No run has touched it yet.", markup=False)
    if story.payments:
        _print_payments(story)


def _payment_type(type_: str | None, credit_cw_id: int | None) -> str:
    return (type_ or "") + (" (credit)" if credit_cw_id else "")


def _paid_line(story: InvoiceStory) -> str:
    from cwqbo.cli import render

    if not story.payments:
        return "  Paid: no QuickBooks payment brought back yet."
    posted = [p for p in story.payments if p.state == "posted"]
    total = story.ledger.cw_total if story.ledger else None
    of = f" of {render.money(total)}" if total is not None else ""
    full = " — paid in full" if total is not None and total > 0 and story.paid == total else ""
    return (f"  Paid: {render.money(story.paid)}{of} brought back from QuickBooks "
            f"({len(posted)} payment{'' if len(posted) == 1 else 's'} in ConnectWise){full}")


def _print_payments(story: InvoiceStory) -> None:
    """The QuickBooks payments brought back onto the invoice: one row per payment line, as it stands now."""
    from cwqbo.cli import render

    rows = [(p.qbo_payment_id, p.cw_payment_id or "", p.payment_date, p.amount, _payment_type(p.type, p.credit_cw_id),
             p.state, p.run_id or "") for p in story.payments]
    render.out.print(render.table(["QBO payment", "CW payment", "Date", "Amount", "Type", "State", "Run"], rows,
                                  title="Payments brought back"))
    render.notes_below("Payment notes:", [(f"QBO {p.qbo_payment_id}", _payment_note(p))
                                          for p in story.payments if p.reason or p.credit_cw_id])


def _payment_note(p: Payment) -> str:
    credit = f"credit memo (CW id {p.credit_cw_id}) applied" if p.credit_cw_id else ""
    tries = f" after {p.attempts} attempts" if p.attempts > 1 and p.state == "posted" else ""
    return "; ".join(x for x in (credit + tries, p.reason or "") if x)


@history_app.command("show")
def show(
    ctx: typer.Context,
    run_id: int = typer.Argument(..., metavar="RUN", help="Run id from `cwqbo history`."),
    limit: int = typer.Option(50, "--limit", "-n", min=0, help="Invoices (or payments) per page (0 = all)."),
    offset: Optional[int] = typer.Option(None, "--offset", min=0, help="Skip this many invoices (payments) first."),
    page: Optional[int] = typer.Option(None, "--page", min=1, help="Page number (of --limit lines), from 1."),
    failed: bool = typer.Option(False, "--failed", help="Only the invoices (payments) that failed."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Show what one run did with each invoice (a payments run: each payment), a page at a time.

    \b
    Examples:
      cwqbo history show 12
      cwqbo history show 12 --failed
      cwqbo history show 12 --page 3
      cwqbo history show 12 --limit 0 --json
    """
    from cwqbo.state import history as core
    from cwqbo.cli import render
    from cwqbo.cli.main import use_json
    from cwqbo.errors import UsageError

    use_json(ctx, "history show", json_out)
    if offset is not None and page is not None:
        raise UsageError("give --offset or --page, not both")
    if page is not None and limit == 0:
        raise UsageError("--page needs a --limit (invoices per page)")
    start = offset if offset is not None else (page - 1) * limit if page is not None else 0
    store = _open_store(ctx)
    if store is None:
        raise UsageError(f"no run {run_id}: nothing synced yet", hint="run `cwqbo sync` first")
    try:
        result = core.run_page(store, run_id, limit=limit or None, offset=start, failed_only=failed)
    finally:
        store.close()
    if json_out:
        lines: dict[str, Any] = ({"kind": "payments", "payments": result.payments} if result.kind == "payments"
                                 else {"kind": "invoices", "items": result.items})
        render.emit_json("history show", "ok", 0, {
            "run": result.run, **lines,
            "page": {"total": result.total, "offset": result.offset, "limit": result.limit,
                     "returned": len(result.items) + len(result.payments), "remaining": result.remaining, "failed_only": result.failed_only}})
        return
    _print_run(result)


def _print_run(page: RunPage) -> None:
    from cwqbo.cli import render

    if page.kind == "payments":
        _print_payments_run(page)
        return
    r = page.run
    render.out.print(f"Run {r.id}: {r.status or '?'} — {r.trigger or '?'}{' (dry run)' if r.dry_run else ''} "
                     f"by {_who(r) or '?'}, started {_local(r.started_at)}, took {_duration(r.duration_ms) or '?'}",
                     markup=False)
    render.out.print(f"  selected {r.selected}, created {r.created}, failed {r.failed}, skipped {r.skipped}"
                     + (f"; batch {r.batch_identifier}" if r.batch_identifier else ""), markup=False)
    if r.message:
        render.out.print(f"  {r.message}", markup=False)
    if _nothing_to_show(page, len(page.items), "invoices", "  No invoice of this run failed.",
                        "  This run touched no invoices."):
        return
    rows = [(i.invoice_number or "", i.outcome or "", f"{i.entity or ''} {i.qbo_id or ''}".strip(), i.cw_total,
             i.qbo_total) for i in page.items]
    first, last = page.offset + 1, page.offset + len(page.items)
    what = "failed invoices" if page.failed_only else "invoices"
    render.out.print(render.table(["Invoice", "Outcome", "QBO", "CW total", "QBO total"], rows,
                                  title=f"{what.capitalize()} {first}–{last} of {page.total}"))
    render.notes_below("Failure reasons:", [(i.invoice_number or str(i.cw_id), i.error + (
        f" (Intuit tid {i.intuit_tid})" if i.intuit_tid else "")) for i in page.items if i.error])
    render.notes_below("Intuit transaction ids:", [(i.invoice_number or str(i.cw_id), i.intuit_tid)
                                                   for i in page.items if i.intuit_tid and not i.error])
    if page.remaining:
        more = f"… {page.remaining} more {what}: --offset {last}"
        if page.limit and page.offset % page.limit == 0:
            more += f" or --page {page.offset // page.limit + 2}"
        render.out.print(more + (", --limit 0 for all" if page.limit else ""), markup=False)


def _nothing_to_show(page: RunPage, shown: int, noun: str, none_failed: str, none_at_all: str) -> bool:
    """Say why a page of a run is empty (nothing in the run, or an offset past its end); True if it was."""
    from cwqbo.cli import render

    if not page.total:
        render.out.print(none_failed if page.failed_only else none_at_all, markup=False)
        return True
    if not shown:
        render.out.print(f"  No {noun} past #{page.offset} (the run has {page.total}"
                         f"{' failed' if page.failed_only else ''}).", markup=False)
        return True
    return False


def _print_payments_run(page: RunPage) -> None:
    """A payments run: each QuickBooks payment line it posted, adopted, reversed or failed, a page at a time."""
    from cwqbo.cli import render

    r = page.run
    render.out.print(f"Run {r.id}: {r.status or '?'} — payments{' (dry run)' if r.dry_run else ''} "
                     f"by {_who(r) or '?'}, started {_local(r.started_at)}, took {_duration(r.duration_ms) or '?'}",
                     markup=False)
    render.out.print(f"  payment lines {r.selected}, brought back or reversed {r.created}, failed {r.failed}, "
                     f"still waiting {r.skipped}", markup=False)
    if r.message:
        render.out.print(f"  {r.message}", markup=False)
    what = "failed payments" if page.failed_only else "payments"
    if _nothing_to_show(page, len(page.payments), "payments", "  No payment of this run failed.",
                        "  This run brought no payment back."):
        return
    rows = [(e.invoice_number or e.cw_invoice_id, e.outcome, e.qbo_payment_id, e.cw_payment_id or "",
             e.payment_date or "", e.amount, _payment_type(e.type, e.credit_cw_id)) for e in page.payments]
    first, last = page.offset + 1, page.offset + len(page.payments)
    render.out.print(render.table(["Invoice", "Outcome", "QBO payment", "CW payment", "Date", "Amount", "Type"],
                                  rows, title=f"{what.capitalize()} {first}–{last} of {page.total}"))
    render.notes_below("Reasons:", [(e.invoice_number or str(e.cw_invoice_id), e.error)
                                    for e in page.payments if e.error])
    if page.remaining:
        more = f"… {page.remaining} more {what}: --offset {last}"
        if page.limit and page.offset % page.limit == 0:
            more += f" or --page {page.offset // page.limit + 2}"
        render.out.print(more + (", --limit 0 for all" if page.limit else ""), markup=False)
