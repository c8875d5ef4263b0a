"""Multicurrency in the QBO simulator and through resolve + mapping: a company preference; a document in another
currency than its customer is refused; with multicurrency off only the home currency is accepted."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.mapping.document import build_document, needs
from cwqbo.models import CompanyRef, CWInvoice, InvoiceLine
from cwqbo.settings.prefs import Prefs
from cwqbo.quickbooks.client import QBOClient
from cwqbo.sync.ref_cache import stored_company_facts
from cwqbo.sync.resolve import Resolver
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import DirectTokens, QBOSimulator
from cwqbo.state.store import Store

REALM = "9341453000000000"
BASE = f"/v3/company/{REALM}"
D = Decimal


class Api:
    def __init__(self, sim: QBOSimulator) -> None:
        self.http = httpx.Client(transport=httpx.MockTransport(sim.handle), base_url="http://sim.test")
        self.headers = {"Authorization": f"Bearer {sim.issue_tokens()['access_token']}",
                        "Accept": "application/json", "Content-Type": "application/json"}

    def post(self, entity: str, body: Any) -> httpx.Response:
        return self.http.post(f"{BASE}/{entity.lower()}", content=money.dumps(body), params={"minorversion": "75"},
                              headers=self.headers)


def ok(resp: httpx.Response, entity: str) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return money.loads(resp.content)[entity]  # type: ignore[no-any-return]


def fault(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    return money.loads(resp.content)["Fault"]["Error"][0]  # type: ignore[no-any-return]


def invoice(customer_id: str, currency: str | None = None, amount: str = "100.00") -> dict[str, Any]:
    body: dict[str, Any] = {"CustomerRef": {"value": customer_id}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": D(amount),
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}}}]}
    if currency:
        body["CurrencyRef"] = {"value": currency}
    return body


@pytest.fixture
def sim() -> QBOSimulator:
    return QBOSimulator(ManualClock(), Faults())


def test_multicurrency_off_refuses_a_foreign_currency(sim: QBOSimulator) -> None:
    api = Api(sim)
    assert sim.preferences["CurrencyPrefs"] == {"HomeCurrency": {"value": "USD"}, "MultiCurrencyEnabled": False}
    err = fault(api.post("Customer", {"DisplayName": "Maple Co", "CurrencyRef": {"value": "CAD"}}))
    assert err["code"] == "6000" and err["element"] == "CurrencyRef"
    cust = ok(api.post("Customer", {"DisplayName": "Maple Co"}), "Customer")
    assert cust["CurrencyRef"] == {"value": "USD", "name": "United States Dollar"}
    err = fault(api.post("Invoice", invoice(cust["Id"], "CAD")))
    assert err["code"] == "6000" and "home currency USD" in err["Detail"]
    made = ok(api.post("Invoice", invoice(cust["Id"], "USD")), "Invoice")
    assert made["CurrencyRef"]["value"] == "USD" and "ExchangeRate" not in made and made["TotalAmt"] == D("100.00")


def test_multicurrency_on_a_document_must_be_in_its_customers_currency(sim: QBOSimulator) -> None:
    sim.set_preference("CurrencyPrefs", "MultiCurrencyEnabled", True)
    api = Api(sim)
    cad = ok(api.post("Customer", {"DisplayName": "Maple Co", "CurrencyRef": {"value": "CAD"}}), "Customer")
    usd = ok(api.post("Customer", {"DisplayName": "Acme"}), "Customer")
    assert cad["CurrencyRef"]["value"] == "CAD" and usd["CurrencyRef"]["value"] == "USD"
    made = ok(api.post("Invoice", {**invoice(cad["Id"], "CAD"), "ExchangeRate": D("0.73")}), "Invoice")
    assert made["CurrencyRef"]["value"] == "CAD" and made["TotalAmt"] == D("100.00")
    assert made["ExchangeRate"] == D("0.73") and made["HomeTotalAmt"] == D("73.00")
    assert fault(api.post("Invoice", invoice(usd["Id"], "CAD")))["code"] == "6000"
    assert fault(api.post("Invoice", invoice(cad["Id"])))["code"] == "6000"  # no CurrencyRef = home (USD)
    # a customer's currency never changes
    err = fault(api.post("Customer", {"Id": cad["Id"], "SyncToken": cad["SyncToken"], "sparse": True,
                                      "CurrencyRef": {"value": "USD"}}))
    assert err["code"] == "6000"


def qbo_client(sim: QBOSimulator) -> QBOClient:
    http = httpx.Client(transport=httpx.MockTransport(sim.handle))
    return QBOClient("http://sim.test", REALM, DirectTokens(sim), clock=ManualClock(), client=http)


def cad_invoice(company: CompanyRef, number: str = "INV77") -> CWInvoice:
    line = InvoiceLine(kind="product", source_id=1, description="Laptop", quantity=D(1), unit_price=D("100.00"),
                       amount=D("100.00"), taxable=False, item_key="LAPTOP")
    return CWInvoice(id=77, number=number, type="Standard", status_id=1, status_name="Closed", company=company,
                     date=date(2026, 2, 1), due_date=None, subtotal=D("100.00"), sales_tax=D("0"),
                     total=D("100.00"), lines=(line,), currency="CAD")


def test_a_cad_invoice_reaches_a_new_cad_customer_through_resolve_and_mapping(sim: QBOSimulator) -> None:
    sim.set_preference("CurrencyPrefs", "MultiCurrencyEnabled", True)
    store = Store.memory()
    prefs = Prefs()
    prefs.items.product = {"LAPTOP": "Hardware"}
    inv = cad_invoice(CompanyRef(40, "MapleCo", "Maple Co"))
    res = Resolver(qbo_client(sim), store, REALM, prefs, country="US").resolve({inv.id: needs(inv, prefs, us=True)})
    assert res.errors == {}
    refs = res.refs[inv.id]
    assert (refs.home_currency, refs.multicurrency, refs.customer_currency) == ("USD", True, "CAD")
    doc = build_document(inv, prefs, refs)
    made = ok(Api(sim).post("Invoice", doc.payload), "Invoice")
    assert made["CurrencyRef"]["value"] == "CAD" and made["TotalAmt"] == D("100.00")
    facts = stored_company_facts(store, REALM)
    assert facts is not None and (facts.country, facts.home_currency, facts.multicurrency) == ("US", "USD", True)


def test_an_existing_customer_in_the_home_currency_fails_that_invoice_clearly(sim: QBOSimulator) -> None:
    sim.set_preference("CurrencyPrefs", "MultiCurrencyEnabled", True)
    ok(Api(sim).post("Customer", {"DisplayName": "Maple Co"}), "Customer")  # USD, made by hand earlier
    prefs = Prefs()
    prefs.items.product = {"LAPTOP": "Hardware"}
    inv = cad_invoice(CompanyRef(40, "MapleCo", "Maple Co"))
    res = Resolver(qbo_client(sim), Store.memory(), REALM, prefs, country="US").resolve(
        {inv.id: needs(inv, prefs, us=True)})
    refs = res.refs[inv.id]
    assert refs.customer_currency == "USD"
    with pytest.raises(Exception, match="is in CAD but its QuickBooks customer is in USD"):
        build_document(inv, prefs, refs)
