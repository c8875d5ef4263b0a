"""What `cwqbo history` prints: recent runs, one run's page, one invoice's story, as plain lines or one JSON document.

Both ways in print through here: the Typer commands (`cli/history.py`) and the fast start (`cli/fast_path.py`),
which runs these without importing Typer, rich or sqlite_utils. So this module imports neither, and prints tables
with `text_table`, laid out as rich lays out every other command's.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from cwqbo.cli import text_table
from cwqbo.cli.render import cell_text, emit_json, money
from cwqbo.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.state.history import Attention, InvoiceStory, Payment, RunPage, RunSummary
    from cwqbo.state.store import Readable

NOTHING_YET = "No sync runs yet: nothing synced yet. Run `cwqbo sync` to make the first one."
NOTHING_YET_FAILED = "Nothing synced yet: no failed runs and nothing needs attention."


def show_history(store: Readable | None, *, limit: int, failed: bool, invoice: str | None, json_out: bool) -> None:
    """`cwqbo history`: the recent runs (or with `failed`, the failed ones and what needs attention), or one
    invoice's story. `store` None: nothing was ever synced."""
    from cwqbo.state import history as core

    if store is None:
        if json_out:
            emit_json("history", "ok", 0, {"runs": [], "attention": []} if failed else {"runs": []})
        else:
            _say(NOTHING_YET_FAILED if failed else NOTHING_YET)
        return
    if invoice is not None:
        story = core.invoice_story(store, invoice)
        if json_out:
            emit_json("history", "ok", 0, {"invoice": story})
        else:
            _print_story(story)
        return
    found = core.runs(store, limit=limit, failed_only=failed)
    attention = core.needs_attention(store) if failed else []
    if json_out:
        data: dict[str, Any] = {"runs": found}
        if failed:
            data["attention"] = attention
        emit_json("history", "ok", 0, data)
        return
    if not found and not attention:
        _say("No failed runs and nothing needs attention." if failed
             else "No sync runs yet. Run `cwqbo sync` to make the first one.")
        return
    if found:
        # Eight narrow columns fit 80 columns; batch identifiers go below, skipped counts are in `history show`.
        rows = [(r.id, _local(r.started_at, seconds=False),
                 (r.trigger or "") + (" (dry)" if r.dry_run else ""), r.created, r.failed,
                 _duration(r.duration_ms), r.status or "", _who(r)) for r in found]
        _table(["Run", "Started", "Trigger", "Sent", "Failed", "Took", "Status", "By"], rows,
               title="Runs with failures" if failed else "Sync runs")
        _notes("ConnectWise batches:", [(f"run {r.id}", r.batch_identifier) for r in found if r.batch_identifier])
    if failed:
        _print_attention(attention)


def page_start(limit: int, offset: int | None, page: int | None) -> int:
    """The first line `history show` lists: `--offset`, or `--page` of `--limit` lines; a clear error for both."""
    if offset is not None and page is not None:
        raise UsageError("give --offset or --page, not both")
    if page is not None and limit == 0:
        raise UsageError("--page needs a --limit (invoices per page)")
    return offset if offset is not None else (page - 1) * limit if page is not None else 0


def show_run(store: Readable | None, run_id: int, *, limit: int, start: int, failed: bool, json_out: bool) -> None:
    """`cwqbo history show RUN`: one page of what a run did with each invoice (a payments run: each payment)."""
    from cwqbo.state import history as core

    if store is None:
        raise UsageError(f"no run {run_id}: nothing synced yet", hint="run `cwqbo sync` first")
    result = core.run_page(store, run_id, limit=limit or None, offset=start, failed_only=failed)
    if json_out:
        lines: dict[str, Any] = ({"kind": "payments", "payments": result.payments} if result.kind == "payments"
                                 else {"kind": "invoices", "items": result.items})
        emit_json("history show", "ok", 0, {
            "run": result.run, **lines,
            "page": {"total": result.total, "offset": result.offset, "limit": result.limit,
                     "returned": len(result.items) + len(result.payments), "remaining": result.remaining,
                     "failed_only": result.failed_only}})
        return
    _print_run(result)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def _table(columns: list[str], rows: list[tuple[Any, ...]], title: str) -> None:
    for line in text_table.lines(columns, [[cell_text(v) for v in row] for row in rows], title):
        _say(line)


