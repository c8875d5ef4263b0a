"""The payments run's public data: what it is given (deps, options, the remote calls) and what it reports.

`Remote` is the seam between the engine and the two services: `ClientRemote` puts it over the real clients
(`connectwise/payments.py`, `quickbooks/payments.py`); unit tests pass an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cwqbo.clock import Clock
from cwqbo.settings.prefs import Prefs
from cwqbo.state.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.connectwise.client import CWClient
    from cwqbo.quickbooks.client import QBOClient

PaymentOutcome = Literal["posted", "adopted", "reversed", "failed", "waiting", "would-post", "would-reverse"]


class Remote(Protocol):
    """The calls a payments run makes: ConnectWise invoice payments and QuickBooks payments."""

    def invoice(self, invoice_id: int) -> dict[str, Any]: ...

    def invoice_payments(self, invoice_id: int) -> list[dict[str, Any]]: ...

    def add_payment(self, invoice_id: int, *, type: str, amount: Decimal, payment_date: date,
                    credit_invoice_id: int | None) -> dict[str, Any]: ...

    def delete_payment(self, invoice_id: int, payment_id: int) -> None: ...

    def payments_changed_since(self, since: str | None) -> list[dict[str, Any]]: ...

    def deleted_payment_ids_since(self, since: str) -> list[str]: ...

    def read_payment(self, payment_id: str) -> dict[str, Any] | None: ...

    def qbo_balance(self, entity: str, qbo_id: str) -> Decimal | None: ...

    def payment_method_name(self, method_id: str) -> str | None: ...


class ClientRemote:
    """`Remote` over the real clients (the POST is never retried by the client once it may have landed)."""

    def __init__(self, cw: CWClient, qbo: QBOClient) -> None:
        self.cw = cw
        self.qbo = qbo

    def invoice(self, invoice_id: int) -> dict[str, Any]:
        from cwqbo.connectwise import payments as cwpay
        return cwpay.invoice(self.cw, invoice_id)

    def invoice_payments(self, invoice_id: int) -> list[dict[str, Any]]:
        from cwqbo.connectwise import payments as cwpay
        return cwpay.invoice_payments(self.cw, invoice_id)

    def add_payment(self, invoice_id: int, *, type: str, amount: Decimal, payment_date: date,
                    credit_invoice_id: int | None) -> dict[str, Any]:
        from cwqbo.connectwise import payments as cwpay
        return cwpay.add_invoice_payment(self.cw, invoice_id, type=type, amount=amount, payment_date=payment_date,
                                         applied_by=None, credit_invoice_id=credit_invoice_id)

    def delete_payment(self, invoice_id: int, payment_id: int) -> None:
        from cwqbo.connectwise import payments as cwpay
        cwpay.delete_invoice_payment(self.cw, invoice_id, payment_id)

    def payments_changed_since(self, since: str | None) -> list[dict[str, Any]]:
        from cwqbo.quickbooks import payments as qbopay
        return qbopay.payments_changed_since(self.qbo, since)

    def deleted_payment_ids_since(self, since: str) -> list[str]:
        from cwqbo.quickbooks import payments as qbopay
        return qbopay.deleted_payment_ids_since(self.qbo, since)

    def read_payment(self, payment_id: str) -> dict[str, Any] | None:
        from cwqbo.quickbooks import payments as qbopay
        return qbopay.read_payment(self.qbo, payment_id)

    def qbo_balance(self, entity: str, qbo_id: str) -> Decimal | None:
        value = self.qbo.read(entity, qbo_id).obj.get("Balance")
        return None if value is None else Decimal(str(value))

    def payment_method_name(self, method_id: str) -> str | None:
        name = self.qbo.read("PaymentMethod", method_id).obj.get("Name")
        return str(name) if name else None


@dataclass
class PaymentDeps:
    store: Store
    remote: Remote
    prefs: Prefs
    realm: str = ""
    clock: Clock = field(default_factory=Clock)
    calls: Callable[[], tuple[int, int]] | None = None  # (CW calls, QBO calls) so far, for the report


@dataclass(frozen=True)
class PaymentOptions:
    dry_run: bool = False
    trigger: str = "payments"  # as history shows the run
    quiet_repeats: bool = False  # cron (`sync --all`): a failure reported before, unchanged, is "waiting"


@dataclass(frozen=True)
class PaymentItem:
    """One CW payment's outcome in a run."""

    qbo_payment_id: str
    cw_invoice_id: int
    invoice_number: str
    amount: Decimal
    payment_date: str
    type: str
    outcome: PaymentOutcome
    credit_cw_id: int = 0
    cw_payment_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Mismatch:
    """A touched invoice whose ConnectWise balance differs from its QuickBooks balance after the run."""

    cw_invoice_id: int
    invoice_number: str
    cw_balance: Decimal | None
    qbo_balance: Decimal | None

    @property
    def difference(self) -> Decimal | None:
        if self.cw_balance is None or self.qbo_balance is None:
            return None
        return self.cw_balance - self.qbo_balance


@dataclass
class PaymentsReport:
    run_id: int | None
    dry_run: bool = False
    status: str = "ok"  # ok | partial | failed
    items: list[PaymentItem] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    recovered: int = 0
    read: int = 0  # QBO payments read this run
    watermark: str | None = None
    message: str | None = None
    cw_calls: int = 0
    qbo_calls: int = 0
    duration: float = 0.0

    def count(self, *outcomes: str) -> int:
        return sum(1 for i in self.items if i.outcome in outcomes)

    @property
    def posted(self) -> int:
        return self.count("posted", "adopted")

    @property
    def reversed(self) -> int:
        return self.count("reversed")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def waiting(self) -> int:
        return self.count("waiting")

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.mismatches
