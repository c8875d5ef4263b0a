"""The QuickBooks side of `check-permissions`: each setting the sync depends on is checked, with its fix."""

from __future__ import annotations

import httpx

from cwqbo.clock import ManualClock
from cwqbo.settings.prefs import Prefs
from cwqbo.quickbooks.checks import preference_checks, probe
from cwqbo.quickbooks.client import QBOClient
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import DirectTokens, QBOSimulator


def client_for(sim: QBOSimulator) -> QBOClient:
    return QBOClient("http://qbo.test/v3", sim.realm_id, DirectTokens(sim), ManualClock(1_790_000_000),
                     client=httpx.Client(transport=httpx.MockTransport(sim.handle), base_url="http://qbo.test/v3"))


def by_area(checks: list) -> dict:
    return {c.area: c for c in checks}


def test_a_default_company_passes_every_check() -> None:
    sim = QBOSimulator(ManualClock(1_790_000_000), Faults())
    checks = by_area(probe(client_for(sim), Prefs()))
    assert all(c.ok for c in checks.values()), checks
    assert "Sandbox Company" in checks["QuickBooks › Company"].detail


def test_custom_transaction_numbers_off_fails_with_the_setting_to_change() -> None:
    sim = QBOSimulator(ManualClock(1_790_000_000), Faults(), custom_txn_numbers=False)
    check = by_area(probe(client_for(sim), Prefs()))["QuickBooks › Custom transaction numbers"]
    assert check.ok is False and "Custom transaction numbers: On" in check.fix


def test_class_and_location_tracking_are_checked_only_when_prefs_use_them() -> None:
    prefs = Prefs()
    off = {"AccountingInfoPrefs": {"ClassTrackingPerTxn": False, "ClassTrackingPerTxnLine": False,
                                   "TrackDepartments": False}, "SalesFormsPrefs": {"CustomTxnNumbers": True}}
    assert {c.area for c in preference_checks({}, off, prefs)}.isdisjoint(
        {"QuickBooks › Class tracking", "QuickBooks › Location (department) tracking"})
    prefs.fields.class_source = "location"
    prefs.fields.department_source = "department"
    checks = by_area(preference_checks({}, off, prefs))
    assert checks["QuickBooks › Class tracking"].ok is False and "Track classes" in checks["QuickBooks › Class tracking"].fix
    assert checks["QuickBooks › Location (department) tracking"].ok is False


def test_a_mapping_to_a_missing_item_is_reported() -> None:
    sim = QBOSimulator(ManualClock(1_790_000_000), Faults())
    prefs = Prefs()
    prefs.items.product["LAPTOP"] = "No Such Item"
    check = by_area(probe(client_for(sim), prefs))["QuickBooks › Mapped items, tax codes, terms, classes"]
    assert check.ok is False and "No Such Item" in check.detail


def test_a_non_us_company_without_tax_codes_is_not_called_fine() -> None:
    sim = QBOSimulator(ManualClock(1_790_000_000), Faults(), country="CA")
    check = by_area(probe(client_for(sim), Prefs()))["QuickBooks › Sales tax"]
    assert check.ok is False and "no ConnectWise tax code is mapped" in check.detail
    assert "tax.exempt_code is not set" in check.detail and "cwqbo prefs map tax" in check.fix
    prefs = Prefs()
    prefs.tax.codes = {"Ontario": "HST ON"}
    prefs.tax.exempt_code = "Exempt"
    assert by_area(probe(client_for(sim), prefs))["QuickBooks › Sales tax"].ok is True


def test_the_currency_preferences_are_shown() -> None:
    sim = QBOSimulator(ManualClock(1_790_000_000), Faults())
    check = by_area(probe(client_for(sim), Prefs()))["QuickBooks › Currency"]
    assert check.detail.startswith("home currency USD; multicurrency off")
