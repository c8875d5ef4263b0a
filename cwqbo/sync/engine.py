"""The sync engine: recover, discover, select, resolve, create exactly once, reconcile, batch in ConnectWise.

Exactly-once rests on three habits (see DESIGN.md, "Rules that keep money safe"):
1. every QBO create is preceded by a committed ledger intent carrying a deterministic requestid, and a
   run first settles intents left by a crashed run (adopt what QBO has, resend the rest with the *same* id);
2. before creating, the DocNumbers are probed in QBO: a document we made (its PrivateNote carries the
   `cwqbo:{cw_id}` marker) is adopted, anyone else's is a readable failure, never a second document;
3. the ConnectWise accounting batch lists exactly the invoices QBO confirmed.
The engine never prints: it returns a SyncReport and reports progress through a callback.

This module is the orchestration; each stage lives in the module named for it: recovery (what an interrupted
run left), selection (what to send), qbo_send (creating in QBO exactly once and reconciling), changed
(invoices edited after sync), cw_batch (the ConnectWise batch). The public names stay importable from here.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from cwqbo import collector
from cwqbo.state import runs
from cwqbo.sync import cw_batch
from cwqbo.state import cache, ledger
from cwqbo.sync import readiness, recovery
from cwqbo.sync import selection
from cwqbo.sync.changed import handle_changed
from cwqbo.errors import UsageError
from cwqbo.sync.markers import owner_of, with_marker
from cwqbo.models import CWInvoice
from cwqbo.settings.prefs import Prefs
from cwqbo.sync.send import Sender
from cwqbo.sync.run_items import outcome_counts
from cwqbo.sync.run_state import RunState
from cwqbo.state.runs import RunStatus
from cwqbo.sync.model import (ItemResult, PlanLine, PlannedDocument, Progress, SyncDeps, SyncEvent, SyncOptions,
                              SyncReport, run_status)

# The engine's API: what the CLI, the benchmarks and the tests use.
__all__ = [
    "NOOP_MESSAGE", "ItemResult", "PlanLine", "PlannedDocument", "SyncDeps", "SyncEvent", "SyncOptions",
    "SyncReport", "owner_of", "run_sync", "scheduled_noop", "with_marker",
]

PROBLEM_RE = re.compile(r"invoice (.*?) \(id (\d+)\)")
NOOP_MESSAGE = ("sync mode is manual, so this scheduled run did nothing "
                "(turn it on with `cwqbo prefs schedule --install`)")


SLICE = 300  # invoices mapped, resolved, probed and sent together: QBO batches start after the first slice
FIRST_SLICE = 60  # a run's first slice: two batch calls' worth, so the batch budget starts while the rest resolve


class _Engine:
    """One run, stage by stage. The stages settle invoices on `self.run` (a RunState) and commit at their ends."""

    def __init__(self, deps: SyncDeps, options: SyncOptions, progress: Progress | None) -> None:
        self.deps = deps
        self.options = options
        self.run = RunState(deps, options, progress)
        self.sender = Sender(self.run)
        self._calls_before = (deps.qbo.calls, deps.cw.calls)
        self._sliced = False  # the first slice has been sent

    def execute(self) -> SyncReport:
        started = time.monotonic()
        deps, options, run = self.deps, self.options, self.run
        if not options.dry_run:
            runs.mark_interrupted_runs(deps.store)
            run.begin(runs.start_run(deps.store, trigger=options.trigger, dry_run=False, user=_user(),
                                     host=socket.gethostname(), pid=os.getpid(), now=run.now()))
        try:
            try:
                self._stages()
            finally:
                self.sender.close()  # never leave a batch call running behind an error
        except UsageError:
            if run.run_id is not None and not (run.done or run.report.recovered or run.report.batched_ids):
                runs.discard_run(deps.store, run.run_id)  # refused before doing anything: not a failed run
                run.begin(None)
            elif run.run_id is not None:
                self._finish(started, status="failed", message="stopped by a usage error")
            raise
        except BaseException as exc:
            if run.run_id is not None:
                try:
                    # An error commits what was settled before it (true facts); an interrupt (Ctrl-C) leaves
                    # them to recovery, like a kill would.
                    self._finish(started, status="failed" if isinstance(exc, Exception) else "interrupted",
                                 message=str(exc) or type(exc).__name__, commit=isinstance(exc, Exception))
                except Exception:  # noqa: BLE001 - never mask the original error; the next run marks it
                    pass
            raise
        self._finish(started)
        return run.report

    def _stages(self) -> None:
        """recover → discover → select → send (in slices) → update changed → batch in ConnectWise."""
        deps, options, run = self.deps, self.options, self.run
        handled: set[int] = set()
        if not options.dry_run:
            handled = recovery.recover(run, self.sender)
            recovery.settle_pending_batches(run)
        if options.refresh:
            run.emit("discover", "reading Closed invoices from ConnectWise")
            from cwqbo.sync import discover  # imported late: discover pulls in the CW client

            def send_page(stored: list[tuple[CWInvoice, str]]) -> None:
                """Send what a page just read makes unsynced, while ConnectWise is still being read."""
                page = {inv.id: (inv, content_hash) for inv, content_hash in stored}
                todo = [i for i in cache.unsynced_among(deps.store, list(page)) if i not in handled]
                handled.update(todo)
                self._send(todo, page)

            # A run that sends everything sends each page as it is read; any other (one invoice, a selection, a dry
            # run) leaves the rest unsynced, so each page's verdicts are memoised for the next `list-unsynced`.
            streaming = options.selection == "all" and not options.dry_run
            on_page = send_page if streaming else readiness.memoise_pages(deps.store, deps.prefs, deps.realm or None)
            found = discover.refresh(deps.cw, deps.store, deps.filters, full=options.full_refresh, clock=deps.clock,
                                     progress=self._discover_progress, on_page=on_page)
            self.report_problems(found.problems)
        invoices, skipped = selection.select(run, handled)
        for res in skipped:
            run.settle(res)
        changed = selection.changed(run, handled)
        run.total = len(invoices) + len(changed)
        run.emit("plan", f"{len(invoices)} invoice(s) to send")
        self._send(invoices)
        self.sender.send_held()
        # The whole ConnectWise batches already confirmed go while QBO paces the last documents (~30 s queued).
        batching = options.dry_run or cw_batch.batch_confirmed(run, whole_parts=True)
        self.sender.drain()
        handle_changed(run, self.sender, changed)
        if options.dry_run:
            cw_batch.preview(run)
        elif batching:
            cw_batch.batch_confirmed(run)
        run.commit()

    def _send(self, ids: list[int], page: dict[int, tuple[CWInvoice, str]] | None = None) -> None:
        """Map, resolve, probe and queue these invoices, decoded a slice at a time: memory stays flat. A page just
        read from ConnectWise (and stored) is sent as it was built, not decoded back from the cache."""
        start = 0
        while start < len(ids):
            size = SLICE if self._sliced else FIRST_SLICE
            self._sliced = True
            part = ids[start:start + size]
            loaded = [page[i] for i in part] if page is not None else selection.load(self.deps.store, part)
            self.sender.process([inv for inv, _ in loaded], hashes={inv.id: h for inv, h in loaded})
            start += size

    def report_problems(self, problems: Iterable[str]) -> None:
        """Invoices CW sent that discover could not read: failed items, so they are never silently left out."""
        wanted = set(self.options.invoice_numbers)
        for text in problems:
            m = PROBLEM_RE.search(text)
            number, cw_id = (m.group(1), int(m.group(2))) if m else ("?", 0)
            if self.options.selection == "invoices" and number not in wanted:
                continue
            self.run.settle(ItemResult(cw_id=cw_id, number=number, company="", total=Decimal(0), outcome="failed",
                                       error=f"{text} (fix it in ConnectWise; it was not synced)"))

    def _discover_progress(self, done: int | None = None, total: int | None = None) -> None:
        read = f"{done} of {total}" if total else f"{done or 0}"
        self.run.emit("discover", f"read {read} invoice(s) from ConnectWise")

    def _finish(self, started: float, status: RunStatus | None = None, message: str | None = None, *,
                commit: bool = True) -> None:
        report = self.run.report
        if commit and self.run.run_id is not None:
            self.run.commit()  # the counts below are read from what is committed
        outcomes = outcome_counts(report.items)
        report.created = outcomes["created"] + outcomes["adopted"] + outcomes["updated"]
        report.failed = outcomes["failed"]
        report.skipped = outcomes["skipped"]
        report.waiting = outcomes["waiting"]
        report.qbo_calls = self.deps.qbo.calls - self._calls_before[0]
        report.cw_calls = self.deps.cw.calls - self._calls_before[1]
        report.duration = time.monotonic() - started
        final: RunStatus = status or run_status(report.created, report.failed, report.batch_error,
                                                len(report.batched_ids))
        report.status = final
        if report.batched_ids and not message:
            note = f"batched {len(report.batched_ids)} invoice(s) in ConnectWise as {report.batch_identifier}"
            report.message = f"{report.message}; {note}" if report.message else note
        report.message = message or report.message
        if self.run.run_id is None:
            return
        runs.finish_run(self.deps.store, self.run.run_id, status=final, selected=sum(outcomes.values()),
                          created=report.created, failed=report.failed, skipped=report.skipped,
                          batch_identifier=report.batch_identifier, qbo_calls=report.qbo_calls,
                          cw_calls=report.cw_calls, duration_ms=int(report.duration * 1000),
                          message=report.message or report.batch_error, now=self.run.now())


def run_sync(deps: SyncDeps, options: SyncOptions, progress: Progress | None = None) -> SyncReport:
    """One sync run; returns what happened to every selected invoice. Raises CwqboError on fatal problems."""
    if options.selection == "invoices" and not options.invoice_numbers:
        raise UsageError("no invoice numbers given")
    if scheduled_noop(deps.prefs, options):
        return SyncReport(run_id=None, status="noop", dry_run=options.dry_run, message=NOOP_MESSAGE)
    with collector.relaxed():  # a run's decoded pages are short-lived: see cwqbo/collector.py
        return _Engine(deps, options, progress).execute()


def scheduled_noop(prefs: Prefs, options: SyncOptions) -> bool:
    scheduled = options.trigger == "scheduled" or os.environ.get("CWQBO_SCHEDULED") == "1"
    return scheduled and prefs.sync_mode == "manual"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        return ""
