"""Per-profile preferences and invoice filters: what the user chose, with defaults.

Stored in config.toml under [profiles.NAME.prefs] and [profiles.NAME.filters]; `config.py`
reads and writes them, `cli/prefs.py` edits them, `mapping.py` and `sync.py` obey them.
Validation of values lives here (pure); validation against QBO objects lives in `prefs_check.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

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
class Prefs:
    sync_mode: SyncMode = "manual"
    schedule: str = "0 6 * * *"  # cron expression, used when sync_mode == "automatic"
    fields: FieldMappings = field(default_factory=FieldMappings)
    items: ItemMappings = field(default_factory=ItemMappings)
    tax: TaxPrefs = field(default_factory=TaxPrefs)
    time: TimePrefs = field(default_factory=TimePrefs)


@dataclass
class Filters:
    """Which Closed invoices are in scope. Empty lists mean "no restriction"."""

    from_date: date | None = None
    location_ids: list[int] = field(default_factory=list)
    department_ids: list[int] = field(default_factory=list)  # business units
    billing_statuses: list[str] = field(default_factory=list)  # names of closed statuses; empty = all closed
    invoice_types: list[str] = field(default_factory=list)
    exclude_companies: list[str] = field(default_factory=list)  # company identifiers
