"""QBOClient against the in-process QBO simulator: writes, faults, batch, idempotent retries, 429s, 401s."""

from __future__ import annotations

import threading
from pathlib import Path
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cwqbo.clock import ManualClock
from cwqbo.errors import AuthError, PermissionDenied, RemoteError
from cwqbo.quickbooks import query as q
from cwqbo.quickbooks.client import BatchOp, QBOClient, QBOError
from cwqbo.quickbooks.throttle import Throttle
from cwqbo.sandbox.bridge import in_process_transport
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

REALM = "9341453000000000"
D = Decimal


class SimTokens:
    """A TokenSource backed by the simulator's grant shortcut."""

    def __init__(self, sim: QBOSimulator) -> None:
        self.sim = sim
        self.token = sim.issue_tokens()["access_token"]
        self.refreshes = 0

    def access_token(self) -> str:
        return self.token

    def force_refresh(self) -> str:
        self.refreshes += 1
        self.token = self.sim.issue_tokens()["access_token"]
        return self.token


def sim_transport(sim: QBOSimulator, seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    """MockTransport over the simulator; a simulated drop surfaces as httpx.ReadError, as over a socket."""

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return sim.handle(request)

    return in_process_transport(handle)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def sim(clock: ManualClock, faults: Faults) -> QBOSimulator:
    return QBOSimulator(clock, faults)


@pytest.fixture
def seen() -> list[httpx.Request]:
    return []


@pytest.fixture
def tokens(sim: QBOSimulator) -> SimTokens:
    return SimTokens(sim)


@pytest.fixture
def qbo(sim: QBOSimulator, clock: ManualClock, tokens: SimTokens, seen: list[httpx.Request]) -> QBOClient:
    http = httpx.Client(transport=sim_transport(sim, seen))
    return QBOClient("http://sim.test", REALM, tokens, clock=clock, client=http)


def invoice(customer_id: str, amount: str = "100.00", **extra: Any) -> dict[str, Any]:
    return {"CustomerRef": {"value": customer_id}, **extra,
            "Line": [{"Amount": D(amount), "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}}}]}


def customer(qbo: QBOClient, name: str = "Amy's Bird Sanctuary") -> dict[str, Any]:
    return qbo.create("Customer", {"DisplayName": name}, request_id=f"cust-{name}"[:50]).obj


# --- basics ------------------------------------------------------------------------------------------


def test_create_read_update_void_round_trip_with_exact_money_and_tids(qbo: QBOClient, sim: QBOSimulator,
                                                                       seen: list[httpx.Request]) -> None:
    cust = customer(qbo)
    created = qbo.create("Invoice", invoice(cust["Id"], "1234.56", DocNumber="CW-1"), request_id="inv-1")
    assert created.tid and created.tid.startswith("1-")
    assert created.obj["TotalAmt"] == D("1234.56")
    assert isinstance(created.obj["TotalAmt"], Decimal)
    req = seen[-1]
    assert req.headers["authorization"].startswith("Bearer ") and req.headers["accept"] == "application/json"
    assert req.url.params["minorversion"] == "75" and req.url.params["requestid"] == "inv-1"

    read = qbo.read("Invoice", created.obj["Id"])
    assert read.obj["DocNumber"] == "CW-1" and read.tid and read.tid != created.tid

    updated = qbo.update("Invoice", {"Id": read.obj["Id"], "SyncToken": read.obj["SyncToken"],
                                     "PrivateNote": "synced by cwqbo"}, request_id="upd-1")
    assert updated.obj["PrivateNote"] == "synced by cwqbo" and updated.obj["SyncToken"] == "1"
    assert updated.obj["Line"][0]["Amount"] == created.obj["Line"][0]["Amount"]  # sparse: lines kept

    voided = qbo.void("Invoice", updated.obj["Id"], updated.obj["SyncToken"], request_id="void-1")
    assert voided.obj["TotalAmt"] == 0 and "Voided" in voided.obj["PrivateNote"]
    assert seen[-1].url.params["operation"] == "void"
    assert sim.get("Invoice", created.obj["Id"])["TotalAmt"] == 0


def test_stale_sync_token_is_surfaced_as_5010(qbo: QBOClient) -> None:
    cust = customer(qbo)
    inv = qbo.create("Invoice", invoice(cust["Id"]), request_id="inv-1").obj
    qbo.update("Invoice", {"Id": inv["Id"], "SyncToken": "0", "PrivateNote": "first"}, request_id="u-1")
    with pytest.raises(QBOError) as info:
        qbo.update("Invoice", {"Id": inv["Id"], "SyncToken": "0", "PrivateNote": "second"}, request_id="u-2")
    err = info.value
    assert err.code == "5010" and err.status == 400 and err.tid
    assert err.fault is not None and err.fault.message == "Stale Object Error"
    assert "5010" in str(err) and "\n" not in str(err)
    assert err.exit_code == 4


def test_duplicate_doc_number_is_a_fault_with_code_6140(qbo: QBOClient, sim: QBOSimulator) -> None:
    cust = customer(qbo)
    qbo.create("Invoice", invoice(cust["Id"], DocNumber="CW-7"), request_id="a")
    with pytest.raises(QBOError) as info:
        qbo.create("Invoice", invoice(cust["Id"], DocNumber="CW-7"), request_id="b")
    assert info.value.has_code("6140") and "DocNumber=CW-7" in info.value.faults[0].detail
    assert len(sim.documents("Invoice")) == 1


def test_query_escapes_quotes_and_backslashes(qbo: QBOClient) -> None:
    weird = "O'Brien \\ Sons"
    cust = customer(qbo, weird)
    rows = qbo.query(q.select("Customer", q.eq("DisplayName", weird)))
    assert [r["Id"] for r in rows] == [cust["Id"]]
    assert qbo.query(q.select("Customer", q.eq("DisplayName", "nobody"))) == []


def test_query_all_pages_through_everything(qbo: QBOClient, sim: QBOSimulator) -> None:
    for i in range(25):
        sim.add("Customer", {"DisplayName": f"Cust {i:03d}"})
    before = qbo.calls
    rows = qbo.query_all("Customer", page_size=10)
    assert len(rows) == 25 and len({r["Id"] for r in rows}) == 25
    assert qbo.calls - before == 3


def test_query_all_refuses_a_server_that_repeats_a_page(tokens: SimTokens, clock: ManualClock) -> None:
    """A server ignoring STARTPOSITION answers every page with the first one: stop, don't loop or duplicate."""
    starts: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        statement = request.url.params["query"]
        starts.append(statement.split("STARTPOSITION")[1].split()[0])
        rows = [{"Id": str(i), "Name": f"T{i}"} for i in range(1, 3)]
        return httpx.Response(200, json={"QueryResponse": {"Term": rows, "startPosition": 1, "maxResults": 2}})

    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, client=httpx.Client(transport=httpx.MockTransport(handle)))
    with pytest.raises(RemoteError, match=r"QuickBooks Online sent the same page again for /query \(Term\)") as info:
        qbo.query_all("Term", page_size=2)
    assert starts == ["1", "3"] and info.value.exit_code == 4


def test_long_query_goes_as_post(qbo: QBOClient, seen: list[httpx.Request]) -> None:
    names = [f"Customer with a long name number {i}" for i in range(60)]
    assert qbo.query(q.select("Customer", q.in_("DisplayName", names))) == []
    assert seen[-1].method == "POST" and seen[-1].headers["content-type"] == "application/text"


def test_preferences_and_company_info(qbo: QBOClient) -> None:
    prefs = qbo.preferences()
    assert prefs.obj["SalesFormsPrefs"]["CustomTxnNumbers"] is True and prefs.tid
    info = qbo.company_info()
    assert info.obj["Id"] == REALM and info.obj["Country"] == "US"


def test_read_missing_object_is_a_610_fault(qbo: QBOClient) -> None:
    with pytest.raises(QBOError) as info:
        qbo.read("Invoice", "999")
    assert info.value.code == "610"


# --- batch -------------------------------------------------------------------------------------------


def test_batch_of_30_with_one_failing_item(qbo: QBOClient, sim: QBOSimulator) -> None:
    cust = customer(qbo)
    ops = [BatchOp.create(f"b{i}", "Invoice", invoice(cust["Id"], f"{i}.01", DocNumber=f"B-{i}")) for i in range(29)]
    ops.append(BatchOp.create("dup", "Invoice", invoice(cust["Id"], DocNumber="B-3")))
    results = qbo.batch(ops, request_id="batch-1")
    assert set(results) == {op.bid for op in ops}
    assert all(results[f"b{i}"].ok and results[f"b{i}"].obj["DocNumber"] == f"B-{i}" for i in range(29))
    assert results["b7"].entity == "Invoice" and results["b7"].obj["TotalAmt"] == D("7.01")
    bad = results["dup"]
    assert not bad.ok and bad.faults[0].code == "6140" and bad.tid
    with pytest.raises(QBOError):
        bad.raise_for_fault()
    assert qbo.batch_calls == 1 and len(sim.documents("Invoice")) == 29


def test_batch_query_void_and_limits(qbo: QBOClient) -> None:
    cust = customer(qbo)
    inv = qbo.create("Invoice", invoice(cust["Id"]), request_id="i1").obj
    results = qbo.batch([BatchOp.select("q", q.select("Customer", q.eq("Id", cust["Id"]))),
                         BatchOp.void("v", "Invoice", inv["Id"], inv["SyncToken"])])
    assert [r["Id"] for r in results["q"].rows or []] == [cust["Id"]]
    assert results["v"].obj is not None and results["v"].obj["TotalAmt"] == 0
    with pytest.raises(ValueError, match="at most 30"):
        qbo.batch([BatchOp.select(f"q{i}", "select * from Term") for i in range(31)])
    with pytest.raises(ValueError, match="unique"):
        qbo.batch([BatchOp.select("x", "select * from Term")] * 2)


# --- retries -----------------------------------------------------------------------------------------


def test_dropped_connection_after_commit_is_retried_with_same_requestid_no_duplicate(
        qbo: QBOClient, sim: QBOSimulator, faults: Faults, seen: list[httpx.Request]) -> None:
    cust = customer(qbo)
    faults.drop_after_commit_next = 1
    result = qbo.create("Invoice", invoice(cust["Id"], DocNumber="D-1"), request_id="drop-1")
    assert result.obj["DocNumber"] == "D-1"
    assert [i["DocNumber"] for i in sim.documents("Invoice")] == ["D-1"]
    posts = [r for r in seen if r.method == "POST" and r.url.path.endswith("/invoice")]
    assert len(posts) == 2 and {r.url.params["requestid"] for r in posts} == {"drop-1"}


def test_5xx_on_write_is_retried_with_same_requestid(qbo: QBOClient, sim: QBOSimulator, faults: Faults,
                                                     seen: list[httpx.Request], clock: ManualClock) -> None:
    cust = customer(qbo)
    faults.error_next = 2
    start = clock.now()
    result = qbo.create("Invoice", invoice(cust["Id"]), request_id="r-5xx")
    assert result.obj["Id"] and len(sim.documents("Invoice")) == 1
    assert [r.url.params.get("requestid") for r in seen[-3:]] == ["r-5xx"] * 3
    assert clock.now() > start  # backed off on the clock, not in real time


def test_persistent_5xx_gives_up_with_a_remote_error(qbo: QBOClient, faults: Faults) -> None:
    faults.error_next = 100
    with pytest.raises(QBOError) as info:
        qbo.preferences()
    assert info.value.status == 503 and info.value.code == "10000" and "after 6 attempts" in str(info.value)
    assert qbo.calls == qbo.policy.attempts == 6 and qbo.retries == 5


def test_timeouts_are_retried(qbo: QBOClient, faults: Faults) -> None:
    faults.timeout_next = 2
    assert qbo.preferences().obj["Id"] == "1"
    assert qbo.calls == 3


def test_unreachable_service_is_a_remote_error(tokens: SimTokens, clock: ManualClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, client=httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(RemoteError, match="could not be reached") as info:
        qbo.read("Invoice", "1")
    assert info.value.exit_code == 4 and qbo.calls == 6


def test_only_transient_statuses_are_retried(tokens: SimTokens, clock: ManualClock) -> None:
    statuses = iter([502, 504, 500, 501])
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(status := next(statuses))
        return httpx.Response(status, json={"Fault": {"Error": [{"code": "10000", "Message": "boom"}]}})

    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, client=httpx.Client(transport=httpx.MockTransport(handle)))
    with pytest.raises(QBOError) as info:
        qbo.read("Invoice", "1")
    assert calls == [502, 504, 500, 501]  # 501 Not Implemented is not going to change on a retry
    assert info.value.status == 501 and "attempts" not in str(info.value)


def test_429_storm_finishes_and_respects_retry_after(qbo: QBOClient, faults: Faults, clock: ManualClock,
                                                    sim: QBOSimulator) -> None:
    cust = customer(qbo)
    faults.throttle_next = 12  # more 429s than the 6 attempts failures get: throttling has its own budget
    start = clock.now()
    result = qbo.create("Invoice", invoice(cust["Id"]), request_id="storm")
    assert result.obj["Id"] and len(sim.documents("Invoice")) == 1
    assert qbo.throttle.throttled == 12 and qbo.retries == 12
    assert clock.now() - start >= 12  # backed off (on the manual clock) between attempts


def test_retry_after_header_sets_the_wait(tokens: SimTokens, clock: ManualClock, sim: QBOSimulator) -> None:
    hits: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        hits.append(clock.now())
        if len(hits) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")
        return sim.handle(request)

    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, client=httpx.Client(transport=httpx.MockTransport(handle)))
    qbo.preferences()
    assert hits[1] - hits[0] == pytest.approx(7)


class RecordingThrottle(Throttle):
    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.holds: list[float] = []

    def on_429(self, hold: float) -> float:
        self.holds.append(hold)
        return super().on_429(hold)


def test_a_429_holds_every_request_of_the_realm_for_the_policys_wait(tokens: SimTokens, clock: ManualClock,
                                                                      sim: QBOSimulator) -> None:
    statuses = iter([429, 429])

    def handle(request: httpx.Request) -> httpx.Response:
        status = next(statuses, None)
        if status is None:
            return sim.handle(request)
        return httpx.Response(429, headers={"Retry-After": "20"} if not throttle.holds else {}, text="slow down")

    throttle = RecordingThrottle(clock)
    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, throttle=throttle,
                    client=httpx.Client(transport=httpx.MockTransport(handle)))
    qbo.preferences()
    p = qbo.policy
    assert throttle.holds[0] == 20  # Retry-After, for every thread that shares this client's throttle
    assert p.wait_initial * p.wait_exp_base <= throttle.holds[1] <= p.wait_initial * p.wait_exp_base + p.wait_jitter


def test_old_style_403_throttle_is_treated_as_a_429(tokens: SimTokens, clock: ManualClock, sim: QBOSimulator) -> None:
    hits: list[float] = []
    body = ('<IntuitResponse xmlns="http://schema.intuit.com/finance/v3"><Fault type="SERVICE">'
            '<Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; statusCode=403</Message>'
            '</Error></Fault></IntuitResponse>')

    def handle(request: httpx.Request) -> httpx.Response:
        hits.append(clock.now())
        if len(hits) <= 2:
            return httpx.Response(403, text=body, headers={"Content-Type": "application/xml"})
        return sim.handle(request)

    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, client=httpx.Client(transport=httpx.MockTransport(handle)))
    assert qbo.preferences().obj["Id"] == "1"
    assert len(hits) == 3 and qbo.throttle.throttled == 2


