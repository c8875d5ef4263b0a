"""The ConnectWise accounting batch: exactly the invoices QBO confirmed, as ConnectWise's Accounting Interface does it.

1. Read the confirmed invoices' unposted rows (linked by `billingLogId`, cross-checked by invoice number).
2. Export them (`POST /finance/accounting/export`, a read; 1,000 invoices a request) and check each export holds
   exactly them, with our totals (`connectwise.accounting.check_export`), and that no GL entry appears twice;
   anything else batches nothing and says why.
3. Record the batch, with the export's GL entry ids, in the ledger *before* the POST.
4. POST one batch whose `processedRecordIds` are exactly those GL entry ids; after a 2xx it is never posted again.
5. Verify it by what ConnectWise holds: the batch's entries (`/batches/{id}/entries`) are exactly ours.
A crash or a lost answer anywhere is settled by `settle` (next run, or at once), by looking, never by re-posting.

A run batches at most BATCH_INVOICES invoices per ConnectWise batch, one batch after the other: a 100,000-invoice
first sync makes a few batches of bounded size instead of one request (and one answer) of hundreds of megabytes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from cwqbo import crashpoints
from cwqbo.state import cache
from cwqbo.state import ledger
from cwqbo.clock import Clock
from cwqbo.connectwise import accounting
from cwqbo.connectwise import conditions as cw_cond
from cwqbo.connectwise.client import IN_FLIGHT
from cwqbo.errors import CwqboError, RemoteError
from cwqbo.in_flight import in_flight
from cwqbo.sync.run_state import RunState
from cwqbo.sync.selection import changed_invoices, still_closed

EXTERNAL_BATCH = "(exported outside cwqbo)"
BATCH_INVOICES = 5000  # invoices per ConnectWise batch: bounds request, answer and memory whatever the run's size
EXPORT_CHUNK = 1000  # invoices per export request (ConnectWise's page size)
IDENTIFIER_ATTEMPTS = 3  # identifiers tried when another profile takes ours between the look-up and the POST
CHECK_BATCHES = "check Finance › Accounting Interface › Batches in ConnectWise"


def today(clock: Clock) -> date:
    return datetime.fromtimestamp(clock.now(), UTC).date()


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


Pair = tuple[ledger.LedgerRow, accounting.UnpostedRow]


def _unposted(run: RunState, rows: list[ledger.LedgerRow]) -> list[Pair]:
    """The rows whose invoices CW still lists as unposted under the same number, each with its unposted row.

    Invoices gone from the list while still Closed were exported by someone else: recorded so. A re-opened
    invoice is off the list too, but it stays created-not-batched for a later run.
    """
    deps = run.deps
    try:
        unposted = deps.cw.unposted_rows([r.cw_id for r in rows])
    except CwqboError as exc:
        run.report.batch_error = f"could not read ConnectWise's unposted invoices: {exc}"
        return []
    gone = [r.cw_id for r in rows if r.cw_id not in unposted and still_closed(deps.store, r.cw_id)]
    if gone:
        ledger.mark_batched(deps.store, gone, EXTERNAL_BATCH, now=run.now())
        note = (f"{len(gone)} invoice(s) were already exported in ConnectWise by someone else; "
                "they are in QuickBooks and were not batched again")
        run.report.message = f"{run.report.message}; {note}" if run.report.message else note
    renumbered = [r for r in rows if r.cw_id in unposted and unposted[r.cw_id].number != r.invoice_number]
    run.left_unbatched.update(r.cw_id for r in renumbered)
    if renumbered:
        run.report.batch_error = "; ".join(
            f"ConnectWise lists invoice {r.cw_id} as {unposted[r.cw_id].number!r}, but it was synced as "
            f"{r.invoice_number!r}: not batched (run `cwqbo sync --update` after checking it)" for r in renumbered)
    return [(r, unposted[r.cw_id]) for r in rows if r.cw_id in unposted and r not in renumbered]


def batch_confirmed(run: RunState, *, whole_parts: bool = False) -> bool:
    """Export and batch exactly the invoices QBO confirmed and CW still lists as unposted, BATCH_INVOICES at a time.

    A part that can't be batched (a problem, a refusal, an answer that can't be verified) stops the run's batching:
    the parts before it stay batched, the rest waits for the next run; False then, so no later call batches more.
    `whole_parts`: only whole parts of BATCH_INVOICES, while the last documents are still being created (the
    engine batches them while QBO's batch budget paces those; the rest follows once every create is settled).
    """
    deps = run.deps
    if ledger.pending_batches(deps.store):
        return False  # an unsettled batch may already hold these invoices: it is settled first (a later run)
    stale = {inv.id for inv in changed_invoices(deps.store)}  # edited in CW since: QBO holds an older total
    ids = [i for i in ledger.created_not_batched_ids(deps.store) if i not in stale and i not in run.left_unbatched]
    if whole_parts:
        ids = ids[:len(ids) - len(ids) % BATCH_INVOICES]
    if not ids:
        return True
    run.emit("batch", f"exporting {len(ids)} invoice(s) from ConnectWise's accounting interface")
    for start in range(0, len(ids), BATCH_INVOICES):
        part = ids[start:start + BATCH_INVOICES]
        found = ledger.get_many(deps.store, part)
        if not _batch_part(run, [found[i] for i in part if i in found]):
            return False
    return True


def _batch_part(run: RunState, rows: list[ledger.LedgerRow]) -> bool:
    """One ConnectWise batch of these confirmed invoices; False when batching must stop (the reason is reported)."""
    deps = run.deps
    found = _unposted(run, rows)
    if not found:
        return run.report.batch_error is None
    try:
        ident = _free_identifier(run)
        check = _export(run, ident, found)
    except CwqboError as exc:
        run.report.batch_error = f"could not export the invoices from ConnectWise: {exc}"
        return False
    crashpoints.crashpoint("sync.after_cw_export")
    if check.problems:
        done = len(run.report.batched_ids)
        head = (f"{len(found)} invoice(s) were not batched in ConnectWise ({done} invoice(s) before them were)"
                if done else "nothing was batched in ConnectWise")
        run.report.batch_error = (f"{head}: {'; '.join(check.problems)}. The invoices are in QuickBooks; check "
                                  "ConnectWise's accounting interface, then re-run")
        return False
    if check.missing:
        _report_missing(run, check.missing)
    if not check.gl_ids:
        return True
    return _post(run, ident, sorted(check.gl_ids), check.all_gl_ids())


def _export(run: RunState, ident: str, found: list[Pair]) -> accounting.ExportCheck:
    """The GL exports of these invoices, EXPORT_CHUNK per request, checked one by one and merged into one check."""
    merged = accounting.ExportCheck()
    owner: dict[int, int] = {}

    def checked(job: tuple[list[int], list[accounting.Expected]]) -> accounting.ExportCheck:
        export_ids, expected = job  # the store is read beforehand, on this thread: requests alone go in parallel
        return accounting.check_export(run.deps.cw.export_invoices(ident, export_ids), expected)

    cached = cache.light_rows(run.deps.store, [r.cw_id for r, _ in found])  # totals only, one query per 500
    jobs = [([accounting.export_invoice_id(u) for _, u in part],
             [accounting.Expected(r.cw_id, r.invoice_number, _total(r, cached.get(r.cw_id))) for r, _ in part])
            for part in (found[start:start + EXPORT_CHUNK] for start in range(0, len(found), EXPORT_CHUNK))]
    # A few export requests at once (reads); each GL export is checked as it arrives and only the check is kept.
    for check in in_flight(checked, jobs, IN_FLIGHT):
        merged.problems.extend(check.problems)
        merged.missing.extend(check.missing)
        for cw_id, gl_ids in check.gl_ids.items():
            for gl in gl_ids:
                if owner.setdefault(gl, cw_id) != cw_id:
                    merged.problems.append(f"GL entry {gl} is listed for both invoice ids {owner[gl]} and {cw_id}")
            merged.gl_ids[cw_id] = gl_ids
    return merged


def _post(run: RunState, ident: str, invoice_ids: list[int], gl_ids: list[int]) -> bool:
    """Record, POST once, verify; True when ConnectWise holds the batch. A refusal (4xx) posted nothing: when only
    the identifier was taken meanwhile (another profile on the same ConnectWise), the next identifier is tried;
    any other outcome is settled by looking."""
    deps = run.deps
    for _attempt in range(IDENTIFIER_ATTEMPTS):
        ledger.record_batch_pending(deps.store, ident, invoice_ids, run.run_id, gl_entry_ids=gl_ids, now=run.now())
        crashpoints.crashpoint("sync.after_batch_intent")
        run.emit("batch", f"creating ConnectWise accounting batch {ident} of {len(invoice_ids)} invoice(s)")
        try:
            deps.cw.create_batch(ident, gl_ids)
        except RemoteError as exc:
            if exc.status is None or not 400 <= exc.status < 500:
                return settle(run, ident)  # the answer was lost: look, never post again blind
            ledger.mark_batch_failed(deps.store, ident, str(exc))
            if _taken(run, ident):
                ident = _free_identifier(run)
                continue
            run.report.batch_error = (f"ConnectWise refused batch {ident} ({exc}); the invoices are in QuickBooks "
                                      "and the next run batches them")
            return False
        except CwqboError as exc:  # auth or permission: ConnectWise did not take it
            ledger.mark_batch_failed(deps.store, ident, str(exc))
            run.report.batch_error = f"ConnectWise batch {ident} was not created: {exc}"
            return False
        crashpoints.crashpoint("sync.after_cw_batch")
        ledger.mark_batch_posted(deps.store, ident)
        return settle(run, ident)
    run.report.batch_error = (f"no free ConnectWise batch identifier after {ident}; the invoices are in QuickBooks "
                              "and the next run batches them")
    return False


def _taken(run: RunState, ident: str) -> bool:
    """Whether a refused identifier is in use in ConnectWise (by a batch that is not ours: ours was refused)."""
    try:
        return run.deps.cw.find_batch(ident) is not None
    except CwqboError:
        return False


def preview(run: RunState) -> None:
    """Dry run: the invoices a real run would export and batch (already confirmed, plus those it would create)."""
    deps = run.deps
    if ledger.pending_batches(deps.store):
        return
    stale = {inv.id for inv in changed_invoices(deps.store)}
    numbers = [r.invoice_number for r in ledger.created_not_batched(deps.store) if r.cw_id not in stale]
    run.report.plan_batch = sorted({*numbers, *(p.number for p in run.report.plan)})


def _total(row: ledger.LedgerRow, cached: cache.CachedInvoice | None) -> Decimal:
    """The CW total the invoice was synced with: the cached invoice's (unchanged since: edited ones are left out)."""
    if cached is not None:
        return cached.total
    total = row.cw_total if row.cw_total is not None else row.qbo_total
    return total if total is not None else Decimal(0)


def _report_missing(run: RunState, missing: list[accounting.Expected]) -> None:
    """Invoices ConnectWise left out of the export: an error the first time, then (cron) a quiet reminder."""
    why = {e.cw_id: (f"invoice {e.number} is not in ConnectWise's GL export: it has no GL entries (open it in "
                     "Finance › Invoice Search › GL Entries; re-close it so ConnectWise makes them), so it is in "
                     "QuickBooks but not batched") for e in missing}
    run.left_unbatched.update(why)
    fresh = ledger.note_unbatchable(run.deps.store, why, now=run.now())
    if fresh or run.options.selection != "all":
        run.report.batch_error = "; ".join(why.values())
    else:
        note = f"{len(why)} invoice(s) still wait for GL entries in ConnectWise before they can be batched"
        run.report.message = f"{run.report.message}; {note}" if run.report.message else note


def _free_identifier(run: RunState) -> str:
    """`cwqbo-{day}-NNN`, past every identifier used today here or (by another profile) in ConnectWise."""
    day = today(run.deps.clock)
    seen = [str(b.get("batchIdentifier")) for b in
            run.deps.cw.list_batches(cw_cond.cmp("batchIdentifier", "like", f"cwqbo-{day.isoformat()}-%")) or []
            if isinstance(b, dict)]
    return ledger.next_batch_identifier(run.deps.store, day, seen)


def settle(run: RunState, identifier: str) -> bool:
    """Decide an unsettled batch by what ConnectWise holds: created (exactly our GL entries), or not created.
    True when it is created.

    A `pending` batch ConnectWise doesn't have was never created: failed, its invoices go into a later batch. A
    `posted` batch (ConnectWise said 2xx) is never failed: if it can't be verified it stays, loudly, for a person.
    """
    deps = run.deps
    batch = ledger.get_batch(deps.store, identifier)
    if batch is None or batch.state not in ("pending", "posted"):
        return False
    try:
        found = deps.cw.find_batch(identifier)
        entries = deps.cw.batch_entry_ids(int(found["id"])) if found and found.get("id") is not None else set()
    except CwqboError as exc:
        run.report.batch_error = f"could not check ConnectWise batch {identifier}: {exc}"
        ledger.note_batch_error(deps.store, identifier, run.report.batch_error)
        return False
    ours = set(batch.gl_entry_ids)
    if found is not None and ours and entries == ours:
        ledger.mark_batch_created(deps.store, identifier, as_int(found.get("id")), now=run.now())
        run.report.add_batch(identifier, batch.invoice_ids)
        return True
    if batch.state == "posted" or (found is not None and entries & ours):
        run.report.batch_error = (f"ConnectWise batch {identifier} does not hold exactly the GL entries cwqbo "
                                  f"exported ({len(entries & ours)} of {len(ours)}, {len(entries - ours)} others); "
                                  f"it is not posted again and its invoices wait: {CHECK_BATCHES}")
        ledger.note_batch_error(deps.store, identifier, run.report.batch_error)
        return False
    why = ("the identifier is used in ConnectWise by a batch of other GL entries" if found is not None
           else "not found in ConnectWise")
    ledger.mark_batch_failed(deps.store, identifier, f"{why}; its invoices go into the next batch")
    return False
