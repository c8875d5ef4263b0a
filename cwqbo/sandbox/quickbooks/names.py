"""QBO name-list writes: customers, vendors and items, with Intuit's name uniqueness and required fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cwqbo.sandbox.quickbooks.core import SimulatorCore, View
from cwqbo.sandbox.quickbooks.errors import QBOError, err_business, err_duplicate_name, err_required
from cwqbo.sandbox.quickbooks.index import IndexedTable
from cwqbo.sandbox.quickbooks.schema import PEOPLE
from cwqbo.sandbox.quickbooks.values import _dec, _present, _ref_value


class NameListsMixin(SimulatorCore):
    """How `QBOSimulator` builds Customer, Vendor and Item objects (shared steps from `SimulatorCore`)."""

    def _unique_name(self, entities: tuple[str, ...], field: str, name: str, self_id: str | None, self_entity: str) -> None:
        wanted = name.strip().lower()
        for other in entities:
            table = self._entities[other]
            ids = table.candidates(field, (name,)) if isinstance(table, IndexedTable) else None
            for obj in table.values() if ids is None else [table[i] for i in ids if i in table]:
                if other == self_entity and obj["Id"] == self_id:
                    continue
                if str(obj.get(field, "")).strip().lower() == wanted:
                    raise err_duplicate_name()

    def _build_customer(self, payload: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        name = payload.get("DisplayName")
        if not _present(name):
            parts = [payload.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
            name = " ".join(str(p) for p in parts if _present(p))
        if not name:
            raise err_required("DisplayName")
        name = str(name)
        if ":" in name:
            # Intuit reserves ':' as the FullyQualifiedName separator (Parent:Child).
            raise err_business("The DisplayName can't contain a colon (:).", "DisplayName")
        self._unique_name(PEOPLE, "DisplayName", name, existing["Id"] if existing else None, "Customer")
        currency = self._currency_of(payload.get("CurrencyRef"), element="CurrencyRef")
        if existing is not None and _present(payload.get("CurrencyRef")) and \
                currency["value"] != _ref_value(existing.get("CurrencyRef")):
            # Intuit, Customer.CurrencyRef: "Once set, it cannot be changed." (exact fault text not recorded)
            raise err_business("You can't change the currency of a customer.", "CurrencyRef")
        if existing is not None and not _present(payload.get("CurrencyRef")) and existing.get("CurrencyRef"):
            currency = dict(existing["CurrencyRef"])
        obj: dict[str, Any] = {"Taxable": True, "Job": False, "BillWithParent": False, "Balance": Decimal("0"),
                               "BalanceWithJobs": Decimal("0"), "CurrencyRef": currency,
                               "PreferredDeliveryMethod": "Print", "domain": "QBO", "sparse": False}
        obj.update(self._passthrough(payload))
        obj["CurrencyRef"] = currency
        obj["DisplayName"] = name
        obj["FullyQualifiedName"] = name
        obj.setdefault("PrintOnCheckName", name)
        obj.setdefault("Active", True)
        if existing is not None:
            obj["Balance"] = existing.get("Balance", Decimal("0"))
            obj["BalanceWithJobs"] = existing.get("BalanceWithJobs", Decimal("0"))
        if self.country == "US":
            obj.setdefault("DefaultTaxCodeRef", {"value": "2"})
        obj["Taxable"] = payload.get("Taxable", True) not in (False, "false")
        return obj

    def _build_vendor(self, payload: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        """A vendor shaped like the recorded batch create (batch_basic.yml); names are unique across people."""
        name = payload.get("DisplayName")
        if not _present(name):
            parts = [payload.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
            name = " ".join(str(p) for p in parts if _present(p)) or payload.get("CompanyName")
        if not _present(name):
            raise err_required("DisplayName")
        name = str(name)
        if ":" in name:
            raise err_business("The DisplayName can't contain a colon (:).", "DisplayName")
        self._unique_name(PEOPLE, "DisplayName", name, existing["Id"] if existing else None, "Vendor")
        obj: dict[str, Any] = {"Balance": Decimal("0"), "Vendor1099": False, "CurrencyRef": self._currency(),
                               "domain": "QBO", "sparse": False}
        obj.update(self._passthrough(payload))
        obj["DisplayName"] = name
        obj.setdefault("PrintOnCheckName", name)
        obj.setdefault("Active", True)
        if existing is not None:
            obj["Balance"] = existing.get("Balance", Decimal("0"))
        return obj

    def _build_item(self, payload: dict[str, Any], existing: dict[str, Any] | None,
                    view: View) -> dict[str, Any]:
        name = payload.get("Name")
        if not _present(name):
            raise err_required("Name")
        name = str(name)
        self._unique_name(("Item",), "Name", name, existing["Id"] if existing else None, "Item")
        itype = payload.get("Type") or "Service"
        if itype not in ("Service", "NonInventory", "Inventory", "Category", "Group"):
            raise QBOError("2170", "Invalid Enumeration", f"Invalid Enumeration : {itype}", "Type")
        obj: dict[str, Any] = {"Name": name, "Active": True, "FullyQualifiedName": name, "Taxable": False,
                               "UnitPrice": Decimal("0"), "Type": itype, "PurchaseCost": Decimal("0"),
                               "TrackQtyOnHand": False, "domain": "QBO", "sparse": False}
        obj.update(self._passthrough(payload))
        obj["FullyQualifiedName"] = name
        for key in ("UnitPrice", "PurchaseCost"):
            obj[key] = _dec(obj.get(key, 0), key)
        if itype in ("Service", "Inventory", "NonInventory"):
            if not _ref_value(payload.get("IncomeAccountRef")):
                raise err_required("IncomeAccountRef")
            acct = self._resolve(view, "Account", payload["IncomeAccountRef"], "Account")
            obj["IncomeAccountRef"] = {"value": acct["Id"], "name": acct["Name"]}
        return obj
