"""On the wire: what a real `cwqbo sync --all` sends ConnectWise, recorded between the CLI and the loopback sandbox.

The recording proxy is a second loopback server whose handler notes every request and answer, then hands the
request to the sandbox. The CLI is connected to the proxy's address, exactly as it would be to a real site. The
request bodies are checked against ConnectWise's published request models (pyconnectwise), not against our own
simulator, so a body both sides got wrong still fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyconnectwise.models import manage as models

from cwqbo import money
from cwqbo.sandbox.bridge import LoopbackServer
from cwqbo.sandbox.server import Sandbox
from tests.e2e.harness import E2E, connect_home, expected_from

pytestmark = pytest.mark.e2e

ACCEPT = re.compile(r"^application/vnd\.connectwise\.com\+json; version=\d{4}\.\d+$")
API = "/apis/3.0"


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    answer: Any


@dataclass
class Recorder:
    sandbox: Sandbox
    log: list[Exchange] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        response = self.sandbox.handle(request)
        response.read()
        if API in request.url.path:
            self.log.append(Exchange(request.method, request.url.path.split(API, 1)[1], dict(request.headers),
                                     _json(request.content), response.status_code, _json(response.content)))
        return response

    def calls(self, method: str, path: str) -> list[Exchange]:
        return [x for x in self.log if x.method == method and x.path.rstrip("/").lower() == path.lower()]


def _json(raw: bytes) -> Any:
    try:
        return money.loads(raw) if raw.strip() else None
    except ValueError:
        return None


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[E2E, Recorder, Any]]:
    sandbox = Sandbox(seed=23, invoices=40)
    recorder = Recorder(sandbox)
    unposted_before = set(sandbox.cw.unposted_ids())
    with LoopbackServer(recorder.handle).start() as proxy:
        home = Path(tmp_path_factory.mktemp("wire"))
        connect_home(home, sandbox, proxy.url)
        expected, must_fail = expected_from(sandbox)
        e2e = E2E(home, sandbox, proxy.url, expected, must_fail)
        recorder.log.clear()  # only the sync itself
        result = e2e.run_cli("sync", "--all")
        yield e2e, recorder, (result, unposted_before)


def test_every_connectwise_request_carries_client_id_and_a_versioned_accept(wire: Any) -> None:
    _, recorder, _ = wire
    assert recorder.log
    for x in recorder.log:
        assert x.headers.get("clientid"), f"{x.method} {x.path} without clientId"
        assert ACCEPT.match(x.headers.get("accept", "")), f"{x.method} {x.path}: Accept {x.headers.get('accept')!r}"


def test_one_export_of_exactly_the_confirmed_invoices_then_one_batch_of_exactly_its_gl_entries(wire: Any) -> None:
    e2e, recorder, (result, _) = wire
    assert result.returncode == 1, result.stderr  # the seeded 30-character number fails, alone
    confirmed = {e2e.expected[i]["invoiceNumber"] for i in e2e.batchable}
    exports = recorder.calls("POST", "/finance/accounting/export")
    assert len(exports) == 1
    export = exports[0]
    assert export.status == 200
    numbers = [t["documentNumber"] for t in export.answer["transactions"]]
    assert sorted(numbers) == sorted(confirmed)
    cw = e2e.sandbox.cw
    assert sorted(export.body["includedInvoiceIds"]) == sorted(cw.unposted_row_id(i) for i in e2e.expected)
    gl_ids = sorted(int(g) for t in export.answer["transactions"] for g in str(t["glEntryIds"]).split(","))
    batches = recorder.calls("POST", "/finance/accounting/batches")
    assert len(batches) == 1
    assert batches[0].status in (200, 201)
    assert sorted(batches[0].body["processedRecordIds"]) == gl_ids
    assert not set(gl_ids) & set(e2e.expected), "GL entry ids never coincide with invoice ids"
    expected_gl = sorted(int(g["id"]) for i in e2e.batchable for g in cw.gl_entries_of(i))
    assert gl_ids == expected_gl, "the batch holds every GL entry of our invoices and nothing else"


def test_the_confirmed_invoices_leave_the_unposted_list_and_nothing_else_does(wire: Any) -> None:
    e2e, _, (_, unposted_before) = wire
    after = set(e2e.sandbox.cw.unposted_ids())
    assert after == unposted_before - e2e.batchable


def test_request_bodies_match_connectwise_published_request_models(wire: Any) -> None:
    _, recorder, _ = wire
    shapes = {"/finance/accounting/export": models.ExportAccountingBatchRequest,
              "/finance/accounting/batches": models.CreateAccountingBatchRequest}
    posted = [x for x in recorder.log if x.method in ("POST", "PUT", "PATCH")]
    assert posted
    for x in posted:
        model = shapes.get(x.path.rstrip("/").lower())
        assert model is not None, f"cwqbo sent {x.method} {x.path}, which this test doesn't know the model of"
        aliases = {f.alias or name for name, f in model.model_fields.items()}
        assert set(x.body) <= aliases, f"{x.path}: fields outside {model.__name__}: {set(x.body) - aliases}"
        model.model_validate(x.body)


def test_history_names_the_batch(wire: Any) -> None:
    e2e, _, _ = wire
    runs = e2e.json_of("history")["data"]["runs"]
    assert runs[0]["batch_identifier"].startswith("cwqbo-")
