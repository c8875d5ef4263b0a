"""Changing a profile's preferences: `prefs set/unset/map/import/export` without the command line around them.

Every change is computed on copies (`set_pref` / `prefs_from_dict` validate and never mutate), optionally checked
against QuickBooks, and only then stored and saved, so a refused change writes nothing. Nothing here prints:
warnings come back in the `Change` for the caller to show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cwqbo.errors import ConfigError, UsageError
from cwqbo.settings.config import Profile
from cwqbo.settings.prefs import (Filters, Prefs, filters_from_dict, filters_to_dict, get_pref, prefs_from_dict,
                                  prefs_to_dict, set_pref, unset_pref)

MAP_KINDS = {"item": "items.product", "product": "items.product", "work_type": "items.work_type",
             "work_role": "items.work_role", "expense_type": "items.expense_type", "tax": "tax.codes",
             "class": "fields.class_map", "department": "fields.department_map", "term": "fields.terms_map"}

Save = Callable[[], None]  # writes the config the profile belongs to
Checker = Callable[[Prefs], list[str]]  # problems QuickBooks has with these prefs (names that don't exist)


class RefusedByQuickBooks(ConfigError):
    """The check found the new value missing in QuickBooks; `warnings` are its other findings, still worth showing."""

    def __init__(self, message: str, warnings: list[str]) -> None:
        super().__init__(message, hint="nothing was changed; check the name in QuickBooks")
        self.warnings = tuple(warnings)


@dataclass(frozen=True)
class Change:
    key: str
    old: Any  # None: the default
    new: Any
    warnings: tuple[str, ...] = ()  # problems found by the check that are not about this key


def _apply(profile: Profile, save: Save, key: str, change: Callable[[Any], Any],
           check: Checker | None = None) -> Change:
    """Validate the change on copies; run the optional QBO check; only then save."""
    is_filter = key.startswith("filters.")
    current: Prefs | Filters = profile.filters if is_filter else profile.prefs
    new = change(current)  # raises ConfigError before anything is written
    warnings: list[str] = []
    if check is not None and not is_filter:
        problems = check(new)
        norm = key[len("prefs."):] if key.startswith("prefs.") else key
        mine = [p for p in problems if p.split(":", 1)[0].startswith(norm)]
        warnings = [p for p in problems if p not in mine]
        if mine:
            raise RefusedByQuickBooks(mine[0], warnings)
    old_value, new_value = get_pref(current, key), get_pref(new, key)
    if is_filter:
        profile.filters = new
    else:
        profile.prefs = new
    save()
    return Change(key, old_value, new_value, tuple(warnings))


def set_value(profile: Profile, save: Save, key: str, value: str, check: Checker | None = None) -> Change:
    """`prefs set KEY VALUE`."""
    return _apply(profile, save, key, lambda cur: set_pref(cur, key, value), check)


def unset_value(profile: Profile, save: Save, key: str) -> Change:
    """`prefs unset KEY`: back to the default, or drop one mapping entry."""
    return _apply(profile, save, key, lambda cur: unset_pref(cur, key))


def map_value(profile: Profile, save: Save, kind: str, cw: str, qbo: str, check: Checker | None = None) -> Change:
    """`prefs map KIND CW QBO`: one mapping entry (a CW name with dots can't be a dotted key: set the table)."""
    if kind not in MAP_KINDS:
        raise UsageError(f"unknown mapping kind {kind!r}", hint="use one of: " + ", ".join(MAP_KINDS))
    table = MAP_KINDS[kind]
    key = f"{table}.{cw}"
    if "." not in cw:
        return _apply(profile, save, key, lambda cur: set_pref(cur, key, qbo), check)
    done = _apply(profile, save, table, lambda cur: _set_entry(cur, table, cw, qbo), check)
    return Change(key, (done.old or {}).get(cw), (done.new or {}).get(cw), done.warnings)


def _set_entry(cur: Prefs, table_key: str, sub: str, value: str) -> Prefs:
    """Set one mapping entry whose CW key contains dots (not expressible as a dotted key)."""
    data = prefs_to_dict(cur)
    node = data
    for part in table_key.split("."):
        node = node.setdefault(part, {})
    node[sub] = value
    return prefs_from_dict(data, "prefs")


def dimension_hints(prefs: Prefs, key: str) -> list[str]:
    """A class/department mapping does nothing until its source is chosen: say so."""
    hints = []
    if key.startswith("fields.class_map.") and prefs.fields.class_source == "none":
        hints.append("fields.class_source is none, so this mapping is not used yet: "
                     "`cwqbo prefs set fields.class_source location` (or department)")
    if key.startswith("fields.department_map.") and prefs.fields.department_source == "none":
        hints.append("fields.department_source is none, so this mapping is not used yet: "
                     "`cwqbo prefs set fields.department_source location` (or department)")
    return hints


def export_text(profile: Profile) -> str:
    """This profile's [prefs] and [filters] as TOML (to share or back up)."""
    import tomli_w

    return tomli_w.dumps({"prefs": prefs_to_dict(profile.prefs), "filters": filters_to_dict(profile.filters)})


def export_to(profile: Profile, file: Path) -> None:
    try:
        file.write_text(export_text(profile), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {file}: {exc.strerror or exc}") from None


def import_from(profile: Profile, save: Save, file: Path) -> None:
    """Replace prefs and filters from a TOML file: all of it, or nothing if any value is bad."""
    import tomllib

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
    profile.prefs, profile.filters = new_prefs, new_filters
    save()
