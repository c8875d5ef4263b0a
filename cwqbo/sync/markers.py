"""The `cwqbo:{cw_id}` marker in a QBO document's PrivateNote: how a later run recognises a document as ours."""

from __future__ import annotations

import re
from typing import Any

from cwqbo.quickbooks.limits import MAX_LENGTHS

MARKER_RE = re.compile(r"cwqbo:(\d+)")
PRIVATE_NOTE_MAX = MAX_LENGTHS["Invoice"]["PrivateNote"]  # CreditMemo's is the same


def marker(cw_id: int) -> str:
    return f"cwqbo:{cw_id}"


def with_marker(payload: dict[str, Any], cw_id: int) -> dict[str, Any]:
    """Payload whose PrivateNote ends with our marker, so a later run can recognise the document as ours."""
    tag = marker(cw_id)
    note = str(payload.get("PrivateNote") or "")
    if MARKER_RE.search(note) and owner_of(note) == cw_id:
        return payload
    suffix = f" [{tag}]" if note else tag
    note = note[: PRIVATE_NOTE_MAX - len(suffix)] + suffix
    return {**payload, "PrivateNote": note}


def owner_of(private_note: Any) -> int | None:
    """The CW invoice id a QBO document's marker names, if any."""
    m = MARKER_RE.search(str(private_note or ""))
    return int(m.group(1)) if m else None
