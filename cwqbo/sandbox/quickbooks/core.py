"""What every part of the simulated QBO shares: its state, the views over it, and the steps each mixin calls.

`QBOSimulator` is assembled from one mixin per concept (OAuth, throttling, batch, writes, name lists,
transactions). Each mixin derives from `SimulatorCore`, so the state it reads and the methods a sibling
provides are declared once, here, and a type checker can follow every `self.` call across mixins.
"""

from __future__ import annotations

import copy
import threading
from abc import ABC, abstractmethod
from collections import deque
from decimal import Decimal
from typing import Any

from cwqbo.clock import Clock
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.errors import err_bad_ref, err_business, err_not_found
from cwqbo.sandbox.quickbooks.schema import _READ_ONLY
from cwqbo.sandbox.quickbooks.values import _present, _ref_value

View = dict[str, dict[str, dict[str, Any]]]
"""Entity name → Id → stored object: the live tables, or a batch's snapshot of them."""

# CurrencyRef.name of the seeded home currencies (the recorded US sandbox objects carry "United States Dollar")
CURRENCY_NAMES = {"USD": "United States Dollar", "CAD": "Canadian Dollar", "GBP": "British Pound Sterling",
                  "AUD": "Australian Dollar"}


class SimulatorCore(ABC):
    """State and cross-mixin steps of `QBOSimulator`; the abstract methods are each provided by one mixin."""

    # Set by QBOSimulator.__init__ / from_state.
    clock: Clock
    faults: Faults
    client_id: str
    client_secret: str
    redirect_uris: list[str] | None
    admin_name: str
    realm_id: str
    country: str
    _state: dict[str, Any]
    _lock: threading.RLock
    _requests: deque[float]
    _batches: deque[float]

    # -- views over the state -------------------------------------------------------------------------

    @property
    def _entities(self) -> View:
        entities: View = self._state["entities"]
        return entities

    @property
    def preferences(self) -> dict[str, Any]:
        prefs: dict[str, Any] = self._entities["Preferences"]["1"]
        return prefs

    @property
    def custom_txn_numbers(self) -> bool:
        return bool(self.preferences["SalesFormsPrefs"].get("CustomTxnNumbers"))

    # -- provided by a mixin or by QBOSimulator -------------------------------------------------------

    @abstractmethod
    def _run_query(self, text: str, view: View) -> dict[str, Any]:
        """A query's QueryResponse over `view` (QBOSimulator)."""

    @abstractmethod
    def _write(self, entity: str, payload: dict[str, Any], operation: str, allow_dup: bool,
               view: View) -> tuple[dict[str, Any], bool]:
        """Create, update, delete or void (WritesMixin)."""

    @abstractmethod
    def _build_txn(self, entity: str, payload: dict[str, Any], existing: dict[str, Any] | None, allow_dup: bool,
                   view: View) -> dict[str, Any]:
        """A sales transaction as it will be stored (TransactionsMixin)."""

    @abstractmethod
    def _payments_applied(self, entity: str, id_: str) -> Decimal:
        """What live Payments apply to an Invoice or CreditMemo: its Balance is TotalAmt less this (PaymentsMixin)."""

    @abstractmethod
    def _payment_links(self, id_: str) -> list[dict[str, Any]]:
        """The Invoice's LinkedTxn entries for the Payments applied to it (PaymentsMixin)."""

    @abstractmethod
    def _build_customer(self, payload: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        """A customer as it will be stored (NameListsMixin)."""

    @abstractmethod
    def _build_vendor(self, payload: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        """A vendor as it will be stored (NameListsMixin)."""

    @abstractmethod
    def _build_item(self, payload: dict[str, Any], existing: dict[str, Any] | None, view: View) -> dict[str, Any]:
        """An item as it will be stored (NameListsMixin)."""

    # -- building steps every builder uses ------------------------------------------------------------

    def _resolve(self, view: View, entity: str, ref: Any, kind: str, must_be_active: bool = True) -> dict[str, Any]:
        """The object a reference (CustomerRef, ItemRef, …) points at, or the fault QBO gives for a bad one."""
        value = _ref_value(ref)
        obj = view.get(entity, {}).get(str(value)) if value is not None else None
        if obj is None:
            raise err_bad_ref(kind, value)
        if must_be_active and not obj.get("Active", True):
            raise err_not_found()
        return obj

    def _passthrough(self, payload: dict[str, Any]) -> dict[str, Any]:
        """What the client sent that is stored as sent: every present, writable property."""
        return {k: copy.deepcopy(v) for k, v in payload.items() if k not in _READ_ONLY and _present(v)}

    def _currency(self, code: str | None = None) -> dict[str, str]:
        """A CurrencyRef: `code`, else the home currency (Preferences.CurrencyPrefs.HomeCurrency)."""
        home: str = self.preferences["CurrencyPrefs"]["HomeCurrency"]["value"]
        code = code or home
        return {"value": code, "name": CURRENCY_NAMES.get(code, code)}

    def _currency_of(self, sent: Any, *, element: str) -> dict[str, str]:
        """The currency a name-list record or transaction is in, as sent in its CurrencyRef.

        Intuit (qbTypesDump, Invoice.CurrencyRef): currency references apply "if multicurrency is enabled for the
        company"; Customer.CurrencyRef: "If not specified, currency for this customer is the home currency". With
        multicurrency off a CurrencyRef other than the home currency is refused. Intuit's exact error text for
        this is not in any source we hold: the generic business-validation fault (6000) is used.
        """
        code = str(_ref_value(sent) or "").upper() or None
        home = self.preferences["CurrencyPrefs"]["HomeCurrency"]["value"]
        if code and code != home and not self.preferences["CurrencyPrefs"].get("MultiCurrencyEnabled"):
            raise err_business(f"Multicurrency is not turned on for this company: {element} must be in the home "
                               f"currency {home}, not {code}.", element)
        return self._currency(code)