def test_endless_429_gives_up(qbo: QBOClient, faults: Faults, clock: ManualClock) -> None:
    faults.throttle_next = 10_000
    start = clock.now()
    with pytest.raises(QBOError, match="kept throttling") as info:
        qbo.preferences()
    assert info.value.status == 429 and info.value.code == "3001" and info.value.exit_code == 4
    assert clock.now() - start <= qbo.policy.throttle_budget


def test_401_refreshes_once_then_retries(qbo: QBOClient, sim: QBOSimulator, tokens: SimTokens) -> None:
    sim.expire_access_tokens()
    assert qbo.preferences().obj["Id"] == "1"
    assert tokens.refreshes == 1


def test_401_after_refresh_is_an_auth_error(tokens: SimTokens, clock: ManualClock) -> None:
    calls: list[int] = []

    def deny(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(401, json={"fault": {"error": [{"message": "AuthenticationFailed", "code": "3200"}]}})

    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, client=httpx.Client(transport=httpx.MockTransport(deny)))
    with pytest.raises(AuthError) as info:
        qbo.read("Invoice", "1")
    assert info.value.exit_code == 3 and tokens.refreshes == 1 and len(calls) == 2


def test_wrong_realm_is_permission_denied(sim: QBOSimulator, tokens: SimTokens, clock: ManualClock) -> None:
    qbo = QBOClient("http://sim.test/v3", "123", tokens, clock=clock, client=httpx.Client(transport=sim_transport(sim)))
    with pytest.raises(PermissionDenied, match="123") as info:  # HTTP 403 (3100), like a ConnectWise 403
        qbo.preferences()
    assert info.value.exit_code == 3 and qbo.calls == 1


