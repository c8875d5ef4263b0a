"""Resolving the QBO references a set of invoices needs (customers, items, tax codes, terms, …) in bulk.

Why bulk: resolving one invoice at a time costs a query per customer and item and burns QBO's
500-requests-a-minute budget. Here every distinct name across a slice of invoices is looked up with a few
`IN (...)` queries, ids are cached per realm in `qbo_refs` (and re-verified by id each run, so a deleted or
deactivated record is resolved again by its stored name), and missing customers/items are created with
`requestid`s derived from what they create, so a crash or a retry never makes a second copy. Lookups and creates
are single requests, a few in flight at once: QBO's batch budget (40 calls a minute) is kept for the documents.

Customer names: QBO DisplayNames are unique across customers, vendors and employees
(case-insensitively, inactive records included) and may not contain ':'. One CW company maps to one
QBO customer (cached by CW company id). A name held by a vendor or employee, or by a customer already
tied to another CW company, makes the company use `CustomerSpec.fallback_name`
(`mapping.disambiguated_name`, e.g. 'Northwind Traders (CW 17)').
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cwqbo.errors import RemoteError, kept_failing
from cwqbo.mapping.customers import CustomerSpec, customer_payload
from cwqbo.mapping.fields import custom_field_definitions
from cwqbo.mapping.refs import CompanyFacts, ItemRef, Needs, Refs, company_facts
from cwqbo.sync.lookup import Found, Lookup, fallback_name, fold, safe_display_name
from cwqbo.sync.model import WouldCreate
from cwqbo.state.store import Store
from cwqbo.sync.ref_cache import RefCache
from cwqbo.settings.prefs import Prefs
from cwqbo.quickbooks.client import BatchItemResult, BatchOp, QBOError, QBOResult
from cwqbo.in_flight import LIMIT, in_flight

# Fixed forever: changing it would change the requestids of customer/item creates.
NAMESPACE = uuid.UUID("0b9f6a52-7c1d-4e8a-a3f4-2d5e6c7b8a90")
BATCH_LIMIT = 30  # Intuit's items per batch call
MIN_BATCHED = 10  # fewer creates than this beyond the singles limit still go single
NEW_ID = "(new)"  # the id a dry run gives a reference it would create
Job = tuple[str, dict[str, Any], str]  # a create: (key, payload, requestid)



class QBOLike(Protocol):
    """What the resolver needs from `quickbooks.client.QBOClient`: single requests, never batch calls (the batch
    budget, 40 a minute, is kept for the documents themselves)."""

    def query(self, statement: str) -> list[dict[str, Any]]: ...

    def create(self, entity: str, payload: dict[str, Any], request_id: str) -> QBOResult: ...

    def batch(self, items: list[BatchOp], request_id: str | None = None) -> dict[str, BatchItemResult]: ...


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


def _names(value: Any) -> list[str]:
    """Needs fields may be a set, list, dict (keys) or a single name; normalise to a list of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def company_key(spec: CustomerSpec) -> str:
    """Cache key of a CW company: its id, so a rename in CW keeps the same QBO customer."""
    return str(spec.cw_company_id)


def _company_order(specs: dict[str, CustomerSpec]) -> Callable[[str], tuple[int, str]]:
    """Lowest CW company id first: when two companies share a name, the older one keeps it, every run."""
    def order(key: str) -> tuple[int, str]:
        return specs[key].cw_company_id, key
    return order


