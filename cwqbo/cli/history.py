"""`cwqbo history`: past runs, one run's invoices (`history show RUN`), one invoice's story (`--invoice N`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.history import Attention, InvoiceStory, RunDetail, RunSummary

history_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.add_typer(history_app, name="history")


def _local(ts: str | None) -> str:
    """Store timestamps are UTC; people read local time."""
    if not ts:
        return ""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


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
    from cwqbo.cli.main import get_app_context

    return get_app_context(ctx).open_store()


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
    from cwqbo import history as core
    from cwqbo.cli import render
    from cwqbo.cli.main import use_json

    use_json(ctx, "history", json_out)
    store = _open_store(ctx)
    try:
        if invoice is not None:
            story = core.invoice_story(store, invoice)
            if json_out:
                render.emit_json("history", "success", 0, {"invoice": story})
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
        render.emit_json("history", "success", 0, data)
        return
    if not found and not attention:
        render.out.print("No failed runs and nothing needs attention." if failed
                         else "No sync runs yet. Run `cwqbo sync` to make the first one.", markup=False)
        return
    if found:
        rows = [(r.id, _local(r.started_at), r.trigger + (" (dry run)" if r.dry_run else "") if r.trigger else "",
                 _who(r), f"{r.selected}/{r.created}/{r.failed}/{r.skipped}", r.batch_identifier or "",
                 _duration(r.duration_ms), r.status or "") for r in found]
        render.out.print(render.table(["Run", "Started", "Trigger", "By", "Sel/Created/Failed/Skipped",
                                       "Batch", "Duration", "Status"], rows,
                                      title="Runs with failures" if failed else "Sync runs"))
    if failed:
        _print_attention(attention)


def _print_attention(items: list[Attention]) -> None:
    from cwqbo.cli import render

    if not items:
        render.out.print("No invoices need attention.", markup=False)
        return
    rows = [(a.invoice_number or "", a.cw_id, a.kind, a.detail, _local(a.since), a.run_id or "") for a in items]
    render.out.print(render.table(["Invoice", "CW id", "Problem", "Detail", "Since", "Run"], rows,
                                  title="Needs attention"))


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
    if story.items:
        rows = [(i.run_id, _local(i.at), i.outcome or "", f"{i.entity or ''} {i.qbo_id or ''}".strip(), i.cw_total,
                 i.qbo_total, i.error or "", i.intuit_tid or "") for i in story.items]
        render.out.print(render.table(["Run", "At", "Outcome", "QBO", "CW total", "QBO total", "Error",
                                       "Intuit tid"], rows, title="Runs that touched it"))
    else:
        render.out.print("  No run has touched it yet.", markup=False)


@history_app.command("show")
def show(
    ctx: typer.Context,
    run_id: int = typer.Argument(..., metavar="RUN", help="Run id from `cwqbo history`."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Show what one run did with each invoice.

    \b
    Example:
      cwqbo history show 12
    """
    from cwqbo import history as core
    from cwqbo.cli import render
    from cwqbo.cli.main import use_json

    use_json(ctx, "history show", json_out)
    store = _open_store(ctx)
    try:
        detail = core.run_detail(store, run_id)
    finally:
        store.close()
    if json_out:
        render.emit_json("history show", "success", 0, detail)
        return
    _print_run(detail)


def _print_run(detail: RunDetail) -> None:
    from cwqbo.cli import render

    r = detail.run
    render.out.print(f"Run {r.id}: {r.status or '?'} — {r.trigger or '?'}{' (dry run)' if r.dry_run else ''} "
                     f"by {_who(r) or '?'}, started {_local(r.started_at)}, took {_duration(r.duration_ms) or '?'}",
                     markup=False)
    render.out.print(f"  selected {r.selected}, created {r.created}, failed {r.failed}, skipped {r.skipped}"
                     + (f"; batch {r.batch_identifier}" if r.batch_identifier else ""), markup=False)
    if r.message:
        render.out.print(f"  {r.message}", markup=False)
    if not detail.items:
        render.out.print("  This run touched no invoices.", markup=False)
        return
    rows = [(i.invoice_number or "", i.outcome or "", f"{i.entity or ''} {i.qbo_id or ''}".strip(), i.cw_total,
             i.qbo_total, i.error or "", i.intuit_tid or "") for i in detail.items]
    render.out.print(render.table(["Invoice", "Outcome", "QBO", "CW total", "QBO total", "Error", "Intuit tid"],
                                  rows))
