"""Check the ConnectWise API member's rights before a sync needs them (`cwqbo check-permissions`).

Each read right is probed with a one-record GET (a 403 names the missing right). The accounting flow needs
Finance › Accounting Interface at Inquire (unposted invoices, batches and their entries, and the GL export, which
is a read) and at Add (creating the batch). The Add right cannot be probed without creating a batch, so both
levels are read from the member's security role when the API lets us, and otherwise explained. Never creates
anything, and never runs an export (without a list of invoices it would export the whole unposted ledger).

Bringing payments back (`sync --payments`) needs more: reading an invoice's payments (probed with a one-record GET)
and adding and deleting them (read from the role, like the batch right: cwqbo never posts a test payment).
`payment_probes` checks those; their rows say `needed_for="payments"` so the CLI can tell a right the invoice sync
needs from one only payments need.
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
    needed_for: str = ""  # "payments": only `sync --payments` needs it; "": the invoice sync does


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


# Which security-role area guards ConnectWise invoice payments (`/finance/invoices/{id}/payments`: GET, POST,
# DELETE) is not named for certain by any public ConnectWise source: the API reference and pyconnectwise give the
# routes and the `Payment` model, not the right. cwqbo assumes what its simulator models
# (`sandbox/connectwise/security.py`, `sandbox/connectwise/payments.py`): Finance › Invoicing, Inquire to read,
# Add to post, Delete to reverse. If a real site refuses with every Invoicing level at All, the 403's message
# names the area ConnectWise actually wants.
PAYMENTS_MODULE, PAYMENTS_AREA = "Finance", "Invoicing"
PAYMENTS = "payments"


def _some_invoice_id(client: CWClient) -> int | None:
    try:
        rows = client.get_json("/finance/invoices", {"pageSize": 1, "page": 1, "fields": "id"})
    except (PermissionDenied, RemoteError):
        return None
    first = rows[0] if isinstance(rows, list) and rows else None
    value = first.get("id") if isinstance(first, dict) else None
    return int(value) if isinstance(value, int) else None


def _payments_read_probe(client: CWClient) -> Probe:
    """A one-record GET of some invoice's payments (the invoices list when no invoice exists yet)."""
    invoice_id = _some_invoice_id(client)
    path = "/finance/invoices" if invoice_id is None else f"/finance/invoices/{invoice_id}/payments"
    probe_ = _read_probe(client, PAYMENTS_MODULE, PAYMENTS_AREA, path)
    name = f"{PAYMENTS_MODULE} › {PAYMENTS_AREA} (payments: read)"
    detail = probe_.detail + (" (no invoice yet to read payments of)" if invoice_id is None and probe_.ok else "")
    return Probe(name, probe_.ok, detail, probe_.fix, PAYMENTS)


def _role_level_probes(client: CWClient) -> list[Probe]:
    """Add (post a payment) and Delete (reverse a voided one) of Finance › Invoicing, read from the member's role."""
    wanted = (("add", "post payments"), ("delete", "reverse voided or deleted payments"))
    names = {kind: f"{PAYMENTS_MODULE} › {PAYMENTS_AREA} (payments: {kind})" for kind, _ in wanted}
    fixes = {kind: fix_text(PAYMENTS_MODULE, PAYMENTS_AREA, f"{kind.capitalize()} Level: All") for kind, _ in wanted}
    try:
        settings = _role_settings(client)
    except (PermissionDenied, RemoteError):
        settings = None
    if settings is None:
        return [Probe(names[k], None, "cannot read the API member's security role, so this was not verified "
                                      "(cwqbo never posts a test payment)", fixes[k], PAYMENTS) for k, _ in wanted]
    for s in settings:
        function = str(s.get("moduleFunctionName") or "").strip().lower()
        module = str(s.get("moduleName") or PAYMENTS_MODULE).strip().lower()
        if function == PAYMENTS_AREA.lower() and module == PAYMENTS_MODULE.lower():
            out = []
            for kind, what in wanted:
                level = str(s.get(f"{kind}Level") or "None")
                ok = level in ADD_LEVELS_OK
                out.append(Probe(names[kind], ok, f"{kind.capitalize()} Level is {level} ({what})",
                                 "" if ok else fixes[kind], PAYMENTS))
            return out
    return [Probe(names[k], None, f"the security role lists no {PAYMENTS_AREA} setting", fixes[k], PAYMENTS)
            for k, _ in wanted]


def payment_probes(client: CWClient, *, on_probe: Callable[[Probe], None] | None = None) -> list[Probe]:
    """The rights bringing payments back needs; never writes. Bad keys stop early (AuthError propagates)."""
    results: list[Probe] = []
    steps: list[Callable[[], list[Probe]]] = [lambda: [_payments_read_probe(client)],
                                              lambda: _role_level_probes(client)]
    for step in steps:
        try:
            found = step()
        except AuthError:
            raise
        except CwqboError as exc:
            found = [Probe(f"{PAYMENTS_MODULE} › {PAYMENTS_AREA} (invoice payments)", None, str(exc), "", PAYMENTS)]
        for p in found:
            results.append(p)
            if on_probe:
                on_probe(p)
    return results
