"""ConnectWise invoice payments: read an invoice and its payments, post one, delete one.

Functions over a `CWClient` (issue 13: payments back to ConnectWise). The routes and the body follow
pyconnectwise's generated endpoints `FinanceInvoicesIdPaymentsEndpoint` (GET list, POST) and
`FinanceInvoicesIdPaymentsIdEndpoint` (GET, DELETE) and its model `Payment` (`type`, `amount`, `paymentDate`,
`appliedBy`, `credit`, `invoice`, `id`, `_info`).

ConnectWise payments carry no idempotency key and no memo, so a POST that may have reached ConnectWise is never
sent again here (`idempotent=False`): the caller records its intent first and, before any retry, reads the
invoice's payments back (`invoice_payments`) to adopt what landed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from cwqbo.connectwise.client import CWClient
from cwqbo.errors import RemoteError


def _invoice_path(invoice_id: int) -> str:
    if isinstance(invoice_id, bool) or not isinstance(invoice_id, int) or invoice_id <= 0:
        raise ValueError(f"not a ConnectWise invoice id: {invoice_id!r}")
    return f"/finance/invoices/{invoice_id}"


def invoice(cw: CWClient, invoice_id: int) -> dict[str, Any]:
    """The invoice as ConnectWise holds it now (its `balance`, `payments` and `credits` follow its payments)."""
    data = cw.get_json(_invoice_path(invoice_id))
    if not isinstance(data, dict):
        raise RemoteError(f"ConnectWise answered GET /finance/invoices/{invoice_id} without an invoice object")
    return data


def invoice_payments(cw: CWClient, invoice_id: int) -> list[dict[str, Any]]:
    """Every payment ConnectWise records on the invoice (all pages)."""
    rows = list(cw.iter_pages(_invoice_path(invoice_id) + "/payments"))
    if any(not isinstance(r, dict) for r in rows):
        raise RemoteError(f"ConnectWise listed something that is not a payment on invoice {invoice_id}")
    return rows


def payment_body(invoice_id: int, *, type: str, amount: Decimal, payment_date: dt.date, applied_by: str | None,
                 credit_invoice_id: int | None) -> dict[str, Any]:
    """The POST body (pyconnectwise `Payment`); refuses a float, a non-positive or sub-cent amount before sending."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise TypeError(f"a payment amount must be a finite Decimal, not {amount!r}")
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"a payment amount must be positive whole cents, not {amount}")
    if not isinstance(type, str) or not type.strip():
        raise ValueError("a payment needs a type")
    if isinstance(payment_date, dt.datetime) or not isinstance(payment_date, dt.date):
        raise TypeError(f"payment_date must be a date, not {payment_date!r}")
    body: dict[str, Any] = {"type": type, "amount": amount, "paymentDate": f"{payment_date.isoformat()}T00:00:00Z",
                            "invoice": {"id": invoice_id}}
    if applied_by is not None:
        body["appliedBy"] = applied_by
    if credit_invoice_id is not None:
        _invoice_path(credit_invoice_id)
        body["credit"] = {"id": credit_invoice_id}
    return body


def add_invoice_payment(cw: CWClient, invoice_id: int, *, type: str, amount: Decimal, payment_date: dt.date,
                        applied_by: str | None, credit_invoice_id: int | None) -> dict[str, Any]:
    """Post one payment (or, with `credit_invoice_id`, apply that credit memo); returns the created Payment.

    Sent once: a failure after the request may have reached ConnectWise raises instead of retrying.
    """
    path = _invoice_path(invoice_id) + "/payments"
    body = payment_body(invoice_id, type=type, amount=amount, payment_date=payment_date, applied_by=applied_by,
                        credit_invoice_id=credit_invoice_id)
    created = cw.post_json(path, body, idempotent=False)
    if not isinstance(created, dict) or not isinstance(created.get("id"), int):
        raise RemoteError(f"ConnectWise answered POST {path} without the created payment; "
                          "it may or may not have been recorded",
                          hint="re-run: cwqbo reads the invoice's payments back before posting again")
    return created


def delete_invoice_payment(cw: CWClient, invoice_id: int, payment_id: int) -> None:
    """Delete one payment. A 404 is success only when the payment is verifiably gone (a retried DELETE)."""
    path = f"{_invoice_path(invoice_id)}/payments/{int(payment_id)}"
    try:
        cw.delete(path)  # retried under the shared policy: a DELETE is safe to repeat
    except RemoteError as exc:
        if exc.status != 404:
            raise
        if any(p.get("id") == payment_id for p in invoice_payments(cw, invoice_id)):
            raise
