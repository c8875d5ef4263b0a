"""How a run paces QBO's batch budget and the ConnectWise batch: every document batch call but the last carries 30,
and the whole ConnectWise batches already confirmed are made while the last document batches are still on their way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cwqbo.quickbooks.client import BatchItemResult, BatchOp, QBOClient
from cwqbo.state import ledger
from cwqbo.sync import cw_batch
from cwqbo.sync import engine as sync
from cwqbo.sync.send import CHUNK
from tests.unit.test_sync import World, _assert_exactly_once, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)


def _document_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch call that carries documents, in the order they are sent."""
    sizes: list[int] = []
    real = QBOClient.batch

    def counting(self: QBOClient, items: list[BatchOp], request_id: str | None = None,
                 **kw: Any) -> dict[str, BatchItemResult]:
        if items and items[0].entity in ("Invoice", "CreditMemo"):
            sizes.append(len(items))
        return real(self, items, request_id, **kw)

    monkeypatch.setattr(QBOClient, "batch", counting)
    return sizes


def test_slices_short_of_a_whole_batch_call_wait_for_the_next_slices_documents(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Slices of 12: each alone would take a batch call of 12 (a 40th of the minute's budget for 2/5 of its worth).
    monkeypatch.setattr(sync, "FIRST_SLICE", 12)
    monkeypatch.setattr(sync, "SLICE", 12)
    sizes = _document_batches(monkeypatch)
    report = world.sync()
    synced = _assert_exactly_once(world)
    assert report.created == len(synced) == sum(sizes) and len(synced) > CHUNK
    assert sizes[:-1] == [CHUNK] * (len(sizes) - 1) and 0 < sizes[-1] <= CHUNK
    assert len(sizes) == -(-len(synced) // CHUNK)
    assert [sorted(b["invoices"]) for b in world.cw_batches()] == [sorted(synced)]


def test_whole_connectwise_batches_are_made_while_the_last_documents_are_on_their_way(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cw_batch, "BATCH_INVOICES", 7)
    from cwqbo.connectwise.client import CWClient

    posted = threading.Event()
    released: list[bool] = []  # per document batch call after the first: whether a CW batch let it go
    real_batch, real_create = QBOClient.batch, CWClient.create_batch

    def batch(self: QBOClient, items: list[BatchOp], request_id: str | None = None,
              **kw: Any) -> dict[str, BatchItemResult]:
        if items and items[0].entity in ("Invoice", "CreditMemo"):
            if released or posted.is_set():
                released.append(posted.wait(timeout=60))  # QBO is still answering while ConnectWise batches
            else:
                released.append(True)  # the first call: its invoices make the first whole part
        return real_batch(self, items, request_id, **kw)

    def create_batch(self: CWClient, identifier: str, gl_entry_ids: Any) -> None:
        real_create(self, identifier, gl_entry_ids)
        posted.set()

    monkeypatch.setattr(QBOClient, "batch", batch)
    monkeypatch.setattr(CWClient, "create_batch", create_batch)
    report = world.sync()
    synced = _assert_exactly_once(world)
    assert len(released) >= 2 and all(released), "a ConnectWise batch was made before the last documents settled"
    batchable = set(synced) - set(world.sandbox.cw.no_gl_invoice_ids())
    batches = world.cw_batches()
    assert report.batch_error is None and set(report.batched_ids) == batchable
    assert sorted(len(b["invoices"]) for b in batches)[1:] == [7] * (len(batches) - 1)  # parts as without it
    assert len(batches) == -(-len(batchable) // 7)
    assert sorted(i for b in batches for i in b["invoices"]) == sorted(batchable)  # each exactly once
    assert all(ledger.get(world.store, i).state == "batched" for i in batchable)


def test_a_part_the_early_step_could_not_batch_is_not_taken_up_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # ConnectWise leaves an invoice out of the early part's export (no GL entries): reported once, not again by the
    # run's final step, and the other invoices are still batched.
    monkeypatch.setattr(cw_batch, "BATCH_INVOICES", 7)
    from cwqbo.connectwise.client import CWClient

    real_export = CWClient.export_invoices
    dropped: list[str] = []

    def export(self: CWClient, identifier: str, ids: Any) -> dict[str, Any]:
        answer = real_export(self, identifier, ids)
        if not dropped:
            dropped.append(str(answer["transactions"].pop(0)["documentNumber"]))
        return answer

    monkeypatch.setattr(CWClient, "export_invoices", export)
    notes: list[int] = []
    real_note = ledger.note_unbatchable

    def note(store: Any, why: dict[int, str], *, now: str) -> Any:
        notes.extend(why)
        return real_note(store, why, now=now)

    monkeypatch.setattr(ledger, "note_unbatchable", note)
    report = world.sync()
    synced = _assert_exactly_once(world)
    assert len(notes) == 1 and report.batch_error and "no GL entries" in report.batch_error
    left = [i for i in synced if ledger.get(world.store, i).state == "created"]
    assert left == notes
    batchable = set(synced) - set(world.sandbox.cw.no_gl_invoice_ids()) - set(notes)
    assert sorted(i for b in world.cw_batches() for i in b["invoices"]) == sorted(batchable)
