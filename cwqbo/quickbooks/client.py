"""QuickBooks Online Accounting API v3 client: reads, idempotent writes, batch, retries, throttling.

Exactly-once rests on Intuit's `requestid`: a write retried with the same requestid returns the first
response instead of creating a second object. So every write carries a caller-chosen requestid, which makes
it idempotent for the retry policy shared with the ConnectWise client (`cwqbo.http`): a transient failure of a
write (500/502/503/504, timeout, dropped connection) is retried with that same id, and so is a read. A 429
holds every request of the realm (the client-side `Throttle`) for the wait the policy picks. A 401 refreshes
the access token once and tries again. Each result and error carries Intuit's transaction id (`intuit_tid`)
so support cases can be traced.
"""

from __future__ import annotations

import logging
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from cwqbo import http, money, pagination
from cwqbo.clock import Clock
from cwqbo.crashpoints import crashpoint
from cwqbo.errors import AuthError, CwqboError, PermissionDenied, RemoteError
from cwqbo.quickbooks import created
from cwqbo.quickbooks import query as qbo_query
from cwqbo.quickbooks.query import escape
from cwqbo.quickbooks.throttle import Throttle

__all__ = ["BatchItemResult", "BatchOp", "QBOClient", "QBOError", "QBOFault", "QBOResult", "TokenSource", "escape"]

DEFAULT_MINOR_VERSION = 75
MAX_BATCH_ITEMS = 30
REQUEST_ID_MAX = 50
BATCH_REQUEST_ID_MAX = 36
PAGE_SIZE = 1000
GET_QUERY_MAX = 1500  # longer statements go as a POST body (URL length limits)
CRASH_AFTER_WRITE = "qbo.after_write_response"
THROTTLE_CODE = "3001"  # ThrottleExceeded; older QBO answered it with HTTP 403 instead of 429

log = logging.getLogger(__name__)


class TokenSource(Protocol):
    """What the client needs from oauth.TokenManager."""

    def access_token(self) -> str: ...

    def force_refresh(self) -> str: ...


@dataclass(frozen=True)
class QBOFault:
    """One error from a QBO `Fault` (or lower-case `fault`) envelope."""

    code: str
    message: str
    detail: str = ""
    element: str | None = None
    tid: str | None = None

    def __str__(self) -> str:
        text = f"QBO error {self.code}: {self.message}"
        if self.detail and self.detail != self.message:
            text += f" ({self.detail})"
        return text


class QBOError(RemoteError):
    """QBO refused a request; `faults` lists every error it gave, `code` is the first one's code."""

    def __init__(self, message: str, *, faults: list[QBOFault] | None = None, status: int | None = None,
                 tid: str | None = None, hint: str | None = None) -> None:
        self.faults = list(faults or [])
        code = self.faults[0].code if self.faults else None
        super().__init__(message, hint=hint, status=status, code=code, tid=tid)

    @property
    def fault(self) -> QBOFault | None:
        return self.faults[0] if self.faults else None

    def has_code(self, *codes: str) -> bool:
        return any(f.code in codes for f in self.faults)


@dataclass(frozen=True)
class QBOResult:
    """An object QBO returned, with the transaction id of the response that carried it."""

    obj: dict[str, Any]
    tid: str | None = None


