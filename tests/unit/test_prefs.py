"""Preferences round-trip through TOML, refuse bad input naming the key, and edit by dotted key."""

from __future__ import annotations

import tomllib
from datetime import date

import pytest
import tomli_w

from cwqbo.errors import ConfigError
from cwqbo.settings.prefs import (
    Filters, Prefs, filters_from_dict, filters_to_dict, get_pref, list_keys, prefs_from_dict, prefs_to_dict,
    set_pref, unset_pref,
)


def test_defaults_round_trip_through_toml() -> None:
    text = tomli_w.dumps({"prefs": prefs_to_dict(Prefs()), "filters": filters_to_dict(Filters())})
    back = tomllib.loads(text)
    assert prefs_from_dict(back["prefs"]) == Prefs()
    assert filters_from_dict(back["filters"]) == Filters()
    assert "from_date" not in back["filters"]  # None is omitted, TOML has no null


def test_changed_values_round_trip() -> None:
    p = set_pref(Prefs(), "tax.mode", "line_item")
    p = set_pref(p, "items.product.LAPTOP", "Hardware")
    p = set_pref(p, "time.include_notes", "no")
    f = set_pref(Filters(), "filters.from_date", "2026-01-01")
    f = set_pref(f, "filters.location_ids", "1, 2,3")
    back = tomllib.loads(tomli_w.dumps({"p": prefs_to_dict(p), "f": filters_to_dict(f)}))
    p2, f2 = prefs_from_dict(back["p"]), filters_from_dict(back["f"])
    assert p2.tax.mode == "line_item" and p2.items.product == {"LAPTOP": "Hardware"} and p2.time.include_notes is False
    assert f2.from_date == date(2026, 1, 1) and f2.location_ids == [1, 2, 3]


@pytest.mark.parametrize("data, message", [
    ({"nope": 1}, "prefs.nope: unknown key"),
    ({"tax": {"mode": "magic"}}, "prefs.tax.mode: must be one of qbo, pin_cw, line_item (got 'magic')"),
    ({"tax": {"bogus": "x"}}, "prefs.tax.bogus: unknown key"),
    ({"time": {"include_notes": "yes"}}, "prefs.time.include_notes: must be true or false"),
    ({"items": {"product": {"A": 3}}}, "prefs.items.product.A: must be a non-empty string"),
    ({"schedule": "every day"}, "prefs.schedule: 'every day' is not a valid cron expression"),
    ({"fields": {"docnumber_prefix": "X" * 21}}, "prefs.fields.docnumber_prefix: must be shorter than 21"),
    ({"fields": {"custom_fields": {"colour": "Colour"}}}, "prefs.fields.custom_fields.colour: unknown ConnectWise"),
    ({"fields": {"custom_fields": {"customer_po": "A", "reference": "B", "site": "C", "ticket": "D"}}},
     "prefs.fields.custom_fields: QuickBooks allows 3 custom fields"),
    ({"fields": {"private_note": "CW {nr}"}}, "prefs.fields.private_note: unknown placeholder {nr}"),
    ({"fields": {"class_map": {"north": "X"}}}, "prefs.fields.class_map.north: keys are CW location"),
    ({"time": {"hours_rounding": "0"}}, "prefs.time.hours_rounding: must be a positive number"),
])
def test_bad_prefs_are_refused_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        prefs_from_dict(data)
    assert str(exc.value).startswith(message)


def test_where_prefix_is_used() -> None:
    with pytest.raises(ConfigError, match=r"^profiles\.default\.prefs\.sync_mode: "):
        prefs_from_dict({"sync_mode": "sometimes"}, "profiles.default.prefs")


