"""The sandbox server: routing to both simulators, control routes, the state file, loopback and the CLI."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cwqbo import money
from cwqbo.clock import ManualClock
from cwqbo.sandbox.bridge import LoopbackServer
from cwqbo.sandbox.server import Sandbox

REPO = Path(__file__).resolve().parents[2]
CW = "/v2026_1/apis/3.0"


def cw_client(base: str, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    creds = Sandbox().credentials(base)["connectwise"]
    return httpx.Client(base_url=base + CW, transport=transport,
                        auth=(f"{creds['company_id']}+{creds['public_key']}", creds["private_key"]),
                        headers={"clientId": creds["client_id"]})


def test_one_transport_serves_both_apis_and_control_routes() -> None:
    box = Sandbox(seed=2, invoices=12)
    http = cw_client("http://sandbox.test", box.transport())
    assert http.get("/finance/invoices/count").json() == {"count": 12}
    plain = httpx.Client(transport=box.transport(), base_url="http://sandbox.test")
    disco = plain.get("/.well-known/openid_sandbox_configuration")
    assert disco.status_code == 200 and "token_endpoint" in disco.json()
    state = plain.get("/_sandbox/state").json()
    assert state["cw"]["invoices"] == 12 and state["qbo"]["invoices"] == []
    assert plain.get("/nowhere").status_code == 404


def test_fault_and_permission_control_routes() -> None:
    box = Sandbox(invoices=5)
    plain = httpx.Client(transport=box.transport(), base_url="http://sandbox.test")
    assert plain.post("/_sandbox/faults", json={"throttle_next": 2, "paths": ["/time/"]}).json()["throttle_next"] == 2
    assert plain.post("/_sandbox/faults", json={"bogus": 1}).status_code == 400
    http = cw_client("http://sandbox.test", box.transport())
    assert http.get("/finance/invoices").status_code == 200  # path filter: invoices unaffected
    assert [http.get("/time/entries").status_code for _ in range(3)] == [429, 429, 200]
    assert plain.post("/_sandbox/cw/permission", json={"area": "Expense Report Entry", "level": "None"}).status_code == 200
    assert http.get("/expense/entries").status_code == 403
    assert plain.post("/_sandbox/cw/permission", json={"area": "Nope", "level": "None"}).status_code == 400
    plain.post("/_sandbox/reset")
    assert http.get("/expense/entries").status_code == 200


def test_clock_advance_and_expire_tokens() -> None:
    box = Sandbox(invoices=3, clock=ManualClock(1_796_083_200.0))
    plain = httpx.Client(transport=box.transport(), base_url="http://sandbox.test")
    assert plain.post("/_sandbox/clock/advance", json={"seconds": 3600}).json()["now"] == 1_796_086_800.0
    assert plain.post("/_sandbox/clock/advance", json={"seconds": "soon"}).status_code == 400
    token = box.qbo.issue_tokens()["access_token"]
    url = "/v3/company/9341453000000000/companyinfo/9341453000000000"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    assert plain.get(url, headers=headers).status_code == 200
    plain.post("/_sandbox/expire-access-tokens")
    assert plain.get(url, headers=headers).status_code == 401


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    box = Sandbox(seed=4, invoices=10, state_file=state)
    http = cw_client("http://sandbox.test", box.transport())
    target = next(i for i in box.cw.unposted_ids() if box.cw.gl_entries_of(i))
    gl = [e["id"] for e in box.cw.gl_entries_of(target)]
    assert http.post("/finance/accounting/batches", json={"batchIdentifier": "KEEP", "exportInvoicesFlag": True,
                                                          "processedRecordIds": gl}).status_code == 201
    assert state.exists() and not list(tmp_path.glob(".sandbox-*"))
    again = Sandbox(seed=99, invoices=1, state_file=state)  # the file wins over seed/invoices
    assert target not in again.cw.unposted_ids()
    assert [b["batchIdentifier"] for b in again.cw.batches()][-1] == "KEEP"
    assert len(again.cw.invoices()) == 10
    assert money.dumps(again.cw.invoices()) == money.dumps(box.cw.invoices())


def test_loopback_server_speaks_real_http() -> None:
    box = Sandbox(invoices=30)
    server = box.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        http = cw_client(server.url)
        info = httpx.get(f"{server.url}/login/companyinfo/cwqbo_demo").json()
        assert info["Codebase"] == "v2026_1/"
        first = http.get("/finance/invoices", params={"pageSize": 20})
        assert len(first.json()) == 20
        assert len(http.get(first.links["next"]["url"]).json()) == 10
        assert http.get("/finance/invoices/1001", params={"fields": "id,total"}).json().keys() == {"id", "total"}
    finally:
        server.stop()


def test_cli_serve_prints_ready_and_serves(tmp_path: Path) -> None:
    env = dict(os.environ, CWQBO_HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "cwqbo", "sandbox", "serve", "--port", "0", "--invoices", "5",
                             "--state", str(tmp_path / "s.json")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        if not ready:
            pytest.fail("sandbox serve printed nothing within 15 s: " + (proc.stderr.read() if proc.poll() else ""))
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert line.startswith("READY http://127.0.0.1:"), line + (proc.stderr.read() if proc.poll() else "")
        url = line.split()[1]
        assert cw_client(url).get("/finance/invoices/count").json() == {"count": 5}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_rejects_a_bad_country(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cwqbo.cli.main import app

    result = CliRunner().invoke(app, ["sandbox", "serve", "--country", "FR", "--port", "0"],
                                env={"CWQBO_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "US or CA" in (result.output + str(result.exception))


def test_a_request_cut_off_mid_body_is_never_handled() -> None:
    """A client killed while sending: the server must not answer (or remember, under its requestid) half a body."""
    import socket

    box = Sandbox(invoices=5)
    seen: list[str] = []
    real = box.handle

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return real(request)

    with LoopbackServer(handle).start() as server:
        host, port = server.url.split("://", 1)[1].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"POST /v3/company/9341453000000000/invoice?requestid=cut-1 HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                         b'{"Line": [')
        time.sleep(0.2)
    assert seen == []
