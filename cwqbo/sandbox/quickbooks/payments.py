"""QBO Payments: received money applied to invoices and credit memos, and Change Data Capture for them.

Sources: Intuit's API reference field dump (qbTypesDump `Payment`, `Payment_Line`: `Amount` and `LinkedTxn`
[{TxnId, TxnType, TxnLineId}]; CustomerRef and TotalAmt "Required"; UnappliedAmt read only; DepositToAccountRef
"If you do not specify this account, payment is applied to the Undeposited Funds account"), Intuit's Payment
reference (create, read, sparse/full update, `?operation=delete` answering {status: Deleted, domain, Id},
`?operation=void`: "all amounts and quantities are zeroed and the string "Voided" is injected into
Payment.PrivateNote"; its sample void answer has `TotalAmt: 0`, `UnappliedAmt: 0`, `Line: []`), python-quickbooks
(`Payment`/`PaymentLine`; `VoidMixin` voids a Payment with `?operation=update&include=void` and a sparse
{Id, SyncToken} body: both spellings are accepted) and Intuit's change-data-capture page (`GET /cdc?entities=…
&changedSince=…`, answered `CDCResponse[0].QueryResponse[]` per entity, "grouped by type and then in order of
last updated time", deleted objects "returned after active objects" as {status: Deleted, domain, Id, MetaData},
a 30-day look-back, at most 1000 objects).

Guesses, each made to fail loudly: a line links exactly one Invoice or CreditMemo (QBO allows Expense, Check,
JournalEntry… too: refused here); an over-application, a link to another customer's document and a CDC look-back
over 30 days are answered with the generic business fault 6000, Intuit's exact text being in no source we hold;
CDC is served for Payment only (no other entity keeps tombstones here, so it could not report their deletions);
payments are not in the batch endpoint. The PaymentMethod list is not simulated: PaymentMethodRef is kept as sent.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

from cwqbo.sandbox.quickbooks.errors import QBOError, err_bad_ref, err_business, err_required
from cwqbo.sandbox.quickbooks.schema import _READ_ONLY
from cwqbo.sandbox.quickbooks.values import _dec, _iso_millis, _iso_seconds, _pacific, _present, _public, _ref_value
from cwqbo.sandbox.quickbooks.writes import WritesMixin
from cwqbo.sandbox.quickbooks.core import View

LINKABLE = ("Invoice", "CreditMemo")
CDC_LOOKBACK_DAYS = 30
CDC_MAX_OBJECTS = 1000
_ORDER = ["CustomerRef", "DepositToAccountRef", "PaymentMethodRef", "PaymentRefNum", "TotalAmt", "UnappliedAmt",
          "domain", "sparse", "Id", "SyncToken", "MetaData", "TxnDate", "CurrencyRef", "PrivateNote", "Line"]


def _links(payment: dict[str, Any]) -> list[tuple[str, str, Decimal]]:
    """(entity, id, amount) of each line of a stored payment."""
    out = []
    for line in payment.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            out.append((str(link["TxnType"]), str(link["TxnId"]), Decimal(line["Amount"])))
    return out


def _instant(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


class PaymentsMixin(WritesMixin):
    """Payment writes, the balances they move, CDC, and the helpers tests and the demo use."""

    # -- test and demo helpers (what a bookkeeper does in QuickBooks) -------------------------------------

    def receive_payment(self, customer_id: str, lines: list[tuple[str, str, Decimal]], *, date: str,
                        method: str | None = None, total: Decimal | None = None,
                        note: str | None = None) -> dict[str, Any]:
        """Receive a payment: `lines` are (Invoice|CreditMemo, Id, amount); TotalAmt is invoices less credits."""
        body: dict[str, Any] = {"CustomerRef": {"value": str(customer_id)}, "TxnDate": date,
                                "Line": [{"Amount": Decimal(a), "LinkedTxn": [{"TxnId": str(i), "TxnType": e}]}
                                         for e, i, a in lines]}
        if total is None:
            total = sum((Decimal(a) if e == "Invoice" else -Decimal(a) for e, _i, a in lines), Decimal("0"))
        body["TotalAmt"] = total
        if method is not None:
            body["PaymentMethodRef"] = {"value": method}
        if note is not None:
            body["PrivateNote"] = note
        with self._lock:
            return self._write_payment(body, "", self._entities)[0]

    def void_payment(self, id_: str) -> dict[str, Any]:
        with self._lock:
            row = self._entities["Payment"][str(id_)]
            return self._write_payment({"Id": row["Id"], "SyncToken": row["SyncToken"]}, "void", self._entities)[0]

    def delete_payment(self, id_: str) -> dict[str, Any]:
        with self._lock:
            row = self._entities["Payment"][str(id_)]
            return self._write_payment({"Id": row["Id"], "SyncToken": row["SyncToken"]}, "delete", self._entities)[0]

    def edit_payment(self, id_: str, lines: list[tuple[str, str, Decimal]] | None = None,
                     **fields: Any) -> dict[str, Any]:
        """A sparse update: new `lines` (all of them, as QBO requires) and/or other fields (TotalAmt, TxnDate…)."""
        with self._lock:
            row = self._entities["Payment"][str(id_)]
            body: dict[str, Any] = {"Id": row["Id"], "SyncToken": row["SyncToken"], "sparse": True, **fields}
            if lines is not None:
                body["Line"] = [{"Amount": Decimal(a), "LinkedTxn": [{"TxnId": str(i), "TxnType": e}]}
                                for e, i, a in lines]
                if "TotalAmt" not in fields:
                    body["TotalAmt"] = sum((Decimal(a) if e == "Invoice" else -Decimal(a) for e, _i, a in lines),
                                           Decimal("0"))
            return self._write_payment(body, "", self._entities)[0]

    # -- what invoices and credit memos see -----------------------------------------------------------

    def _payments_applied(self, entity: str, id_: str) -> Decimal:
        return sum((amount for p in self._entities.get("Payment", {}).values() for e, i, amount in _links(p)
                    if e == entity and i == str(id_)), Decimal("0"))

    def _payment_links(self, id_: str) -> list[dict[str, Any]]:
        rows = self._entities.get("Payment", {})
        return [{"TxnId": p["Id"], "TxnType": "Payment"} for k, p in rows.items()
                if any(e == "Invoice" and i == str(id_) for e, i, _a in _links(p))]

    def _refresh_balances(self, targets: set[tuple[str, str]]) -> None:
        """Recompute Balance (and RemainingCredit, Invoice LinkedTxn) of the documents a payment write touched.

        Rows are replaced, never mutated: a batch's snapshot shares them. SyncToken and LastUpdatedTime of the
        document are left alone (no source says whether applying a payment bumps them).
        """
        for entity, id_ in targets:
            row = self._entities[entity].get(id_)
            if row is None:
                continue
            new = copy.deepcopy(row)
            open_amount = new["TotalAmt"] - self._payments_applied(entity, id_)
            new["Balance"] = open_amount
            if entity == "CreditMemo":
                new["RemainingCredit"] = open_amount
            else:
                kept = [t for t in new.get("LinkedTxn") or [] if t.get("TxnType") != "Payment"]
                new["LinkedTxn"] = kept + self._payment_links(id_)
            self._entities[entity][id_] = new

    # -- the write path -------------------------------------------------------------------------------

    def _write_payment(self, payload: dict[str, Any], operation: str, view: View) -> tuple[dict[str, Any], bool]:
        """Create, update (full or sparse), void or delete a Payment; (answer, whether created)."""
        if operation in ("delete", "void"):
            existing = self._existing_for_write("Payment", payload)
            touched = {(e, i) for e, i, _a in _links(existing)}
            if operation == "delete":
                del self._entities["Payment"][existing["Id"]]
                self._state.setdefault("deleted", {}).setdefault("Payment", []).append(
                    {"Id": existing["Id"], "LastUpdatedTime": _iso_seconds(self.clock.now())})
                self._refresh_balances(touched)
                return {"domain": "QBO", "status": "Deleted", "Id": existing["Id"]}, False
            voided = copy.deepcopy(existing)
            voided.update({"TotalAmt": Decimal("0"), "UnappliedAmt": Decimal("0"), "Line": [], "_Voided": True})
            note = existing.get("PrivateNote")
            voided["PrivateNote"] = f"Voided - {note}" if note and not existing.get("_Voided") else (note or "Voided")
            self._bump(voided)
            self._entities["Payment"][voided["Id"]] = voided
            self._refresh_balances(touched)
            return copy.deepcopy(_public(voided)), False
        if operation:
            raise QBOError("500", "Unsupported Operation", f"Operation {operation} is not supported.", None)
        if _present(payload.get("Id")):
            existing = self._existing_for_write("Payment", payload)
            if existing.get("_Voided"):
                raise err_business("This transaction has been voided and can't be edited.")
            body = dict(payload)
            if payload.get("sparse") in (True, "true"):
                # "Lines can be updated only ALL or NONE" (python-quickbooks Payment): kept unless sent.
                body = {k: v for k, v in existing.items() if k not in _READ_ONLY and not k.startswith("_")}
                body["TotalAmt"] = existing["TotalAmt"]
                body.update(payload)
            obj = self._build_payment(body, existing, view)
            obj["Id"], obj["SyncToken"], obj["MetaData"] = existing["Id"], existing["SyncToken"], dict(existing["MetaData"])
            self._bump(obj)
            touched = {(e, i) for e, i, _a in _links(existing) + _links(obj)}
            created = False
        else:
            obj = self._build_payment(payload, None, view)
            now = _iso_seconds(self.clock.now())
            obj.update({"Id": self._next_id("Payment"), "SyncToken": "0",
                        "MetaData": {"CreateTime": now, "LastUpdatedTime": now}})
            touched = {(e, i) for e, i, _a in _links(obj)}
            created = True
        obj = {**{k: obj[k] for k in _ORDER if k in obj}, **obj}
        self._entities["Payment"][obj["Id"]] = obj
        self._refresh_balances(touched)
        return copy.deepcopy(_public(obj)), created

    def _build_payment(self, payload: dict[str, Any], existing: dict[str, Any] | None, view: View) -> dict[str, Any]:
        self._check_shape("Payment", payload)
        if not _ref_value(payload.get("CustomerRef")):
            raise err_required("CustomerRef")
        if not _present(payload.get("TotalAmt")):
            raise err_required("TotalAmt")
        customer = self._resolve(view, "Customer", payload["CustomerRef"], "Customer")
        total = _dec(payload["TotalAmt"], "TotalAmt")
        if total < 0:
            raise err_business("The payment amount can't be negative.", "TotalAmt")
        currency = self._currency_of(payload.get("CurrencyRef"), element="CurrencyRef")
        cust_currency = _ref_value(customer.get("CurrencyRef"))
        if cust_currency and currency["value"] != cust_currency:
            raise err_business(f"The transaction currency {currency['value']} must be the currency of customer "
                               f"{customer.get('DisplayName')} ({cust_currency}).", "CurrencyRef")
        # What this payment applied before an update is open again for the new version of it.
        prior: dict[tuple[str, str], Decimal] = {}
        for e, i, a in _links(existing or {}):
            prior[(e, i)] = prior.get((e, i), Decimal("0")) + a
        wanted: dict[tuple[str, str], Decimal] = {}
        lines: list[dict[str, Any]] = []
        for raw in payload.get("Line") or []:
            if not _present(raw.get("Amount")):
                raise err_required("Line.Amount")
            amount = _dec(raw["Amount"], "Line.Amount")
            links = raw.get("LinkedTxn") or []
            if amount <= 0 or len(links) != 1:
                raise err_business("Each payment line links one invoice or credit memo with a positive amount "
                                   "(the simulator's rule).", "Line")
            kind, txn_id = str(links[0].get("TxnType")), str(links[0].get("TxnId"))
            if kind not in LINKABLE:
                raise err_business(f"The simulator applies payments to Invoice and CreditMemo only, not {kind}.",
                                   "Line.LinkedTxn.TxnType")
            target = view[kind].get(txn_id)
            if target is None:
                raise err_bad_ref(kind, txn_id)
            if _ref_value(target.get("CustomerRef")) != customer["Id"]:
                raise err_business(f"{kind} {txn_id} belongs to another customer.", "Line.LinkedTxn")
            if _ref_value(target.get("CurrencyRef")) != currency["value"]:
                raise err_business(f"{kind} {txn_id} is in another currency.", "Line.LinkedTxn")
            wanted[(kind, txn_id)] = wanted.get((kind, txn_id), Decimal("0")) + amount
            open_amount = Decimal(target.get("Balance", 0)) + prior.get((kind, txn_id), Decimal("0"))
            if target.get("_Voided") or wanted[(kind, txn_id)] > open_amount:
                raise err_business(f"The amount applied to {kind} {txn_id} ({wanted[(kind, txn_id)]}) is more than "
                                   f"its open balance ({open_amount}).", "Line.Amount")
            link = {"TxnId": txn_id, "TxnType": kind}
            lines.append({"Amount": amount, "LinkedTxn": [link]})
        charges = sum((a for (k, _i), a in wanted.items() if k == "Invoice"), Decimal("0"))
        credits = sum((a for (k, _i), a in wanted.items() if k == "CreditMemo"), Decimal("0"))
        applied = charges - credits
        if applied < 0 or total < applied:
            raise err_business(f"The payment amount ({total}) must cover what its lines apply ({applied}).",
                               "TotalAmt")
        today = _pacific(self.clock.now()).date()
        txn_date = str(payload["TxnDate"]) if _present(payload.get("TxnDate")) else today.isoformat()
        try:
            dt.date.fromisoformat(txn_date)
        except ValueError as exc:
            raise QBOError("2010", "Request has invalid or unsupported property",
                           f"Property Name:Can not construct instance of java.util.Date from String value "
                           f"'{txn_date}' specified is unsupported or invalid", "TxnDate") from exc
        if _ref_value(payload.get("DepositToAccountRef")):
            acct = self._resolve(view, "Account", payload["DepositToAccountRef"], "Account")
        else:
            acct = next((a for a in view["Account"].values() if a.get("AccountSubType") == "UndepositedFunds"), {})
        obj: dict[str, Any] = {"domain": "QBO", "sparse": False, **self._passthrough(payload)}
        obj.pop("UnappliedAmt", None)
        obj.update({"CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]}, "TotalAmt": total,
                    "UnappliedAmt": total - applied, "TxnDate": txn_date, "CurrencyRef": currency, "Line": lines})
        if acct:
            obj["DepositToAccountRef"] = {"value": acct["Id"], "name": acct["Name"]}
        home = self.preferences["CurrencyPrefs"]["HomeCurrency"]["value"]
        if currency["value"] != home:
            obj["ExchangeRate"] = _dec(obj.get("ExchangeRate", 1), "ExchangeRate")  # as transactions.py: no rate table
        else:
            obj.pop("ExchangeRate", None)
        return obj

    # -- change data capture --------------------------------------------------------------------------

    def _cdc(self, params: dict[str, str]) -> dict[str, Any]:
        entities = [e.strip() for e in params.get("entities", "").split(",") if e.strip()]
        since_text = params.get("changedSince", "")
        if not entities:
            raise err_required("entities")
        if not since_text:
            raise err_required("changedSince")
        unsupported = [e for e in entities if e != "Payment"]
        if unsupported:
            raise QBOError("500", "Unsupported Operation", f"The simulator's change data capture covers Payment "
                           f"only, not {', '.join(unsupported)}", None)
        try:
            since = _instant(since_text) if "T" in since_text else dt.datetime.combine(
                dt.date.fromisoformat(since_text), dt.time(), _pacific(self.clock.now()).tzinfo)
        except ValueError as exc:
            raise QBOError("2010", "Request has invalid or unsupported property",
                           f"Property Name:changedSince value '{since_text}' specified is unsupported or invalid",
                           "changedSince") from exc
        now = _pacific(self.clock.now())
        if since < now - dt.timedelta(days=CDC_LOOKBACK_DAYS):
            raise err_business(f"changedSince must be within the last {CDC_LOOKBACK_DAYS} days.", "changedSince")
        responses: list[dict[str, Any]] = []
        for entity in entities:
            live = [_public(r) for r in self._entities[entity].values()
                    if _instant(r["MetaData"]["LastUpdatedTime"]) >= since]
            live.sort(key=lambda r: _instant(r["MetaData"]["LastUpdatedTime"]))
            gone = [{"domain": "QBO", "status": "Deleted", "Id": d["Id"],
                     "MetaData": {"LastUpdatedTime": d["LastUpdatedTime"]}}
                    for d in self._state.get("deleted", {}).get(entity, [])
                    if _instant(d["LastUpdatedTime"]) >= since]
            found = (copy.deepcopy(live) + gone)[:CDC_MAX_OBJECTS]
            responses.append({entity: found, "startPosition": 1, "maxResults": len(found)} if found else {})
        return {"CDCResponse": [{"QueryResponse": responses}], "time": _iso_millis(self.clock.now())}
