"""Resolving the QBO references a set of invoices needs (customers, items, tax codes, terms, …) in bulk.

Why bulk: resolving one invoice at a time costs a query per customer and item and burns QBO's
500-requests-a-minute budget. Here every distinct name across all invoices is looked up with
`IN (...)` queries packed into one batch call, ids are cached per realm in `qbo_refs` (and
re-verified by id each run, so a deleted or deactivated record is resolved again by its stored
name), and missing customers/items are created with batch calls whose `requestid` is derived from
what they create, so a crash or a retry never makes a second copy.

Customer names: QBO DisplayNames are unique across customers, vendors and employees
(case-insensitively, inactive records included) and may not contain ':'. One CW company maps to one
QBO customer (cached by CW company id). A name held by a vendor or employee, or by a customer already
tied to another CW company, makes the company use `CustomerSpec.fallback_name`
(`mapping.disambiguated_name`, e.g. 'Northwind Traders (CW 17)').
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cwqbo.errors import RemoteError
from cwqbo.mapping.customers import CustomerSpec
from cwqbo.mapping.refs import CompanyFacts, ItemRef, Needs, Refs, company_facts
from cwqbo.mapping.text import clean_name
from cwqbo.settings.prefs import Prefs
from cwqbo.quickbooks import query as q
from cwqbo.quickbooks.client import BatchItemResult, BatchOp

# Fixed forever: changing it would change the requestids of customer/item creates.
NAMESPACE = uuid.UUID("0b9f6a52-7c1d-4e8a-a3f4-2d5e6c7b8a90")
BATCH_SIZE = 30  # Intuit's per-call batch limit
CHUNK = 50  # names per IN (...) list; keeps each statement short
NEW_ID = "(new)"  # the id a dry run gives a reference it would create

KIND_ENTITY = {"customer": "Customer", "item": "Item", "taxcode": "TaxCode", "term": "Term", "class": "Class",
               "department": "Department"}
PEOPLE = ("Customer", "Vendor", "Employee")


class QBOLike(Protocol):
    """What the resolver needs from `quickbooks.client.QBOClient`."""

    def batch(self, items: list[BatchOp], request_id: str | None = None) -> dict[str, BatchItemResult]: ...


@dataclass(frozen=True)
class WouldCreate:
    kind: str  # "customer" | "item"
    name: str


@dataclass(frozen=True)
class Created:
    kind: str
    name: str
    qbo_id: str


@dataclass
class ResolveResult:
    refs: dict[int, Refs]  # cw_id → the ids mapping needs
    errors: dict[int, str]  # cw_id → one-line reason the invoice can't be mapped
    would_create: list[WouldCreate] = field(default_factory=list)
    created: list[Created] = field(default_factory=list)
    calls_used: int = 0
    preferences: dict[str, Any] = field(default_factory=dict)  # QBO Preferences read while resolving


@dataclass
class _Found:
    id: str
    name: str
    active: bool
    data: dict[str, Any]


def _names(value: Any) -> list[str]:
    """Needs fields may be a set, list, dict (keys) or a single name; normalise to a list of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def _fold(name: str) -> str:
    """QBO compares names case-insensitively and ignoring surrounding space."""
    return name.strip().casefold()


def safe_display_name(name: str) -> str:
    """QBO refuses ':' in a DisplayName (it separates parent:child); ≤ 500 characters; control characters
    become spaces, as tabs and newlines do (`mapping.clean_name`)."""
    if not name.isprintable():
        name = clean_name(name)
    return name.replace(":", " -").strip()[:500]


def stored_company_facts(store: Any, realm: str) -> CompanyFacts | None:
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


def fallback_name(spec: CustomerSpec) -> str:
    """The DisplayName used when the preferred one is taken (mapping decides it: 'Name (CW 17)')."""
    return safe_display_name(str(spec.fallback_name or f"{spec.display_name} (CW {spec.cw_company_id})"))


def company_key(spec: CustomerSpec) -> str:
    """Cache key of a CW company: its id, so a rename in CW keeps the same QBO customer."""
    return str(spec.cw_company_id)


