"""A faithful in-memory QuickBooks Online: OAuth 2.0, the v3 Accounting API, query, batch, throttling.

`QBOSimulator.handle(httpx.Request) -> httpx.Response` is a pure request→response function over in-memory
state, so it can sit behind an httpx transport (in-process tests) or `bridge.LoopbackServer` (third-party
clients). Behaviour follows ../shared/reference/quickbooks.md and the recorded sandbox traffic in
../shared/data/qbo; where the real service is ambiguous the choice is noted next to the code.

Batch visibility: Intuit says items run serially but "do not have visibility of earlier requests included
from the same payload". The simulator resolves references (CustomerRef, ItemRef, …) and runs batch queries
against a snapshot taken when the batch starts, while writes, SyncToken checks and DocNumber/name
uniqueness (database constraints) are checked against the live state as each item runs.

This module keeps the entry point, state, routing and query; each other concept has its own module, mixed
into `QBOSimulator` or called by it: core (state shared by the mixins), errors (faults), company (seed
data), oauth (OAuth endpoints), throttle (rate limits), batch, writes (create/update/delete/void), names
(customers, vendors, items), transactions (invoices, credit memos, sales receipts), payments (payments and
their CDC), schema (entity catalogue), values and responses (helpers). Names other code imports from here still are.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

import httpx

from cwqbo import money
from cwqbo.clock import Clock
from cwqbo.sandbox.quickbooks import fields as qbo_fields
from cwqbo.sandbox.quickbooks import query as qbo_query
from cwqbo.sandbox.faults import DropConnection, Faults
from cwqbo.sandbox.quickbooks.batch import MAX_BATCH_ITEMS, BatchMixin
from cwqbo.sandbox.quickbooks.company import default_company
from cwqbo.sandbox.quickbooks.core import View
from cwqbo.sandbox.quickbooks.errors import (QBOError, auth_failure_body, err_bad_ref, err_business, err_duplicate_name,
                                      err_length, err_not_found, err_query, err_required, err_stale, err_system_failure,
                                      err_unknown_property, err_unsupported, err_wrong_realm, fault_envelope)
from cwqbo.sandbox.quickbooks.index import IndexedTable, index_rows
from cwqbo.sandbox.quickbooks.names import NameListsMixin
from cwqbo.sandbox.quickbooks.oauth import (ACCESS_TOKEN_TTL, ACCOUNTING_SCOPE, AUTH_CODE_TTL, KNOWN_SCOPES, REFRESH_HARD_TTL,
                                     REFRESH_TOKEN_TTL, ROTATION_GRACE, OAuthMixin)
from cwqbo.sandbox.quickbooks.responses import _FAULT_CONTENT_TYPE, Handler, _api_headers, _response
from cwqbo.sandbox.quickbooks.schema import (ENTITY_BY_PATH, NAME_LISTS, NUMERIC_FIELDS, PEOPLE, TRANSACTIONS, TXN_TYPE_LABEL,
                                      WRITABLE)
from cwqbo.sandbox.quickbooks.payments import PaymentsMixin
from cwqbo.sandbox.quickbooks.throttle import BATCH_LIMIT_PER_MIN, MAX_IN_FLIGHT, RATE_LIMIT_PER_MIN, ThrottleMixin
from cwqbo.sandbox.quickbooks.transactions import TransactionsMixin
from cwqbo.sandbox.quickbooks.values import (_from_jsonable, _id_sort, _int_or_none, _iso_millis, _iso_seconds, _new_tid,
                                      _public, _to_jsonable, _values_at)
from cwqbo.sandbox.quickbooks.writes import WritesMixin

# Everything this module has always offered, now defined in the qbo_* module named for its concept.
__all__ = [
    "ACCESS_TOKEN_TTL", "ACCOUNTING_SCOPE", "AUTH_CODE_TTL", "BATCH_LIMIT_PER_MIN", "BATCH_REQUEST_ID_MAX",
    "ENTITY_BY_PATH", "Handler", "KNOWN_SCOPES", "MAX_BATCH_ITEMS", "MAX_IN_FLIGHT", "MIN_MINOR_VERSION", "NAME_LISTS",
    "NUMERIC_FIELDS", "PEOPLE", "QBOError", "QBOSimulator", "RATE_LIMIT_PER_MIN", "REFRESH_HARD_TTL",
    "REFRESH_TOKEN_TTL", "REQUEST_ID_MAX", "ROTATION_GRACE", "TRANSACTIONS", "TXN_TYPE_LABEL", "WRITABLE",
    "_values_at", "default_company", "err_bad_ref", "err_business", "err_duplicate_name", "err_length",
    "err_not_found", "err_query", "err_required", "err_stale", "err_unknown_property", "err_unsupported",
]

REQUEST_ID_MAX = 50
BATCH_REQUEST_ID_MAX = 36
MIN_MINOR_VERSION = 75


class QBOSimulator(OAuthMixin, ThrottleMixin, BatchMixin, PaymentsMixin, WritesMixin, NameListsMixin,
                   TransactionsMixin):
    """In-memory QuickBooks Online for one realm (company); see the module docstring."""

    def __init__(self, clock: Clock, faults: Faults, *, realm_id: str = "9341453000000000", country: str = "US",
                 client_id: str = "sandbox-client-id", client_secret: str = "sandbox-client-secret",
                 custom_txn_numbers: bool = True, redirect_uris: list[str] | None = None,
                 admin_name: str = "Sandbox Admin") -> None:
        self.clock = clock
        self.faults = faults
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = redirect_uris  # None: any http(s) URI is registered (loopback dev apps)
        self.admin_name = admin_name
        self._lock = threading.RLock()
        self._flight_lock = threading.Lock()
        self._in_flight = 0
        self._requests: deque[float] = deque()
        self._batches: deque[float] = deque()
        self.from_state(default_company(country, realm_id=realm_id, custom_txn_numbers=custom_txn_numbers,
                                        created=clock.now()))

    # -- state ----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-safe snapshot (Decimals as strings) for a loopback server's state file."""
        with self._lock:
            state: dict[str, Any] = _to_jsonable(copy.deepcopy(self._state))
            return state

    def from_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._state = _from_jsonable(copy.deepcopy(state))
            for name in ENTITY_BY_PATH.values():  # state files written before an entity was simulated
                self._state["entities"].setdefault(name, {})
            self._state.setdefault("deleted", {})  # tombstones of deleted Payments, for CDC
            tables = self._state["entities"]
            for name in list(tables):  # Id/DocNumber/name indexes (sandbox/quickbooks/index.py)
                tables[name] = IndexedTable(tables[name])
            self.realm_id: str = self._state["realm_id"]
            self.country: str = self._state["country"]

    # -- test helpers ---------------------------------------------------------------------------------

    def documents(self, entity: str) -> list[dict[str, Any]]:
        """Every stored object of `entity` as the API would return it (id order)."""
        with self._lock:
            rows = self._entities.get(entity, {})
            return [copy.deepcopy(_public(rows[k])) for k in sorted(rows, key=_id_sort)]

    def get(self, entity: str, id_: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._entities.get(entity, {}).get(str(id_))
            return copy.deepcopy(_public(obj)) if obj else None

    def add(self, entity: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Insert a seed object directly (no validation); fills Id/SyncToken/MetaData if missing."""
        with self._lock:
            now = self.clock.now()
            row = copy.deepcopy(obj)
            row.setdefault("Id", self._next_id(entity))
            row.setdefault("SyncToken", "0")
            row.setdefault("domain", "QBO")
            row.setdefault("sparse", False)
            row.setdefault("MetaData", {"CreateTime": _iso_seconds(now), "LastUpdatedTime": _iso_seconds(now)})
            if entity in NAME_LISTS and entity != "TaxRate":
                row.setdefault("Active", True)
            self._entities.setdefault(entity, {})[str(row["Id"])] = row
            n = _int_or_none(row["Id"])
            if n is not None and n >= self._state["next_id"].get(entity, 1):
                self._state["next_id"][entity] = n + 1
            return copy.deepcopy(row)

    def set_preference(self, section: str, name: str, value: Any) -> None:
        with self._lock:
            self.preferences.setdefault(section, {})[name] = value

    def issue_tokens(self, *, hard_expiry: bool = False) -> dict[str, Any]:
        """A fresh grant without the browser step (what `connect` would end up with)."""
        with self._lock:
            grant = self._new_grant(scope=ACCOUNTING_SCOPE)
            return self._token_response(grant, hard_expiry)

    def expire_access_tokens(self) -> None:
        """Make every issued access token expire now (as if an hour had passed)."""
        with self._lock:
            now = self.clock.now()
            for rec in self._state["oauth"]["access"].values():
                rec["expires_at"] = min(rec["expires_at"], now)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- entry point ----------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        tid = _new_tid(self.clock.now())
        path = request.url.path
        try:
            if path.startswith("/v3/"):
                return self._handle_api(request, tid)
            if path.rstrip("/") in ("/.well-known/openid_sandbox_configuration", "/.well-known/openid_configuration"):
                return self._discovery(request, tid)
            if path.rstrip("/") == "/connect/oauth2":
                return self._authorize(request, tid)
            if path.rstrip("/") == "/oauth2/v1/tokens/bearer":
                return self._token(request, tid)
            if path.rstrip("/") == "/v2/oauth2/tokens/revoke":
                return self._revoke(request, tid)
            return _response(404, {"error": "not_found"}, tid)
        except DropConnection:
            raise
        except QBOError as exc:  # pragma: no cover - all QBOErrors are caught below; defensive
            return self._fault_response(exc, tid)
    # -- API plumbing ---------------------------------------------------------------------------------

    def _fault_response(self, exc: QBOError, tid: str) -> httpx.Response:
        return _response(exc.status, fault_envelope(exc, _iso_millis(self.clock.now())), tid,
                         content_type=_FAULT_CONTENT_TYPE)

    def _auth_failure(self, tid: str, detail: str) -> httpx.Response:
        body = auth_failure_body(detail, int(self.clock.now() * 1000))
        return _response(401, body, tid, content_type="application/json",
                         extra={"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'})

    def _system_fault(self, status: int, tid: str) -> httpx.Response:
        return self._fault_response(err_system_failure(status), tid)

    def _handle_api(self, request: httpx.Request, tid: str) -> httpx.Response:
        path = request.url.path
        with self._flight_lock:
            self._in_flight += 1
            in_flight = self._in_flight
        try:
            if self.faults.applies(path):
                if self.faults.latency_seconds > 0:
                    time.sleep(self.faults.latency_seconds)
                if self.faults.take("throttle_next"):
                    return self._throttled(tid)
                if self.faults.take("timeout_next"):
                    time.sleep(max(self.faults.timeout_seconds, 0))
                    raise DropConnection("simulated timeout")
                if self.faults.take("error_next"):
                    return self._system_fault(503, tid)
                if self.faults.roll_error():
                    return self._system_fault(500, tid)
            return self._api(request, tid, in_flight)
        finally:
            with self._flight_lock:
                self._in_flight -= 1

    def _check_auth(self, request: httpx.Request, realm: str, tid: str) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return self._auth_failure(tid, "Authorization header missing or not Bearer")
        token = header[7:].strip()
        with self._lock:
            oauth = self._state["oauth"]
            rec = oauth["access"].get(token)
            grant = oauth["grants"].get(rec["grant"]) if rec else None
            if rec is None or grant is None or grant["revoked"]:
                return self._auth_failure(tid, f"Token revoked or invalid: {token[:50]}")
            if rec["expires_at"] <= self.clock.now():
                return self._auth_failure(tid, f"Token expired: {token[:50]}")
            if grant["realm"] != realm:
                return self._fault_response(err_wrong_realm(), tid)
        return None

    def _api(self, request: httpx.Request, tid: str, in_flight: int) -> httpx.Response:
        path = request.url.path
        m = re.match(r"^/v3/company/([^/]+)/(.+?)/?$", path)
        if not m:
            return self._fault_response(err_unsupported(path, str(request.url)), tid)
        realm, rest = m.group(1), m.group(2)
        denied = self._check_auth(request, realm, tid)
        if denied is not None:
            return denied
        segments = rest.split("/")
        if self._rate_limited(segments[0] == "batch", in_flight):
            return self._throttled(tid)
        params = {k: v[-1] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
        request_id = params.get("requestid", "")
        is_batch = segments[0] == "batch"
        limit = BATCH_REQUEST_ID_MAX if is_batch else REQUEST_ID_MAX
        if request_id and len(request_id) > limit:
            return self._fault_response(err_length("requestid", limit, len(request_id)), tid)
        replay_key = "|".join((request.method, rest.lower(), params.get("operation", ""), request_id))
        if request_id and request.method == "POST":
            with self._lock:
                saved = self._state["requestids"].get(replay_key)
            if saved is not None:
                return httpx.Response(saved["status"], content=saved["body"].encode(),
                                      headers=_api_headers(tid, saved["content_type"]))
        committed_create = False
        with self._lock:
            try:
                body, committed_create = self._dispatch(request, segments, params)
                status = 200
            except QBOError as exc:
                body, status = fault_envelope(exc, _iso_millis(self.clock.now())), exc.status
            response = _response(status, body, tid,
                                 content_type=_FAULT_CONTENT_TYPE if status >= 400 else "application/json;charset=utf-8")
            if request_id and request.method == "POST" and status < 500:
                self._state["requestids"][replay_key] = {"status": status, "body": response.content.decode(),
                                                         "content_type": response.headers["content-type"]}
        if committed_create and self.faults.applies(path) and self.faults.take("drop_after_commit_next"):
            raise DropConnection("simulated connection drop after commit")
        return response

    # -- API routing ----------------------------------------------------------------------------------

    def _dispatch(self, request: httpx.Request, segments: list[str], params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        head = segments[0].lower()
        now = self.clock.now()
        if head == "query" and len(segments) == 1:
            if request.method == "GET":
                text = params.get("query", "")
            else:
                text = request.content.decode("utf-8", "replace")
            return {"QueryResponse": self._run_query(text, self._entities), "time": _iso_millis(now)}, False
        if head == "cdc" and len(segments) == 1 and request.method == "GET":
            return self._cdc(params), False
        if head == "batch" and len(segments) == 1 and request.method == "POST":
            return self._batch(self._parse_body(request, "BatchItemRequest"), params)
        entity = ENTITY_BY_PATH.get(head)
        if entity is None or len(segments) > 2:
            raise err_unsupported("/v3/company/" + "/".join([self.realm_id, *segments]), str(request.url))
        if entity == "Preferences" and len(segments) == 1 and request.method == "GET":
            return {"Preferences": copy.deepcopy(self.preferences), "time": _iso_millis(now)}, False
        if len(segments) == 2 and request.method == "GET":
            return {entity: self._read(entity, segments[1]), "time": _iso_millis(now)}, False
        if len(segments) == 1 and request.method == "POST" and entity == "Payment":
            operation = params.get("operation", "").lower()
            if operation == "update" and "void" in params.get("include", "").lower():
                operation = "void"  # python-quickbooks VoidMixin's spelling of a Payment void
            result, created = self._write_payment(self._parse_body(request, entity), operation, self._entities)
            return {entity: result, "time": _iso_millis(now)}, created
        if len(segments) == 1 and request.method == "POST" and entity in WRITABLE:
            payload = self._parse_body(request, entity)
            result, created = self._write(entity, payload, params.get("operation", "").lower(),
                                          "allowduplicatedocnum" in params.get("include", "").lower(), self._entities)
            return {entity: result, "time": _iso_millis(now)}, created
        raise err_unsupported("/v3/company/" + "/".join([self.realm_id, *segments]), str(request.url))

    def _parse_body(self, request: httpx.Request, entity: str) -> dict[str, Any]:
        try:
            body = money.loads(request.content.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise QBOError("2010", "Request has invalid or unsupported property",
                           "Property Name:Invalid UTF-8 start byte specified is unsupported or invalid", None) from exc
        except ValueError as exc:
            raise QBOError("2010", "Request has invalid or unsupported property",
                           f"Property Name:Unexpected character in the request body ({exc.args[0]}) specified is "
                           "unsupported or invalid", None) from exc
        if not isinstance(body, dict):
            raise QBOError("2010", "Request has invalid or unsupported property",
                           f"Property Name:Can not deserialize instance of {entity} specified is unsupported or invalid",
                           None)
        return body

    def _read(self, entity: str, id_: str) -> dict[str, Any]:
        if entity == "CompanyInfo":
            obj = self._entities["CompanyInfo"].get(id_)
            if obj is None:
                raise err_not_found()
            return copy.deepcopy(obj)
        if entity != "TaxCode" and not re.fullmatch(r"\d+", id_):
            raise QBOError("2030", "Invalid ID", f"Id should be a valid number. Supplied value:{id_}", "Id")
        obj = self._entities[entity].get(id_)
        if obj is None:
            raise err_not_found()
        return copy.deepcopy(_public(obj))

    # -- query ----------------------------------------------------------------------------------------

    def _run_query(self, text: str, view: View) -> dict[str, Any]:
        try:
            query = qbo_query.parse(text)
        except qbo_query.QueryError as exc:
            raise err_query(exc.detail, exc.code) from exc
        if query.entity not in view:
            raise err_query(f"QueryValidationError: Invalid entity name {query.entity}; entity names are "
                            "case-sensitive", "4001") if query.entity.lower() in ENTITY_BY_PATH else err_query(
                f'QueryParserError: Encountered " <IDENTIFIER> "{query.entity} "" : unknown entity')
        # A WHERE or ORDERBY on a property the entity lacks (Intuit's schema, qbo_fields) is QBO's 4001
        # "Invalid query" / "QueryValidationError: property 'X' is not queryable" (the wording QBO answered in
        # ruckus/quickbooks-ruby#403), never a silent empty answer.
        for name in [c.field for c in query.where] + [n for n, _desc in query.order_by]:
            if not qbo_fields.resolve(query.entity, name):
                raise err_query(f"QueryValidationError: property '{name}' is not queryable", "4001")
        indexed = index_rows(view[query.entity], self._entities.get(query.entity), query.where)
        rows = [_public(r) for r in (view[query.entity].values() if indexed is None else indexed)]
        if query.entity in NAME_LISTS and not query.mentions("Active"):
            rows = [r for r in rows if r.get("Active", True)]
        page, total = qbo_query.execute(query, rows)
        if query.select == "count":
            return {"totalCount": total}
        if not page:
            return {}
        return {query.entity: copy.deepcopy(page), "startPosition": query.start_position, "maxResults": len(page)}


class DirectTokens:
    """A QBO token source that takes tokens straight from a simulator, skipping the browser step of OAuth.

    For tests and benchmarks that exercise the API, not the connection (OAuth has its own tests and `demo`).
    """

    def __init__(self, sim: QBOSimulator) -> None:
        self.sim = sim
        self.token = self._issue()

    def _issue(self) -> str:
        return str(self.sim.issue_tokens()["access_token"])

    def access_token(self) -> str:
        return self.token

    def force_refresh(self) -> str:
        self.token = self._issue()
        return self.token
