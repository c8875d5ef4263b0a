"""`cwqbo prefs`: show, set, map, export/import preferences and manage the sync schedule.

Thin: every change is one call into `cwqbo.settings.prefs_edit`, which validates on copies and writes the
config only after the whole change validated, so a refused change writes nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.context import AppContext
    from cwqbo.settings.config import Profile
    from cwqbo.settings.prefs import Filters, Prefs
    from cwqbo.settings.prefs_edit import Change, Checker, Save

prefs_app = typer.Typer(help="Preferences: field mappings, items, tax, time detail, filters and the schedule.",
                        invoke_without_command=True, no_args_is_help=False)

def register(app: typer.Typer) -> None:
    app.add_typer(prefs_app, name="prefs")


def _ctx(ctx: typer.Context) -> AppContext:
    from cwqbo.cli.main import get_app_context

    return get_app_context(ctx)


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and all(not isinstance(x, dict) for x in v.values()) and \
                key.split(".")[-1] not in ("fields", "items", "tax", "time"):
            rows.extend((f"{key}.{sk}", sv) for sk, sv in v.items())
        elif isinstance(v, dict) and v:
            rows.extend(_flatten(v, f"{key}."))
        else:
            rows.append((key, v))
    return rows


def _show_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v) or "(all)"
    if isinstance(v, dict):
        return "(none)" if not v else str(v)
    if v == "":
        return '""'
    return str(v)


def _print_tables(profile_name: str, prefs: Prefs, filters: Filters) -> None:
    from cwqbo.cli import render
    from cwqbo.settings.prefs import DESCRIPTIONS, filters_to_dict, prefs_to_dict

    groups: dict[str, list[tuple[str, str, str]]] = {}
    for key, value in _flatten(prefs_to_dict(prefs)):
        group = key.split(".")[0] if "." in key else "sync"
        base = ".".join(key.split(".")[:2]) if "." in key else key
        desc = DESCRIPTIONS.get(key) or DESCRIPTIONS.get(base, "")
        groups.setdefault(group, []).append((key, _show_value(value), desc))
    fd = filters_to_dict(filters)
    for name in ("from_date", "location_ids", "department_ids", "billing_statuses", "invoice_types",
                 "exclude_companies"):
        key = f"filters.{name}"
        groups.setdefault("filters", []).append((key, _show_value(fd.get(name, "(any)")), DESCRIPTIONS.get(key, "")))
    titles = {"sync": "Sync", "fields": "Fields", "items": "Items", "tax": "Tax", "time": "Time", "filters": "Filters"}
    render.out.print(f"Preferences for profile {profile_name}", markup=False)
    for group in ("sync", "fields", "items", "tax", "time", "filters"):
        if group in groups:
            render.out.print(render.table(["Key", "Value", "Meaning"], groups[group], title=titles[group]))


@prefs_app.callback()
def prefs_main(ctx: typer.Context) -> None:
    """Show all preferences (or use a subcommand to change them).

    \b
    Examples:
      cwqbo prefs
      cwqbo prefs set tax.mode line_item
      cwqbo prefs map item LAPTOP Hardware
      cwqbo prefs schedule "0 6 * * *" --install
    """
    if ctx.invoked_subcommand is not None:
        return
    app_ctx = _ctx(ctx)
    profile = app_ctx.profile
    _print_tables(app_ctx.profile_name, profile.prefs, profile.filters)


@prefs_app.command("show")
def show(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout.")
         ) -> None:
    """Show all preferences and filters."""
    from cwqbo.cli import render
    from cwqbo.cli.main import use_json
    from cwqbo.settings.prefs import filters_to_dict, prefs_to_dict

    use_json(ctx, "prefs show", json_out)
    app_ctx = _ctx(ctx)
    profile = app_ctx.profile
    if json_out:
        render.emit_json("prefs show", "ok", 0, {"profile": app_ctx.profile_name,
                                                     "prefs": prefs_to_dict(profile.prefs),
                                                     "filters": filters_to_dict(profile.filters)})
        return
    _print_tables(app_ctx.profile_name, profile.prefs, profile.filters)


@prefs_app.command("keys")
def keys() -> None:
    """List every preference key with what it does."""
    from cwqbo.cli import render
    from cwqbo.settings.prefs import list_keys

    render.out.print(render.table(["Key", "Meaning"], list_keys(), title="Preference keys"))


def _checker(ctx: typer.Context, check: bool) -> Checker | None:
    """`--check`: the QuickBooks names the new prefs use must exist (asks QuickBooks once per entity)."""
    if not check:
        return None
    from cwqbo.quickbooks.prefs_check import check_against_qbo

    return lambda prefs: check_against_qbo(prefs, _ctx(ctx).qbo_client())


def _edit(ctx: typer.Context, edit: Callable[[Profile, Save], Change]) -> Change:
    """Run one edit on this profile; findings of --check are shown even when the edit is refused."""
    from cwqbo.cli import render
    from cwqbo.settings.prefs_edit import RefusedByQuickBooks

    app_ctx = _ctx(ctx)
    try:
        change = edit(app_ctx.profile, app_ctx.save_config)
    except RefusedByQuickBooks as exc:
        for w in exc.warnings:
            render.warn(w)
        raise
    for w in change.warnings:
        render.warn(w)
    return change


def _said(change: Change) -> None:
    from cwqbo.cli import render

    key, old, new = change.key, change.old, change.new
    shown = "(default)" if new is None else _show_value(new)
    if old == new:
        render.out.print(f"{key} is already {shown}", markup=False)
    else:
        render.out.print(f"{key} = {shown}" + ("" if old is None else f" (was {_show_value(old)})"), markup=False)


def _hint_dimension(ctx: typer.Context, key: str) -> None:
    from cwqbo.cli import render
    from cwqbo.settings.prefs_edit import dimension_hints

    for hint in dimension_hints(_ctx(ctx).profile.prefs, key):
        render.warn(hint)


@prefs_app.command("set")
def set_(ctx: typer.Context, key: str = typer.Argument(..., help="Dotted key, e.g. tax.mode or items.product.X."),
         value: str = typer.Argument(..., help="New value (lists comma-separated, booleans true/false)."),
         check: bool = typer.Option(False, "--check", help="Also check that the QuickBooks names exist.")) -> None:
    """Set one preference (validated; nothing is written if it is refused)."""
    from cwqbo.settings.prefs_edit import set_value

    checker = _checker(ctx, check)
    _said(_edit(ctx, lambda profile, save: set_value(profile, save, key, value, checker)))
    _hint_dimension(ctx, key)


@prefs_app.command("unset")
def unset(ctx: typer.Context, key: str = typer.Argument(..., help="Dotted key, or KEY.SUBKEY to drop a mapping.")
          ) -> None:
    """Put one preference back to its default, or remove one mapping entry."""
    from cwqbo.settings.prefs_edit import unset_value

    _said(_edit(ctx, lambda profile, save: unset_value(profile, save, key)))


@prefs_app.command("map")
def map_(ctx: typer.Context,
         kind: str = typer.Argument(..., help="item (= product), work_type, work_role, expense_type, tax, class, "
                                               "department or term."),
         cw: str = typer.Argument(..., help="The ConnectWise name/identifier (class/department: the CW id)."),
         qbo: str = typer.Argument(..., help="The QuickBooks name."),
         check: bool = typer.Option(False, "--check", help="Also check that the QuickBooks name exists.")) -> None:
    """Map a ConnectWise value to a QuickBooks item, tax code, class, department or term."""
    from cwqbo.settings.prefs_edit import map_value

    checker = _checker(ctx, check)
    change = _edit(ctx, lambda profile, save: map_value(profile, save, kind, cw, qbo, checker))
    _said(change)
    _hint_dimension(ctx, change.key)


@prefs_app.command("export")
def export(ctx: typer.Context, file: Optional[Path] = typer.Argument(None, help="Write here (default: stdout).")
           ) -> None:
    """Write this profile's [prefs] and [filters] as TOML (to share or back up)."""
    from cwqbo.cli import render
    from cwqbo.settings.prefs_edit import export_text, export_to

    profile = _ctx(ctx).profile
    if file is None:
        render.out.file.write(export_text(profile))
        render.out.file.flush()
        return
    export_to(profile, file)
    render.info(f"Preferences written to {file}")


