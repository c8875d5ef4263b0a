"""The accounting interface of the simulated ConnectWise: unposted invoices, GL export, batches and entries.

The general ledger itself (`gl.GLLedger`) and the export documents (`export`) are plain data and functions;
this mixin is what `CWSimulator` answers over them: the HTTP routes cwqbo calls to export and batch, and the
helpers tests use to see exactly what was batched.
"""

from __future__ import annotations

import copy
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import httpx

from cwqbo.sandbox.connectwise import bodies
from cwqbo.sandbox.connectwise import export as cw_export
from cwqbo.sandbox.connectwise import gl as cw_gl
from cwqbo.sandbox.connectwise.query import Collection, CWError, bad_request, json_response, not_found
from cwqbo.sandbox.connectwise.records import unposted_record
from cwqbo.sandbox.faults import DropConnection, Faults


class AccountingInterfaceMixin(ABC):
    """Accounting-interface routes and test helpers of `CWSimulator`, over its state and GL ledger."""

    # Set by CWSimulator (__init__ and _reindex).
    faults: Faults
    gl: cw_gl.GLLedger
    _lock: threading.RLock
    _state: dict[str, Any]
    _invoices: dict[int, dict[str, Any]]
    _companies: dict[int, dict[str, Any]]

    @abstractmethod
    def _get_invoice(self, id_: int) -> dict[str, Any]:
        """The stored invoice, or KeyError."""

    @abstractmethod
    def _require(self, area: str, kind: str = "inquire") -> None:
        """The 403 when the API member's role lacks the right."""

    @abstractmethod
    def _read(self, request: httpx.Request, params: dict[str, str], method: str, coll: Collection, rest: str,
              sub: str) -> httpx.Response:
        """A GET on a collection: list, count or one record."""

    # -- test helpers ---------------------------------------------------------------------------------

    def batches(self) -> list[dict[str, Any]]:
        """The `AccountingBatch` records (no invoice ids: use `invoices_in_batch` / `batch_entry_ids`)."""
        with self._lock:
            return copy.deepcopy(self._state["gl"]["batches"])

    def _batch_named(self, batch: int | str) -> dict[str, Any]:
        b: dict[str, Any]
        for b in self._state["gl"]["batches"]:
            if b["id"] == batch or (isinstance(batch, str) and b["batchIdentifier"] == batch):
                return b
        raise KeyError(f"no batch {batch!r}")

    def invoices_in_batch(self, batch: int | str) -> list[int]:
        """Invoice ids with GL entries in the batch (by batch id or identifier)."""
        with self._lock:
            return self.gl.invoices_in_batch(self._batch_named(batch)["id"])

    def batch_entry_ids(self, batch: int | str) -> list[int]:
        """The GL entry ids a batch holds: assert "exactly these entries were batched" with it."""
        with self._lock:
            return [e["id"] for e in self.gl.batch_entries(self._batch_named(batch)["id"])]

    def unposted_ids(self) -> list[int]:
        """Invoice ids (billingLogIds) of the invoices on the unposted list."""
        with self._lock:
            return [r["id"] for r in self._state["invoices"] if self.gl.is_unposted(r)]

    def unposted_row_id(self, invoice_id: int) -> int | None:
        """The `UnpostedInvoice.id` of an invoice's row (None until it was first Closed)."""
        with self._lock:
            return self.gl.row_of.get(invoice_id)

    def gl_entries_of(self, invoice_id: int) -> list[dict[str, Any]]:
        """The invoice's GL entries: id, kind (product/time/expense/tax/ar), accountNumber, debit, credit, batchId."""
        with self._lock:
            return [{k: e.get(k) for k in ("id", "kind", "lineId", "accountNumber", "debit", "credit", "amount",
                                           "batchId")} for e in self.gl.entries_of(invoice_id)]

    def unbatched_gl_entry_ids(self) -> list[int]:
        """Every GL entry id in no batch (invoices and other tools' work)."""
        with self._lock:
            return [e["id"] for e in self._state["gl"]["entries"] if e["batchId"] is None]

    def no_gl_invoice_ids(self) -> list[int]:
        """Closed invoices ConnectWise holds no GL entries for (unposted for ever, never exported)."""
        with self._lock:
            return list(self._state["gl"]["no_gl"])

    def batch_invoices(self, identifier: str, invoice_ids: Iterable[int]) -> dict[str, Any]:
        """Another tool batched these invoices: a batch of exactly their unbatched GL entries."""
        with self._lock:
            entries: list[int] = []
            for inv_id in invoice_ids:
                entries += [e["id"] for e in self.gl.exportable(self._get_invoice(inv_id))]
            batch = self.gl.create_batch(identifier, entries, {"exportInvoicesFlag": True})
            return copy.deepcopy(batch)

    def set_export_invoice_id_field(self, value: str) -> None:
        """Which id `includedInvoiceIds` of the GL export takes: "id" (unposted row, default) or "billingLogId"."""
        with self._lock:
            self.gl.set_export_id_field(value)

    @property
    def export_invoice_id_field(self) -> str:
        with self._lock:
            return self.gl.export_id_field

    # -- routes ---------------------------------------------------------------------------------------

    def _unposted_record(self, inv: dict[str, Any]) -> dict[str, Any]:
        comp = self._companies.get(inv["company"]["id"], {})
        return unposted_record(inv, comp, self.gl.ensure_row(inv["id"]))

    def _unposted_collection(self) -> Collection:
        def rows_for(invoices: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
            return [self._unposted_record(inv) for inv in invoices if inv is not None and self.gl.is_unposted(inv)]

        return Collection("Accounting Interface", "UnpostedInvoice", lambda: rows_for(self._state["invoices"]), {
            ("id",): lambda ids: rows_for(self._invoices.get(self.gl.invoice_of_row.get(i, -1)) for i in ids),
            ("billingLogId",): lambda ids: rows_for(self._invoices.get(i) for i in ids)})

    def _entries_collection(self, batch_id: int) -> Collection:
        def rows() -> list[dict[str, Any]]:
            return [cw_export.batch_entry(e) for e in self.gl.batch_entries(batch_id)]

        by_id = self.gl.by_id
        return Collection("Accounting Interface", "BatchEntry", rows, {
            ("id",): lambda ids: [cw_export.batch_entry(by_id[i]) for i in ids
                                  if i in by_id and by_id[i]["batchId"] == batch_id],
            ("invoice", "id"): lambda ids: [cw_export.batch_entry(e) for i in dict.fromkeys(ids)
                                            for e in self.gl.entries_of(i) if e["batchId"] == batch_id]})

    def _batch_sub(self, request: httpx.Request, params: dict[str, str], method: str, batch_id: int,
                   parts: list[str]) -> httpx.Response:
        """`/batches/{id}/entries[/count|/{entryId}]` and `POST /batches/{id}/export`."""
        with self._lock:
            self._require("Accounting Interface")
            if batch_id not in self.gl.batch_by_id:
                raise not_found("AccountingBatch", batch_id)
            if parts == ["export"] and method == "POST":
                entries = self.gl.batch_entries(batch_id)
                return json_response(200, cw_export.gl_export(self.gl, self._invoices, entries))
            if parts[0] == "entries":
                rest = "/".join(parts[1:])
                return self._read(request, params, method, self._entries_collection(batch_id), rest,
                                  f"/finance/accounting/batches/{batch_id}/{'/'.join(parts)}")
        raise CWError(404, "NotFound", f"The resource /finance/accounting/batches/{batch_id}/{'/'.join(parts)} "
                      "was not found")

    def _post_export(self, request: httpx.Request) -> httpx.Response:
        resource = "ExportAccountingBatchRequest"
        with self._lock:
            self._require("Accounting Interface")
            body = bodies.parse(request, resource, resource)
            bodies.check_identifier(body, resource, required=False)
            bodies.check_flags(body, resource)
            bodies.check_export_selection(body, resource)
            entries = cw_export.select_export(self.gl, self._invoices, body)
            return json_response(200, cw_export.gl_export(self.gl, self._invoices, entries))

    def _post_batch(self, request: httpx.Request) -> httpx.Response:
        resource = "AccountingBatch"
        with self._lock:
            self._require("Accounting Interface", "add")
            body = bodies.parse(request, "CreateAccountingBatchRequest", resource)
            identifier = bodies.check_identifier(body, resource, required=True)
            if any(b["batchIdentifier"].lower() == identifier.lower() for b in self._state["gl"]["batches"]):
                raise bad_request(f"Batch identifier {identifier} already exists", "batchIdentifier", resource,
                                   "ObjectExists")
            bodies.check_flags(body, resource)
            try:
                ids = self.gl.check_batchable(body.get("processedRecordIds"))
            except cw_gl.GLError as exc:
                raise bad_request(str(exc), exc.field, resource, exc.code) from None
            self.gl.create_batch(identifier, ids, body)
            result = cw_export.gl_export(self.gl, self._invoices, [self.gl.by_id[i] for i in ids])
        if self.faults.applies(request.url.path) and self.faults.take("drop_after_commit_next"):
            raise DropConnection("simulated connection drop after commit")
        return json_response(201, result)