@dataclass(frozen=True)
class BatchOp:
    """One item of a batch request; build with the classmethods."""

    bid: str
    operation: Literal["create", "update", "delete", "query"]
    entity: str | None = None
    payload: dict[str, Any] | None = None
    query: str | None = None
    options: str | None = None
    text: str | None = None  # the payload already serialised (`create_text`): sent as is, never re-encoded

    @classmethod
    def create(cls, bid: str, entity: str, payload: dict[str, Any]) -> "BatchOp":
        return cls(bid, "create", entity, payload)

    @classmethod
    def create_text(cls, bid: str, entity: str, payload_text: str) -> "BatchOp":
        """A create whose payload is exact JSON text (serialised once by the caller, who hashed those bytes)."""
        return cls(bid, "create", entity, text=payload_text)

    @classmethod
    def update(cls, bid: str, entity: str, payload: dict[str, Any], *, sparse: bool = True) -> "BatchOp":
        return cls(bid, "update", entity, {**payload, "sparse": True} if sparse else payload)

    @classmethod
    def void(cls, bid: str, entity: str, id_: str, sync_token: str) -> "BatchOp":
        return cls(bid, "update", entity, {"Id": str(id_), "SyncToken": str(sync_token)}, options="void")

    @classmethod
    def delete(cls, bid: str, entity: str, id_: str, sync_token: str) -> "BatchOp":
        return cls(bid, "delete", entity, {"Id": str(id_), "SyncToken": str(sync_token)})

    @classmethod
    def select(cls, bid: str, statement: str) -> "BatchOp":
        return cls(bid, "query", query=statement)

    def to_json(self) -> dict[str, Any]:
        if self.operation == "query":
            return {"bId": self.bid, "Query": self.query}
        if self.text is not None:
            item: dict[str, Any] = money.loads(self.to_text())
            return item
        if not self.entity or self.payload is None:
            raise ValueError(f"batch item {self.bid!r}: {self.operation} needs an entity and a payload")
        item = {"bId": self.bid, "operation": self.operation, self.entity: self.payload}
        if self.options:
            item["optionsData"] = self.options
        return item

    def to_text(self) -> str:
        """The item as JSON text; a `create_text` payload goes in verbatim."""
        if self.text is None:
            return money.dumps(self.to_json())
        if not self.entity:
            raise ValueError(f"batch item {self.bid!r}: create needs an entity")
        return (f'{{"bId":{money.dumps(self.bid)},"operation":"create",{money.dumps(self.entity)}:{self.text}}}')


@dataclass(frozen=True)
class BatchItemResult:
    """One batch item's outcome: `obj` on success (or `rows` for a query), else `faults`."""

    bid: str
    entity: str | None = None
    obj: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None
    faults: list[QBOFault] = field(default_factory=list)
    tid: str | None = None

    @property
    def ok(self) -> bool:
        return not self.faults

    def raise_for_fault(self) -> None:
        if self.faults:
            raise QBOError(f"batch item {self.bid}: {self.faults[0]}", faults=self.faults, status=200, tid=self.tid)


# --- pure helpers ------------------------------------------------------------------------------------


def response_tid(response: httpx.Response) -> str | None:
    """Intuit's transaction id; real responses say `Intuit-Tid`, older ones `intuit_tid`."""
    tid: str | None = response.headers.get("intuit_tid") or response.headers.get("intuit-tid")
    return tid


def parse_faults(body: Any, tid: str | None = None) -> list[QBOFault]:
    """Faults from either JSON envelope: `{"Fault": {"Error": [...]}}` or `{"fault": {"error": [...]}}`."""
    if not isinstance(body, dict):
        return []
    envelope = body.get("Fault") or body.get("fault")
    if not isinstance(envelope, dict):
        return []
    errors = envelope.get("Error") or envelope.get("error") or []
    out = []
    for err in errors if isinstance(errors, list) else [errors]:
        if not isinstance(err, dict):
            continue
        out.append(QBOFault(code=str(err.get("code") or err.get("Code") or ""),
                            message=str(err.get("Message") or err.get("message") or ""),
                            detail=str(err.get("Detail") or err.get("detail") or ""),
                            element=err.get("element") or err.get("Element") or None, tid=tid))
    return out