@prefs_app.command("import")
def import_(ctx: typer.Context, file: Path = typer.Argument(..., help="A TOML file from `cwqbo prefs export`.")
            ) -> None:
    """Replace this profile's prefs and filters from a TOML file: all of it, or nothing if any value is bad."""
    from cwqbo.cli import render
    from cwqbo.settings.prefs_edit import import_from

    app_ctx = _ctx(ctx)
    import_from(app_ctx.profile, app_ctx.save_config, file)
    render.info(f"Imported preferences into profile {app_ctx.profile_name} from {file}")


def _cwqbo_path() -> str:
    """Absolute path of the cwqbo command for cron/systemd (they don't have the user's PATH)."""
    beside = Path(sys.executable).parent / "cwqbo"
    if beside.exists():
        return str(beside)
    found = shutil.which("cwqbo")
    if found:
        return str(Path(found).resolve())
    return str(beside)


@prefs_app.command("schedule")
def schedule(ctx: typer.Context,
             expr: Optional[str] = typer.Argument(None, help="Cron expression, e.g. '0 6 * * *' (daily at 06:00)."),
             install: bool = typer.Option(False, "--install", help="Add (or update) the entry in your crontab."),
             uninstall: bool = typer.Option(False, "--uninstall", help="Remove this profile's crontab entry."),
             print_: bool = typer.Option(False, "--print", help="Print the crontab line instead of installing."),
             systemd: bool = typer.Option(False, "--systemd", help="With --print: a systemd service + timer."),
             automatic: bool = typer.Option(False, "--automatic",
                                            help="Also set sync_mode = automatic (--install does this too); in "
                                                 "manual mode a scheduled job does nothing."),
             json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout.")) -> None:
    """Show or set when automatic syncs run; install or remove the crontab entry."""
    from cwqbo.settings import schedule as sched
    from cwqbo.cli import render
    from cwqbo.cli.main import use_json
    from cwqbo.errors import UsageError
    from cwqbo.settings.prefs import set_pref

    use_json(ctx, "prefs schedule", json_out)
    if sum([install, uninstall, print_]) > 1:
        raise UsageError("choose one of --install, --uninstall or --print")
    if systemd and not print_:
        raise UsageError("--systemd goes with --print", hint="cwqbo prefs schedule --print --systemd")
    app_ctx = _ctx(ctx)
    profile_name = app_ctx.profile_name
    prefs = app_ctx.profile.prefs
    if expr is not None:
        prefs = set_pref(prefs, "schedule", expr)
    if install or automatic:
        prefs = set_pref(prefs, "sync_mode", "automatic")
    if uninstall:
        prefs = set_pref(prefs, "sync_mode", "manual")
    # The job must reach this very config file, home and profile: cron's environment has none of them.
    target = sched.JobTarget.current(profile_name, app_ctx.paths.config_file, os.environ)
    line = sched.crontab_line(prefs.schedule, _cwqbo_path(), target)
    changed: bool | None = None
    if install:
        changed = sched.install_crontab(line, profile_name).changed
    elif uninstall:
        changed = sched.uninstall_crontab(profile_name).changed
    if prefs != app_ctx.profile.prefs:
        app_ctx.profile.prefs = prefs
        app_ctx.save_config()
    runs = sched.next_runs(prefs.schedule, 5, datetime.now().astimezone())
    manual_warning = None
    if prefs.sync_mode != "automatic" and (print_ or expr is not None):
        manual_warning = ("sync_mode is manual: the scheduled job will start and do nothing until it is "
                          "automatic — add --automatic, or run `cwqbo prefs set sync_mode automatic`")
        if not json_out:
            render.warn(manual_warning)
    if print_:
        if systemd:
            units = sched.systemd_units(prefs.schedule, _cwqbo_path(), target)
            if json_out:
                render.emit_json("prefs schedule", "ok", 0, {"systemd": units, "sync_mode": prefs.sync_mode},
                                 [{"code": "warning", "message": manual_warning}] if manual_warning else [])
                return
            for name, text in units.items():
                render.out.file.write(f"# ~/.config/systemd/user/{name}\n{text}\n")
            render.info("enable with: systemctl --user daemon-reload && systemctl --user enable --now "
                        + next(n for n in units if n.endswith(".timer")))
        else:
            if json_out:
                render.emit_json("prefs schedule", "ok", 0, {"crontab": line, "sync_mode": prefs.sync_mode},
                                 [{"code": "warning", "message": manual_warning}] if manual_warning else [])
                return
            render.out.file.write(f"{sched.marker(profile_name)}\n{line}\n")
        render.out.file.flush()
        return
    data = {"profile": profile_name, "schedule": prefs.schedule, "sync_mode": prefs.sync_mode,
            "next_runs": [r.isoformat() for r in runs], "crontab": line, "changed": changed}
    if json_out:
        render.emit_json("prefs schedule", "ok", 0, data,
                         [{"code": "warning", "message": manual_warning}] if manual_warning else [])
        return
    render.out.print(f"Schedule: {prefs.schedule} (sync mode: {prefs.sync_mode})", markup=False)
    render.out.print(render.table(["Next runs"], [(r.strftime("%a %Y-%m-%d %H:%M %Z"),) for r in runs]))
    if install:
        render.out.print("Crontab entry installed." if changed else "Crontab entry already up to date.",
                         markup=False)
    elif uninstall:
        render.out.print("Crontab entry removed." if changed else "No crontab entry for this profile.",
                         markup=False)
    elif prefs.sync_mode != "automatic" and os.environ.get("CWQBO_SCHEDULED") != "1":
        render.info("not installed: run `cwqbo prefs schedule --install` (or --print to copy the line)")


@prefs_app.command("fields")
def fields(ctx: typer.Context) -> None:
    """What each QuickBooks field gets, side by side with a sample from a cached invoice (if any)."""
    from cwqbo.cli import render

    app_ctx = _ctx(ctx)
    prefs = app_ctx.profile.prefs
    sample = _sample_invoice(app_ctx)
    values = _sample_values(sample, prefs) if sample is not None else {}
    f, t = prefs.fields, prefs.tax
    memo = {"none": "(none)", "top_comment": "top comment", "bottom_comment": "bottom comment"}[f.customer_memo]
    rows = [
        ("DocNumber", f"'{f.docnumber_prefix}' + invoice number" if f.docnumber_prefix else "invoice number"),
        ("CustomerRef", f"company {f.customer_match}"),
        ("TxnDate / DueDate", "invoice date / due date"),
        ("SalesTermRef", "billing terms via fields.terms_map" if f.terms_map else "(customer default)"),
        ("CustomerMemo", memo),
        ("PrivateNote", f.private_note or "(none)"),
        ("ClassRef", f"{f.class_source} via fields.class_map" if f.class_source != "none" else "(none)"),
        ("DepartmentRef", f"{f.department_source} via fields.department_map"
         if f.department_source != "none" else "(none)"),
    ]
    rows += [(f"CustomField '{qbo}'", cw) for cw, qbo in f.custom_fields.items()]
    rows += [("Line", f"time: {prefs.time.detail} by {prefs.time.item_source}; unmapped → "
                      f"{prefs.items.fallback or '(refused)'}"),
             ("Tax", {"pin_cw": "CW sales tax pinned (TxnTaxDetail.TotalTax)", "line_item":
                      f"CW sales tax as a line on '{t.line_item}'", "qbo": "calculated by QuickBooks"}[t.mode])]
    table_rows = [(q, src, values.get(q, "")) for q, src in rows]
    title = "QuickBooks fields" + (f" (sample: invoice {sample.number})" if sample is not None else "")
    render.out.print(render.table(["QuickBooks", "From ConnectWise", "Sample"], table_rows, title=title))
    if sample is None:
        render.info("no cached invoice for samples yet: run `cwqbo list-unsynced` or `cwqbo sync --dry-run` first")


def _sample_invoice(app_ctx: Any) -> Any:
    """The most recent cached invoice, or None when there is no store yet (or it can't be read)."""
    try:
        db_file = app_ctx.paths.db_file(app_ctx.profile_name)
        if not Path(db_file).exists():
            return None
        from cwqbo.models import invoice_from_json
        from cwqbo.state.store import Store

        store = Store.open(db_file)
        try:
            rows = list(store.db.query("select data from invoices order by date desc, cw_id desc limit 1"))
        finally:
            store.close()
        if not rows:
            return None
        from cwqbo import money

        return invoice_from_json(money.loads(rows[0]["data"]))
    except Exception:  # a sample is a nicety: never fail the command over it
        return None


def _sample_values(inv: Any, prefs: Prefs) -> dict[str, str]:
    from cwqbo.mapping.customers import customer_display_name
    from cwqbo.mapping.document import doc_number, readiness
    from cwqbo.mapping.errors import MappingError
    from cwqbo.mapping.fields import custom_values, render_note
    from cwqbo.mapping.text import truncate

    out: dict[str, str] = {}
    try:
        out["DocNumber"] = doc_number(inv, prefs)
    except MappingError as exc:
        out["DocNumber"] = f"(refused: {exc.reason})"
    out["CustomerRef"] = customer_display_name(inv.company, prefs)
    out["TxnDate / DueDate"] = f"{inv.date} / {inv.due_date or ''}"
    if inv.terms:
        out["SalesTermRef"] = f"{inv.terms} → {prefs.fields.terms_map.get(inv.terms, '(customer default)')}"
    memo = {"top_comment": inv.top_comment, "bottom_comment": inv.bottom_comment}.get(prefs.fields.customer_memo)
    if memo:
        out["CustomerMemo"] = truncate(memo, 60)
    try:
        if prefs.fields.private_note:
            out["PrivateNote"] = truncate(render_note(prefs.fields.private_note, inv), 60)
    except MappingError:
        out["PrivateNote"] = "(invalid template)"
    for name, value in custom_values(inv, prefs):
        out[f"CustomField '{name}'"] = value
    status, reason = readiness(inv, prefs)
    out["Line"] = f"{len(inv.lines)} CW lines; {status}" + (f": {reason}" if reason else "")
    return out
