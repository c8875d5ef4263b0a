"""The ConnectWise simulator invents no field: every key it serves is in ConnectWise's published schema.

pyconnectwise's models (generated from ConnectWise's OpenAPI document) are the oracle. The walk covers every
route the simulator serves on a seeded sandbox, recursing into nested references where the models type them.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.sandbox.connectwise import schema as cw_schema
from cwqbo.sandbox.connectwise.simulator import CWSimulator
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.generator import generate

pyconnectwise = pytest.importorskip("pyconnectwise")
from pyconnectwise.models import manage as models  # noqa: E402

BASE = "http://cw.test/v2026_1/apis/3.0"
DEC_1 = 1_796_083_200.0


def test_committed_table_matches_a_fresh_derivation() -> None:
    table, required = cw_schema.derive(models)
    assert table == cw_schema.MODELS, "regenerate: python -m cwqbo.sandbox.connectwise.schema"
    assert required == cw_schema.REQUIRED
    assert cw_schema.REQUIRED["CreateAccountingBatchRequest"] == ["processedRecordIds"]
    assert "extPrice" not in cw_schema.MODELS["ProductItem"]
    assert "isClosed" not in cw_schema.MODELS["BillingStatusReference"]


def _nested(annotation: Any) -> tuple[type | None, bool]:
    """(model class, is_list) inside an annotation, or (None, False) for scalars."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        for arg in args:
            found = _nested(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin is typing.Annotated:
        return _nested(args[0])
    if origin is list and args:
        inner, _ = _nested(args[0])
        return inner, inner is not None
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation, False
    return None, False


def invented(model: type, record: Any, where: str) -> list[str]:
    """Keys of `record` (recursively) that `model` does not have."""
    if not isinstance(record, dict):
        return [f"{where}: not an object"]
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    bad = []
    for key, value in record.items():
        info = fields.get(key)
        if info is None:
            bad.append(f"{where}.{key} (not in {model.__name__})")
            continue
        inner, is_list = _nested(info.annotation)
        if inner is None or value is None:
            continue
        for i, item in enumerate(value if is_list else [value]):
            bad += invented(inner, item, f"{where}.{key}" + (f"[{i}]" if is_list else ""))
    return bad


@pytest.fixture(scope="module")
def http() -> httpx.Client:
    sim = CWSimulator(ManualClock(DEC_1), Faults())
    sim.load(generate(11, 150))
    return httpx.Client(transport=httpx.MockTransport(sim.handle), base_url=BASE,
                        auth=("cwqbo_demo+sandbox-public", "sandbox-private"),
                        headers={"clientId": "00000000-0000-4000-8000-00000000c1d0"})


LISTS = {"/finance/invoices": models.Invoice, "/procurement/products": models.ProductItem,
         "/time/entries": models.TimeEntry, "/expense/entries": models.ExpenseEntry,
         "/finance/accounting/unpostedinvoices": models.UnpostedInvoice,
         "/finance/accounting/batches": models.AccountingBatch, "/company/companies": models.Company,
         "/finance/billingStatuses": models.BillingStatus, "/system/members": models.Member,
         "/system/securityroles": models.SecurityRole, "/system/securityroles/7/settings": models.SecurityRoleSetting}


def test_every_route_serves_only_schema_fields(http: httpx.Client) -> None:
    bad: list[str] = []
    for path, model in LISTS.items():
        rows = money.loads(http.get(path, params={"pageSize": 1000}).content)
        assert rows, path
        for row in rows:
            bad += invented(model, row, path)
            model.model_validate(row)
        if not path.endswith("/settings"):
            one = http.get(f"{path}/{rows[0]['id']}")
            assert one.status_code == 200, path
            bad += invented(model, money.loads(one.content), f"{path}/{{id}}")
            assert set(http.get(f"{path}/count").json()) == {"count"}
    export = http.post("/finance/accounting/export", json={"batchIdentifier": "W", "exportInvoicesFlag": True,
                                                           "exportExpensesFlag": True, "exportProductsFlag": True})
    assert export.status_code == 200
    doc = money.loads(export.content)
    assert doc["transactions"] and doc["expenses"] and doc["purchaseTransactions"]
    bad += invented(models.GLExport, doc, "export")
    models.GLExport.model_validate(doc)
    ids = [int(x) for x in doc["transactions"][0]["glEntryIds"].split(",")]
    batch = http.post("/finance/accounting/batches", json={"batchIdentifier": "W", "exportInvoicesFlag": True,
                                                           "processedRecordIds": ids})
    assert batch.status_code == 201
    bad += invented(models.GLExport, money.loads(batch.content), "batch POST")
    batch_id = http.get("/finance/accounting/batches", params={"conditions": 'batchIdentifier = "W"'}).json()[0]["id"]
    entries = money.loads(http.get(f"/finance/accounting/batches/{batch_id}/entries").content)
    assert entries
    for row in entries:
        bad += invented(models.BatchEntry, row, "batch entries")
        models.BatchEntry.model_validate(row)
    bad += invented(models.BatchEntry, money.loads(
        http.get(f"/finance/accounting/batches/{batch_id}/entries/{entries[0]['id']}").content), "entry")
    again = http.post(f"/finance/accounting/batches/{batch_id}/export")
    assert again.status_code == 200
    bad += invented(models.GLExport, money.loads(again.content), "batch export")
    assert bad == []


def test_walker_catches_an_invented_field() -> None:
    assert invented(models.Invoice, {"id": 1, "status": {"id": 3, "isClosed": True}}, "x") == [
        "x.status.isClosed (not in BillingStatusReference)"]
    assert invented(models.GLExport, {"transactions": [{"glEntryIds": "1", "detail": [{"extPrice": 1}]}]}, "x") == [
        "x.transactions[0].detail[0].extPrice (not in GLExportTransactionDetail)"]