def _notes(title: str, notes: list[tuple[str, str]]) -> None:
    for line in text_table.note_lines(title, notes, text_table.terminal_width()):
        _say(line)


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


def _print_attention(items: list[Attention]) -> None:
    if not items:
        _say("No invoices need attention.")
        return
    rows = [(a.invoice_number or "", a.cw_id, a.kind, _local(a.since, seconds=False), a.run_id or "") for a in items]
    _table(["Invoice", "CW id", "Problem", "Since", "Run"], rows, title="Needs attention")
    _notes("Details:", [(a.invoice_number or str(a.cw_id), a.detail) for a in items])


def _print_story(story: InvoiceStory) -> None:
    title = f"Invoice {story.invoice_number or '?'} (CW id {story.cw_id})"
    _say(title)
    led = story.ledger
    if led is None:
        _say("  Not sent to QuickBooks yet.")
    else:
        where = f"{led.entity} {led.qbo_id}" if led.qbo_id else led.entity
        _say(f"  State: {led.state} — QuickBooks {where}; CW total {money(led.cw_total)}, "
                         f"QBO total {money(led.qbo_total)}; attempts {led.attempts}")
        if led.error:
            _say(f"  Last error: {led.error}")
        if led.intuit_tid:
            _say(f"  Intuit tid: {led.intuit_tid}")
    if story.batch is not None:
        b = story.batch
        _say(f"  ConnectWise batch: {b.identifier} ({b.state}"
                         + (f", CW batch id {b.cw_batch_id}" if b.cw_batch_id else "") + ")")
    if led is not None or story.payments:
        _say(_paid_line(story))
    if story.items:
        rows = [(i.run_id, _local(i.at), i.outcome or "", f"{i.entity or ''} {i.qbo_id or ''}".strip(), i.cw_total,
                 i.qbo_total) for i in story.items]
        _table(["Run", "At", "Outcome", "QBO", "CW total", "QBO total"], rows,
                                      title="Runs that touched it")
        _notes("Errors and Intuit transaction ids:",
                           [(f"run {i.run_id}", "; ".join(x for x in (i.error, f"tid {i.intuit_tid}"
                                                                      if i.intuit_tid else "") if x))
                            for i in story.items if i.error or i.intuit_tid])
    else:
        _say("  No run has touched it yet.")
    if story.payments:
        _print_payments(story)


def _payment_type(type_: str | None, credit_cw_id: int | None) -> str:
    return (type_ or "") + (" (credit)" if credit_cw_id else "")


def _paid_line(story: InvoiceStory) -> str:
    if not story.payments:
        return "  Paid: no QuickBooks payment brought back yet."
    posted = [p for p in story.payments if p.state == "posted"]
    total = story.ledger.cw_total if story.ledger else None
    of = f" of {money(total)}" if total is not None else ""
    full = " — paid in full" if total is not None and total > 0 and story.paid == total else ""
    return (f"  Paid: {money(story.paid)}{of} brought back from QuickBooks "
            f"({len(posted)} payment{'' if len(posted) == 1 else 's'} in ConnectWise){full}")


def _print_payments(story: InvoiceStory) -> None:
    """The QuickBooks payments brought back onto the invoice: one row per payment line, as it stands now."""
    rows = [(p.qbo_payment_id, p.cw_payment_id or "", p.payment_date, p.amount, _payment_type(p.type, p.credit_cw_id),
             p.state, p.run_id or "") for p in story.payments]
    _table(["QBO payment", "CW payment", "Date", "Amount", "Type", "State", "Run"], rows,
                                  title="Payments brought back")
    _notes("Payment notes:", [(f"QBO {p.qbo_payment_id}", _payment_note(p))
                                          for p in story.payments if p.reason or p.credit_cw_id])


def _payment_note(p: Payment) -> str:
    credit = f"credit memo (CW id {p.credit_cw_id}) applied" if p.credit_cw_id else ""
    tries = f" after {p.attempts} attempts" if p.attempts > 1 and p.state == "posted" else ""
    return "; ".join(x for x in (credit + tries, p.reason or "") if x)


