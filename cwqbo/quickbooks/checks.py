"""QuickBooks-side checks for `cwqbo check-permissions`: what the company must allow before a sync can work.

The sync relies on settings a QBO admin controls: DocNumber can only be set (and so found again after a
crash) with custom transaction numbers on; classes and departments need tracking turned on; mapped items,
tax codes and terms must exist. Each check says exactly where to change it. Reads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cwqbo.settings.prefs import Prefs

SETTINGS = "QuickBooks › Settings › Account and settings"


@dataclass(frozen=True, slots=True)
class Check:
    area: str
    ok: bool | None  # None = could not tell
    detail: str
    fix: str = ""


class QBOReader(Protocol):
    def company_info(self) -> Any: ...
    def preferences(self) -> Any: ...
    def query_all(self, entity: str, where: Any = None) -> Any: ...


def custom_txn_numbers_on(preferences: dict[str, Any]) -> bool:
    return bool((preferences.get("SalesFormsPrefs") or {}).get("CustomTxnNumbers"))


def preference_checks(company: dict[str, Any], preferences: dict[str, Any], prefs: Prefs) -> list[Check]:
    """Pure: the checks that follow from the company's Preferences and our prefs."""
    name = company.get("CompanyName") or "(unnamed)"
    country = company.get("Country") or "US"
    checks = [Check("QuickBooks › Company", True, f"connected to {name} ({country})")]
    if custom_txn_numbers_on(preferences):
        checks.append(Check("QuickBooks › Custom transaction numbers", True,
                            "on: invoices keep their ConnectWise numbers"))
    else:
        checks.append(Check("QuickBooks › Custom transaction numbers", False,
                            "off: QuickBooks would number invoices itself, so cwqbo could not find them again "
                            "after an interruption (sync refuses to run)",
                            f"{SETTINGS} › Sales › Sales form content › Custom transaction numbers: On"))
    accounting = preferences.get("AccountingInfoPrefs") or {}
    if prefs.fields.class_source != "none":
        on = bool(accounting.get("ClassTrackingPerTxn") or accounting.get("ClassTrackingPerTxnLine"))
        checks.append(Check("QuickBooks › Class tracking", on,
                            "on" if on else f"off, but fields.class_source is {prefs.fields.class_source}",
                            "" if on else f"{SETTINGS} › Advanced › Categories › Track classes: On"))
    if prefs.fields.department_source != "none":
        on = bool(accounting.get("TrackDepartments"))
        checks.append(Check("QuickBooks › Location (department) tracking", on,
                            "on" if on else f"off, but fields.department_source is {prefs.fields.department_source}",
                            "" if on else f"{SETTINGS} › Advanced › Categories › Track locations: On"))
    tax = preferences.get("TaxPrefs") or {}
    if country == "US":
        ast = bool(tax.get("PartnerTaxEnabled"))
        detail = (f"automated sales tax {'on' if ast else 'off'}; tax.mode is {prefs.tax.mode}"
                  + (" (QuickBooks recomputes tax; CW's amount is pinned per invoice)" if ast and prefs.tax.mode ==
                     "pin_cw" else ""))
        checks.append(Check("QuickBooks › Sales tax", True, detail))
    else:
        # Non-US companies need a TaxCode on every line (the sync's mapping refuses a line without one): a taxable
        # line takes tax.codes[CW code] or tax.default_code, a non-taxable one (and the line_item tax line)
        # tax.exempt_code. Without them every invoice fails, so say so here rather than call it fine.
        using = bool(tax.get("UsingSalesTax", True))
        tp = prefs.tax
        missing = []
        if tp.mode != "line_item" and not (tp.codes or tp.default_code):
            missing.append("no ConnectWise tax code is mapped and tax.default_code is not set")
        if not tp.exempt_code:
            missing.append("tax.exempt_code is not set (needed for non-taxable lines)")
        detail = f"tax {'on' if using else 'off'}; {len(tp.codes)} CW tax code mapping(s)"
        if not using and tp.codes:
            checks.append(Check("QuickBooks › Sales tax", False, detail, f"{SETTINGS} › Taxes: set up sales tax"))
        elif missing:
            checks.append(Check("QuickBooks › Sales tax", False,
                                f"{detail}; a {country} company needs a QuickBooks tax code on every line: "
                                + "; ".join(missing),
                                "cwqbo prefs map tax '<CW tax code>' '<QBO TaxCode>' (or set tax.default_code) and "
                                "cwqbo prefs set tax.exempt_code '<QBO TaxCode for non-taxable lines>'"))
        else:
            checks.append(Check("QuickBooks › Sales tax", True, detail))
    currency = (preferences.get("CurrencyPrefs") or {})
    home_ref = currency.get("HomeCurrency")
    home = home_ref.get("value") if isinstance(home_ref, dict) else home_ref
    if home:
        multi = currency.get("MultiCurrencyEnabled") in (True, "true")
        checks.append(Check("QuickBooks › Currency", True,
                            f"home currency {home}; multicurrency {'on' if multi else 'off'}"
                            + ("" if multi else f" (ConnectWise invoices in another currency than {home} will fail "
                                                "until it is turned on)")))
    return checks


def probe(qbo: QBOReader, prefs: Prefs) -> list[Check]:
    """Read CompanyInfo and Preferences (2 calls) and check that what prefs map to exists (a few queries)."""
    from cwqbo.quickbooks.prefs_check import check_against_qbo

    checks = preference_checks(qbo.company_info().obj, qbo.preferences().obj, prefs)
    problems = check_against_qbo(prefs, qbo)
    checks.append(Check("QuickBooks › Mapped items, tax codes, terms, classes", not problems,
                        "; ".join(problems) if problems else "everything cwqbo's prefs name exists",
                        "" if not problems else "fix the mapping with `cwqbo prefs map …` or create it in QuickBooks"))
    return checks
