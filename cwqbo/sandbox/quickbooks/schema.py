"""What the simulated QBO knows about its entities: API paths, which are writable, their properties.

The property tables come from the API reference (qbo_limits); the extras here are properties the scrape lacks
but the service accepts, so the simulator rejects exactly what Intuit rejects (error 2010).
"""

from __future__ import annotations

from typing import Any

from cwqbo.sandbox.quickbooks.fields import REQUEST
from cwqbo.quickbooks.limits import LINE_PROPERTIES, PROPERTIES

ENTITY_BY_PATH = {
    name.lower(): name
    for name in ("Invoice", "CreditMemo", "SalesReceipt", "Customer", "Item", "TaxCode", "TaxRate", "Term", "Class",
                 "Department", "Vendor", "Employee", "Account", "CompanyInfo", "Preferences", "Payment")
}
# SalesReceipt and Vendor follow the recorded sandbox traffic (qbo_api_vcr: update_sales_receipt, batch_basic);
# their property names are checked against the API reference (qbo_fields) like every writable entity, but the
# limits table covers only the four entities cwqbo writes, so their string lengths are not.
WRITABLE = {"Invoice", "CreditMemo", "SalesReceipt", "Customer", "Item", "Vendor"}
TRANSACTIONS = {"Invoice", "CreditMemo", "SalesReceipt"}
NAME_LISTS = {"Customer", "Item", "Vendor", "Employee", "Account", "Class", "Department", "Term", "TaxCode", "TaxRate"}
PEOPLE = ("Customer", "Vendor", "Employee")
TXN_TYPE_LABEL = {"Invoice": "Invoice", "CreditMemo": "Credit Memo", "SalesReceipt": "Sales Receipt"}
NUMERIC_FIELDS = {
    "Amount", "TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "UnitPrice", "Qty", "TotalTax", "RateValue",
    "TaxPercent", "NetAmountTaxable", "BalanceWithJobs", "ExchangeRate", "Deposit", "RemainingCredit",
    "DiscountPercent", "DiscountRate", "DiscountAmt", "PurchaseCost", "QtyOnHand", "TaxInclusiveAmt",
    "OverrideDeltaAmount", "TaxInclusiveAmount", "CurrentBalance", "CurrentBalanceWithSubAccounts", "UnappliedAmt",
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


def _request_fields() -> dict[str, frozenset[str]]:
    """What a create/update body may hold, per path: the reference (qbo_fields.REQUEST) plus the extras above."""
    out = dict(REQUEST)
    for entity, extra in _EXTRA_PROPERTIES.items():
        out[entity] = out[entity] | extra
    for entity in TRANSACTIONS:
        out[f"{entity}.Line"] = out[f"{entity}.Line"] | _EXTRA_LINE_PROPERTIES
    return out


# Precomputed once: the write path checks every body against these sets (no per-request derivation).
REQUEST_FIELDS: dict[str, frozenset[str]] = _request_fields()


def _properties(entity: str) -> set[str]:
    return set(PROPERTIES.get(entity, [])) | _EXTRA_PROPERTIES.get(entity, set())


def _line_properties(entity: str) -> set[str]:
    return set(LINE_PROPERTIES.get(entity, [])) | _EXTRA_LINE_PROPERTIES


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
