"""A batch of created sales documents, decoded for what the sync reads of it and nothing more.

QBO answers each created Invoice or CreditMemo in full (~2 KB each: addresses, every line's detail, links).
The sync reads only the fields below (`Sender.confirm` and `mapping.reconciliation.reconcile`), so the answer is
decoded straight into those, about ten times faster than decoding the whole of it. An answer of any other shape
(a field of another type, an entity the sync did not create) is decoded whole instead, as any other answer is.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from cwqbo import money


class _Line(msgspec.Struct, omit_defaults=True):
    Amount: Any = None
    DetailType: Any = None


class _TaxDetail(msgspec.Struct, omit_defaults=True):
    TotalTax: Any = None


class _Document(msgspec.Struct, omit_defaults=True):
    Id: Any = None
    SyncToken: Any = None
    DocNumber: Any = None
    TotalAmt: Any = None
    Line: list[_Line] | None = None
    TxnTaxDetail: _TaxDetail | None = None


class _Item(msgspec.Struct, omit_defaults=True):
    bId: Any = None
    Invoice: _Document | None = None
    CreditMemo: _Document | None = None
    Fault: Any = None
    fault: Any = None


class _Answer(msgspec.Struct, omit_defaults=True):
    BatchItemResponse: list[_Item] | None = None
    Fault: Any = None
    fault: Any = None


_DECODER = msgspec.json.Decoder(_Answer, float_hook=Decimal)


def _plain(answer: _Answer) -> Any:
    """The decoded answer as the dicts `parse_batch` reads: absent fields left out (as QBO leaves them out, and as
    `omit_defaults` drops a None), amounts kept as the exact Decimals they were decoded to."""
    return msgspec.to_builtins(answer, builtin_types=(Decimal,))


def decode(content: bytes) -> Any:
    """A batch answer to created Invoices and CreditMemos, as `money.loads` would give it but for the unread fields.

    Each item must hold an Invoice, a CreditMemo or a Fault; otherwise the whole answer is decoded, so that nothing
    QuickBooks says is dropped unseen. ValueError when it is not JSON.
    """
    try:
        answer = _DECODER.decode(content)
    except msgspec.ValidationError:
        return money.loads(content)
    items = answer.BatchItemResponse or []
    if any(i.Invoice is None and i.CreditMemo is None and i.Fault is None and i.fault is None for i in items):
        return money.loads(content)  # an item answered with something else: the caller sees all of it
    return _plain(answer)
