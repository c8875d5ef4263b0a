"""Invoices changed in ConnectWise after they were synced: reported as skipped, or updated in QBO with --update.

An update that no longer reconciles is marked failed, never left 'created', so the CW batch never exports a
total QBO doesn't match.
"""

from __future__ import annotations

from cwqbo import money
from cwqbo.state import ledger
from cwqbo.models import CWInvoice
from cwqbo.sync.send import Sender
from cwqbo.quickbooks.client import QBOError
from cwqbo.sync.run_state import RunState, Work
from cwqbo.sync.model import CHANGED_REASON, PlannedUpdate


def handle_changed(run: RunState, sender: Sender, invoices: list[CWInvoice]) -> None:
    """Skip them with a hint, or (with --update) update their QBO documents in place."""
    if not invoices:
        return
    if not run.options.update_changed:
        for inv in invoices:
            row = ledger.get(run.deps.store, inv.id)
            run.settle(run.result(inv, "skipped", qbo_id=row.qbo_id if row else None,
                                  entity=row.entity if row else None,
                                  error=f"{CHANGED_REASON}; run with --update to update the QuickBooks document"))
        run.commit()
        return
    works = [Work(inv) for inv in invoices]
    for w in sender.prepare(works):
        if run.options.dry_run:
            preview_update(run, w)
        else:
            update_one(run, sender, w)
            run.commit()


def preview_update(run: RunState, w: Work) -> None:
    """Dry run of --update: read what QBO holds now and show what the update would change; write nothing."""
    row = ledger.get(run.deps.store, w.inv.id)
    if row is None or not row.qbo_id:
        run.fail(w, "changed in ConnectWise but its QuickBooks document is unknown", record=False)
        return
    try:
        current = run.deps.qbo.read(row.entity, row.qbo_id)
    except QBOError as exc:
        run.fail(w, str(exc), tid=exc.tid, record=False)
        return
    old = current.obj.get("TotalAmt")
    run.report.plan_updates.append(PlannedUpdate(
        cw_id=w.inv.id, number=w.inv.number, entity=row.entity, qbo_id=row.qbo_id,
        old_total=money.to_decimal(old) if old is not None else row.qbo_total,
        new_total=w.doc.expected_total if w.doc is not None else w.inv.total,
        sync_token=str(current.obj.get("SyncToken")) if current.obj.get("SyncToken") is not None else None))
    run.settle(run.result(w.inv, "dry-run", qbo_id=row.qbo_id, entity=row.entity), None, w)


def update_one(run: RunState, sender: Sender, w: Work) -> None:
    deps = run.deps
    row = ledger.get(deps.store, w.inv.id)
    if row is None or not row.qbo_id:
        run.fail(w, "changed in ConnectWise but its QuickBooks document is unknown", record=False)
        return
    try:
        current = deps.qbo.read(row.entity, row.qbo_id)
        payload = {**(w.payload or {}), "Id": row.qbo_id, "SyncToken": current.obj.get("SyncToken")}
        payload.pop("DocNumber", None) if payload.get("DocNumber") == current.obj.get("DocNumber") else None
        rid = ledger.request_id(deps.realm, w.inv.id, "update:" + w.payload_hash + ":" +
                                str(current.obj.get("SyncToken")))
        result = deps.qbo.update(row.entity, payload, rid)
    except QBOError as exc:
        run.fail(w, str(exc), tid=exc.tid, record=False)
        return
    obj, rec, tid, ok, warning = sender.settle_total(w, result.obj, result.tid)
    token = None if obj.get("SyncToken") is None else str(obj.get("SyncToken"))
    if ok:
        run.settle(run.result(w.inv, "updated", qbo_id=row.qbo_id, entity=row.entity, tid=tid,
                              qbo_total=rec.qbo_total, error=warning),
                   ledger.Write(w.inv.id, "updated", tid=tid, sync_token=token, qbo_total=rec.qbo_total,
                                cw_total=w.inv.total, content_hash=w.hash(), payload_hash=w.payload_hash),
                   w)
        return
    # never leave it 'created': the batch would export a total QBO doesn't match
    error = ((warning + "; ") if warning else "") + (
        f"total differs by {money.money_str(rec.difference)}" + (f": {rec.note}" if rec.note else "")
        + f" (QBO {row.entity} {row.qbo_id} kept for review; nothing batched)")
    run.settle(run.result(w.inv, "failed", qbo_id=row.qbo_id, entity=row.entity, tid=tid, qbo_total=rec.qbo_total,
                          error=error),
               ledger.Write(w.inv.id, "failed", error=error, tid=tid, qbo_id=row.qbo_id, sync_token=token,
                            qbo_total=rec.qbo_total, cw_total=w.inv.total), w)
