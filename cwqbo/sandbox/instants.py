"""Timestamps as both APIs write them ('2026-09-01T17:30:00Z', '…-08:00'): parsed to aware instants."""

from __future__ import annotations

import datetime as dt
from typing import Any


def instant(value: Any) -> dt.datetime | None:
    """An ISO-8601 date or date-time as an aware instant (UTC when no offset is given); None when it isn't one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
