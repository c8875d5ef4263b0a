"""Per-profile preferences and invoice filters: what the user chose, with defaults.

Stored in config.toml under [profiles.NAME.prefs] and [profiles.NAME.filters]; `config.py`
reads and writes them, `cli/prefs.py` edits them, `mapping.py` and `sync.py` obey them.
Validation of values lives here (pure); validation against QBO objects lives in `quickbooks/prefs_check.py`.
"""

from __future__ import annotations

import dataclasses as _dc
import string as _string
import types as _types
import typing as _t
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal as _Decimal
from decimal import InvalidOperation as _InvalidOperation
from typing import Literal

from cwqbo.errors import ConfigError

SyncMode = Literal["manual", "automatic"]
CustomerMatch = Literal["name", "identifier"]
TaxMode = Literal["qbo", "pin_cw", "line_item"]  # let QBO calculate / pin CW total / separate tax line
TaxMismatch = Literal["fail", "adjust", "warn"]
TimeDetail = Literal["summary", "condensed", "detailed"]
TimeItemSource = Literal["work_type", "work_role"]
MemoSource = Literal["none", "top_comment", "bottom_comment"]
DimensionSource = Literal["none", "location", "department"]


@dataclass
class ItemMappings:
    """CW key → QBO item name, by kind of line."""

    product: dict[str, str] = field(default_factory=dict)  # product identifier → item
    work_type: dict[str, str] = field(default_factory=dict)
    work_role: dict[str, str] = field(default_factory=dict)
    expense_type: dict[str, str] = field(default_factory=dict)
    agreement: str = ""  # item for agreement amounts; "" = fallback
    fallback: str = "Services"
    create_missing: bool = False  # create an item named after the CW key when no mapping matches


@dataclass
class TaxPrefs:
    mode: TaxMode = "pin_cw"
    on_mismatch: TaxMismatch = "fail"
    codes: dict[str, str] = field(default_factory=dict)  # CW tax code name → QBO TaxCode name (non-US)
    default_code: str = ""  # QBO TaxCode for taxable lines whose CW code has no mapping (non-US)
    exempt_code: str = ""  # QBO TaxCode for non-taxable lines (non-US)
    line_item: str = "Sales Tax"  # item used when mode == "line_item"
    adjustment_item: str = "Rounding Adjustment"  # item used when on_mismatch == "adjust"


@dataclass
class TimePrefs:
    detail: TimeDetail = "summary"
    include_notes: bool = True
    item_source: TimeItemSource = "work_type"
    hours_rounding: str = "0.01"  # quantum for displayed hours; the amount always stays CW's


@dataclass
class FieldMappings:
    customer_match: CustomerMatch = "name"
    docnumber_prefix: str = ""
    # CW field → QBO custom field *name* (resolved to DefinitionId from QBO Preferences)
    # CW fields: customer_po, reference, site, ticket, project
    custom_fields: dict[str, str] = field(default_factory=dict)
    customer_memo: MemoSource = "bottom_comment"
    private_note: str = "ConnectWise invoice {number} (id {id})"
    class_source: DimensionSource = "none"
    department_source: DimensionSource = "none"
    class_map: dict[str, str] = field(default_factory=dict)  # CW location/department id (str) → QBO Class name
    department_map: dict[str, str] = field(default_factory=dict)  # → QBO Department name
    terms_map: dict[str, str] = field(default_factory=dict)  # CW billing terms name → QBO Term name
    create_missing_customers: bool = True


@dataclass
class PaymentsPrefs:
    """Payments received in QuickBooks brought back to ConnectWise invoices (`sync --payments`)."""

    enabled: bool = False  # `sync --all` also brings payments back (after invoices)
    type_map: dict[str, str] = field(default_factory=dict)  # QBO payment method name → CW payment type
    default_type: str = "Other"  # CW payment type when the method is unmapped (or a credit memo applied)


@dataclass
class Prefs:
    sync_mode: SyncMode = "manual"
    schedule: str = "0 6 * * *"  # cron expression, used when sync_mode == "automatic"
    fields: FieldMappings = field(default_factory=FieldMappings)
    items: ItemMappings = field(default_factory=ItemMappings)
    tax: TaxPrefs = field(default_factory=TaxPrefs)
    time: TimePrefs = field(default_factory=TimePrefs)
    payments: PaymentsPrefs = field(default_factory=PaymentsPrefs)


@dataclass
class Filters:
    """Which Closed invoices are in scope. Empty lists mean "no restriction"."""

    from_date: date | None = None
    location_ids: list[int] = field(default_factory=list)
    department_ids: list[int] = field(default_factory=list)  # business units
    billing_statuses: list[str] = field(default_factory=list)  # names of closed statuses; empty = all closed
    invoice_types: list[str] = field(default_factory=list)
    exclude_companies: list[str] = field(default_factory=list)  # company identifiers


