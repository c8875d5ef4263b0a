"""The QBO token set as stored (secrets) and used (oauth)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str
    access_expires_at: float  # epoch seconds
    refresh_expires_at: float  # rolling 100-day expiry
    refresh_hard_expires_at: float | None = None  # Intuit's 5-year hard expiry, when reported
    realm_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TokenSet":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})  # type: ignore[arg-type]

    def __repr__(self) -> str:  # never leak tokens through logs or tracebacks
        return f"TokenSet(realm_id={self.realm_id!r}, access_expires_at={self.access_expires_at})"
