"""CWClient against fake ConnectWise handlers shaped like the v3 API (../shared/reference/connectwise.md)."""

from __future__ import annotations

import base64
import email.utils
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import stamina

from cwqbo import http, money
from cwqbo.clock import ManualClock
from cwqbo.connectwise import permissions
from cwqbo.connectwise.accounting import Expected, check_export, decode_export, export_invoice_id, parse_gl_entry_ids
from cwqbo.connectwise.client import CWClient, api_base, fetch_company_info
from cwqbo.errors import AuthError, ConfigError, PermissionDenied, RemoteError

BASE = "https://api-na.myconnectwise.net/v2026_1/apis/3.0"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _real_retries() -> Any:
    """Other suites may put stamina in testing mode (1 attempt); these tests exercise real retry counts."""
    was_active = stamina.is_active()
    with stamina.set_testing(False):
        stamina.set_active(True)
        yield
    stamina.set_active(was_active)


def make(handler: Handler, clock: ManualClock | None = None) -> CWClient:
    return CWClient("na.myconnectwise.net", "acme", "pub", "priv", "client-guid", "v2026_1/",
                    client=httpx.Client(transport=httpx.MockTransport(handler)), clock=clock or ManualClock())


def jresp(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers)


def q(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}


# -- base URL and company info ---------------------------------------------------------------------

def test_api_base_cloud_onprem_and_loopback() -> None:
    assert api_base("na.myconnectwise.net", "v2026_1/") == BASE
    assert api_base("https://eu.myconnectwise.net/", "/v4_6_release/") == \
        "https://api-eu.myconnectwise.net/v4_6_release/apis/3.0"
    assert api_base("cw.example.com", "v2026_1/") == "https://cw.example.com/v2026_1/apis/3.0"
    assert api_base("127.0.0.1:8765", "v2026_1/", "http") == "http://127.0.0.1:8765/v2026_1/apis/3.0"
    with pytest.raises(ConfigError, match="refusing scheme"):
        api_base("cw.example.com", "v2026_1/", "http")
    with pytest.raises(ConfigError):
        api_base("bad host/with path", "v1/")


def test_fetch_company_info_ok_not_found_and_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "na.myconnectwise.net"
        if request.url.path.endswith("/acme"):
            return jresp(200, {"CompanyName": "Acme", "Codebase": "v2026_1/", "CompanyID": "acme"})
        return httpx.Response(200, content=b"null")

    c = httpx.Client(transport=httpx.MockTransport(handler))
    assert fetch_company_info("na.myconnectwise.net", "acme", client=c)["Codebase"] == "v2026_1/"
    with pytest.raises(ConfigError, match="ConnectWise company 'nope' not found on site na.myconnectwise.net"):
        fetch_company_info("na.myconnectwise.net", "nope", client=c)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("name resolution failed", request=request)

    # unreachable is "a service kept failing" (exit 4, naming the host and the error), not a config error (2)
    with pytest.raises(RemoteError, match="cannot reach ConnectWise at typo.example: ConnectError") as info:
        fetch_company_info("typo.example", "acme", client=httpx.Client(transport=httpx.MockTransport(down)))
    assert info.value.exit_code == 4


def test_fetch_company_info_uses_transport_override() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(404)

    http.set_transport_override(httpx.MockTransport(handler))
    try:
        with pytest.raises(ConfigError, match="not found"):
            fetch_company_info("127.0.0.1:9", "acme", scheme="http")
    finally:
        http.set_transport_override(None)
    assert seen == ["http://127.0.0.1:9/login/companyinfo/acme"]


# -- auth, headers, settings form -------------------------------------------------------------------

def test_basic_auth_and_client_id_header_and_settings_form() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return jresp(200, {"version": "v2026.1"})

    class Settings:
        site, company_id, public_key, client_id, scheme = "na.myconnectwise.net", "acme", "pub", "cid", "https"
        api_version = "2025.1"

    cl = CWClient(Settings(), "priv", "v2026_1/", client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert cl.get_json("/system/info") == {"version": "v2026.1"}  # what `connect connectwise` asks
    req = seen[0]
    assert str(req.url) == BASE + "/system/info"
    assert req.headers["clientId"] == "cid"
    assert req.headers["Accept"] == "application/vnd.connectwise.com+json; version=2025.1"
    assert base64.b64decode(req.headers["Authorization"].split()[1]) == b"acme+pub:priv"
    assert cl.calls == 1


def test_missing_credentials_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="private key"):
        CWClient("na.myconnectwise.net", "acme", "pub", "", "cid", "v1/")


