"""Who may call the simulated ConnectWise: API-member authentication and the security role it holds.

ConnectWise authenticates every API call with Basic `company+publicKey:privateKey` plus a registered `clientId`
GUID, and grants each area (Invoicing, Accounting Interface, …) by the member's security role. The role is
simulator state, so a test can take a right away and watch the 403 cwqbo must explain.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx

from cwqbo.sandbox.connectwise.query import CWError

LEVELS = ("None", "My", "All")  # SecurityRoleSetting levels in the schema

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

Role = dict[str, dict[str, str]]
"""Area name → {"inquireLevel" | "addLevel" | "editLevel" | "deleteLevel": level}."""


def full_role() -> Role:
    """Every right in every area: the role a fresh sandbox's API member holds."""
    return {name: {"inquireLevel": "All", "addLevel": "All", "editLevel": "All", "deleteLevel": "All"}
            for name, _, _ in ROLE_FUNCTIONS}


def set_level(role: Role, area: str, level: str, kind: str) -> None:
    """One right (`kind`: inquire, add, edit, delete, or all four) of one area set to `level`."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    if area not in role:
        raise ValueError(f"unknown area {area!r}; known: {', '.join(role)}")
    kinds = ("inquire", "add", "edit", "delete") if kind == "all" else (kind,)
    for k in kinds:
        role[area][f"{k}Level"] = level


def require(role: Role, area: str, kind: str = "inquire") -> None:
    """The 403 ConnectWise answers when the role lacks the right."""
    if role[area][f"{kind}Level"] == "None":
        raise CWError(403, "Forbidden", f"You do not have {kind.capitalize()} rights to {area}. "
                      "Contact your ConnectWise administrator.")


def check_auth(request: httpx.Request, company: str, public_key: str, private_key: str, client_id: str) -> None:
    """The 401 ConnectWise answers for wrong keys or a missing or unknown clientId."""
    header = request.headers.get("authorization", "")
    ok = False
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            user = password = ""
        sent_company, _, public = user.partition("+")
        ok = sent_company.lower() == company.lower() and public == public_key and password == private_key
    if not ok:
        raise CWError(401, "Unauthorized", "Unauthorized: the company, public key or private key is incorrect.")
    sent_id = request.headers.get("clientid", "")
    try:
        valid_guid = bool(sent_id) and uuid.UUID(sent_id) is not None
    except ValueError:
        valid_guid = False
    if not sent_id:
        raise CWError(401, "Unauthorized", "clientId header is required. "
                      "Register at https://developer.connectwise.com/ClientID")
    if not valid_guid or sent_id.lower() != client_id.lower():
        raise CWError(401, "Unauthorized", f"Invalid clientId: {sent_id}")


def role_record() -> dict[str, Any]:
    """The API member's `SecurityRole`."""
    return {"id": API_ROLE_ID, "name": "API Integration", "adminFlag": False, "inactiveFlag": False}


def member_record() -> dict[str, Any]:
    """The API member's `Member` record."""
    member = dict(API_MEMBER)
    member["securityRole"] = {"id": API_ROLE_ID, "name": "API Integration"}
    return member


def role_settings(role: Role) -> list[dict[str, Any]]:
    """The role's `SecurityRoleSetting` rows, one per module function."""
    out = []
    for i, (name, module, ident) in enumerate(ROLE_FUNCTIONS, start=1):
        levels = role[name]
        out.append({"id": i, "addLevel": levels["addLevel"], "editLevel": levels["editLevel"],
                    "deleteLevel": levels["deleteLevel"], "inquireLevel": levels["inquireLevel"],
                    "moduleFunctionName": name, "moduleFunctionDescription": name,
                    "moduleFunctionIdentifier": ident, "moduleIdentifier": module.replace(" & ", "").replace(" ", ""),
                    "moduleName": module, "myAllFlag": False, "customFlag": False, "sortOrder": i})
    return out
