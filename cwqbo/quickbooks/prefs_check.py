"""Check preferences against the connected QuickBooks company: every name they map to must exist there.

A typo in an item mapping otherwise surfaces only at the next sync, invoice by invoice. This asks QBO once per
entity (`Name IN (...)`, chunked) and returns readable problems; it never changes anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from cwqbo.settings.prefs import Prefs
from cwqbo.quickbooks.query import in_

CHUNK = 50  # names per IN list: keeps each query well under the GET length limit


class QueryClient(Protocol):
    def query_all(self, entity: str, where: str | list[str] | None = None) -> list[dict[str, Any]]: ...

    def preferences(self) -> Any: ...


def mapped_names(prefs: Prefs) -> dict[str, dict[str, list[str]]]:
    """QBO entity → name → the pref keys that use it (for messages)."""
    out: dict[str, dict[str, list[str]]] = {e: {} for e in ("Item", "TaxCode", "Term", "Class", "Department")}

    def add(entity: str, name: str, key: str) -> None:
        if name:
            out[entity].setdefault(name, []).append(key)

    im = prefs.items
    for table in ("product", "work_type", "work_role", "expense_type"):
        for cw, qbo in getattr(im, table).items():
            add("Item", qbo, f"items.{table}.{cw}")
    add("Item", im.agreement, "items.agreement")
    add("Item", im.fallback, "items.fallback")
    if prefs.tax.mode == "line_item":
        add("Item", prefs.tax.line_item, "tax.line_item")
    if prefs.tax.on_mismatch == "adjust":
        add("Item", prefs.tax.adjustment_item, "tax.adjustment_item")
    for cw, qbo in prefs.tax.codes.items():
        add("TaxCode", qbo, f"tax.codes.{cw}")
    add("TaxCode", prefs.tax.default_code, "tax.default_code")
    add("TaxCode", prefs.tax.exempt_code, "tax.exempt_code")
    for cw, qbo in prefs.fields.terms_map.items():
        add("Term", qbo, f"fields.terms_map.{cw}")
    for cw, qbo in prefs.fields.class_map.items():
        add("Class", qbo, f"fields.class_map.{cw}")
    for cw, qbo in prefs.fields.department_map.items():
        add("Department", qbo, f"fields.department_map.{cw}")
    return out


def _chunks(names: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(names), CHUNK):
        yield names[i:i + CHUNK]


def custom_field_names(preferences: dict[str, Any]) -> set[str]:
    """Names of the enabled legacy string custom fields in QBO Preferences.SalesFormsPrefs."""
    groups = (preferences.get("SalesFormsPrefs") or {}).get("CustomField") or []
    flat = [f for g in groups for f in (g.get("CustomField") or [])]
    enabled = {f["Name"][-1] for f in flat
               if str(f.get("Name", "")).startswith("SalesFormsPrefs.UseSalesCustom") and f.get("BooleanValue")}
    return {f.get("StringValue", "") for f in flat
            if str(f.get("Name", "")).startswith("SalesFormsPrefs.SalesCustomName") and f["Name"][-1] in enabled
            and f.get("StringValue")}


def check_against_qbo(prefs: Prefs, qbo_client: QueryClient) -> list[str]:
    """Problems (empty = fine): mapped items, tax codes, terms, classes, departments and custom fields that
    don't exist, or are inactive, in the connected QBO company."""
    problems: list[str] = []
    for entity, wanted in mapped_names(prefs).items():
        if not wanted:
            continue
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(sorted(wanted)):
            for row in qbo_client.query_all(entity, [in_("Name", chunk)]):
                found[str(row.get("Name", ""))] = row
        lower = {k.lower(): k for k in found}
        label = {"TaxCode": "tax code", "Department": "department (location)"}.get(entity, entity.lower())
        for name in sorted(wanted):
            keys = ", ".join(wanted[name])
            match: dict[str, Any] | None = found.get(name)
            if match is None and name.lower() in lower:
                problems.append(f"{keys}: QuickBooks {label} is named '{lower[name.lower()]}', not '{name}'")
            elif match is None:
                problems.append(f"{keys}: no QuickBooks {label} named '{name}'")
            elif match.get("Active") is False:
                problems.append(f"{keys}: QuickBooks {label} '{name}' is inactive")
    if prefs.fields.custom_fields:
        result = qbo_client.preferences()
        prefs_obj = getattr(result, "obj", result) or {}
        available = custom_field_names(prefs_obj)
        for cw, qbo in sorted(prefs.fields.custom_fields.items()):
            if qbo not in available:
                shown = ", ".join(sorted(available)) or "none enabled"
                problems.append(f"fields.custom_fields.{cw}: no enabled QuickBooks custom field named '{qbo}' "
                                f"(available: {shown})")
    return problems
