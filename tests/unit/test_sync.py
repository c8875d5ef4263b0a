"""The sync engine end to end, in-process: both simulators behind `http.set_transport_override`.

What a user would notice: every Closed invoice appears in QuickBooks exactly once with the exact
ConnectWise total, the ConnectWise batch holds exactly those invoices, and crashes or flaky
services never produce a duplicate or lose an invoice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cwqbo.sandbox.quickbooks.simulator import DirectTokens
from cwqbo import crashpoints, http
from cwqbo.state import cache
from cwqbo.state import ledger
from cwqbo.state import runs
from cwqbo.mapping import document as mapping
from cwqbo.sync import engine as sync
from cwqbo.sync.run_items import RunItems
from cwqbo.clock import ManualClock
from cwqbo.connectwise.client import CWClient
from cwqbo.errors import UsageError
from cwqbo.settings.prefs import Filters, Prefs
from cwqbo.quickbooks.client import QBOClient
from cwqbo.sandbox import server as sv
from cwqbo.sandbox.generator import LONG_INVOICE_NUMBER
from cwqbo.state.store import Store

N_INVOICES = 64


@dataclass
class World:
    sandbox: sv.Sandbox
    store: Store
    clock: ManualClock
    path: Path

    def deps(self, prefs: Prefs | None = None) -> sync.SyncDeps:
        qbo = QBOClient("http://127.0.0.1:9", sv.QBO_REALM_ID, DirectTokens(self.sandbox.qbo), clock=self.clock)
        cw = CWClient(site="127.0.0.1:9", company_id=sv.CW_COMPANY, public_key=sv.CW_PUBLIC_KEY,
                      private_key=sv.CW_PRIVATE_KEY, client_id=sv.CW_CLIENT_ID, codebase=sv.CW_CODEBASE,
                      scheme="http", clock=self.clock)
        return sync.SyncDeps(self.store, cw, qbo, prefs or Prefs(), Filters(), sv.QBO_REALM_ID, self.clock)

    def sync(self, **options: Any) -> sync.SyncReport:
        return sync.run_sync(self.deps(options.pop("prefs", None)), sync.SyncOptions(**options))

    def docs(self) -> list[tuple[str, dict[str, Any]]]:
        return [(e, d) for e in ("Invoice", "CreditMemo") for d in self.sandbox.qbo.documents(e)]

    def cw_batches(self) -> list[dict[str, Any]]:
        """cwqbo's CW batches, each with the invoices whose GL entries it holds (a batch record never lists them)."""
        return [{**b, "invoices": self.sandbox.cw.invoices_in_batch(b["id"])} for b in self.sandbox.cw.batches()
                if b["batchIdentifier"].startswith("cwqbo-")]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)


def make_world(tmp_path: Path, invoices: int = N_INVOICES, **sandbox: Any) -> Iterator[World]:
    """Both simulators in-process, a fresh store, and the app's clock at 2026-11-24 (after the invoices)."""
    clock = ManualClock(start=1_795_500_000.0)
    simulators = sv.Sandbox(seed=1, invoices=invoices, clock=clock, **sandbox)
    http.set_transport_override(simulators.transport())
    store = Store.open(tmp_path / "cwqbo.db")
    try:
        yield World(simulators, store, clock, tmp_path / "cwqbo.db")
    finally:
        store.close()
        http.set_transport_override(None)


def _crash_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    class Crash(BaseException):
        pass

    def crashpoint(point: str) -> None:
        if point == name:
            raise Crash(point)

    monkeypatch.setattr(crashpoints, "crashpoint", crashpoint)
    return Crash  # type: ignore[return-value]


def _assert_exactly_once(world: World) -> list[int]:
    """Every created/batched ledger row has one QBO document with its DocNumber and the exact CW total."""
    docs = world.docs()
    numbers = [d.get("DocNumber") for _, d in docs]
    assert len(numbers) == len(set(numbers)), "a DocNumber appears twice in QuickBooks"
    by_number = {d["DocNumber"]: (e, d) for e, d in docs}
    synced = [r for r in ledger.all_rows(world.store) if r.state in ("created", "batched")]
    assert len(synced) == len(docs)
    for row in synced:
        entity, doc = by_number[row.invoice_number]
        inv = cache.get(world.store, row.cw_id)
        assert entity == ("CreditMemo" if inv.is_credit else "Invoice")
        assert Decimal(str(doc["TotalAmt"])) == abs(inv.total), f"{inv.number}: total drifted"
        assert doc["Id"] == row.qbo_id
    return [r.cw_id for r in synced]


