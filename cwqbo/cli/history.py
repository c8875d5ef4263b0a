"""`cwqbo history`: past runs, one run's invoices or payments (`history show RUN`), one invoice's story
(`--invoice N`: created, batched, and the QuickBooks payments brought back)."""

from __future__ import annotations

from typing import Any, Optional

import typer


history_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.add_typer(history_app, name="history")


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
    from cwqbo.cli import history_view
    from cwqbo.cli.main import use_json

    use_json(ctx, "history", json_out)
    store = _open_store(ctx)
    try:
        history_view.show_history(store, limit=limit, failed=failed, invoice=invoice, json_out=json_out)
    finally:
        if store is not None:
            store.close()


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
    from cwqbo.cli import history_view
    from cwqbo.cli.main import use_json

    use_json(ctx, "history show", json_out)
    start = history_view.page_start(limit, offset, page)
    store = _open_store(ctx)
    try:
        history_view.show_run(store, run_id, limit=limit, start=start, failed=failed, json_out=json_out)
    finally:
        if store is not None:
            store.close()
