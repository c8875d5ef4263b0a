"""Small value helpers of the simulated QBO: Pacific timestamps, Decimal parsing, references, JSON-safe state.

Pure functions, shared by the seed data, the OAuth endpoints and the entity API.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from cwqbo import money
from cwqbo.sandbox.quickbooks.errors import QBOError
from cwqbo.sandbox.quickbooks.schema import NUMERIC_FIELDS

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


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _id_sort(value: str) -> tuple[int, Any]:
    n = _int_or_none(value)
    return (0, n) if n is not None else (1, value)

