"""`cwqbo check-permissions`: which ConnectWise security-role rights the API member lacks, and how to fix each."""

from __future__ import annotations

from typing import Any

import typer

EXIT_FAILED = 3


def register(app: typer.Typer) -> None:
    app.command("check-permissions")(check_permissions)


def _status(ok: bool | None, required: bool = True) -> str:
    return "ok" if ok else "unknown" if ok is None else "MISSING" if required else "payments only"


def _required(p: Any, payments_on: bool) -> bool:
    """A right only payments need counts as missing when payments are on (`payments.enabled`)."""
    return not getattr(p, "needed_for", "") or payments_on


def _quickbooks_checks(app_ctx: Any) -> list[Any]:
    """The QuickBooks side, when it is connected (a missing connection is shown, not failed: connect it next)."""
    from cwqbo.errors import NotConnectedError
    from cwqbo.quickbooks.checks import Check, probe

    try:
        qbo = app_ctx.qbo_client()
    except NotConnectedError:
        return [Check("QuickBooks › Connection", None, "not connected yet", "run `cwqbo connect quickbooks`")]
    try:
        return probe(qbo, app_ctx.profile.prefs)
    finally:
        qbo.close()


def check_permissions(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Probe every ConnectWise right and QuickBooks setting the sync needs; exit 3 if any is missing.

    The rights for bringing payments back (reading, adding and deleting invoice payments) are always checked; they
    fail the command only when payments are on (`cwqbo prefs set payments.enabled true`), and are marked
    "payments only" otherwise.

    \b
    Example:
      cwqbo check-permissions
    """
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context, use_json
    from cwqbo.connectwise.permissions import payment_probes, probe

    use_json(ctx, "check-permissions", json_out)
    app_ctx = get_app_context(ctx)
    payments_on = bool(app_ctx.profile.prefs.payments.enabled)
    client = app_ctx.cw_client()
    try:
        probes: list[Any] = list(probe(client))
        probes += payment_probes(client)
    finally:
        client.close()
    probes += _quickbooks_checks(app_ctx)
    # ok=None: could not tell; shown, but not a failure. A payments-only right fails only with payments on.
    failed = [p for p in probes if p.ok is False and _required(p, payments_on)]
    later = [p for p in probes if p.ok is False and not _required(p, payments_on)]
    code = EXIT_FAILED if failed else 0
    if json_out:
        data = {"payments_enabled": payments_on,
                "probes": [{"area": p.area, "ok": p.ok, "detail": p.detail, "fix": p.fix,
                            "needed_for": getattr(p, "needed_for", "") or None,
                            "required": _required(p, payments_on)} for p in probes]}
        errors = [{"code": "permission", "area": p.area, "message": p.detail, "fix": p.fix} for p in failed]
        render.emit_json("check-permissions", "error" if failed else "ok", code, data, errors)
        raise typer.Exit(code)
    # What to change goes below the table, one line per area that is not ok: inside it, the fix would be folded
    # into a 16-character column at 80 columns.
    rows = [(p.area, _status(p.ok, _required(p, payments_on))) for p in probes]
    render.out.print(render.table(["Area", "Status"], rows,
                                  title="ConnectWise API member rights and QuickBooks settings"))
    render.notes_below("What to change:", [(p.area, p.detail + (f" — fix: {p.fix}" if p.fix else ""))
                                           for p in probes if not p.ok])
    if failed:
        render.err.print(f"{len(failed)} of {len(probes)} areas need a security-role change "
                         "(System › Security Roles), then re-run `cwqbo check-permissions`.", highlight=False)
    else:
        render.err.print("All ConnectWise rights the sync needs are present.", highlight=False)
    if later:
        render.err.print(f"{len(later)} right(s) marked \"payments only\" are missing: needed only to bring payments "
                         "back (`cwqbo sync --payments`, payments.enabled); make the change shown before turning "
                         "payments on.", highlight=False)
    raise typer.Exit(code)