def test_bad_request_ids_are_refused_before_sending(qbo: QBOClient) -> None:
    with pytest.raises(ValueError):
        qbo.create("Customer", {"DisplayName": "x"}, request_id="x" * 51)
    with pytest.raises(ValueError):
        qbo.create("Customer", {"DisplayName": "x"}, request_id="")
    assert qbo.calls == 0


def test_throttle_keeps_a_burst_under_the_simulator_limit(sim: QBOSimulator, tokens: SimTokens,
                                                          clock: ManualClock) -> None:
    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, throttle=Throttle(clock),
                    client=httpx.Client(transport=sim_transport(sim)))
    for _ in range(600):
        qbo.preferences()
    assert qbo.throttle.throttled == 0 and qbo.calls == 600


def test_throttle_uses_the_whole_batch_budget_without_a_429(sim: QBOSimulator, tokens: SimTokens,
                                                            clock: ManualClock) -> None:
    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, throttle=Throttle(clock),
                    client=httpx.Client(transport=sim_transport(sim)))
    start = clock.now()
    for i in range(120):
        qbo.batch([BatchOp.select("q", "select * from Customer")], request_id=f"burst-{i}")
    assert qbo.throttle.throttled == 0 and qbo.calls == 120
    assert clock.now() - start < 2 * 61 + 1, "40 batch calls a minute, not 38"


