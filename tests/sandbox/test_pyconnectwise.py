"""A third-party client (pyconnectwise, generated from ConnectWise's OpenAPI spec) reads the loopback sandbox.

Only the URL scheme is adapted (the library hard-codes https; the sandbox is plain http on loopback).
The codebase is discovered through /login/companyinfo, as the library does against a real site.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cwqbo.sandbox.server import Sandbox

pyconnectwise = pytest.importorskip("pyconnectwise")
from pyconnectwise import ConnectWiseManageAPIClient  # noqa: E402
from pyconnectwise.exceptions import PermissionsFailedException  # noqa: E402


class LoopbackManageClient(ConnectWiseManageAPIClient):
    def _try_get_codebase_from_api(self, manage_url: str, company_name: str, headers: dict[str, str]) -> str:
        response = self._make_request("GET", f"http://{manage_url}/login/companyinfo/{company_name}", headers=headers)
        return response.json().get("Codebase")

    def _get_url(self) -> str:
        return f"http://{self.manage_url}/{self.codebase.strip('/')}/apis/3.0"


@pytest.fixture()
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, LoopbackManageClient]]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    box = Sandbox(seed=5, invoices=30)
    server = box.start()
    creds = box.credentials(server.url)["connectwise"]
    try:
        yield box, LoopbackManageClient(creds["company_id"], creds["site"], creds["client_id"], creds["public_key"],
                                        creds["private_key"])
    finally:
        server.stop()


def test_pyconnectwise_pages_through_invoices(served: tuple[Sandbox, LoopbackManageClient]) -> None:
    box, client = served
    page = client.finance.invoices.paginated(1, 10, {"orderBy": "id asc"})
    seen = []
    for invoice in page.all():
        seen.append((invoice.id, invoice.invoice_number, str(invoice.total)))
    expected = [(i["id"], i["invoiceNumber"], str(i["total"])) for i in sorted(box.cw.invoices(), key=lambda r: r["id"])]
    assert [s[:2] for s in seen] == [e[:2] for e in expected]
    one = client.finance.invoices.id(expected[0][0]).get()
    assert one.company.name == box.cw.invoice(expected[0][0])["company"]["name"]


def test_pyconnectwise_sees_conditions_counts_and_403(served: tuple[Sandbox, LoopbackManageClient]) -> None:
    box, client = served
    closed = client.finance.invoices.get(params={"conditions": "status/id in (3,4)", "pageSize": 1000})
    assert {i.id for i in closed} == {i["id"] for i in box.cw.invoices() if box.cw.is_closed(i["id"])}
    assert client.finance.invoices.count.get().count == 30
    box.cw.set_permission("Time Entry", "None")
    with pytest.raises(PermissionsFailedException):
        client.time.entries.get()


def test_every_record_validates_against_the_spec_models() -> None:
    """Each endpoint's records fit the models generated from ConnectWise's OpenAPI spec (enums, types, required)."""
    import httpx
    from pyconnectwise.models import manage as models

    box = Sandbox(seed=5, invoices=200)
    creds = box.credentials("http://sandbox.test")["connectwise"]
    http = httpx.Client(transport=box.transport(), base_url=creds["api_url"],
                        auth=(f"{creds['company_id']}+{creds['public_key']}", creds["private_key"]),
                        headers={"clientId": creds["client_id"]})
    checks = {"/finance/invoices": models.Invoice, "/procurement/products": models.ProductItem,
              "/time/entries": models.TimeEntry, "/expense/entries": models.ExpenseEntry,
              "/finance/accounting/unpostedinvoices": models.UnpostedInvoice,
              "/finance/accounting/batches": models.AccountingBatch, "/company/companies": models.Company,
              "/finance/billingStatuses": models.BillingStatus, "/system/members": models.Member,
              "/system/securityroles": models.SecurityRole,
              "/system/securityroles/7/settings": models.SecurityRoleSetting}
    for path, model in checks.items():
        rows = http.get(path, params={"pageSize": 1000}).json()
        assert rows, path
        for row in rows:
            model.model_validate(row)


def test_pyconnectwise_reads_unposted_exports_and_batches(served: tuple[Sandbox, LoopbackManageClient]) -> None:
    """The accounting round trip through the unchanged library, parsed into its models."""
    box, client = served
    accounting = client.finance.accounting
    rows = accounting.unpostedinvoices.get(params={"pageSize": 1000})
    assert {r.billing_log_id for r in rows} == set(box.cw.unposted_ids())
    assert all(r.id != r.billing_log_id for r in rows)
    pick = next(r for r in rows if box.cw.gl_entries_of(r.billing_log_id))
    export = accounting.export.post(data={"batchIdentifier": "PYCW-1", "exportInvoicesFlag": True,
                                          "includedInvoiceIds": [pick.id]})
    [transaction] = export.transactions
    assert transaction.document_number == pick.invoice_number
    gl_ids = [int(x) for x in transaction.gl_entry_ids.split(",")]
    batched = accounting.batches.post(data={"batchIdentifier": "PYCW-1", "exportInvoicesFlag": True,
                                            "processedRecordIds": gl_ids})
    assert [t.document_number for t in batched.transactions] == [pick.invoice_number]
    [batch] = accounting.batches.get(params={"conditions": 'batchIdentifier = "PYCW-1"'})
    entries = accounting.batches.id(batch.id).entries.get(params={"pageSize": 1000})
    assert sorted(e.id for e in entries) == sorted(gl_ids) and {e.invoice.id for e in entries} == {pick.billing_log_id}
    assert pick.billing_log_id not in box.cw.unposted_ids()