# -- paging ---------------------------------------------------------------------------------------

def test_iter_pages_follows_link_headers_and_keeps_decimals() -> None:
    pages = {1: [{"id": 1, "total": 10.10}, {"id": 2, "total": 0.3}], 2: [{"id": 3, "total": 1e2}], 3: []}

    def handler(request: httpx.Request) -> httpx.Response:
        p = int(q(request).get("page", "1"))
        assert q(request)["conditions"] == "status/id in (3, 4)"
        links = []
        if p < 2:
            links.append(f'<{BASE}/finance/invoices?conditions=status%2Fid%20in%20%283%2C%204%29'
                         f'&page={p + 1}&pageSize=2>; rel="next"')
        links.append(f'<{BASE}/finance/invoices?page=2&pageSize=2>; rel="last"')
        return jresp(200, pages[p], {"Link": ", ".join(links)})

    cl = make(handler)
    got = list(cl.iter_pages("/finance/invoices", "status/id in (3, 4)", page_size=2))
    assert [r["id"] for r in got] == [1, 2, 3]
    assert got[0]["total"] == Decimal("10.10") and isinstance(got[1]["total"], Decimal)
    assert cl.calls == 2  # stopped when Link had no next, without fetching the empty page


def test_iter_pages_without_link_uses_page_numbers_until_short_page() -> None:
    data = [{"id": i} for i in range(1, 8)]
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(q(request))
        p, size = int(q(request)["page"]), int(q(request)["pageSize"])
        return jresp(200, data[(p - 1) * size: p * size])

    cl = make(handler)
    assert [r["id"] for r in cl.iter_pages("/time/entries", fields=["id", "invoice/id"], order_by="id asc",
                                           page_size=3)] == list(range(1, 8))
    assert [s["page"] for s in seen] == ["1", "2", "3"]
    assert seen[0]["fields"] == "id,invoice/id" and seen[0]["orderBy"] == "id asc"


def test_paging_takes_only_the_page_number_from_a_next_link() -> None:
    """Like pyconnectwise: the link's host and path are never followed, only its `page`."""
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        page = int(q(request)["page"])
        link = {"Link": '<https://elsewhere.example/steal?page=2&pageSize=1>; rel="next"'} if page == 1 else {}
        return jresp(200, [{"id": page}], link)

    assert [r["id"] for r in make(handler).iter_pages("/finance/invoices")] == [1, 2]
    assert {u.host for u in seen} == {"api-na.myconnectwise.net"}
    assert all(u.path.endswith("/finance/invoices") for u in seen)


def test_a_next_link_that_goes_back_is_refused_not_looped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return jresp(200, [{"id": 1}], {"Link": '<https://api-na.myconnectwise.net/x?page=1>; rel="next"'})

    with pytest.raises(RemoteError, match="points back to page 1") as info:
        list(make(handler).iter_pages("/finance/invoices"))
    assert "/finance/invoices" in str(info.value)