def test_concurrent_writes_from_threads_are_all_created_once(qbo: QBOClient, sim: QBOSimulator,
                                                             faults: Faults) -> None:
    cust = customer(qbo)
    faults.update({"error_rate": 0.2, "seed": 3})
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                qbo.create("Invoice", invoice(cust["Id"], DocNumber=f"T{n}-{i}"), request_id=f"t{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    faults.error_rate = 0.0
    assert errors == []
    docs = sorted(i["DocNumber"] for i in sim.documents("Invoice"))
    assert docs == sorted(f"T{n}-{i}" for n in range(8) for i in range(5))


# --- crash point and odd responses -------------------------------------------------------------------


class Killed(BaseException):
    """Stands in for SIGKILL at a crash point."""


def test_crash_after_write_response_then_rerun_with_same_requestid_creates_no_duplicate(
        qbo: QBOClient, sim: QBOSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    cust = customer(qbo)
    hits: list[str] = []

    def crash(name: str) -> None:
        hits.append(name)
        raise Killed(name)

    monkeypatch.setattr("cwqbo.quickbooks.client.crashpoint", crash)
    with pytest.raises(Killed):
        qbo.create("Invoice", invoice(cust["Id"], DocNumber="K-1"), request_id="kill-1")
    assert hits == ["qbo.after_write_response"]
    assert len(sim.documents("Invoice")) == 1  # QBO committed; we never read the answer
    with pytest.raises(Killed):
        qbo.batch([BatchOp.create("x", "Invoice", invoice(cust["Id"], DocNumber="K-2"))], request_id="kb-1")
    monkeypatch.undo()
    again = qbo.create("Invoice", invoice(cust["Id"], DocNumber="K-1"), request_id="kill-1")
    assert again.obj["DocNumber"] == "K-1"
    redo = qbo.batch([BatchOp.create("x", "Invoice", invoice(cust["Id"], DocNumber="K-2"))], request_id="kb-1")
    assert redo["x"].obj is not None and redo["x"].obj["DocNumber"] == "K-2"
    assert sorted(i["DocNumber"] for i in sim.documents("Invoice")) == ["K-1", "K-2"]


def test_reads_do_not_hit_the_write_crash_point(qbo: QBOClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cwqbo.quickbooks.client.crashpoint", lambda name: (_ for _ in ()).throw(Killed(name)))
    qbo.preferences()
    qbo.query(q.select("Term"))


def test_unreadable_success_response_is_a_clear_error(tokens: SimTokens, clock: ManualClock) -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>", headers={"Content-Type": "text/html",
                                                                             "intuit_tid": "tid-9"})

    qbo = QBOClient("http://sim.test", REALM, tokens, clock=clock, client=httpx.Client(transport=httpx.MockTransport(html)))
    with pytest.raises(QBOError, match="unreadable response") as info:
        qbo.preferences()
    assert info.value.tid == "tid-9"


def test_query_syntax_error_is_a_4000_fault(qbo: QBOClient) -> None:
    with pytest.raises(QBOError) as info:
        qbo.query("SELECT * FROM Invoice WHERE")
    assert info.value.code == "4000"


# --- pinned request shapes (cassettes/quickbooks/client_flow.yaml) ------------------------------------

CASSETTE = Path(__file__).resolve().parents[2] / "cassettes" / "quickbooks" / "client_flow.yaml"
MATCH_ON = ["method", "scheme", "host", "path", "query", "body"]


def client_flow(qbo: QBOClient) -> dict[str, Any]:
    """A create → query → read → update → void → batch flow; recorded once against the simulator."""
    cust = qbo.create("Customer", {"DisplayName": "Amy's Bird Sanctuary"}, request_id="flow-cust-1").obj
    inv = qbo.create("Invoice", invoice(cust["Id"], "1234.56", DocNumber="CW-1001"), request_id="flow-inv-1")
    rows = qbo.query(q.select("Invoice", q.eq("DocNumber", "CW-1001")))
    read = qbo.read("Invoice", inv.obj["Id"]).obj
    upd = qbo.update("Invoice", {"Id": read["Id"], "SyncToken": read["SyncToken"], "PrivateNote": "cw:1001"},
                     request_id="flow-upd-1").obj
    void = qbo.void("Invoice", upd["Id"], upd["SyncToken"], request_id="flow-void-1").obj
    batch = qbo.batch([BatchOp.create("a", "Invoice", invoice(cust["Id"], "10.00", DocNumber="CW-1002")),
                       BatchOp.select("q", q.select("Customer", q.eq("DisplayName", "Amy's Bird Sanctuary")))],
                      request_id="flow-batch-1")
    return {"inv": inv, "rows": rows, "upd": upd, "void": void, "batch": batch}


def record_client_flow() -> None:  # pragma: no cover - run by hand to refresh the cassette
    """`python -c 'import sys; sys.path.insert(0, "tests/contract"); import test_qbo_client as t; t.record_client_flow()'`"""
    import vcr

    sim = QBOSimulator(ManualClock(), Faults())
    qbo = QBOClient("http://sim.test", REALM, SimTokens(sim), clock=ManualClock(),
                    client=httpx.Client(transport=sim_transport(sim)))
    CASSETTE.parent.mkdir(parents=True, exist_ok=True)
    CASSETTE.unlink(missing_ok=True)
    with vcr.VCR(filter_headers=["authorization"]).use_cassette(str(CASSETTE), record_mode="all", match_on=MATCH_ON):
        client_flow(qbo)


def test_request_shapes_match_the_recorded_cassette(clock: ManualClock) -> None:
    vcr = pytest.importorskip("vcr")
    if not CASSETTE.exists():
        pytest.skip("cassette not recorded")

    def offline(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"request not in the cassette: {request.method} {request.url}")

    qbo = QBOClient("http://sim.test", REALM, StaticTokensForReplay(), clock=clock,
                    client=httpx.Client(transport=httpx.MockTransport(offline)))
    with vcr.VCR().use_cassette(str(CASSETTE), record_mode="none", match_on=MATCH_ON,
                                allow_playback_repeats=False) as cassette:
        out = client_flow(qbo)
        assert cassette.all_played
    assert out["inv"].obj["TotalAmt"] == D("1234.56") and out["inv"].tid
    assert [r["DocNumber"] for r in out["rows"]] == ["CW-1001"]
    assert out["upd"]["PrivateNote"] == "cw:1001" and out["void"]["TotalAmt"] == 0
    assert out["batch"]["a"].obj is not None and out["batch"]["a"].obj["TotalAmt"] == D("10.00")
    assert [r["DisplayName"] for r in out["batch"]["q"].rows or []] == ["Amy's Bird Sanctuary"]


class StaticTokensForReplay:
    def access_token(self) -> str:
        return "replay"

    def force_refresh(self) -> str:
        return "replay"
