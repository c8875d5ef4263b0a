"""The HTTP policy both API clients share (cwqbo/http.py): one classifier, one Retry-After parser, one backoff
with jitter driven by stamina, waits on the injected clock; and both clients map final errors the same way."""

from __future__ import annotations

import dataclasses
import email.utils
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import stamina

from cwqbo import http
from cwqbo.clock import ManualClock
from cwqbo.connectwise.client import CWClient
from cwqbo.errors import AuthError, CwqboError, PermissionDenied, RemoteError
from cwqbo.http import Retriable, RetryPolicy, is_retriable, parse_retry_after
from cwqbo.quickbooks.client import QBOClient

NOW = 1_780_000_000.0
REQ = httpx.Request("GET", "https://example.test/")


@pytest.fixture(autouse=True)
def _real_retries() -> Iterator[None]:
    """Other suites may put stamina in testing mode; these tests count real attempts."""
    was_active = stamina.is_active()
    with stamina.set_testing(False):
        stamina.set_active(True)
        yield
    stamina.set_active(was_active)


# -- the classifier --------------------------------------------------------------------------------------

NEVER_SENT = [httpx.ConnectError("refused", request=REQ), httpx.ConnectTimeout("slow", request=REQ),
              httpx.PoolTimeout("pool", request=REQ)]
MAYBE_SENT = [httpx.ReadTimeout("slow", request=REQ), httpx.ReadError("reset", request=REQ),
              httpx.WriteError("broken pipe", request=REQ), httpx.RemoteProtocolError("eof", request=REQ)]


@pytest.mark.parametrize("exc", NEVER_SENT, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("idempotent", [True, False])
def test_a_request_that_never_left_is_always_retriable(exc: httpx.TransportError, idempotent: bool) -> None:
    assert http.never_sent(exc)
    assert is_retriable(exc, idempotent=idempotent)


@pytest.mark.parametrize("exc", MAYBE_SENT, ids=lambda e: type(e).__name__)
def test_a_transport_error_after_sending_is_retriable_only_when_idempotent(exc: httpx.TransportError) -> None:
    assert not http.never_sent(exc)
    assert is_retriable(exc, idempotent=True)
    assert not is_retriable(exc, idempotent=False)  # it may have committed: look before sending again


def test_an_unusable_url_is_never_retried() -> None:
    assert not is_retriable(httpx.UnsupportedProtocol("ftp", request=REQ), idempotent=True)


@pytest.mark.parametrize("status, idempotent, retriable", [
    (429, True, True), (429, False, True),  # refused before anything was done
    (500, True, True), (502, True, True), (503, True, True), (504, True, True),
    (500, False, False), (502, False, False), (503, False, False), (504, False, False),
    (501, True, False), (505, True, False), (400, True, False), (401, True, False), (403, True, False),
    (404, True, False), (409, True, False), (200, True, False),
])
def test_statuses(status: int, idempotent: bool, retriable: bool) -> None:
    assert is_retriable(status, idempotent=idempotent) is retriable


@pytest.mark.parametrize("status, kind", [(401, AuthError), (403, PermissionDenied), (400, RemoteError),
                                          (404, RemoteError), (500, RemoteError), (503, RemoteError)])
def test_error_class(status: int, kind: type[CwqboError]) -> None:
    assert http.error_class(status) is kind


def test_response_and_transport_failures() -> None:
    throttled = http.response_failure(httpx.Response(429, headers={"Retry-After": "9"}), idempotent=False, now=NOW)
    assert throttled is not None and throttled.throttled and throttled.retry_after == 9 and throttled.status == 429
    assert http.response_failure(httpx.Response(503), idempotent=False, now=NOW) is None
    down = http.response_failure(httpx.Response(503), idempotent=True, now=NOW)
    assert down is not None and down.reason == "HTTP 503" and down.retry_after is None and not down.throttled
    assert http.transport_failure(MAYBE_SENT[0], idempotent=False) is None
    lost = http.transport_failure(NEVER_SENT[0], idempotent=False, reason="cannot connect")
    assert lost is not None and lost.reason == "cannot connect" and lost.status is None


# -- Retry-After ---------------------------------------------------------------------------------------------

def _date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize("value, seconds", [
    ("7", 7.0), (" 7 ", 7.0), ("1.5", 1.5), ("0", 0.0), ("-3", 0.0),  # never negative
    ("100000", http.MAX_RETRY_AFTER),  # capped
    (_date(30), 30.0), (_date(-30), 0.0), (_date(10_000), http.MAX_RETRY_AFTER),  # the HTTP-date form
    (email.utils.formatdate(NOW + 45, usegmt=False).replace("+0000", "-0000"), 45.0),  # no zone: UTC
    (None, None), ("", None), ("soon", None), ("nan", None), ("inf", None), ("Mon, 99 Foo 2026 99:99:99 GMT", None),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    got = parse_retry_after(value, NOW)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_parse_retry_after_cap_is_adjustable() -> None:
    assert parse_retry_after("600", NOW, cap=60) == 60
    assert parse_retry_after(_date(90), NOW, cap=600) == pytest.approx(90)


# -- the backoff ---------------------------------------------------------------------------------------------

def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    p = RetryPolicy(wait_initial=1.0, wait_exp_base=2.0, wait_jitter=0.5, wait_max=10.0)
    for n, low in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        waits = [p.backoff(n) for _ in range(200)]
        assert all(low <= w <= min(low + 0.5, 10.0) for w in waits)
        assert len(set(waits)) > 1  # jittered: two retries don't fire in lockstep
    assert {p.backoff(5), p.backoff(50), p.backoff(5000)} == {10.0}  # capped, no overflow
    assert RetryPolicy(wait_jitter=0).backoff(3) == RetryPolicy().wait_initial * 4


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"wait_initial": -1}, {"wait_exp_base": 0.5},
                                 {"throttle_budget": -1}])
