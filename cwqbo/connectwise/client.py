"""ConnectWise PSA REST v3 client: auth, paging, retries and error mapping, plus the calls the sync needs.

Every response is parsed with `money.loads` so amounts stay exact Decimal. Retries follow the policy shared
with the QuickBooks client (`cwqbo.http`): a GET (or the GL export, a read) is retried on transport errors,
429 and 500/502/503/504; a POST without an idempotency key (the accounting batch) only when it cannot have
reached ConnectWise, or on 429. Waits go through the injected Clock, so tests (ManualClock) and benchmarks
(ScaledClock) never really sleep. Paging (`cwqbo.pagination`) refuses a next page that goes back.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from cwqbo import http, money, pagination
from cwqbo.clock import Clock
from cwqbo.connectwise import conditions as cond
from cwqbo.connectwise.accounting import UNPOSTED_ROW_FIELDS, UnpostedRow, decode_export, unposted_row
from cwqbo.in_flight import in_flight
from cwqbo.errors import AuthError, ConfigError, CwqboError, PermissionDenied, RemoteError

DEFAULT_API_VERSION = "2025.1"
ACCEPT = "application/vnd.connectwise.com+json; version={}"
MAX_CONDITION_CHARS = 5000  # encoded `conditions` budget per request; keeps URLs < ~6 KB
# Independent reads of one step sent at once. ConnectWise documents no fixed rate limit but throttles heavy use per
# company (429s, which the shared retry policy waits out): a few at a time, as a person's browser tabs would be.
IN_FLIGHT = 4
PAGE_SIZE = 1000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_HOST_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")

# path prefix → (module, security area) for 403 messages and permission probes
SECURITY_AREAS: tuple[tuple[str, str, str], ...] = (
    ("/time/", "Time & Expense", "Time Entry"),
    ("/expense/", "Time & Expense", "Expense Report Entry"),
    ("/finance/accounting", "Finance", "Accounting Interface"),
    ("/finance/", "Finance", "Invoicing"),
    ("/procurement/", "Procurement", "Product"),
    ("/company/", "Companies", "Company Maintenance"),
    ("/system/", "System", "Member Maintenance"),
)

REAUTH_HINT = "check the company id and API keys, or re-run `cwqbo connect connectwise`"


class CWSettingsLike(Protocol):
    site: str
    company_id: str
    public_key: str
    client_id: str
    scheme: str
    api_version: str


def security_area(path: str) -> tuple[str, str]:
    """(module, area) of the ConnectWise security role right an endpoint needs."""
    p = "/" + path.lstrip("/")
    for prefix, module, area in SECURITY_AREAS:
        if p.startswith(prefix):
            return module, area
    return "System", "API access"


def normalize_site(site: str) -> str:
    """`https://na.myconnectwise.net/` → `na.myconnectwise.net`; reject anything that is not a host."""
    s = (site or "").strip()
    if "://" in s:
        s = urlsplit(s).netloc
    s = s.rstrip("/").lower()
    if not s or not _HOST_RE.match(s):
        raise ConfigError(f"not a ConnectWise site host name: {site!r}",
                          hint="use the host only, e.g. na.myconnectwise.net")
    return s


def _hostname(site: str) -> str:
    return urlsplit("//" + site).hostname or ""


def _check_scheme(site: str, scheme: str) -> None:
    if scheme == "https":
        return
    if scheme == "http" and _hostname(site) in LOOPBACK_HOSTS:
        return
    raise ConfigError(f"refusing scheme {scheme!r} for ConnectWise site {site}",
                      hint="only https is allowed, except http for a loopback sandbox")


def api_base(site: str, codebase: str, scheme: str = "https") -> str:
    """API root, e.g. https://api-na.myconnectwise.net/v2026_1/apis/3.0 (cloud sites use the api- host)."""
    host = normalize_site(site)
    _check_scheme(host, scheme)
    name = _hostname(host)
    if name.endswith(".myconnectwise.net") and not name.startswith("api-"):
        host = "api-" + host
    code = codebase.strip().strip("/")
    prefix = f"/{code}/" if code else "/"
    return f"{scheme}://{host}{prefix}apis/3.0"