@pytest.mark.parametrize("data, message", [
    ({"from_date": "yesterday"}, "filters.from_date: must be a date YYYY-MM-DD"),
    ({"location_ids": ["a"]}, "filters.location_ids[0]: must be an integer"),
    ({"location_ids": 3}, "filters.location_ids: must be a list of integers"),
    ({"exclude": []}, "filters.exclude: unknown key"),
])
def test_bad_filters_are_refused(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        filters_from_dict(data)
    assert str(exc.value).startswith(message)


def test_toml_date_is_accepted() -> None:
    assert filters_from_dict(tomllib.loads("from_date = 2026-02-01")).from_date == date(2026, 2, 1)


def test_set_pref_parses_strings_and_never_mutates() -> None:
    p = Prefs()
    q = set_pref(p, "tax.mode", "pin_cw")
    assert q is not p
    q = set_pref(p, "fields.create_missing_customers", "false")
    assert q.fields.create_missing_customers is False and p.fields.create_missing_customers is True
    q = set_pref(p, "tax.codes.Ontario", "HST ON")
    assert q.tax.codes == {"Ontario": "HST ON"} and p.tax.codes == {}
    assert set_pref(p, "prefs.sync_mode", "automatic").sync_mode == "automatic"


@pytest.mark.parametrize("key, value, message", [
    ("tax.modes", "x", "tax.modes: unknown preference (did you mean tax.mode"),
    ("tax.mode", "magic", "tax.mode: must be one of qbo, pin_cw, line_item"),
    ("time.include_notes", "maybe", "time.include_notes: must be true or false"),
    ("items.product", "x", "items.product: is a table; set one entry with items.product.SUBKEY VALUE"),
    ("tax", "x", "tax: is a group"),
    ("filters.location_ids", "1,x", "filters.location_ids: must be comma-separated integers"),
    ("schedule", "61 * * * *", "schedule: '61 * * * *' is not a valid cron"),
])
def test_set_pref_refuses_bad_keys_and_values(key: str, value: str, message: str) -> None:
    target = Filters() if key.startswith("filters.") else Prefs()
    with pytest.raises(ConfigError) as exc:
        set_pref(target, key, value)
    assert str(exc.value).startswith(message)


def test_unset_restores_default_or_removes_entry() -> None:
    p = set_pref(set_pref(Prefs(), "tax.mode", "qbo"), "items.product.A", "Hardware")
    assert unset_pref(p, "tax.mode").tax.mode == "pin_cw"
    assert unset_pref(p, "items.product.A").items.product == {}
    with pytest.raises(ConfigError, match="no such entry"):
        unset_pref(p, "items.product.B")
    assert get_pref(p, "items.product.A") == "Hardware" and get_pref(p, "tax.mode") == "qbo"


def test_list_keys_covers_every_field_with_a_description() -> None:
    keys = dict(list_keys())
    assert "tax.mode" in keys and "items.product.SUBKEY" in keys and "filters.from_date" in keys
    assert all(desc for desc in keys.values())
    for key in keys:  # every listed key is settable/known
        get_pref(Filters() if key.startswith("filters.") else Prefs(), key.replace(".SUBKEY", ".x"))


# --- check against the QBO simulator (in-process, no sockets) -------------------------------------------

def _qbo_client():  # type: ignore[no-untyped-def]
    import httpx

    from cwqbo.clock import ManualClock
    from cwqbo.quickbooks.client import QBOClient
    from cwqbo.sandbox.faults import Faults
    from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

    clock = ManualClock()
    sim = QBOSimulator(clock, Faults())
    token = sim.issue_tokens()["access_token"]

    class Tokens:
        def access_token(self) -> str:
            return token

        def force_refresh(self) -> str:
            return token

    http = httpx.Client(transport=httpx.MockTransport(sim.handle))
    return QBOClient("http://sim.test", "9341453000000000", Tokens(), clock, client=http)


def test_check_against_qbo_reports_missing_names_only() -> None:
    from cwqbo.quickbooks.prefs_check import check_against_qbo

    client = _qbo_client()
    p = Prefs()
    p = set_pref(p, "items.product.LAPTOP", "Hardware")
    p = set_pref(p, "items.work_type.Remote", "Remote Hours")
    p = set_pref(p, "fields.terms_map.30 days", "net 30")
    p = set_pref(p, "fields.class_map.3", "Projects")
    p = set_pref(p, "fields.custom_fields.customer_po", "Customer PO")
    p = set_pref(p, "fields.custom_fields.site", "Site")
    assert check_against_qbo(p, client) == [
        "items.work_type.Remote: no QuickBooks item named 'Remote Hours'",
        "fields.terms_map.30 days: QuickBooks term is named 'Net 30', not 'net 30'",
        "fields.custom_fields.site: no enabled QuickBooks custom field named 'Site' "
        "(available: Customer PO, Reference, Ticket)",
    ]
    assert check_against_qbo(Prefs(), client) == []  # default fallback "Services" exists
