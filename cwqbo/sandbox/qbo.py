"""A faithful in-memory QuickBooks Online: OAuth 2.0, the v3 Accounting API, query, batch, throttling.

`QBOSimulator.handle(httpx.Request) -> httpx.Response` is a pure request→response function over in-memory
state, so it can sit behind an httpx transport (in-process tests) or `bridge.LoopbackServer` (third-party
clients). Behaviour follows ../shared/reference/quickbooks.md and the recorded sandbox traffic in
../shared/data/qbo; where the real service is ambiguous the choice is noted next to the code.

Batch visibility: Intuit says items run serially but "do not have visibility of earlier requests included
from the same payload". The simulator resolves references (CustomerRef, ItemRef, …) and runs batch queries
against a snapshot taken when the batch starts, while writes, SyncToken checks and DocNumber/name
uniqueness (database constraints) are checked against the live state as each item runs.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

from cwqbo import money
from cwqbo.clock import Clock
from cwqbo.sandbox import qbo_query
from cwqbo.sandbox.faults import DropConnection, Faults
from cwqbo.sandbox.qbo_limits import LINE_PROPERTIES, MAX_LENGTHS, PROPERTIES

# --- constants ---------------------------------------------------------------------------------------

ACCESS_TOKEN_TTL = 3600
REFRESH_TOKEN_TTL = 100 * 86400  # rolling: x_refresh_token_expires_in = 8 640 000
REFRESH_HARD_TTL = 5 * 365 * 86400  # the 2025 five-year maximum
ROTATION_GRACE = 24 * 3600  # a superseded refresh token keeps working this long
AUTH_CODE_TTL = 600
RATE_LIMIT_PER_MIN = 500
BATCH_LIMIT_PER_MIN = 40
MAX_IN_FLIGHT = 10
MAX_BATCH_ITEMS = 30
REQUEST_ID_MAX = 50
BATCH_REQUEST_ID_MAX = 36
MIN_MINOR_VERSION = 75
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
KNOWN_SCOPES = {ACCOUNTING_SCOPE, "com.intuit.quickbooks.payment", "openid", "profile", "email", "phone", "address"}

ENTITY_BY_PATH = {
    name.lower(): name
    for name in ("Invoice", "CreditMemo", "SalesReceipt", "Customer", "Item", "TaxCode", "TaxRate", "Term", "Class",
                 "Department", "Vendor", "Employee", "Account", "CompanyInfo", "Preferences")
}
# SalesReceipt and Vendor follow the recorded sandbox traffic (qbo_api_vcr: update_sales_receipt, batch_basic);
# the API-reference limits table covers only the four entities cwqbo writes, so their property names and
# string lengths are not checked.
WRITABLE = {"Invoice", "CreditMemo", "SalesReceipt", "Customer", "Item", "Vendor"}
TRANSACTIONS = {"Invoice", "CreditMemo", "SalesReceipt"}
NAME_LISTS = {"Customer", "Item", "Vendor", "Employee", "Account", "Class", "Department", "Term", "TaxCode", "TaxRate"}
PEOPLE = ("Customer", "Vendor", "Employee")
TXN_TYPE_LABEL = {"Invoice": "Invoice", "CreditMemo": "Credit Memo", "SalesReceipt": "Sales Receipt"}
NUMERIC_FIELDS = {
    "Amount", "TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "UnitPrice", "Qty", "TotalTax", "RateValue",
    "TaxPercent", "NetAmountTaxable", "BalanceWithJobs", "ExchangeRate", "Deposit", "RemainingCredit",
    "DiscountPercent", "DiscountRate", "DiscountAmt", "PurchaseCost", "QtyOnHand", "TaxInclusiveAmt",
    "OverrideDeltaAmount", "TaxInclusiveAmount", "CurrentBalance", "CurrentBalanceWithSubAccounts",
}
# Known properties the API-ref scrape lacks but the service accepts (from the recorded 2010 message and the XSD).
_EXTRA_PROPERTIES = {
    "Invoice": {"domain", "status", "sparse", "AutoDocNumber", "HomeTotalAmt", "TxnStatus", "Tag", "PaymentRefNum",
                "PaymentMethodRef", "PONumber", "FOB", "SalesRepRef", "DiscountRate", "TaxFormNum", "TaxFormType",
                "RemitToRef", "TxnApprovalInfo", "InvoiceEx", "ECloudStatusTimeStamp", "EInvoiceStatus", "callToAction",
                "invoiceStatusLog", "LessCIS", "ConvenienceFeeDetail", "PaymentDetailsMessage", "TxnSource",
                "CustomerRef", "HomeBalance"},
    "CreditMemo": {"domain", "status", "sparse", "AutoDocNumber", "HomeTotalAmt", "TxnStatus", "Tag", "PONumber",
                   "SalesRepRef", "PaymentMethodRef", "PaymentRefNum", "DepositToAccountRef", "TxnSource",
                   "InvoiceRef", "HomeBalance", "ExchangeRate", "ShipDate", "TrackingNum", "ShipMethodRef",
                   "AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment",
                   "LinkedTxn", "Deposit", "DueDate", "PrintStatus", "EmailStatus", "ApplyTaxAfterDiscount"},
    "Customer": {"domain", "status", "sparse", "Level", "FullyQualifiedName", "Balance", "BalanceWithJobs",
                 "CurrencyRef", "OtherContactInfo", "ContactName", "AltContactName", "TaxExemptionReasonId",
                 "PaymentMethodRef", "DefaultTaxCodeRef", "Organization", "OpenBalanceDate"},
    "Item": {"domain", "status", "sparse", "Level", "FullyQualifiedName", "ExpenseAccountRef", "IncomeAccountRef",
             "AssetAccountRef", "Type", "SubItem", "ParentRef", "UnitPrice", "PurchaseCost"},
}
_EXTRA_LINE_PROPERTIES = {"SubTotalLineDetail", "LinkedTxn", "CustomField", "LineEx", "ProjectRef", "TxnLineId",
                          "DiscountLineDetail", "DescriptionLineDetail", "TaxLineDetail"}
_READ_ONLY = {"Id", "SyncToken", "MetaData", "TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "domain",
              "sparse", "status", "RemainingCredit", "InvoiceLink", "TaxExemptionRef", "RecurDataRef",
              "DeliveryInfo", "FullyQualifiedName", "Level", "BalanceWithJobs", "AllowIPNPayment", "AllowOnlinePayment"}


def _properties(entity: str) -> set[str]:
    return set(PROPERTIES.get(entity, [])) | _EXTRA_PROPERTIES.get(entity, set())


def _line_properties(entity: str) -> set[str]:
    return set(LINE_PROPERTIES.get(entity, [])) | _EXTRA_LINE_PROPERTIES


# --- errors ------------------------------------------------------------------------------------------


class QBOError(Exception):
    """One QBO fault: raised by validators, rendered as the upper-case `Fault` envelope."""

    def __init__(self, code: str, message: str, detail: str, element: str | None = "", status: int = 400,
                 fault_type: str = "ValidationFault") -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code, self.message, self.detail, self.element = code, message, detail, element
        self.status, self.fault_type = status, fault_type

    def fault(self) -> dict[str, Any]:
        err: dict[str, Any] = {"Message": self.message, "Detail": self.detail, "code": self.code}
        if self.element is not None:
            err["element"] = self.element
        return {"Error": [err], "type": self.fault_type}


def err_not_found() -> QBOError:
    return QBOError("610", "Object Not Found", "Object Not Found : Something you're trying to use has been made "
                    "inactive. Check the fields with accounts, customers, items, vendors or employees.")


def err_stale(user: str = "Sandbox Admin") -> QBOError:
    return QBOError("5010", "Stale Object Error", f"Stale Object Error : You and {user} were working on this at the "
                    f"same time. {user} finished before you did, so your work was not saved.")


def err_required(name: str) -> QBOError:
    return QBOError("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name} is missing in the request", name)


def err_length(path: str, limit: int, got: int) -> QBOError:
    return QBOError("2050", "String length is either shorter or longer than supported by specification",
                    f"String length specified does not match the supported length. Min:0 Max:{limit} supported. "
                    f"Supplied length:{got}", path)


def err_bad_ref(kind: str, value: Any) -> QBOError:
    return QBOError("2500", "Invalid Reference Id", f"Invalid Reference Id : {kind} element id {value} not found", "")


def err_duplicate_name() -> QBOError:
    return QBOError("6240", "Duplicate Name Exists Error", "The name supplied already exists. : null", None)


def err_business(detail: str, element: str = "") -> QBOError:
    return QBOError("6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: {detail}", element)


def err_unsupported(path: str, url: str) -> QBOError:
    return QBOError("500", "Unsupported Operation", f"Operation Could not find resource for relative : {path} of full "
                    f"path: {url} is not supported.", None)


def err_unknown_property(entity: str, prop: str, known: set[str]) -> QBOError:
    names = ", ".join(f'"{n}"' for n in sorted(known)[:60])
    return QBOError("2010", "Request has invalid or unsupported property",
                    f'Property Name:Unrecognized field "{prop}" (class com.intuit.schema.finance.v3.{entity}), not '
                    f"marked as ignorable ({len(known)} known properties: {names} [truncated]])\n specified is "
                    "unsupported or invalid", None)


def err_query(detail: str, code: str = "4000") -> QBOError:
    message = "Error parsing query" if code == "4000" else "Invalid query"
    return QBOError(code, message, detail, "")


# --- small helpers -----------------------------------------------------------------------------------

try:
    from zoneinfo import ZoneInfo

    _PACIFIC: dt.tzinfo = ZoneInfo("America/Los_Angeles")
except Exception:  # pragma: no cover - no tz database
    _PACIFIC = dt.timezone(dt.timedelta(hours=-8))


def _pacific(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, _PACIFIC)


def _iso_seconds(ts: float) -> str:
    return _pacific(ts).isoformat(timespec="seconds")


def _iso_millis(ts: float) -> str:
    return _pacific(ts).isoformat(timespec="milliseconds")


def _new_tid(ts: float) -> str:
    return f"1-{int(ts):08x}-{secrets.token_hex(12)}"


def _dec(value: Any, name: str) -> Decimal:
    """A JSON number or numeric string (python-quickbooks sends Decimals as strings) as Decimal."""
    try:
        return money.to_decimal(value)
    except (TypeError, ValueError) as exc:
        raise QBOError("2010", "Request has invalid or unsupported property",
                       f"Property Name:Can not construct instance of java.math.BigDecimal from String value "
                       f"'{value}' specified is unsupported or invalid", name) from exc


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != {} and value != []


def _ref_value(ref: Any) -> str | None:
    if isinstance(ref, dict) and _present(ref.get("value")):
        return str(ref["value"])
    return None


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _values_at(obj: Any, parts: list[str]) -> list[Any]:
    if not parts:
        return [obj]
    if isinstance(obj, list):
        return [v for item in obj for v in _values_at(item, parts)]
    if isinstance(obj, dict) and parts[0] in obj:
        return _values_at(obj[parts[0]], parts[1:])
    return []


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, dict):
        return {k: _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_jsonable(v) for v in obj]
    return obj


def _from_jsonable(obj: Any, key: str = "") -> Any:
    if isinstance(obj, dict):
        return {k: _from_jsonable(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_jsonable(v, key) for v in obj]
    if key in NUMERIC_FIELDS and isinstance(obj, str):
        return Decimal(obj)
    return obj


# --- the seeded company ------------------------------------------------------------------------------

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
    currency = {"value": setup["currency"], "name": {"USD": "United States Dollar", "CAD": "Canadian Dollar",
                                                     "GBP": "British Pound Sterling", "AUD": "Australian Dollar"}[setup["currency"]]}

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
    return _to_jsonable(state)


# --- the simulator -----------------------------------------------------------------------------------


class QBOSimulator:
    """In-memory QuickBooks Online for one realm (company); see the module docstring."""

    def __init__(self, clock: Clock, faults: Faults, *, realm_id: str = "9341453000000000", country: str = "US",
                 client_id: str = "sandbox-client-id", client_secret: str = "sandbox-client-secret",
                 custom_txn_numbers: bool = True, redirect_uris: list[str] | None = None,
                 admin_name: str = "Sandbox Admin") -> None:
        self.clock = clock
        self.faults = faults
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = redirect_uris  # None: any http(s) URI is registered (loopback dev apps)
        self.admin_name = admin_name
        self._lock = threading.RLock()
        self._flight_lock = threading.Lock()
        self._in_flight = 0
        self._requests: deque[float] = deque()
        self._batches: deque[float] = deque()
        self.from_state(default_company(country, realm_id=realm_id, custom_txn_numbers=custom_txn_numbers,
                                        created=clock.now()))

    # -- state ----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-safe snapshot (Decimals as strings) for a loopback server's state file."""
        with self._lock:
            return _to_jsonable(copy.deepcopy(self._state))

    def from_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._state = _from_jsonable(copy.deepcopy(state))
            for name in ENTITY_BY_PATH.values():  # state files written before an entity was simulated
                self._state["entities"].setdefault(name, {})
            self.realm_id: str = self._state["realm_id"]
            self.country: str = self._state["country"]

    @property
    def _entities(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self._state["entities"]

    @property
    def preferences(self) -> dict[str, Any]:
        return self._entities["Preferences"]["1"]

    @property
    def custom_txn_numbers(self) -> bool:
        return bool(self.preferences["SalesFormsPrefs"].get("CustomTxnNumbers"))

    # -- test helpers ---------------------------------------------------------------------------------

    def documents(self, entity: str) -> list[dict[str, Any]]:
        """Every stored object of `entity` as the API would return it (id order)."""
        with self._lock:
            rows = self._entities.get(entity, {})
            return [copy.deepcopy(_public(rows[k])) for k in sorted(rows, key=_id_sort)]

    def get(self, entity: str, id_: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._entities.get(entity, {}).get(str(id_))
            return copy.deepcopy(_public(obj)) if obj else None

    def add(self, entity: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Insert a seed object directly (no validation); fills Id/SyncToken/MetaData if missing."""
        with self._lock:
            now = self.clock.now()
            row = copy.deepcopy(obj)
            row.setdefault("Id", self._next_id(entity))
            row.setdefault("SyncToken", "0")
            row.setdefault("domain", "QBO")
            row.setdefault("sparse", False)
            row.setdefault("MetaData", {"CreateTime": _iso_seconds(now), "LastUpdatedTime": _iso_seconds(now)})
            if entity in NAME_LISTS and entity != "TaxRate":
                row.setdefault("Active", True)
            self._entities.setdefault(entity, {})[str(row["Id"])] = row
            n = _int_or_none(row["Id"])
            if n is not None and n >= self._state["next_id"].get(entity, 1):
                self._state["next_id"][entity] = n + 1
            return copy.deepcopy(row)

    def set_preference(self, section: str, name: str, value: Any) -> None:
        with self._lock:
            self.preferences.setdefault(section, {})[name] = value

    def issue_tokens(self, *, hard_expiry: bool = False) -> dict[str, Any]:
        """A fresh grant without the browser step (what `connect` would end up with)."""
        with self._lock:
            grant = self._new_grant(scope=ACCOUNTING_SCOPE)
            return self._token_response(grant, hard_expiry)

    def expire_access_tokens(self) -> None:
        """Make every issued access token expire now (as if an hour had passed)."""
        with self._lock:
            now = self.clock.now()
            for rec in self._state["oauth"]["access"].values():
                rec["expires_at"] = min(rec["expires_at"], now)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- entry point ----------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        tid = _new_tid(self.clock.now())
        path = request.url.path
        try:
            if path.startswith("/v3/"):
                return self._handle_api(request, tid)
            if path.rstrip("/") in ("/.well-known/openid_sandbox_configuration", "/.well-known/openid_configuration"):
                return self._discovery(request, tid)
            if path.rstrip("/") == "/connect/oauth2":
                return self._authorize(request, tid)
            if path.rstrip("/") == "/oauth2/v1/tokens/bearer":
                return self._token(request, tid)
            if path.rstrip("/") == "/v2/oauth2/tokens/revoke":
                return self._revoke(request, tid)
            return _response(404, {"error": "not_found"}, tid)
        except DropConnection:
            raise
        except QBOError as exc:  # pragma: no cover - all QBOErrors are caught below; defensive
            return self._fault_response(exc, tid)

    # -- OAuth ----------------------------------------------------------------------------------------

    def _discovery(self, request: httpx.Request, tid: str) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        doc = {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }
        return _response(200, doc, tid)

    def _authorize(self, request: httpx.Request, tid: str) -> httpx.Response:
        q = {k: v[-1] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
        if q.get("client_id") != self.client_id:
            return _html(400, "invalid_client: unknown client_id", tid)
        redirect_uri = q.get("redirect_uri", "")
        parsed = urlparse(redirect_uri)
        registered = (redirect_uri in self.redirect_uris) if self.redirect_uris is not None else (
            parsed.scheme in ("http", "https") and bool(parsed.netloc))
        if not registered:
            return _html(400, "The redirect_uri query parameter value is invalid. Make sure it is listed in the "
                              "Redirect URIs section on your app's keys tab and matches it exactly.", tid)
        state = q.get("state", "")

        def back(**params: str) -> httpx.Response:
            sep = "&" if parsed.query else "?"
            return httpx.Response(302, headers={"Location": redirect_uri + sep + urlencode(params), "intuit_tid": tid})

        if q.get("response_type") != "code":
            return back(error="unsupported_response_type", state=state)
        scopes = set(q.get("scope", "").split())
        if not scopes or not scopes <= KNOWN_SCOPES:
            return back(error="invalid_scope", state=state)
        if not state:
            return _html(400, "state is required", tid)
        code = "AB" + secrets.token_urlsafe(36)
        with self._lock:
            self._state["oauth"]["codes"][code] = {
                "redirect_uri": redirect_uri, "scope": " ".join(sorted(scopes)),
                "expires_at": self.clock.now() + AUTH_CODE_TTL, "used": False, "grant": None}
        params = {"code": code, "state": state}
        if scopes & {ACCOUNTING_SCOPE, "com.intuit.quickbooks.payment"}:
            params["realmId"] = self.realm_id
        return back(**params)

    def _client_authenticated(self, request: httpx.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                user, _, pwd = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return secrets.compare_digest(user, self.client_id) and secrets.compare_digest(pwd, self.client_secret)
        return form.get("client_id") == self.client_id and secrets.compare_digest(
            form.get("client_secret", ""), self.client_secret)

    def _token(self, request: httpx.Request, tid: str) -> httpx.Response:
        if request.method != "POST":
            return _response(405, {"error": "invalid_request"}, tid)
        form = {k: v[-1] for k, v in parse_qs(request.content.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not self._client_authenticated(request, form):
            return _response(401, {"error": "invalid_client"}, tid)
        hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"
        grant_type = form.get("grant_type")
        now = self.clock.now()
        with self._lock:
            oauth = self._state["oauth"]
            if grant_type == "authorization_code":
                rec = oauth["codes"].get(form.get("code", ""))
                if rec is None or rec["expires_at"] < now:
                    return _response(400, {"error": "invalid_grant"}, tid)
                if rec["used"]:
                    # Intuit: a second exchange of the same code looks malicious and kills what it issued.
                    if rec["grant"] in oauth["grants"]:
                        oauth["grants"][rec["grant"]]["revoked"] = True
                    return _response(400, {"error": "invalid_grant"}, tid)
                if form.get("redirect_uri") != rec["redirect_uri"]:
                    return _response(400, {"error": "invalid_grant"}, tid)
                rec["used"] = True
                grant = self._new_grant(rec["scope"])
                rec["grant"] = grant
                return _response(200, self._token_response(grant, hard), tid)
            if grant_type == "refresh_token":
                token = form.get("refresh_token", "")
                rec = oauth["refresh"].get(token)
                if rec is None:
                    return _response(400, {"error": "invalid_grant"}, tid)
                grant = oauth["grants"].get(rec["grant"])
                stale = rec["superseded_at"] is not None and now > rec["superseded_at"] + ROTATION_GRACE
                if (grant is None or grant["revoked"] or rec["expires_at"] <= now or stale
                        or grant["hard_expires_at"] <= now):
                    return _response(400, {"error": "invalid_grant"}, tid)
                for other in oauth["refresh"].values():
                    if other["grant"] == rec["grant"] and other["superseded_at"] is None:
                        other["superseded_at"] = now
                return _response(200, self._token_response(rec["grant"], hard), tid)
            if not grant_type:
                return _response(400, {"error": "invalid_request"}, tid)
            return _response(400, {"error": "unsupported_grant_type"}, tid)

    def _new_grant(self, scope: str) -> str:
        grant = secrets.token_hex(8)
        self._state["oauth"]["grants"][grant] = {"realm": self.realm_id, "scope": scope, "revoked": False,
                                                 "hard_expires_at": self.clock.now() + REFRESH_HARD_TTL}
        return grant

    def _token_response(self, grant: str, hard: bool) -> dict[str, Any]:
        now = self.clock.now()
        oauth = self._state["oauth"]
        hard_at = oauth["grants"][grant]["hard_expires_at"]
        access = "eyJ" + secrets.token_urlsafe(48)
        refresh = "RT1-" + secrets.token_urlsafe(30)
        refresh_at = min(now + REFRESH_TOKEN_TTL, hard_at)
        oauth["access"][access] = {"grant": grant, "expires_at": now + ACCESS_TOKEN_TTL}
        oauth["refresh"][refresh] = {"grant": grant, "expires_at": refresh_at, "superseded_at": None}
        body: dict[str, Any] = {"token_type": "bearer", "expires_in": ACCESS_TOKEN_TTL, "refresh_token": refresh,
                                "x_refresh_token_expires_in": int(refresh_at - now), "access_token": access}
        if hard:
            body["x_refresh_token_hard_expires_in"] = int(hard_at - now)
        return body

    def _revoke(self, request: httpx.Request, tid: str) -> httpx.Response:
        if request.method != "POST":
            return _response(405, {"error": "invalid_request"}, tid)
        try:
            body = money.loads(request.content or b"{}")
        except ValueError:
            body = {}
        if not self._client_authenticated(request, {}):
            return _response(401, {"error": "invalid_client"}, tid)
        token = body.get("token") if isinstance(body, dict) else None
        if not token:
            return _response(400, {"error": "invalid_request"}, tid)
        with self._lock:
            oauth = self._state["oauth"]
            rec = oauth["refresh"].get(token) or oauth["access"].get(token)
            if rec is not None and rec["grant"] in oauth["grants"]:
                oauth["grants"][rec["grant"]]["revoked"] = True
        return httpx.Response(200, headers={"intuit_tid": tid})

    # -- API plumbing ---------------------------------------------------------------------------------

    def _fault_response(self, exc: QBOError, tid: str) -> httpx.Response:
        return _response(exc.status, {"Fault": exc.fault(), "time": _iso_millis(self.clock.now())}, tid,
                         content_type=_FAULT_CONTENT_TYPE)

    def _auth_failure(self, tid: str, detail: str) -> httpx.Response:
        body = {"warnings": None, "intuitObject": None,
                "fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                                     "detail": detail, "code": "3200", "element": None}], "type": "AUTHENTICATION"},
                "report": None, "queryResponse": None, "batchItemResponse": [], "attachableResponse": [],
                "syncErrorResponse": None, "requestId": None, "time": int(self.clock.now() * 1000), "status": None,
                "cdcresponse": []}
        return _response(401, body, tid, content_type="application/json",
                         extra={"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'})

    def _throttled(self, tid: str) -> httpx.Response:
        xml = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse xmlns="http://schema.intuit.com/'
               f'finance/v3" time="{_iso_millis(self.clock.now())}"><Fault type="SERVICE"><Error code="3001" element="">'
               "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message><Detail>The request limit "
               "was reached.  Try again later</Detail></Error></Fault></IntuitResponse>")
        return httpx.Response(429, content=xml.encode(), headers={"Content-Type": "application/xml", "intuit_tid": tid,
                                                                  "Intuit-Tid": tid})

    def _system_fault(self, status: int, tid: str) -> httpx.Response:
        exc = QBOError("10000", "An application error has occurred while processing your request",
                       "System Failure Error: An unexpected error occurred while accessing or saving your data. Please "
                       "wait a few minutes and try again. If the problem persists, contact customer support.",
                       "", status, "SystemFault")
        return self._fault_response(exc, tid)

    def _handle_api(self, request: httpx.Request, tid: str) -> httpx.Response:
        path = request.url.path
        with self._flight_lock:
            self._in_flight += 1
            in_flight = self._in_flight
        try:
            if self.faults.applies(path):
                if self.faults.latency_seconds > 0:
                    time.sleep(self.faults.latency_seconds)
                if self.faults.take("throttle_next"):
                    return self._throttled(tid)
                if self.faults.take("timeout_next"):
                    time.sleep(max(self.faults.timeout_seconds, 0))
                    raise DropConnection("simulated timeout")
                if self.faults.take("error_next"):
                    return self._system_fault(503, tid)
                if self.faults.roll_error():
                    return self._system_fault(500, tid)
            return self._api(request, tid, in_flight)
        finally:
            with self._flight_lock:
                self._in_flight -= 1

    def _check_auth(self, request: httpx.Request, realm: str, tid: str) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return self._auth_failure(tid, "Authorization header missing or not Bearer")
        token = header[7:].strip()
        with self._lock:
            oauth = self._state["oauth"]
            rec = oauth["access"].get(token)
            grant = oauth["grants"].get(rec["grant"]) if rec else None
            if rec is None or grant is None or grant["revoked"]:
                return self._auth_failure(tid, f"Token revoked or invalid: {token[:50]}")
            if rec["expires_at"] <= self.clock.now():
                return self._auth_failure(tid, f"Token expired: {token[:50]}")
            if grant["realm"] != realm:
                exc = QBOError("3100", "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403", "",
                               None, 403, "SERVICE")
                return self._fault_response(exc, tid)
        return None

    def _rate_limited(self, is_batch: bool, in_flight: int) -> bool:
        now = self.clock.now()
        with self._lock:
            for window in (self._requests, self._batches):
                while window and window[0] <= now - 60:
                    window.popleft()
            if in_flight > MAX_IN_FLIGHT or len(self._requests) >= RATE_LIMIT_PER_MIN:
                return True
            if is_batch and len(self._batches) >= BATCH_LIMIT_PER_MIN:
                return True
            self._requests.append(now)
            if is_batch:
                self._batches.append(now)
            return False

    def _api(self, request: httpx.Request, tid: str, in_flight: int) -> httpx.Response:
        path = request.url.path
        m = re.match(r"^/v3/company/([^/]+)/(.+?)/?$", path)
        if not m:
            return self._fault_response(err_unsupported(path, str(request.url)), tid)
        realm, rest = m.group(1), m.group(2)
        denied = self._check_auth(request, realm, tid)
        if denied is not None:
            return denied
        segments = rest.split("/")
        if self._rate_limited(segments[0] == "batch", in_flight):
            return self._throttled(tid)
        params = {k: v[-1] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
        request_id = params.get("requestid", "")
        is_batch = segments[0] == "batch"
        limit = BATCH_REQUEST_ID_MAX if is_batch else REQUEST_ID_MAX
        if request_id and len(request_id) > limit:
            return self._fault_response(err_length("requestid", limit, len(request_id)), tid)
        replay_key = "|".join((request.method, rest.lower(), params.get("operation", ""), request_id))
        if request_id and request.method == "POST":
            with self._lock:
                saved = self._state["requestids"].get(replay_key)
            if saved is not None:
                return httpx.Response(saved["status"], content=saved["body"].encode(),
                                      headers=_api_headers(tid, saved["content_type"]))
        committed_create = False
        with self._lock:
            try:
                body, committed_create = self._dispatch(request, segments, params)
                status = 200
            except QBOError as exc:
                body, status = {"Fault": exc.fault(), "time": _iso_millis(self.clock.now())}, exc.status
            response = _response(status, body, tid,
                                 content_type=_FAULT_CONTENT_TYPE if status >= 400 else "application/json;charset=utf-8")
            if request_id and request.method == "POST" and status < 500:
                self._state["requestids"][replay_key] = {"status": status, "body": response.content.decode(),
                                                         "content_type": response.headers["content-type"]}
        if committed_create and self.faults.applies(path) and self.faults.take("drop_after_commit_next"):
            raise DropConnection("simulated connection drop after commit")
        return response

    # -- API routing ----------------------------------------------------------------------------------

    def _dispatch(self, request: httpx.Request, segments: list[str], params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        head = segments[0].lower()
        now = self.clock.now()
        if head == "query" and len(segments) == 1:
            if request.method == "GET":
                text = params.get("query", "")
            else:
                text = request.content.decode("utf-8", "replace")
            return {"QueryResponse": self._run_query(text, self._entities), "time": _iso_millis(now)}, False
        if head == "batch" and len(segments) == 1 and request.method == "POST":
            return self._batch(self._parse_body(request, "BatchItemRequest"), params)
        entity = ENTITY_BY_PATH.get(head)
        if entity is None or len(segments) > 2:
            raise err_unsupported("/v3/company/" + "/".join([self.realm_id, *segments]), str(request.url))
        if entity == "Preferences" and len(segments) == 1 and request.method == "GET":
            return {"Preferences": copy.deepcopy(self.preferences), "time": _iso_millis(now)}, False
        if len(segments) == 2 and request.method == "GET":
            return {entity: self._read(entity, segments[1]), "time": _iso_millis(now)}, False
        if len(segments) == 1 and request.method == "POST" and entity in WRITABLE:
            payload = self._parse_body(request, entity)
            result, created = self._write(entity, payload, params.get("operation", "").lower(),
                                          "allowduplicatedocnum" in params.get("include", "").lower(), self._entities)
            return {entity: result, "time": _iso_millis(now)}, created
        raise err_unsupported("/v3/company/" + "/".join([self.realm_id, *segments]), str(request.url))

    def _parse_body(self, request: httpx.Request, entity: str) -> dict[str, Any]:
        try:
            body = money.loads(request.content.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise QBOError("2010", "Request has invalid or unsupported property",
                           "Property Name:Invalid UTF-8 start byte specified is unsupported or invalid", None) from exc
        except ValueError as exc:
            raise QBOError("2010", "Request has invalid or unsupported property",
                           f"Property Name:Unexpected character in the request body ({exc.args[0]}) specified is "
                           "unsupported or invalid", None) from exc
        if not isinstance(body, dict):
            raise QBOError("2010", "Request has invalid or unsupported property",
                           f"Property Name:Can not deserialize instance of {entity} specified is unsupported or invalid",
                           None)
        return body

    def _read(self, entity: str, id_: str) -> dict[str, Any]:
        if entity == "CompanyInfo":
            obj = self._entities["CompanyInfo"].get(id_)
            if obj is None:
                raise err_not_found()
            return copy.deepcopy(obj)
        if entity != "TaxCode" and not re.fullmatch(r"\d+", id_):
            raise QBOError("2030", "Invalid ID", f"Id should be a valid number. Supplied value:{id_}", "Id")
        obj = self._entities[entity].get(id_)
        if obj is None:
            raise err_not_found()
        return copy.deepcopy(_public(obj))

    # -- query ----------------------------------------------------------------------------------------

    def _run_query(self, text: str, view: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        try:
            query = qbo_query.parse(text)
        except qbo_query.QueryError as exc:
            raise err_query(exc.detail, exc.code) from exc
        if query.entity not in view:
            raise err_query(f"QueryValidationError: Invalid entity name {query.entity}; entity names are "
                            "case-sensitive", "4001") if query.entity.lower() in ENTITY_BY_PATH else err_query(
                f'QueryParserError: Encountered " <IDENTIFIER> "{query.entity} "" : unknown entity')
        known = _properties(query.entity)
        if known:
            for cond in query.where:
                root = cond.field.split(".")[0]
                if root not in known and root not in ("Id", "MetaData"):
                    raise err_query(f"QueryValidationError: property '{root}' is not queryable", "4001")
        rows = [_public(r) for r in view[query.entity].values()]
        if query.entity in NAME_LISTS and not query.mentions("Active"):
            rows = [r for r in rows if r.get("Active", True)]
        page, total = qbo_query.execute(query, rows)
        if query.select == "count":
            return {"totalCount": total}
        if not page:
            return {}
        return {query.entity: copy.deepcopy(page), "startPosition": query.start_position, "maxResults": len(page)}

    # -- batch ----------------------------------------------------------------------------------------

    def _batch(self, body: dict[str, Any], params: dict[str, str]) -> tuple[dict[str, Any], bool]:
        items = body.get("BatchItemRequest")
        unknown = set(body) - {"BatchItemRequest"}
        if unknown:
            raise err_unknown_property("IntuitBatchRequest", sorted(unknown)[0], {"BatchItemRequest"})
        if not isinstance(items, list) or not items:
            raise err_required("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise QBOError("1040", "Batch size exceeds allowed limit",
                           f"Number of items in the batch request ({len(items)}) exceeds the maximum of {MAX_BATCH_ITEMS}", "")
        # What every item sees for references and queries. Rows are replaced, never mutated, so a shallow copy
        # of each table is a true snapshot.
        snapshot = {name: dict(rows) for name, rows in self._entities.items()}
        out: list[dict[str, Any]] = []
        any_create = False
        for item in items:
            bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
            try:
                if not bid:
                    raise err_required("bId")
                if "Query" in item:
                    out.append({"QueryResponse": self._run_query(str(item["Query"]), snapshot), "bId": bid})
                    continue
                entity = next((k for k in item if k in ENTITY_BY_PATH.values()), None)
                if entity is None or entity not in WRITABLE:
                    raise QBOError("500", "Unsupported Operation", f"Operation {item.get('operation')} is not "
                                   f"supported for {entity or 'this item'}", None)
                operation = str(item.get("operation", "")).lower()
                options = str(item.get("optionsData", "")).lower()
                if operation not in ("create", "update", "delete"):
                    raise QBOError("2020", "Required param missing, need to supply the required value for the API",
                                   "Required parameter operation is missing in the request", "operation")
                payload = item[entity]
                if not isinstance(payload, dict):
                    raise err_unknown_property(entity, entity, _properties(entity))
                op = "void" if (operation == "update" and "void" in options) else (
                    "delete" if operation == "delete" else "")
                if operation == "create" and _present(payload.get("Id")):
                    raise QBOError("2010", "Request has invalid or unsupported property",
                                   "Property Name:Id specified is unsupported or invalid for create", "Id")
                if operation == "update" and not _present(payload.get("Id")):
                    raise err_required("Id")
                result, created = self._write(entity, payload, op, "allowduplicatedocnum" in options, snapshot)
                any_create = any_create or created
                out.append({entity: result, "bId": bid})
            except QBOError as exc:
                out.append({"Fault": exc.fault(), "bId": bid})
        return {"BatchItemResponse": out, "time": _iso_millis(self.clock.now())}, any_create

    # -- writes ---------------------------------------------------------------------------------------

    def _write(self, entity: str, payload: dict[str, Any], operation: str, allow_dup: bool,
               view: dict[str, dict[str, dict[str, Any]]]) -> tuple[dict[str, Any], bool]:
        """Create, update, delete or void; returns (response object, whether something was created)."""
        if operation in ("delete", "void"):
            if entity not in TRANSACTIONS:
                raise QBOError("500", "Unsupported Operation", f"Operation {operation.capitalize()} is not supported.", None)
            return self._delete_or_void(entity, payload, operation), False
        if operation:
            raise QBOError("500", "Unsupported Operation", f"Operation {operation} is not supported.", None)
        if _present(payload.get("Id")):
            return self._update(entity, payload, allow_dup, view), False
        return self._create(entity, payload, allow_dup, view), True

    def _existing_for_write(self, entity: str, payload: dict[str, Any]) -> dict[str, Any]:
        id_ = str(payload.get("Id"))
        existing = self._entities[entity].get(id_)
        if existing is None:
            raise err_not_found()
        if not _present(payload.get("SyncToken")):
            raise err_required("SyncToken")
        if str(payload["SyncToken"]) != existing["SyncToken"]:
            raise err_stale(self.admin_name)
        return existing

    def _delete_or_void(self, entity: str, payload: dict[str, Any], operation: str) -> dict[str, Any]:
        existing = copy.deepcopy(self._existing_for_write(entity, payload))  # never mutate: batch snapshots share rows
        if operation == "delete":
            del self._entities[entity][existing["Id"]]
            return {"domain": "QBO", "status": "Deleted", "Id": existing["Id"]}
        zero = Decimal("0")
        for line in existing["Line"]:
            if "Amount" in line and line.get("DetailType") != "DescriptionOnly":
                line["Amount"] = zero
        existing["TxnTaxDetail"] = {"TotalTax": zero}
        existing["TotalAmt"] = zero
        existing["Balance"] = zero
        if entity == "CreditMemo":
            existing["RemainingCredit"] = zero
        note = existing.get("PrivateNote")
        existing["PrivateNote"] = f"Voided - {note}" if note else "Voided"
        existing["_Voided"] = True
        self._bump(existing)
        self._entities[entity][existing["Id"]] = existing
        return copy.deepcopy(_public(existing))

    def _bump(self, obj: dict[str, Any]) -> None:
        obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
        obj["MetaData"]["LastUpdatedTime"] = _iso_seconds(self.clock.now())

    def _next_id(self, entity: str) -> str:
        n = self._state["next_id"].get(entity, 1)
        self._state["next_id"][entity] = n + 1
        return str(n)

    def _create(self, entity: str, payload: dict[str, Any], allow_dup: bool,
                view: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        obj = self._build(entity, payload, None, allow_dup, view)
        now = _iso_seconds(self.clock.now())
        obj["Id"] = self._next_id(entity)
        obj["SyncToken"] = "0"
        obj["MetaData"] = {"CreateTime": now, "LastUpdatedTime": now}
        obj = _ordered(entity, obj)
        self._entities[entity][obj["Id"]] = obj
        return copy.deepcopy(_public(obj))

    def _update(self, entity: str, payload: dict[str, Any], allow_dup: bool,
                view: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        existing = self._existing_for_write(entity, payload)
        if existing.get("_Voided"):
            raise err_business("This transaction has been voided and can't be edited.")
        if payload.get("sparse") in (True, "true"):
            merged = {k: v for k, v in existing.items() if k not in _READ_ONLY and not k.startswith("_")}
            if not existing.get("_TaxPinned"):
                merged.pop("TxnTaxDetail", None)
            merged.pop("Line", None) if "Line" in payload else None
            if "Line" not in payload and entity in TRANSACTIONS:
                merged["Line"] = [ln for ln in existing["Line"] if ln.get("DetailType") != "SubTotalLineDetail"]
            merged.update(payload)
        else:
            merged = dict(payload)
        obj = self._build(entity, merged, existing, allow_dup, view)
        obj["Id"] = existing["Id"]
        obj["SyncToken"] = existing["SyncToken"]
        obj["MetaData"] = dict(existing["MetaData"])
        self._bump(obj)
        obj = _ordered(entity, obj)
        self._entities[entity][obj["Id"]] = obj
        return copy.deepcopy(_public(obj))

    # -- validation and computation -------------------------------------------------------------------

    def _check_shape(self, entity: str, payload: dict[str, Any]) -> None:
        known = _properties(entity)
        if entity not in PROPERTIES:
            return  # no API-reference table for this entity (see WRITABLE)
        for key in payload:
            if key not in known:
                raise err_unknown_property(entity, key, known)
        if entity in TRANSACTIONS and isinstance(payload.get("Line"), list):
            line_known = _line_properties(entity)
            for line in payload["Line"]:
                if not isinstance(line, dict):
                    raise err_unknown_property(entity, "Line", known)
                for key in line:
                    if key not in line_known:
                        raise QBOError("2010", "Request has invalid or unsupported property",
                                       f'Property Name:Unrecognized field "{key}" (class com.intuit.schema.finance.v3.'
                                       f"Line), not marked as ignorable specified is unsupported or invalid", None)
        for path, limit in MAX_LENGTHS.get(entity, {}).items():
            for value in _values_at(payload, path.split(".")):
                if isinstance(value, str) and len(value) > limit:
                    raise err_length(path, limit, len(value))

    def _resolve(self, view: dict[str, dict[str, dict[str, Any]]], entity: str, ref: Any, kind: str,
                 must_be_active: bool = True) -> dict[str, Any]:
        value = _ref_value(ref)
        obj = view.get(entity, {}).get(str(value)) if value is not None else None
        if obj is None:
            raise err_bad_ref(kind, value)
        if must_be_active and not obj.get("Active", True):
            raise err_not_found()
        return obj

    def _build(self, entity: str, payload: dict[str, Any], existing: dict[str, Any] | None, allow_dup: bool,
               view: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        self._check_shape(entity, payload)
        if entity in TRANSACTIONS:
            return self._build_txn(entity, payload, existing, allow_dup, view)
        if entity == "Customer":
            return self._build_customer(payload, existing)
        if entity == "Vendor":
            return self._build_vendor(payload, existing)
        return self._build_item(payload, existing, view)

    def _passthrough(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in payload.items() if k not in _READ_ONLY and _present(v)}

    def _unique_name(self, entities: tuple[str, ...], field: str, name: str, self_id: str | None, self_entity: str) -> None:
        wanted = name.strip().lower()
        for other in entities:
            for obj in self._entities[other].values():
                if other == self_entity and obj["Id"] == self_id:
                    continue
                if str(obj.get(field, "")).strip().lower() == wanted:
                    raise err_duplicate_name()

    def _build_customer(self, payload: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        name = payload.get("DisplayName")
        if not _present(name):
            parts = [payload.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
            name = " ".join(str(p) for p in parts if _present(p))
        if not name:
            raise err_required("DisplayName")
        name = str(name)
        if ":" in name:
            # Intuit reserves ':' as the FullyQualifiedName separator (Parent:Child).
            raise err_business("The DisplayName can't contain a colon (:).", "DisplayName")
        self._unique_name(PEOPLE, "DisplayName", name, existing["Id"] if existing else None, "Customer")
        obj: dict[str, Any] = {"Taxable": True, "Job": False, "BillWithParent": False, "Balance": Decimal("0"),
                               "BalanceWithJobs": Decimal("0"), "CurrencyRef": self._currency(),
                               "PreferredDeliveryMethod": "Print", "domain": "QBO", "sparse": False}
        obj.update(self._passthrough(payload))
        obj["DisplayName"] = name
        obj["FullyQualifiedName"] = name
        obj.setdefault("PrintOnCheckName", name)
        obj.setdefault("Active", True)
        if existing is not None:
            obj["Balance"] = existing.get("Balance", Decimal("0"))
            obj["BalanceWithJobs"] = existing.get("BalanceWithJobs", Decimal("0"))
        if self.country == "US":
            obj.setdefault("DefaultTaxCodeRef", {"value": "2"})
        obj["Taxable"] = payload.get("Taxable", True) not in (False, "false")
        return obj

    def _build_vendor(self, payload: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        """A vendor shaped like the recorded batch create (batch_basic.yml); names are unique across people."""
        name = payload.get("DisplayName")
        if not _present(name):
            parts = [payload.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
            name = " ".join(str(p) for p in parts if _present(p)) or payload.get("CompanyName")
        if not _present(name):
            raise err_required("DisplayName")
        name = str(name)
        if ":" in name:
            raise err_business("The DisplayName can't contain a colon (:).", "DisplayName")
        self._unique_name(PEOPLE, "DisplayName", name, existing["Id"] if existing else None, "Vendor")
        obj: dict[str, Any] = {"Balance": Decimal("0"), "Vendor1099": False, "CurrencyRef": self._currency(),
                               "domain": "QBO", "sparse": False}
        obj.update(self._passthrough(payload))
        obj["DisplayName"] = name
        obj.setdefault("PrintOnCheckName", name)
        obj.setdefault("Active", True)
        if existing is not None:
            obj["Balance"] = existing.get("Balance", Decimal("0"))
        return obj

    def _build_item(self, payload: dict[str, Any], existing: dict[str, Any] | None,
                    view: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        name = payload.get("Name")
        if not _present(name):
            raise err_required("Name")
        name = str(name)
        self._unique_name(("Item",), "Name", name, existing["Id"] if existing else None, "Item")
        itype = payload.get("Type") or "Service"
        if itype not in ("Service", "NonInventory", "Inventory", "Category", "Group"):
            raise QBOError("2170", "Invalid Enumeration", f"Invalid Enumeration : {itype}", "Type")
        obj: dict[str, Any] = {"Name": name, "Active": True, "FullyQualifiedName": name, "Taxable": False,
                               "UnitPrice": Decimal("0"), "Type": itype, "PurchaseCost": Decimal("0"),
                               "TrackQtyOnHand": False, "domain": "QBO", "sparse": False}
        obj.update(self._passthrough(payload))
        obj["FullyQualifiedName"] = name
        for key in ("UnitPrice", "PurchaseCost"):
            obj[key] = _dec(obj.get(key, 0), key)
        if itype in ("Service", "Inventory", "NonInventory"):
            if not _ref_value(payload.get("IncomeAccountRef")):
                raise err_required("IncomeAccountRef")
            acct = self._resolve(view, "Account", payload["IncomeAccountRef"], "Account")
            obj["IncomeAccountRef"] = {"value": acct["Id"], "name": acct["Name"]}
        return obj

    def _currency(self) -> dict[str, str]:
        home = self.preferences["CurrencyPrefs"]["HomeCurrency"]["value"]
        names = {"USD": "United States Dollar", "CAD": "Canadian Dollar", "GBP": "British Pound Sterling",
                 "AUD": "Australian Dollar"}
        return {"value": home, "name": names.get(home, home)}

    def _build_txn(self, entity: str, payload: dict[str, Any], existing: dict[str, Any] | None, allow_dup: bool,
                   view: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        # A sales receipt may be a cash sale with no customer (the recorded SalesReceipt 17 has no CustomerRef).
        if not _ref_value(payload.get("CustomerRef")) and entity != "SalesReceipt":
            raise err_required("CustomerRef")
        raw_lines = [ln for ln in payload.get("Line") or [] if ln.get("DetailType") != "SubTotalLineDetail"]
        if not raw_lines:
            raise err_required("Line")
        customer: dict[str, Any] = (self._resolve(view, "Customer", payload["CustomerRef"], "Customer")
                                    if _ref_value(payload.get("CustomerRef")) else {})
        us = self.country == "US"
        gtc = payload.get("GlobalTaxCalculation")
        if not us:
            if not _present(gtc):
                raise err_required("GlobalTaxCalculation")
            if gtc not in ("TaxExcluded", "TaxInclusive", "NotApplicable"):
                raise QBOError("2170", "Invalid Enumeration", f"Invalid Enumeration : {gtc}", "GlobalTaxCalculation")
        ast = us and bool(self.preferences["TaxPrefs"].get("PartnerTaxEnabled"))

        lines: list[dict[str, Any]] = []
        subtotal = Decimal("0")
        discount = Decimal("0")
        taxable_by_rate: dict[str, Decimal] = {}
        us_taxable = Decimal("0")
        # Line Ids: on update a line sent with the Id of an existing line keeps it; any other line gets a fresh Id
        # above every Id the transaction has used (recorded full update of SalesReceipt 17: line 5 became 6).
        old_ids = {str(ln.get("Id")) for ln in (existing or {}).get("Line", []) if _present(ln.get("Id"))}
        next_line_id = max([_int_or_none(i) or 0 for i in old_ids] + [0]) + 1
        for n, raw in enumerate(raw_lines, 1):
            if existing is None:
                line_id = str(n)
            elif str(raw.get("Id")) in old_ids:
                line_id = str(raw["Id"])
            else:
                line_id, next_line_id = str(next_line_id), next_line_id + 1
            line = {"Id": line_id, "LineNum": n,
                    **{k: copy.deepcopy(v) for k, v in raw.items() if k not in ("Id", "LineNum")}}
            kind = line.get("DetailType")
            if not _present(kind):
                raise err_required("DetailType")
            if kind == "SalesItemLineDetail":
                detail = line.get("SalesItemLineDetail") or {}
                if not _present(line.get("Amount")):
                    raise err_required("Amount")
                amount = _dec(line["Amount"], "Amount")
                line["Amount"] = amount
                for key in ("Qty", "UnitPrice", "TaxInclusiveAmt", "DiscountAmt", "DiscountRate"):
                    if _present(detail.get(key)):
                        detail[key] = _dec(detail[key], key)
                    else:
                        detail.pop(key, None)
                if "Qty" in detail and "UnitPrice" in detail:
                    if money.round_cents(detail["Qty"] * detail["UnitPrice"]) != money.round_cents(amount):
                        raise QBOError("6070", "Amount calculation incorrect in the request",
                                       f"Amount calculation incorrect in the request : Amount is not equal to "
                                       f"UnitPrice * Qty. Supplied value:{amount}", "Line.Amount")
                if not _ref_value(detail.get("ItemRef")):
                    # Intuit: a line without ItemRef is documentation and its Amount is ignored.
                    line["SalesItemLineDetail"] = detail
                    lines.append(line)
                    continue
                item = self._resolve(view, "Item", detail["ItemRef"], "Item")
                detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
                if _ref_value(detail.get("ClassRef")):
                    cls = self._resolve(view, "Class", detail["ClassRef"], "Class")
                    detail["ClassRef"] = {"value": cls["Id"], "name": cls["Name"]}
                code = _ref_value(detail.get("TaxCodeRef"))
                if us:
                    if code is None:
                        code = "TAX" if (ast and item.get("Taxable")) else "NON"
                    if code not in ("TAX", "NON"):
                        raise QBOError("6100", "Invalid Line TaxCode",
                                       f"Invalid Line TaxCode : Valid Line TaxCodes for US should be TAX or NON. "
                                       f"Supplied value:{code}", "Line.SalesItemLineDetail.TaxCodeRef")
                    detail["TaxCodeRef"] = {"value": code}
                    if code == "TAX":
                        us_taxable += amount
                else:
                    if code is None:
                        raise err_business("Make sure all your transactions have a GST/VAT rate before you save.",
                                           "Line.SalesItemLineDetail.TaxCodeRef")
                    tax_code = view["TaxCode"].get(code)
                    if tax_code is None:
                        raise err_bad_ref("TaxCode", code)
                    detail["TaxCodeRef"] = {"value": code}
                    for rate in tax_code["SalesTaxRateList"]["TaxRateDetail"]:
                        rid = rate["TaxRateRef"]["value"]
                        taxable_by_rate[rid] = taxable_by_rate.get(rid, Decimal("0")) + amount
                line["SalesItemLineDetail"] = detail
                subtotal += amount
            elif kind == "DescriptionOnly":
                line.setdefault("DescriptionLineDetail", {})
                line.pop("Amount", None)
            elif kind == "DiscountLineDetail":
                detail = line.get("DiscountLineDetail") or {}
                pct = detail.get("DiscountPercent")
                if detail.get("PercentBased") in (True, "true") and _present(pct):
                    amount = money.round_cents(subtotal * _dec(pct, "DiscountPercent") / 100)
                else:
                    amount = _dec(line.get("Amount", 0), "Amount")
                line["Amount"] = amount
                discount += amount
            else:
                raise QBOError("2170", "Invalid Enumeration", f"Invalid Enumeration : {kind}", "Line.DetailType")
            lines.append(line)
        lines.append({"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})

        # Tax
        sent_tax = payload.get("TxnTaxDetail") if isinstance(payload.get("TxnTaxDetail"), dict) else {}
        pinned = _present(sent_tax.get("TotalTax"))
        tax_detail: dict[str, Any]
        total_tax = Decimal("0")
        if us:
            rate_row = next(iter(view["TaxRate"].values()))
            percent: Decimal = rate_row["RateValue"]
            base = us_taxable if customer.get("Taxable", True) else Decimal("0")
            if pinned:
                total_tax = _dec(sent_tax["TotalTax"], "TotalTax")
            elif ast:
                total_tax = money.round_cents(base * percent / 100)
            if total_tax or (ast and base):
                tax_detail = {"TxnTaxCodeRef": {"value": self.preferences["TaxPrefs"].get("TaxGroupCodeRef", {}).get("value", "2")},
                              "TotalTax": total_tax,
                              "TaxLine": [{"Amount": total_tax, "DetailType": "TaxLineDetail",
                                           "TaxLineDetail": {"TaxRateRef": {"value": rate_row["Id"]}, "PercentBased": True,
                                                             "TaxPercent": percent, "NetAmountTaxable": base}}]}
            else:
                tax_detail = {"TotalTax": Decimal("0")}
        else:
            tax_lines = []
            if gtc != "NotApplicable":
                for rid in sorted(taxable_by_rate, key=_id_sort):
                    rate_row = view["TaxRate"][rid]
                    amount = money.round_cents(taxable_by_rate[rid] * rate_row["RateValue"] / 100)
                    total_tax += amount
                    tax_lines.append({"Amount": amount, "DetailType": "TaxLineDetail",
                                      "TaxLineDetail": {"TaxRateRef": {"value": rid}, "PercentBased": True,
                                                        "TaxPercent": rate_row["RateValue"],
                                                        "NetAmountTaxable": taxable_by_rate[rid]}})
            tax_detail = {"TotalTax": total_tax, **({"TaxLine": tax_lines} if tax_lines else {})}
        total = subtotal - discount + total_tax
        if total < 0:
            raise err_business("Transaction total amount must be positive. Create a credit memo instead."
                               if entity == "Invoice" else "Transaction total amount must be positive.")

        # DocNumber
        doc = payload.get("DocNumber")
        auto = payload.get("AutoDocNumber") in (True, "true") or doc == "AUTO_GENERATE"
        if not self.custom_txn_numbers or auto:
            doc = existing.get("DocNumber") if existing is not None and existing.get("DocNumber") else self._next_doc(entity)
        elif _present(doc):
            doc = str(doc)
            if not allow_dup:
                self._check_doc_number(doc, entity, existing["Id"] if existing else None)
        else:
            doc = None

        # Header references
        header_refs = {"SalesTermRef": ("Term", "Term"), "ClassRef": ("Class", "Class"),
                       "DepartmentRef": ("Department", "Department")}
        resolved: dict[str, dict[str, Any]] = {}
        for key, (ref_entity, kind) in header_refs.items():
            if _ref_value(payload.get(key)):
                target = self._resolve(view, ref_entity, payload[key], kind)
                resolved[key] = {"value": target["Id"], "name": target["Name"]}

        today = _pacific(self.clock.now()).date()
        txn_date = payload.get("TxnDate") if _present(payload.get("TxnDate")) else today.isoformat()
        try:
            txn_day = dt.date.fromisoformat(str(txn_date))
        except ValueError as exc:
            raise QBOError("2010", "Request has invalid or unsupported property",
                           f"Property Name:Can not construct instance of java.util.Date from String value '{txn_date}' "
                           "specified is unsupported or invalid", "TxnDate") from exc

        obj: dict[str, Any] = {}
        if entity == "Invoice":
            obj.update({"AllowIPNPayment": False, "AllowOnlinePayment": False, "AllowOnlineCreditCardPayment": False,
                        "AllowOnlineACHPayment": False})
        obj.update({"domain": "QBO", "sparse": False})
        obj.update(self._passthrough(payload))
        obj.pop("AutoDocNumber", None)
        obj["CustomField"] = self._custom_fields(payload.get("CustomField"))
        if doc is not None:
            obj["DocNumber"] = doc
        else:
            obj.pop("DocNumber", None)
        obj["TxnDate"] = txn_day.isoformat()
        obj["CurrencyRef"] = self._currency()
        if entity == "Invoice":
            obj.setdefault("LinkedTxn", [])
        obj["Line"] = lines
        obj["TxnTaxDetail"] = tax_detail
        if customer:
            obj["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        else:
            obj.pop("CustomerRef", None)
        obj.update(resolved)
        for addr in ("BillAddr", "ShipAddr"):
            if not _present(payload.get(addr)) and customer.get(addr):
                obj[addr] = copy.deepcopy(customer[addr])
        if entity == "Invoice":
            if _present(payload.get("DueDate")):
                obj["DueDate"] = str(payload["DueDate"])
            else:
                term_id = _ref_value(resolved.get("SalesTermRef")) or _ref_value(customer.get("SalesTermRef")) or \
                    _ref_value(self.preferences["SalesFormsPrefs"].get("DefaultTerms"))
                term = view["Term"].get(term_id or "")
                days = int(term.get("DueDays", 0)) if term else 0
                obj["DueDate"] = (txn_day + dt.timedelta(days=days)).isoformat()
        if not us:
            obj["GlobalTaxCalculation"] = gtc
        else:
            obj.pop("GlobalTaxCalculation", None)
        obj["TotalAmt"] = total
        obj.setdefault("ApplyTaxAfterDiscount", False)
        obj.setdefault("PrintStatus", "NeedToPrint" if entity == "Invoice" else "NotSet")
        obj.setdefault("EmailStatus", "NotSet")
        obj["Balance"] = total
        if entity == "SalesReceipt":
            # Paid at sale: no balance, money lands in Undeposited Funds unless told otherwise (as recorded).
            obj["Balance"] = Decimal("0")
            if _ref_value(payload.get("DepositToAccountRef")):
                acct = self._resolve(view, "Account", payload["DepositToAccountRef"], "Account")
            else:
                acct = next((a for a in view["Account"].values() if a.get("AccountSubType") == "UndepositedFunds"), {})
            if acct:
                obj["DepositToAccountRef"] = {"value": acct["Id"], "name": acct["Name"]}
            for key in ("DueDate", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment", "LinkedTxn"):
                obj.pop(key, None)
        if entity == "CreditMemo":
            obj["RemainingCredit"] = total
            for key in ("DueDate", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment", "Deposit", "LinkedTxn"):
                obj.pop(key, None)
        else:
            obj.pop("Deposit", None) if not obj.get("Deposit") else None
        for key in ("ExchangeRate",):
            if key in obj:
                obj[key] = _dec(obj[key], key)
        obj["_TaxPinned"] = pinned
        return obj

    def _custom_fields(self, sent: Any) -> list[dict[str, Any]]:
        """The enabled custom-field definitions, with any values sent (unknown DefinitionIds are ignored)."""
        groups = self.preferences["SalesFormsPrefs"].get("CustomField", [])
        flat = [f for g in groups for f in g.get("CustomField", [])]
        enabled = {f["Name"][-1] for f in flat if f["Name"].startswith("SalesFormsPrefs.UseSalesCustom") and f.get("BooleanValue")}
        names = {f["Name"][-1]: f.get("StringValue", "") for f in flat if f["Name"].startswith("SalesFormsPrefs.SalesCustomName")}
        values = {str(f.get("DefinitionId")): f.get("StringValue") for f in sent or [] if isinstance(f, dict)}
        out = []
        for def_id in sorted(enabled):
            field: dict[str, Any] = {"DefinitionId": def_id, "Name": names.get(def_id, ""), "Type": "StringType"}
            if _present(values.get(def_id)):
                field["StringValue"] = str(values[def_id])
            out.append(field)
        return out

    def _next_doc(self, entity: str) -> str:
        counters = self._state["next_doc_number"]
        while True:
            n = counters.get(entity, 1001)
            counters[entity] = n + 1
            try:
                self._check_doc_number(str(n), entity, None)
                return str(n)
            except QBOError:
                continue

    def _check_doc_number(self, doc: str, entity: str, self_id: str | None) -> None:
        for other in ("Invoice", "CreditMemo", "SalesReceipt"):  # one number space for sales forms
            for obj in self._entities.get(other, {}).values():
                if other == entity and obj["Id"] == self_id:
                    continue
                if obj.get("DocNumber") == doc:
                    raise QBOError("6140", "Duplicate Document Number Error",
                                   f"Duplicate Document Number Error : You must specify a different number. This number "
                                   f"has already been used. DocNumber={doc} is assigned to "
                                   f"TxnType={TXN_TYPE_LABEL[other]} with TxnId={obj['Id']}", "")


# --- module helpers ----------------------------------------------------------------------------------

_ORDER = {
    "Invoice": ["AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment",
                "domain", "sparse", "Id", "SyncToken", "MetaData", "CustomField", "DocNumber", "TxnDate", "CurrencyRef",
                "LinkedTxn", "Line", "TxnTaxDetail", "CustomerRef"],
    "CreditMemo": ["domain", "sparse", "Id", "SyncToken", "MetaData", "CustomField", "DocNumber", "TxnDate",
                   "CurrencyRef", "Line", "TxnTaxDetail", "CustomerRef"],
    "SalesReceipt": ["domain", "sparse", "Id", "SyncToken", "MetaData", "CustomField", "DocNumber", "TxnDate",
                     "CurrencyRef", "PrivateNote", "Line", "TxnTaxDetail", "CustomerRef"],
}


def _ordered(entity: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Key order like the recorded responses (cosmetic: JSON objects are unordered)."""
    head = _ORDER.get(entity, ["domain", "sparse", "Id", "SyncToken", "MetaData"])
    out = {k: obj[k] for k in head if k in obj}
    out.update({k: v for k, v in obj.items() if k not in out})
    return out


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _id_sort(value: str) -> tuple[int, Any]:
    n = _int_or_none(value)
    return (0, n) if n is not None else (1, value)


# The recorded faults (400 and 401) are served as plain "application/json", successes with ";charset=utf-8".
_FAULT_CONTENT_TYPE = "application/json"


def _api_headers(tid: str, content_type: str = "application/json;charset=utf-8") -> dict[str, str]:
    return {"Content-Type": content_type, "intuit_tid": tid, "Intuit-Tid": tid, "Qbo-Version": "1944.190"}


def _response(status: int, body: Any, tid: str, *, content_type: str = "application/json;charset=utf-8",
              extra: dict[str, str] | None = None) -> httpx.Response:
    headers = _api_headers(tid, content_type)
    headers.update(extra or {})
    return httpx.Response(status, content=money.dumps(body).encode("utf-8"), headers=headers)


def _html(status: int, message: str, tid: str) -> httpx.Response:
    page = f"<html><head><title>Error</title></head><body><h1>Error</h1><p>{message}</p></body></html>"
    return httpx.Response(status, content=page.encode(), headers={"Content-Type": "text/html", "intuit_tid": tid})


Handler = Callable[[httpx.Request], httpx.Response]
