"""Invoice payments of the simulated ConnectWise: `/finance/invoices/{id}/payments[/{paymentId}]`.

Routes and records follow pyconnectwise's `FinanceInvoicesIdPaymentsEndpoint` (GET list, POST) and
`FinanceInvoicesIdPaymentsIdEndpoint` (GET, DELETE; its PATCH/PUT are not simulated: 405), and its model
`Payment` (`_info`, `amount`, `appliedBy`, `credit`, `id`, `invoice`, `paymentDate`, `type`): a body naming any
other field is the 400 every simulated write gives. The invoice's `balance` falls by the amount and its `payments`
(or, for a credit memo applied with `credit`, its `credits`) rises; the credit memo's own `balance` moves toward
zero. Both records' `_info.lastUpdated` move.

Payments are not part of the invoice's GL export in this model: the GL entries (`gl`) are left as they are.

Guesses (no ConnectWise source says what it refuses), each failing loudly with a 400: a payment needs `type` and a
positive `amount` of whole cents; the amount may not exceed the invoice's balance (nor, with `credit`, the credit
memo's remaining credit); the invoice must be Closed and not itself a credit memo; `credit` must name a Closed
credit memo of the same company; `invoice`, when sent, must be the invoice of the path. An unknown invoice is 404.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from abc import ABC, abstractmethod
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from cwqbo.sandbox.connectwise import bodies
from cwqbo.sandbox.connectwise import query as q
from cwqbo.sandbox.connectwise.query import Collection, CWError, bad_request, json_response, not_found

RESOURCE = "Payment"
ZERO = Decimal("0")


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float, str)):
        raise bad_request("amount must be a number", "amount", RESOURCE)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise bad_request("amount must be a number", "amount", RESOURCE) from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise bad_request("amount must be a positive amount of whole cents", "amount", RESOURCE)
    return amount


def _payment_date(value: Any, now_iso: str) -> str:
    if value is None:
        return now_iso
    text = str(value)
    try:
        day = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text else \
            dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.timezone.utc)
    except ValueError:
        raise bad_request("paymentDate is not a valid date", "paymentDate", RESOURCE) from None
    return day.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if day.tzinfo else \
        day.strftime("%Y-%m-%dT%H:%M:%SZ")


class InvoicePaymentsMixin(ABC):
    """The payments routes and test helper of `CWSimulator`, over its state."""

    _lock: threading.RLock
    _state: dict[str, Any]
    _invoices: dict[int, dict[str, Any]]

    @abstractmethod
    def _require(self, area: str, kind: str = "inquire") -> None:
        """The 403 when the API member's role lacks the right."""

    @abstractmethod
    def _is_closed(self, inv: dict[str, Any]) -> bool:
        """Whether the invoice's billing status is a closed one."""

    @abstractmethod
    def _touch(self, inv: dict[str, Any]) -> None:
        """Move the record's `_info.lastUpdated` forward."""

    @abstractmethod
    def _now_iso(self) -> str:
        """Now, as ConnectWise writes times."""

    @abstractmethod
    def _take_id(self, kind: str) -> int:
        """The next id of a record kind."""

    # -- test helper ----------------------------------------------------------------------------------

    def invoice_payments(self, invoice_id: int) -> list[dict[str, Any]]:
        """The payments recorded on an invoice, as the API answers them."""
        with self._lock:
            return copy.deepcopy(self._payments_of(invoice_id))

    # -- routes ---------------------------------------------------------------------------------------

    def _payments_of(self, invoice_id: int) -> list[dict[str, Any]]:
        return [p for p in self._state["payments"] if p["invoice"]["id"] == invoice_id]

    def _invoice_payments_route(self, request: httpx.Request, params: dict[str, str], method: str, invoice_id: int,
                                rest: list[str]) -> httpx.Response:
        with self._lock:
            kind = {"GET": "inquire", "POST": "add", "DELETE": "delete"}.get(method)
            if kind is None or (method == "POST" and rest) or (method == "DELETE" and len(rest) != 1):
                raise CWError(405, "MethodNotAllowed",
                              f"The requested resource does not support http method '{method}'.")
            self._require("Invoicing", kind)
            inv = self._invoices.get(invoice_id)
            if inv is None:
                raise not_found("Invoice", invoice_id)
            coll = Collection("Invoicing", RESOURCE, lambda: self._payments_of(invoice_id))
            if method == "POST":
                return json_response(201, self._add_payment(request, inv))
            if method == "DELETE":
                if not rest[0].isdigit():
                    raise CWError(404, "NotFound", f"The resource {request.url.path} was not found")
                self._delete_payment(inv, int(rest[0]))
                return httpx.Response(204)
            if not rest:
                return q.listing(request, params, coll)
            if rest == ["count"]:
                return q.count(coll, params)
            if len(rest) == 1 and rest[0].isdigit():
                return q.one(params, coll, int(rest[0]), RESOURCE)
            raise CWError(404, "NotFound", f"The resource {request.url.path} was not found")

    def _add_payment(self, request: httpx.Request, inv: dict[str, Any]) -> dict[str, Any]:
        body = bodies.parse(request, RESOURCE, RESOURCE)
        if not isinstance(body.get("type"), str) or not body["type"].strip():
            raise bad_request("type is required", "type", RESOURCE, "NullValue")
        if body.get("amount") is None:
            raise bad_request("amount is required", "amount", RESOURCE, "NullValue")
        amount = _amount(body["amount"])
        sent_invoice = body.get("invoice")
        if sent_invoice is not None and (not isinstance(sent_invoice, dict) or sent_invoice.get("id") != inv["id"]):
            raise bad_request("invoice must be the invoice of the request path", "invoice", RESOURCE)
        if not self._is_closed(inv) or inv.get("type") == "CreditMemo":
            raise bad_request(f"Invoice {inv['invoiceNumber']} can't take payments: it is not a closed invoice",
                              "invoice", RESOURCE)
        if amount > Decimal(inv["balance"]):
            raise bad_request(f"amount {amount} is more than the invoice balance {inv['balance']}", "amount", RESOURCE)
        credit = None
        if body.get("credit") is not None:
            ref = body["credit"]
            ref_id = ref.get("id") if isinstance(ref, dict) else None
            credit = self._invoices.get(ref_id) if isinstance(ref_id, int) else None
            if (credit is None or credit.get("type") != "CreditMemo" or not self._is_closed(credit)
                    or credit["company"]["id"] != inv["company"]["id"]):
                raise bad_request("credit must be a closed credit memo of the invoice's company", "credit", RESOURCE)
            if amount > -Decimal(credit["balance"]):
                raise bad_request(f"amount {amount} is more than the credit memo's remaining credit "
                                  f"{-Decimal(credit['balance'])}", "credit", RESOURCE)
        now = self._now_iso()
        payment: dict[str, Any] = {"id": self._take_id("payment"), "type": body["type"], "amount": amount,
                                   "paymentDate": _payment_date(body.get("paymentDate"), now),
                                   "invoice": {"id": inv["id"], "identifier": inv["invoiceNumber"]}}
        if body.get("appliedBy") is not None:
            payment["appliedBy"] = str(body["appliedBy"])
        if credit is not None:
            payment["credit"] = {"id": credit["id"], "identifier": credit["invoiceNumber"]}
        payment["_info"] = {"lastUpdated": now}
        self._state["payments"].append(payment)
        self._apply(inv, credit, amount)
        return copy.deepcopy(payment)

    def _delete_payment(self, inv: dict[str, Any], payment_id: int) -> None:
        payment = next((p for p in self._payments_of(inv["id"]) if p["id"] == payment_id), None)
        if payment is None:
            raise not_found(RESOURCE, payment_id)
        self._state["payments"].remove(payment)
        credit = self._invoices.get(payment["credit"]["id"]) if payment.get("credit") else None
        self._apply(inv, credit, -Decimal(payment["amount"]))

    def _apply(self, inv: dict[str, Any], credit: dict[str, Any] | None, amount: Decimal) -> None:
        """Move the balances by a payment of `amount` (negative: its reversal)."""
        field = "credits" if credit is not None else "payments"
        inv[field] = Decimal(inv.get(field) or ZERO) + amount
        inv["balance"] = Decimal(inv["balance"]) - amount
        self._touch(inv)
        if credit is not None:
            credit["balance"] = Decimal(credit["balance"]) + amount
            self._touch(credit)