# ---------------------------------------------------------------------------------------------------------------
# serialisation and validation (pure). TOML has no null, so None is omitted on the way out and means "default"
# on the way in. Every refusal names the dotted key: ConfigError("<where>.<key>: …").

CUSTOM_FIELD_SOURCES = ("customer_po", "reference", "site", "ticket", "project")
NOTE_PLACEHOLDERS = ("number", "id", "company", "identifier", "type", "reference", "customer_po", "site", "date")
MAX_CUSTOM_FIELDS = 3
DOCNUMBER_MAX = 21

# key → description (for `cwqbo prefs` help and `list_keys()`); dict-valued keys take KEY.SUBKEY
DESCRIPTIONS: dict[str, str] = {
    "sync_mode": "manual, or automatic (a scheduled `sync --all`)",
    "schedule": "cron expression for automatic sync, e.g. '0 6 * * *'",
    "fields.customer_match": "match QBO customers by CW company name or identifier",
    "fields.docnumber_prefix": "text put before the CW invoice number in QBO DocNumber (total ≤ 21 chars)",
    "fields.custom_fields": "CW field (customer_po, reference, site, ticket, project) → QBO custom field name (≤ 3)",
    "fields.customer_memo": "message shown on the invoice: none, top_comment or bottom_comment",
    "fields.private_note": "QBO statement memo template; placeholders {" + "}, {".join(NOTE_PLACEHOLDERS) + "}",
    "fields.class_source": "what picks the QBO class: none, location or department",
    "fields.department_source": "what picks the QBO department (location): none, location or department",
    "fields.class_map": "CW location/department id → QBO class name",
    "fields.department_map": "CW location/department id → QBO department name",
    "fields.terms_map": "CW billing terms name → QBO term name",
    "fields.create_missing_customers": "create a QBO customer when none matches",
    "items.product": "CW product identifier → QBO item",
    "items.work_type": "CW work type → QBO item",
    "items.work_role": "CW work role → QBO item",
    "items.expense_type": "CW expense type → QBO item",
    "items.agreement": "QBO item for agreement amounts ('' = fallback)",
    "items.fallback": "QBO item for anything unmapped ('' = refuse unmapped lines)",
    "items.create_missing": "create a QBO item named after the CW key when nothing is mapped",
    "tax.mode": "pin_cw (send CW's tax), line_item (tax as a line) or qbo (let QBO calculate)",
    "tax.on_mismatch": "when QBO's total differs from CW's: fail, adjust or warn",
    "tax.codes": "CW tax code → QBO tax code name (non-US companies)",
    "tax.default_code": "QBO tax code for taxable lines whose CW code is unmapped (non-US)",
    "tax.exempt_code": "QBO tax code for non-taxable lines (non-US)",
    "tax.line_item": "QBO item for the tax line when tax.mode = line_item",
    "tax.adjustment_item": "QBO item for adjustments when tax.on_mismatch = adjust",
    "time.detail": "time lines: summary (per work type/role), condensed (per ticket and role) or detailed",
    "time.include_notes": "put time-entry notes in line descriptions",
    "time.item_source": "pick the time item by work_type or work_role",
    "time.hours_rounding": "step for displayed hours, e.g. 0.25 (the amount stays CW's)",
    "payments.enabled": "`sync --all` also brings QuickBooks payments back to ConnectWise invoices",
    "payments.type_map": "QBO payment method name → CW payment type",
    "payments.default_type": "CW payment type for unmapped payment methods and applied credit memos",
    "filters.from_date": "only invoices dated on or after this day (YYYY-MM-DD)",
    "filters.location_ids": "only these CW location ids (comma-separated; empty = all)",
    "filters.department_ids": "only these CW business-unit ids (comma-separated; empty = all)",
    "filters.billing_statuses": "only these closed billing statuses (comma-separated; empty = all closed)",
    "filters.invoice_types": "only these invoice types (comma-separated; empty = all)",
    "filters.exclude_companies": "skip these CW company identifiers (comma-separated)",
}


def list_keys() -> list[tuple[str, str]]:
    """Every settable key with a one-line description (dict keys shown as KEY.SUBKEY)."""
    out = []
    for key, desc in DESCRIPTIONS.items():
        tp = _type_at(key)
        out.append((f"{key}.SUBKEY" if _origin(tp) is dict else key, desc))
    return out


def _origin(tp: _t.Any) -> _t.Any:
    return _t.get_origin(tp)


def _hints(cls: _t.Any) -> dict[str, _t.Any]:
    return _t.get_type_hints(cls)


def _describe(tp: _t.Any) -> str:
    if _origin(tp) is _t.Literal:
        return "one of " + ", ".join(_t.get_args(tp))
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if tp is int:
        return "an integer"
    if _origin(tp) is dict:
        return "a table of strings"
    if _origin(tp) is list:
        return f"a list of {_describe(_t.get_args(tp)[0])}s".replace("a list of an ", "a list of ").replace(
            "a list of a ", "a list of ")
    return str(tp)


