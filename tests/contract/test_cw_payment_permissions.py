"""check-permissions for payments: reading invoice payments is probed with a one-record GET, adding and deleting
them is read from the API member's security role — nothing is ever written to ConnectWise."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from cwqbo.clock import ManualClock
from cwqbo.connectwise import permissions
from cwqbo.connectwise.client import CWClient, fetch_company_info
from cwqbo.errors import AuthError

READ = "Finance › Invoicing (payments: read)"
ADD = "Finance › Invoicing (payments: add)"
DELETE = "Finance › Invoicing (payments: delete)"
Handler = Callable[[httpx.Request], httpx.Response]


def make(handler: Handler) -> CWClient:
    return CWClient("na.myconnectwise.net", "acme", "pub", "priv", "client-guid", "v2026_1/",
                    client=httpx.Client(transport=httpx.MockTransport(handler)), clock=ManualClock())


def jresp(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode())


def fake_cw(*, invoices: list[dict[str, Any]], payments_status: int = 200, role: dict[str, Any] | None = None,
            seen: list[tuple[str, str, dict[str, str]]] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2026_1/apis/3.0")
        if seen is not None:
            seen.append((request.method, path, {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}))
        if path == "/finance/invoices":
            return jresp(200, invoices)
        if path.startswith("/finance/invoices/") and path.endswith("/payments"):
            return jresp(payments_status, [] if payments_status == 200 else {"message": "denied"})
        if path == "/system/myAccount":
            return jresp(200, {"id": 3, "securityRole": {"id": 9, "name": "API"}})
        if path == "/system/securityroles/9/settings" and role is not None:
            return jresp(200, [{"moduleFunctionName": "Accounting Interface", "moduleName": "Finance",
                                "addLevel": "All", "deleteLevel": "None", "inquireLevel": "All"},
                               {"moduleFunctionName": "Invoicing", "moduleName": "Finance", **role}])
        return jresp(403, {"message": "denied"})
    return handler


def test_probes_read_one_invoices_payments_and_read_add_delete_from_the_role() -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []
    handler = fake_cw(invoices=[{"id": 4711}], seen=seen,
                      role={"inquireLevel": "All", "addLevel": "All", "deleteLevel": "None"})
    by_area = {p.area: p for p in permissions.payment_probes(make(handler))}
    assert {m for m, _, _ in seen} == {"GET"}, "probing never writes"
    [payments_get] = [(path, params) for _, path, params in seen if path.endswith("/payments")]
    assert payments_get[0] == "/finance/invoices/4711/payments" and payments_get[1]["pageSize"] == "1"
    assert by_area[READ].ok is True and by_area[ADD].ok is True
    delete = by_area[DELETE]
    assert delete.ok is False and delete.fix == "Security Roles › Finance › Invoicing › Delete Level: All"
    assert "Delete Level is None" in delete.detail
    assert all(p.needed_for == "payments" for p in by_area.values())


def test_refused_payments_read_and_add_give_the_exact_fix() -> None:
    handler = fake_cw(invoices=[{"id": 7}], payments_status=403,
                      role={"inquireLevel": "All", "addLevel": "None", "deleteLevel": "All"})
    by_area = {p.area: p for p in permissions.payment_probes(make(handler))}
    assert by_area[READ].ok is False
    assert by_area[READ].fix == "Security Roles › Finance › Invoicing › Inquire Level: All"
    assert by_area[ADD].ok is False and by_area[ADD].fix == "Security Roles › Finance › Invoicing › Add Level: All"
    assert by_area[DELETE].ok is True and by_area[DELETE].fix == ""


def test_without_any_invoice_the_invoices_list_is_probed() -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []
    handler = fake_cw(invoices=[], seen=seen, role={"inquireLevel": "All", "addLevel": "All", "deleteLevel": "All"})
    by_area = {p.area: p for p in permissions.payment_probes(make(handler))}
    assert not any(path.endswith("/payments") for _, path, _ in seen)
    assert by_area[READ].ok is True and "no invoice yet" in by_area[READ].detail


def test_an_unreadable_role_is_unknown_not_missing() -> None:
    handler = fake_cw(invoices=[{"id": 1}], role=None)
    by_area = {p.area: p for p in permissions.payment_probes(make(handler))}
    for area in (ADD, DELETE):
        assert by_area[area].ok is None and "never posts a test payment" in by_area[area].detail
        assert by_area[area].fix.startswith("Security Roles › Finance › Invoicing ›")


def test_bad_keys_stop_the_payment_probes() -> None:
    with pytest.raises(AuthError):
        permissions.payment_probes(make(lambda r: jresp(401, {})))


# -- against the ConnectWise simulator, whose security model guards invoice payments by Finance › Invoicing -------

sandbox_server = pytest.importorskip("cwqbo.sandbox.server")


def sim_client(sb: Any) -> CWClient:
    site = "127.0.0.1:8765"
    info = fetch_company_info(site, "cwqbo_demo", "http", client=httpx.Client(transport=sb.transport()))
    return CWClient(site, "cwqbo_demo", "sandbox-public", "sandbox-private", "00000000-0000-4000-8000-00000000c1d0",
                    info["Codebase"], scheme="http", client=httpx.Client(transport=sb.transport()),
                    clock=ManualClock())


@pytest.mark.parametrize("kind, area", [("inquire", READ), ("add", ADD), ("delete", DELETE)])
def test_the_simulator_agrees_with_the_probes(kind: str, area: str) -> None:
    sb = sandbox_server.Sandbox(seed=3, invoices=6)
    cl = sim_client(sb)
    assert all(p.ok for p in permissions.payment_probes(cl)), "a fresh sandbox's member holds every right"
    sb.cw.set_permission("Invoicing", "None", kind=kind)
    by_area = {p.area: p for p in permissions.payment_probes(cl)}
    assert by_area[area].ok is False and by_area[area].fix.endswith(f"{kind.capitalize()} Level: All")
    assert [a for a, p in by_area.items() if p.ok is False] == [area]
    assert not any(sb.cw.invoice_payments(i) for i in range(1, 2000)), "no payment was posted"
