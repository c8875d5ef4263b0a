"""Regressions from the sync review (findings 1, 2, 3, 4, 5, 8), in-process like test_sync.py.

Each test reproduces what a user would have seen: a second QuickBooks document for one invoice,
invoices recorded as batched that no ConnectWise batch holds, a stale total exported, an invoice
silently missing from the report, or a re-opened invoice never batched.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from cwqbo import crashpoints
from cwqbo.sync import cw_batch
from cwqbo.state import ledger
from cwqbo.mapping import reconciliation
from cwqbo.sync import engine as sync
from cwqbo.connectwise.client import CWClient
from cwqbo.errors import ConfigError, RemoteError
from cwqbo.settings.prefs import Prefs
from cwqbo.sync.resolve import Resolver

from .test_sync import World, _crash_at


N_INVOICES = 24  # enough for every case (credit memos, long numbers), small enough to stay fast


def _docs_per_invoice(w: World) -> Counter[int | None]:
    return Counter(sync.owner_of(d.get("PrivateNote")) for _, d in w.docs())


def _prefix(prefix: str) -> Prefs:
    p = Prefs()
    return dataclasses.replace(p, fields=dataclasses.replace(p.fields, docnumber_prefix=prefix))


# -- 1: QBO assigns its own numbers -----------------------------------------------------------------

def test_custom_transaction_numbers_off_refuses_to_sync(world: World) -> None:
    world.sandbox.qbo.preferences["SalesFormsPrefs"]["CustomTxnNumbers"] = False
    with pytest.raises(ConfigError) as info:
        world.sync()
    assert info.value.exit_code == 2
    assert "Custom transaction numbers" in (info.value.hint or "")
    assert world.docs() == []


def test_document_renumbered_by_qbo_is_kept_not_batched_and_not_duplicated(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if the preference could not be read, a document QBO renumbered is never treated as confirmed."""
    world.sandbox.qbo.preferences["SalesFormsPrefs"]["CustomTxnNumbers"] = False
    original = Resolver.resolve

    def blind(self: Resolver, *a: Any, **k: Any) -> Any:
        result = original(self, *a, **k)
        result.preferences = {}
        return result

    monkeypatch.setattr(Resolver, "resolve", blind)
    first = world.sync()
    renumbered = [i for i in first.items if i.error and "instead of" in i.error]
    assert renumbered and all(i.outcome == "failed" and i.qbo_id for i in renumbered)
    assert not first.batched_ids
    world.sync()
    assert max(_docs_per_invoice(world).values()) == 1


# -- 2: DocNumber changed between a crash and the recovery ------------------------------------------

