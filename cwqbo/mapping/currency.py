"""The document's currency: CurrencyRef when the QuickBooks company uses multicurrency, and a refusal whenever
QuickBooks would book the amounts in a currency ConnectWise did not bill in."""

from __future__ import annotations

from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.refs import Refs
from cwqbo.models import CWInvoice


def currency_ref(inv: CWInvoice, refs: Refs) -> dict[str, str] | None:
    """The document's CurrencyRef, or None to leave it out; MappingError when QuickBooks cannot book it.

    Intuit (Invoice.CurrencyRef, qbTypesDump): "This must be defined if multicurrency is enabled for the
    company"; Customer.CurrencyRef: "Once set, it cannot be changed … If not specified, currency for this
    customer is the home currency". So: multicurrency off → only home-currency invoices (no CurrencyRef);
    on → CurrencyRef always, and the customer must be in the invoice's currency. ConnectWise's invoice and
    CurrencyReference carry no exchange rate (pyconnectwise `Invoice`, `CurrencyReference`), so ExchangeRate
    is left to QuickBooks. An invoice with no currency in ConnectWise is taken to be in the home currency.
    """
    home = refs.home_currency
    if not home:
        return None  # the engine did not tell us the company's currency: nothing to check against
    home = home.upper()
    doc = (inv.currency or home).upper()
    if not refs.multicurrency:
        if doc != home:
            raise MappingError(
                f"invoice {inv.number} is in {doc} but the QuickBooks company works in {home} and multicurrency "
                f"is off; posting it would book {doc} amounts as {home}",
                "turn on multicurrency in QuickBooks (Settings › Account and settings › Advanced › Currency), or "
                "exclude the invoice and enter it by hand", status="invalid")
        return None
    customer = (refs.customer_currency or home).upper()
    if customer != doc:
        raise MappingError(
            f"invoice {inv.number} is in {doc} but its QuickBooks customer is in {customer} (a customer's currency "
            "never changes)",
            f"bill this company through a QuickBooks customer in {doc}: rename the existing customer in QuickBooks so "
            f"cwqbo creates one in {doc}, or exclude the invoice")
    return {"value": doc}
