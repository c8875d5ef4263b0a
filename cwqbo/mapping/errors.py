"""MappingError: why an invoice cannot become a QBO document as configured, and the readiness status it earns.

Every mapping module raises it; the sync engine records `explained()`, and list-unsynced shows `status`.
"""

from __future__ import annotations

from typing import Literal

from cwqbo.errors import CwqboError
from cwqbo.mapping.text import one_line

Readiness = Literal["ready", "needs a customer", "needs an item", "needs a tax code", "kept for review", "invalid"]


class MappingError(CwqboError):
    """An invoice that cannot become a QBO document as configured; `reason` says why, `fix` what to change."""

    def __init__(self, reason: str, fix: str = "", *, status: Readiness = "invalid") -> None:
        # CW text (invoice numbers, item keys) can hold newlines/control characters: keep the message one line
        reason, fix = one_line(reason), one_line(fix)
        super().__init__(reason, hint=fix or None)
        self.reason = reason
        self.fix = fix
        self.status: Readiness = status  # how list-unsynced / check-permissions classify it

    def explained(self) -> str:
        """Reason and fix on one line: what the sync summary and history show the operator."""
        return f"{self.reason} — fix: {self.fix}" if self.fix else self.reason