def test_full_sync_creates_every_invoice_once_with_exact_totals_and_one_batch(world: World) -> None:
    report = world.sync()
    synced = _assert_exactly_once(world)
    assert len(synced) >= 40 and report.created == len(synced)
    assert any(e == "CreditMemo" for e, _ in world.docs()), "the seed has credit memos"
    # exactly one cwqbo batch, holding exactly the confirmed invoices
    batches = world.cw_batches()
    assert len(batches) == 1 and batches[0]["batchIdentifier"] == report.batch_identifier
    assert sorted(batches[0]["invoices"]) == sorted(synced)
    assert all(r.state == "batched" for r in ledger.all_rows(world.store) if r.cw_id in synced)
    # the 30-character invoice number fails alone, with the reason
    failed = [i for i in report.items if i.outcome == "failed"]
    assert [i.number for i in failed] == [LONG_INVOICE_NUMBER]
    assert "21" in (failed[0].error or "")
    assert report.status == "partial"
    run = runs.run(world.store, report.run_id)
    assert run["status"] == "partial" and run["created"] == len(synced) and run["failed"] == 1


def test_the_report_reads_a_recorded_runs_items_from_the_store_as_they_were_settled(world: World) -> None:
    settled: list[sync.ItemResult] = []

    def progress(event: sync.SyncEvent) -> None:
        if event.item is not None:
            settled.append(event.item)

    report = sync.run_sync(world.deps(), sync.SyncOptions(), progress)
    assert isinstance(report.items, RunItems), "a recorded run holds no copy of its items"
    assert len(settled) >= 40 and list(report.items) == settled  # same results, same order, exact money
    assert len(report.items) == len(settled) == runs.run(world.store, report.run_id)["selected"]
    assert report.items[-1] == settled[-1] and report.items[:2] == settled[:2]
    dry = world.sync(dry_run=True)
    assert isinstance(dry.items, list)  # a dry run records nothing: its items stay in the report


def test_name_collision_with_a_vendor_gets_a_distinct_customer(world: World) -> None:
    world.sync()
    vendor_names = {v["DisplayName"] for v in world.sandbox.qbo.documents("Vendor")}
    assert "Northwind Traders" in vendor_names
    customers = {c["Id"]: c["DisplayName"] for c in world.sandbox.qbo.documents("Customer")}
    northwind = [r for r in ledger.all_rows(world.store) if r.qbo_id and
                 cache.get(world.store, r.cw_id).company.name == "Northwind Traders"]
    assert northwind
    for row in northwind:
        doc = world.sandbox.qbo.get(row.entity, row.qbo_id)
        name = customers[doc["CustomerRef"]["value"]]
        assert name != "Northwind Traders" and name.startswith("Northwind Traders")


def test_rerun_creates_nothing(world: World) -> None:
    world.sync()
    before = len(world.docs())
    report = world.sync()
    assert len(world.docs()) == before
    assert report.created == 0 and report.batch_identifier is None
    assert len(world.cw_batches()) == 1


def test_dry_run_writes_nothing_and_shows_the_plan(world: World) -> None:
    report = world.sync(dry_run=True)
    assert world.docs() == [] and world.cw_batches() == []
    assert world.sandbox.qbo.documents("Customer") == [] or all(
        "cwqbo" not in str(c.get("Notes", "")) for c in world.sandbox.qbo.documents("Customer"))
    assert ledger.all_rows(world.store) == []
    assert world.store.db.execute("select count(*) from runs").fetchone()[0] == 0
    assert len(report.plan) >= 40
    first = report.plan[0]
    assert first.lines and first.total == sum((ln.amount for ln in first.lines), Decimal(0)) + (
        cache.get(world.store, first.cw_id).sales_tax * (-1 if first.entity == "CreditMemo" else 1))
    assert any(i.outcome == "failed" and i.number == LONG_INVOICE_NUMBER for i in report.items)


@pytest.mark.parametrize("point", ["sync.after_intent", "sync.after_qbo_response", "sync.before_ledger_write"])
def test_crash_around_the_qbo_call_never_duplicates(world: World, monkeypatch: pytest.MonkeyPatch,
                                                    point: str) -> None:
    crash = _crash_at(monkeypatch, point)
    with pytest.raises(crash):
        world.sync()
    assert ledger.pending_intents(world.store), "the intents were committed before the call"
    monkeypatch.undo()
    report = world.sync()
    synced = _assert_exactly_once(world)
    assert report.recovered > 0
    assert [b["invoices"] for b in world.cw_batches()] == [sorted(synced)]
    if point != "sync.after_intent":
        assert any(i.outcome == "adopted" for i in report.items)


