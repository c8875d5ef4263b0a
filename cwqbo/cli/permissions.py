"""`cwqbo check-permissions`: which ConnectWise security-role rights the API member lacks, and how to fix each."""

from __future__ import annotations

from typing import Any

import typer

EXIT_FAILED = 3


def register(app: typer.Typer) -> None:
    app.command("check-permissions")(check_permissions)


def _status(ok: bool | None) -> str:
    return "ok" if ok else "unknown" if ok is None else "MISSING"


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

    \b
    Example:
      cwqbo check-permissions
    """
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context, use_json
    from cwqbo.connectwise.permissions import probe

    use_json(ctx, "check-permissions", json_out)
    app_ctx = get_app_context(ctx)
    client = app_ctx.cw_client()
    try:
        probes = list(probe(client))
    finally:
        client.close()
    probes += _quickbooks_checks(app_ctx)
    failed = [p for p in probes if p.ok is False]  # ok=None: could not tell; shown, but not a failure
    code = EXIT_FAILED if failed else 0
    if json_out:
        data = {"probes": [{"area": p.area, "ok": p.ok, "detail": p.detail, "fix": p.fix} for p in probes]}
        errors = [{"code": "permission", "area": p.area, "message": p.detail, "fix": p.fix} for p in failed]
        render.emit_json("check-permissions", "error" if failed else "ok", code, data, errors)
        raise typer.Exit(code)
    rows = [(p.area, _status(p.ok), "" if p.ok else f"{p.detail}" + (f" — fix: {p.fix}" if p.fix else ""))
            for p in probes]
    render.out.print(render.table(["Area", "Status", "What to change"], rows,
                                  title="ConnectWise API member rights and QuickBooks settings"))
    if failed:
        render.err.print(f"{len(failed)} of {len(probes)} areas need a security-role change "
                         "(System › Security Roles), then re-run `cwqbo check-permissions`.", highlight=False)
    else:
        render.err.print("All ConnectWise rights the sync needs are present.", highlight=False)
    raise typer.Exit(code)
