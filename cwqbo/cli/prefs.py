"""`cwqbo prefs`: show, set, map, export/import preferences and manage the sync schedule.

Thin: every change goes through `cwqbo.settings.prefs.set_pref` / `prefs_from_dict` (which validate and never mutate),
and the config is written only after the whole change validated, so a refused change writes nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.settings.prefs import Filters, Prefs

prefs_app = typer.Typer(help="Preferences: field mappings, items, tax, time detail, filters and the schedule.",
                        invoke_without_command=True, no_args_is_help=False)

MAP_KINDS = {"item": "items.product", "product": "items.product", "work_type": "items.work_type",
             "work_role": "items.work_role", "expense_type": "items.expense_type", "tax": "tax.codes",
             "class": "fields.class_map", "department": "fields.department_map", "term": "fields.terms_map"}


def register(app: typer.Typer) -> None:
    app.add_typer(prefs_app, name="prefs")


def _ctx(ctx: typer.Context) -> Any:
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


def _apply(ctx: typer.Context, key: str, change: Any, *, check: bool = False) -> tuple[Any, Any]:
    """Validate the change on copies; run the optional QBO check; only then save. Returns (old, new) value."""
    from cwqbo.cli import render
    from cwqbo.errors import ConfigError
    from cwqbo.settings.prefs import get_pref

    app_ctx = _ctx(ctx)
    profile = app_ctx.profile
    is_filter = key.startswith("filters.")
    current = profile.filters if is_filter else profile.prefs
    new = change(current)  # raises ConfigError before anything is written
    if check and not is_filter:
        from cwqbo.settings.prefs_check import check_against_qbo

        problems = check_against_qbo(new, app_ctx.qbo_client())
        norm = key[len("prefs."):] if key.startswith("prefs.") else key
        mine = [p for p in problems if p.split(":", 1)[0].startswith(norm)]
        for p in problems:
            if p not in mine:
                render.warn(p)
        if mine:
            raise ConfigError(mine[0], hint="nothing was changed; check the name in QuickBooks")
    old_value, new_value = get_pref(current, key), get_pref(new, key)
    if is_filter:
        profile.filters = new
    else:
        profile.prefs = new
    app_ctx.save_config()
    return old_value, new_value


def _said(key: str, old: Any, new: Any) -> None:
    from cwqbo.cli import render

    shown = "(default)" if new is None else _show_value(new)
    if old == new:
        render.out.print(f"{key} is already {shown}", markup=False)
    else:
        render.out.print(f"{key} = {shown}" + ("" if old is None else f" (was {_show_value(old)})"), markup=False)


@prefs_app.command("set")
def set_(ctx: typer.Context, key: str = typer.Argument(..., help="Dotted key, e.g. tax.mode or items.product.X."),
         value: str = typer.Argument(..., help="New value (lists comma-separated, booleans true/false)."),
         check: bool = typer.Option(False, "--check", help="Also check that the QuickBooks names exist.")) -> None:
    """Set one preference (validated; nothing is written if it is refused)."""
    from cwqbo.settings.prefs import set_pref

    old, new = _apply(ctx, key, lambda cur: set_pref(cur, key, value), check=check)
    _said(key, old, new)
    _hint_dimension(ctx, key)


@prefs_app.command("unset")
def unset(ctx: typer.Context, key: str = typer.Argument(..., help="Dotted key, or KEY.SUBKEY to drop a mapping.")
          ) -> None:
    """Put one preference back to its default, or remove one mapping entry."""
    from cwqbo.settings.prefs import unset_pref

    old, new = _apply(ctx, key, lambda cur: unset_pref(cur, key))
    _said(key, old, new)


def _hint_dimension(ctx: typer.Context, key: str) -> None:
    """A class/department mapping does nothing until its source is chosen: say so."""
    from cwqbo.cli import render

    fields = _ctx(ctx).profile.prefs.fields
    if key.startswith("fields.class_map.") and fields.class_source == "none":
        render.warn("fields.class_source is none, so this mapping is not used yet: "
                    "`cwqbo prefs set fields.class_source location` (or department)")
    if key.startswith("fields.department_map.") and fields.department_source == "none":
        render.warn("fields.department_source is none, so this mapping is not used yet: "
                    "`cwqbo prefs set fields.department_source location` (or department)")


@prefs_app.command("map")
def map_(ctx: typer.Context,
         kind: str = typer.Argument(..., help="item (= product), work_type, work_role, expense_type, tax, class, "
                                               "department or term."),
         cw: str = typer.Argument(..., help="The ConnectWise name/identifier (class/department: the CW id)."),
         qbo: str = typer.Argument(..., help="The QuickBooks name."),
         check: bool = typer.Option(False, "--check", help="Also check that the QuickBooks name exists.")) -> None:
    """Map a ConnectWise value to a QuickBooks item, tax code, class, department or term."""
    from cwqbo.errors import UsageError
    from cwqbo.settings.prefs import set_pref

    if kind not in MAP_KINDS:
        raise UsageError(f"unknown mapping kind {kind!r}", hint="use one of: " + ", ".join(MAP_KINDS))
    key = f"{MAP_KINDS[kind]}.{cw}"
    if "." not in cw:
        old, new = _apply(ctx, key, lambda cur: set_pref(cur, key, qbo), check=check)
    else:  # a CW key with dots can't be a dotted key: edit the table entry directly
        old_t, new_t = _apply(ctx, MAP_KINDS[kind], lambda cur: _set_entry(cur, MAP_KINDS[kind], cw, qbo),
                              check=check)
        old, new = (old_t or {}).get(cw), (new_t or {}).get(cw)
    _said(key, old, new)
    _hint_dimension(ctx, key)


def _set_entry(cur: Any, table_key: str, sub: str, value: str) -> Any:
    """Set one mapping entry whose CW key contains dots (not expressible as a dotted key)."""
    from cwqbo.settings.prefs import prefs_from_dict, prefs_to_dict

    data = prefs_to_dict(cur)
    node = data
    for part in table_key.split("."):
        node = node.setdefault(part, {})
    node[sub] = value
    return prefs_from_dict(data, "prefs")


@prefs_app.command("export")
def export(ctx: typer.Context, file: Optional[Path] = typer.Argument(None, help="Write here (default: stdout).")
           ) -> None:
    """Write this profile's [prefs] and [filters] as TOML (to share or back up)."""
    import tomli_w

    from cwqbo.cli import render
    from cwqbo.errors import UsageError
    from cwqbo.settings.prefs import filters_to_dict, prefs_to_dict

    profile = _ctx(ctx).profile
    text = tomli_w.dumps({"prefs": prefs_to_dict(profile.prefs), "filters": filters_to_dict(profile.filters)})
    if file is None:
        render.out.file.write(text)
        render.out.file.flush()
        return
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {file}: {exc.strerror or exc}") from None
    render.info(f"Preferences written to {file}")


