"""The QBO batch endpoint: up to 30 queries and writes per request, each answered or faulted on its own.

Items see references and queries against a snapshot taken when the batch starts (see the qbo module docstring).
"""

from __future__ import annotations

from typing import Any

from cwqbo.sandbox.quickbooks.core import SimulatorCore
from cwqbo.sandbox.quickbooks.errors import QBOError, err_required, err_unknown_property
from cwqbo.sandbox.quickbooks.schema import ENTITY_BY_PATH, WRITABLE, _properties
from cwqbo.sandbox.quickbooks.values import _iso_millis, _present

MAX_BATCH_ITEMS = 30


class BatchMixin(SimulatorCore):
    """The batch endpoint of `QBOSimulator`, over its query runner and writes."""

    def _batch(self, body: dict[str, Any], params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        items = body.get("BatchItemRequest")
        unknown = set(body) - {"BatchItemRequest"}
        if unknown:
            raise err_unknown_property("IntuitBatchRequest", sorted(unknown)[0], {"BatchItemRequest"})
        if not isinstance(items, list) or not items:
            raise err_required("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise QBOError("1040", "Batch size exceeds allowed limit",
                           f"Number of items in the batch request ({len(items)}) exceeds the maximum of {MAX_BATCH_ITEMS}", "")
        # What every item sees for references and queries. Rows are replaced, never mutated, so a shallow copy
        # of each table is a true snapshot.
        snapshot = {name: dict(rows) for name, rows in self._entities.items()}
        out: list[dict[str, Any]] = []
        any_create = False
        for item in items:
            bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
            try:
                if not bid:
                    raise err_required("bId")
                if "Query" in item:
                    out.append({"QueryResponse": self._run_query(str(item["Query"]), snapshot), "bId": bid})
                    continue
                entity = next((k for k in item if k in ENTITY_BY_PATH.values()), None)
                if entity is None or entity not in WRITABLE:
                    raise QBOError("500", "Unsupported Operation", f"Operation {item.get('operation')} is not "
                                   f"supported for {entity or 'this item'}", None)
                operation = str(item.get("operation", "")).lower()
                options = str(item.get("optionsData", "")).lower()
                if operation not in ("create", "update", "delete"):
                    raise QBOError("2020", "Required param missing, need to supply the required value for the API",
                                   "Required parameter operation is missing in the request", "operation")
                payload = item[entity]
                if not isinstance(payload, dict):
                    raise err_unknown_property(entity, entity, _properties(entity))
                op = "void" if (operation == "update" and "void" in options) else (
                    "delete" if operation == "delete" else "")
                if operation == "create" and _present(payload.get("Id")):
                    raise QBOError("2010", "Request has invalid or unsupported property",
                                   "Property Name:Id specified is unsupported or invalid for create", "Id")
                if operation == "update" and not _present(payload.get("Id")):
                    raise err_required("Id")
                result, created = self._write(entity, payload, op, "allowduplicatedocnum" in options, snapshot)
                any_create = any_create or created
                out.append({entity: result, "bId": bid})
            except QBOError as exc:
                out.append({"Fault": exc.fault(), "bId": bid})
        return {"BatchItemResponse": out, "time": _iso_millis(self.clock.now())}, any_create
