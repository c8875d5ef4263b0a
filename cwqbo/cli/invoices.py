"""`cwqbo list-unsynced` and `cwqbo refilter`: what is waiting to sync, and which invoices are in scope.

Thin: parse options, call cache / discover, render. Heavy modules are imported inside the commands.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from cwqbo.errors import LockedError, NotConnectedError, UsageError

if TYPE_CHECKING:
    from cwqbo.connectwise.client import CWClient
    from cwqbo.context import AppContext
    from cwqbo.state.cache import CachedInvoice
    from cwqbo.sync.discover import DiscoverResult
    from cwqbo.sync.readiness import PageHook
    from cwqbo.settings.prefs import Filters, Prefs
    from cwqbo.state.store import Store

EMPTY_MESSAGE = "No unsynced invoices — everything Closed in scope is in QuickBooks."
CSV_COLUMNS = ("cw_id", "number", "company_identifier", "company_name", "date", "type", "total", "lines",
               "mapping_status", "reason")


# -- rendering helpers ---------------------------------------------------------------------------------
def describe_filters(f: Filters) -> list[tuple[str, str]]:
    def joined(values: list[Any]) -> str:
        return ", ".join(str(v) for v in values) if values else "any"

    return [
        ("from date", f.from_date.isoformat() if f.from_date else "any"),
        ("locations", joined(f.location_ids)),
        ("departments", joined(f.department_ids)),
        ("billing statuses", joined(f.billing_statuses) if f.billing_statuses else "every closed status"),
        ("invoice types", joined(f.invoice_types)),
        ("excluded companies", ", ".join(f.exclude_companies) if f.exclude_companies else "none"),
    ]


def invoice_rows(store: Store, rows: list[CachedInvoice], prefs: Prefs, realm: str = "") -> Iterator[dict[str, Any]]:
    """Unsynced invoices with their mapping readiness, as plain dicts (money as exact strings), one at a time.

    Readiness is judged (memoised, `sync.readiness`) for exactly `rows`, before the first dict is yielded.
    """
    from cwqbo.sync.readiness import readiness

    verdicts = readiness(store, rows, prefs, realm or None)
    for c, (status, reason) in zip(rows, verdicts, strict=True):
        yield {
            "cw_id": c.cw_id, "number": c.number,
            "company": {"id": c.company_id, "identifier": c.company_identifier, "name": c.company_name},
            "date": c.date.isoformat() if c.date else None, "type": c.type, "total": str(c.total),
            "subtotal": str(c.subtotal), "sales_tax": str(c.sales_tax), "lines": c.line_count,
            "mapping_status": status, "reason": reason,
        }


def csv_chunks(items: Iterable[dict[str, Any]], every: int = 2000) -> Iterator[str]:
    """The CSV text (header first), a few thousand rows at a time."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for n, it in enumerate(items, 1):
        w.writerow([it["cw_id"], it["number"], it["company"]["identifier"], it["company"]["name"], it["date"] or "",
                    it["type"], it["total"], it["lines"], it["mapping_status"], it["reason"]])
        if n % every == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def csv_text(items: Iterable[dict[str, Any]]) -> str:
    return "".join(csv_chunks(items))


def _listing_data(count: int, total: Any, result: DiscoverResult | None) -> dict[str, Any]:
    return {"count": count, "total": str(total), "invoices": None, "refresh": None if result is None else {
        "fetched": result.fetched, "in_scope": result.in_scope, "removed": result.removed,
        "full": result.full, "cw_calls": result.cw_calls, "problems": list(result.problems)}}


def _emit_json_listing(data: dict[str, Any], items: Iterable[dict[str, Any] | str]) -> None:
    """`render.emit_json` for a listing, with `data.invoices` written as it is produced. An item is a dict, or its
    JSON text already (`readiness.listing_json`, built by SQLite); the items are compact either way."""
    import json

    from cwqbo.cli import render

    stream = render.console("out").file
    if getattr(stream, "isatty", lambda: False)():  # indented for a person: not worth streaming
        render.emit_json("list-unsynced", "ok", 0, {**data, "invoices": [
            json.loads(it) if isinstance(it, str) else it for it in items]})
        return
    marker = "\x00invoices\x00"
    head, tail = json.dumps(render.envelope("list-unsynced", "ok", 0, {**data, "invoices": marker}),
                            ensure_ascii=False).split(json.dumps(marker), 1)
    stream.write(head + "[")
    rest, sep = iter(items), ""
    # A write per thousand items, not per item: 100,000 writes cost a tenth of a second.
    while texts := [it if isinstance(it, str) else json.dumps(it, ensure_ascii=False, separators=(",", ":"))
                    for it in islice(rest, 1000)]:
        stream.write(sep + ",".join(texts))
        sep = ","
    stream.write("]" + tail + "\n")
    stream.flush()