def test_bad_policies_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


# -- the attempt loop ----------------------------------------------------------------------------------------

class Script:
    """An attempt function that fails with the given outcomes, then returns "ok"."""

    def __init__(self, *outcomes: BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return "ok"


class GaveUp(Exception):
    def __init__(self, last: Retriable) -> None:
        super().__init__(f"gave up after {last.attempts}: {last.reason}")
        self.last = last


def run(script: Callable[[], str], clock: ManualClock, policy: RetryPolicy = http.RETRY_POLICY,
        retried: list[tuple[str, float]] | None = None) -> str:
    return policy.call(script, clock=clock, label="test GET /x", give_up=GaveUp,
                       on_retry=(lambda f, w: retried.append((f.reason, w))) if retried is not None else None)


def test_retries_then_succeeds_waiting_on_the_clock() -> None:
    clock = ManualClock(0.0)
    retried: list[tuple[str, float]] = []
    script = Script(Retriable("HTTP 503", status=503), Retriable("ReadTimeout"), Retriable("HTTP 502", status=502))
    assert run(script, clock, retried=retried) == "ok"
    assert script.calls == 4 and [r for r, _ in retried] == ["HTTP 503", "ReadTimeout", "HTTP 502"]
    assert clock.now() == pytest.approx(sum(w for _, w in retried)) and clock.now() > 0


def test_gives_up_after_the_attempts_with_the_last_failure() -> None:
    clock = ManualClock(0.0)
    script = Script(*[Retriable(f"HTTP 50{i % 4}", status=500 + i % 4) for i in range(10)])
    with pytest.raises(GaveUp, match="gave up after 6: HTTP 501") as info:
        run(script, clock)
    assert script.calls == 6 and info.value.last.attempts == 6
    assert isinstance(info.value.__cause__, Retriable)


def test_a_fatal_error_is_not_retried() -> None:
    script = Script(Retriable("HTTP 503", status=503), AuthError("no"))
    with pytest.raises(AuthError):
        run(script, ManualClock(0.0))
    assert script.calls == 2


def test_retry_after_replaces_the_backoff() -> None:
    clock = ManualClock(0.0)
    script = Script(Retriable("HTTP 503", status=503, retry_after=17), Retriable("HTTP 429", status=429, retry_after=3))
    run(script, clock)
    assert clock.now() == pytest.approx(20)


def test_429s_spend_a_time_budget_not_the_attempts() -> None:
    clock = ManualClock(0.0)
    policy = RetryPolicy(attempts=2, throttle_budget=100, max_throttled=50)
    script = Script(*[Retriable("HTTP 429", status=429, retry_after=10) for _ in range(9)], Retriable("HTTP 503", status=503))
    assert run(script, clock, policy) == "ok"  # nine 429s and one failure, with attempts=2
    assert 90 + policy.wait_initial <= clock.now() <= 90 + policy.wait_initial + policy.wait_jitter

    endless = Script(*[Retriable("HTTP 429", status=429, retry_after=30) for _ in range(100)])
    clock = ManualClock(0.0)
    with pytest.raises(GaveUp) as info:
        run(endless, clock, policy)
    assert endless.calls == 4 and clock.now() == pytest.approx(90)  # a 4th wait would pass the 100 s budget
    assert info.value.last.throttled


def test_429s_without_a_wait_stop_at_max_throttled() -> None:
    script = Script(*[Retriable("HTTP 429", status=429, retry_after=0) for _ in range(100)])
    with pytest.raises(GaveUp):
        run(script, ManualClock(0.0), RetryPolicy(max_throttled=5))
    assert script.calls == 6


def test_stamina_drives_the_loop_its_switches_apply() -> None:
    script = Script(Retriable("HTTP 503", status=503))
    stamina.set_active(False)  # stamina off: one attempt
    with pytest.raises(GaveUp):
        run(script, ManualClock(0.0))
    assert script.calls == 1
    stamina.set_active(True)

    clock = ManualClock(0.0)
    script = Script(*[Retriable("HTTP 503", status=503) for _ in range(2)])
    with stamina.set_testing(True, attempts=3):  # stamina's test mode: its attempts, no backoff
        assert run(script, clock) == "ok"
    assert script.calls == 3 and clock.now() == 0


def test_stamina_default_instrumentation_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "_stamina_quiet", False)  # as in a new process
    stamina.instrumentation.set_on_retry_hooks(None)  # stamina's defaults: logging (or structlog, prometheus)
    run(Script(Retriable("HTTP 503", status=503)), ManualClock(0.0))
    assert stamina.instrumentation.get_on_retry_hooks() == ()


