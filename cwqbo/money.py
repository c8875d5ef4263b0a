"""Exact money handling: Decimal in, Decimal out, never float."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")


def to_decimal(value: Any) -> Decimal:
    """Convert an API value (str, int, Decimal; never float) to Decimal exactly."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, float):
        # A float here means someone parsed JSON without parse_float=Decimal: refuse loudly.
        raise TypeError(f"refusing float amount {value!r}: parse JSON with parse_float=Decimal")
    if value is None or value == "":
        return Decimal("0")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def round_cents(value: Decimal) -> Decimal:
    """Round half-up to cents, the way invoices are printed (not banker's rounding)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(value: Decimal) -> int:
    """Integer cents for storage; the value must already be whole cents."""
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{value} is not a whole number of cents")
    return int(cents)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def money_str(value: Decimal) -> str:
    """Two-decimal string for display and --json output."""
    return str(round_cents(value))


def loads(text: str | bytes) -> Any:
    """json.loads with every non-integer number as Decimal."""
    return json.loads(text, parse_float=Decimal)


def _encode(obj: Any, out: list[str]) -> None:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"cannot encode {obj} as JSON")
        out.append(format(obj, "f"))
    elif isinstance(obj, dict):
        out.append("{")
        for i, (key, val) in enumerate(obj.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode(val, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, val in enumerate(obj):
            if i:
                out.append(",")
            _encode(val, out)
        out.append("]")
    elif isinstance(obj, float):
        raise TypeError(f"refusing float {obj!r} in a money payload: use Decimal")
    else:
        out.append(json.dumps(obj, ensure_ascii=False))


def dumps(obj: Any) -> str:
    """Compact JSON that writes Decimal as exact numbers (json's encoder would go through float)."""
    out: list[str] = []
    _encode(obj, out)
    return "".join(out)