# -- progress -----------------------------------------------------------------------------------------
@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """A rich progress bar on stderr when it is a terminal (never in pipes, cron or --json)."""
    from cwqbo.cli import render

    if not enabled or not render.err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=render.err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _refresh(app_ctx: AppContext, store: Store, filters: Filters, *, full: bool, show_progress: bool,
             judge_all: bool) -> DiscoverResult:
    """`discover.refresh`; with `judge_all` (a listing that will judge every unsynced invoice), each page read is
    judged as it is stored, while decoded anyway, and the verdicts memoised for the listing."""
    from cwqbo.sync import discover

    cw = app_ctx.cw_client()
    try:
        with _progress("Reading ConnectWise invoices", show_progress) as progress:
            return discover.refresh(cw, store, filters, full=full, clock=app_ctx.clock, progress=progress,
                                    on_page=_memoise_pages(app_ctx, store) if judge_all else None)
    finally:
        cw.close()


def _memoise_pages(app_ctx: AppContext, store: Store) -> PageHook:
    """`readiness.memoise_pages` for the profile's prefs and QBO company."""
    from cwqbo.sync.readiness import memoise_pages

    profile = app_ctx.profile
    return memoise_pages(store, profile.prefs, str(profile.quickbooks.realm_id or "") or None)


def _warn_problems(result: DiscoverResult | None, as_json: bool) -> None:
    from cwqbo.cli import render

    if result is None or as_json:
        return
    for problem in result.problems[:20]:
        render.warn(problem)
    if len(result.problems) > 20:
        render.warn(f"… and {len(result.problems) - 20} more invoice(s) skipped; see `cwqbo -v list-unsynced`")


# -- commands -----------------------------------------------------------------------------------------
TABLE_LIMIT = 200  # a terminal table of thousands of rows is slow to draw and unreadable; --csv/--json are not