def parse_xml_faults(text: str, tid: str | None = None) -> list[QBOFault]:
    """Faults from an XML IntuitResponse (QBO answers 429s in XML whatever Accept says)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return []
    out = []
    for err in root.iter():
        if err.tag.rsplit("}", 1)[-1] != "Error":
            continue
        parts = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in err}
        out.append(QBOFault(code=err.get("code", ""), message=parts.get("Message", ""), detail=parts.get("Detail", ""),
                            element=err.get("element") or None, tid=tid))
    return out


def faults_from_response(response: httpx.Response) -> list[QBOFault]:
    tid = response_tid(response)
    ctype = response.headers.get("content-type", "")
    text = response.content.decode("utf-8", "replace")
    if "xml" in ctype or text.lstrip().startswith("<?xml") or text.lstrip().startswith("<IntuitResponse"):
        return parse_xml_faults(text, tid)
    try:
        return parse_faults(money.loads(text), tid)
    except ValueError:
        return []


def query_rows(query_response: Any) -> list[dict[str, Any]]:
    """The entity rows of a QueryResponse (it names the entity; empty results omit the key)."""
    if not isinstance(query_response, dict):
        return []
    for value in query_response.values():
        if isinstance(value, list):
            return value
    return []


def parse_batch(body: Any, tid: str | None) -> dict[str, BatchItemResult]:
    """BatchItemResponse items keyed by bId."""
    out: dict[str, BatchItemResult] = {}
    items = body.get("BatchItemResponse", []) if isinstance(body, dict) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        bid = str(item.get("bId", ""))
        faults = parse_faults(item, tid)
        if faults:
            out[bid] = BatchItemResult(bid, faults=faults, tid=tid)
        elif "QueryResponse" in item:
            out[bid] = BatchItemResult(bid, rows=query_rows(item["QueryResponse"]), tid=tid)
        else:
            entity = next((k for k, v in item.items() if k != "bId" and isinstance(v, dict)), None)
            out[bid] = BatchItemResult(bid, entity=entity, obj=item.get(entity) if entity else None, tid=tid)
    return out


def _row_id(row: dict[str, Any]) -> object:
    return row.get("Id") if isinstance(row, dict) else None


def _describe(faults: list[QBOFault], status: int) -> str:
    if faults:
        return str(faults[0])
    return f"QuickBooks Online answered HTTP {status}"


def _check_request_id(request_id: str, limit: int) -> str:
    if not request_id or len(request_id) > limit:
        raise ValueError(f"requestid must be 1..{limit} characters, got {len(request_id or '')}")
    return request_id


# --- the client --------------------------------------------------------------------------------------


class QBOClient:
    """One realm's Accounting API. Thread-safe; share one instance (and its throttle) per realm."""

    def __init__(self, base_url: str, realm_id: str, tokens: TokenSource, clock: Clock | None = None, *,
                 throttle: Throttle | None = None, client: httpx.Client | None = None,
                 minor_version: int = DEFAULT_MINOR_VERSION, policy: http.RetryPolicy = http.RETRY_POLICY) -> None:
        base = base_url.rstrip("/")
        if not base.endswith("/v3"):
            base += "/v3"
        self.base_url = base
        self.realm_id = str(realm_id)
        self.tokens = tokens
        self.clock = clock or Clock()
        self.throttle = throttle or Throttle(self.clock)
        self.http = client or http.new_client()
        self.minor_version = minor_version
        self.policy = policy
        self._lock = threading.Lock()
        self.calls = 0  # HTTP requests sent, retries included
        self.batch_calls = 0
        self.retries = 0

    # -- plumbing ------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/company/{self.realm_id}/{path.lstrip('/')}"

    def _count(self, batch: bool) -> None:
        with self._lock:
            self.calls += 1
            if batch:
                self.batch_calls += 1

    def _send(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
              content: str | None = None, content_type: str = "application/json", write: bool = False,
              batch: bool = False, decode: Callable[[bytes], Any] = money.loads) -> tuple[Any, str | None]:
        """Send with auth, throttle and the shared retry policy; return (the body as `decode` reads it, tid) or
        raise."""
        query = {"minorversion": str(self.minor_version), **(params or {})}
        data = money.dumps(body).encode("utf-8") if body is not None else (
            content.encode("utf-8") if content is not None else None)
        # Reads are safe to repeat; so are writes, because Intuit answers a repeated requestid with the first result.
        idempotent = method == "GET" or path == "query" or "requestid" in query
        refreshed: str | None = None  # the token a 401 made us fetch: one refresh per call

        def attempt() -> tuple[Any, str | None]:
            nonlocal refreshed
            send = (method, path, query, data, content_type, write, batch, idempotent)
            response = self._exchange(refreshed or self.tokens.access_token(), *send)
            if response.status_code == 401 and refreshed is None:
                log.info("QBO %s %s: 401 (tid %s); refreshing the access token", method, path, response_tid(response))
                refreshed = self.tokens.force_refresh()
                response = self._exchange(refreshed, *send)
            if response.status_code == 401:
                raise AuthError("QuickBooks Online rejected the access token even after a refresh",
                                hint="run `cwqbo connect quickbooks` to reconnect")
            return self._result(response, idempotent, decode)

        return self.policy.call(attempt, clock=self.clock, label=f"QuickBooks Online {method} {path}",
                                give_up=self._give_up, on_retry=self._on_retry)

    def _exchange(self, token: str, method: str, path: str, query: dict[str, str], data: bytes | None,
                  content_type: str, write: bool, batch: bool, idempotent: bool) -> httpx.Response:
        """One HTTP request through the throttle; a transport error is raised as `http.Retriable` when another
        attempt is safe, else as RemoteError."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        self._count(batch)
        try:
            with self.throttle.slot(batch=batch):
                response = self.http.request(method, self._url(path), params=query, content=data, headers=headers)
                response.read()
        except httpx.TransportError as exc:
            failure = http.transport_failure(exc, idempotent=idempotent)
            if failure is not None:
                raise failure from exc
            raise RemoteError(f"QuickBooks Online could not be reached ({type(exc).__name__})",
                              hint="check the network and run again") from exc
        if write:
            crashpoint(CRASH_AFTER_WRITE)
        return response

    def _result(self, response: httpx.Response, idempotent: bool,
                decode: Callable[[bytes], Any] = money.loads) -> tuple[Any, str | None]:
        """The parsed body of a successful response; a failure worth another attempt is raised as
        `http.Retriable`, anything else as the error it is."""
        status = response.status_code
        tid = response_tid(response)
        failure = http.response_failure(response, idempotent=idempotent, now=self.clock.now())
        if failure is None and status == 403 and any(f.code == THROTTLE_CODE for f in faults_from_response(response)):
            failure = http.Retriable("HTTP 403 ThrottleExceeded", status=429, response=response)  # the old 429
        if failure is not None:
            raise failure
        if http.error_class(status) is PermissionDenied:
            faults = faults_from_response(response)
            raise PermissionDenied(f"QuickBooks Online refused access to company {self.realm_id}: "
                                   f"{_describe(faults, status)}",
                                   hint="check the environment (sandbox or production), or reconnect with an "
                                        "admin of that company: `cwqbo connect quickbooks`")
        try:
            parsed = decode(response.content) if response.content else {}
        except ValueError:
            parsed = None
        if parsed is None and status < 400:
            raise QBOError(f"QuickBooks Online sent an unreadable response (HTTP {status}, "
                           f"{response.headers.get('content-type', 'no content type')})", status=status, tid=tid)
        if status >= 400:
            faults = parse_faults(parsed, tid) if parsed is not None else faults_from_response(response)
            raise QBOError(_describe(faults, status), faults=faults, status=status, tid=tid)
        faults = parse_faults(parsed, tid)
        if faults:  # a 200 carrying a Fault envelope
            raise QBOError(_describe(faults, status), faults=faults, status=status, tid=tid)
        return parsed, tid

    def _on_retry(self, failure: http.Retriable, wait: float) -> None:
        with self._lock:
            self.retries += 1
        if failure.throttled:
            self.throttle.on_429(wait)  # every request of this realm waits, not only this one

    def _give_up(self, last: http.Retriable) -> CwqboError:
        response = last.response
        if response is None:
            return RemoteError(f"QuickBooks Online could not be reached ({last.reason}) after {last.attempts} "
                               "attempts", hint="check the network and run again")
        faults = faults_from_response(response)
        tid = response_tid(response)
        if last.throttled:
            return QBOError(f"QuickBooks Online kept throttling requests (HTTP 429) after {last.attempts} attempts",
                            faults=faults, status=429, tid=tid,
                            hint="another app may be using the same company's API quota; try later")
        status = response.status_code
        return QBOError(f"{_describe(faults, status)} after {last.attempts} attempts", faults=faults, status=status,
                        tid=tid, hint="QuickBooks Online is having trouble; run again later")

    def _entity_result(self, body: Any, entity: str, tid: str | None) -> QBOResult:
        obj = body.get(entity) if isinstance(body, dict) else None
        if not isinstance(obj, dict):
            raise QBOError(f"QuickBooks Online answered without a {entity} object", status=200, tid=tid)
        return QBOResult(obj, tid)

    # -- reads ---------------------------------------------------------------------------------------

    def query_response(self, statement: str) -> tuple[dict[str, Any], str | None]:
        """The raw QueryResponse of one statement, with its tid."""
        if len(statement) <= GET_QUERY_MAX:
            body, tid = self._send("GET", "query", params={"query": statement})
        else:
            body, tid = self._send("POST", "query", content=statement, content_type="application/text")
        qr = body.get("QueryResponse", {}) if isinstance(body, dict) else {}
        return (qr if isinstance(qr, dict) else {}), tid

    def query(self, statement: str) -> list[dict[str, Any]]:
        """Rows of one query statement (one page: include STARTPOSITION/MAXRESULTS yourself, or use query_all)."""
        return query_rows(self.query_response(statement)[0])

    def iter_all(self, entity: str, where: str | list[str] | None = None,
                 page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every matching row in Id order, page by page (STARTPOSITION/MAXRESULTS); a page that repeats the
        previous one is refused rather than looped on."""

        def fetch(start: int) -> tuple[list[dict[str, Any]], None]:
            return self.query(qbo_query.select(entity, where, start, page_size, order_by="Id")), None

        for page in pagination.paginate(fetch, pagination.by_offset(page_size), start=1,
                                        service="QuickBooks Online", path=f"/query ({entity})",
                                        unit="STARTPOSITION", ident=_row_id):
            yield from page

    def query_all(self, entity: str, where: str | list[str] | None = None,
                  page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
        """Every matching row, paging STARTPOSITION/MAXRESULTS in Id order."""
        return list(self.iter_all(entity, where, page_size))

    def read(self, entity: str, id_: str) -> QBOResult:
        body, tid = self._send("GET", f"{entity.lower()}/{id_}")
        return self._entity_result(body, entity, tid)

    def preferences(self) -> QBOResult:
        body, tid = self._send("GET", "preferences")
        return self._entity_result(body, "Preferences", tid)

    def company_info(self) -> QBOResult:
        body, tid = self._send("GET", f"companyinfo/{self.realm_id}")
        return self._entity_result(body, "CompanyInfo", tid)

    # -- writes --------------------------------------------------------------------------------------

    def create(self, entity: str, payload: dict[str, Any], request_id: str) -> QBOResult:
        """Create once: a retry (or a later call) with the same request_id returns the first result."""
        body, tid = self._send("POST", entity.lower(), body=payload, write=True,
                               params={"requestid": _check_request_id(request_id, REQUEST_ID_MAX)})
        return self._entity_result(body, entity, tid)

    def update(self, entity: str, payload: dict[str, Any], request_id: str) -> QBOResult:
        """Sparse update: payload needs Id and SyncToken plus only the fields to change."""
        if not payload.get("Id") or payload.get("SyncToken") in (None, ""):
            raise ValueError("an update needs Id and SyncToken")
        body, tid = self._send("POST", entity.lower(), body={**payload, "sparse": True}, write=True,
                               params={"requestid": _check_request_id(request_id, REQUEST_ID_MAX)})
        return self._entity_result(body, entity, tid)

    def void(self, entity: str, id_: str, sync_token: str, request_id: str) -> QBOResult:
        body, tid = self._send("POST", entity.lower(), body={"Id": str(id_), "SyncToken": str(sync_token)},
                               write=True, params={"operation": "void",
                                                   "requestid": _check_request_id(request_id, REQUEST_ID_MAX)})
        return self._entity_result(body, entity, tid)

    def batch(self, items: list[BatchOp], request_id: str | None = None, *,
              documents: bool = False) -> dict[str, BatchItemResult]:
        """Up to 30 operations in one call (one request against the 40/min batch limit); results by bId.

        `documents`: the items create Invoices and CreditMemos, and only what the sync reads of each is decoded
        (`quickbooks.created`).
        """
        if not items:
            return {}
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"a QBO batch holds at most {MAX_BATCH_ITEMS} items, got {len(items)}")
        bids = [op.bid for op in items]
        if len(set(bids)) != len(bids) or not all(bids):
            raise ValueError("batch bIds must be unique and non-empty")
        rid = _check_request_id(request_id or str(uuid.uuid4()), BATCH_REQUEST_ID_MAX)
        content = '{"BatchItemRequest":[' + ",".join(op.to_text() for op in items) + "]}"
        body, tid = self._send("POST", "batch", content=content, params={"requestid": rid}, write=True, batch=True,
                               decode=created.decode if documents else money.loads)
        return parse_batch(body, tid)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "QBOClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
