"""What mapping and the sync engine hand each other: `Needs` (the QBO objects, by name, an invoice will
reference), `Refs` (the ids the engine resolved for them, plus the company's tax and currency settings) and
`CompanyFacts` (the connected company's country and currency, for judging invoices outside a run)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cwqbo.mapping.customers import CustomerSpec
from cwqbo.mapping.errors import MappingError


@dataclass(frozen=True, slots=True)
class Needs:
    """Every QBO object, by name, that building one invoice will reference: what the engine must resolve."""

    customer: CustomerSpec
    items: set[str] = field(default_factory=set)
    tax_codes: set[str] = field(default_factory=set)
    terms: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    departments: set[str] = field(default_factory=set)
    custom_fields: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class ItemRef:
    """A resolved QBO item: its id, its name, and whether QBO marks it taxable (None: not known)."""

    id: str
    name: str
    taxable: bool | None = None


@dataclass(frozen=True, slots=True)
class Refs:
    """QBO ids the engine resolved for the names in `Needs` (by name)."""

    customer_id: str
    items: dict[str, ItemRef] = field(default_factory=dict)
    tax_codes: dict[str, str] = field(default_factory=dict)
    terms: dict[str, str] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    departments: dict[str, str] = field(default_factory=dict)
    custom_fields: dict[str, str] = field(default_factory=dict)  # custom field name → DefinitionId
    us_automated_tax: bool = False
    us: bool = True  # US tax model (TAX/NON line codes); False → per-line TaxCode ids + GlobalTaxCalculation
    class_per_line: bool = False  # Preferences.AccountingInfoPrefs.ClassTrackingPerTxnLine
    # Preferences.CurrencyPrefs.HomeCurrency (None: not known, no currency check) and .MultiCurrencyEnabled
    home_currency: str | None = None
    multicurrency: bool = False
    customer_currency: str | None = None  # the resolved customer's CurrencyRef.value (None: home currency)


def ref_id(table: Mapping[str, ItemRef | str], name: str, what: str, fix: str) -> str:
    """The resolved QBO id of `name` in `table`; MappingError (naming `what`, with `fix`) when it was not resolved."""
    try:
        value = table[name]
    except KeyError:
        raise MappingError(f"no QuickBooks {what} resolved for '{name}'", fix) from None
    return value.id if isinstance(value, ItemRef) else str(value)


@dataclass(frozen=True, slots=True)
class CompanyFacts:
    """What mapping needs to know of the connected QBO company (CompanyInfo.Country, Preferences.CurrencyPrefs)."""

    country: str | None = None  # None: not known yet
    home_currency: str | None = None
    multicurrency: bool = False

    @property
    def us(self) -> bool | None:
        """Whether the company uses the US tax model; None while its country is not known."""
        return None if self.country is None else self.country.upper() == "US"


def company_facts(preferences: dict[str, Any] | None, country: str | None = None) -> CompanyFacts:
    """CompanyFacts from a QBO Preferences object and CompanyInfo.Country.

    `Preferences.CurrencyPrefs.HomeCurrency` is a reference (`{"value": "USD"}`, python-quickbooks
    `CurrencyPrefs.class_dict = {"HomeCurrency": Ref}`); a bare code is accepted too.
    `MultiCurrencyEnabled` is a boolean (python-quickbooks defaults it to False).
    """
    cur = (preferences or {}).get("CurrencyPrefs") or {}
    home = cur.get("HomeCurrency")
    code = home.get("value") if isinstance(home, dict) else home
    return CompanyFacts(country=(str(country).upper() or None) if country else None,
                        home_currency=str(code).upper() if code else None,
                        multicurrency=cur.get("MultiCurrencyEnabled") in (True, "true"))