def test_prefix_change_after_crash_adopts_the_document_sent_under_the_old_number(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    crash = _crash_at(monkeypatch, "sync.after_qbo_response")
    with pytest.raises(crash):
        world.sync()
    sent = len(world.docs())
    assert sent and ledger.pending_intents(world.store)
    monkeypatch.setattr(crashpoints, "crashpoint", lambda point: None)
    report = world.sync(prefs=_prefix("CW-"))
    assert max(_docs_per_invoice(world).values()) == 1
    assert len(world.docs()) == sent + sum(1 for i in report.items if i.outcome == "created")
    assert not ledger.pending_intents(world.store)


def test_failed_row_with_qbo_id_is_read_back_not_sent_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row that kept its qbo_id (from before doc_number was stored) is settled by reading that document."""
    crash = _crash_at(monkeypatch, "sync.after_qbo_response")
    with pytest.raises(crash):
        world.sync()
    monkeypatch.setattr(crashpoints, "crashpoint", lambda point: None)
    for entity, doc in world.docs():
        cw_id = sync.owner_of(doc.get("PrivateNote"))
        world.store.db.execute("update ledger set state = 'failed', qbo_id = ?, entity = ?, doc_number = null "
                               "where cw_id = ?", [str(doc["Id"]), entity, cw_id])
    world.store.db.conn.commit()
    world.sync(prefs=_prefix("CW-"))
    assert max(_docs_per_invoice(world).values()) == 1


# -- 3: another profile's batch with our identifier -------------------------------------------------

def test_batch_identifier_taken_by_another_profile_is_not_claimed(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    other = max(world.sandbox.cw.unposted_ids())
    day = cw_batch.today(world.clock).isoformat()
    original_list = CWClient.list_batches
    raced = {"done": False}

    def racing_list(self: CWClient, conditions: str | None = None) -> list[dict[str, Any]]:
        rows = original_list(self, conditions)
        if conditions and "like" in conditions and not raced["done"]:
            raced["done"] = True  # profile B creates the identifier we are about to choose
            world.sandbox.cw.batch_invoices(f"cwqbo-{day}-001", [other])
        return rows

    monkeypatch.setattr(CWClient, "list_batches", racing_list)
    report = world.sync()
    assert report.batch_identifier and report.batch_identifier != f"cwqbo-{day}-001"
    in_cw = set(world.sandbox.cw.invoices_in_batch(report.batch_identifier))
    assert set(report.batched_ids) == in_cw
    unposted = set(world.sandbox.cw.unposted_ids())
    batched = [r.cw_id for r in ledger.all_rows(world.store) if r.state == "batched"]
    assert batched and not unposted & set(batched)


def test_pending_batch_settles_only_against_a_batch_holding_our_invoices(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    crash = _crash_at(monkeypatch, "sync.after_batch_intent")
    with pytest.raises(crash):
        world.sync()
    monkeypatch.setattr(crashpoints, "crashpoint", lambda point: None)
    pending = ledger.pending_batches(world.store)[0]
    ours = set(pending.invoice_ids)
    stranger = next(i for i in world.sandbox.cw.unposted_ids() if i not in ours)
    world.sandbox.cw.batch_invoices(pending.identifier, [stranger])  # another profile's batch, same name
    world.sync()
    assert ledger.get_batch(world.store, pending.identifier).state == "failed"
    unposted = set(world.sandbox.cw.unposted_ids())
    assert not ours & unposted, "our invoices must end up in a real CW batch"
    for cw_id in ours:
        assert ledger.get(world.store, cw_id).batch_identifier != pending.identifier


# -- 4: stale totals -----------------------------------------------------------------------------------

def _created_not_batched(world: World, monkeypatch: pytest.MonkeyPatch) -> ledger.LedgerRow:
    def down(self: CWClient, ident: str, ids: Any) -> dict[str, Any]:
        raise RemoteError("CW down", status=503)

    with monkeypatch.context() as m:
        m.setattr(CWClient, "create_batch", down)
        world.sync()
    return next(r for r in ledger.all_rows(world.store) if r.state == "created")


def test_invoice_edited_in_cw_since_creation_is_not_batched(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    row = _created_not_batched(world, monkeypatch)
    inv = world.sandbox.cw.invoice(row.cw_id)
    world.sandbox.cw.update_invoice(row.cw_id, subtotal=Decimal(str(inv["subtotal"])) + 50,
                                    total=Decimal(str(inv["total"])) + 50)
    report = world.sync()
    assert row.cw_id not in report.batched_ids
    assert row.cw_id in world.sandbox.cw.unposted_ids()
    assert ledger.get(world.store, row.cw_id).state == "created"


def test_update_that_does_not_reconcile_fails_and_keeps_the_document(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    row = _created_not_batched(world, monkeypatch)
    inv = world.sandbox.cw.invoice(row.cw_id)
    world.sandbox.cw.update_invoice(row.cw_id, subtotal=Decimal(str(inv["subtotal"])) + 50,
                                    total=Decimal(str(inv["total"])) + 50)
    real = reconciliation.reconcile

    def off_by_a_cent(doc: Any, obj: dict[str, Any], prefs: Prefs) -> reconciliation.Reconciliation:
        rec = real(doc, obj, prefs)
        return dataclasses.replace(rec, ok=False, difference=Decimal("0.01"), note="tax rounded differently")

    monkeypatch.setattr(reconciliation, "reconcile", off_by_a_cent)
    report = world.sync(update_changed=True)
    item = next(i for i in report.items if i.cw_id == row.cw_id)
    assert item.outcome == "failed"
    after = ledger.get(world.store, row.cw_id)
    assert after.state == "failed" and after.qbo_id == row.qbo_id
    assert row.cw_id not in report.batched_ids and row.cw_id in world.sandbox.cw.unposted_ids()


def test_update_follows_the_same_mismatch_policy_as_a_create(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """tax.on_mismatch = warn accepts a create with a note; an --update of the same document must too."""
    row = _created_not_batched(world, monkeypatch)
    inv = world.sandbox.cw.invoice(row.cw_id)
    world.sandbox.cw.update_invoice(row.cw_id, subtotal=Decimal(str(inv["subtotal"])) + 50,
                                    total=Decimal(str(inv["total"])) + 50)
    real = reconciliation.reconcile

    def off_by_a_cent(doc: Any, obj: dict[str, Any], prefs: Prefs) -> reconciliation.Reconciliation:
        return dataclasses.replace(real(doc, obj, prefs), ok=False, difference=Decimal("0.01"), note="rounding")

    monkeypatch.setattr(reconciliation, "reconcile", off_by_a_cent)
    prefs = Prefs()
    prefs.tax.on_mismatch = "warn"
    report = world.sync(update_changed=True, prefs=prefs)
    item = next(i for i in report.items if i.cw_id == row.cw_id)
    assert item.outcome == "updated" and "accepted with a difference of 0.01" in (item.error or "")
    assert ledger.get(world.store, row.cw_id).state == "batched"


# -- 5: unreadable invoices --------------------------------------------------------------------------

def test_unreadable_invoice_is_reported_as_failed(world: World) -> None:
    broken = next(i for i in world.sandbox.cw.invoices() if i["status"]["name"] == "Closed")
    world.sandbox.cw.update_invoice(broken["id"], total="12,50")
    report = world.sync()
    item = next((i for i in report.items if i.cw_id == broken["id"]), None)
    assert item is not None and item.outcome == "failed"
    assert str(broken["invoiceNumber"]) in item.number and item.error
    assert not report.ok


# -- 8: re-opened before the batch ---------------------------------------------------------------------

def test_reopened_invoice_is_batched_after_it_is_closed_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    row = _created_not_batched(world, monkeypatch)
    world.sandbox.cw.reopen_invoice(row.cw_id)
    world.sync()
    assert ledger.get(world.store, row.cw_id).state == "created", "not 'exported outside cwqbo'"
    world.sandbox.cw.close_invoice(row.cw_id)
    world.sync()  # re-closed without an edit: not a change, so it is simply batched now
    after = ledger.get(world.store, row.cw_id)
    assert after.state == "batched" and after.batch_identifier != cw_batch.EXTERNAL_BATCH
    assert row.cw_id not in world.sandbox.cw.unposted_ids()
