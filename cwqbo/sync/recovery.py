"""Settling what an interrupted run left behind, before anything new is sent.

Ledger intents are settled by sending them again through the normal path with the *same* requestid (the probe
adopts whatever QBO already has); pending ConnectWise batches are settled by what ConnectWise holds (`cw_batch.settle`).
"""

from __future__ import annotations

from cwqbo.sync import cw_batch
from cwqbo.state import ledger
from cwqbo.models import CWInvoice
from cwqbo.sync.send import Sender
from cwqbo.sync.run_state import RunState
from cwqbo.sync.selection import cached_invoice


def recover(run: RunState, sender: Sender) -> set[int]:
    """Settle 'intent' rows: adopt what QBO has, resend the rest with the same requestid."""
    rows = ledger.pending_intents(run.deps.store)
    if not rows:
        return set()
    run.emit("recover", f"checking {len(rows)} invoice(s) interrupted by an earlier run")
    invoices: list[CWInvoice] = []
    forced: dict[int, str] = {}
    lost: list[ledger.Write] = []
    for row in rows:
        inv = cached_invoice(run.deps.store, row.cw_id)
        if inv is None:
            lost.append(ledger.Write(row.cw_id, "failed", error="interrupted, and no longer in the local cache; run "
                                     "`cwqbo sync` with a refresh"))
            continue
        invoices.append(inv)
        if row.request_id:
            forced[row.cw_id] = row.request_id
    if lost:
        ledger.apply(run.deps.store, run.run_id, lost, [], now=run.now())
    run.total += len(invoices)
    sender.process(invoices, forced_request_ids=forced)
    run.report.recovered = len(invoices)
    return {inv.id for inv in invoices}


def settle_pending_batches(run: RunState) -> None:
    """Settle CW batches whose outcome an interrupted run never learnt, by what ConnectWise holds."""
    for batch in ledger.pending_batches(run.deps.store):
        run.emit("batch", f"checking ConnectWise batch {batch.identifier}")
        cw_batch.settle(run, batch.identifier)