def _convert(tp: _t.Any, value: _t.Any, path: str) -> _t.Any:
    """Check `value` (as read from TOML) against the field type; refuse with the dotted key."""
    origin = _origin(tp)
    if origin is _t.Literal:
        if not isinstance(value, str) or value not in _t.get_args(tp):
            raise ConfigError(f"{path}: must be {_describe(tp)} (got {value!r})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: must be true or false (got {value!r})")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: must be a string (got {value!r})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: must be an integer (got {value!r})")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: must be a table of strings (got {value!r})")
        out = {}
        for k, v in value.items():
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{path}.{k}: must be a non-empty string (got {v!r})")
            out[str(k)] = v
        return out
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: must be {_describe(tp)} (got {value!r})")
        (inner,) = _t.get_args(tp)
        return [_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (_t.Union, _types.UnionType) and date in _t.get_args(tp):
        if isinstance(value, date) and not hasattr(value, "hour"):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: must be a date YYYY-MM-DD (got {value!r})")
    if _dc.is_dataclass(tp):
        return _dc_from(tp, value, path)
    raise ConfigError(f"{path}: unsupported value {value!r}")  # pragma: no cover


def _dc_from(cls: _t.Any, d: _t.Any, where: str) -> _t.Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: must be a table (got {d!r})")
    hints = _hints(cls)
    kwargs = {}
    for key, value in d.items():
        if key not in hints:
            raise ConfigError(f"{where}.{key}: unknown key (expected one of: {', '.join(hints)})")
        kwargs[key] = _convert(hints[key], value, f"{where}.{key}")
    return cls(**kwargs)


def _check_prefs(p: Prefs, where: str) -> None:
    """Cross-field rules that types alone don't express."""
    from cwqbo.settings.schedule import validate_cron  # pure (croniter); imported lazily to keep prefs light

    try:
        validate_cron(p.schedule)
    except ConfigError as exc:
        raise ConfigError(f"{where}.schedule: {exc}") from None
    f = p.fields
    if len(f.docnumber_prefix) >= DOCNUMBER_MAX:
        raise ConfigError(f"{where}.fields.docnumber_prefix: must be shorter than {DOCNUMBER_MAX} characters "
                          f"(QBO DocNumber allows {DOCNUMBER_MAX} in total)")
    for k in f.custom_fields:
        if k not in CUSTOM_FIELD_SOURCES:
            raise ConfigError(f"{where}.fields.custom_fields.{k}: unknown ConnectWise field "
                              f"(expected one of: {', '.join(CUSTOM_FIELD_SOURCES)})")
    if len(set(f.custom_fields.values())) > MAX_CUSTOM_FIELDS:
        raise ConfigError(f"{where}.fields.custom_fields: QuickBooks allows {MAX_CUSTOM_FIELDS} custom fields "
                          f"(got {len(set(f.custom_fields.values()))})")
    try:
        names = [fn for _, fn, _, _ in _string.Formatter().parse(f.private_note) if fn is not None]
    except ValueError as exc:
        raise ConfigError(f"{where}.fields.private_note: invalid template ({exc})") from None
    for name in names:
        if name not in NOTE_PLACEHOLDERS:
            raise ConfigError(f"{where}.fields.private_note: unknown placeholder {{{name}}} "
                              f"(use {', '.join('{' + n + '}' for n in NOTE_PLACEHOLDERS)})")
    for table in ("class_map", "department_map"):
        for k in getattr(f, table):
            if not k.isdigit():
                raise ConfigError(f"{where}.fields.{table}.{k}: keys are CW location/department ids (numbers)")
    try:
        step = _Decimal(p.time.hours_rounding)
        if not step.is_finite() or step <= 0:
            raise _InvalidOperation
    except _InvalidOperation:
        raise ConfigError(f"{where}.time.hours_rounding: must be a positive number such as 0.01 or 0.25 "
                          f"(got {p.time.hours_rounding!r})") from None
    if not p.payments.default_type.strip():
        raise ConfigError(f"{where}.payments.default_type: must name a ConnectWise payment type (got '')")


def prefs_from_dict(d: _t.Any, where: str = "prefs") -> Prefs:
    """Validated Prefs from a TOML table; unknown keys and bad values raise ConfigError naming the key."""
    p = _dc_from(Prefs, d, where)
    _check_prefs(p, where)
    return _t.cast(Prefs, p)


def _to_dict(obj: _t.Any) -> dict[str, _t.Any]:
    out: dict[str, _t.Any] = {}
    for f in _dc.fields(obj):
        v = getattr(obj, f.name)
        if v is None:
            continue
        if _dc.is_dataclass(v):
            v = _to_dict(v)
        elif isinstance(v, dict):
            v = dict(v)
        elif isinstance(v, list):
            v = list(v)
        out[f.name] = v
    return out


def prefs_to_dict(p: Prefs) -> dict[str, _t.Any]:
    """TOML-safe dict (no None) that `prefs_from_dict` reads back to an equal Prefs."""
    return _to_dict(p)


def filters_from_dict(d: _t.Any, where: str = "filters") -> Filters:
    f = _t.cast(Filters, _dc_from(Filters, d, where))
    for v in f.billing_statuses + f.invoice_types + f.exclude_companies:
        if not v.strip():
            raise ConfigError(f"{where}: empty names are not allowed in lists")
    return f


def filters_to_dict(f: Filters) -> dict[str, _t.Any]:
    return _to_dict(f)


# ---------------------------------------------------------------------------------------------------------------
# editing by dotted key (what `cwqbo prefs set KEY VALUE` does)

def _root(key: str) -> tuple[type, list[str]]:
    parts = key.split(".")
    if parts[0] == "filters":
        return Filters, parts[1:]
    if parts[0] == "prefs":
        parts = parts[1:]
    return Prefs, parts


def _type_at(key: str) -> _t.Any:
    """The declared type at a dotted key; dict subkeys return the dict's value type wrapped as ('sub', type)."""
    cls, parts = _root(key)
    tp: _t.Any = cls
    for i, part in enumerate(parts):
        if _dc.is_dataclass(tp):
            hints = _hints(tp)
            if part not in hints:
                import difflib

                close = difflib.get_close_matches(key, list(DESCRIPTIONS), n=3, cutoff=0.8)
                raise ConfigError(f"{key}: unknown preference" + (f" (did you mean {', '.join(close)}?)" if close
                                                                  else " (see `cwqbo prefs keys`)"))
            tp = hints[part]
        elif _origin(tp) is dict and i == len(parts) - 1 and part:
            return ("sub", _t.get_args(tp)[1])
        else:
            raise ConfigError(f"{key}: unknown preference")
    if not parts or _dc.is_dataclass(tp):
        raise ConfigError(f"{key}: is a group, not a preference (use {key}.KEY)")
    return tp


def parse_value(key: str, text: str) -> _t.Any:
    """Parse the string a user typed for `key` into the field's type (bools, enums, lists, dates)."""
    tp = _type_at(key)
    if isinstance(tp, tuple):
        tp = tp[1]
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{key}: must be true or false (got {text!r})")
    if _origin(tp) is list:
        (inner,) = _t.get_args(tp)
        items = [s.strip() for s in text.split(",") if s.strip()]
        if inner is int:
            try:
                return [int(s) for s in items]
            except ValueError:
                raise ConfigError(f"{key}: must be comma-separated integers (got {text!r})") from None
        return items
    if _origin(tp) is dict:
        raise ConfigError(f"{key}: is a table; set one entry with {key}.SUBKEY VALUE")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: must be an integer (got {text!r})") from None
    return text  # str, Literal and date are checked by the full validation


def _apply(obj: _t.Any, key: str, value: _t.Any, *, unset: bool) -> _t.Any:
    cls, parts = _root(key)
    _type_at(key)  # refuse unknown keys before touching anything
    if not isinstance(obj, cls):
        raise ConfigError(f"{key}: is a {'filter' if cls is Filters else 'preference'}; pass the profile's "
                          f"{'filters' if cls is Filters else 'prefs'}")
    data = _to_dict(obj)
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    last = parts[-1]
    if unset:
        if last in node:
            del node[last]
        elif isinstance(node, dict) and len(parts) >= 2 and _origin(_type_at(".".join(key.split(".")[:-1]))) is dict:
            raise ConfigError(f"{key}: no such entry")
    else:
        node[last] = value
    where = "filters" if cls is Filters else "prefs"
    if cls is Filters:
        return filters_from_dict(data, where)
    try:
        return prefs_from_dict(data, where)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg[len("prefs."):] if msg.startswith("prefs.") else msg, hint=exc.hint) from None


def set_pref(prefs: Prefs | Filters, key: str, value: str) -> _t.Any:
    """A new, validated Prefs (or Filters for 'filters.*' keys) with `key` set from the string `value`.
    The input is never modified, so a refused change leaves nothing half-applied."""
    return _apply(prefs, key, parse_value(key, value), unset=False)


def unset_pref(prefs: Prefs | Filters, key: str) -> _t.Any:
    """Back to the default (or, for KEY.SUBKEY, remove that mapping entry)."""
    return _apply(prefs, key, None, unset=True)


def get_pref(prefs: Prefs | Filters, key: str) -> _t.Any:
    _type_at(key)
    _, parts = _root(key)
    node: _t.Any = _to_dict(prefs)
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