def fetch_company_info(site: str, company_id: str, scheme: str = "https", *,
                       client: httpx.Client | None = None) -> dict[str, Any]:
    """The public companyinfo document (holds `Codebase`); proves the site and company id exist.

    One request, not retried: `connect` asks it while the user waits (a mistyped site should fail at once),
    and a sync that can't reach ConnectWise here stops before doing anything.
    """
    host = normalize_site(site)
    _check_scheme(host, scheme)
    if not company_id or "/" in company_id:
        raise ConfigError(f"not a ConnectWise company id: {company_id!r}")
    url = f"{scheme}://{host}/login/companyinfo/{company_id}"
    own = client is None
    c = client or http.new_client()
    try:
        resp = c.get(url)
    except httpx.TransportError as exc:
        raise RemoteError(f"cannot reach ConnectWise at {host}: {type(exc).__name__}: {exc}",
                          hint="ConnectWise may be down, or the site name or network is wrong; try again later") from exc
    finally:
        if own:
            c.close()
    not_found = ConfigError(f"ConnectWise company {company_id!r} not found on site {host}",
                            hint="the company id is the one you type at the ConnectWise login screen")
    code = resp.status_code
    if code == 404:
        raise not_found
    if code in http.RETRY_STATUSES or code >= 500:
        raise RemoteError(f"ConnectWise at {host} answered HTTP {code} for companyinfo", status=code,
                          hint="ConnectWise may be down or throttling; try again later")
    if code in (401, 403):
        raise http.error_class(code)(f"ConnectWise site {host} refused the public company lookup (HTTP {code})",
                                     hint="a proxy or firewall may be in the way; check the site name and network")
    if code >= 400:  # the host answers, but not as ConnectWise does: the site name is wrong
        raise ConfigError(f"ConnectWise site {host} answered HTTP {code} for companyinfo",
                          hint="check the site name (the host you log in to ConnectWise at)")
    try:
        data = money.loads(resp.content) if resp.content.strip() else None
    except ValueError as exc:
        raise ConfigError(f"ConnectWise site {host} did not return company info (not JSON)") from exc
    if not isinstance(data, dict) or not data.get("Codebase"):
        raise not_found
    return data


def _error_message(resp: httpx.Response) -> str:
    try:
        data = money.loads(resp.content)
    except ValueError:
        return resp.text.strip()[:200]
    if isinstance(data, dict):
        msg = str(data.get("message") or "")
        details = [str(e.get("message")) for e in data.get("errors") or [] if isinstance(e, dict) and e.get("message")]
        return "; ".join([m for m in [msg, *details] if m])[:300]
    return str(data)[:200]


