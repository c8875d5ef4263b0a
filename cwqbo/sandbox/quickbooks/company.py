"""The seeded QBO company: accounts, items, terms, classes, tax codes and preferences for one country."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cwqbo.sandbox.quickbooks.core import CURRENCY_NAMES
from cwqbo.sandbox.quickbooks.schema import ENTITY_BY_PATH
from cwqbo.sandbox.quickbooks.values import _iso_seconds, _to_jsonable

_TAX_SETUP: dict[str, dict[str, Any]] = {
    # rate id -> (name, percent); code id -> (name, [rate ids])
    "US": {"currency": "USD", "rates": {"1": ("California", "8.25")},
           "codes": {"2": ("California", ["1"])}},
    "CA": {"currency": "CAD", "rates": {"1": ("GST", "5"), "2": ("HST ON", "13"), "3": ("QST", "9.975"),
                                        "4": ("Zero-rated", "0"), "5": ("Exempt", "0")},
           "codes": {"2": ("GST", ["1"]), "3": ("HST ON", ["2"]), "4": ("GST/QST QC - 9.975", ["1", "3"]),
                     "5": ("Zero-rated", ["4"]), "6": ("Exempt", ["5"])}},
    "GB": {"currency": "GBP", "rates": {"1": ("20.0% S", "20"), "2": ("5.0% R", "5"), "3": ("0.0% Z", "0"),
                                        "4": ("Exempt", "0")},
           "codes": {"2": ("Exempt", ["4"]), "3": ("20.0% S", ["1"]), "4": ("5.0% R", ["2"]), "5": ("0.0% Z", ["3"])}},
    "AU": {"currency": "AUD", "rates": {"1": ("GST (sales)", "10"), "2": ("GST free (sales)", "0")},
           "codes": {"3": ("GST", ["1"]), "4": ("FRE", ["2"])}},
}


def default_company(country: str = "US", *, realm_id: str = "9341453000000000", custom_txn_numbers: bool = True,
                    created: float = 1_700_000_000.0) -> dict[str, Any]:
    """The seeded company state (JSON-safe, as `to_state` returns it)."""
    country = country.upper()
    if country not in _TAX_SETUP:
        raise ValueError(f"unsupported country {country!r}: choose one of {', '.join(_TAX_SETUP)}")
    setup = _TAX_SETUP[country]
    meta = {"CreateTime": _iso_seconds(created), "LastUpdatedTime": _iso_seconds(created)}
    currency = {"value": setup["currency"], "name": CURRENCY_NAMES[setup["currency"]]}

    def base(id_: str, **fields: Any) -> dict[str, Any]:
        return {**fields, "domain": "QBO", "sparse": False, "Id": id_, "SyncToken": "0", "MetaData": dict(meta)}

    entities: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in ENTITY_BY_PATH.values()}
    accounts = [("1", "Services", "Income", "ServiceFeeIncome"), ("2", "Sales of Product Income", "Income", "SalesOfProductIncome"),
                ("3", "Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
                ("4", "Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
                ("5", "Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs"),
                ("6", "Reimbursable Expenses Income", "Income", "OtherPrimaryIncome")]
    for id_, name, atype, sub in accounts:
        entities["Account"][id_] = base(id_, Name=name, SubAccount=False, FullyQualifiedName=name, Active=True,
                                        Classification="Revenue" if atype == "Income" else "Asset", AccountType=atype,
                                        AccountSubType=sub, CurrentBalance=Decimal("0"),
                                        CurrentBalanceWithSubAccounts=Decimal("0"), CurrencyRef=dict(currency))
    items = [("1", "Services", "Service", "1", False), ("2", "Hours", "Service", "1", False),
             ("3", "Managed Services", "Service", "1", False), ("4", "Hardware", "NonInventory", "2", True),
             ("5", "Expenses", "Service", "6", False), ("6", "Sales Tax", "Service", "1", False),
             ("7", "Rounding Adjustment", "Service", "1", False)]
    for id_, name, itype, acct, taxable in items:
        entities["Item"][id_] = base(id_, Name=name, Active=True, FullyQualifiedName=name, Taxable=taxable,
                                     UnitPrice=Decimal("0"), Type=itype,
                                     IncomeAccountRef={"value": acct, "name": entities["Account"][acct]["Name"]},
                                     PurchaseCost=Decimal("0"), TrackQtyOnHand=False)
    for id_, name, days in (("1", "Due on receipt", 0), ("2", "Net 15", 15), ("3", "Net 30", 30)):
        entities["Term"][id_] = base(id_, Name=name, Active=True, Type="STANDARD", DueDays=days, DiscountDays=0)
    for id_, name in (("5000000000000000001", "Managed Services"), ("5000000000000000002", "Projects"),
                      ("5000000000000000003", "Hardware Resale")):
        entities["Class"][id_] = base(id_, Name=name, SubClass=False, FullyQualifiedName=name, Active=True)
    for id_, name in (("1", "Head Office"), ("2", "Field Services")):
        entities["Department"][id_] = base(id_, Name=name, SubDepartment=False, FullyQualifiedName=name, Active=True)
    entities["Vendor"]["1"] = base("1", DisplayName="Northwind Traders", CompanyName="Northwind Traders",
                                   PrintOnCheckName="Northwind Traders", Active=True, Vendor1099=False,
                                   Balance=Decimal("0"), CurrencyRef=dict(currency))
    entities["Employee"]["1"] = base("1", DisplayName="Jordan Lee", GivenName="Jordan", FamilyName="Lee",
                                     PrintOnCheckName="Jordan Lee", Active=True, BillableTime=False)
    for id_, (name, pct) in setup["rates"].items():
        entities["TaxRate"][id_] = base(id_, Name=name, Description=name, Active=True, RateValue=Decimal(pct),
                                        AgencyRef={"value": "1"}, SpecialTaxType="NONE", DisplayType="ReadOnly",
                                        EffectiveTaxRate=[{"RateValue": Decimal(pct), "EffectiveDate": "2017-01-01"}])
    if country == "US":
        for id_ in ("TAX", "NON"):
            entities["TaxCode"][id_] = {"Name": id_, "Description": "TAX" if id_ == "TAX" else "NON",
                                        "Taxable": id_ == "TAX", "TaxGroup": False, "Id": id_, "Active": True,
                                        "domain": "QBO", "sparse": False, "MetaData": dict(meta)}
    for id_, (name, rate_ids) in setup["codes"].items():
        entities["TaxCode"][id_] = base(id_, Name=name, Description=name, Active=True, Hidden=False, Taxable=True,
                                        TaxGroup=country == "US" or len(rate_ids) > 1,
                                        SalesTaxRateList={"TaxRateDetail": [
                                            {"TaxRateRef": {"value": r, "name": setup["rates"][r][0]},
                                             "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0} for r in rate_ids]},
                                        PurchaseTaxRateList={"TaxRateDetail": []})
    names = ("Customer PO", "Reference", "Ticket")
    prefs = base("1",
                 AccountingInfoPrefs={"TrackDepartments": True, "DepartmentTerminology": "Location",
                                      "ClassTrackingPerTxn": False, "ClassTrackingPerTxnLine": True,
                                      "CustomerTerminology": "Customers", "UseAccountNumbers": False},
                 SalesFormsPrefs={"CustomField": [
                     {"CustomField": [{"Name": f"SalesFormsPrefs.UseSalesCustom{i}", "Type": "BooleanType",
                                       "BooleanValue": True} for i in (1, 2, 3)]},
                     {"CustomField": [{"Name": f"SalesFormsPrefs.SalesCustomName{i}", "Type": "StringType",
                                       "StringValue": n} for i, n in enumerate(names, 1)]}],
                     "CustomTxnNumbers": custom_txn_numbers, "AllowDeposit": False, "AllowDiscount": True,
                     "AllowEstimates": True, "AllowServiceDate": True, "AllowShipping": False,
                     "DefaultTerms": {"value": "3"}, "ETransactionEnabledStatus": "NotApplicable",
                     "AutoApplyCredit": True, "UsingPriceLevels": False, "UsingProgressInvoicing": False},
                 TaxPrefs={"UsingSalesTax": True, **({"PartnerTaxEnabled": True, "TaxGroupCodeRef": {"value": "2"}}
                                                      if country == "US" else {})},
                 CurrencyPrefs={"HomeCurrency": {"value": setup["currency"]}, "MultiCurrencyEnabled": False},
                 OtherPrefs={"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": ""},
                                           {"Name": "WarnDuplicateCheckNumber", "Value": "true"}]})
    entities["Preferences"]["1"] = prefs
    addr = {"US": ("2600 Marine Way", "Mountain View", "CA", "94043"), "CA": ("100 King St W", "Toronto", "ON", "M5X 1A9"),
            "GB": ("1 Canada Square", "London", "", "E14 5AB"), "AU": ("1 Martin Place", "Sydney", "NSW", "2000")}[country]
    company_addr = {"Id": "1", "Line1": addr[0], "City": addr[1], "CountrySubDivisionCode": addr[2], "PostalCode": addr[3],
                    "Country": country}
    entities["CompanyInfo"][realm_id] = base(realm_id, CompanyName=f"Sandbox Company_{country}_1",
                                             LegalName=f"Sandbox Company_{country}_1", CompanyAddr=dict(company_addr),
                                             LegalAddr=dict(company_addr), CustomerCommunicationAddr=dict(company_addr),
                                             Country=country, Email={"Address": "noreply@quickbooks.example"},
                                             FiscalYearStartMonth="January", SupportedLanguages="en",
                                             NameValue=[{"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                                                        {"Name": "NeoEnabled", "Value": "true"}])
    next_id = {name: len(rows) + 1 for name, rows in entities.items()}
    next_id["Class"] = 5000000000000000004
    state = {"version": 1, "realm_id": realm_id, "country": country, "entities": entities, "next_id": next_id,
             "next_doc_number": {"Invoice": 1001, "CreditMemo": 1001},
             "oauth": {"codes": {}, "grants": {}, "access": {}, "refresh": {}}, "requestids": {}}
    company: dict[str, Any] = _to_jsonable(state)
    return company