# -- both clients classify final errors the same way -----------------------------------------------------------

class Tokens:
    def access_token(self) -> str:
        return "t"

    def force_refresh(self) -> str:
        return "t2"


def cw_call(handler: Callable[[httpx.Request], httpx.Response]) -> None:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    CWClient("na.myconnectwise.net", "acme", "pub", "priv", "cid", "v2026_1/", client=client,
             clock=ManualClock()).get_json("/finance/invoices")


def qbo_call(handler: Callable[[httpx.Request], httpx.Response]) -> None:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    QBOClient("http://qbo.test", "1", Tokens(), clock=ManualClock(), client=client).read("Invoice", "1")


def _status(code: int) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, content=json.dumps({"message": "no"}).encode())


def _raise(exc: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("down", request=request)

    return handler


@pytest.mark.parametrize("call", [cw_call, qbo_call], ids=["connectwise", "quickbooks"])
@pytest.mark.parametrize("handler, kind, exit_code", [
    (_status(401), AuthError, 3),
    (_status(403), PermissionDenied, 3),
    (_status(503), RemoteError, 4),
    (_status(500), RemoteError, 4),
    (_raise(httpx.ConnectError), RemoteError, 4),
    (_raise(httpx.ReadTimeout), RemoteError, 4),
], ids=["401", "403", "503", "500", "connect-error", "read-timeout"])
def test_both_clients_classify_errors_the_same_way(call: Callable[[Callable[[httpx.Request], httpx.Response]], None],
                                                    handler: Callable[[httpx.Request], httpx.Response],
                                                    kind: type[CwqboError], exit_code: int) -> None:
    with pytest.raises(kind) as info:
        call(handler)
    assert info.value.exit_code == exit_code


def test_the_default_policy_is_shared() -> None:
    cw = CWClient("na.myconnectwise.net", "acme", "pub", "priv", "cid", "v2026_1/", clock=ManualClock())
    qbo = QBOClient("http://qbo.test", "1", Tokens(), clock=ManualClock())
    assert cw.policy is qbo.policy is http.RETRY_POLICY
    custom = dataclasses.replace(http.RETRY_POLICY, attempts=2)
    assert QBOClient("http://qbo.test", "1", Tokens(), policy=custom).policy.attempts == 2


def test_a_client_neither_keeps_nor_sends_a_cookie_a_server_set() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "AWSALB=sticky; Path=/"}, json={})

    with http.new_client(transport=httpx.MockTransport(handler)) as client:
        client.get("https://api.example/one")
        client.get("https://api.example/two")
        assert not client.cookies
        with pytest.raises(ValueError, match="no cookies"):
            client.cookies = {"a": "b"}
    assert seen == [None, None]


@pytest.mark.parametrize(("url", "params"), [
    ("https://na.myconnectwise.net/v4_6_release/apis/3.0/finance/invoices",
     {"conditions": 'status/name in ("Closed", "Sent") and company/identifier = "O\'Brien & Co"',
      "pageSize": 1000, "page": 2, "orderBy": "id asc", "fields": "id,invoiceNumber,_info/lastUpdated"}),
    ("https://quickbooks.api.intuit.com/v3/company/123/query",
     {"minorversion": "75", "query": "SELECT * FROM Customer WHERE DisplayName IN ('Acme, Inc.', 'Zoë + Co')"}),
    ("https://quickbooks.api.intuit.com/v3/company/123/invoice", {"requestid": "0f8f-ad5b", "minorversion": "75"}),
    ("https://api.example/path?already=1", {"more": "2"}),  # a URL with its own query: httpx merges the two
    ("https://api.example/path", {}),
])
def test_a_request_url_is_what_httpx_itself_builds(url: str, params: dict[str, Any]) -> None:
    with http.new_client() as ours, httpx.Client() as stock:
        assert str(ours.build_request("GET", url, params=params).url) == str(
            stock.build_request("GET", url, params=params).url)
