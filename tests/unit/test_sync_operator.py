"""What operators, cron and support see of a run (issue 11): previews of every write, changed invoices named,
known failures that don't re-alarm cron, and run records that tell what really happened. In-process."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cwqbo.state import ledger

from cwqbo.state import runs
from cwqbo.cli.sync import show_report
from cwqbo.errors import UsageError
from cwqbo.sandbox.generator import LONG_INVOICE_NUMBER
from cwqbo.state.store import Store

from .test_sync import World


def _synced_invoice(world: World) -> ledger.LedgerRow:
    world.sync()
    return next(r for r in ledger.all_rows(world.store) if r.state == "batched" and r.entity == "Invoice")


def _raise_total(world: World, cw_id: int, by: str = "50") -> Decimal:
    inv = world.sandbox.cw.invoice(cw_id)
    world.clock.advance(3600)
    new_total = Decimal(str(inv["total"])) + Decimal(by)
    world.sandbox.cw.update_invoice(cw_id, subtotal=Decimal(str(inv["subtotal"])) + Decimal(by), total=new_total)
    return new_total


def test_update_dry_run_previews_old_and_new_totals_and_writes_nothing(world: World) -> None:
    row = _synced_invoice(world)
    new_total = _raise_total(world, row.cw_id)
    doc_before = world.sandbox.qbo.get("Invoice", row.qbo_id)
    preview = world.sync(update_changed=True, dry_run=True)
    [planned] = [u for u in preview.plan_updates if u.cw_id == row.cw_id]
    assert planned.old_total == Decimal(str(doc_before["TotalAmt"])) and planned.new_total == new_total
    assert planned.sync_token == str(doc_before["SyncToken"]) and planned.qbo_id == row.qbo_id
    assert world.sandbox.qbo.get("Invoice", row.qbo_id) == doc_before, "a dry run changes nothing"
    assert ledger.get(world.store, row.cw_id).content_hash == row.content_hash
    real = world.sync(update_changed=True)
    assert next(i for i in real.items if i.cw_id == row.cw_id).outcome == "updated"
    assert Decimal(str(world.sandbox.qbo.get("Invoice", row.qbo_id)["TotalAmt"])) == new_total


def test_a_named_invoice_changed_since_it_was_synced_says_so_and_updates_with_update(world: World) -> None:
    row = _synced_invoice(world)
    _raise_total(world, row.cw_id)
    named = world.sync(selection="invoices", invoice_numbers=(row.invoice_number,), trigger="invoice")
    [item] = named.items
    assert item.outcome == "skipped" and "changed in ConnectWise after it was synced" in (item.error or "")
    assert "--update" in (item.error or "")
    updated = world.sync(selection="invoices", invoice_numbers=(row.invoice_number,), trigger="invoice",
                         update_changed=True)
    assert [i.outcome for i in updated.items] == ["updated"]


def test_a_quiet_run_names_changed_invoices(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    row = _synced_invoice(world)
    world.sandbox.cw.update_invoice(row.cw_id, customerPO="PO-CHANGED-77")
    world.clock.advance(3600)
    report = world.sync()
    show_report(report, quiet=True)
    out = capsys.readouterr().out
    assert row.invoice_number in out and "cwqbo sync --update" in out


def test_a_known_unchanged_failure_waits_in_cron_runs_but_fails_when_named(world: World) -> None:
    first = world.sync()
    [failed] = [i for i in first.items if i.number == LONG_INVOICE_NUMBER]
    assert failed.outcome == "failed" and first.failed == 1
    again = world.sync()
    [waiting] = [i for i in again.items if i.number == LONG_INVOICE_NUMBER]
    assert waiting.outcome == "waiting" and f"first reported in run {first.run_id}" in (waiting.error or "")
    assert again.failed == 0 and again.waiting == 1 and again.ok and again.status == "ok"
    assert runs.run(world.store, again.run_id or 0)["status"] == "ok"
    named = world.sync(selection="invoices", invoice_numbers=(LONG_INVOICE_NUMBER,), trigger="invoice")
    assert [i.outcome for i in named.items] == ["failed"] and not named.ok


def test_a_mistyped_invoice_number_records_no_run(world: World) -> None:
    world.sync(dry_run=True)
    with pytest.raises(UsageError, match="99999"):
        world.sync(selection="invoices", invoice_numbers=("99999",), trigger="invoice")
    assert world.store.db.execute("select count(*) from runs").fetchone()[0] == 0


def test_a_killed_run_is_recorded_with_what_it_did(world: World) -> None:
    store: Store = world.store
    run_id = runs.start_run(store, trigger="all", dry_run=False)
    runs.record_items(store, run_id, [runs.Item(1, "A", "created", "Invoice", "7", Decimal("1"), Decimal("1"),
                                                    None, None),
                                        runs.Item(2, "B", "failed", "Invoice", None, Decimal("1"), None, None, "x")])
    assert runs.mark_interrupted_runs(store) == 1
    run = runs.run(store, run_id)
    assert run is not None and run["status"] == "interrupted"
    assert (run["selected"], run["created"], run["failed"]) == (2, 1, 1) and "killed" in run["message"]
