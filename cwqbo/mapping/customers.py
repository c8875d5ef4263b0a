"""The QBO customer for a ConnectWise company: its DisplayName (by name or identifier, per prefs), the
deterministic alternative when that name collides, and the addresses copied onto customers and documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cwqbo.mapping.text import clean_name, truncate
from cwqbo.models import Address, CompanyRef, CWInvoice
from cwqbo.quickbooks.limits import MAX_LENGTHS
from cwqbo.settings.prefs import Prefs

DISPLAY_NAME_MAX = MAX_LENGTHS["Customer"].get("DisplayName", 500)
COMPANY_NAME_MAX = MAX_LENGTHS["Customer"].get("CompanyName", 100)
_ADDRESS_MAX = MAX_LENGTHS["Invoice"]  # BillAddr.* limits; ShipAddr has the same


@dataclass(frozen=True, slots=True)
class CustomerSpec:
    """What the engine needs to find or create the QBO customer for an invoice."""

    key: str  # the value matched against QBO Customer.DisplayName
    display_name: str
    company_name: str
    cw_company_id: int
    identifier: str
    fallback_name: str  # DisplayName to use when display_name collides with a vendor/employee/other customer
    bill_addr: dict[str, str] | None = None
    ship_addr: dict[str, str] | None = None
    currency: str | None = None  # ISO code of the invoice; a new customer is created in it (multicurrency on)


def address(a: Address | None) -> dict[str, str] | None:
    """A QBO PhysicalAddress from a CW address: each part cleaned and cut to QBO's limit; None when empty."""
    if a is None:
        return None
    pairs = [("Line1", a.line1), ("Line2", a.line2), ("City", a.city), ("CountrySubDivisionCode", a.state),
             ("PostalCode", a.zip), ("Country", a.country)]
    out = {k: truncate(clean_name(v), _ADDRESS_MAX.get(f"BillAddr.{k}", 500)) for k, v in pairs if v and clean_name(v)}
    return out or None


def customer_display_name(company: CompanyRef, prefs: Prefs) -> str:
    """DisplayName for a CW company: its name (or identifier, per fields.customer_match), QBO-safe, ≤ 500 chars."""
    raw = company.identifier if prefs.fields.customer_match == "identifier" else company.name
    name = clean_name(raw or "") or clean_name(company.name or "") or f"CW company {company.id}"
    return truncate(name, DISPLAY_NAME_MAX)


def disambiguated_name(name: str, company: CompanyRef) -> str:
    """Deterministic alternative DisplayName, e.g. 'Northwind Traders (CW 17)', when `name` is taken."""
    suffix = f" (CW {company.id})"
    if name.endswith(suffix):
        return name
    return truncate(name, DISPLAY_NAME_MAX - len(suffix)) + suffix


def customer_spec(inv: CWInvoice, prefs: Prefs) -> CustomerSpec:
    """Everything the engine needs to find, or create, the invoice's QBO customer."""
    display = customer_display_name(inv.company, prefs)
    return CustomerSpec(
        key=display, display_name=display,
        company_name=truncate(clean_name(inv.company.name or "") or display, COMPANY_NAME_MAX),
        cw_company_id=inv.company.id, identifier=inv.company.identifier,
        fallback_name=disambiguated_name(display, inv.company),
        bill_addr=address(inv.billing_address), ship_addr=address(inv.shipping_address),
        currency=(inv.currency or "").upper() or None)


def customer_payload(spec: CustomerSpec, name: str, *, currency: str | None = None) -> dict[str, Any]:
    """The Customer create body from mapping's spec, under the name resolution chose; `currency` (an ISO code)
    creates it in that currency (Customer.CurrencyRef; only with multicurrency on)."""
    body: dict[str, Any] = {"DisplayName": name}
    if currency:
        body["CurrencyRef"] = {"value": currency}
    if spec.company_name:
        body["CompanyName"] = spec.company_name
    if spec.bill_addr:
        body["BillAddr"] = dict(spec.bill_addr)
    if spec.ship_addr:
        body["ShipAddr"] = dict(spec.ship_addr)
    return body
