"""Check the ConnectWise API member's rights before a sync needs them (`cwqbo check-permissions`).

Each read right is probed with a one-record GET (a 403 names the missing right). The accounting flow needs
Finance › Accounting Interface at Inquire (unposted invoices, batches and their entries, and the GL export, which
is a read) and at Add (creating the batch). The Add right cannot be probed without creating a batch, so both
levels are read from the member's security role when the API lets us, and otherwise explained. Never creates
anything, and never runs an export (without a list of invoices it would export the whole unposted ledger).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cwqbo.connectwise.client import CWClient
from cwqbo.errors import AuthError, CwqboError, PermissionDenied, RemoteError

ADD_LEVELS_OK = frozenset({"All"})


@dataclass(frozen=True, slots=True)
class Probe:
    area: str  # e.g. "Time & Expense › Time Entry"
    ok: bool | None  # None = could not tell
    detail: str
    fix: str = ""


def fix_text(module: str, area: str, level: str = "Inquire Level: All") -> str:
    return f"Security Roles › {module} › {area} › {level}"


READ_PROBES: tuple[tuple[str, str, str], ...] = (
    ("Finance", "Invoicing", "/finance/invoices"),
    ("Companies", "Company Maintenance", "/company/companies"),
    ("Procurement", "Product", "/procurement/products"),
    ("Time & Expense", "Time Entry", "/time/entries"),
    ("Time & Expense", "Expense Report Entry", "/expense/entries"),
    ("Finance", "Accounting Interface", "/finance/accounting/unpostedinvoices"),
    ("Finance", "Accounting Interface", "/finance/accounting/batches"),
)


def _read_probe(client: CWClient, module: str, area: str, path: str) -> Probe:
    name = f"{module} › {area}"
    try:
        rows = client.get_json(path, {"pageSize": 1, "page": 1})
    except PermissionDenied:
        return Probe(name, False, f"reading {path} was refused (HTTP 403)", fix_text(module, area))
    except RemoteError as exc:
        return Probe(name, None, f"could not check {path}: {exc}", "")
    n = len(rows) if isinstance(rows, list) else 0
    return Probe(name, True, f"can read {path}" + ("" if n else " (no records yet)"))


def _role_settings(client: CWClient) -> list[dict[str, Any]] | None:
    """The member's security role settings, or None when the API does not let us see them."""
    member = client.current_member()
    role = (member or {}).get("securityRole") if member else None
    if not isinstance(role, dict) or role.get("id") is None:
        return None
    try:
        return list(client.iter_pages(f"/system/securityroles/{int(role['id'])}/settings"))
    except (PermissionDenied, RemoteError):
        return None


def _batch_probe(client: CWClient) -> Probe:
    name = "Finance › Accounting Interface (create batches)"
    fix = fix_text("Finance", "Accounting Interface", "Inquire Level: All and Add Level: All") + (
        " (the GL export is a read; the batch of its GL entries is an add)")
    try:
        settings = _role_settings(client)
    except (PermissionDenied, RemoteError):
        settings = None
    if settings is None:
        return Probe(name, None,
                     "cannot read the API member's security role, so batch creation was not verified "
                     "(cwqbo never creates a test batch)", fix)
    for s in settings:
        label = " ".join(str(s.get(k) or "") for k in ("moduleFunctionName", "moduleFunctionDescription"))
        if "accounting interface" in label.lower():
            add, inquire = str(s.get("addLevel") or "None"), str(s.get("inquireLevel") or "None")
            ok = add in ADD_LEVELS_OK and inquire in ADD_LEVELS_OK
            return Probe(name, ok, f"Inquire Level is {inquire} (GL export, batches), Add Level is {add} "
                                   "(create a batch)", "" if ok else fix)
    return Probe(name, None, "the security role lists no Accounting Interface setting", fix)


def probe(client: CWClient, *, on_probe: Callable[[Probe], None] | None = None) -> list[Probe]:
    """Run every probe; bad keys stop early (AuthError propagates: nothing else can be checked)."""
    results: list[Probe] = []

    def add(p: Probe) -> None:
        results.append(p)
        if on_probe:
            on_probe(p)

    for module, area, path in READ_PROBES:
        add(_read_probe(client, module, area, path))
    try:
        add(_batch_probe(client))
    except AuthError:
        raise
    except CwqboError as exc:
        add(Probe("Finance › Accounting Interface (create batches)", None, str(exc), ""))
    return results
