"""The committed QBO limits table must match what Intuit's API-reference metadata says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cwqbo.quickbooks import limits as qbo_limits

DUMP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "qbo" / "qbTypesDump.json"


@pytest.mark.skipif(not DUMP.exists(), reason="../shared/data/qbo not present")
def test_committed_table_matches_a_fresh_derivation() -> None:
    derived = qbo_limits.derive(json.loads(DUMP.read_text(encoding="utf-8")))
    assert derived == qbo_limits.TABLE, "regenerate: python -m cwqbo.quickbooks.limits <qbTypesDump.json>"


def test_limits_the_sync_depends_on() -> None:
    inv = qbo_limits.MAX_LENGTHS["Invoice"]
    assert inv["DocNumber"] == 21
    assert inv["PrivateNote"] == 4000
    assert inv["CustomerMemo.value"] == 1000
    assert inv["Line.Description"] == 4000
    assert qbo_limits.MAX_LENGTHS["Customer"]["DisplayName"] == 500
    assert qbo_limits.MAX_LENGTHS["Item"]["Name"] == 100
    assert qbo_limits.REQUIRED["Invoice"] == ["CustomerRef", "Line"]