class Resolver:
    """Resolves `mapping.Needs` for many invoices to `mapping.Refs` with a handful of QBO calls."""

    def __init__(self, qbo: QBOLike, store: Store, realm: str, prefs: Prefs, *, country: str | None = None) -> None:
        self.qbo = qbo
        self.store = store
        self.realm = realm
        self.prefs = prefs
        self.country = country.upper() if country else None
        self._own_calls = 0
        self.cache = RefCache(store, realm)
        # Set by the sender: at most this many creates go as single requests, the rest 30 to a batch call (None:
        # all single). It is what the single budget can start while the documents already queued keep the batch
        # budget busy: a first sync of 1,000 new customers would otherwise wait minutes on the request window.
        self.singles_limit: int | None = None
        # QBO's Preferences document, read once a run: the sender hands the first slice's to the next ones.
        self.preferences: dict[str, Any] | None = None
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

    def _queries(self, statements: list[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
        """Run (entity, statement) queries as single requests, a few at once; rows per statement index."""
        self._own_calls += len(statements)
        try:
            rows = in_flight(self.qbo.query, [text for _, text in statements])
        except QBOError as exc:
            raise RemoteError(f"QuickBooks Online refused a lookup query: {exc}", code=exc.code, tid=exc.tid) from exc
        return {f"q{i}": list(found) for i, found in enumerate(rows)}

    def _create(self, entity: str, jobs: list[Job]) -> list[tuple[str, QBOResult | QBOError]]:
        """(key, payload, requestid) → (key, the created record or QBO's refusal); single requests, a few at once,
        and beyond `singles_limit` 30 to a batch call, both at the same time.

        The requestid is derived from what is created, so a retry or a crashed run's second try replays the first
        answer instead of making a second copy."""
        split = len(jobs) if self.singles_limit is None else max(0, self.singles_limit)
        if len(jobs) - split < MIN_BATCHED:
            split = len(jobs)  # a batch call for a handful would spend a document's slot on them
        batched = [jobs[start:start + BATCH_LIMIT] for start in range(split, len(jobs), BATCH_LIMIT)]
        self._own_calls += split + len(batched)

        def one(job: Job) -> tuple[str, QBOResult | QBOError]:
            key, payload, rid = job
            try:
                return key, self.qbo.create(entity, payload, rid)
            except QBOError as exc:
                if kept_failing(exc):
                    raise  # QBO is down: the run stops (exit 4) instead of failing every invoice
                return key, exc

        def task(work: Job | list[Job]) -> list[tuple[str, QBOResult | QBOError]]:
            return self._create_batch(entity, work) if isinstance(work, list) else [one(work)]

        tasks: list[Job | list[Job]] = [*batched, *jobs[:split]]
        answers = {key: answer for done in in_flight(task, tasks) for key, answer in done}
        return [(key, answers[key]) for key, _, _ in jobs]

    def _create_batch(self, entity: str, part: list[Job]) -> list[tuple[str, QBOResult | QBOError]]:
        """Up to 30 creates in one batch call, whose requestid is derived from its items' requestids."""
        rid = str(uuid.uuid5(NAMESPACE, "batch|" + "|".join(sorted(r for _, _, r in part))))
        answers = self.qbo.batch([BatchOp.create(f"c{i}", entity, payload)
                                  for i, (_, payload, _) in enumerate(part)], request_id=rid)
        out: list[tuple[str, QBOResult | QBOError]] = []
        for i, (key, _, _) in enumerate(part):
            res = answers.get(f"c{i}")
            if res is not None and res.ok and res.obj:
                out.append((key, QBOResult(res.obj, res.tid)))
            else:
                faults = list(res.faults) if res is not None else []
                why = str(faults[0]) if faults else "no answer for this item"
                out.append((key, QBOError(why, faults=faults, tid=res.tid if res is not None else None)))
        return out

    # -- the public entry point --------------------------------------------------------------

    def resolve(self, needs: Mapping[int, Needs], *, create: bool = True, dry_run: bool = False) -> ResolveResult:
        """Refs for every invoice that can be mapped, a reason for every one that can't."""
        write = create and not dry_run
        self.cache.dry_run = dry_run
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

        plan = Lookup(self.cache, self._queries)
        plan.add_customers(specs)
        if self.country == "US":  # US companies use the fixed TAX / NON codes
            us_fixed = {n for n in wanted["taxcode"] if n.upper() in ("TAX", "NON")}
        else:
            us_fixed = set()
        for kind, names in wanted.items():
            plan.add_names(kind, sorted(names - us_fixed if kind == "taxcode" else names))
        if wanted["item"] and self.prefs.items.create_missing:
            plan.want_accounts()
        if self.preferences is None:
            plan.want_preferences(need_country=self.country is None)
        plan.run()
        # Second round: by name only what the first round's cached ids did not verify.
        plan.add_customer_names(specs)
        for kind, names in wanted.items():
            if plan.cached[kind]:
                plan.add_unverified_names(kind)
        plan.run()

        country = self.country = self.country or plan.country
        prefs_doc = self.preferences = plan.preferences if self.preferences is None else self.preferences
        result.preferences = prefs_doc
        self.facts = company_facts(prefs_doc, country)
        self.cache.remember("company", [("facts", "", "", {"country": self.facts.country,
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
                if fold(name) in definitions:
                    fields[name] = definitions[fold(name)]
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

    def _customers(self, specs: dict[str, Any], plan: Lookup, write: bool, dry_run: bool,
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
            if isinstance(choice, Found):
                ids[key] = choice.id
                claimed_ids[choice.id] = key
                remember.append((key, choice.id, choice.name, {"adopted": True}))
            elif choice.startswith("!"):
                errors[key] = choice[1:]
            else:
                claimed_names[fold(choice)] = key
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
            self._create_customers(specs, to_create, ids, errors, remember, claimed_ids, claimed_names, result)
        self.cache.remember("customer", remember)
        return ids, errors

    def _claimed_elsewhere(self, plan: Lookup) -> dict[str, str]:
        """Customers found by name that an earlier run already tied to some CW company."""
        return self.cache.claimed_customers(sorted({p.id for entity, p in plan.people.values()
                                                    if entity == "Customer"}))

    def _choose_name(self, key: str, spec: Any, plan: Lookup, claimed_ids: dict[str, str],
                     claimed_names: dict[str, str]) -> Found | str:
        """An existing customer to adopt, a name to create, or '!' + an error."""
        name, alt = safe_display_name(str(spec.display_name)), fallback_name(spec)
        for candidate in (name, alt):
            if claimed_names.get(fold(candidate), key) != key:
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
                          claimed_ids: dict[str, str], claimed_names: dict[str, str], result: ResolveResult) -> None:
        """Create the customers; a name QBO says is taken (6240: a vendor or employee holds it, or a customer made
        since the lookup) is looked up among all three and chosen again, as if the lookup had seen it."""
        for last_round in (False, True):
            duplicates = self._create_round(specs, to_create, ids, errors, remember, claimed_ids, result)
            if not duplicates:
                return
            again = Lookup(self.cache, self._queries)
            again.add_people(sorted({n for key, _ in duplicates
                                     for n in (safe_display_name(str(specs[key].display_name)),
                                               fallback_name(specs[key]))}))
            again.run()
            to_create = []
            for key, name in duplicates:
                choice = self._choose_name(key, specs[key], again, claimed_ids, claimed_names)
                if isinstance(choice, Found):
                    ids[key] = choice.id
                    claimed_ids[choice.id] = key
                    self._note_currency(choice.id, choice.data)
                    remember.append((key, choice.id, choice.name, {"adopted": True}))
                elif choice.startswith("!"):
                    errors[key] = choice[1:]
                elif fold(choice) == fold(name) or last_round:
                    errors[key] = f"QBO name '{name}' is already taken — rename the company or the QBO record"
                else:
                    claimed_names[fold(choice)] = key
                    to_create.append((key, choice))
            if not to_create:
                return

    def _create_round(self, specs: dict[str, Any], to_create: list[tuple[str, str]], ids: dict[str, str],
                      errors: dict[str, str], remember: list[tuple[str, str, str, dict[str, Any]]],
                      claimed_ids: dict[str, str], result: ResolveResult) -> list[tuple[str, str]]:
        """One round of creates; returns the (company key, name) pairs QBO refused as taken (6240)."""
        duplicates: list[tuple[str, str]] = []
        names = dict(to_create)
        jobs = [(key, customer_payload(specs[key], name, currency=self._new_customer_currency(specs[key])),
                 # a cached customer that went stale is part of the seed: re-creating it isn't answered by a replay
                 str(uuid.uuid5(NAMESPACE, f"{self.realm}|customer|{key}={name}~"
                                           f"{self.cache.stale.get(('customer', key), '')}")))
                for key, name in to_create]
        for key, answer in self._create("Customer", jobs):
            name = names[key]
            if isinstance(answer, QBOResult) and answer.obj.get("Id"):
                cid = str(answer.obj["Id"])
                self._note_currency(cid, answer.obj)
                result.created.append(Created("customer", name, cid))
                ids[key] = cid
                claimed_ids[cid] = key
                remember.append((key, cid, name, {"created": True}))
            elif isinstance(answer, QBOError) and answer.has_code("6240"):
                duplicates.append((key, name))
            else:
                errors[key] = f"QBO refused to create customer '{name}': {answer}"
        return duplicates

    # -- items -------------------------------------------------------------------------------

    def _create_items(self, names: list[str], plan: Lookup, found: dict[str, str], write: bool, dry_run: bool,
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
        jobs = [(name, {"Name": name[:100], "Type": "Service", "IncomeAccountRef": {"value": account}},
                 str(uuid.uuid5(NAMESPACE, f"{self.realm}|item|{name}~{self.cache.stale.get(('item', name), '')}")))
                for name in names]
        for name, answer in self._create("Item", jobs):
            if isinstance(answer, QBOResult) and answer.obj.get("Id"):
                iid = str(answer.obj["Id"])
                found[name] = iid
                result.created.append(Created("item", name, iid))
                remember.append((name, iid, name, {"created": True}))
            elif isinstance(answer, QBOError) and answer.has_code("6240"):
                duplicates.append(name)
        if duplicates:
            again = Lookup(self.cache, self._queries)
            again.add_names("item", duplicates, use_cache=False)
            again.run()
            for name, iid in again.ids("item").items():
                found[name] = iid
                remember.append((name, iid, name, {"adopted": True}))
        self.cache.remember("item", remember)


