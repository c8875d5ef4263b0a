"""In-memory ConnectWise PSA (Manage) REST API v3, faithful enough that a real client cannot tell.

Covers what cwqbo reads and writes: company info, invoices, billing statuses, companies, products,
time and expense entries, the accounting interface (unposted invoices, batches) and the security
role of the API member. Same shape as `qbo.QBOSimulator`: `handle(httpx.Request) -> httpx.Response`
over state guarded by a lock, `to_state()/from_state()`, and `Faults` honoured on every API call.
Field names and shapes follow ../shared/reference/connectwise.md.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import math
import threading
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

from cwqbo import money
from cwqbo.clock import Clock
from cwqbo.sandbox import conditions as cond
from cwqbo.sandbox.faults import DropConnection, Faults
from cwqbo.sandbox.generator import BILLING_STATUSES, CWData, company_ref, iso, make_company

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000
LEVELS = ("None", "Mine", "My Department", "My Location", "All")

# security-role module functions: (area name, module, identifier)
ROLE_FUNCTIONS: list[tuple[str, str, str]] = [
    ("Time Entry", "Time & Expense", "TimeEntry"),
    ("Expense Report Entry", "Time & Expense", "ExpenseEntry"),
    ("Invoicing", "Finance", "Invoicing"),
    ("Accounting Interface", "Finance", "AccountingInterface"),
    ("Billing Statuses", "Finance", "BillingStatuses"),
    ("Product", "Procurement", "Product"),
    ("Company Maintenance", "Companies", "CompanyMaintenance"),
    ("Security Roles", "System", "SecurityRoles"),
    ("Member Maintenance", "System", "MemberMaintenance"),
]
API_ROLE_ID = 7
API_MEMBER = {"id": 190, "identifier": "cwqbo-api", "firstName": "cwqbo", "lastName": "API", "name": "cwqbo API",
              "memberType": "API", "inactiveFlag": False, "licenseClass": "A", "defaultEmail": "Office",
              "defaultPhone": "Office", "agreementInvoicingDisplayOptions": "RemainOnInvoicingScreen",
              "invoicingDisplayOptions": "RemainOnInvoicingScreen", "invoiceScreenDefaultTabFormat": "ShowInvoicingTab"}


class CWError(Exception):
    """An API error answered as the real service would (status + JSON body)."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message}
        if errors is not None:
            self.body["errors"] = errors


def _bad_request(message: str, field: str, resource: str, code: str = "InvalidField") -> CWError:
    return CWError(400, "InvalidObject", f"{resource} object is invalid",
                   [{"code": code, "message": message, "resource": resource, "field": field}])


def _not_found(resource: str, id_: Any) -> CWError:
    return CWError(404, "NotFound", f"{resource} recId {id_} not found")