class CWClient:
    """Authenticated ConnectWise client. `calls` counts HTTP requests (benchmarks read it), `retries` the retries.

    Build with keywords (site, company_id, public_key, private_key, client_id, codebase) or, as
    context.py does, `CWClient(settings, private_key, codebase)` with a `config.CWSettings`.
    """

    def __init__(self, site: str | CWSettingsLike, company_id: str | None = None,
                 public_key: str | None = None, private_key: str | None = None,
                 client_id: str | None = None, codebase: str | None = None, *,
                 scheme: str | None = None, client: httpx.Client | None = None,
                 clock: Clock | None = None, policy: http.RetryPolicy = http.RETRY_POLICY,
                 api_version: str | None = None) -> None:
        if not isinstance(site, str):
            settings = site
            # positional form CWClient(settings, private_key, codebase)
            private_key = private_key or company_id
            codebase = codebase or public_key
            site, company_id = settings.site, str(settings.company_id)
            public_key, client_id = settings.public_key, settings.client_id
            scheme = scheme or settings.scheme
            api_version = api_version or settings.api_version
        scheme = scheme or "https"
        missing = [n for n, v in (("company id", company_id), ("public key", public_key),
                                  ("private key", private_key), ("client id", client_id)) if not v]
        if missing:
            raise ConfigError(f"ConnectWise {', '.join(missing)} not set",
                              hint="run `cwqbo connect connectwise`")
        if codebase is None:
            raise ConfigError("ConnectWise codebase unknown", hint="run `cwqbo connect connectwise`")
        self.site = normalize_site(site)
        self.base_url = api_base(self.site, codebase, scheme)
        self.clock = clock or Clock()
        self.policy = policy
        self.calls = 0
        self.retries = 0
        self._counting = threading.Lock()  # reads of one step run a few at once
        auth = (f"{company_id}+{public_key}", str(private_key))
        # The Accept header pins the API version, so field shapes don't change when ConnectWise moves its default.
        headers = {"clientId": str(client_id), "Accept": ACCEPT.format(api_version or DEFAULT_API_VERSION)}
        if client is None:
            self._http = http.new_client(base_url=self.base_url, auth=auth, headers=headers)
        else:
            self._http = client
            client.base_url = httpx.URL(self.base_url + "/")
            client.auth = auth
            client.headers.update(headers)

    # -- plumbing -------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CWClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + "/" + path.lstrip("/")

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 json_body: Any = None, idempotent: bool = True, discard_body: bool = False) -> httpx.Response:
        """Send with the shared retry policy; a non-idempotent request is retried only when it cannot have
        committed (it never reached ConnectWise, or ConnectWise refused it with 429). `discard_body`: a successful
        answer is read and dropped as it arrives (its status is all the caller uses)."""
        content = money.dumps(json_body).encode() if json_body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        where = self._path_of(path).split("?")[0]

        def give_up(last: http.Retriable) -> CwqboError:
            return RemoteError(f"ConnectWise kept failing on {method} {where} after {last.attempts} attempt(s): "
                               f"{last.reason}", status=last.status,
                               hint="ConnectWise may be throttling or down; try again later")

        return self.policy.call(lambda: self._send_once(method, path, params, content, headers, idempotent,
                                                        discard_body),
                                clock=self.clock, label=f"ConnectWise {method} {where}", give_up=give_up,
                                on_retry=self._on_retry)

    def _on_retry(self, failure: http.Retriable, wait: float) -> None:
        with self._counting:
            self.retries += 1

    def _path_of(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            full = urlsplit(path).path
            base = urlsplit(self.base_url).path
            return full[len(base):] if full.startswith(base) else full
        return "/" + path.lstrip("/")

    def _send_once(self, method: str, path: str, params: dict[str, Any] | None, content: bytes | None,
                   headers: dict[str, str] | None, idempotent: bool, discard_body: bool = False) -> httpx.Response:
        with self._counting:
            self.calls += 1
        try:
            if discard_body:
                with self._http.stream(method, self._url(path), params=params, content=content,
                                       headers=headers) as resp:
                    if resp.status_code < 300:
                        for _ in resp.iter_bytes():  # drained a chunk at a time, never held whole
                            pass
                    else:
                        resp.read()  # an error's text is short and is reported
            else:
                resp = self._http.request(method, self._url(path), params=params, content=content,
                                          headers=headers)
        except httpx.TransportError as exc:
            reason = (f"cannot connect to {self.site}: {type(exc).__name__}" if http.never_sent(exc)
                      else f"{type(exc).__name__} talking to {self.site}")
            failure = http.transport_failure(exc, idempotent=idempotent, reason=reason)
            if failure is not None:
                raise failure from exc
            if http.never_sent(exc) or idempotent:
                raise RemoteError(f"cannot reach ConnectWise at {self.site}: {type(exc).__name__}: {exc}",
                                  hint="check the site name and the network") from exc
            raise RemoteError(f"lost the connection during {method} {self._path_of(path)}; "
                              "the change may or may not have been applied",
                              hint="re-run: cwqbo checks what ConnectWise recorded before retrying") from exc
        failure = http.response_failure(resp, idempotent=idempotent, now=self.clock.now())
        if failure is not None:
            raise failure
        self._raise_for_status(method, path, resp)
        return resp

    def _raise_for_status(self, method: str, path: str, resp: httpx.Response) -> None:
        code = resp.status_code
        if code < 400:
            return
        where = self._path_of(path).split("?")[0]
        kind = http.error_class(code)
        if kind is AuthError:
            raise AuthError("ConnectWise rejected the API keys (HTTP 401)", hint=REAUTH_HINT)
        if kind is PermissionDenied:
            module, area = security_area(where)
            raise PermissionDenied(
                f"ConnectWise denied {method} {where}: the API member's security role lacks "
                f"{module} › {area}",
                hint=f"grant Security Roles › {module} › {area} (Inquire Level: All), "
                     "then run `cwqbo check-permissions`")
        msg = _error_message(resp)
        if code == 400:
            raise RemoteError(f"ConnectWise rejected {method} {where}: {msg or 'bad request'}", status=400)
        raise RemoteError(f"ConnectWise answered HTTP {code} on {method} {where}" + (f": {msg}" if msg else ""),
                          status=code)

    # -- generic calls --------------------------------------------------------------------------
    def _parse(self, resp: httpx.Response) -> Any:
        if not resp.content.strip():
            return None
        try:
            return money.loads(resp.content)
        except ValueError as exc:
            raise RemoteError(f"ConnectWise sent something that is not JSON for {resp.request.url.path}",
                              status=resp.status_code) from exc

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._parse(self._request("GET", path, params=params))

    def post_json(self, path: str, body: Any, *, idempotent: bool = False) -> Any:
        return self._parse(self._request("POST", path, json_body=body, idempotent=idempotent))

    def delete(self, path: str) -> None:
        """DELETE one record. Safe to repeat (a second DELETE finds nothing), so it is retried like a read;
        a 404 comes back as RemoteError(status=404) for the caller to judge."""
        self._request("DELETE", path, idempotent=True)

    @staticmethod
    def _list_params(conditions: str | None, fields: Iterable[str] | None, order_by: str | None,
                     page_size: int) -> dict[str, Any]:
        params: dict[str, Any] = {"pageSize": page_size}
        if conditions:
            params["conditions"] = conditions
        if fields:
            params["fields"] = ",".join(cond.check_field(f) for f in fields)
        if order_by:
            params["orderBy"] = order_by
        return params

    def iter_page_lists(self, path: str, conditions: str | None = None, fields: Iterable[str] | None = None,
                        order_by: str | None = None, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Pages as lists, by page number: the next number comes from `Link: rel="next"` when ConnectWise sends
        one (as pyconnectwise reads it: only its `page`, never its host), else until a short page. A next page
        that does not move forward, or a page repeating the previous one, is refused rather than looped on."""
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be 1..1000")
        params = self._list_params(conditions, fields, order_by, page_size)
        where = self._path_of(path).split("?")[0]
        after_full_page = pagination.by_page_number(page_size)

        def fetch(page: int) -> tuple[list[dict[str, Any]], httpx.Response]:
            resp = self._request("GET", path, params={**params, "page": page})
            items = self._parse(resp) or []
            if not isinstance(items, list):
                raise RemoteError(f"ConnectWise returned a non-list for {where}")
            return items, resp

        def next_page(page: int, items: list[dict[str, Any]], resp: httpx.Response) -> int | None:
            if "link" in resp.headers:
                return _page_of(resp.links.get("next", {}).get("url"))
            return after_full_page(page, items, resp)

        return pagination.paginate(fetch, next_page, start=1, service="ConnectWise", path=where, unit="page",
                                   ident=_record_id)

    def iter_pages(self, path: str, conditions: str | None = None, fields: Iterable[str] | None = None,
                   order_by: str | None = None, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every record of a list endpoint, streamed page by page."""
        for items in self.iter_page_lists(path, conditions, fields, order_by, page_size):
            yield from items

    # -- domain calls ---------------------------------------------------------------------------
    def current_member(self, identifier: str | None = None) -> dict[str, Any] | None:
        """The member behind the API keys: /system/myAccount when offered, else a members lookup.

        Without `identifier` the members list is used only when it holds exactly one member (an API
        member restricted to itself); None when the API does not tell.
        """
        if identifier is None:
            try:
                data = self.get_json("/system/myAccount")
                if isinstance(data, dict):
                    return data
            except RemoteError as exc:
                if exc.status != 404:
                    raise
        condition = cond.eq("identifier", identifier) if identifier else None
        rows = self.get_json("/system/members", {"pageSize": 2, **({"conditions": condition} if condition else {})})
        if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], dict):
            return rows[0]
        return None

    def billing_statuses(self) -> list[dict[str, Any]]:
        return list(self.iter_pages("/finance/billingStatuses", order_by="id asc"))

    def iter_invoices(self, conditions: str | None = None,
                      fields: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
        return self.iter_pages("/finance/invoices", conditions, fields, order_by="id asc")

    def _by_invoice(self, path: str, invoice_ids: Iterable[int],
                    fields: Iterable[str] | None = None) -> dict[int, list[dict[str, Any]]]:
        ids = sorted({int(i) for i in invoice_ids})
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for rec in self._chunked(path, "invoice/id", ids, fields):
            inv = rec.get("invoice") or {}
            inv_id = inv.get("id") if isinstance(inv, dict) else None
            if inv_id is not None and int(inv_id) in out:
                out[int(inv_id)].append(rec)
        return out

    def _chunked(self, path: str, field: str, ids: list[int],
                 fields: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every record whose `field` is among `ids`: one `in (...)` condition per URL-sized chunk, a few chunks
        at once, records in chunk order."""
        chunks = list(cond.in_chunks(field, ids, max_chars=MAX_CONDITION_CHARS))
        pages = in_flight(lambda c: list(self.iter_pages(path, c, fields, order_by="id asc")), chunks, IN_FLIGHT)
        return [rec for page in pages for rec in page]

    def products_for(self, invoice_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """Product lines grouped by invoice id (every asked id present, possibly empty)."""
        return self._by_invoice("/procurement/products", invoice_ids)

    def time_entries_for(self, invoice_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        return self._by_invoice("/time/entries", invoice_ids)

    def expenses_for(self, invoice_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        return self._by_invoice("/expense/entries", invoice_ids)

    def unposted_invoices(self, invoice_ids: Iterable[int] | None = None,
                          fields: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Unposted rows, optionally only those of these invoices (matched on `billingLogId`, the invoice id)."""
        path = "/finance/accounting/unpostedinvoices"
        if invoice_ids is None:
            return list(self.iter_pages(path, fields=fields, order_by="id asc"))
        return self._chunked(path, "billingLogId", sorted({int(i) for i in invoice_ids}), fields)

    def unposted_rows(self, invoice_ids: Iterable[int] | None = None) -> dict[int, UnpostedRow]:
        """Unposted rows by invoice id; a row that can't be linked to an invoice is left out. Only the fields a row
        is linked by are read (`fields=`): discovery and every batch read these rows for thousands of invoices."""
        rows = (unposted_row(r) for r in self.unposted_invoices(invoice_ids, UNPOSTED_ROW_FIELDS)
                if isinstance(r, dict))
        return {r.invoice_id: r for r in rows if r is not None}

    def unposted_invoice_ids(self, invoice_ids: Iterable[int] | None = None) -> set[int]:
        """Invoices closed and not yet in any accounting batch (optionally only among `invoice_ids`)."""
        return set(self.unposted_rows(invoice_ids))

    def export_invoices(self, identifier: str, included_invoice_ids: Iterable[int]) -> dict[str, Any]:
        """The GL export of exactly these unposted invoices (`ExportAccountingBatchRequest` → `GLExport`).

        The export is a read: ConnectWise changes nothing, so it is retried like a GET.
        """
        ids = sorted({int(i) for i in included_invoice_ids})
        if not ids:
            raise ValueError("export_invoices needs at least one invoice")
        body = {"batchIdentifier": _identifier(identifier), "exportInvoicesFlag": True,
                "exportExpensesFlag": False, "exportProductsFlag": False, "includedInvoiceIds": ids}
        resp = self._request("POST", "/finance/accounting/export", json_body=body, idempotent=True)
        try:
            data = decode_export(resp.content)
        except ValueError as exc:
            raise RemoteError("ConnectWise's GL export answer is not JSON", status=resp.status_code) from exc
        if not isinstance(data, dict):
            raise RemoteError("ConnectWise's GL export answer is not an object")
        return data

    def create_batch(self, identifier: str, gl_entry_ids: Iterable[int]) -> None:
        """POST one accounting batch of exactly these GL entries (`CreateAccountingBatchRequest`).

        Sent once: never retried after it may have reached ConnectWise. The answer (a `GLExport` of everything
        batched, megabytes for a large batch) is neither decoded nor kept: the batch is verified by what ConnectWise
        then holds (`find_batch`, `batch_entry_ids`).
        """
        ids = sorted({int(i) for i in gl_entry_ids})
        if not ids:
            raise ValueError("create_batch needs at least one GL entry id")
        body = {"batchIdentifier": _identifier(identifier), "exportInvoicesFlag": True,
                "exportExpensesFlag": False, "exportProductsFlag": False, "processedRecordIds": ids}
        self._request("POST", "/finance/accounting/batches", json_body=body, idempotent=False, discard_body=True)

    def list_batches(self, conditions: str | None = None) -> list[dict[str, Any]]:
        return list(self.iter_pages("/finance/accounting/batches", conditions, order_by="id asc"))

    def find_batch(self, identifier: str) -> dict[str, Any] | None:
        found = self.list_batches(cond.eq("batchIdentifier", identifier))
        return found[0] if found else None

    def count(self, path: str, conditions: str | None = None) -> int:
        """`GET {path}/count`: how many records a list endpoint holds (`{"count": N}`)."""
        data = self.get_json(f"{path.rstrip('/')}/count", {"conditions": conditions} if conditions else None)
        value = data.get("count") if isinstance(data, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RemoteError(f"ConnectWise's count of {self._path_of(path)} is not a number")
        return value

    def batch_entry_ids(self, batch_id: int) -> set[int]:
        """The GL entry ids a batch holds (`/finance/accounting/batches/{id}/entries`, model `BatchEntry`; its
        `/count`): the pages a count calls for, a few at once, ids only. Pages that overlap or fall short of the
        count (the batch changed while read) are refused, never guessed around."""
        path = f"/finance/accounting/batches/{int(batch_id)}/entries"
        total = self.count(path)
        params = self._list_params(None, ["id"], "id asc", PAGE_SIZE)

        def page(number: int) -> list[int]:
            rows = self._parse(self._request("GET", path, params={**params, "page": number})) or []
            if not isinstance(rows, list):
                raise RemoteError(f"ConnectWise returned a non-list for {path}")
            return [int(r["id"]) for r in rows if isinstance(r, dict) and r.get("id") is not None]

        pages = in_flight(page, range(1, -(-total // PAGE_SIZE) + 1), IN_FLIGHT)
        ids = {i for found in pages for i in found}
        if len(ids) != total or sum(len(found) for found in pages) != total:
            raise RemoteError(f"ConnectWise's entries of batch {batch_id} changed while they were read "
                              f"({total} counted, {len(ids)} read)", hint="run the sync again to check the batch")
        return ids


def _record_id(record: dict[str, Any]) -> object:
    return record.get("id") if isinstance(record, dict) else None


def _page_of(url: str | None) -> int | None:
    """The `page` parameter of a next-page link; None when there is no usable one."""
    if not url:
        return None
    for key, value in parse_qsl(urlsplit(url).query):
        if key.lower() == "page" and value.isdigit():
            return int(value)
    return None


def _identifier(identifier: str) -> str:
    if not identifier or len(identifier) > 50:
        raise ValueError("batch identifier must be 1..50 characters")
    return identifier