def _company_order(specs: dict[str, CustomerSpec]) -> Any:
    """Lowest CW company id first: when two companies share a name, the older one keeps it, every run."""
    def order(key: str) -> tuple[int, str]:
        return specs[key].cw_company_id, key
    return order


class Resolver:
    """Resolves `mapping.Needs` for many invoices to `mapping.Refs` with a handful of QBO calls."""

    def __init__(self, qbo: QBOLike, store: Any, realm: str, prefs: Prefs, *, country: str | None = None) -> None:
        self.qbo = qbo
        self.store = store
        self.realm = realm
        self.prefs = prefs
        self.country = country.upper() if country else None
        self._own_calls = 0
        self._dry_run = False
        self._stale: dict[tuple[str, str], str] = {}  # (kind, key) → cached id found deleted/inactive this run
        self._currency_of: dict[str, str] = {}  # QBO customer id → its CurrencyRef.value
        self.facts = CompanyFacts(country=self.country)
        self._start_calls = self._client_calls()

    # -- accounting --------------------------------------------------------------------------

    def _client_calls(self) -> int | None:
        calls = getattr(self.qbo, "calls", None)
        if isinstance(calls, int):
            return calls
        if isinstance(calls, list | tuple):
            return len(calls)
        return None

    @property
    def calls_used(self) -> int:
        """QBO HTTP calls this resolver made (the client's counter when it has one)."""
        now = self._client_calls()
        if now is not None and self._start_calls is not None:
            return now - self._start_calls
        return self._own_calls

    def _batch(self, ops: list[BatchOp], request_id: str | None = None) -> dict[str, BatchItemResult]:
        self._own_calls += 1
        return dict(self.qbo.batch(ops, request_id=request_id))

    def _queries(self, statements: list[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
        """Run (entity, statement) queries as batch items, ≤ 30 a call; rows per statement index."""
        out: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(statements), BATCH_SIZE):
            part = statements[start:start + BATCH_SIZE]
            results = self._batch([BatchOp.select(f"q{start + i}", text) for i, (_, text) in enumerate(part)])
            for i in range(len(part)):
                bid = f"q{start + i}"
                res = results.get(bid)
                if res is None or not res.ok:
                    why = str(res.faults[0]) if res is not None else "no answer"
                    code = res.faults[0].code if res is not None else None
                    raise RemoteError(f"QuickBooks Online refused a lookup query: {why}", code=code,
                                      tid=res.tid if res is not None else None)
                out[bid] = list(res.rows or [])
        return out

    # -- cache -------------------------------------------------------------------------------

    def _cached(self, kind: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(keys)
        if not keys or "qbo_refs" not in self.store.db.table_names():
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

    def _remember(self, kind: str, entries: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        if not entries or self._dry_run:
            return
        from cwqbo.state.store import utc_iso
        now = utc_iso()
        with self._tx():
            self.store.db["qbo_refs"].upsert_all(
                [{"realm": self.realm, "kind": kind, "key": key, "qbo_id": qid, "name": name,
                  "data": json.dumps(data, sort_keys=True), "updated_at": now} for key, qid, name, data in entries],
                pk=("realm", "kind", "key"))

    def _forget(self, kind: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys and not self._dry_run and "qbo_refs" in self.store.db.table_names():
            with self._tx():
                for key in keys:
                    self.store.db.execute("delete from qbo_refs where realm = ? and kind = ? and key = ?",
                                          [self.realm, kind, key])

    def _tx(self) -> Any:
        """The store's committed transaction (so nothing is left pending on the shared connection)."""
        tx = getattr(self.store, "transaction", None)
        return tx() if tx is not None else self.store.db.atomic()

    # -- the public entry point --------------------------------------------------------------

    def resolve(self, needs: Mapping[int, Needs], *, create: bool = True, dry_run: bool = False) -> ResolveResult:
        """Refs for every invoice that can be mapped, a reason for every one that can't."""
        write = create and not dry_run
        self._dry_run = dry_run
        result = ResolveResult(refs={}, errors={})
        if not needs:
            return result
        specs: dict[str, CustomerSpec] = {}
        wanted: dict[str, set[str]] = {k: set() for k in ("item", "taxcode", "term", "class", "department")}
        custom: set[str] = set()
        for need in needs.values():
            spec = need.customer
            specs.setdefault(company_key(spec), spec)
            wanted["item"].update(_names(need.items))
            wanted["taxcode"].update(_names(need.tax_codes))
            wanted["term"].update(_names(getattr(need, "terms", None)))
            wanted["class"].update(_names(getattr(need, "classes", None)))
            wanted["department"].update(_names(getattr(need, "departments", None)))
            custom.update(_names(getattr(need, "custom_fields", None)))

        plan = _Lookup(self)
        plan.add_customers(specs)
        if self.country == "US":  # US companies use the fixed TAX / NON codes
            us_fixed = {n for n in wanted["taxcode"] if n.upper() in ("TAX", "NON")}
        else:
            us_fixed = set()
        for kind, names in wanted.items():
            plan.add_names(kind, sorted(names - us_fixed if kind == "taxcode" else names))
        if wanted["item"] and self.prefs.items.create_missing:
            plan.want_accounts()
        plan.want_preferences(need_country=self.country is None)
        plan.run()

        country = self.country or plan.country
        prefs_doc = plan.preferences
        result.preferences = prefs_doc
        self.facts = company_facts(prefs_doc, country)
        self._remember("company", [("facts", "", "", {"country": self.facts.country,
                                                       "home_currency": self.facts.home_currency,
                                                       "multicurrency": self.facts.multicurrency})])
        for entity, found_person in plan.people.values():
            if entity == "Customer":
                self._note_currency(found_person.id, found_person.data)
        for row in plan.by_id.get("customer", []):
            self._note_currency(str(row.get("Id")), row)
        ast = country == "US" and bool((prefs_doc.get("TaxPrefs") or {}).get("PartnerTaxEnabled"))
        definitions = custom_field_definitions(prefs_doc)
        class_per_line = bool((prefs_doc.get("AccountingInfoPrefs") or {}).get("ClassTrackingPerTxnLine"))

        customers, cust_errors = self._customers(specs, plan, write, dry_run, result)
        found: dict[str, dict[str, str]] = {}
        missing: dict[str, dict[str, str]] = {}
        for kind in wanted:
            names = wanted[kind]
            ids = {n: n.upper() for n in us_fixed} if kind == "taxcode" else {}
            ids.update(plan.ids(kind))
            found[kind] = ids
            missing[kind] = {n: "" for n in names if n not in ids}
        if missing["item"]:
            self._create_items(sorted(missing["item"]), plan, found["item"], write, dry_run, result)

        for cw_id, need in needs.items():
            errs: list[str] = []
            key = company_key(need.customer)
            cust_id = customers.get(key)
            if cust_id is None:
                errs.append(cust_errors.get(key, f"no QBO customer for '{need.customer.display_name}'"))
            items: dict[str, Any] = {}
            for name in _names(need.items):
                if name in found["item"]:
                    items[name] = ItemRef(found["item"][name], name, plan.item_taxable(found["item"][name]))
                else:
                    errs.append(f"no QBO item '{name}' — map it with `cwqbo prefs map item …` or set items.create_missing")
            maps: dict[str, dict[str, str]] = {}
            for kind, attr, label, hint in (
                    ("taxcode", "tax_codes", "tax code", "map it with `cwqbo prefs map tax …`"),
                    ("term", "terms", "term", "create it in QuickBooks or change fields.terms_map"),
                    ("class", "classes", "class", "create it in QuickBooks or change fields.class_map"),
                    ("department", "departments", "department",
                     "create it in QuickBooks or change fields.department_map")):
                maps[attr] = {}
                for name in _names(getattr(need, attr, None)):
                    if name in found[kind]:
                        maps[attr][name] = found[kind][name]
                    else:
                        errs.append(f"no QBO {label} '{name}' — {hint}")
            fields: dict[str, str] = {}
            for name in _names(getattr(need, "custom_fields", None)):
                if _fold(name) in definitions:
                    fields[name] = definitions[_fold(name)]
                else:
                    errs.append(f"no QBO custom field '{name}' — turn it on in QuickBooks sales form settings "
                                "or change fields.custom_fields")
            if errs:
                result.errors[cw_id] = "; ".join(dict.fromkeys(errs))
                continue
            cust_currency = self._currency_of.get(str(cust_id))
            if cust_id == NEW_ID and self._new_customer_currency(need.customer):
                cust_currency = self._new_customer_currency(need.customer)  # a dry run's would-be customer
            result.refs[cw_id] = Refs(customer_id=str(cust_id), items=items, tax_codes=maps["tax_codes"],
                                      terms=maps["terms"], classes=maps["classes"],
                                      departments=maps["departments"], custom_fields=fields,
                                      us_automated_tax=ast, us=country == "US",
                                      class_per_line=class_per_line, home_currency=self.facts.home_currency,
                                      multicurrency=self.facts.multicurrency, customer_currency=cust_currency)
        result.calls_used = self.calls_used
        return result

    # -- customers ---------------------------------------------------------------------------

    def _note_currency(self, customer_id: str, record: Mapping[str, Any]) -> None:
        ref = record.get("CurrencyRef")
        code = ref.get("value") if isinstance(ref, Mapping) else None
        if customer_id and code:
            self._currency_of[customer_id] = str(code).upper()

    def _new_customer_currency(self, spec: CustomerSpec) -> str | None:
        """The currency a customer created for `spec` is given: the invoice's, when multicurrency is on and it
        is not the home currency (Intuit, Customer.CurrencyRef: "If not specified, currency for this customer
        is the home currency of the company"; it cannot be changed later)."""
        code = (getattr(spec, "currency", None) or "").upper()
        home = (self.facts.home_currency or "").upper()
        if self.facts.multicurrency and code and home and code != home:
            return code
        return None

    def _customers(self, specs: dict[str, Any], plan: _Lookup, write: bool, dry_run: bool,
                   result: ResolveResult) -> tuple[dict[str, str], dict[str, str]]:
        """company key → customer id; company key → error. One CW company ↔ one QBO customer."""
        ids: dict[str, str] = {}
        errors: dict[str, str] = {}
        for key, row in plan.cached["customer"].items():
            if key in plan.verified["customer"]:
                ids[key] = row["qbo_id"]
        claimed_ids = self._claimed_elsewhere(plan)  # QBO customer id → company key (from earlier runs)
        claimed_ids.update({cid: key for key, cid in ids.items()})
        claimed_names: dict[str, str] = {}  # folded name → company key, for creates planned in this run
        to_create: list[tuple[str, str]] = []  # (company key, name)
        remember: list[tuple[str, str, str, dict[str, Any]]] = []
        for key in sorted(specs, key=_company_order(specs)):
            if key in ids:
                continue
            spec = specs[key]
            choice = self._choose_name(key, spec, plan, claimed_ids, claimed_names)
            if isinstance(choice, _Found):
                ids[key] = choice.id
                claimed_ids[choice.id] = key
                remember.append((key, choice.id, choice.name, {"adopted": True}))
            elif choice.startswith("!"):
                errors[key] = choice[1:]
            else:
                claimed_names[_fold(choice)] = key
                to_create.append((key, choice))
        if to_create and not self.prefs.fields.create_missing_customers:
            for key, name in to_create:
                errors[key] = (f"no QBO customer '{name}' — create it in QuickBooks "
                               "or set fields.create_missing_customers")
        elif to_create and dry_run:
            for key, name in to_create:
                result.would_create.append(WouldCreate("customer", name))
                ids[key] = NEW_ID
        elif to_create and not write:
            for key, name in to_create:
                errors[key] = f"no QBO customer '{name}' (creating customers is turned off for this run)"
        elif to_create:
            self._create_customers(specs, to_create, ids, errors, remember, claimed_ids, result)
        self._remember("customer", remember)
        return ids, errors

    def _claimed_elsewhere(self, plan: _Lookup) -> dict[str, str]:
        """Customers found by name that an earlier run already tied to some CW company."""
        found = sorted({p.id for entity, p in plan.people.values() if entity == "Customer"})
        if not found or "qbo_refs" not in self.store.db.table_names():
            return {}
        out: dict[str, str] = {}
        for start in range(0, len(found), 500):
            part = found[start:start + 500]
            marks = ",".join("?" for _ in part)
            for row in self.store.db.query(
                    f"select key, qbo_id from qbo_refs where realm = ? and kind = 'customer' and qbo_id in ({marks})",
                    [self.realm, *part]):
                out[row["qbo_id"]] = row["key"]
        return out

    def _choose_name(self, key: str, spec: Any, plan: _Lookup, claimed_ids: dict[str, str],
                     claimed_names: dict[str, str]) -> _Found | str:
        """An existing customer to adopt, a name to create, or '!' + an error."""
        name, alt = safe_display_name(str(spec.display_name)), fallback_name(spec)
        for candidate in (name, alt):
            if claimed_names.get(_fold(candidate), key) != key:
                continue  # another CW company in this run is getting that name
            person = plan.person(candidate)
            if person is None:
                return candidate
            entity, found = person
            if entity != "Customer":
                continue  # a vendor or employee holds it
            if claimed_ids.get(found.id, key) != key:
                continue  # that customer belongs to another CW company
            if not found.active:
                return f"!QBO customer '{found.name}' is inactive — make it active in QuickBooks"
            return found
        return f"!QBO names '{name}' and '{alt}' are both taken — rename the company or the QBO record"

    def _create_customers(self, specs: dict[str, Any], to_create: list[tuple[str, str]], ids: dict[str, str],
                          errors: dict[str, str], remember: list[tuple[str, str, str, dict[str, Any]]],
                          claimed_ids: dict[str, str], result: ResolveResult) -> None:
        duplicates: list[tuple[str, str]] = []
        for start in range(0, len(to_create), BATCH_SIZE):
            part = to_create[start:start + BATCH_SIZE]
            ops = [BatchOp.create(f"c{i}", "Customer", customer_payload(specs[key], name,
                                                                        currency=self._new_customer_currency(specs[key])))
                   for i, (key, name) in enumerate(part)]
            # Same companies and names → same requestid, so a retry after a crash replays instead of duplicating;
            # a cached customer that went stale is part of the seed, so re-creating it isn't answered by a replay.
            rid = str(uuid.uuid5(NAMESPACE, f"{self.realm}|customer|" + "|".join(
                sorted(f"{key}={name}~{self._stale.get(('customer', key), '')}" for key, name in part))))
            answers = self._batch(ops, rid)
            for i, (key, name) in enumerate(part):
                res = answers.get(f"c{i}")
                if res is not None and res.ok and res.obj and res.obj.get("Id"):
                    cid = str(res.obj["Id"])
                    self._note_currency(cid, res.obj)
                    result.created.append(Created("customer", name, cid))
                    ids[key] = cid
                    claimed_ids[cid] = key
                    remember.append((key, cid, name, {"created": True}))
                elif res is not None and any(f.code == "6240" for f in res.faults):
                    duplicates.append((key, name))
                else:
                    why = str(res.faults[0]) if res is not None and res.faults else "no answer for this item"
                    errors[key] = f"QBO refused to create customer '{name}': {why}"
        if duplicates:  # someone (maybe an earlier run that never recorded it) holds the name: look again
            again = _Lookup(self)
            again.add_people([name for _, name in duplicates])
            again.run()
            for key, name in duplicates:
                person = again.person(name)
                if person and person[0] == "Customer" and person[1].active and \
                        claimed_ids.get(person[1].id, key) == key:
                    ids[key] = person[1].id
                    claimed_ids[person[1].id] = key
                    self._note_currency(person[1].id, person[1].data)
                    remember.append((key, person[1].id, person[1].name, {"adopted": True}))
                else:
                    errors[key] = f"QBO name '{name}' is already taken — rename the company or the QBO record"

    # -- items -------------------------------------------------------------------------------

    def _create_items(self, names: list[str], plan: _Lookup, found: dict[str, str], write: bool, dry_run: bool,
                      result: ResolveResult) -> None:
        if not self.prefs.items.create_missing:
            return
        if dry_run:
            for name in names:
                result.would_create.append(WouldCreate("item", name))
                found[name] = NEW_ID
            return
        if not write:
            return
        account = plan.income_account()
        if account is None:
            return  # errors name the items; nothing to attach them to
        remember: list[tuple[str, str, str, dict[str, Any]]] = []
        duplicates: list[str] = []
        for start in range(0, len(names), BATCH_SIZE):
            part = names[start:start + BATCH_SIZE]
            ops = [BatchOp.create(f"i{i}", "Item", {"Name": name[:100], "Type": "Service",
                                                     "IncomeAccountRef": {"value": account}})
                   for i, name in enumerate(part)]
            rid = str(uuid.uuid5(NAMESPACE, f"{self.realm}|item|" + "|".join(
                sorted(f"{name}~{self._stale.get(('item', name), '')}" for name in part))))
            answers = self._batch(ops, rid)
            for i, name in enumerate(part):
                res = answers.get(f"i{i}")
                if res is not None and res.ok and res.obj and res.obj.get("Id"):
                    iid = str(res.obj["Id"])
                    found[name] = iid
                    result.created.append(Created("item", name, iid))
                    remember.append((name, iid, name, {"created": True}))
                elif res is not None and any(f.code == "6240" for f in res.faults):
                    duplicates.append(name)
        if duplicates:
            again = _Lookup(self)
            again.add_names("item", duplicates, use_cache=False)
            again.run()
            for name, iid in again.ids("item").items():
                found[name] = iid
                remember.append((name, iid, name, {"adopted": True}))
        self._remember("item", remember)


def customer_payload(spec: CustomerSpec, name: str, *, currency: str | None = None) -> dict[str, Any]:
    """The Customer create body from mapping's spec, under the name resolution chose; `currency` (an ISO code)
    creates it in that currency (Customer.CurrencyRef; only with multicurrency on)."""
    body: dict[str, Any] = {"DisplayName": name}
    if currency:
        body["CurrencyRef"] = {"value": currency}
    if spec.company_name:
        body["CompanyName"] = spec.company_name
    if spec.bill_addr:
        body["BillAddr"] = dict(spec.bill_addr)
    if spec.ship_addr:
        body["ShipAddr"] = dict(spec.ship_addr)
    return body


def custom_field_definitions(preferences: Mapping[str, Any]) -> dict[str, str]:
    """Folded custom field name → DefinitionId ('1'..'3') for the sales-form fields that are turned on."""
    groups = (preferences.get("SalesFormsPrefs") or {}).get("CustomField") or []
    names: dict[str, str] = {}
    used: dict[str, bool] = {}
    for group in groups:
        for f in group.get("CustomField") or []:
            label = str(f.get("Name", ""))
            if label.startswith("SalesFormsPrefs.SalesCustomName"):
                names[label.removeprefix("SalesFormsPrefs.SalesCustomName")] = str(f.get("StringValue") or "")
            elif label.startswith("SalesFormsPrefs.UseSalesCustom"):
                used[label.removeprefix("SalesFormsPrefs.UseSalesCustom")] = f.get("BooleanValue") in (True, "true")
    return {_fold(n): i for i, n in names.items() if n and used.get(i, False)}


class _Lookup:
    """One round of lookups: everything wanted is collected first, then sent as batched queries."""

    def __init__(self, resolver: Resolver) -> None:
        self.r = resolver
        self.statements: list[tuple[str, str, str]] = []  # (purpose, entity, statement)
        self.cached: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KIND_ENTITY}
        self.verified: dict[str, set[str]] = {k: set() for k in KIND_ENTITY}
        self.names: dict[str, list[str]] = {k: [] for k in KIND_ENTITY}
        self.people: dict[str, tuple[str, _Found]] = {}  # folded DisplayName → (entity, record)
        self.by_name: dict[str, dict[str, _Found]] = {k: {} for k in KIND_ENTITY}
        self.by_id: dict[str, list[dict[str, Any]]] = {}  # kind → rows read back by cached id
        self.accounts: list[dict[str, Any]] = []
        self.preferences: dict[str, Any] = {}
        self.country: str | None = None
        self._rows: dict[str, list[dict[str, Any]]] = {}

    def _add(self, purpose: str, entity: str, conditions: list[str]) -> None:
        self.statements.append((purpose, entity, q.select(entity, conditions)))

    def _by_id(self, kind: str, ids: list[str]) -> None:
        entity = KIND_ENTITY[kind]
        for start in range(0, len(ids), CHUNK):
            self._add(f"id:{kind}", entity, [q.in_("Id", ids[start:start + CHUNK]), "Active IN (true, false)"])

    def add_customers(self, specs: dict[str, CustomerSpec]) -> None:
        cached = self.r._cached("customer", specs)
        self.cached["customer"] = cached
        if cached:
            self._by_id("customer", sorted({row["qbo_id"] for row in cached.values()}))
        names: set[str] = set()
        for key, spec in specs.items():
            name = safe_display_name(str(spec.display_name))
            names.update({name, fallback_name(spec)})
            if key in cached and cached[key]["name"]:
                names.add(cached[key]["name"])
        self.add_people(sorted(names))

    def add_people(self, names: list[str]) -> None:
        for entity in PEOPLE:
            for start in range(0, len(names), CHUNK):
                self._add("people", entity, [q.in_("DisplayName", names[start:start + CHUNK]),
                                             "Active IN (true, false)"])

    def add_names(self, kind: str, names: list[str], *, use_cache: bool = True) -> None:
        if not names:
            return
        self.names[kind] = list(names)
        cached = self.r._cached(kind, names) if use_cache else {}
        self.cached[kind] = cached
        if cached:
            self._by_id(kind, sorted({row["qbo_id"] for row in cached.values()}))
        leaves = sorted({n.rsplit(":", 1)[-1].strip() for n in names})
        for start in range(0, len(leaves), CHUNK):
            self._add(f"name:{kind}", KIND_ENTITY[kind], [q.in_("Name", leaves[start:start + CHUNK])])

    def want_accounts(self) -> None:
        self._add("accounts", "Account", [q.eq("AccountType", "Income")])

    def want_preferences(self, *, need_country: bool) -> None:
        self._add("preferences", "Preferences", [])
        if need_country:
            self._add("companyinfo", "CompanyInfo", [])

    def run(self) -> None:
        if not self.statements:
            return
        rows = self.r._queries([(entity, text) for _, entity, text in self.statements])
        for i, (purpose, entity, _) in enumerate(self.statements):
            self._take(purpose, entity, rows.get(f"q{i}", []))
        stale: dict[str, list[str]] = {}
        for kind, cached in self.cached.items():
            gone = [key for key in cached if key not in self.verified[kind]]
            if gone:
                stale[kind] = gone
        if stale:  # deleted or deactivated since we cached them: resolve those by name again
            for kind, keys in stale.items():
                for key in keys:
                    self.r._stale[(kind, key)] = str(self.cached[kind][key]["qbo_id"])
                self.r._forget(kind, keys)

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
                found = _Found(str(r["Id"]), str(r.get("DisplayName", "")), r.get("Active", True) is not False, r)
                prev = self.people.get(_fold(found.name))
                if prev is None or (prev[0] != "Customer" and entity == "Customer"):
                    self.people[_fold(found.name)] = (entity, found)
        elif purpose.startswith("name:"):
            kind = purpose[5:]
            for r in rows:
                if r.get("Active", True) is False:
                    continue
                full = str(r.get("FullyQualifiedName") or r.get("Name", ""))
                found = _Found(str(r["Id"]), full, True, r)
                self.by_name[kind].setdefault(_fold(full), found)
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

    def person(self, name: str) -> tuple[str, _Found] | None:
        return self.people.get(_fold(name))

    def ids(self, kind: str) -> dict[str, str]:
        """Wanted name → id, from verified cache entries first, then from the name lookup."""
        out: dict[str, str] = {}
        remember: list[tuple[str, str, str, dict[str, Any]]] = []
        for name in self.names[kind]:
            row = self.cached[kind].get(name)
            if row is not None and name in self.verified[kind]:
                out[name] = row["qbo_id"]
                continue
            found = self.by_name[kind].get(_fold(name))
            if found is not None:
                out[name] = found.id
                remember.append((name, found.id, found.name, {}))
        self.r._remember(kind, remember)
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
