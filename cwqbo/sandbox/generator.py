"""Seeded ConnectWise data for the sandbox: companies, invoices and their product/time/expense lines.

Records are in the API's JSON shape (camelCase, Decimal amounts) and carry only fields of ConnectWise's
published schema (pyconnectwise's models; `cw_schema.MODELS`). Every invoice's billed lines (`line_amount`)
sum exactly to its `subtotal`; `salesTax` is the rounded tax on taxable product lines; `total = subtotal +
salesTax`. Agreement invoices carry their agreement fee as a product line (with an `agreement` reference), so
the invoice's `agreementAmount` is 0 and never needs adding on top of the lines.

How ConnectWise bills a line (our reading of the schema's fields, documented here once):
- ProductItem: `quantity` ordered, `quantityCancelled` of them cancelled (not billed), `price` per unit,
  `cost` per unit (not billed), `discount` kept 0 here. Billed = round((quantity - quantityCancelled) * price)
  when `billableOption` is Billable; DoNotBill/NoCharge lines bill nothing.
- TimeEntry: `actualHours` worked (= timeEnd - timeStart - `hoursDeduct`), `hoursBilled` the billable hours
  (actualHours for Billable, 0 for NoCharge/DoNotBill), `agreement` the agreement that covers the work,
  `agreementHours` the hours it covers and `agreementAmount` their value (agreementHours * hourlyRate),
  `invoiceHours` what the invoice charges (hoursBilled - agreementHours), `hourlyRate` the rate.
  Billed = round(invoiceHours * hourlyRate): covered time is not charged.
- ExpenseEntry: `amount` spent, `invoiceAmount` what the invoice charges (billed when Billable).
The same seed always gives the same data, and 10,000 invoices take well under a second.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

BILLING_STATUSES: list[dict[str, Any]] = [
    {"id": 1, "name": "New", "sortOrder": 0, "defaultFlag": True, "closedFlag": False, "inactiveFlag": False,
     "sentFlag": False},
    {"id": 2, "name": "Sent", "sortOrder": 1, "defaultFlag": False, "closedFlag": False, "inactiveFlag": False,
     "sentFlag": True},
    {"id": 3, "name": "Closed", "sortOrder": 2, "defaultFlag": False, "closedFlag": True, "inactiveFlag": False,
     "sentFlag": True},
    {"id": 4, "name": "Closed - Paid", "sortOrder": 3, "defaultFlag": False, "closedFlag": True, "inactiveFlag": False,
     "sentFlag": True},
]
CLOSED_STATUS_IDS = frozenset(s["id"] for s in BILLING_STATUSES if s["closedFlag"])

SPECIAL_COMPANIES = ["Northwind Traders", "O'Brien & Søn", "Acme: West", "Café Zürich GmbH", "Smith \"Quoted\" Co",
                     "Ōsaka Robotics 株式会社"]
_WORDS = ["Alpine", "Blue", "Cedar", "Delta", "Evergreen", "Falcon", "Granite", "Harbor", "Iron", "Juniper",
          "Keystone", "Lakeside", "Maple", "Nimbus", "Orchid", "Pioneer", "Quartz", "Redwood", "Summit", "Tidewater"]
_SUFFIXES = ["Dental", "Logistics", "Law Group", "Manufacturing", "Realty", "Clinic", "Partners", "Foods", "Labs",
             "Builders"]
CATALOG = [("LAPTOP-14", "14\" business laptop", Decimal("1249.00")),
           ("MON-27", "27 inch monitor", Decimal("289.99")),
           ("M365-BP", "Microsoft 365 Business Premium (monthly)", Decimal("22.00")),
           ("FW-TZ370", "SonicWall TZ370 firewall", Decimal("845.50")),
           ("CABLE-C6", "Cat6 patch cable, 7 ft", Decimal("4.35")),
           ("BACKUP-1TB", "Cloud backup 1 TB", Decimal("59.95")),
           ("UPS-1500", "APC 1500VA UPS", Decimal("412.10"))]
MEMBERS = [{"id": 101, "identifier": "jlee", "name": "Jordan Lee"},
           {"id": 102, "identifier": "asmith", "name": "Alex Smith"},
           {"id": 103, "identifier": "mgarcia", "name": "María García"}]
WORK_ROLES = [({"id": 1, "name": "Engineer"}, Decimal("145.00")), ({"id": 2, "name": "Senior Engineer"},
                                                                     Decimal("185.00")),
              ({"id": 3, "name": "Help Desk"}, Decimal("95.00"))]
WORK_TYPES = [{"id": 1, "name": "Regular"}, {"id": 2, "name": "After Hours"}, {"id": 3, "name": "Remote"}]
EXPENSE_TYPES = [{"id": 1, "name": "Mileage"}, {"id": 2, "name": "Parking"}, {"id": 3, "name": "Meals"}]
TAX_CODES = {"US": [({"id": 1, "name": "Tax Exempt"}, ZERO), ({"id": 2, "name": "Sales Tax 8.25%"},
                                                               Decimal("0.0825"))],
             "CA": [({"id": 1, "name": "Tax Exempt"}, ZERO), ({"id": 3, "name": "HST ON 13%"}, Decimal("0.13"))]}
BILLING_TERMS = [{"id": 1, "name": "Net 30"}, {"id": 2, "name": "Net 15"}, {"id": 3, "name": "Due on receipt"}]
LOCATIONS = [{"id": 1, "name": "Main"}, {"id": 2, "name": "West"}]
DEPARTMENTS = [{"id": 10, "name": "Managed Services"}, {"id": 11, "name": "Projects"}]
LONG_INVOICE_NUMBER = "AGR-2026-09-MSP-000042-RENEWAL"  # 30 chars: longer than QBO's 21-character DocNumber
PRIOR_BATCH = "PRIOR-2026-08"


@dataclass
class CWData:
    """Everything a CWSimulator holds, as API-shaped records."""

    companies: list[dict[str, Any]] = field(default_factory=list)
    billing_statuses: list[dict[str, Any]] = field(default_factory=lambda: [dict(s) for s in BILLING_STATUSES])
    invoices: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    time_entries: list[dict[str, Any]] = field(default_factory=list)
    expenses: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)  # prior batches: {"batchIdentifier", "invoiceIds"}
    no_gl_invoice_ids: list[int] = field(default_factory=list)  # Closed, but ConnectWise holds no GL entries
    # other tools' unposted GL work: {"expense": [...], "procurement": [...]} (see cw_gl.GLLedger.seed_other)
    other_gl: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def line_amount(kind: str, line: dict[str, Any]) -> Decimal:
    """What ConnectWise charges for one invoice line (`kind`: product, time or expense); see the docstring."""
    if (line.get("billableOption") or "Billable") != "Billable":
        return ZERO
    if kind == "product":
        qty = Decimal(line.get("quantity") or 0) - Decimal(line.get("quantityCancelled") or 0)
        return _money(qty * Decimal(line.get("price") or 0))
    if kind == "time":
        hours = line.get("invoiceHours")
        if hours is None:
            hours = Decimal(line.get("actualHours") or 0) - Decimal(line.get("agreementHours") or 0)
        return _money(Decimal(hours) * Decimal(line.get("hourlyRate") or 0))
    value = line.get("invoiceAmount")
    return _money(Decimal(value if value is not None else line.get("amount") or 0))


def iso(day: dt.date | dt.datetime) -> str:
    if isinstance(day, dt.datetime):
        return day.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{day.isoformat()}T00:00:00Z"


def _identifier(name: str, n: int) -> str:
    base = "".join(ch for ch in name if ch.isascii() and ch.isalnum())[:20] or "Company"
    return f"{base}{n}" if n else base


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def make_company(id_: int, name: str, n: int = 0, country: str = "US") -> dict[str, Any]:
    ident = _identifier(name, n)
    return {"id": id_, "identifier": ident, "name": name, "status": {"id": 1, "name": "Active"},
            "addressLine1": f"{100 + id_} Main Street", "addressLine2": None,
            "city": "Toronto" if country == "CA" else "Springfield", "state": "ON" if country == "CA" else "IL",
            "zip": "M5V 2T6" if country == "CA" else "62701",
            "country": {"id": 2 if country == "CA" else 1, "name": "Canada" if country == "CA" else "United States"},
            "phoneNumber": f"555-01{id_ % 100:02d}", "website": None, "deletedFlag": False,
            "_info": {"lastUpdated": "2026-08-01T00:00:00Z"}}


def company_ref(company: dict[str, Any]) -> dict[str, Any]:
    return {"id": company["id"], "identifier": company["identifier"], "name": company["name"]}


def generate(seed: int, invoices: int, *, start: dt.date = dt.date(2026, 9, 1), country: str = "US",
             no_gl_invoice: bool = False) -> CWData:
    """Deterministic sample data: `invoices` invoices for a pool of companies (see the module docstring)."""
    rng = random.Random(seed)
    data = CWData()
    n_companies = max(len(SPECIAL_COMPANIES) + 4, invoices // 8)
    for i in range(n_companies):
        if i < len(SPECIAL_COMPANIES):
            name = SPECIAL_COMPANIES[i]
        else:
            name = f"{rng.choice(_WORDS)} {rng.choice(_SUFFIXES)}"
        data.companies.append(make_company(i + 1, name, 0 if i < len(SPECIAL_COMPANIES) else i, country))
    tax_codes = TAX_CODES.get(country, TAX_CODES["US"])
    long_at = min(3, invoices - 1)
    no_gl_at = 5 if invoices > 8 else -1  # one Closed invoice ConnectWise holds no GL entries for
    exported_every = 23  # a few closed invoices were already exported in a prior batch
    product_id = time_id = expense_id = 0
    prior: list[int] = []
    long_text = ("Quarterly infrastructure review, patching and documentation. " * 80).strip()  # > 4000 chars
    currency = {"id": 1, "symbol": "$", "currencyCode": "CAD" if country == "CA" else "USD",
                "name": "Canadian Dollar" if country == "CA" else "US Dollar"}

    for i in range(invoices):
        inv_id = 1001 + i
        number = LONG_INVOICE_NUMBER if i == long_at else str(20000 + i)
        company = data.companies[0] if i == 1 else rng.choice(data.companies)
        roll = rng.random()
        inv_type = "CreditMemo" if roll < 0.08 else "Agreement" if roll < 0.25 else "Standard"
        sign = Decimal(-1) if inv_type == "CreditMemo" else Decimal(1)
        closed = rng.random() >= 0.10 or i in (1, long_at, no_gl_at)
        status = BILLING_STATUSES[rng.choice((2, 3)) if closed else rng.choice((0, 1))]
        day = start + dt.timedelta(days=(i * 3) // max(1, invoices // 60 or 1) % 60)
        tax_code, rate = tax_codes[1] if rng.random() < 0.6 else tax_codes[0]
        tax_code = dict(tax_code)
        terms = dict(rng.choice(BILLING_TERMS))
        ref = {"id": inv_id, "identifier": number}
        cref = company_ref(company)
        location_id = LOCATIONS[company["id"] % 2]["id"]
        department_id = DEPARTMENTS[0 if inv_type == "Agreement" else 1]["id"]
        agreement = {"id": 500 + company["id"], "name": "Managed Services", "type": "MSP Monthly"}
        taxable = ZERO
        product_total = service_total = expense_total = ZERO

        n_products = rng.randint(1, 3) if inv_type != "Agreement" else 1
        for p in range(n_products):
            product_id += 1
            cancelled = ZERO
            if inv_type == "Agreement":
                ident, desc, price, qty = "AGR-MSP", "Managed services agreement — monthly fee", \
                    Decimal(rng.choice((950, 1450, 2200, 3875))) + Decimal(rng.randint(0, 99)) / 100, Decimal(1)
            else:
                ident, desc, price = CATALOG[rng.randrange(len(CATALOG))]
                qty = Decimal(rng.choice((1, 1, 2, 3, 5, 10))) if rng.random() < 0.9 else Decimal("2.5")
                if sign > 0 and qty >= 2 and rng.random() < 0.08:
                    cancelled = Decimal(1)  # one unit cancelled after ordering: not billed
            if rng.random() < 0.02:
                desc = long_text
            qty = qty * sign
            row = {
                "id": product_id, "catalogItem": {"id": CATALOG.index(next(c for c in CATALOG if c[0] == ident)) + 1
                                                  if ident != "AGR-MSP" else 99, "identifier": ident},
                "description": desc, "customerDescription": desc, "sequenceNumber": Decimal(p + 1),
                "quantity": qty, "quantityCancelled": cancelled, "cancelledFlag": cancelled > 0, "price": price,
                "cost": _money(price * Decimal("0.7")), "discount": ZERO, "billableOption": "Billable",
                "taxableFlag": rate > 0 and ident not in ("M365-BP", "AGR-MSP", "BACKUP-1TB"),
                "productClass": "Agreement" if ident == "AGR-MSP" else "NonInventory",
                "agreement": dict(agreement) if inv_type == "Agreement" else None,
                "locationId": location_id, "businessUnitId": department_id, "company": cref, "invoice": ref,
                "_info": {"lastUpdated": iso(day)}}
            amount = line_amount("product", row)
            if row["taxableFlag"]:
                taxable += amount
            product_total += amount
            data.products.append(row)

        if inv_type != "Agreement":
            for _ in range(rng.choice((0, 0, 1, 2))):
                time_id += 1
                role, rate_h = rng.choice(WORK_ROLES)
                hours = Decimal(rng.randint(1, 16)) / 4
                member = rng.choice(MEMBERS)
                mode = rng.random() if sign > 0 else 0.0
                option, covered, entry_status, agr = "Billable", ZERO, "Billed", None
                if mode > 0.92:  # no-charge goodwill work: shown, not charged
                    option = "NoCharge"
                elif mode > 0.85:  # fully covered by the agreement
                    covered, agr, entry_status = hours, dict(agreement), "BilledAgreement"
                elif mode > 0.70:  # partly covered: the overage is charged
                    covered, agr = min(hours, Decimal(rng.randint(1, 4)) / 4), dict(agreement)
                billed_hours = hours * sign if option == "Billable" else ZERO
                begin = dt.datetime.combine(day, dt.time(9)) - dt.timedelta(days=1)
                entry = {
                    "id": time_id, "company": cref, "chargeToId": 7000 + time_id, "chargeToType": "ServiceTicket",
                    "ticket": {"id": 7000 + time_id, "summary": "Support request"},
                    "member": dict(member), "workType": dict(rng.choice(WORK_TYPES)), "workRole": dict(role),
                    "agreement": agr, "locationId": location_id, "businessUnitId": department_id,
                    "timeStart": iso(begin), "timeEnd": iso(begin + dt.timedelta(minutes=int(hours * 60))),
                    "actualHours": hours * sign, "hoursDeduct": ZERO, "billableOption": option,
                    "hoursBilled": billed_hours, "agreementHours": covered, "agreementAmount": _money(covered * rate_h),
                    "invoiceHours": billed_hours - covered if option == "Billable" else ZERO,
                    "notes": rng.choice(("Replaced failed drive: RAID rebuilt", "Onboarded new user — O'Neil",
                                         "Firewall firmware update", "Printer \"HP-2\" driver fix")),
                    "internalNotes": None, "hourlyRate": rate_h, "invoice": ref, "status": entry_status,
                    "enteredBy": member["identifier"], "dateEntered": iso(begin),
                    "_info": {"lastUpdated": iso(day)}}
                service_total += line_amount("time", entry)
                data.time_entries.append(entry)
            for _ in range(1 if rng.random() < 0.2 else 0):
                expense_id += 1
                etype = dict(rng.choice(EXPENSE_TYPES))
                amount = _money(Decimal(rng.randint(500, 15000)) / 100) * sign
                exp = {
                    "id": expense_id, "company": cref, "chargeToId": 7000 + expense_id, "chargeToType": "ServiceTicket",
                    "type": etype, "member": dict(rng.choice(MEMBERS)), "classification": {"id": 1, "name": "Reimbursable"},
                    "amount": amount, "invoiceAmount": amount, "billableOption": "Billable", "date": iso(day),
                    "notes": f"{etype['name']} for on-site visit", "taxes": [], "invoice": ref,
                    "locationId": location_id, "businessUnitId": department_id, "currency": dict(currency),
                    "_info": {"lastUpdated": iso(day)}}
                expense_total += line_amount("expense", exp)
                data.expenses.append(exp)

        subtotal = product_total + service_total + expense_total
        tax = _money(taxable * rate)
        data.invoices.append({
            "id": inv_id, "invoiceNumber": number, "type": inv_type,
            "status": {"id": status["id"], "name": status["name"]},
            "company": cref, "billToCompany": cref, "shipToCompany": cref,
            "applyToType": {"Agreement": "Agreement", "Standard": "Ticket"}.get(inv_type, "All"), "applyToId": 0,
            "agreement": dict(agreement) if inv_type == "Agreement" else None,
            "attention": None, "billingSite": {"id": company["id"], "name": "Main"},
            "shippingSite": {"id": company["id"], "name": "Main"}, "billingTerms": terms,
            "reference": f"Ticket #{7000 + i}" if rng.random() < 0.5 else "",
            "customerPO": f"PO-{rng.randint(1000, 9999)}" if rng.random() < 0.3 else "",
            "date": iso(day), "dueDate": iso(day + dt.timedelta(days=30 if terms["id"] == 1 else 15)),
            "locationId": location_id, "departmentId": department_id, "territoryId": None,
            "topComment": "Thank you for your business!" if rng.random() < 0.3 else "",
            "bottomComment": "Payment due per terms: 1.5%/month late fee." if rng.random() < 0.2 else "",
            "taxableFlag": rate > 0, "taxCode": tax_code, "internalNotes": "", "currency": dict(currency),
            "serviceTotal": service_total, "expenseTotal": expense_total, "productTotal": product_total,
            "agreementAmount": ZERO, "downpaymentApplied": ZERO, "previousProgressApplied": ZERO,
            "serviceAdjustmentAmount": ZERO, "subtotal": subtotal, "total": subtotal + tax, "salesTax": tax,
            "remainingDownpayment": ZERO, "payments": ZERO, "credits": ZERO, "balance": subtotal + tax,
            "specialInvoiceFlag": False,
            "_info": {"lastUpdated": iso(dt.datetime.combine(day, dt.time(17, 30))), "updatedBy": "jlee"}})
        if closed and i % exported_every == 7 and i not in (long_at, no_gl_at):
            prior.append(inv_id)
    if prior:
        data.batches.append({"batchIdentifier": PRIOR_BATCH, "invoiceIds": prior})
    if no_gl_invoice and no_gl_at >= 0:  # opt-in: a real site's stuck invoice, for the tests that are about it
        data.no_gl_invoice_ids.append(1001 + no_gl_at)
    data.other_gl = other_gl_work(rng, start, max(2, invoices // 50))
    return data


def other_gl_work(rng: random.Random, start: dt.date, n: int) -> dict[str, list[dict[str, Any]]]:
    """Unposted expense reports and procurement receipts: other tools' GL work waiting in the same interface."""
    expenses = []
    procurement = []
    for k in range(n):
        day = iso(start + dt.timedelta(days=k % 30))
        member = dict(MEMBERS[k % len(MEMBERS)])
        expenses.append({"id": 90001 + k, "amount": _money(Decimal(rng.randint(1000, 40000)) / 100), "date": day,
                         "description": f"Expense report {member['identifier']} week {k + 1}", "member": member,
                         "item": "Mileage"})
        ident, desc, price = CATALOG[k % len(CATALOG)]
        qty = Decimal(rng.choice((1, 2, 5)))
        procurement.append({"id": 95001 + k, "amount": _money(price * Decimal("0.7") * qty), "date": day,
                            "description": f"Received {qty} x {desc}", "item": ident, "poId": 300 + k,
                            "poNumber": f"PO{3000 + k}", "vendor": {"id": 9001, "identifier": "Ingram",
                                                                    "name": "Ingram Micro"},
                            "vendorNumber": "V-INGRAM"})
    return {"expense": expenses, "procurement": procurement}