class CWSimulator:
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
        self.from_state(self._empty_state())

    # -- state ----------------------------------------------------------------------------------------

    @staticmethod
    def _empty_state() -> dict[str, Any]:
        return {"companies": [], "billing_statuses": copy.deepcopy(BILLING_STATUSES), "invoices": [], "products": [],
                "time_entries": [], "expenses": [], "batches": [], "batched": {},
                "role": {name: {"inquireLevel": "All", "addLevel": "All", "editLevel": "All", "deleteLevel": "All"}
                         for name, _, _ in ROLE_FUNCTIONS},
                "next_id": {"invoice": 1001, "company": 1, "product": 1, "time": 1, "expense": 1, "batch": 1}}

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (Decimals stay Decimal: write it with money.dumps)."""
        with self._lock:
            state = copy.deepcopy(self._state)
            state["batched"] = {str(k): v for k, v in state["batched"].items()}
            return state

    def state_json(self) -> str:
        """`money.dumps(self.to_state())` without the deep copy (for saving large sandboxes often)."""
        with self._lock:
            return money.dumps({**self._state, "batched": {str(k): v for k, v in self._state["batched"].items()}})

    def from_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            st = copy.deepcopy(state)
            st["batched"] = {int(k): v for k, v in st.get("batched", {}).items()}
            self._state = st
            self._reindex()

    def _reindex(self) -> None:
        st = self._state
        self._invoices = {r["id"]: r for r in st["invoices"]}
        self._companies = {r["id"]: r for r in st["companies"]}

    def load(self, data: CWData, *, copy_data: bool = True) -> None:
        """Replace everything with generated data (prior batches become real batches).

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
            for prior in data.batches:
                self._create_batch(prior["batchIdentifier"], list(prior["invoiceIds"]), {})

    # -- test helpers ---------------------------------------------------------------------------------

    def invoices(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._state["invoices"])

    def invoice(self, id_: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._get_invoice(id_))

    def batches(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._state["batches"])

    def unposted_ids(self) -> list[int]:
        with self._lock:
            return [r["id"] for r in self._state["invoices"] if self._is_unposted(r)]

    def lines(self, invoice_id: int) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {kind: copy.deepcopy([r for r in self._state[kind] if (r.get("invoice") or {}).get("id") == invoice_id])
                    for kind in ("products", "time_entries", "expenses")}

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

        Lines need only the interesting fields: products `quantity`/`price`(/`taxableFlag`), time entries
        `actualHours`/`hourlyRate`, expenses `amount`. Returns the stored invoice.
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
            inv.setdefault("status", {"id": status["id"], "name": status["name"], "isClosed": status["closedFlag"]})
            totals = {"productTotal": Decimal("0"), "serviceTotal": Decimal("0"), "expenseTotal": Decimal("0")}
            taxable = Decimal("0")
            for kind, rows, total_key in (("products", products, "productTotal"), ("time_entries", time_entries,
                                                                                  "serviceTotal"),
                                          ("expenses", expenses, "expenseTotal")):
                for raw in rows:
                    line = copy.deepcopy(raw)
                    line.setdefault("id", self._take_id({"products": "product", "time_entries": "time",
                                                         "expenses": "expense"}[kind]))
                    line.setdefault("invoice", ref)
                    line.setdefault("company", cref)
                    line.setdefault("billableOption", "Billable")
                    line.setdefault("_info", {"lastUpdated": iso(dt.datetime.fromtimestamp(now, dt.timezone.utc))})
                    if kind == "products":
                        line.setdefault("catalogItem", {"id": 1, "identifier": "MISC"})
                        line.setdefault("description", line["catalogItem"]["identifier"])
                        line["quantity"] = money.to_decimal(line.get("quantity", 1))
                        line["price"] = money.to_decimal(line.get("price", 0))
                        line.setdefault("taxableFlag", tax_rate > 0)
                        amount = money.round_cents(line["quantity"] * line["price"])
                        if line["taxableFlag"]:
                            taxable += amount
                    elif kind == "time_entries":
                        line.setdefault("chargeToType", "ServiceTicket")
                        line.setdefault("member", {"id": 101, "identifier": "jlee", "name": "Jordan Lee"})
                        line.setdefault("workType", {"id": 1, "name": "Regular"})
                        line.setdefault("workRole", {"id": 1, "name": "Engineer"})
                        line.setdefault("timeStart", day)
                        line["actualHours"] = money.to_decimal(line.get("actualHours", 1))
                        line["hourlyRate"] = money.to_decimal(line.get("hourlyRate", 0))
                        line.setdefault("hoursBilled", line["actualHours"])
                        line.setdefault("notes", "")
                        amount = money.round_cents(line["actualHours"] * line["hourlyRate"])
                    else:
                        line.setdefault("type", {"id": 1, "name": "Mileage"})
                        line.setdefault("date", day)
                        line.setdefault("notes", "")
                        line["amount"] = money.to_decimal(line.get("amount", 0))
                        amount = line["amount"]
                    if line["billableOption"] == "Billable":
                        totals[total_key] += amount
                    self._state[kind].append(line)
            subtotal = sum(totals.values(), Decimal("0"))
            tax = money.round_cents(taxable * tax_rate)
            inv.setdefault("type", "CreditMemo" if subtotal < 0 else "Standard")
            for key, value in totals.items():
                inv.setdefault(key, value)
            inv.setdefault("subtotal", subtotal)
            inv.setdefault("salesTax", tax)
            inv.setdefault("total", inv["subtotal"] + inv["salesTax"])
            inv.setdefault("balance", inv["total"])
            inv.setdefault("agreementAmount", Decimal("0"))
            inv.setdefault("billToCompany", cref)
            inv.setdefault("shipToCompany", cref)
            inv.setdefault("applyToType", "All")
            inv.setdefault("dueDate", day)
            inv.setdefault("billingTerms", {"id": 1, "name": "Net 30"})
            inv.setdefault("taxCode", {"id": 1, "name": "Tax Exempt"} if tax_rate == 0 else {"id": 2, "name": "Sales Tax"})
            inv.setdefault("taxableFlag", tax_rate > 0)
            inv.setdefault("location", {"id": 1, "name": "Main"})
            inv.setdefault("locationId", inv["location"]["id"])
            inv.setdefault("department", {"id": 10, "name": "Managed Services"})
            inv.setdefault("departmentId", inv["department"]["id"])
            inv.setdefault("businessUnit", inv["department"])
            for key in ("customerPO", "reference", "topComment", "bottomComment", "internalNotes"):
                inv.setdefault(key, "")
            inv.setdefault("currency", {"id": 1, "symbol": "$", "isoCode": "USD", "name": "US Dollar"})
            inv.setdefault("_info", {"lastUpdated": iso(dt.datetime.fromtimestamp(now, dt.timezone.utc))})
            self._state["invoices"].append(inv)
            self._invoices[id_] = inv
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
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        with self._lock:
            if area not in self._state["role"]:
                raise ValueError(f"unknown area {area!r}; known: {', '.join(self._state['role'])}")
            kinds = ("inquire", "add", "edit", "delete") if kind == "all" else (kind,)
            for k in kinds:
                self._state["role"][area][f"{k}Level"] = level

    # -- internals ------------------------------------------------------------------------------------

    def _take_id(self, kind: str) -> int:
        nxt = self._state["next_id"]
        value = nxt[kind]
        nxt[kind] = value + 1
        return value

    def _company_named(self, name: str) -> dict[str, Any]:
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
        now = dt.datetime.fromtimestamp(self.clock.now(), dt.timezone.utc)
        previous = inv.get("_info", {}).get("lastUpdated", "")
        stamp = iso(now)
        if stamp <= previous:  # keep lastUpdated strictly increasing even when the clock stands still
            stamp = iso(dt.datetime.fromisoformat(previous.replace("Z", "+00:00")) + dt.timedelta(seconds=1))
        inv.setdefault("_info", {})["lastUpdated"] = stamp

    def _set_status(self, id_: int, name: str) -> None:
        with self._lock:
            inv = self._get_invoice(id_)
            status = next(s for s in self._state["billing_statuses"] if s["name"] == name)
            inv["status"] = {"id": status["id"], "name": status["name"], "isClosed": status["closedFlag"]}
            self._touch(inv)

    def _is_closed(self, inv: dict[str, Any]) -> bool:
        sid = (inv.get("status") or {}).get("id")
        return any(s["id"] == sid and s["closedFlag"] for s in self._state["billing_statuses"])

    def _is_unposted(self, inv: dict[str, Any]) -> bool:
        return self._is_closed(inv) and inv["id"] not in self._state["batched"]

    def _unposted_record(self, inv: dict[str, Any]) -> dict[str, Any]:
        comp = self._companies.get(inv["company"]["id"], {})
        return {"id": inv["id"], "billingLogId": inv["id"], "locationId": inv.get("locationId"),
                "departmentId": inv.get("departmentId"), "company": inv["company"],
                "accountNumber": comp.get("accountNumber", ""), "billToCompany": inv.get("billToCompany"),
                "billToSite": inv.get("billingSite"), "shipToCompany": inv.get("shipToCompany"),
                "shipToSite": inv.get("shippingSite"), "invoiceNumber": inv["invoiceNumber"],
                "invoiceDate": inv.get("date"), "invoiceType": inv.get("type"), "description": inv.get("reference", ""),
                "billingTerms": inv.get("billingTerms"), "dueDays": "30", "dueDate": inv.get("dueDate"),
                "currency": inv.get("currency"), "subTotal": inv["subtotal"], "total": inv["total"],
                "invoiceTaxableFlag": inv.get("taxableFlag", False), "taxCode": inv.get("taxCode"),
                "avalaraTaxFlag": False, "itemTaxableFlag": False, "salesTaxAmount": inv["salesTax"],
                "createdBy": "jlee", "dateClosed": inv.get("_info", {}).get("lastUpdated"),
                "_info": inv.get("_info")}

    def _create_batch(self, identifier: str, ids: list[int], body: dict[str, Any]) -> dict[str, Any]:
        now = iso(dt.datetime.fromtimestamp(self.clock.now(), dt.timezone.utc))
        batch_id = self._take_id("batch")
        batch = {"id": batch_id, "batchIdentifier": identifier,
                 "exportInvoicesFlag": bool(body.get("exportInvoicesFlag", True)),
                 "exportExpensesFlag": bool(body.get("exportExpensesFlag", False)),
                 "exportProductsFlag": bool(body.get("exportProductsFlag", False)), "closedFlag": False,
                 "thruDate": now, "locationId": body.get("locationId"),
                 "summarizeInvoices": body.get("summarizeInvoices", "Default"),
                 "includedInvoiceIds": list(ids), "excludedInvoiceIds": [],
                 "_info": {"dateEntered": now, "lastUpdated": now, "enteredBy": API_MEMBER["identifier"]}}
        self._state["batches"].append(batch)
        for id_ in ids:
            self._state["batched"][id_] = batch_id
        return batch

    # -- entry point ----------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        path = request.url.path
        try:
            if path.lower().startswith("/login/companyinfo/"):
                return self._company_info(path.split("/")[-1] or path.rstrip("/").split("/")[-1])
            if not path.startswith(self.api_prefix + "/"):
                raise CWError(404, "NotFound", f"The resource {path} was not found")
            self._apply_faults(path)
            self._check_auth(request)
            return self._api(request, path[len(self.api_prefix):])
        except CWError as exc:
            return _json(exc.status, exc.body)

    def _company_info(self, company: str) -> httpx.Response:
        if company.lower() != self.company.lower():
            return _json(404, {"code": "NotFound", "message": f"Company {company} not found"})
        return _json(200, {"CompanyName": "cwqbo Demo MSP", "Codebase": self.codebase, "VersionCode": "v2026.1",
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
        header = request.headers.get("authorization", "")
        ok = False
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = ""
            company, _, public = user.partition("+")
            ok = (company.lower() == self.company.lower() and public == self.public_key
                  and password == self.private_key)
        if not ok:
            raise CWError(401, "Unauthorized", "Unauthorized: the company, public key or private key is incorrect.")
        client_id = request.headers.get("clientid", "")
        try:
            valid_guid = bool(client_id) and uuid.UUID(client_id) is not None
        except ValueError:
            valid_guid = False
        if not client_id:
            raise CWError(401, "Unauthorized", "clientId header is required. "
                          "Register at https://developer.connectwise.com/ClientID")
        if not valid_guid or client_id.lower() != self.client_id.lower():
            raise CWError(401, "Unauthorized", f"Invalid clientId: {client_id}")

    def _require(self, area: str, kind: str = "inquire") -> None:
        level = self._state["role"][area][f"{kind}Level"]
        if level == "None":
            raise CWError(403, "Forbidden", f"You do not have {kind.capitalize()} rights to {area}. "
                          "Contact your ConnectWise administrator.")

    # -- routing --------------------------------------------------------------------------------------

    def _collections(self) -> dict[str, tuple[str, Callable[[], list[dict[str, Any]]], str]]:
        st = self._state
        return {
            "/finance/invoices": ("Invoicing", lambda: st["invoices"], "Invoice"),
            "/finance/billingstatuses": ("Billing Statuses", lambda: st["billing_statuses"], "BillingStatus"),
            "/company/companies": ("Company Maintenance", lambda: st["companies"], "Company"),
            "/procurement/products": ("Product", lambda: st["products"], "ProductItem"),
            "/time/entries": ("Time Entry", lambda: st["time_entries"], "TimeEntry"),
            "/expense/entries": ("Expense Report Entry", lambda: st["expenses"], "ExpenseEntry"),
            "/finance/accounting/unpostedinvoices": (
                "Accounting Interface",
                lambda: [self._unposted_record(r) for r in st["invoices"] if self._is_unposted(r)], "UnpostedInvoice"),
            "/finance/accounting/batches": ("Accounting Interface", lambda: st["batches"], "AccountingBatch"),
            "/system/securityroles": ("Security Roles", lambda: [self._role()], "SecurityRole"),
            "/system/members": ("Member Maintenance", lambda: [self._member()], "Member"),
        }

    def _api(self, request: httpx.Request, sub: str) -> httpx.Response:
        method = request.method.upper()
        key = sub.rstrip("/").lower()
        params = {k: v for k, v in request.url.params.multi_items()}
        if key == "/system/info":
            return _json(200, {"version": "v2026.1.12345", "isCloud": False, "serverTimeZone": "Eastern Standard Time",
                               "licenseBits": [], "cloudRegion": "NA"})
        if key.startswith("/system/securityroles/") and key.endswith("/settings"):
            with self._lock:
                self._require("Security Roles")
                role_id = key.split("/")[3]
                if role_id != str(API_ROLE_ID):
                    raise _not_found("SecurityRole", role_id)
                return self._list(request, params, self._role_settings())
        if key == "/finance/accounting/batches" and method == "POST":
            return self._post_batch(request)
        if key == "/finance/accounting/export" and method == "POST":
            with self._lock:
                self._require("Accounting Interface")
                body = self._body(request)
                ids = self._batch_ids(body)
                return _json(200, self._gl_export(str(body.get("batchIdentifier") or ""), ids))
        collections = self._collections()
        for base, (area, rows, resource) in collections.items():
            if key == base or key == base + "/count" or key.startswith(base + "/"):
                rest = key[len(base):].strip("/")
                with self._lock:
                    if method == "DELETE" and base == "/finance/accounting/batches" and rest.isdigit():
                        self._require(area, "delete")
                        return self._delete_batch(int(rest))
                    if method != "GET":
                        raise CWError(405, "MethodNotAllowed", f"The requested resource does not support http method "
                                      f"'{method}'.")
                    self._require(area)
                    if rest == "count":
                        pred = self._predicate(params)
                        return _json(200, {"count": sum(1 for r in rows() if pred(r))})
                    if rest == "":
                        return self._list(request, params, rows())
                    if rest.isdigit():
                        for row in rows():
                            if row["id"] == int(rest):
                                return _json(200, _project(row, params.get("fields")))
                        raise _not_found(resource, rest)
                    raise CWError(404, "NotFound", f"The resource {sub} was not found")
        raise CWError(404, "NotFound", f"The resource {sub} was not found")

    def _predicate(self, params: dict[str, str]) -> Callable[[Any], bool]:
        try:
            return cond.compile_conditions(params.get("conditions"))
        except cond.ConditionError as exc:
            raise CWError(400, **_unpack(cond.error_body(exc))) from None

    def _list(self, request: httpx.Request, params: dict[str, str], rows: list[dict[str, Any]]) -> httpx.Response:
        pred = self._predicate(params)
        selected = [r for r in rows if pred(r)]
        order = params.get("orderBy") or params.get("orderby")
        if order:
            for part in reversed([p.strip() for p in order.split(",") if p.strip()]):
                words = part.split()
                path = tuple(words[0].split("/"))
                desc = len(words) > 1 and words[1].lower() == "desc"
                if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                    raise CWError(400, "InvalidObject", f"Invalid orderBy: {order}")
                present = [r for r in selected if cond.lookup(r, path) is not None]
                missing = [r for r in selected if cond.lookup(r, path) is None]
                present.sort(key=lambda r: _sort_key(cond.lookup(r, path)), reverse=desc)
                selected = (missing + present) if not desc else (present + missing)
        page = _int_param(params, "page", 1)
        size = _int_param(params, "pageSize", DEFAULT_PAGE_SIZE)
        if page < 1:
            raise CWError(400, "InvalidObject", "page must be greater than 0")
        size = max(1, min(size, MAX_PAGE_SIZE))
        chunk = selected[(page - 1) * size: page * size]
        body = [_project(r, params.get("fields")) for r in chunk]
        headers: dict[str, str] = {}
        last = max(1, math.ceil(len(selected) / size))
        links = []
        base = str(request.url.copy_with(query=None))

        def link(p: int, rel: str) -> str:
            # page goes last, as the real API writes it (pyconnectwise parses `page=N>` from each link)
            q = {k: v for k, v in params.items() if k.lower() not in ("page", "pagesize")}
            q["pageSize"] = str(size)
            q["page"] = str(p)
            return f'<{base}?{urlencode(q)}>; rel="{rel}"'

        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if links:
            headers["Link"] = ", ".join(links)
        return _json(200, body, headers)

    def _body(self, request: httpx.Request) -> dict[str, Any]:
        try:
            body = money.loads(request.content or b"{}")
        except ValueError:
            raise CWError(400, "InvalidObject", "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise CWError(400, "InvalidObject", "The request body must be a JSON object")
        return body

    def _batch_ids(self, body: dict[str, Any]) -> list[int]:
        raw = body.get("processedRecordIds")
        if raw is None:
            raw = body.get("includedInvoiceIds")
        if not isinstance(raw, list) or not raw:
            raise _bad_request("processedRecordIds may not be empty", "processedRecordIds", "AccountingBatch",
                               "NullValue")
        ids: list[int] = []
        for value in raw:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad_request(f"processedRecordIds contains an invalid id {value!r}", "processedRecordIds",
                                   "AccountingBatch")
            ids.append(value)
        for id_ in ids:
            inv = self._invoices.get(id_)
            if inv is None:
                raise _bad_request(f"Invoice recId {id_} not found", "processedRecordIds", "AccountingBatch")
            if id_ in self._state["batched"]:
                batch = next(b for b in self._state["batches"] if b["id"] == self._state["batched"][id_])
                raise _bad_request(f"Invoice {inv['invoiceNumber']} has already been exported in batch "
                                   f"{batch['batchIdentifier']}", "processedRecordIds", "AccountingBatch",
                                   "AlreadyExported")
            if not self._is_closed(inv):
                raise _bad_request(f"Invoice {inv['invoiceNumber']} is not closed and cannot be exported",
                                   "processedRecordIds", "AccountingBatch")
        return ids

    def _post_batch(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self._require("Accounting Interface", "add")
            body = self._body(request)
            identifier = body.get("batchIdentifier")
            if not isinstance(identifier, str) or not identifier.strip():
                raise _bad_request("batchIdentifier may not be null", "batchIdentifier", "AccountingBatch", "NullValue")
            if len(identifier) > 50:
                raise _bad_request("batchIdentifier may not exceed 50 characters", "batchIdentifier",
                                   "AccountingBatch", "InvalidLength")
            if any(b["batchIdentifier"].lower() == identifier.lower() for b in self._state["batches"]):
                raise _bad_request(f"Batch identifier {identifier} already exists", "batchIdentifier",
                                   "AccountingBatch", "ObjectExists")
            ids = self._batch_ids(body)
            self._create_batch(identifier, ids, body)
            result = self._gl_export(identifier, ids)
        if self.faults.applies(request.url.path) and self.faults.take("drop_after_commit_next"):
            raise DropConnection("simulated connection drop after commit")
        return _json(201, result)

    def _delete_batch(self, batch_id: int) -> httpx.Response:
        batches = self._state["batches"]
        for i, batch in enumerate(batches):
            if batch["id"] == batch_id:
                del batches[i]
                for id_ in batch["includedInvoiceIds"]:
                    self._state["batched"].pop(id_, None)
                return httpx.Response(204)
        raise _not_found("AccountingBatch", batch_id)

    def _gl_export(self, identifier: str, ids: list[int]) -> dict[str, Any]:
        transactions = []
        for id_ in ids:
            inv = self._invoices[id_]
            transactions.append({"id": str(id_), "documentNumber": inv["invoiceNumber"], "documentType": inv["type"],
                                 "documentDate": inv.get("date"), "companyId": inv["company"]["id"],
                                 "companyIdentifier": inv["company"]["identifier"], "total": inv["total"],
                                 "salesTax": inv["salesTax"]})
        return {"exportSettings": {"batchIdentifier": identifier, "exportInvoicesFlag": True,
                                   "thruDate": iso(dt.datetime.fromtimestamp(self.clock.now(), dt.timezone.utc))},
                "customers": [], "vendors": [], "transactions": transactions, "expenses": [], "expenseBills": [],
                "purchaseTransactions": [], "adjustmentTransactions": [], "inventoryTransfers": []}

    def _role(self) -> dict[str, Any]:
        return {"id": API_ROLE_ID, "name": "API Integration", "roleType": "Custom"}

    def _member(self) -> dict[str, Any]:
        member = dict(API_MEMBER)
        member["securityRole"] = {"id": API_ROLE_ID, "name": "API Integration"}
        return member

    def _role_settings(self) -> list[dict[str, Any]]:
        out = []
        for i, (name, module, ident) in enumerate(ROLE_FUNCTIONS, start=1):
            levels = self._state["role"][name]
            out.append({"id": i, "addLevel": levels["addLevel"], "editLevel": levels["editLevel"],
                        "deleteLevel": levels["deleteLevel"], "inquireLevel": levels["inquireLevel"],
                        "moduleFunctionName": name, "moduleFunctionDescription": name,
                        "moduleFunctionIdentifier": ident, "moduleIdentifier": module.replace(" & ", "").replace(" ", ""),
                        "moduleName": module, "myAllFlag": False, "customFlag": False, "sortOrder": i})
        return out


class _Throttled(CWError):
    def __init__(self) -> None:
        super().__init__(429, "TooManyRequests", "Too many requests. Please retry after a short wait.")


def _unpack(body: dict[str, Any]) -> dict[str, Any]:
    return {"code": body["code"], "message": body["message"], "errors": body.get("errors")}


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        raw = next((v for k, v in params.items() if k.lower() == name.lower()), None)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise CWError(400, "InvalidObject", f"The value '{raw}' is not valid for {name}.") from None


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, Decimal)):
        return (0, Decimal(value))
    if isinstance(value, dict):
        return (2, str(value.get("name") or value.get("id") or ""))
    return (1, str(value).lower())


def _project(row: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Keep only the requested `fields` (comma list; `a/b` keeps nested `b` under `a`)."""
    if not fields:
        return copy.deepcopy(row)
    out: dict[str, Any] = {}
    for spec in (f.strip() for f in fields.split(",")):
        if not spec:
            continue
        parts = spec.split("/")
        src: Any = row
        dst = out
        for j, part in enumerate(parts):
            if not isinstance(src, dict):
                break
            key = next((k for k in src if k.lower() == part.lower()), None)
            if key is None:
                break
            if j == len(parts) - 1:
                dst[key] = copy.deepcopy(src[key])
            else:
                if not isinstance(src[key], dict):
                    break
                dst = dst.setdefault(key, {})
                src = src[key]
    return out


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    all_headers = {"Content-Type": "application/json; charset=utf-8"}
    if status == 429:
        all_headers["Retry-After"] = "1"
    all_headers.update(headers or {})
    return httpx.Response(status, content=money.dumps(body).encode("utf-8"), headers=all_headers)
