"""The ConnectWise accounting flow (export → check → record → batch → verify), in-process like test_sync.py.

What would harm a real account: batching GL entries that are not ours, posting a batch twice, or marking
invoices batched that no ConnectWise batch holds. Each test sets up one of those chances and checks none happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cwqbo.sync import cw_batch
from cwqbo.state import ledger
from cwqbo.connectwise.client import CWClient
from cwqbo.errors import RemoteError
from cwqbo.sync.model import run_status

from .test_sync import World, _crash_at, make_world


def _posts(world: World, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    sent: list[list[int]] = []
    original = CWClient.create_batch

    def counting(self: CWClient, identifier: str, gl_entry_ids: Any) -> dict[str, Any]:
        sent.append(sorted(gl_entry_ids))
        return original(self, identifier, gl_entry_ids)

    monkeypatch.setattr(CWClient, "create_batch", counting)
    return sent


def _synced(world: World) -> set[int]:
    return {r.cw_id for r in ledger.all_rows(world.store) if r.state in ("created", "batched")}


def test_the_batch_holds_exactly_the_gl_entries_of_the_confirmed_invoices(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _posts(world, monkeypatch)
    others_before = set(world.sandbox.cw.unbatched_gl_entry_ids())
    report = world.sync()
    batched = set(report.batched_ids)
    assert batched and batched <= _synced(world)
    ours = sorted(int(e["id"]) for i in batched for e in world.sandbox.cw.gl_entries_of(i))
    assert sent == [ours], "one POST, of exactly our invoices' GL entries"
    assert not set(ours) & {int(i["id"]) for i in world.sandbox.cw.invoices()}, "GL ids are not invoice ids"
    assert set(world.sandbox.cw.unbatched_gl_entry_ids()) == others_before - set(ours), "nobody else's entries"
    assert not batched & set(world.sandbox.cw.unposted_ids())
    row = ledger.get_batch(world.store, report.batch_identifier or "")
    assert row is not None and row.state == "created" and row.gl_entry_ids == ours


def test_a_wrong_guess_about_the_export_id_batches_nothing_and_says_why(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """If includedInvoiceIds meant billingLogId, our row ids select other invoices or none: refuse, loudly."""
    world.sandbox.cw.set_export_invoice_id_field("billingLogId")
    sent = _posts(world, monkeypatch)
    unposted = set(world.sandbox.cw.unposted_ids())
    report = world.sync()
    assert sent == [] and world.cw_batches() == []
    assert report.batch_error and "nothing was batched" in report.batch_error
    assert set(world.sandbox.cw.unposted_ids()) == unposted
    assert {r.state for r in ledger.all_rows(world.store) if r.cw_id in _synced(world)} == {"created"}
    assert report.status == "partial"


def test_a_lost_batch_answer_is_settled_by_looking_never_by_posting_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _posts(world, monkeypatch)
    world.sandbox.faults.update({"drop_after_commit_next": 1, "paths": ["/finance/accounting/batches"]})
    report = world.sync()
    assert len(sent) == 1 and len(world.cw_batches()) == 1
    assert report.batch_identifier == world.cw_batches()[0]["batchIdentifier"]
    assert ledger.get_batch(world.store, report.batch_identifier or "").state == "created"
    world.sync()
    assert len(sent) == 1 and len(world.cw_batches()) == 1


def test_a_batch_connectwise_accepted_but_that_cannot_be_verified_is_never_posted_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _posts(world, monkeypatch)
    monkeypatch.setattr(CWClient, "batch_entry_ids", lambda self, batch_id: set())  # what we'd see if it lied
    first = world.sync()
    assert len(sent) == 1 and first.batch_error and "not posted again" in first.batch_error
    pending = ledger.pending_batches(world.store)
    assert [b.state for b in pending] == ["posted"]
    second = world.sync()
    assert len(sent) == 1, "a batch ConnectWise answered 2xx for is looked at, never re-posted"
    assert second.batch_error and "not posted again" in second.batch_error


def test_a_crash_after_the_batch_intent_is_settled_by_what_connectwise_holds(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    crash = _crash_at(monkeypatch, "sync.after_batch_intent")
    with pytest.raises(crash):  # type: ignore[call-overload]
        world.sync()
    monkeypatch.setattr("cwqbo.crashpoints.crashpoint", lambda point: None)
    pending = ledger.pending_batches(world.store)
    assert len(pending) == 1 and pending[0].gl_entry_ids, "the GL entry ids were recorded before the POST"
    assert world.cw_batches() == []
    world.sync()
    assert ledger.get_batch(world.store, pending[0].identifier).state == "failed"  # never reached ConnectWise
    batchable = _synced(world) - set(world.sandbox.cw.no_gl_invoice_ids())
    assert len(world.cw_batches()) == 1 and not batchable & set(world.sandbox.cw.unposted_ids())


def test_a_batch_connectwise_refuses_is_retried_by_a_later_run_only(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: CWClient, identifier: str, ids: Any) -> dict[str, Any]:
        raise RemoteError("ConnectWise rejected POST /finance/accounting/batches: invalid", status=400)

    with monkeypatch.context() as m:
        m.setattr(CWClient, "create_batch", refuse)
        report = world.sync()
    assert report.batch_error and "refused" in report.batch_error and world.cw_batches() == []
    world.sync()
    assert len(world.cw_batches()) == 1


def test_an_unposted_row_renumbered_in_connectwise_is_not_batched(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    original = CWClient.unposted_invoices

    def renumbered(self: CWClient, invoice_ids: Any = None, fields: Any = None) -> list[dict[str, Any]]:
        rows = original(self, invoice_ids, fields)
        return [{**r, "invoiceNumber": "X-" + str(r["invoiceNumber"])} if i == 0 else r for i, r in enumerate(rows)]

    world.sync(dry_run=True)
    with monkeypatch.context() as m:
        m.setattr(CWClient, "unposted_invoices", renumbered)
        report = world.sync()
    assert report.batch_error and "was synced as" in report.batch_error
    assert len(report.batched_ids) == len(_synced(world)) - 1


def test_dry_run_previews_the_batch_and_creates_none_even_with_confirmed_invoices_waiting(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(CWClient, "create_batch",
                  lambda self, ident, ids: (_ for _ in ()).throw(RemoteError("down", status=503)))
        world.sync()
    waiting = {r.invoice_number for r in ledger.created_not_batched(world.store)}
    assert waiting
    sent = _posts(world, monkeypatch)
    report = world.sync(dry_run=True)
    assert sent == [] and world.cw_batches() == []
    assert set(report.plan_batch) == waiting
    assert {r.invoice_number for r in ledger.created_not_batched(world.store)} == waiting


def test_the_recovering_run_that_only_batched_is_not_failed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(CWClient, "create_batch",
                  lambda self, ident, ids: (_ for _ in ()).throw(RemoteError("answer lost", status=None)))
        world.sync()
    report = world.sync()
    assert report.batched_ids and report.created == 0
    assert report.status != "failed"
    assert "batched" in (report.message or "")
    assert run_status(created=0, failed=1, batch_error=None, batched=428) == "partial"
    assert run_status(created=0, failed=1, batch_error=None, batched=0) == "failed"



def test_free_identifier_skips_those_connectwise_already_has(world: World) -> None:
    day = cw_batch.today(world.clock).isoformat()
    world.sandbox.cw.batch_invoices(f"cwqbo-{day}-001", [max(world.sandbox.cw.unposted_ids())])
    report = world.sync()
    assert report.batch_identifier == f"cwqbo-{day}-002"


@pytest.fixture
def stuck_world(tmp_path: Path) -> Iterator[World]:
    """The world of test_sync.py, with one Closed invoice ConnectWise holds no GL entries for."""
    yield from make_world(tmp_path, invoices=24, no_gl_invoice=True)


def test_an_invoice_without_gl_entries_is_reported_once_then_waits_quietly(stuck_world: World) -> None:
    world = stuck_world
    [stuck] = world.sandbox.cw.no_gl_invoice_ids()
    first = world.sync()
    assert stuck in _synced(world) and stuck not in first.batched_ids and first.batched_ids
    assert first.batch_error and "no GL entries" in first.batch_error and "Invoice Search" in first.batch_error
    assert stuck in world.sandbox.cw.unposted_ids()
    second = world.sync()  # what cron does next: not a new alarm
    assert second.batch_error is None and "still wait for GL entries" in (second.message or "")
    named = world.sync(selection="invoices", invoice_numbers=(world.sandbox.cw.invoice(stuck)["invoiceNumber"],))
    assert named.batch_error and "no GL entries" in named.batch_error  # asked for by name: said again
    assert ledger.get(world.store, stuck).state == "created"


def test_a_large_run_makes_several_batches_of_bounded_size_each_verified(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCH_INVOICES per batch, EXPORT_CHUNK per export request: 100,000 invoices never make one huge request."""
    monkeypatch.setattr(cw_batch, "BATCH_INVOICES", 7)
    monkeypatch.setattr(cw_batch, "EXPORT_CHUNK", 3)
    exports: list[int] = []
    original_export = CWClient.export_invoices

    def counting_export(self: CWClient, identifier: str, ids: Any) -> dict[str, Any]:
        exports.append(len(list(ids)))
        return original_export(self, identifier, ids)

    monkeypatch.setattr(CWClient, "export_invoices", counting_export)
    sent = _posts(world, monkeypatch)
    report = world.sync()
    batchable = _synced(world) - set(world.sandbox.cw.no_gl_invoice_ids())
    assert report.batch_error is None and set(report.batched_ids) == batchable
    assert len(sent) == len(world.cw_batches()) == len(report.batch_identifiers) == -(-len(batchable) // 7)
    assert max(exports) == 3 and sum(exports) == len(batchable)
    assert all(ledger.get_batch(world.store, b).state == "created" for b in report.batch_identifiers)
    assert report.batch_identifier == f"{report.batch_identifiers[0]} to {report.batch_identifiers[-1]}"
    assert not batchable & set(world.sandbox.cw.unposted_ids())


def test_a_gl_entry_in_two_export_requests_batches_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cw_batch, "EXPORT_CHUNK", 3)
    original_export = CWClient.export_invoices
    first: list[str] = []

    def sharing(self: CWClient, identifier: str, ids: Any) -> dict[str, Any]:
        export = original_export(self, identifier, ids)
        tx = export["transactions"]
        if not first:
            first.append(tx[0]["glEntryIds"])
        else:  # a later request lists the first request's GL entry under one of its own invoices
            tx[0]["glEntryIds"] = f"{tx[0]['glEntryIds']},{first[0].split(',')[0]}"
        return export

    monkeypatch.setattr(CWClient, "export_invoices", sharing)
    sent = _posts(world, monkeypatch)
    report = world.sync()
    assert sent == [] and world.cw_batches() == []
    assert report.batch_error and "nothing was batched" in report.batch_error and "listed for both" in report.batch_error


def test_a_part_that_cannot_be_batched_stops_batching_and_keeps_the_parts_before(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cw_batch, "BATCH_INVOICES", 7)
    original_export = CWClient.export_invoices
    calls: list[int] = []

    def second_part_is_wrong(self: CWClient, identifier: str, ids: Any) -> dict[str, Any]:
        export = original_export(self, identifier, ids)
        calls.append(1)
        if len(calls) == 2:
            export["transactions"][0]["total"] = "1.00"
        return export

    monkeypatch.setattr(CWClient, "export_invoices", second_part_is_wrong)
    report = world.sync()
    assert len(world.cw_batches()) == 1 and len(report.batched_ids) == 7
    assert report.batch_error and "were not batched in ConnectWise (7 invoice(s) before them were)" in \
        report.batch_error
    waiting = _synced(world) - set(report.batched_ids) - set(world.sandbox.cw.no_gl_invoice_ids())
    assert waiting and waiting <= set(world.sandbox.cw.unposted_ids())
    monkeypatch.setattr(CWClient, "export_invoices", original_export)
    again = world.sync()
    assert again.batch_error is None and set(again.batched_ids) == waiting