@pytest.mark.parametrize("point", ["sync.after_cw_export", "sync.after_batch_intent", "sync.after_cw_batch"])
def test_crash_around_the_cw_batch_batches_exactly_once(world: World, monkeypatch: pytest.MonkeyPatch,
                                                        point: str) -> None:
    crash = _crash_at(monkeypatch, point)
    with pytest.raises(crash):
        world.sync()
    monkeypatch.undo()
    world.sync()
    synced = _assert_exactly_once(world)
    batches = world.cw_batches()
    assert len(batches) == 1 and sorted(batches[0]["invoices"]) == sorted(synced)
    assert not ledger.created_not_batched(world.store) and not ledger.pending_batches(world.store)


@pytest.mark.parametrize("faults", [
    {"throttle_next": 12, "paths": ["/v3/"]},
    {"error_next": 3, "paths": ["/v3/"]},
    {"drop_after_commit_next": 2, "paths": ["/batch"]},
])
def test_flaky_quickbooks_still_exactly_once(world: World, faults: dict[str, Any]) -> None:
    world.sandbox.faults.update(faults)
    report = world.sync()
    synced = _assert_exactly_once(world)
    assert report.created == len(synced) and [i.number for i in report.items if i.outcome == "failed"] == [
        LONG_INVOICE_NUMBER]


def test_cw_batch_failure_leaves_invoices_for_the_next_run(world: World) -> None:
    world.sandbox.faults.update({"error_next": 40, "paths": ["/finance/accounting/batches"]})
    report = world.sync()
    assert report.batch_error and report.status == "partial" and world.cw_batches() == []
    synced = _assert_exactly_once(world)
    assert sorted(r.cw_id for r in ledger.created_not_batched(world.store)) == sorted(synced)
    world.sandbox.faults.update({"error_next": 0, "paths": []})
    again = world.sync()
    assert again.created == 0 and again.batch_identifier
    assert [sorted(b["invoices"]) for b in world.cw_batches()] == [sorted(synced)]


def test_selected_invoices_only_and_clear_errors(world: World) -> None:
    world.sync(dry_run=True)  # fills the cache
    rows = cache.unsynced(world.store)
    pick = [r.number for r in rows if r.number != LONG_INVOICE_NUMBER][:2]
    report = world.sync(selection="invoices", invoice_numbers=tuple(pick), trigger="invoice")
    assert sorted(i.number for i in report.items if i.outcome == "created") == sorted(pick)
    assert len(world.docs()) == 2
    assert sorted(world.cw_batches()[0]["invoices"]) == sorted(r.cw_id for r in rows if r.number in pick)
    again = world.sync(selection="invoices", invoice_numbers=(pick[0],), trigger="invoice")
    assert again.items[0].outcome == "skipped" and len(world.docs()) == 2
    with pytest.raises(UsageError, match="NOPE-1"):
        world.sync(selection="invoices", invoice_numbers=("NOPE-1",), trigger="invoice")
    open_inv = world.store.db.execute("select number from invoices where closed = 0").fetchone()
    if open_inv is None:  # the cache keeps only Closed invoices: cache one that is still open
        open_inv = None
    else:
        with pytest.raises(UsageError, match="not Closed"):
            world.sync(selection="invoices", invoice_numbers=(open_inv[0],), trigger="invoice", refresh=False)


def test_changed_invoice_is_reported_then_updated_with_update(world: World) -> None:
    world.sync()
    row = next(r for r in ledger.all_rows(world.store) if r.state == "batched" and r.entity == "Invoice")
    world.clock.advance(3600)
    world.sandbox.cw.update_invoice(row.cw_id, customerPO="PO-CHANGED-77")
    report = world.sync()
    changed = [i for i in report.items if i.cw_id == row.cw_id]
    assert changed[0].outcome == "skipped" and "--update" in (changed[0].error or "")
    updated = world.sync(update_changed=True)
    item = next(i for i in updated.items if i.cw_id == row.cw_id)
    assert item.outcome == "updated"
    assert len(world.docs()) == len([r for r in ledger.all_rows(world.store) if r.qbo_id])
    assert all(i.cw_id != row.cw_id for i in world.sync().items), "an updated invoice is no longer 'changed'"


