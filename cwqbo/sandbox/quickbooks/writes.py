"""QBO writes: create, update (full and sparse), delete and void, with SyncToken checks and property validation.

What a written object looks like is built by the name-list and transaction mixins; this module owns the
shared steps: shape checks against the API reference, reference resolution, Ids, SyncTokens and MetaData.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from cwqbo.quickbooks.limits import MAX_LENGTHS
from cwqbo.sandbox.quickbooks.core import SimulatorCore, View
from cwqbo.sandbox.quickbooks.errors import (QBOError, err_business, err_length, err_not_found, err_required, err_stale,
                                             err_unknown_property)
from cwqbo.sandbox.quickbooks.fields import class_name, first_unknown
from cwqbo.sandbox.quickbooks.schema import _READ_ONLY, REQUEST_FIELDS, TRANSACTIONS, _ordered
from cwqbo.sandbox.quickbooks.values import _iso_seconds, _present, _public, _values_at


class WritesMixin(SimulatorCore):
    """The write path of `QBOSimulator`, over its state; builders come from the sibling mixins."""

    def _write(self, entity: str, payload: dict[str, Any], operation: str, allow_dup: bool,
               view: View) -> tuple[dict[str, Any], bool]:
        """Create, update, delete or void; returns (response object, whether something was created)."""
        if operation in ("delete", "void"):
            if entity not in TRANSACTIONS:
                raise QBOError("500", "Unsupported Operation", f"Operation {operation.capitalize()} is not supported.", None)
            return self._delete_or_void(entity, payload, operation), False
        if operation:
            raise QBOError("500", "Unsupported Operation", f"Operation {operation} is not supported.", None)
        if _present(payload.get("Id")):
            return self._update(entity, payload, allow_dup, view), False
        return self._create(entity, payload, allow_dup, view), True

    def _existing_for_write(self, entity: str, payload: dict[str, Any]) -> dict[str, Any]:
        id_ = str(payload.get("Id"))
        existing = self._entities[entity].get(id_)
        if existing is None:
            raise err_not_found()
        if not _present(payload.get("SyncToken")):
            raise err_required("SyncToken")
        if str(payload["SyncToken"]) != existing["SyncToken"]:
            raise err_stale(self.admin_name)
        return existing

    def _delete_or_void(self, entity: str, payload: dict[str, Any], operation: str) -> dict[str, Any]:
        existing = copy.deepcopy(self._existing_for_write(entity, payload))  # never mutate: batch snapshots share rows
        if operation == "delete":
            del self._entities[entity][existing["Id"]]
            return {"domain": "QBO", "status": "Deleted", "Id": existing["Id"]}
        zero = Decimal("0")
        for line in existing["Line"]:
            if "Amount" in line and line.get("DetailType") != "DescriptionOnly":
                line["Amount"] = zero
        existing["TxnTaxDetail"] = {"TotalTax": zero}
        existing["TotalAmt"] = zero
        existing["Balance"] = zero
        if entity == "CreditMemo":
            existing["RemainingCredit"] = zero
        note = existing.get("PrivateNote")
        existing["PrivateNote"] = f"Voided - {note}" if note else "Voided"
        existing["_Voided"] = True
        self._bump(existing)
        self._entities[entity][existing["Id"]] = existing
        return copy.deepcopy(_public(existing))

    def _bump(self, obj: dict[str, Any]) -> None:
        obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
        obj["MetaData"]["LastUpdatedTime"] = _iso_seconds(self.clock.now())

    def _next_id(self, entity: str) -> str:
        n = self._state["next_id"].get(entity, 1)
        self._state["next_id"][entity] = n + 1
        return str(n)

    def _create(self, entity: str, payload: dict[str, Any], allow_dup: bool,
                view: View) -> dict[str, Any]:
        obj = self._build(entity, payload, None, allow_dup, view)
        now = _iso_seconds(self.clock.now())
        obj["Id"] = self._next_id(entity)
        obj["SyncToken"] = "0"
        obj["MetaData"] = {"CreateTime": now, "LastUpdatedTime": now}
        obj = _ordered(entity, obj)
        self._entities[entity][obj["Id"]] = obj
        return copy.deepcopy(_public(obj))

    def _update(self, entity: str, payload: dict[str, Any], allow_dup: bool,
                view: View) -> dict[str, Any]:
        existing = self._existing_for_write(entity, payload)
        if existing.get("_Voided"):
            raise err_business("This transaction has been voided and can't be edited.")
        if payload.get("sparse") in (True, "true"):
            merged = {k: v for k, v in existing.items() if k not in _READ_ONLY and not k.startswith("_")}
            if not existing.get("_TaxPinned"):
                merged.pop("TxnTaxDetail", None)
            merged.pop("Line", None) if "Line" in payload else None
            if "Line" not in payload and entity in TRANSACTIONS:
                merged["Line"] = [ln for ln in existing["Line"] if ln.get("DetailType") != "SubTotalLineDetail"]
            merged.update(payload)
        else:
            merged = dict(payload)
        obj = self._build(entity, merged, existing, allow_dup, view)
        obj["Id"] = existing["Id"]
        obj["SyncToken"] = existing["SyncToken"]
        obj["MetaData"] = dict(existing["MetaData"])
        self._bump(obj)
        obj = _ordered(entity, obj)
        self._entities[entity][obj["Id"]] = obj
        return copy.deepcopy(_public(obj))

    # -- validation and shared building steps ---------------------------------------------------------

    def _check_shape(self, entity: str, payload: dict[str, Any]) -> None:
        """Refuse, as QBO does (2010), any key Intuit's schema lacks, at any depth the schema types."""
        unknown = first_unknown(REQUEST_FIELDS, entity, payload)
        if unknown is not None:
            path, key = unknown
            raise err_unknown_property(class_name(REQUEST_FIELDS, path), key, set(REQUEST_FIELDS[path]))
        for path, limit in MAX_LENGTHS.get(entity, {}).items():
            for value in _values_at(payload, path.split(".")):
                if isinstance(value, str) and len(value) > limit:
                    raise err_length(path, limit, len(value))

    def _build(self, entity: str, payload: dict[str, Any], existing: dict[str, Any] | None, allow_dup: bool,
               view: View) -> dict[str, Any]:
        self._check_shape(entity, payload)
        if entity in TRANSACTIONS:
            return self._build_txn(entity, payload, existing, allow_dup, view)
        if entity == "Customer":
            return self._build_customer(payload, existing)
        if entity == "Vendor":
            return self._build_vendor(payload, existing)
        return self._build_item(payload, existing, view)
