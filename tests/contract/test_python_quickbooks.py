"""The community python-quickbooks library (requests + intuit-oauth) works unchanged against the simulator.

If a widely used third-party client can create and read back a Customer and an Invoice over loopback,
the simulator speaks QBO's dialect and not just ours. The only changes are the documented knobs: the
environment given to intuit-oauth's AuthClient may be a discovery-document URL, and QuickBooks'
`api_url_v3` attribute sets the API base.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from decimal import Decimal

import pytest

from cwqbo.clock import ManualClock
from cwqbo.sandbox.bridge import LoopbackServer
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

pytest.importorskip("quickbooks")
pytest.importorskip("intuitlib")

from intuitlib.client import AuthClient  # noqa: E402
from quickbooks import QuickBooks  # noqa: E402
from quickbooks.exceptions import QuickbooksException  # noqa: E402
from quickbooks.objects.customer import Customer  # noqa: E402
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail  # noqa: E402
from quickbooks.objects.base import Ref  # noqa: E402
from quickbooks.objects.invoice import Invoice  # noqa: E402

REALM = "9341453000000000"


@pytest.fixture
def sim() -> QBOSimulator:
    return QBOSimulator(ManualClock(), Faults())


@pytest.fixture
def server(sim: QBOSimulator) -> Iterator[LoopbackServer]:
    with LoopbackServer(sim.handle) as srv:
        yield srv


@pytest.fixture
def qb(sim: QBOSimulator, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> QuickBooks:
    # requests-oauthlib refuses http:// unless told the transport is trusted (loopback here).
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    refresh = sim.issue_tokens()["refresh_token"]
    auth = AuthClient("sandbox-client-id", "sandbox-client-secret", "http://127.0.0.1/callback",
                      environment=f"{server.url}/.well-known/openid_sandbox_configuration")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = QuickBooks(auth_client=auth, refresh_token=refresh, company_id=REALM, minorversion=75)
    client.api_url_v3 = f"{server.url}/v3"
    client.sandbox = False
    client.use_decimal = True
    return client


def test_customer_and_invoice_round_trip(qb: QuickBooks, sim: QBOSimulator) -> None:
    customer = Customer()
    customer.DisplayName = "O'Brien & Sons"
    saved_customer = customer.save(qb=qb)  # save() returns the server's copy; only Id is set on self
    assert customer.Id and saved_customer.SyncToken == "0" and saved_customer.DisplayName == "O'Brien & Sons"

    line = SalesItemLine()
    line.Amount = Decimal("150.25")
    line.Description = "Managed services, March"
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = Ref()
    line.SalesItemLineDetail.ItemRef.value = "3"
    line.SalesItemLineDetail.Qty = 1  # the library sends Qty/UnitPrice 0 by default, which QBO rejects (6070)
    line.SalesItemLineDetail.UnitPrice = Decimal("150.25")
    inv = Invoice()
    inv.CustomerRef = customer.to_ref()
    inv.DocNumber = "CW-42"
    inv.Line = [line]
    saved = inv.save(qb=qb, request_id="pyqb-inv-1")
    assert inv.Id and saved.TotalAmt == Decimal("150.25") and saved.DocNumber == "CW-42"

    # server side: exactly one of each, exact money
    assert [c["DisplayName"] for c in sim.documents("Customer")] == ["O'Brien & Sons"]
    stored = sim.documents("Invoice")
    assert len(stored) == 1 and stored[0]["TotalAmt"] == Decimal("150.25") and stored[0]["DocNumber"] == "CW-42"

    # and back through the library's query and read paths
    found = Customer.filter(DisplayName="O'Brien & Sons", qb=qb)
    assert [c.Id for c in found] == [customer.Id]
    again = Invoice.get(inv.Id, qb=qb)
    assert again.DocNumber == "CW-42" and again.CustomerRef.value == customer.Id
    listed = Invoice.query("SELECT * FROM Invoice WHERE DocNumber = 'CW-42'", qb=qb)
    assert [i.Id for i in listed] == [inv.Id]
    assert Invoice.count(qb=qb) == 1


def test_library_sees_the_simulator_faults(qb: QuickBooks) -> None:
    first = Customer()
    first.DisplayName = "Northwind Traders"  # seeded as a Vendor: QBO names are unique across people
    with pytest.raises(QuickbooksException) as info:
        first.save(qb=qb)
    assert "6240" in str(info.value.error_code) or "Duplicate" in str(info.value)
