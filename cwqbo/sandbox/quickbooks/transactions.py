"""QBO sales transactions: invoices, credit memos and sales receipts — lines, tax, totals, DocNumbers.

US companies use automated sales tax (TAX/NON line codes); other countries use per-line tax codes and
GlobalTaxCalculation. Sales forms share one DocNumber space.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

from cwqbo import money
from cwqbo.sandbox.quickbooks.core import SimulatorCore, View
from cwqbo.sandbox.quickbooks.errors import QBOError, err_bad_ref, err_business, err_required
from cwqbo.sandbox.quickbooks.index import IndexedTable
from cwqbo.sandbox.quickbooks.schema import TXN_TYPE_LABEL
from cwqbo.sandbox.quickbooks.values import _dec, _id_sort, _int_or_none, _pacific, _present, _ref_value


class TransactionsMixin(SimulatorCore):
    """How `QBOSimulator` builds sales transactions (shared steps from `SimulatorCore`)."""

    def _build_txn(self, entity: str, payload: dict[str, Any], existing: dict[str, Any] | None, allow_dup: bool,
                   view: View) -> dict[str, Any]:
        # A sales receipt may be a cash sale with no customer (the recorded SalesReceipt 17 has no CustomerRef).
        if not _ref_value(payload.get("CustomerRef")) and entity != "SalesReceipt":
            raise err_required("CustomerRef")
        raw_lines = [ln for ln in payload.get("Line") or [] if ln.get("DetailType") != "SubTotalLineDetail"]
        if not raw_lines:
            raise err_required("Line")
        customer: dict[str, Any] = (self._resolve(view, "Customer", payload["CustomerRef"], "Customer")
                                    if _ref_value(payload.get("CustomerRef")) else {})
        # Currency: the document's CurrencyRef (home currency when omitted); a CurrencyRef other than home needs
        # multicurrency (see SimulatorCore._currency_of), and a document must be in its customer's currency: Intuit
        # "Customers/vendors can also be associated with a single foreign currency" (developer blog 2015-06-18,
        # multicurrency for US companies) and a customer's currency "cannot be changed" (Customer.CurrencyRef).
        # Intuit's exact fault text for a mismatch is not in any source we hold: the generic 6000 is used.
        currency = self._currency_of(payload.get("CurrencyRef"), element="CurrencyRef")
        cust_currency = _ref_value(customer.get("CurrencyRef")) if customer else None
        if cust_currency and currency["value"] != cust_currency:
            raise err_business(f"The transaction currency {currency['value']} must be the currency of customer "
                               f"{customer.get('DisplayName')} ({cust_currency}).", "CurrencyRef")
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
        sent = payload.get("TxnTaxDetail")
        sent_tax: dict[str, Any] = sent if isinstance(sent, dict) else {}
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
        obj["CurrencyRef"] = currency
        if entity == "Invoice":
            # Payments applied to the invoice are links the service keeps itself (PaymentsMixin), whatever was sent.
            kept = [t for t in obj.get("LinkedTxn") or [] if isinstance(t, dict) and t.get("TxnType") != "Payment"]
            obj["LinkedTxn"] = kept + (self._payment_links(existing["Id"]) if existing is not None else [])
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
        # Balance: what the linked Payments leave open. An edit may not take the total under what was already paid
        # (no source gives Intuit's answer to that; refused with the generic 6000 rather than a negative balance).
        applied = self._payments_applied(entity, existing["Id"]) if existing is not None else Decimal("0")
        if total < applied:
            raise err_business(f"Payments of {applied} are applied to this transaction; its total can't be {total}.")
        obj["Balance"] = total - applied
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
            obj["RemainingCredit"] = total - applied
            for key in ("DueDate", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment", "Deposit", "LinkedTxn"):
                obj.pop(key, None)
        else:
            obj.pop("Deposit", None) if not obj.get("Deposit") else None
        home = self.preferences["CurrencyPrefs"]["HomeCurrency"]["value"]
        if currency["value"] != home:
            # ExchangeRate: "The number of home currency units it takes to equal one unit of currency specified by
            # CurrencyRef" (qbTypesDump, Invoice). QBO looks up its own rate when none is sent; the simulator has no
            # rate table, so it uses python-quickbooks' default (Invoice.ExchangeRate = 1) and says so in HomeTotalAmt.
            rate = _dec(obj.get("ExchangeRate", 1), "ExchangeRate")
            obj["ExchangeRate"] = rate
            obj["HomeTotalAmt"] = money.round_cents(total * rate)
        else:
            obj.pop("ExchangeRate", None)
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
            table = self._entities.get(other, {})
            ids = table.candidates("DocNumber", (doc,)) if isinstance(table, IndexedTable) else None
            rows = table.values() if ids is None else [table[i] for i in ids if i in table]
            for obj in rows:
                if other == entity and obj["Id"] == self_id:
                    continue
                if obj.get("DocNumber") == doc:
                    raise QBOError("6140", "Duplicate Document Number Error",
                                   f"Duplicate Document Number Error : You must specify a different number. This number "
                                   f"has already been used. DocNumber={doc} is assigned to "
                                   f"TxnType={TXN_TYPE_LABEL[other]} with TxnId={obj['Id']}", "")
