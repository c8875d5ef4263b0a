"""In-memory ConnectWise PSA (Manage) REST API v3, held to ConnectWise's published schema.

Covers what cwqbo reads and writes: company info, invoices, billing statuses, companies, products,
time and expense entries, the accounting interface (unposted invoices, GL export, batches and their
entries) and the security role of the API member. Same shape as `qbo.QBOSimulator`:
`handle(httpx.Request) -> httpx.Response` over state guarded by a lock, `to_state()/from_state()`, and
`Faults` honoured on every API call. Every record carries only fields of pyconnectwise's models
(`schema`). This module keeps state, test helpers and routing; lists and conditions live in `query`, the
general ledger in `gl`, export documents in `export`, the accounting-interface routes in `accounting`,
request bodies in `bodies`, invoice payments in `payments`, authentication and the security role in `security`, record defaults in `records`.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import httpx

from cwqbo import money
from cwqbo.clock import Clock
from cwqbo.sandbox.connectwise import gl as cw_gl
from cwqbo.sandbox.connectwise import query as q
from cwqbo.sandbox.connectwise import security
from cwqbo.sandbox.connectwise.accounting import AccountingInterfaceMixin
from cwqbo.sandbox.connectwise.payments import InvoicePaymentsMixin
from cwqbo.sandbox.connectwise.query import Collection, CWError, json_response, not_found
from cwqbo.sandbox.connectwise.records import KINDS, TOTAL_OF, fill_invoice, fill_line
from cwqbo.sandbox.faults import DropConnection, Faults
from cwqbo.sandbox.generator import BILLING_STATUSES, CWData, company_ref, iso, make_company

REQUEST_LOG_SIZE = 500


class CWSimulator(AccountingInterfaceMixin, InvoicePaymentsMixin):
    """In-memory ConnectWise PSA for one company; see the module docstring."""

    def __init__(self, clock: Clock, faults: Faults, *, company: str = "cwqbo_demo", public_key: str = "sandbox-public",
                 private_key: str = "sandbox-private", client_id: str = "00000000-0000-4000-8000-00000000c1d0",
                 codebase: str = "v2026_1/") -> None:
        self.clock = clock
        self.faults = faults
        self.company = company
        self.public_key = public_key
        self.private_key = private_key
        self.client_id = client_id
        self.codebase = codebase if codebase.endswith("/") else codebase + "/"
        self.api_prefix = f"/{self.codebase}apis/3.0"
        self._lock = threading.RLock()
        # (method, path, Accept header or None) of the latest API requests, newest last
        self.request_log: collections.deque[tuple[str, str, str | None]] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self.from_state(self._empty_state())

    # -- state ----------------------------------------------------------------------------------------

    @staticmethod
    def _empty_state() -> dict[str, Any]:
        return {"companies": [], "billing_statuses": copy.deepcopy(BILLING_STATUSES), "invoices": [], "products": [],
                "time_entries": [], "expenses": [], "gl": cw_gl.empty_state(), "payments": [],
                "role": security.full_role(),
                "next_id": {"invoice": 1001, "company": 1, "product": 1, "time": 1, "expense": 1, "payment": 1}}

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (Decimals stay Decimal: write it with money.dumps)."""
        with self._lock:
            return copy.deepcopy(self._state)

    def state_json(self) -> str:
        """`money.dumps(self.to_state())` without the deep copy (for saving large sandboxes often)."""
        with self._lock:
            return money.dumps(self._state)

    def from_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            st = copy.deepcopy(state)
            if "gl" not in st:
                raise ValueError("this ConnectWise sandbox state predates the GL ledger; reset the sandbox")
            st.setdefault("payments", [])  # invoice payments (issue 13): older state files have none
            st["next_id"].setdefault("payment", 1)
            self._state = st
            self._reindex()

    def _reindex(self) -> None:
        st = self._state
        self._invoices: dict[int, dict[str, Any]] = {r["id"]: r for r in st["invoices"]}
        self._companies: dict[int, dict[str, Any]] = {r["id"]: r for r in st["companies"]}
        self._line_by_id: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in KINDS}
        self._lines_of: dict[str, dict[int, list[dict[str, Any]]]] = {k: {} for k in KINDS}
        for kind in KINDS:
            for row in st[kind]:
                self._index_line(kind, row)
        self.gl = cw_gl.GLLedger(st["gl"], lambda: self._invoices, self._is_closed, self._now_iso)

    def _index_line(self, kind: str, row: dict[str, Any]) -> None:
        self._line_by_id[kind][row["id"]] = row
        inv_id = (row.get("invoice") or {}).get("id")
        if inv_id is not None:
            self._lines_of[kind].setdefault(inv_id, []).append(row)

    def load(self, data: CWData, *, copy_data: bool = True) -> None:
        """Replace everything with generated data: Closed invoices get GL entries, prior batches become batches.

        `copy_data=False` adopts the records as they are (fast for large fresh data sets; the caller must
        not keep mutating them).
        """
        take: Callable[[Any], Any] = copy.deepcopy if copy_data else (lambda rows: list(rows))
        with self._lock:
            st = self._empty_state()
            st["companies"] = take(data.companies)
            st["billing_statuses"] = take(data.billing_statuses)
            st["invoices"] = take(data.invoices)
            st["products"] = take(data.products)
            st["time_entries"] = take(data.time_entries)
            st["expenses"] = take(data.expenses)
            nxt = st["next_id"]
            nxt["invoice"] = max([r["id"] for r in data.invoices], default=1000) + 1
            nxt["company"] = max([r["id"] for r in data.companies], default=0) + 1
            nxt["product"] = max([r["id"] for r in data.products], default=0) + 1
            nxt["time"] = max([r["id"] for r in data.time_entries], default=0) + 1
            nxt["expense"] = max([r["id"] for r in data.expenses], default=0) + 1
            self._state = st
            self._reindex()
            for inv_id in data.no_gl_invoice_ids:
                self.gl.keep_without_gl(inv_id)
            for inv in st["invoices"]:
                if self._is_closed(inv):
                    self.gl.post_invoice(inv, self._lines_for(inv["id"]))
            for source in ("expense", "procurement"):
                self.gl.seed_other(source, take(data.other_gl.get(source, [])))
            for prior in data.batches:
                self.batch_invoices(prior["batchIdentifier"], list(prior["invoiceIds"]))

    # -- test helpers ---------------------------------------------------------------------------------

    def invoices(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._state["invoices"])

    def invoice(self, id_: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._get_invoice(id_))

    def is_closed(self, invoice_id: int) -> bool:
        """Whether the invoice's billing status is a closed one (`BillingStatus.closedFlag`)."""
        with self._lock:
            return self._is_closed(self._get_invoice(invoice_id))

    def lines(self, invoice_id: int) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return copy.deepcopy(self._lines_for(invoice_id))

    def add_company(self, name: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            id_ = self._take_id("company")
            row = make_company(id_, name, id_)
            row.update(fields)
            self._state["companies"].append(row)
            self._companies[id_] = row
            return copy.deepcopy(row)

    def add_invoice(self, invoice: dict[str, Any] | None = None, *, company: str | dict[str, Any] = "Acme Dental",
                    products: Iterable[dict[str, Any]] = (), time_entries: Iterable[dict[str, Any]] = (),
                    expenses: Iterable[dict[str, Any]] = (), closed: bool = True, tax_rate: Decimal = Decimal("0"),
                    **fields: Any) -> dict[str, Any]:
        """Add an invoice with its lines; missing fields get defaults and totals are computed from the lines.

        Lines need only the interesting fields: products `quantity`/`price`(/`taxableFlag`/`quantityCancelled`),
        time entries `actualHours`/`hourlyRate`(/`agreementHours`), expenses `amount`. A Closed invoice gets its
        GL entries. Returns the stored invoice.
        """
        with self._lock:
            now = self.clock.now()
            inv = copy.deepcopy(invoice or {})
            inv.update(copy.deepcopy(fields))
            id_ = inv.setdefault("id", self._take_id("invoice"))
            if id_ in self._invoices:
                raise ValueError(f"invoice {id_} already exists")
            self._state["next_id"]["invoice"] = max(self._state["next_id"]["invoice"], id_ + 1)
            if "company" not in inv or not isinstance(inv["company"], dict):
                comp = company if isinstance(company, dict) else self._company_named(company)
                inv["company"] = company_ref(comp)
            cref = inv["company"]
            ref = {"id": id_, "identifier": str(inv.setdefault("invoiceNumber", str(19000 + id_)))}
            day = inv.setdefault("date", iso(dt.datetime.fromtimestamp(now, dt.timezone.utc).date()))
            status = next(s for s in self._state["billing_statuses"] if s["id"] == (3 if closed else 1))
            inv.setdefault("status", {"id": status["id"], "name": status["name"]})
            totals = {total: Decimal("0") for total in TOTAL_OF.values()}
            taxable = Decimal("0")
            stamp = {"lastUpdated": iso(dt.datetime.fromtimestamp(now, dt.timezone.utc))}
            for kind, rows in (("products", products), ("time_entries", time_entries), ("expenses", expenses)):
                for raw in rows:
                    line = copy.deepcopy(raw)
                    amount, taxed = fill_line(kind, line, invoice=ref, company=cref, day=day, stamp=stamp,
                                              tax_rate=tax_rate, take_id=self._take_id)
                    totals[TOTAL_OF[kind]] += amount
                    taxable += taxed
                    self._state[kind].append(line)
                    self._index_line(kind, line)
            fill_invoice(inv, totals, taxable, tax_rate=tax_rate, company=cref, day=day, stamp=stamp)
            self._state["invoices"].append(inv)
            self._invoices[id_] = inv
            if self._is_closed(inv):
                self.gl.post_invoice(inv, self._lines_for(id_))
            return copy.deepcopy(inv)

    def close_invoice(self, id_: int, status_name: str = "Closed") -> None:
        self._set_status(id_, status_name)

    def reopen_invoice(self, id_: int) -> None:
        self._set_status(id_, "New")

    def update_invoice(self, id_: int, **fields: Any) -> None:
        """Edit an invoice in place (bumps lastUpdated), e.g. after a correction in CW."""
        with self._lock:
            inv = self._get_invoice(id_)
            inv.update(copy.deepcopy(fields))
            self._touch(inv)

    def set_permission(self, area: str, level: str, *, kind: str = "inquire") -> None:
        """Set the API member's role right, e.g. ("Time Entry", "None") → 403 on /time/entries."""
        with self._lock:
            security.set_level(self._state["role"], area, level, kind)

    # -- internals ------------------------------------------------------------------------------------

    def _now_iso(self) -> str:
        return iso(dt.datetime.fromtimestamp(self.clock.now(), dt.timezone.utc))

    def _take_id(self, kind: str) -> int:
        nxt = self._state["next_id"]
        value: int = nxt[kind]
        nxt[kind] = value + 1
        return value

    def _lines_for(self, invoice_id: int) -> dict[str, list[dict[str, Any]]]:
        return {kind: list(self._lines_of[kind].get(invoice_id, [])) for kind in KINDS}

    def _company_named(self, name: str) -> dict[str, Any]:
        comp: dict[str, Any]
        for comp in self._state["companies"]:
            if comp["name"] == name:
                return comp
        id_ = self._take_id("company")
        comp = make_company(id_, name, id_)
        self._state["companies"].append(comp)
        self._companies[id_] = comp
        return comp

    def _get_invoice(self, id_: int) -> dict[str, Any]:
        inv = self._invoices.get(int(id_))
        if inv is None:
            raise KeyError(f"no invoice {id_}")
        return inv

    def _touch(self, inv: dict[str, Any]) -> None:
        previous = inv.get("_info", {}).get("lastUpdated", "")
        stamp = self._now_iso()
        if stamp <= previous:  # keep lastUpdated strictly increasing even when the clock stands still
            stamp = iso(dt.datetime.fromisoformat(previous.replace("Z", "+00:00")) + dt.timedelta(seconds=1))
        inv.setdefault("_info", {})["lastUpdated"] = stamp

    def _set_status(self, id_: int, name: str) -> None:
        with self._lock:
            inv = self._get_invoice(id_)
            status = next(s for s in self._state["billing_statuses"] if s["name"] == name)
            inv["status"] = {"id": status["id"], "name": status["name"]}
            self._touch(inv)
            if self._is_closed(inv):
                self.gl.post_invoice(inv, self._lines_for(id_))
            else:
                self.gl.unpost_invoice(id_)

    def _is_closed(self, inv: dict[str, Any]) -> bool:
        sid = (inv.get("status") or {}).get("id")
        return any(s["id"] == sid and s["closedFlag"] for s in self._state["billing_statuses"])

    # -- entry point ----------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        path = request.url.path
        self.request_log.append((request.method.upper(), path, request.headers.get("accept")))
        try:
            if path.lower().startswith("/login/companyinfo/"):
                return self._company_info(path.split("/")[-1] or path.rstrip("/").split("/")[-1])
            if not path.startswith(self.api_prefix + "/"):
                raise CWError(404, "NotFound", f"The resource {path} was not found")
            self._apply_faults(path)
            self._check_auth(request)
            return self._api(request, path[len(self.api_prefix):])
        except CWError as exc:
            return json_response(exc.status, exc.body)

    def _company_info(self, company: str) -> httpx.Response:
        if company.lower() != self.company.lower():
            return json_response(404, {"code": "NotFound", "message": f"Company {company} not found"})
        return json_response(200, {"CompanyName": "cwqbo Demo MSP", "Codebase": self.codebase, "VersionCode": "v2026.1",
                           "VersionNumber": "v4.6.2026", "CompanyID": self.company, "IsCloud": False,
                           "SiteUrl": "127.0.0.1"})

    def _apply_faults(self, path: str) -> None:
        if not self.faults.applies(path):
            return
        if self.faults.latency_seconds > 0:
            self.clock.sleep(self.faults.latency_seconds)
        if self.faults.take("throttle_next"):
            raise _Throttled()
        if self.faults.take("timeout_next"):
            self.clock.sleep(max(self.faults.timeout_seconds, 0))
            raise DropConnection("simulated timeout")
        if self.faults.take("error_next"):
            raise CWError(503, "ServiceUnavailable", "The service is temporarily unavailable. Please try again later.")
        if self.faults.roll_error():
            raise CWError(500, "UnexpectedError", "An unexpected error occurred. Please contact support.")

    def _check_auth(self, request: httpx.Request) -> None:
        security.check_auth(request, self.company, self.public_key, self.private_key, self.client_id)

    def _require(self, area: str, kind: str = "inquire") -> None:
        security.require(self._state["role"], area, kind)

    # -- routing --------------------------------------------------------------------------------------

    def _line_collection(self, area: str, kind: str, model: str) -> Collection:
        by_id = self._line_by_id[kind]
        of = self._lines_of[kind]
        return Collection(area, model, lambda: self._state[kind], {
            ("id",): lambda ids: [by_id[i] for i in ids if i in by_id],
            ("invoice", "id"): lambda ids: [r for i in dict.fromkeys(ids) for r in of.get(i, [])]})

    def _collections(self) -> dict[str, Collection]:
        st = self._state
        invoices = self._invoices
        batches = self.gl.batch_by_id
        return {
            "/finance/invoices": Collection("Invoicing", "Invoice", lambda: st["invoices"], {
                ("id",): lambda ids: [invoices[i] for i in ids if i in invoices]}),
            "/finance/billingstatuses": Collection("Billing Statuses", "BillingStatus", lambda: st["billing_statuses"]),
            "/company/companies": Collection("Company Maintenance", "Company", lambda: st["companies"]),
            "/procurement/products": self._line_collection("Product", "products", "ProductItem"),
            "/time/entries": self._line_collection("Time Entry", "time_entries", "TimeEntry"),
            "/expense/entries": self._line_collection("Expense Report Entry", "expenses", "ExpenseEntry"),
            "/finance/accounting/unpostedinvoices": self._unposted_collection(),
            "/finance/accounting/batches": Collection("Accounting Interface", "AccountingBatch",
                                                      lambda: st["gl"]["batches"], {
                ("id",): lambda ids: [batches[i] for i in ids if i in batches]}),
            "/system/securityroles": Collection("Security Roles", "SecurityRole", lambda: [security.role_record()]),
            "/system/members": Collection("Member Maintenance", "Member", lambda: [security.member_record()]),
        }

    def _api(self, request: httpx.Request, sub: str) -> httpx.Response:
        method = request.method.upper()
        key = sub.rstrip("/").lower()
        params = {k: v for k, v in request.url.params.multi_items()}
        if key == "/system/info":
            return json_response(200, {"version": "v2026.1.12345", "isCloud": False, "serverTimeZone": "Eastern Standard Time",
                               "licenseBits": [], "cloudRegion": "NA"})
        if key.startswith("/system/securityroles/") and key.endswith("/settings"):
            with self._lock:
                self._require("Security Roles")
                role_id = key.split("/")[3]
                if role_id != str(security.API_ROLE_ID):
                    raise not_found("SecurityRole", role_id)
                return q.listing(request, params, Collection("Security Roles", "SecurityRoleSetting",
                                                             lambda: security.role_settings(self._state["role"])))
        if key == "/finance/accounting/batches" and method == "POST":
            return self._post_batch(request)
        if key == "/finance/accounting/export" and method == "POST":
            return self._post_export(request)
        parts = key.split("/")
        if key.startswith("/finance/invoices/") and len(parts) >= 5 and parts[3].isdigit() and parts[4] == "payments":
            return self._invoice_payments_route(request, params, method, int(parts[3]), parts[5:])
        if key.startswith("/finance/accounting/batches/"):
            parts = key.split("/")[4:]
            if parts and parts[0].isdigit() and len(parts) > 1:
                return self._batch_sub(request, params, method, int(parts[0]), parts[1:])
        for base, coll in self._collections().items():
            if key == base or key == base + "/count" or key.startswith(base + "/"):
                rest = key[len(base):].strip("/")
                with self._lock:
                    if method == "DELETE" and base == "/finance/accounting/batches" and rest.isdigit():
                        self._require(coll.area, "delete")
                        if not self.gl.delete_batch(int(rest)):
                            raise not_found("AccountingBatch", rest)
                        return httpx.Response(204)
                    return self._read(request, params, method, coll, rest, sub)
        raise CWError(404, "NotFound", f"The resource {sub} was not found")

    def _read(self, request: httpx.Request, params: dict[str, str], method: str, coll: Collection, rest: str,
              sub: str) -> httpx.Response:
        if method != "GET":
            raise CWError(405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'.")
        self._require(coll.area)
        if rest == "count":
            return q.count(coll, params)
        if rest == "":
            return q.listing(request, params, coll)
        if rest.isdigit():
            return q.one(params, coll, int(rest), coll.model)
        raise CWError(404, "NotFound", f"The resource {sub} was not found")

class _Throttled(CWError):
    def __init__(self) -> None:
        super().__init__(429, "TooManyRequests", "Too many requests. Please retry after a short wait.")
