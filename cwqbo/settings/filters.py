"""Which Closed invoices are in scope: turning `refilter` options or a TOML file into validated `Filters`.

Everything here is pure and raises `ConfigError` with the option's name, so a refused change writes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from cwqbo.errors import ConfigError
from cwqbo.settings.prefs import Filters, filters_from_dict

INVOICE_TYPES = ("Standard", "Agreement", "CreditMemo", "DownPayment", "Miscellaneous", "Progress")


def parse_date_option(value: str | None, option: str) -> date | None:
    """An ISO date, or None for "no limit" ('' is how a user clears one)."""
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} must be a date like 2026-01-31 (got {value!r})") from None


def normalize_type(name: str) -> str:
    """'credit memo' → 'CreditMemo'; unknown names are a ConfigError listing the valid ones."""
    key = name.replace(" ", "").replace("-", "").casefold()
    for t in INVOICE_TYPES:
        if t.casefold() == key:
            return t
    raise ConfigError(f"unknown invoice type {name!r}: use one of {', '.join(INVOICE_TYPES)}")


def apply_filter_options(current: Filters, *, clear: bool = False, imported: Filters | None = None,
                         from_date: str | None = None, locations: list[int] | None = None,
                         departments: list[int] | None = None, statuses: list[str] | None = None,
                         types: list[str] | None = None, exclude: list[str] | None = None) -> Filters:
    """New filters from the current ones: --clear, then --import, then each given option replaces its field."""
    f = Filters() if clear else replace(current)
    if imported is not None:
        f = imported
    changes: dict[str, Any] = {}
    if from_date is not None:
        changes["from_date"] = parse_date_option(from_date, "--from-date")
    if locations:
        changes["location_ids"] = _positive(locations, "--location")
    if departments:
        changes["department_ids"] = _positive(departments, "--department")
    if statuses:
        changes["billing_statuses"] = _names(statuses, "--status")
    if types:
        changes["invoice_types"] = list(dict.fromkeys(normalize_type(t) for t in types))
    if exclude:
        changes["exclude_companies"] = _names(exclude, "--exclude-company")
    f = replace(f, **changes)
    f.invoice_types = [normalize_type(t) for t in f.invoice_types]
    return f


def _positive(values: list[int], option: str) -> list[int]:
    bad = [v for v in values if v <= 0]
    if bad:
        raise ConfigError(f"{option} takes positive ConnectWise ids (got {bad[0]})")
    return sorted(set(values))


def _names(values: list[str], option: str) -> list[str]:
    names = [v.strip() for v in values]
    if any(not n for n in names):
        raise ConfigError(f"{option} cannot be empty")
    return list(dict.fromkeys(names))


def load_filters_file(path: Path) -> Filters:
    """A TOML file of filters: either top-level keys or a [filters] table."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--import: {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"--import: cannot read {path} ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--import: {path} is not valid TOML ({exc})") from None
    if isinstance(data.get("filters"), dict):
        data = data["filters"]
    return filters_from_dict(data, where=f"{path.name}")