def test_scheduled_run_in_manual_mode_does_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CWQBO_SCHEDULED", "1")
    report = world.sync()
    assert report.status == "noop" and "manual" in (report.message or "")
    assert world.docs() == [] and ledger.all_rows(world.store) == []


def test_marker_helpers_round_trip() -> None:
    payload = sync.with_marker({"PrivateNote": "ConnectWise invoice 1 (id 7)"}, 7)
    assert sync.owner_of(payload["PrivateNote"]) == 7
    assert sync.with_marker(payload, 7) == payload
    assert sync.owner_of(sync.with_marker({}, 12)["PrivateNote"]) == 12
    long = sync.with_marker({"PrivateNote": "x" * 5000}, 3)["PrivateNote"]
    assert len(long) <= 4000 and sync.owner_of(long) == 3


def _drift_one_total(monkeypatch: pytest.MonkeyPatch, world: World) -> int:
    """Make QBO's total differ from what CW billed for one invoice (as a tax engine would), by one cent."""
    target = next(r for r in world.deps().cw.iter_invoices() if r["invoiceNumber"] == "20002")["id"]
    real = mapping.build_document

    def build(inv: Any, prefs: Prefs, refs: Any, **kw: Any) -> Any:
        doc = real(inv, prefs, refs, **kw)
        if inv.id == target:
            doc = dataclasses.replace(doc, expected_total=doc.expected_total + Decimal("0.01"))
        return doc

    monkeypatch.setattr(mapping, "build_document", build)
    return int(target)


