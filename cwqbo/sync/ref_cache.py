"""The per-realm cache of QBO ids cwqbo resolved (`qbo_refs`): customers by CW company, items, tax codes, …

A cached id is only a hint: each run reads it back by id (`lookup.Lookup`) before using it, and one found gone
is forgotten and its key noted in `stale`, so re-creating it never collides with an old requestid.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from cwqbo.mapping.refs import CompanyFacts
from cwqbo.state.store import Store, utc_iso


def stored_company_facts(store: Store, realm: str) -> CompanyFacts | None:
    """The connected company's country and currency preferences as the last sync read them (None: never read).

    For `mapping.readiness` outside a run (list-unsynced, check-permissions), which must judge invoices against
    the same company the sync maps them for.
    """
    if "qbo_refs" not in store.db.table_names():
        return None
    for row in store.db.query("select data from qbo_refs where realm = ? and kind = 'company' and key = 'facts'",
                              [realm]):
        data = json.loads(row["data"] or "{}")
        return CompanyFacts(country=data.get("country") or None, home_currency=data.get("home_currency") or None,
                            multicurrency=bool(data.get("multicurrency")))
    return None


class RefCache:
    """`qbo_refs` rows of one realm. A dry run reads but never writes."""

    def __init__(self, store: Store, realm: str) -> None:
        self.store = store
        self.realm = realm
        self.dry_run = False
        self.stale: dict[tuple[str, str], str] = {}  # (kind, key) → cached id found deleted/inactive this run

    def _present(self) -> bool:
        return "qbo_refs" in self.store.db.table_names()

    def cached(self, kind: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(keys)
        if not keys or not self._present():
            return {}
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            marks = ",".join("?" for _ in part)
            for row in self.store.db.query(
                    f"select key, qbo_id, name, data from qbo_refs where realm = ? and kind = ? and key in ({marks})",
                    [self.realm, kind, *part]):
                rows[row["key"]] = row
        return rows

    def remember(self, kind: str, entries: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        if not entries or self.dry_run:
            return
        now = utc_iso()
        with self.store.transaction():
            self.store.db.table("qbo_refs").upsert_all(
                [{"realm": self.realm, "kind": kind, "key": key, "qbo_id": qid, "name": name,
                  "data": json.dumps(data, sort_keys=True), "updated_at": now} for key, qid, name, data in entries],
                pk=("realm", "kind", "key"))

    def forget(self, kind: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys and not self.dry_run and self._present():
            with self.store.transaction():
                for key in keys:
                    self.store.db.execute("delete from qbo_refs where realm = ? and kind = ? and key = ?",
                                          [self.realm, kind, key])

    def claimed_customers(self, qbo_ids: list[str]) -> dict[str, str]:
        """QBO customer id → the CW company key an earlier run tied it to, for these ids."""
        if not qbo_ids or not self._present():
            return {}
        out: dict[str, str] = {}
        for start in range(0, len(qbo_ids), 500):
            part = qbo_ids[start:start + 500]
            marks = ",".join("?" for _ in part)
            for row in self.store.db.query(
                    f"select key, qbo_id from qbo_refs where realm = ? and kind = 'customer' and qbo_id in ({marks})",
                    [self.realm, *part]):
                out[row["qbo_id"]] = row["key"]
        return out
