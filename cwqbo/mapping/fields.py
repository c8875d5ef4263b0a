"""The document's header fields that prefs.fields controls: sales terms, customer memo, private note template,
custom fields, and the class / department taken from the CW location or department."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.refs import Refs, ref_id
from cwqbo.mapping.text import clean_name, clean_text, truncate
from cwqbo.models import CWInvoice
from cwqbo.quickbooks.limits import MAX_LENGTHS
from cwqbo.settings.prefs import MAX_CUSTOM_FIELDS, Prefs

CUSTOMER_MEMO_MAX = MAX_LENGTHS["Invoice"].get("CustomerMemo.value", 1000)
PRIVATE_NOTE_MAX = MAX_LENGTHS["Invoice"].get("PrivateNote", 4000)
CUSTOM_FIELD_MAX = 31  # legacy string custom fields (reference §3.8)


def terms_name(inv: CWInvoice, prefs: Prefs) -> str | None:
    """The QBO term mapped (fields.terms_map) from the invoice's CW terms, if any."""
    return prefs.fields.terms_map[inv.terms] if inv.terms and inv.terms in prefs.fields.terms_map else None


def customer_memo(inv: CWInvoice, prefs: Prefs) -> str | None:
    """The CW comment fields.customer_memo names (top or bottom), cleaned; None when there is none."""
    src = prefs.fields.customer_memo
    memo = inv.top_comment if src == "top_comment" else inv.bottom_comment if src == "bottom_comment" else None
    memo = clean_text(memo).strip() if memo else None
    return truncate(memo, CUSTOMER_MEMO_MAX) if memo else None


def render_note(template: str, inv: CWInvoice) -> str:
    """fields.private_note with the invoice's values in its placeholders; MappingError for a broken template."""
    values = {"number": inv.number, "id": inv.id, "company": inv.company.name, "identifier": inv.company.identifier,
              "type": inv.type, "reference": inv.reference or "", "customer_po": inv.customer_po or "",
              "site": inv.site_name or "", "date": inv.date.isoformat()}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise MappingError(f"fields.private_note template is invalid: {exc}",
                           f"use placeholders among {{{', '.join(values)}}}") from None


def private_note(inv: CWInvoice, prefs: Prefs) -> str | None:
    """The rendered, cleaned private note; None when no template is set or it renders empty."""
    if not prefs.fields.private_note:
        return None
    note = clean_text(render_note(prefs.fields.private_note, inv)).strip()
    return truncate(note, PRIVATE_NOTE_MAX) if note else None


def custom_values(inv: CWInvoice, prefs: Prefs) -> list[tuple[str, str]]:
    """(QBO custom field name, value) for each mapped CW field that has a value on this invoice."""
    source = {"customer_po": inv.customer_po, "reference": inv.reference, "site": inv.site_name}
    out: list[tuple[str, str]] = []
    for cw_field, qbo_name in prefs.fields.custom_fields.items():
        value = source[cw_field] if cw_field in source else inv.extra.get(cw_field)
        text = clean_name(str(value)) if value is not None else ""
        if not text:
            continue
        out.append((qbo_name, truncate(text, CUSTOM_FIELD_MAX)))
    return out


def custom_fields(inv: CWInvoice, prefs: Prefs, refs: Refs) -> list[dict[str, Any]]:
    """The document's CustomField entries; MappingError when more are mapped than QuickBooks allows."""
    custom = custom_values(inv, prefs)
    if len({n for n, _ in custom}) > MAX_CUSTOM_FIELDS:
        raise MappingError(f"{len(custom)} custom fields mapped; QuickBooks allows {MAX_CUSTOM_FIELDS}",
                           "remove some fields.custom_fields entries")
    return [{"DefinitionId": ref_id(refs.custom_fields, name, "custom field",
                                    "enable the custom field in QuickBooks sales settings"),
             "Type": "StringType", "StringValue": value} for name, value in custom]


def _dimension(inv: CWInvoice, source: str, table: dict[str, str]) -> str | None:
    if source == "location" and inv.location_id is not None:
        return table.get(str(inv.location_id))
    if source == "department" and inv.department_id is not None:
        return table.get(str(inv.department_id))
    return None


def class_name(inv: CWInvoice, prefs: Prefs) -> str | None:
    """The QBO class mapped from the invoice's CW location or department (fields.class_source), if any."""
    return _dimension(inv, prefs.fields.class_source, prefs.fields.class_map)


def department_name(inv: CWInvoice, prefs: Prefs) -> str | None:
    """The QBO department mapped from the invoice's CW location or department (fields.department_source)."""
    return _dimension(inv, prefs.fields.department_source, prefs.fields.department_map)


def custom_field_definitions(preferences: Mapping[str, Any]) -> dict[str, str]:
    """Folded custom field name → DefinitionId ('1'..'3') for the sales-form fields that are turned on."""
    groups = (preferences.get("SalesFormsPrefs") or {}).get("CustomField") or []
    names: dict[str, str] = {}
    used: dict[str, bool] = {}
    for group in groups:
        for f in group.get("CustomField") or []:
            label = str(f.get("Name", ""))
            if label.startswith("SalesFormsPrefs.SalesCustomName"):
                names[label.removeprefix("SalesFormsPrefs.SalesCustomName")] = str(f.get("StringValue") or "")
            elif label.startswith("SalesFormsPrefs.UseSalesCustom"):
                used[label.removeprefix("SalesFormsPrefs.UseSalesCustom")] = f.get("BooleanValue") in (True, "true")
    return {n.strip().casefold(): i for i, n in names.items() if n and used.get(i, False)}