def test_total_mismatch_fails_keeps_the_document_and_is_not_batched(world: World,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = _drift_one_total(monkeypatch, world)
    report = world.sync()
    item = next(i for i in report.items if i.cw_id == target)
    assert item.outcome == "failed" and item.qbo_id and "0.01" in (item.error or "")
    row = ledger.get(world.store, target)
    assert row is not None and row.state == "failed" and row.qbo_id == item.qbo_id and row.invoice_number == "20002"
    assert target not in world.cw_batches()[0]["invoices"]
    again = world.sync()  # the document is found again (ours), not created twice
    assert next(i for i in again.items if i.cw_id == target).outcome == "failed"
    assert [d["DocNumber"] for _, d in world.docs()].count("20002") == 1


def test_total_mismatch_adjust_adds_a_line_so_totals_match(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _drift_one_total(monkeypatch, world)
    prefs = Prefs()
    prefs.tax.on_mismatch = "adjust"
    report = world.sync(prefs=prefs)
    item = next(i for i in report.items if i.cw_id == target)
    assert item.outcome == "created" and "adjustment" in (item.error or "")
    doc = world.sandbox.qbo.get("Invoice", item.qbo_id)
    inv = cache.get(world.store, target)
    assert Decimal(str(doc["TotalAmt"])) == inv.total + Decimal("0.01") == item.qbo_total
    assert any("Adjustment" in str(ln.get("Description")) for ln in doc["Line"])
    assert target in world.cw_batches()[0]["invoices"]


def test_invoice_exported_by_another_tool_is_not_sent(world: World) -> None:
    world.sync(dry_run=True)
    exported = world.store.db.execute("select number from invoices where unposted = 0 and closed = 1").fetchone()
    assert exported, "the seed has invoices already in a prior CW batch"
    report = world.sync(selection="invoices", invoice_numbers=(exported[0],), trigger="invoice")
    assert report.items[0].outcome == "skipped" and "already exported" in (report.items[0].error or "")
    assert world.docs() == []


def test_invoice_exported_elsewhere_before_our_batch_is_not_batched_twice(world: World) -> None:
    world.sandbox.faults.update({"error_next": 40, "paths": ["/finance/accounting/batches"]})
    world.sync()
    world.sandbox.faults.update({"error_next": 0, "paths": []})
    waiting = [r.cw_id for r in ledger.created_not_batched(world.store)]
    world.sandbox.cw.batch_invoices("OTHER-TOOL-1", waiting[:1])
    report = world.sync()
    assert "already exported" in (report.message or "")
    ours = world.cw_batches()
    assert len(ours) == 1 and sorted(ours[0]["invoices"]) == sorted(waiting[1:])
    assert ledger.created_not_batched(world.store) == []


def test_docnumber_taken_by_someone_else_fails_that_invoice_only(world: World) -> None:
    customer = world.sandbox.qbo.add("Customer", {"DisplayName": "Walk-in"})
    world.sandbox.qbo.add("Invoice", {"DocNumber": "20002", "TotalAmt": Decimal("5.00"), "Line": [],
                                      "CustomerRef": {"value": customer["Id"]}, "PrivateNote": "typed by hand"})
    report = world.sync()
    item = next(i for i in report.items if i.number == "20002")
    assert item.outcome == "failed" and "not created by cwqbo" in (item.error or "")
    assert [d["DocNumber"] for _, d in world.docs()].count("20002") == 1
    assert sum(1 for i in report.items if i.outcome == "created") == report.created > 40


def test_a_refused_invoice_is_sent_again_next_run_not_replayed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """QBO refuses a document (say, a closed books period); once fixed in QBO, the same document goes through."""
    from cwqbo.sandbox.quickbooks import simulator as qbo_sim

    world.sync(dry_run=True)
    real = qbo_sim.QBOSimulator._build_txn

    def refuse(self: Any, entity: str, payload: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if payload.get("DocNumber") == "20002":
            raise qbo_sim.err_business("The books are closed for this period")
        return real(self, entity, payload, *args, **kwargs)

    monkeypatch.setattr(qbo_sim.QBOSimulator, "_build_txn", refuse)
    first = world.sync(selection="invoices", invoice_numbers=("20002",), trigger="invoice", refresh=False)
    assert first.items[0].outcome == "failed" and "books are closed" in (first.items[0].error or "")
    assert first.items[0].tid, "the Intuit transaction id is kept for support"
    monkeypatch.setattr(qbo_sim.QBOSimulator, "_build_txn", real)
    second = world.sync(selection="invoices", invoice_numbers=("20002",), trigger="invoice", refresh=False)
    assert second.items[0].outcome == "created"
    assert [d["DocNumber"] for _, d in world.docs()] == ["20002"]


def test_cw_batch_response_lost_after_commit_is_not_batched_twice(world: World) -> None:
    world.sandbox.faults.update({"drop_after_commit_next": 1, "paths": ["/finance/accounting/batches"]})
    report = world.sync()
    synced = _assert_exactly_once(world)
    batches = world.cw_batches()
    assert len(batches) == 1 and sorted(batches[0]["invoices"]) == sorted(synced)
    assert report.batch_identifier == batches[0]["batchIdentifier"] and report.batch_error is None


def test_each_document_is_serialised_once_and_its_hash_is_of_the_bytes_sent(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The requestid derives from the payload hash: it must be the hash of what QuickBooks received, byte for byte."""
    import hashlib

    from cwqbo import money

    bodies: list[str] = []
    original = world.sandbox.qbo.handle

    def capture(request: Any) -> Any:
        if request.url.path.endswith("/batch"):
            bodies.append(request.content.decode())
        return original(request)

    monkeypatch.setattr(world.sandbox.qbo, "handle", capture)
    world.sync()
    hashes = {r.payload_hash for r in ledger.all_rows(world.store) if r.state in ("created", "batched")}
    sent: set[str] = set()
    for body in bodies:
        for item in money.loads(body)["BatchItemRequest"]:
            for entity in ("Invoice", "CreditMemo"):
                if entity in item:
                    text = money.dumps(item[entity])
                    assert f'"{entity}":{text}}}' in body, "the payload travels verbatim"
                    sent.add(hashlib.sha256(text.encode()).hexdigest())
    assert hashes and hashes == sent


def test_new_customers_go_single_while_the_request_budget_has_room(world: World) -> None:
    # The batch budget is for documents: customers take a batch call only for what single requests can't start.
    from cwqbo.sync.run_state import RunState
    from cwqbo.sync.send import SINGLES_RESERVE, Sender

    deps = world.deps()
    sender = Sender(RunState(deps, sync.SyncOptions(), None))
    throttle = deps.qbo.throttle
    assert sender._singles_limit() == throttle.per_minute - SINGLES_RESERVE - throttle.batch_per_minute
    for _ in range(throttle.per_minute - 60):  # lookups and creates have spent most of this minute
        with throttle.slot():
            pass
    assert sender._singles_limit() == 0  # the rest of a slice's customers go 30 to a batch call
    for _ in range(throttle.batch_per_minute):
        with throttle.slot(batch=True):
            pass
    # the batch window is full too: a batch call would wait as long as a single request, then take a document's slot
    assert sender._singles_limit() == throttle.per_minute
