"""Request bodies of the simulated ConnectWise accounting interface, held to pyconnectwise's request models.

`POST /finance/accounting/export` and `POST /finance/accounting/batches` are the only writes cwqbo makes to
ConnectWise; a body naming a field outside the model, missing a required one or with a wrong type is the
400 ConnectWise gives, never silently accepted.
"""

from __future__ import annotations

from typing import Any

import httpx

from cwqbo import money
from cwqbo.sandbox.connectwise import schema as cw_schema
from cwqbo.sandbox.connectwise.query import CWError, bad_request
from cwqbo.sandbox.instants import instant

EXPORT_FLAGS = ("exportInvoicesFlag", "exportExpensesFlag", "exportProductsFlag")


def parse(request: httpx.Request, model: str, resource: str) -> dict[str, Any]:
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
            raise bad_request(f"{key} is not a field of {model}", key, resource)
    for key in cw_schema.REQUIRED.get(model, []):
        if body.get(key) is None:
            raise bad_request(f"{key} is required", key, resource, "NullValue")
    return body


def check_flags(body: dict[str, Any], resource: str) -> None:
    for flag in EXPORT_FLAGS:
        if flag in body and body[flag] is not None and not isinstance(body[flag], bool):
            raise bad_request(f"{flag} must be true or false", flag, resource)
    if not any(body.get(flag) is True for flag in EXPORT_FLAGS):
        # the schema: "Batch (export) must include invoices, expenses, or products"
        raise bad_request("Batch must export Invoices, Expenses or Products", "exportInvoicesFlag", resource)


def check_identifier(body: dict[str, Any], resource: str, required: bool) -> str:
    identifier = body.get("batchIdentifier")
    if identifier is None and not required:
        return ""
    if not isinstance(identifier, str) or not identifier.strip():
        raise bad_request("batchIdentifier may not be null", "batchIdentifier", resource, "NullValue")
    if len(identifier) > 50:
        raise bad_request("batchIdentifier may not exceed 50 characters", "batchIdentifier", resource,
                          "InvalidLength")
    return identifier


def check_export_selection(body: dict[str, Any], resource: str) -> None:
    """The id lists and thruDate of an export request: integers for invoices and expenses, strings for products."""
    for key in ("includedInvoiceIds", "excludedInvoiceIds", "includedExpenseIds", "excludedExpenseIds"):
        value = body.get(key)
        if value is not None and (not isinstance(value, list)
                                  or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
            raise bad_request(f"{key} must be a list of integers", key, resource)
    for key in ("includedProductIds", "excludedProductIds"):
        value = body.get(key)
        if value is not None and (not isinstance(value, list) or any(not isinstance(v, str) for v in value)):
            raise bad_request(f"{key} must be a list of strings", key, resource)
    if body.get("thruDate") is not None and instant(body["thruDate"]) is None:
        raise bad_request("thruDate is not a valid date", "thruDate", resource)
