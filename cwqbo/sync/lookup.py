"""One round of QBO reference lookups for a run: everything wanted is collected first, then sent together.

Names are compared the way QBO compares them (case-insensitively, ignoring surrounding space); ids cached in
`qbo_refs` are read back by id, so a record deleted or deactivated since is resolved again by its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cwqbo.mapping.customers import CustomerSpec
from cwqbo.mapping.text import clean_name
from cwqbo.quickbooks import query as q
from cwqbo.sync.ref_cache import RefCache

CHUNK = 50  # names per IN (...) list; keeps each statement short
ID_CHUNK = 300  # ids per IN (...) list: a whole slice of customers (numbers, shorter than the DocNumber probe)
KIND_ENTITY = {"customer": "Customer", "item": "Item", "taxcode": "TaxCode", "term": "Term", "class": "Class",
               "department": "Department"}
PEOPLE = ("Customer", "Vendor", "Employee")

Queries = Callable[[list[tuple[str, str]]], dict[str, list[dict[str, Any]]]]


@dataclass
class Found:
    id: str
    name: str
    active: bool
    data: dict[str, Any]


def fold(name: str) -> str:
    """QBO compares names case-insensitively and ignoring surrounding space."""
    return name.strip().casefold()


def safe_display_name(name: str) -> str:
    """QBO refuses ':' in a DisplayName (it separates parent:child); ≤ 500 characters; control characters
    become spaces, as tabs and newlines do (`mapping.clean_name`)."""
    if not name.isprintable():
        name = clean_name(name)
    return name.replace(":", " -").strip()[:500]


def fallback_name(spec: CustomerSpec) -> str:
    """The DisplayName used when the preferred one is taken (mapping decides it: 'Name (CW 17)')."""
    return safe_display_name(str(spec.fallback_name or f"{spec.display_name} (CW {spec.cw_company_id})"))


class Lookup:
    """One round of lookups: everything wanted is collected first, then sent as batched queries."""

    def __init__(self, cache: RefCache, queries: Queries) -> None:
        self.cache = cache
        self._queries = queries
        self.statements: list[tuple[str, str, str]] = []  # (purpose, entity, statement)
        self.cached: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KIND_ENTITY}
        self.verified: dict[str, set[str]] = {k: set() for k in KIND_ENTITY}
        self.names: dict[str, list[str]] = {k: [] for k in KIND_ENTITY}
        self.people: dict[str, tuple[str, Found]] = {}  # folded DisplayName → (entity, record)
        self.by_name: dict[str, dict[str, Found]] = {k: {} for k in KIND_ENTITY}
        self.by_id: dict[str, list[dict[str, Any]]] = {}  # kind → rows read back by cached id
        self.accounts: list[dict[str, Any]] = []
        self.preferences: dict[str, Any] = {}
        self.country: str | None = None
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._sent = 0  # statements already run

    def _add(self, purpose: str, entity: str, conditions: list[str]) -> None:
        self.statements.append((purpose, entity, q.select(entity, conditions)))

    def _by_id(self, kind: str, ids: list[str]) -> None:
        entity = KIND_ENTITY[kind]
        for start in range(0, len(ids), ID_CHUNK):
            self._add(f"id:{kind}", entity, [q.in_("Id", ids[start:start + ID_CHUNK]), "Active IN (true, false)"])

    def add_customers(self, specs: dict[str, CustomerSpec]) -> None:
        """Read back the customers cached for these companies by id (still there and active?)."""
        cached = self.cache.cached("customer", specs)
        self.cached["customer"] = cached
        if cached:
            self._by_id("customer", sorted({row["qbo_id"] for row in cached.values()}))

    def add_customer_names(self, specs: dict[str, CustomerSpec]) -> None:
        """Look up by DisplayName the companies whose cached customer was not verified (or who have none):
        among customers only; a vendor or employee holding a name is learnt from QBO's 6240 when creating."""
        names: set[str] = set()
        for key, spec in specs.items():
            if key in self.verified["customer"]:
                continue
            name = safe_display_name(str(spec.display_name))
            names.update({name, fallback_name(spec)})
            row = self.cached["customer"].get(key)
            if row is not None and row["name"]:
                names.add(row["name"])
        self.add_people(sorted(names), entities=("Customer",))

    def add_people(self, names: list[str], entities: tuple[str, ...] = PEOPLE) -> None:
        for entity in entities:
            for start in range(0, len(names), CHUNK):
                self._add("people", entity, [q.in_("DisplayName", names[start:start + CHUNK]),
                                             "Active IN (true, false)"])

    def add_names(self, kind: str, names: list[str], *, use_cache: bool = True) -> None:
        """Read back these names' cached ids; `add_unverified_names` then looks up by name what that did not verify
        (all of them when nothing is cached)."""
        if not names:
            return
        self.names[kind] = list(names)
        cached = self.cache.cached(kind, names) if use_cache else {}
        self.cached[kind] = cached
        if cached:
            self._by_id(kind, sorted({row["qbo_id"] for row in cached.values()}))
        else:
            self.add_unverified_names(kind)

    def add_unverified_names(self, kind: str) -> None:
        """Look up by Name the wanted names of `kind` whose cached id was not verified."""
        wanted = [n for n in self.names[kind] if n not in self.verified[kind]]
        leaves = sorted({n.rsplit(":", 1)[-1].strip() for n in wanted})
        for start in range(0, len(leaves), CHUNK):
            self._add(f"name:{kind}", KIND_ENTITY[kind], [q.in_("Name", leaves[start:start + CHUNK])])

    def want_accounts(self) -> None:
        self._add("accounts", "Account", [q.eq("AccountType", "Income")])

    def want_preferences(self, *, need_country: bool) -> None:
        self._add("preferences", "Preferences", [])
        if need_country:
            self._add("companyinfo", "CompanyInfo", [])

    def run(self) -> None:
        """Send the statements added since the last run (a few at once) and take their rows."""
        todo = self.statements[self._sent:]
        self._sent = len(self.statements)
        if not todo:
            return
        rows = self._queries([(entity, text) for _, entity, text in todo])
        for i, (purpose, entity, _) in enumerate(todo):
            self._take(purpose, entity, rows.get(f"q{i}", []))
        stale: dict[str, list[str]] = {}
        for kind, cached in self.cached.items():
            gone = [key for key in cached if key not in self.verified[kind]]
            if gone and any(p == f"id:{kind}" for p, _, _ in todo):
                stale[kind] = gone
        if stale:  # deleted or deactivated since we cached them: resolve those by name again
            for kind, keys in stale.items():
                for key in keys:
                    self.cache.stale[(kind, key)] = str(self.cached[kind][key]["qbo_id"])
                self.cache.forget(kind, keys)

    def _take(self, purpose: str, entity: str, rows: list[dict[str, Any]]) -> None:
        if purpose.startswith("id:"):
            kind = purpose[3:]
            self.by_id.setdefault(kind, []).extend(rows)
            live = {str(r["Id"]) for r in rows if r.get("Active", True) is not False}
            for key, row in self.cached[kind].items():
                if row["qbo_id"] in live:
                    self.verified[kind].add(key)
        elif purpose == "people":
            for r in rows:
                found = Found(str(r["Id"]), str(r.get("DisplayName", "")), r.get("Active", True) is not False, r)
                prev = self.people.get(fold(found.name))
                if prev is None or (prev[0] != "Customer" and entity == "Customer"):
                    self.people[fold(found.name)] = (entity, found)
        elif purpose.startswith("name:"):
            kind = purpose[5:]
            for r in rows:
                if r.get("Active", True) is False:
                    continue
                full = str(r.get("FullyQualifiedName") or r.get("Name", ""))
                found = Found(str(r["Id"]), full, True, r)
                self.by_name[kind].setdefault(fold(full), found)
        elif purpose == "accounts":
            self.accounts.extend(rows)
        elif purpose == "preferences" and rows:
            self.preferences = rows[0]
        elif purpose == "companyinfo" and rows:
            self.country = str(rows[0].get("Country") or "").upper() or None

    def item_taxable(self, item_id: str) -> bool | None:
        for found in self.by_name["item"].values():
            if found.id == item_id and "Taxable" in found.data:
                return bool(found.data["Taxable"])
        return None

    def person(self, name: str) -> tuple[str, Found] | None:
        return self.people.get(fold(name))

    def ids(self, kind: str) -> dict[str, str]:
        """Wanted name → id, from verified cache entries first, then from the name lookup."""
        out: dict[str, str] = {}
        remember: list[tuple[str, str, str, dict[str, Any]]] = []
        for name in self.names[kind]:
            row = self.cached[kind].get(name)
            if row is not None and name in self.verified[kind]:
                out[name] = row["qbo_id"]
                continue
            found = self.by_name[kind].get(fold(name))
            if found is not None:
                out[name] = found.id
                remember.append((name, found.id, found.name, {}))
        self.cache.remember(kind, remember)
        return out

    def income_account(self) -> str | None:
        """The Services income account if there is one, else a sales income account, else any income account."""
        def rank(a: dict[str, Any]) -> tuple[int, str]:
            sub, name = str(a.get("AccountSubType", "")), str(a.get("Name", "")).casefold()
            if sub == "ServiceFeeIncome" or name == "services":
                return 0, name
            if "sales" in name or sub == "SalesOfProductIncome":
                return 1, name
            return 2, name
        live = [a for a in self.accounts if a.get("Active", True) is not False]
        return str(min(live, key=rank)["Id"]) if live else None
