"""The ConnectWise accounting batch: exactly the invoices QBO confirmed, under a free `cwqbo-{day}-NNN` identifier.

The batch is recorded pending before it is created, so an interrupted run's batch is settled (see recovery)
rather than created twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from cwqbo import crashpoints, ledger
from cwqbo.clock import Clock
from cwqbo.connectwise import conditions as cw_cond
from cwqbo.errors import CwqboError
from cwqbo.run_state import RunState
from cwqbo.selection import changed_invoices, still_closed

EXTERNAL_BATCH = "(exported outside cwqbo)"
BATCH_ATTEMPTS = 5  # identifiers tried when another profile's batches hold the next ones


def today(clock: Clock) -> date:
    return datetime.fromtimestamp(clock.now(), UTC).date()


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _still_unposted(run: RunState, ids: list[int]) -> list[int]:
    """The ids CW still lists as unposted; those exported by someone else (and still Closed) are recorded so.

    A re-opened invoice is off the unposted list too, but it stays created-not-batched for a later run.
    """
    d = run.d
    try:
        still = d.cw.unposted_invoice_ids(ids)
    except CwqboError as exc:
        run.report.batch_error = f"could not read ConnectWise's unposted invoices: {exc}"
        return []
    gone = [i for i in ids if i not in still and still_closed(d.store, i)]
    if gone:  # exported by someone else after we created them: nothing left to batch for those
        ledger.mark_batched(d.store, gone, EXTERNAL_BATCH, now=run.now())
        run.report.message = (f"{len(gone)} invoice(s) were already exported in ConnectWise by someone else; "
                              "they are in QuickBooks and were not batched again")
    return [i for i in ids if i in still]


def batch_confirmed(run: RunState) -> None:
    """Create one CW accounting batch of exactly the invoices QBO confirmed (and CW still lists as unposted)."""
    from cwqbo.connectwise.client import BatchIdentifierTaken  # late, like discover: keeps imports light

    d = run.d
    if any(b for b in ledger.pending_batches(d.store)):
        return  # an unsettled batch may already hold these invoices; settle it first (next run)
    stale = {inv.id for inv in changed_invoices(d.store)}  # edited in CW since: QBO holds an older total
    rows = [r for r in ledger.created_not_batched(d.store) if r.cw_id not in stale]
    if not rows:
        return
    ids = [r.cw_id for r in rows]
    run.emit("batch", f"creating a ConnectWise accounting batch of {len(ids)} invoice(s)")
    day = today(d.clock)
    ids = _still_unposted(run, ids)
    if not ids:
        return
    try:
        seen = [str(b.get("batchIdentifier")) for b in
                (d.cw.list_batches(cw_cond.cmp("batchIdentifier", "like", f"cwqbo-{day.isoformat()}-%")) or [])
                if isinstance(b, dict)]
    except CwqboError as exc:
        run.report.batch_error = f"could not read ConnectWise batches: {exc}"
        return
    for _attempt in range(BATCH_ATTEMPTS):
        ident = ledger.next_batch_identifier(d.store, day, seen)
        ledger.record_batch_pending(d.store, ident, ids, run.run_id, now=run.now())
        crashpoints.crashpoint("sync.before_cw_batch")
        try:
            created = d.cw.create_batch(ident, ids)
            break
        except BatchIdentifierTaken as exc:  # another profile took it meanwhile: try the next one
            ledger.mark_batch_failed(d.store, ident, str(exc))
            seen.append(ident)
            ids = _still_unposted(run, ids)  # its batch may hold some of ours
            if not ids:
                return
        except CwqboError as exc:
            ledger.mark_batch_failed(d.store, ident, str(exc))
            run.report.batch_error = (f"ConnectWise batch {ident} was not created ({exc}); the invoices are "
                                      "in QuickBooks and the next run batches them")
            return
    else:
        run.report.batch_error = (f"no free ConnectWise batch identifier after {ident}; the invoices are in "
                                  "QuickBooks and the next run batches them")
        return
    crashpoints.crashpoint("sync.after_cw_batch")
    cw_batch_id = as_int(created.get("id")) if isinstance(created, dict) else as_int(created)
    ledger.mark_batch_created(d.store, ident, cw_batch_id, now=run.now())
    run.report.batch_identifier = ident
    run.report.batched_ids = ids