def list_unsynced(
    ctx: typer.Context,
    refresh: Optional[bool] = typer.Option(None, "--refresh/--no-refresh",
                                           help="Read changes from ConnectWise first (default: when connected)."),
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE", help="Only invoices dated on/after DATE."),
    company: Optional[str] = typer.Option(None, "--company", help="CW company identifier, or part of its name."),
    sort: str = typer.Option("date", "--sort", help="date, number, company or total."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON envelope instead of a table."),
    csv_out: bool = typer.Option(False, "--csv", help="Print CSV on stdout instead of a table."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the CSV to FILE."),
    limit: int = typer.Option(TABLE_LIMIT, "--limit", min=0,
                              help="Rows in the table (0 = all); --json and --csv always list everything."),
    payments: bool = typer.Option(False, "--payments",
                                  help="QuickBooks payments on synced invoices not yet in ConnectWise instead."),
) -> None:
    """Closed invoices in scope that are not in QuickBooks yet, with what each still needs."""
    from cwqbo.state import cache
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context, use_json

    from cwqbo.settings.filters import parse_date_option

    use_json(ctx, "list-unsynced", as_json)
    if payments:
        from cwqbo.cli import payments as payments_cli

        raise typer.Exit(payments_cli.list_unsynced(get_app_context(ctx), as_json=as_json))
    if as_json and csv_out:
        raise UsageError("--json and --csv both write to stdout: pick one (or write the CSV with --output FILE)")
    if output is not None and (output.startswith("-") or not output.strip()):
        raise UsageError(f"--output needs a file name, not {output!r}",
                         hint="e.g. `--output unsynced.csv`; use --csv to print the CSV on stdout")
    if csv_out and output is not None:
        raise UsageError("--csv prints to stdout and --output writes a file: pick one")
    quiet = as_json or csv_out  # stdout carries a document: no chatter on it or around it
    since_date = parse_date_option(since, "--since")
    if sort not in cache.SORT_KEYS:
        raise UsageError(f"--sort must be one of {', '.join(cache.SORT_KEYS)} (got {sort!r})")
    app_ctx = get_app_context(ctx)
    profile = app_ctx.profile
    connected = profile.connectwise.configured
    if refresh and not connected:
        raise NotConnectedError(f"ConnectWise is not connected for profile {app_ctx.profile_name!r}",
                                hint="run `cwqbo connect connectwise`, or use --no-refresh to list the cache")
    will_refresh = bool(refresh or (refresh is None and connected))
    # Listing the cache is read-only: with no database yet there is nothing cached, and nothing is created.
    store = app_ctx.open_store() if will_refresh else app_ctx.open_existing_store()
    if store is None:
        if as_json:
            render.emit_json("list-unsynced", "ok", 0, {"count": 0, "total": "0", "invoices": [], "refresh": None})
        elif output is None and not csv_out:
            render.out.print("Nothing cached yet: " + ("run `cwqbo list-unsynced --refresh` to read ConnectWise."
                                                       if connected else "connect ConnectWise first "
                                                       "(`cwqbo connect connectwise`)."), markup=False)
        if csv_out or output is not None:
            _write_csv(csv_chunks([]), output, as_json, 0)
        return
    try:
        result = None
        if will_refresh:
            try:
                # Discovery writes the cache a running sync reads: never both at once.
                with app_ctx.sync_lock():
                    # --json/--csv/--output judge every unsynced invoice: judge the refreshed ones as they are read.
                    result = _refresh(app_ctx, store, profile.filters, full=False, show_progress=not quiet,
                                      judge_all=(quiet or output is not None) and since_date is None and not company)
            except LockedError:
                if refresh:  # asked for explicitly: say why it can't be done
                    raise
                if not quiet:
                    render.info("a sync is running: showing the local cache without reading ConnectWise")
        elif not quiet:
            note = "showing the local cache" + ("" if connected else " (ConnectWise is not connected)")
            render.info(note)
        _warn_problems(result, as_json)
        # Count and total in SQL; rows without their record JSON (read only for a verdict not yet memoised).
        count, total = cache.unsynced_summary(store, since=since_date, company=company)
        if as_json and not csv_out and output is None and sort != "total":
            from cwqbo.sync.readiness import listing_json

            _emit_json_listing(_listing_data(count, total, result), listing_json(
                store, profile.prefs, str(profile.quickbooks.realm_id or "") or None, since=since_date,
                company=company, sort=sort))
            return
        documents = as_json or csv_out or output is not None  # every row; the table shows the first `limit`
        rows = cache.unsynced(store, since=since_date, company=company, sort=sort, light=True,
                              limit=None if documents or limit == 0 else limit)
        realm = str(profile.quickbooks.realm_id or "")
        if documents:
            items: Iterable[dict[str, Any]] = invoice_rows(store, rows, profile.prefs, realm)
            if as_json and output is not None:
                items = list(items)  # written twice: the CSV file and the JSON document
            if csv_out or output is not None:
                _write_csv(csv_chunks(items), output, as_json, count)
            if as_json:
                _emit_json_listing(_listing_data(count, total, result), items)
            return
        shown = list(invoice_rows(store, rows, profile.prefs, realm))
    finally:
        store.close()

    if not count:
        render.out.print(EMPTY_MESSAGE, markup=False)
        return
    table_rows = []
    for it, c in zip(shown, rows, strict=True):
        table_rows.append([c.number, c.company_name or c.company_identifier, it["date"] or "", c.type, c.total,
                           c.line_count, it["mapping_status"]])
    # Every column but Company keeps its full width; the reasons go under the table, where they have room.
    render.out.print(render.table(["Number", "Company", "Date", "Type", "Total", "Lines", "Mapping"], table_rows,
                                  title=f"{count} unsynced invoice(s)"))
    render.notes_below("Why not ready:", [(it["number"], it["reason"]) for it in shown if it["reason"]])
    ready = sum(1 for it in shown if it["mapping_status"] == "ready")
    if len(shown) < count:
        render.out.print(f"… {count - len(shown)} more not shown: use --limit 0, --csv, --output FILE or --json",
                         markup=False)
        render.out.print(f"{count} unsynced, total {render.money(total)}; {ready} of the {len(shown)} shown "
                         "ready to sync", markup=False)
        return
    render.out.print(f"{count} unsynced, {ready} ready to sync, total {render.money(total)}", markup=False)


def _write_csv(chunks: Iterable[str], output: str | None, as_json: bool, count: int) -> None:
    """CSV on stdout (`--csv`) or into `--output FILE`, written as it is produced."""
    from cwqbo.cli import render

    if output is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    try:
        with Path(output).open("w", encoding="utf-8", newline="") as fh:
            for chunk in chunks:
                fh.write(chunk)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    if not as_json:
        render.info(f"wrote {count} invoice(s) to {output}")


def refilter(
    ctx: typer.Context,
    from_date: Optional[str] = typer.Option(None, "--from-date", metavar="DATE",
                                            help="Only invoices dated on/after DATE ('' clears)."),
    location: Optional[list[int]] = typer.Option(None, "--location", metavar="ID", help="CW location id (repeat)."),
    department: Optional[list[int]] = typer.Option(None, "--department", metavar="ID",
                                                   help="CW department / business unit id (repeat)."),
    status: Optional[list[str]] = typer.Option(None, "--status", metavar="NAME",
                                               help="Closed billing status name (repeat; default every closed one)."),
    invoice_type: Optional[list[str]] = typer.Option(None, "--type", metavar="NAME", help="Invoice type (repeat)."),
    exclude_company: Optional[list[str]] = typer.Option(None, "--exclude-company", metavar="ID",
                                                        help="CW company identifier to leave out (repeat)."),
    import_file: Optional[Path] = typer.Option(None, "--import", metavar="FILE.toml",
                                               help="Read filters from a TOML file."),
    clear: bool = typer.Option(False, "--clear", help="Start from no filters (every Closed invoice)."),
    show: bool = typer.Option(False, "--show", help="Show the current filters and change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON envelope."),
) -> None:
    """Change which Closed invoices are in scope, save the filters, and re-read ConnectWise in full."""
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context, use_json
    from cwqbo.settings.filters import apply_filter_options, load_filters_file
    from cwqbo.settings.prefs import filters_to_dict

    use_json(ctx, "refilter", as_json)
    app_ctx = get_app_context(ctx)
    profile = app_ctx.profile
    if show:
        if as_json:
            render.emit_json("refilter", "ok", 0, {"filters": filters_to_dict(profile.filters)})
        else:
            render.out.print(render.table(["Filter", "Value"], describe_filters(profile.filters)))
        return
    imported = load_filters_file(import_file) if import_file is not None else None
    new = apply_filter_options(profile.filters, clear=clear, imported=imported, from_date=from_date,
                               locations=location, departments=department, statuses=status,
                               types=invoice_type, exclude=exclude_company)
    if not profile.connectwise.configured:
        raise NotConnectedError(f"ConnectWise is not connected for profile {app_ctx.profile_name!r}",
                                hint="run `cwqbo connect connectwise` first; nothing was saved")
    from cwqbo.sync import discover

    cw = app_ctx.cw_client()
    try:
        discover.resolve_scope(new, cw.billing_statuses())  # bad status names fail before anything is saved
        with app_ctx.sync_lock():  # a full refresh rewrites the cache a sync reads: one at a time
            result, counts = _save_and_refresh(app_ctx, cw, new, show_progress=not as_json)
    finally:
        cw.close()
    if as_json:
        render.emit_json("refilter", "ok", 0, {
            "filters": filters_to_dict(new), "fetched": result.fetched, "in_scope": result.in_scope,
            "left_scope": result.removed, "unsynced": counts["unsynced"], "cw_calls": result.cw_calls,
            "problems": list(result.problems)})
        return
    _warn_problems(result, as_json)
    render.out.print(render.table(["Filter", "Value"], describe_filters(new), title="Filters saved"))
    render.out.print(f"Fetched {result.fetched} invoice(s) from ConnectWise: {result.in_scope} in scope, "
                     f"{result.removed} left scope, {counts['unsynced']} unsynced.", markup=False)


def _save_and_refresh(app_ctx: AppContext, cw: CWClient, new: Filters, *,
                      show_progress: bool) -> tuple[DiscoverResult, dict[str, int]]:
    """Save the new filters and re-read every Closed invoice in scope (the caller holds the sync lock)."""
    from cwqbo.state import cache
    from cwqbo.sync import discover
    from cwqbo.state.store import utc_iso

    store = app_ctx.open_store()
    try:
        # Write to the store before saving the filters: a locked or read-only database must leave config
        # unchanged too, not half-applied.
        with store.transaction():
            store.set_meta("refilter.started_at", utc_iso(app_ctx.clock.now()))
        app_ctx.profile.filters = new
        app_ctx.save_config()
        with _progress("Re-reading ConnectWise invoices", show_progress) as progress:
            # A full listing after it (--json, --csv) judges every unsynced invoice: judged here as each page is read.
            result = discover.refresh(cw, store, new, full=True, clock=app_ctx.clock, progress=progress,
                                      on_page=_memoise_pages(app_ctx, store))
        return result, cache.counts(store)
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    app.command("list-unsynced")(list_unsynced)
    app.command("refilter")(refilter)