def test_a_page_repeating_the_previous_one_is_refused_not_looped() -> None:
    """A server that ignores `page` (and keeps linking to a next page) sends page 1 forever."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(q(request)["page"])
        calls.append(page)
        link = f'<{BASE}/time/entries?page={page + 1}&pageSize=2>; rel="next"'
        return jresp(200, [{"id": 1}, {"id": 2}], {"Link": link})

    seen: list[int] = []
    with pytest.raises(RemoteError, match="same page again for /time/entries") as info:
        for rec in make(handler).iter_pages("/time/entries", page_size=2):
            seen.append(rec["id"])
    assert seen == [1, 2] and calls == [1, 2]  # the repeated page is not handed on
    assert info.value.exit_code == 4


def test_a_full_page_without_links_repeating_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return jresp(200, [{"id": 7}, {"id": 8}])  # every page the same, always full

    with pytest.raises(RemoteError, match="ConnectWise sent the same page again for /finance/invoices"):
        list(make(handler).iter_pages("/finance/invoices", page_size=2))


def test_an_idempotent_get_is_retried_on_500_but_a_batch_post_is_not() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if request.method == "GET" and len(calls) == 1:
            return jresp(500, {"message": "An unexpected error occurred"})
        if request.method == "POST":
            return jresp(500, {"message": "An unexpected error occurred"})
        return jresp(200, {"version": "v2026.1"})

    cl = make(handler)
    assert cl.get_json("/system/info") == {"version": "v2026.1"}
    assert calls == ["GET", "GET"]
    with pytest.raises(RemoteError):
        cl.create_batch("cwqbo-x", [880001])
    assert calls.count("POST") == 1


# -- retries --------------------------------------------------------------------------------------

def test_429_retry_after_is_honoured_on_the_clock() -> None:
    clock = ManualClock(start=1000.0)
    n = {"calls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        n["calls"] += 1
        if n["calls"] <= 2:
            return jresp(429, {"code": "TooManyRequests", "message": "slow down"}, {"Retry-After": "7"})
        return jresp(200, [{"id": 1}])

    cl = make(handler, clock)
    assert list(cl.iter_pages("/finance/invoices")) == [{"id": 1}]
    assert n["calls"] == 3 and cl.calls == 3 and cl.retries == 2
    assert clock.now() == pytest.approx(1014.0)  # two waits of exactly Retry-After


def test_retry_after_as_an_http_date_is_honoured_on_the_clock() -> None:
    clock = ManualClock(start=1_780_000_000.0)
    when = email.utils.formatdate(1_780_000_000.0 + 30, usegmt=True)
    n = {"calls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        n["calls"] += 1
        return jresp(503, {}, {"Retry-After": when}) if n["calls"] == 1 else jresp(200, [])

    assert make(handler, clock).get_json("/finance/invoices") == []
    assert clock.now() == pytest.approx(1_780_000_030.0)


def test_backoff_without_retry_after_waits_on_the_clock_with_jitter() -> None:
    clock = ManualClock(start=0.0)
    hits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(clock.now())
        return jresp(502, {}) if len(hits) < 4 else jresp(200, [])

    make(handler, clock).get_json("/finance/invoices")
    waits = [b - a for a, b in zip(hits, hits[1:])]
    p = http.RETRY_POLICY
    for n, wait in enumerate(waits, start=1):  # stamina's formula: initial * 2^(n-1) + up to `jitter`
        low = p.wait_initial * p.wait_exp_base ** (n - 1)
        assert low <= wait <= low + p.wait_jitter


def test_503_and_timeouts_retry_then_give_up_as_remote_error() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] % 2:
            raise httpx.ReadTimeout("slow", request=request)
        return jresp(503, {"message": "maintenance"})

    cl = make(handler)
    with pytest.raises(RemoteError, match="kept failing on GET /system/info after 6 attempt") as ei:
        cl.get_json("/system/info")
    assert calls["n"] == http.RETRY_POLICY.attempts == 6
    assert ei.value.status == 503


def test_create_batch_sends_once_and_leaves_the_answer_undecoded() -> None:
    """The answer is a GLExport of everything batched (megabytes): the batch is verified by looking instead."""
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(201, content=b'{"transactions": [' + b'{"glEntryIds": "1"},' * 50_000 + b"")

    assert make(handler).create_batch("cwqbo-1", [12, 11]) is None  # a truncated answer is not even parsed
    assert len(bodies) == 1 and b'"processedRecordIds":[11,12]' in bodies[0]


def test_create_batch_refused_reports_connectwise_s_message_though_a_success_is_drained() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return jresp(400, {"code": "InvalidObject", "message": "batchIdentifier already in use"})

    with pytest.raises(RemoteError, match="batchIdentifier already in use") as err:
        make(handler).create_batch("cwqbo-1", [12])
    assert err.value.status == 400


def test_unposted_rows_ask_only_for_the_fields_that_link_them() -> None:
    asked: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(q(request))
        return jresp(200, [{"id": 7010, "billingLogId": 10, "invoiceNumber": "A"}])

    assert make(handler).unposted_rows([10])[10].number == "A"
    assert asked and all(a.get("fields") == "id,billingLogId,invoiceNumber" for a in asked)


def test_post_is_not_retried_after_possible_commit_but_is_after_429() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return jresp(503, {"message": "oops"})

    with pytest.raises(RemoteError):
        make(handler).post_json("/finance/accounting/batches", {"batchIdentifier": "x"})
    assert calls["n"] == 1

    calls["n"] = 0

    def throttled(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return jresp(429, {}) if calls["n"] == 1 else jresp(201, {"id": 9})

    assert make(throttled).post_json("/finance/accounting/batches", {"a": 1}) == {"id": 9}
    assert calls["n"] == 2

    calls["n"] = 0

    def refused(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)  # never reached ConnectWise: safe to resend
        return jresp(201, {"id": 10})

    assert make(refused).post_json("/finance/accounting/batches", {"a": 1}) == {"id": 10}
    assert calls["n"] == 2


def test_429s_do_not_use_up_the_attempts_but_a_throttle_budget() -> None:
    clock = ManualClock(start=0.0)
    n = {"calls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        n["calls"] += 1
        return jresp(429, {}, {"Retry-After": "30"}) if n["calls"] <= 10 else jresp(200, [])

    assert make(handler, clock).get_json("/finance/invoices") == []  # 10 throttles > 6 attempts: still fine
    assert clock.now() == pytest.approx(300.0)

    n["calls"] = 0
    forever = make(lambda r: jresp(429, {}, {"Retry-After": "120"}), ManualClock(start=0.0))
    with pytest.raises(RemoteError, match="HTTP 429") as info:
        forever.get_json("/finance/invoices")
    assert info.value.status == 429 and forever.calls == 6  # 5 waits of 120 s fill the 600 s budget


# -- error mapping --------------------------------------------------------------------------------

@pytest.mark.parametrize("path, area", [
    ("/time/entries", "Time Entry"),
    ("/expense/entries", "Expense Report Entry"),
    ("/finance/invoices", "Invoicing"),
    ("/finance/accounting/unpostedinvoices", "Accounting Interface"),
])
def test_403_names_the_security_area(path: str, area: str) -> None:
    cl = make(lambda r: jresp(403, {"code": "Forbidden", "message": "nope"}))
    with pytest.raises(PermissionDenied, match=area) as ei:
        cl.get_json(path)
    assert "cwqbo check-permissions" in (ei.value.hint or "")
    assert ei.value.exit_code == 3


def test_transport_errors_and_statuses_that_are_never_retried() -> None:
    calls = {"n": 0}

    def bad_scheme(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        raise httpx.UnsupportedProtocol("no", request=request)

    with pytest.raises(RemoteError, match="cannot reach ConnectWise"):
        make(bad_scheme).get_json("/system/info")
    assert calls["n"] == 1

    calls["n"] = 0

    def not_implemented(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return jresp(501, {"message": "nope"})

    with pytest.raises(RemoteError, match="HTTP 501"):
        make(not_implemented).get_json("/system/info")
    assert calls["n"] == 1


def test_401_400_and_500_mapping() -> None:
    with pytest.raises(AuthError) as ei:
        make(lambda r: jresp(401, {"message": "bad"})).get_json("/system/info")
    assert "cwqbo connect connectwise" in (ei.value.hint or "")

    body = {"code": "InvalidObject", "message": "conditions is invalid",
            "errors": [{"code": "InvalidField", "message": "Unknown field 'nme'", "field": "conditions"}]}
    with pytest.raises(RemoteError, match="conditions is invalid; Unknown field 'nme'") as e400:
        make(lambda r: jresp(400, body)).get_json("/finance/invoices")
    assert e400.value.status == 400

    with pytest.raises(RemoteError, match="not JSON"):
        make(lambda r: httpx.Response(200, content=b"<html>login</html>")).get_json("/system/info")

    with pytest.raises(RemoteError, match="HTTP 500") as e500:
        make(lambda r: jresp(500, {"message": "boom"})).get_json("/finance/invoices")
    assert e500.value.status == 500


# -- domain calls -----------------------------------------------------------------------------------

def test_detail_calls_chunk_ids_and_group_by_invoice() -> None:
    seen_urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_urls.append(str(request.url))
        cond = q(request)["conditions"]
        ids = [int(x) for x in cond.split("(", 1)[1].rstrip(")").split(",")]
        return jresp(200, [{"id": i * 10, "invoice": {"id": i}, "hoursBilled": 1.5} for i in ids])

    cl = make(handler)
    wanted = list(range(1_000_000, 1_003_000))
    got = cl.time_entries_for(wanted + [wanted[0]])
    assert sorted(got) == wanted
    assert all(len(v) == 1 and v[0]["hoursBilled"] == Decimal("1.5") for v in got.values())
    assert len(seen_urls) > 1
    assert max(len(u) for u in seen_urls) < 6144


def test_unposted_rows_export_and_batch_send_what_the_schema_says() -> None:
    posted: list[tuple[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2026_1/apis/3.0")
        if path == "/finance/billingStatuses":
            return jresp(200, [{"id": 1, "name": "New", "closedFlag": False},
                               {"id": 5, "name": "Closed", "closedFlag": True}])
        if path == "/finance/accounting/unpostedinvoices":
            assert q(request)["conditions"] == "billingLogId in (10, 11, 12)"
            return jresp(200, [{"id": 7010, "billingLogId": 10, "invoiceNumber": "A"},
                               {"id": 7012, "billingLogId": 12, "invoiceNumber": "C"}])
        if request.method == "POST":
            posted.append((path, json.loads(request.content)))
            return jresp(200 if path.endswith("export") else 201, {"transactions": []})
        if path == "/finance/accounting/batches/77/entries/count":  # pyconnectwise: model Count
            return jresp(200, {"count": 2})
        if path == "/finance/accounting/batches/77/entries":
            assert q(request)["fields"] == "id" and q(request)["page"] == "1"
            return jresp(200, [{"id": 880001}, {"id": 880002}])
        return jresp(404, {"message": "no route"})

    cl = make(handler)
    assert [s["id"] for s in cl.billing_statuses() if s["closedFlag"]] == [5]
    rows = cl.unposted_rows([12, 10, 11])
    assert sorted(rows) == [10, 12] and rows[10].row_id == 7010 and rows[12].number == "C"
    assert cl.unposted_invoice_ids([12, 10, 11]) == {10, 12}
    cl.export_invoices("cwqbo-1", [7012, 7010])
    cl.create_batch("cwqbo-1", [880002, 880001])
    assert posted == [
        ("/finance/accounting/export", {"batchIdentifier": "cwqbo-1", "exportInvoicesFlag": True,
                                        "exportExpensesFlag": False, "exportProductsFlag": False,
                                        "includedInvoiceIds": [7010, 7012]}),
        ("/finance/accounting/batches", {"batchIdentifier": "cwqbo-1", "exportInvoicesFlag": True,
                                         "exportExpensesFlag": False, "exportProductsFlag": False,
                                         "processedRecordIds": [880001, 880002]})]
    assert cl.batch_entry_ids(77) == {880001, 880002}


@pytest.mark.parametrize(("counted", "refusal"), [(2500, None), (2503, "2503 counted, 2500 read"),
                                                  (2499, "2499 counted, 2500 read")])
def test_batch_entries_are_read_a_few_pages_at_once_and_must_add_up_to_the_count(counted: int,
                                                                                 refusal: str | None) -> None:
    pages: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2026_1/apis/3.0")
        if path == "/finance/accounting/batches/9/entries/count":
            return jresp(200, {"count": counted})
        page = int(q(request)["page"])
        pages.append(page)
        first = 1 + (page - 1) * 1000
        return jresp(200, [{"id": i} for i in range(first, min(first + 1000, 2501))])

    cl = make(handler)
    if refusal is None:
        assert cl.batch_entry_ids(9) == set(range(1, 2501))
    else:  # the batch changed while it was read: refused, never guessed around
        with pytest.raises(RemoteError, match=refusal):
            cl.batch_entry_ids(9)
    assert sorted(pages) == [1, 2, 3]  # the pages the count calls for, and no more


def test_the_batch_post_is_sent_once_even_when_its_answer_is_lost() -> None:
    state: dict[str, Any] = {"posts": 0, "exports": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/export"):
            state["exports"] += 1
            if state["exports"] == 1:
                raise httpx.ReadError("dropped", request=request)
            return jresp(200, {"transactions": []})
        state["posts"] += 1
        raise httpx.ReadError("connection dropped after commit", request=request)

    cl = make(handler)
    assert cl.export_invoices("cwqbo-2", [1]) == {"transactions": []}  # a read: retried
    with pytest.raises(RemoteError, match="may or may not have been applied"):
        cl.create_batch("cwqbo-2", [880001])
    assert state["posts"] == 1


# -- permissions --------------------------------------------------------------------------------------

def test_permission_probes_report_missing_rights_without_creating_anything() -> None:
    methods: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        methods.add(request.method)
        path = request.url.path.removeprefix("/v2026_1/apis/3.0")
        if path == "/expense/entries":
            return jresp(403, {"message": "denied"})
        if path == "/system/myAccount":
            return jresp(200, {"id": 3, "identifier": "api", "securityRole": {"id": 9, "name": "API"}})
        if path == "/system/securityroles/9/settings":
            return jresp(200, [{"moduleFunctionName": "Accounting Interface", "addLevel": "None",
                                "inquireLevel": "All"}])
        assert q(request)["pageSize"] == "1"
        return jresp(200, [{"id": 1}])

    results = {p.area: p for p in permissions.probe(make(handler))}
    assert methods == {"GET"}
    assert results["Time & Expense › Time Entry"].ok is True
    exp = results["Time & Expense › Expense Report Entry"]
    assert exp.ok is False
    assert exp.fix == "Security Roles › Time & Expense › Expense Report Entry › Inquire Level: All"
    batch = results["Finance › Accounting Interface (create batches)"]
    assert batch.ok is False and "Add Level: All" in batch.fix and "Inquire Level: All" in batch.fix
    assert "GL export" in batch.detail and "Add Level is None" in batch.detail


def test_permission_probe_explains_when_role_is_unreadable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/system/myAccount"):
            return jresp(403, {"message": "denied"})
        return jresp(200, [])

    results = permissions.probe(make(handler))
    assert all(p.ok for p in results[:-1])
    assert results[-1].ok is None and "never creates a test batch" in results[-1].detail


def test_permission_probe_stops_on_bad_keys() -> None:
    with pytest.raises(AuthError):
        permissions.probe(make(lambda r: jresp(401, {})))


# -- against the ConnectWise simulator --------------------------------------------------------------------

sandbox_server = pytest.importorskip("cwqbo.sandbox.server")


@pytest.fixture
def sandbox() -> Any:
    return sandbox_server.Sandbox(seed=3, invoices=60)


def sim_transport(sb: Any) -> httpx.MockTransport:
    """The sandbox in-process, with a dropped connection surfacing as the ReadError a socket would give."""
    transport: httpx.MockTransport = sb.transport()
    return transport


def sim_client(sb: Any, private_key: str = "sandbox-private", **kw: Any) -> CWClient:
    site = "127.0.0.1:8765"
    info = fetch_company_info(site, "cwqbo_demo", "http", client=httpx.Client(transport=sim_transport(sb)))
    return CWClient(site, "cwqbo_demo", "sandbox-public", private_key, "00000000-0000-4000-8000-00000000c1d0",
                    info["Codebase"], scheme="http", client=httpx.Client(transport=sim_transport(sb)),
                    clock=ManualClock(), **kw)


def test_sandbox_read_path_builds_invoices_that_match_cw_totals(sandbox: Any) -> None:
    from cwqbo.connectwise import conditions as c
    from cwqbo.connectwise.records import build_invoice

    cl = sim_client(sandbox)
    closed = [int(s["id"]) for s in cl.billing_statuses() if s.get("closedFlag")]
    assert closed
    condition = c.in_("status/id", closed)
    raws = list(cl.iter_pages("/finance/invoices", condition, order_by="id asc", page_size=7))
    assert len(raws) == cl.get_json("/finance/invoices/count", {"conditions": condition})["count"] > 7
    assert len({r["id"] for r in raws}) == len(raws)
    ids = [r["id"] for r in raws]
    prods, times, exps = cl.products_for(ids), cl.time_entries_for(ids), cl.expenses_for(ids)
    for raw in raws:
        inv = build_invoice(raw, prods[raw["id"]], times[raw["id"]], exps[raw["id"]])
        assert sum((ln.amount for ln in inv.lines), Decimal(0)) == inv.subtotal
        # the generator itemises everything, so no balancing line should be needed
        assert not [ln for ln in inv.lines if ln.kind == "adjustment"], inv.number
        assert inv.total == inv.subtotal + inv.sales_tax


def test_sandbox_quoted_company_name_is_a_literal(sandbox: Any) -> None:
    from cwqbo.connectwise import conditions as c

    cl = sim_client(sandbox)
    name = 'Smith "Quoted" Co'
    got = list(cl.iter_invoices(c.eq("company/name", name)))
    assert got and all(r["company"]["name"] == name for r in got)
    assert list(cl.iter_invoices(c.eq("company/name", 'x" or id>0 or name="y'))) == []


def test_sandbox_throttling_and_errors_are_retried(sandbox: Any) -> None:
    cl = sim_client(sandbox)
    sandbox.faults.update({"throttle_next": 2, "error_next": 1, "timeout_next": 1})
    assert cl.billing_statuses()
    assert cl.calls == 5


def test_sandbox_bad_key_and_missing_right(sandbox: Any) -> None:
    with pytest.raises(AuthError):
        sim_client(sandbox, private_key="wrong").billing_statuses()
    sandbox.cw.set_permission("Expense Report Entry", "None")
    cl = sim_client(sandbox)
    with pytest.raises(PermissionDenied, match="Expense Report Entry"):
        cl.expenses_for([1001])
    by_area = {p.area: p for p in permissions.probe(cl)}
    assert by_area["Time & Expense › Expense Report Entry"].ok is False
    assert by_area["Time & Expense › Time Entry"].ok is True
    assert by_area["Finance › Accounting Interface (create batches)"].ok is True


def _export_and_batch(cl: CWClient, identifier: str, invoice_ids: list[int]) -> list[int]:
    rows = cl.unposted_rows(invoice_ids)
    export = cl.export_invoices(identifier, [export_invoice_id(rows[i]) for i in invoice_ids])
    gl = sorted(g for t in export["transactions"] for g in parse_gl_entry_ids(t["glEntryIds"]))
    cl.create_batch(identifier, gl)
    return gl


def test_sandbox_export_then_batch_of_gl_entries(sandbox: Any) -> None:
    cl = sim_client(sandbox)
    unposted = sorted(set(cl.unposted_invoice_ids()) - set(sandbox.cw.no_gl_invoice_ids()))
    pick = unposted[:2]
    gl = _export_and_batch(cl, "cwqbo-test-1", pick)
    assert gl == sorted(int(e["id"]) for i in pick for e in sandbox.cw.gl_entries_of(i))
    batch = cl.find_batch("cwqbo-test-1")
    assert batch is not None and set(batch) <= {"id", "batchIdentifier", "closedFlag", "exportInvoicesFlag",
                                                 "exportExpensesFlag", "exportProductsFlag", "_info"}
    assert cl.batch_entry_ids(batch["id"]) == set(gl)
    assert cl.unposted_invoice_ids(pick) == set()
    assert cl.unposted_invoice_ids(unposted[2:]) == set(unposted[2:])
    with pytest.raises(RemoteError, match="batches"):  # the same GL entries can't be batched twice
        cl.create_batch("cwqbo-test-2", gl)


def test_sandbox_batch_is_not_reposted_when_its_answer_is_dropped(sandbox: Any) -> None:
    cl = sim_client(sandbox)
    pick = sorted(set(cl.unposted_invoice_ids()) - set(sandbox.cw.no_gl_invoice_ids()))[:1]
    sandbox.faults.update({"drop_after_commit_next": 1, "paths": ["/finance/accounting/batches"]})
    with pytest.raises(RemoteError, match="may or may not have been applied"):
        _export_and_batch(cl, "cwqbo-test-3", pick)
    found = cl.find_batch("cwqbo-test-3")
    assert found is not None and cl.unposted_invoice_ids(pick) == set()
    assert len([b for b in sandbox.cw.batches() if b["batchIdentifier"] == "cwqbo-test-3"]) == 1


def test_sandbox_over_loopback_with_default_http_client(sandbox: Any) -> None:
    url, stop = sandbox.start_in_thread()
    try:
        site = url.split("://", 1)[1].rstrip("/")
        info = fetch_company_info(site, "cwqbo_demo", "http")
        with CWClient(site, "cwqbo_demo", "sandbox-public", "sandbox-private",
                      "00000000-0000-4000-8000-00000000c1d0", info["Codebase"], scheme="http",
                      clock=ManualClock()) as cl:
            sandbox.faults.update({"throttle_next": 1})
            assert len(list(cl.iter_invoices())) == 60
            assert cl.calls == 2 and cl.retries == 1
            pick = sorted(set(cl.unposted_invoice_ids()) - set(sandbox.cw.no_gl_invoice_ids()))[:1]
            _export_and_batch(cl, "cwqbo-loop-1", pick)
            assert cl.find_batch("cwqbo-loop-1") is not None
            assert cl.unposted_invoice_ids(pick) == set()
    finally:
        stop()


def test_the_gl_export_is_read_for_what_the_check_needs_and_checks_alike(sandbox: Any) -> None:
    """The export's GL detail is skipped at decoding; what `check_export` reads, and its verdict, are unchanged."""
    inner, raw = sim_transport(sandbox), {}

    def keep_export(request: httpx.Request) -> httpx.Response:
        response = inner.handle_request(request)
        if request.url.path.endswith("/finance/accounting/export"):
            raw["export"] = response.read()
        return response

    info = fetch_company_info("127.0.0.1:8765", "cwqbo_demo", "http", client=httpx.Client(transport=inner))
    cl = CWClient("127.0.0.1:8765", "cwqbo_demo", "sandbox-public", "sandbox-private",
                  "00000000-0000-4000-8000-00000000c1d0", info["Codebase"], scheme="http",
                  client=httpx.Client(transport=httpx.MockTransport(keep_export)), clock=ManualClock())
    unposted = sorted(set(cl.unposted_invoice_ids()) - set(sandbox.cw.no_gl_invoice_ids()))[:5]
    rows = cl.unposted_rows(unposted)
    export = cl.export_invoices("cwqbo-read", [export_invoice_id(rows[i]) for i in unposted])
    whole = money.loads(raw["export"])
    assert len(whole["transactions"]) == 5 and len(whole["transactions"][0]) > 3  # there was detail to skip
    assert export["transactions"] == [{k: t.get(k) for k in ("documentNumber", "total", "glEntryIds")}
                                      for t in whole["transactions"]]
    assert all(isinstance(t["total"], Decimal) for t in export["transactions"])
    expected = [Expected(i, rows[i].number, whole["transactions"][n]["total"]) for n, i in enumerate(unposted)]
    assert check_export(export, expected) == check_export(whole, expected)
    assert check_export(export, expected).ok


@pytest.mark.parametrize("answer", [
    b'{"transactions": [1]}',  # not an object: decoded whole, so the check can say so
    b'{"transactions": {"documentNumber": "1"}}',
    b'{"transactions": [], "expenses": [{"id": 4, "total": 1.50}]}',
])
def test_a_gl_export_of_another_shape_is_checked_as_a_whole(answer: bytes) -> None:
    decoded = decode_export(answer)
    assert check_export(decoded, [Expected(1, "1", Decimal("1.50"))]) == check_export(money.loads(answer),
                                                                                   [Expected(1, "1", Decimal("1.50"))])
    assert check_export(decoded, [Expected(1, "1", Decimal("1.50"))]).problems


def test_a_gl_export_that_is_not_json_is_a_remote_error() -> None:
    cl = make(lambda request: httpx.Response(200, content=b"<html>maintenance</html>"))
    with pytest.raises(RemoteError, match="not JSON"):
        cl.export_invoices("cwqbo-1", [1])