def _print_run(page: RunPage) -> None:
    if page.kind == "payments":
        _print_payments_run(page)
        return
    r = page.run
    _say(f"Run {r.id}: {r.status or '?'} — {r.trigger or '?'}{' (dry run)' if r.dry_run else ''} "
                     f"by {_who(r) or '?'}, started {_local(r.started_at)}, took {_duration(r.duration_ms) or '?'}")
    _say(f"  selected {r.selected}, created {r.created}, failed {r.failed}, skipped {r.skipped}"
                     + (f"; batch {r.batch_identifier}" if r.batch_identifier else ""))
    if r.message:
        _say(f"  {r.message}")
    if _nothing_to_show(page, len(page.items), "invoices", "  No invoice of this run failed.",
                        "  This run touched no invoices."):
        return
    rows = [(i.invoice_number or "", i.outcome or "", f"{i.entity or ''} {i.qbo_id or ''}".strip(), i.cw_total,
             i.qbo_total) for i in page.items]
    first, last = page.offset + 1, page.offset + len(page.items)
    what = "failed invoices" if page.failed_only else "invoices"
    _table(["Invoice", "Outcome", "QBO", "CW total", "QBO total"], rows,
                                  title=f"{what.capitalize()} {first}–{last} of {page.total}")
    _notes("Failure reasons:", [(i.invoice_number or str(i.cw_id), i.error + (
        f" (Intuit tid {i.intuit_tid})" if i.intuit_tid else "")) for i in page.items if i.error])
    _notes("Intuit transaction ids:", [(i.invoice_number or str(i.cw_id), i.intuit_tid)
                                                   for i in page.items if i.intuit_tid and not i.error])
    if page.remaining:
        more = f"… {page.remaining} more {what}: --offset {last}"
        if page.limit and page.offset % page.limit == 0:
            more += f" or --page {page.offset // page.limit + 2}"
        _say(more + (", --limit 0 for all" if page.limit else ""))


def _nothing_to_show(page: RunPage, shown: int, noun: str, none_failed: str, none_at_all: str) -> bool:
    """Say why a page of a run is empty (nothing in the run, or an offset past its end); True if it was."""
    if not page.total:
        _say(none_failed if page.failed_only else none_at_all)
        return True
    if not shown:
        _say(f"  No {noun} past #{page.offset} (the run has {page.total}"
                         f"{' failed' if page.failed_only else ''}).")
        return True
    return False


def _print_payments_run(page: RunPage) -> None:
    """A payments run: each QuickBooks payment line it posted, adopted, reversed or failed, a page at a time."""
    r = page.run
    _say(f"Run {r.id}: {r.status or '?'} — payments{' (dry run)' if r.dry_run else ''} "
                     f"by {_who(r) or '?'}, started {_local(r.started_at)}, took {_duration(r.duration_ms) or '?'}")
    _say(f"  payment lines {r.selected}, brought back or reversed {r.created}, failed {r.failed}, "
                     f"still waiting {r.skipped}")
    if r.message:
        _say(f"  {r.message}")
    what = "failed payments" if page.failed_only else "payments"
    if _nothing_to_show(page, len(page.payments), "payments", "  No payment of this run failed.",
                        "  This run brought no payment back."):
        return
    rows = [(e.invoice_number or e.cw_invoice_id, e.outcome, e.qbo_payment_id, e.cw_payment_id or "",
             e.payment_date or "", e.amount, _payment_type(e.type, e.credit_cw_id)) for e in page.payments]
    first, last = page.offset + 1, page.offset + len(page.payments)
    _table(["Invoice", "Outcome", "QBO payment", "CW payment", "Date", "Amount", "Type"],
                                  rows, title=f"{what.capitalize()} {first}–{last} of {page.total}")
    _notes("Reasons:", [(e.invoice_number or str(e.cw_invoice_id), e.error)
                                    for e in page.payments if e.error])
    if page.remaining:
        more = f"… {page.remaining} more {what}: --offset {last}"
        if page.limit and page.offset % page.limit == 0:
            more += f" or --page {page.offset // page.limit + 2}"
        _say(more + (", --limit 0 for all" if page.limit else ""))
