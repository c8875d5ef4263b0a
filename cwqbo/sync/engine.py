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

from cwqbo.sync import cw_batch
from cwqbo.state import ledger
from cwqbo.sync import recovery
from cwqbo.sync import selection
from cwqbo.sync.changed import handle_changed
from cwqbo.errors import UsageError
from cwqbo.sync.markers import owner_of, with_marker
from cwqbo.settings.prefs import Prefs
from cwqbo.sync.send import Sender
from cwqbo.sync.run_state import RunState
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


class _Engine:
    """One run, stage by stage; the stages share its RunState (report, progress, run_items bookkeeping)."""

    def __init__(self, deps: SyncDeps, options: SyncOptions, progress: Progress | None) -> None:
        self.d = deps
        self.o = options
        self.r = RunState(deps, options, progress)
        self.sender = Sender(self.r)
        self._qbo0 = getattr(deps.qbo, "calls", 0)
        self._cw0 = getattr(deps.cw, "calls", 0)

    def run(self) -> SyncReport:
        started = time.monotonic()
        d, o, r = self.d, self.o, self.r
        if not o.dry_run:
            ledger.mark_interrupted_runs(d.store)
            r.run_id = ledger.start_run(d.store, trigger=o.trigger, dry_run=False, user=_user(),
                                        host=socket.gethostname(), pid=os.getpid(), now=r.now())
            r.report.run_id = r.run_id
        try:
            handled: set[int] = set()
            if not o.dry_run:
                handled = recovery.recover(r, self.sender)
                recovery.settle_pending_batches(r)
            if o.refresh:
                r.emit("discover", "reading Closed invoices from ConnectWise")
                from cwqbo.sync import discover  # imported late: discover pulls in the CW client
                found = discover.refresh(d.cw, d.store, d.filters, full=o.full_refresh, clock=d.clock,
                                         progress=self._discover_progress)
                self.report_problems(getattr(found, "problems", ()) or ())
            invoices, skipped = selection.select(r, handled)
            for res in skipped:
                r.report.items.append(res)
            changed = selection.changed(r, handled)
            r.total = len(invoices) + len(changed)
            r.emit("plan", f"{len(invoices)} invoice(s) to send")
            self.sender.process(invoices)
            handle_changed(r, self.sender, changed)
            if o.dry_run:
                cw_batch.preview(r)
            else:
                cw_batch.batch_confirmed(r)
        except UsageError:
            if r.run_id is not None and not (r.report.items or r.report.recovered or r.report.batched_ids):
                ledger.discard_run(d.store, r.run_id)  # refused before doing anything: not a failed run
                r.run_id = r.report.run_id = None
            elif r.run_id is not None:
                self._finish(started, status="failed", message="stopped by a usage error")
            raise
        except BaseException as exc:
            if r.run_id is not None:
                try:
                    self._finish(started, status="failed" if isinstance(exc, Exception) else "interrupted",
                                 message=str(exc) or type(exc).__name__)
                except Exception:  # noqa: BLE001 - never mask the original error; the next run marks it
                    pass
            raise
        self._finish(started)
        return r.report

    def report_problems(self, problems: Iterable[str]) -> None:
        """Invoices CW sent that discover could not read: failed items, so they are never silently left out."""
        wanted = set(self.o.invoice_numbers)
        for text in problems:
            m = PROBLEM_RE.search(text)
            number, cw_id = (m.group(1), int(m.group(2))) if m else ("?", 0)
            if self.o.selection == "invoices" and number not in wanted:
                continue
            res = ItemResult(cw_id=cw_id, number=number, company="", total=Decimal(0), outcome="failed",
                             error=f"{text} (fix it in ConnectWise; it was not synced)")
            self.r.report.items.append(res)
            self.r.unwritten.append(res)
            self.r.emit("item", f"{number}: failed", res)

    def _discover_progress(self, done: Any = None, total: Any = None, *args: Any, **kwargs: Any) -> None:
        read = f"{done} of {total}" if total else f"{done or 0}"
        self.r.emit("discover", f"read {read} invoice(s) from ConnectWise")

    def _finish(self, started: float, status: str | None = None, message: str | None = None) -> None:
        r = self.r.report
        r.created = sum(1 for i in r.items if i.outcome in ("created", "adopted", "updated"))
        r.failed = sum(1 for i in r.items if i.outcome == "failed")
        r.skipped = sum(1 for i in r.items if i.outcome == "skipped")
        r.qbo_calls = getattr(self.d.qbo, "calls", 0) - self._qbo0
        r.cw_calls = getattr(self.d.cw, "calls", 0) - self._cw0
        r.duration = time.monotonic() - started
        r.waiting = sum(1 for i in r.items if i.outcome == "waiting")
        r.status = status or run_status(r.created, r.failed, r.batch_error, len(r.batched_ids))
        if r.batched_ids and not message:
            note = f"batched {len(r.batched_ids)} invoice(s) in ConnectWise as {r.batch_identifier}"
            r.message = f"{r.message}; {note}" if r.message else note
        r.message = message or r.message
        if self.r.run_id is None:
            return
        self.r.flush_items()
        ledger.finish_run(self.d.store, self.r.run_id, status=r.status, selected=len(r.items), created=r.created,
                          failed=r.failed, skipped=r.skipped, batch_identifier=r.batch_identifier,
                          qbo_calls=r.qbo_calls, cw_calls=r.cw_calls, duration_ms=int(r.duration * 1000),
                          message=r.message or r.batch_error, now=self.r.now())


def run_sync(deps: SyncDeps, options: SyncOptions, progress: Progress | None = None) -> SyncReport:
    """One sync run; returns what happened to every selected invoice. Raises CwqboError on fatal problems."""
    if options.selection == "invoices" and not options.invoice_numbers:
        raise UsageError("no invoice numbers given")
    if scheduled_noop(deps.prefs, options):
        return SyncReport(run_id=None, status="noop", dry_run=options.dry_run, message=NOOP_MESSAGE)
    return _Engine(deps, options, progress).run()


def scheduled_noop(prefs: Prefs, options: SyncOptions) -> bool:
    scheduled = options.trigger == "scheduled" or os.environ.get("CWQBO_SCHEDULED") == "1"
    return scheduled and prefs.sync_mode == "manual"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        return ""
