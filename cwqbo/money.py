"""Exact money handling: Decimal in, Decimal out, never float."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any

import msgspec

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


def money_str(value: Decimal) -> str:
    """Two-decimal string for display and --json output."""
    return str(round_cents(value))


# msgspec's decoder, not the stdlib's: every ConnectWise page and QBO answer goes through here, and msgspec parses
# them in about two thirds of json's time (the Decimal hook included). Its DecodeError is a ValueError, as json's is.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as an exact Decimal (UTF-8, as both APIs send).

    Stricter than json.loads: NaN and Infinity, which no API sends and no amount can be, are refused.
    """
    return _DECODER.decode(text)


def _encode(obj: Any, out: list[str]) -> None:
    # Exact types first (the hot path: every cached invoice and QBO payload goes through here), then the
    # subclasses and odd leaves the slower checks below catch.
    t = type(obj)
    if t is str:
        out.append(encode_basestring(obj))
    elif t is Decimal:
        if not obj.is_finite():
            raise ValueError(f"cannot encode {obj} as JSON")
        out.append(format(obj, "f"))
    elif t is dict:
        out.append("{")
        first = True
        for key, val in obj.items():
            if not first:
                out.append(",")
            first = False
            out.append(encode_basestring(str(key)))
            out.append(":")
            _encode(val, out)
        out.append("}")
    elif t is list or t is tuple:
        out.append("[")
        for i, val in enumerate(obj):
            if i:
                out.append(",")
            _encode(val, out)
        out.append("]")
    elif obj is None:
        out.append("null")
    elif t is bool:
        out.append("true" if obj else "false")
    elif t is int:
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        raise TypeError(f"refusing float {obj!r} in a money payload: use Decimal")
    elif isinstance(obj, Decimal):
        _encode(Decimal(obj), out)
    elif isinstance(obj, dict):
        _encode(dict(obj), out)
    elif isinstance(obj, (list, tuple)):
        _encode(list(obj), out)
    else:
        out.append(json.dumps(obj, ensure_ascii=False))


def dumps(obj: Any) -> str:
    """Compact JSON that writes Decimal as exact numbers (json's encoder would go through float)."""
    out: list[str] = []
    _encode(obj, out)
    return "".join(out)


def number_literal(value: Any) -> str | None:
    """An exact number as query text (both APIs' grammars agree): true/false, digits, a plain-digit Decimal.

    None for anything else, a non-finite Decimal included: each query language refuses that in its own words.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    return None