@prefs_app.command("import")
def import_(ctx: typer.Context, file: Path = typer.Argument(..., help="A TOML file from `cwqbo prefs export`.")
            ) -> None:
    """Replace this profile's prefs and filters from a TOML file: all of it, or nothing if any value is bad."""
    import tomllib

    from cwqbo.cli import render
    from cwqbo.errors import ConfigError, UsageError
    from cwqbo.settings.prefs import filters_from_dict, prefs_from_dict

    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - {"prefs", "filters"})
    if unknown:
        raise ConfigError(f"{file}: unknown table {unknown[0]!r} (expected [prefs] and [filters])")
    if not raw:
        raise ConfigError(f"{file}: no [prefs] or [filters] table; nothing to import")
    try:
        new_prefs = prefs_from_dict(raw.get("prefs", {}), "prefs")
        new_filters = filters_from_dict(raw.get("filters", {}), "filters")
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}", hint="nothing was imported") from None
    app_ctx = _ctx(ctx)
    profile = app_ctx.profile
    profile.prefs, profile.filters = new_prefs, new_filters
    app_ctx.save_config()
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
    from cwqbo.mapping import document as mapping

    out: dict[str, str] = {}
    try:
        out["DocNumber"] = mapping.doc_number(inv, prefs)
    except mapping.MappingError as exc:
        out["DocNumber"] = f"(refused: {exc.reason})"
    out["CustomerRef"] = mapping.customer_display_name(inv.company, prefs)
    out["TxnDate / DueDate"] = f"{inv.date} / {inv.due_date or ''}"
    if inv.terms:
        out["SalesTermRef"] = f"{inv.terms} → {prefs.fields.terms_map.get(inv.terms, '(customer default)')}"
    memo = {"top_comment": inv.top_comment, "bottom_comment": inv.bottom_comment}.get(prefs.fields.customer_memo)
    if memo:
        out["CustomerMemo"] = mapping.truncate(memo, 60)
    try:
        if prefs.fields.private_note:
            out["PrivateNote"] = mapping.truncate(mapping.render_note(prefs.fields.private_note, inv), 60)
    except mapping.MappingError:
        out["PrivateNote"] = "(invalid template)"
    for name, value in mapping.custom_values(inv, prefs):
        out[f"CustomField '{name}'"] = value
    status, reason = mapping.readiness(inv, prefs)
    out["Line"] = f"{len(inv.lines)} CW lines; {status}" + (f": {reason}" if reason else "")
    return out
