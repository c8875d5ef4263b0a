"""In-memory ConnectWise PSA (Manage) REST API v3, held to ConnectWise's published schema.

Covers what cwqbo reads and writes: company info, invoices, billing statuses, companies, products,
time and expense entries, the accounting interface (unposted invoices, GL export, batches and their
entries) and the security role of the API member. Same shape as `qbo.QBOSimulator`:
`handle(httpx.Request) -> httpx.Response` over state guarded by a lock, `to_state()/from_state()`, and
`Faults` honoured on every API call. Every record carries only fields of pyconnectwise's models
(`cw_schema`); lists live in `cw_query`, the general ledger in `cw_gl`, export documents in `cw_export`.
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import httpx

from cwqbo import money
from cwqbo.clock import Clock
from cwqbo.sandbox.connectwise import export as cw_export
from cwqbo.sandbox.connectwise import gl as cw_gl
from cwqbo.sandbox.connectwise import schema as cw_schema
from cwqbo.sandbox.connectwise.query import Collection, CWError, bad_request, json_response, not_found
from cwqbo.sandbox.connectwise import query as q
from cwqbo.sandbox.faults import DropConnection, Faults
from cwqbo.sandbox.generator import BILLING_STATUSES, CWData, company_ref, iso, line_amount, make_company

LEVELS = ("None", "My", "All")  # SecurityRoleSetting levels in the schema
REQUEST_LOG_SIZE = 500
KINDS = ("products", "time_entries", "expenses")

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
API_MEMBER = {"id": 190, "identifier": "cwqbo-api", "firstName": "cwqbo", "lastName": "API", "inactiveFlag": False,
              "licenseClass": "A", "defaultEmail": "Office", "defaultPhone": "Office",
              "agreementInvoicingDisplayOptions": "RemainOnInvoicingScreen",
              "invoicingDisplayOptions": "RemainOnInvoicingScreen", "invoiceScreenDefaultTabFormat": "ShowInvoicingTab"}

_bad_request = bad_request
_not_found = not_found
_json = json_response


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
        # (method, path, Accept header or None) of the latest API requests, newest last
        self.request_log: collections.deque[tuple[str, str, str | None]] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self.from_state(self._empty_state())

    # -- state ----------------------------------------------------------------------------------------

    @staticmethod
    def _empty_state() -> dict[str, Any]:
        return {"companies": [], "billing_statuses": copy.deepcopy(BILLING_STATUSES), "invoices": [], "products": [],
                "time_entries": [], "expenses": [], "gl": cw_gl.empty_state(),
                "role": {name: {"inquireLevel": "All", "addLevel": "All", "editLevel": "All", "deleteLevel": "All"}
                         for name, _, _ in ROLE_FUNCTIONS},
                "next_id": {"invoice": 1001, "company": 1, "product": 1, "time": 1, "expense": 1}}

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

    def batches(self) -> list[dict[str, Any]]:
        """The `AccountingBatch` records (no invoice ids: use `invoices_in_batch` / `batch_entry_ids`)."""
        with self._lock:
            return copy.deepcopy(self._state["gl"]["batches"])

    def _batch_named(self, batch: int | str) -> dict[str, Any]:
        b: dict[str, Any]
        for b in self._state["gl"]["batches"]:
            if b["id"] == batch or (isinstance(batch, str) and b["batchIdentifier"] == batch):
                return b
        raise KeyError(f"no batch {batch!r}")

    def invoices_in_batch(self, batch: int | str) -> list[int]:
        """Invoice ids with GL entries in the batch (by batch id or identifier)."""
        with self._lock:
            return self.gl.invoices_in_batch(self._batch_named(batch)["id"])

    def batch_entry_ids(self, batch: int | str) -> list[int]:
        """The GL entry ids a batch holds: assert "exactly these entries were batched" with it."""
        with self._lock:
            return [e["id"] for e in self.gl.batch_entries(self._batch_named(batch)["id"])]

    def unposted_ids(self) -> list[int]:
        """Invoice ids (billingLogIds) of the invoices on the unposted list."""
        with self._lock:
            return [r["id"] for r in self._state["invoices"] if self.gl.is_unposted(r)]

    def unposted_row_id(self, invoice_id: int) -> int | None:
        """The `UnpostedInvoice.id` of an invoice's row (None until it was first Closed)."""
        with self._lock:
            return self.gl.row_of.get(invoice_id)

    def gl_entries_of(self, invoice_id: int) -> list[dict[str, Any]]:
        """The invoice's GL entries: id, kind (product/time/expense/tax/ar), accountNumber, debit, credit, batchId."""
        with self._lock:
            return [{k: e.get(k) for k in ("id", "kind", "lineId", "accountNumber", "debit", "credit", "amount",
                                           "batchId")} for e in self.gl.entries_of(invoice_id)]

    def unbatched_gl_entry_ids(self) -> list[int]:
        """Every GL entry id in no batch (invoices and other tools' work)."""
        with self._lock:
            return [e["id"] for e in self._state["gl"]["entries"] if e["batchId"] is None]

    def no_gl_invoice_ids(self) -> list[int]:
        """Closed invoices ConnectWise holds no GL entries for (unposted for ever, never exported)."""
        with self._lock:
            return list(self._state["gl"]["no_gl"])

    def batch_invoices(self, identifier: str, invoice_ids: Iterable[int]) -> dict[str, Any]:
        """Another tool batched these invoices: a batch of exactly their unbatched GL entries."""
        with self._lock:
            entries: list[int] = []
            for inv_id in invoice_ids:
                entries += [e["id"] for e in self.gl.exportable(self._get_invoice(inv_id))]
            batch = self.gl.create_batch(identifier, entries, {"exportInvoicesFlag": True})
            return copy.deepcopy(batch)

    def set_export_invoice_id_field(self, value: str) -> None:
        """Which id `includedInvoiceIds` of the GL export takes: "id" (unposted row, default) or "billingLogId"."""
        with self._lock:
            self.gl.set_export_id_field(value)

    @property
    def export_invoice_id_field(self) -> str:
        with self._lock:
            return self.gl.export_id_field

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
            totals = {"productTotal": Decimal("0"), "serviceTotal": Decimal("0"), "expenseTotal": Decimal("0")}
            taxable = Decimal("0")
            stamp = {"lastUpdated": iso(dt.datetime.fromtimestamp(now, dt.timezone.utc))}
            for kind, rows, total_key in (("products", products, "productTotal"),
                                          ("time_entries", time_entries, "serviceTotal"),
                                          ("expenses", expenses, "expenseTotal")):
                for raw in rows:
                    line = copy.deepcopy(raw)
                    line.setdefault("id", self._take_id({"products": "product", "time_entries": "time",
                                                         "expenses": "expense"}[kind]))
                    line.setdefault("invoice", ref)
                    line.setdefault("company", cref)
                    line.setdefault("billableOption", "Billable")
                    line.setdefault("_info", dict(stamp))
                    if kind == "products":
                        line.setdefault("catalogItem", {"id": 1, "identifier": "MISC"})
                        line.setdefault("description", line["catalogItem"]["identifier"])
                        line["quantity"] = money.to_decimal(line.get("quantity", 1))
                        line["price"] = money.to_decimal(line.get("price", 0))
                        line["quantityCancelled"] = money.to_decimal(line.get("quantityCancelled", 0))
                        line.setdefault("taxableFlag", tax_rate > 0)
                        amount = line_amount("product", line)
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
                        billable = line["billableOption"] == "Billable"
                        line.setdefault("hoursBilled", line["actualHours"] if billable else Decimal("0"))
                        line["agreementHours"] = money.to_decimal(line.get("agreementHours", 0))
                        line.setdefault("agreementAmount", money.round_cents(line["agreementHours"] * line["hourlyRate"]))
                        line.setdefault("invoiceHours",
                                        line["hoursBilled"] - line["agreementHours"] if billable else Decimal("0"))
                        line.setdefault("notes", "")
                        amount = line_amount("time", line)
                    else:
                        line.setdefault("type", {"id": 1, "name": "Mileage"})
                        line.setdefault("date", day)
                        line.setdefault("notes", "")
                        line["amount"] = money.to_decimal(line.get("amount", 0))
                        line.setdefault("invoiceAmount", line["amount"])
                        amount = line_amount("expense", line)
                    totals[total_key] += amount
                    self._state[kind].append(line)
                    self._index_line(kind, line)
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
            inv.setdefault("locationId", 1)
            inv.setdefault("departmentId", 10)
            for key in ("customerPO", "reference", "topComment", "bottomComment", "internalNotes"):
                inv.setdefault(key, "")
            inv.setdefault("currency", {"id": 1, "symbol": "$", "currencyCode": "USD", "name": "US Dollar"})
            inv.setdefault("_info", dict(stamp))
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
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        with self._lock:
            if area not in self._state["role"]:
                raise ValueError(f"unknown area {area!r}; known: {', '.join(self._state['role'])}")
            kinds = ("inquire", "add", "edit", "delete") if kind == "all" else (kind,)
            for k in kinds:
                self._state["role"][area][f"{k}Level"] = level

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

    def _unposted_record(self, inv: dict[str, Any]) -> dict[str, Any]:
        comp = self._companies.get(inv["company"]["id"], {})
        return {"id": self.gl.ensure_row(inv["id"]), "billingLogId": inv["id"], "locationId": inv.get("locationId"),
                "departmentId": inv.get("departmentId"), "company": inv["company"],
                "accountNumber": comp.get("accountNumber", ""), "billToCompany": inv.get("billToCompany"),
                "billToSite": inv.get("billingSite"), "shipToCompany": inv.get("shipToCompany"),
                "shipToSite": inv.get("shippingSite"), "invoiceNumber": inv["invoiceNumber"],
                "invoiceDate": inv.get("date"), "invoiceType": inv.get("type"), "description": inv.get("reference", ""),
                "billingTerms": inv.get("billingTerms"), "dueDate": inv.get("dueDate"),
                "currency": inv.get("currency"), "subTotal": inv["subtotal"], "total": inv["total"],
                "invoiceTaxableFlag": inv.get("taxableFlag", False), "taxCode": inv.get("taxCode"),
                "avalaraTaxFlag": False, "itemTaxableFlag": False, "salesTaxAmount": inv["salesTax"],
                "createdBy": (inv.get("_info") or {}).get("updatedBy", "jlee"),
                "dateClosed": (inv.get("_info") or {}).get("lastUpdated"), "_info": inv.get("_info")}

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

    def _line_collection(self, area: str, kind: str, model: str) -> Collection:
        by_id = self._line_by_id[kind]
        of = self._lines_of[kind]
        return Collection(area, model, lambda: self._state[kind], {
            ("id",): lambda ids: [by_id[i] for i in ids if i in by_id],
            ("invoice", "id"): lambda ids: [r for i in dict.fromkeys(ids) for r in of.get(i, [])]})

    def _unposted_collection(self) -> Collection:
        def rows_for(invoices: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
            return [self._unposted_record(inv) for inv in invoices if inv is not None and self.gl.is_unposted(inv)]

        return Collection("Accounting Interface", "UnpostedInvoice", lambda: rows_for(self._state["invoices"]), {
            ("id",): lambda ids: rows_for(self._invoices.get(self.gl.invoice_of_row.get(i, -1)) for i in ids),
            ("billingLogId",): lambda ids: rows_for(self._invoices.get(i) for i in ids)})

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
            "/system/securityroles": Collection("Security Roles", "SecurityRole", lambda: [self._role()]),
            "/system/members": Collection("Member Maintenance", "Member", lambda: [self._member()]),
        }

    def _entries_collection(self, batch_id: int) -> Collection:
        def rows() -> list[dict[str, Any]]:
            return [cw_export.batch_entry(e) for e in self.gl.batch_entries(batch_id)]

        by_id = self.gl.by_id
        return Collection("Accounting Interface", "BatchEntry", rows, {
            ("id",): lambda ids: [cw_export.batch_entry(by_id[i]) for i in ids
                                  if i in by_id and by_id[i]["batchId"] == batch_id],
            ("invoice", "id"): lambda ids: [cw_export.batch_entry(e) for i in dict.fromkeys(ids)
                                            for e in self.gl.entries_of(i) if e["batchId"] == batch_id]})

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
                return q.listing(request, params, Collection("Security Roles", "SecurityRoleSetting",
                                                             self._role_settings))
        if key == "/finance/accounting/batches" and method == "POST":
            return self._post_batch(request)
        if key == "/finance/accounting/export" and method == "POST":
            return self._post_export(request)
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
                            raise _not_found("AccountingBatch", rest)
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

    def _batch_sub(self, request: httpx.Request, params: dict[str, str], method: str, batch_id: int,
                   parts: list[str]) -> httpx.Response:
        """`/batches/{id}/entries[/count|/{entryId}]` and `POST /batches/{id}/export`."""
        with self._lock:
            self._require("Accounting Interface")
            if batch_id not in self.gl.batch_by_id:
                raise _not_found("AccountingBatch", batch_id)
            if parts == ["export"] and method == "POST":
                entries = self.gl.batch_entries(batch_id)
                return _json(200, cw_export.gl_export(self.gl, self._invoices, entries))
            if parts[0] == "entries":
                rest = "/".join(parts[1:])
                return self._read(request, params, method, self._entries_collection(batch_id), rest,
                                  f"/finance/accounting/batches/{batch_id}/{'/'.join(parts)}")
        raise CWError(404, "NotFound", f"The resource /finance/accounting/batches/{batch_id}/{'/'.join(parts)} "
                      "was not found")

    def _body(self, request: httpx.Request, model: str, resource: str) -> dict[str, Any]:
        """The JSON object body, refused (400) when it names a field outside the request `model`."""
        try:
            body = money.loads(request.content or b"{}")
        except ValueError:
            raise CWError(400, "InvalidObject", "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise CWError(400, "InvalidObject", "The request body must be a JSON object")
        known = cw_schema.MODELS[model]
        for key in body:
            if key not in known:
                raise _bad_request(f"{key} is not a field of {model}", key, resource)
        for key in cw_schema.REQUIRED.get(model, []):
            if body.get(key) is None:
                raise _bad_request(f"{key} is required", key, resource, "NullValue")
        return body

    @staticmethod
    def _check_flags(body: dict[str, Any], resource: str) -> None:
        flags = ("exportInvoicesFlag", "exportExpensesFlag", "exportProductsFlag")
        for flag in flags:
            if flag in body and body[flag] is not None and not isinstance(body[flag], bool):
                raise _bad_request(f"{flag} must be true or false", flag, resource)
        if not any(body.get(flag) is True for flag in flags):
            # the schema: "Batch (export) must include invoices, expenses, or products"
            raise _bad_request("Batch must export Invoices, Expenses or Products", "exportInvoicesFlag", resource)

    @staticmethod
    def _check_identifier(body: dict[str, Any], resource: str, required: bool) -> str:
        identifier = body.get("batchIdentifier")
        if identifier is None and not required:
            return ""
        if not isinstance(identifier, str) or not identifier.strip():
            raise _bad_request("batchIdentifier may not be null", "batchIdentifier", resource, "NullValue")
        if len(identifier) > 50:
            raise _bad_request("batchIdentifier may not exceed 50 characters", "batchIdentifier", resource,
                               "InvalidLength")
        return identifier

    def _post_export(self, request: httpx.Request) -> httpx.Response:
        resource = "ExportAccountingBatchRequest"
        with self._lock:
            self._require("Accounting Interface")
            body = self._body(request, resource, resource)
            self._check_identifier(body, resource, required=False)
            self._check_flags(body, resource)
            for key in ("includedInvoiceIds", "excludedInvoiceIds", "includedExpenseIds", "excludedExpenseIds"):
                value = body.get(key)
                if value is not None and (not isinstance(value, list)
                                          or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
                    raise _bad_request(f"{key} must be a list of integers", key, resource)
            for key in ("includedProductIds", "excludedProductIds"):
                value = body.get(key)
                if value is not None and (not isinstance(value, list) or any(not isinstance(v, str) for v in value)):
                    raise _bad_request(f"{key} must be a list of strings", key, resource)
            if body.get("thruDate") is not None and cw_export._parse_day(body["thruDate"]) is None:
                raise _bad_request("thruDate is not a valid date", "thruDate", resource)
            entries = cw_export.select_export(self.gl, self._invoices, body)
            return _json(200, cw_export.gl_export(self.gl, self._invoices, entries))

    def _post_batch(self, request: httpx.Request) -> httpx.Response:
        resource = "AccountingBatch"
        with self._lock:
            self._require("Accounting Interface", "add")
            body = self._body(request, "CreateAccountingBatchRequest", resource)
            identifier = self._check_identifier(body, resource, required=True)
            if any(b["batchIdentifier"].lower() == identifier.lower() for b in self._state["gl"]["batches"]):
                raise _bad_request(f"Batch identifier {identifier} already exists", "batchIdentifier", resource,
                                   "ObjectExists")
            self._check_flags(body, resource)
            try:
                ids = self.gl.check_batchable(body.get("processedRecordIds"))
            except cw_gl.GLError as exc:
                raise _bad_request(str(exc), exc.field, resource, exc.code) from None
            self.gl.create_batch(identifier, ids, body)
            result = cw_export.gl_export(self.gl, self._invoices, [self.gl.by_id[i] for i in ids])
        if self.faults.applies(request.url.path) and self.faults.take("drop_after_commit_next"):
            raise DropConnection("simulated connection drop after commit")
        return _json(201, result)

    def _role(self) -> dict[str, Any]:
        return {"id": API_ROLE_ID, "name": "API Integration", "adminFlag": False, "inactiveFlag": False}

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
