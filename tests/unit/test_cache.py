"""The invoice cache: what `list-unsynced` shows and what the sync engine treats as done."""

from __future__ import annotations

import time
from msgspec.structs import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cwqbo import money
from cwqbo.state import cache
from cwqbo.errors import UsageError
from cwqbo.models import (Address, CompanyRef, CWInvoice, InvoiceLine, invoice_from_json, invoice_json_text_and_hash,
                          invoice_to_json)
from cwqbo.state.store import Store
from cwqbo.sync.readiness import readiness


def make_invoice(cw_id: int, *, number: str | None = None, total: str = "100.00", day: int = 1,
                 company: str = "ACME", name: str = "Acme Corp", kind: str = "Standard") -> CWInvoice:
    amount = Decimal(total)
    line = InvoiceLine(kind="product", source_id=cw_id * 10, description="Widget", quantity=Decimal("1"),
                       unit_price=amount, amount=amount, taxable=False, item_key="WIDGET")
    return CWInvoice(id=cw_id, number=number or f"INV-{cw_id:05d}", type=kind, status_id=3, status_name="Closed",
                     company=CompanyRef(id=hash(company) % 1000, identifier=company, name=name),
                     date=date(2026, 1, 1) + timedelta(days=day), due_date=None, subtotal=amount,
                     sales_tax=Decimal("0"), total=amount, lines=(line,), last_updated="2026-02-01T00:00:00Z")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "cwqbo-default.db")
    yield s
    s.close()


def put(store: Store, invs: list[CWInvoice], *, unposted: set[int] | None = None, in_scope: bool = True) -> None:
    ids = {i.id for i in invs} if unposted is None else unposted
    cache.upsert_invoices(store, invs, in_scope=in_scope, unposted_ids=ids, fetched_at="2026-02-02T00:00:00Z")


def ledger(store: Store, cw_id: int, state: str, content_hash: str | None = None) -> None:
    store.db["ledger"].insert({"cw_id": cw_id, "state": state, "content_hash": content_hash, "qbo_id": "9"},
                              replace=True)


def test_round_trip_keeps_every_cent(store: Store) -> None:
    inv = make_invoice(1, total="1234.5678")
    put(store, [inv])
    assert cache.get(store, 1) == inv
    row = cache.unsynced(store)[0]
    assert row.total == Decimal("1234.5678") and isinstance(row.total, Decimal)
    assert row.line_count == 1 and row.company_identifier == "ACME"
    assert store.db.execute("SELECT total FROM invoices").fetchone()[0] == "1234.5678"


def test_upsert_refreshes_existing_row(store: Store) -> None:
    put(store, [make_invoice(1, total="10.00")])
    put(store, [make_invoice(1, total="12.00")])
    assert [c.total for c in cache.unsynced(store)] == [Decimal("12.00")]
    assert store.db["invoices"].count == 1


def test_unsynced_excludes_created_and_batched_but_keeps_failed_and_intent(store: Store) -> None:
    put(store, [make_invoice(i) for i in range(1, 6)])
    ledger(store, 1, "created")
    ledger(store, 2, "batched")
    ledger(store, 3, "failed")
    ledger(store, 4, "intent")
    assert [c.cw_id for c in cache.unsynced(store)] == [3, 4, 5]


def test_unsynced_requires_unposted_in_scope_and_closed(store: Store) -> None:
    put(store, [make_invoice(1), make_invoice(2), make_invoice(3), make_invoice(4)], unposted={1, 3, 4})
    cache.update_flags(store, [3], in_scope=False)
    cache.update_flags(store, [4], closed=False)
    assert [c.cw_id for c in cache.unsynced(store)] == [1]
    cache.update_flags(store, [1], unposted=False)
    assert cache.unsynced(store) == []


def test_unsynced_filters_and_sorts(store: Store) -> None:
    put(store, [make_invoice(1, day=5, total="50", company="ZED", name="Zed Ltd"),
                make_invoice(2, day=1, total="900", company="ACME", name="Acme Corp"),
                make_invoice(3, day=9, total="75.5", company="BETA", name="Beta \"Quoted\" Inc")])
    assert [c.cw_id for c in cache.unsynced(store)] == [2, 1, 3]
    assert [c.cw_id for c in cache.unsynced(store, sort="total")] == [2, 3, 1]
    assert [c.cw_id for c in cache.unsynced(store, sort="company")] == [2, 3, 1]
    assert [c.cw_id for c in cache.unsynced(store, sort="number", limit=2)] == [1, 2]
    assert [c.cw_id for c in cache.unsynced(store, since=date(2026, 1, 6))] == [1, 3]
    assert [c.cw_id for c in cache.unsynced(store, company="acme")] == [2]
    assert [c.cw_id for c in cache.unsynced(store, company='"quoted"')] == [3]
    with pytest.raises(UsageError, match="unknown sort"):
        cache.unsynced(store, sort="colour")


def test_changed_flags_synced_invoice_edited_in_cw(store: Store) -> None:
    a, b = make_invoice(1), make_invoice(2)
    put(store, [a, b])
    ledger(store, 1, "created", a.content_hash())
    ledger(store, 2, "batched", b.content_hash())
    assert cache.changed(store) == []
    put(store, [replace(a, total=Decimal("101.00"))])
    got = cache.changed(store)
    assert [(c.cached.cw_id, c.state, c.synced_hash) for c in got] == [(1, "created", a.content_hash())]
    assert got[0].cached.total == Decimal("101.00")


def test_get_missing_is_a_clear_error_and_by_number(store: Store) -> None:
    put(store, [make_invoice(7, number="A-7")])
    with pytest.raises(UsageError, match="invoice id 8 is not in the local cache"):
        cache.get(store, 8)
    assert cache.by_number(store, "A-7").id == 7
    assert cache.by_number(store, "a-7").id == 7
    assert cache.by_number(store, "nope") is None
    assert cache.counts(store) == {"cached": 1, "in_scope": 1, "unsynced": 1}


def test_row_hash_and_json_match_the_models_definitions() -> None:
    inv = replace(make_invoice(3, total="0.10"), extra={"ticket": "T#1 \"x\" é", "n": 5})
    row = cache.invoice_row(inv, in_scope=True, unposted=True, fetched_at="t")
    assert row["content_hash"] == inv.content_hash()
    assert money.loads(row["data"]) == invoice_to_json(inv)  # the same record (bookkeeping fields last)
    assert invoice_from_json(money.loads(row["data"])) == inv


def test_ten_thousand_cached_invoices_list_correctly_and_quickly(store: Store) -> None:
    base = cache.invoice_row(make_invoice(1), in_scope=True, unposted=True, fetched_at="t")
    rows = []
    for i in range(1, 10_001):
        rows.append({**base, "cw_id": i, "number": f"INV-{i:05d}", "total": f"{i}.{i % 100:02d}",
                     "date": (date(2026, 1, 1) + timedelta(days=i % 300)).isoformat(), "unposted": int(bool(i % 10))})
    store.db["invoices"].insert_all(rows)
    with store.transaction():
        for i in range(1, 10_001, 7):
            ledger(store, i, "created")
    t0 = time.perf_counter()
    rows = cache.unsynced(store)
    elapsed = time.perf_counter() - t0
    expected = {i for i in range(1, 10_001) if i % 10 and (i - 1) % 7}
    assert {r.cw_id for r in rows} == expected
    assert len(rows) == len(expected)
    assert sum((r.total for r in rows), Decimal(0)) == sum(
        (Decimal(f"{i}.{i % 100:02d}") for i in expected), Decimal(0))
    assert elapsed < 5  # generous sanity bound; typical is well under 0.2 s


def test_readiness_is_memoised_but_never_stale(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from cwqbo.mapping import document as mapping
    from cwqbo.settings.prefs import Prefs

    put(store, [make_invoice(1), make_invoice(2, number="N" * 22)])
    prefs = Prefs()
    first = readiness(store, cache.unsynced(store, sort="number"), prefs)
    assert first[0] == ("ready", "") and first[1][0] == "invalid" and "22 characters" in first[1][1]

    calls: list[int] = []
    real = mapping.readiness
    monkeypatch.setattr("cwqbo.sync.readiness.judge",
                        lambda inv, p, **kw: calls.append(inv.id) or real(inv, p, **kw))
    assert readiness(store, cache.unsynced(store, sort="number"), prefs) == first
    assert calls == []  # nothing changed: answered from the memo

    prefs.fields.docnumber_prefix = "X"  # prefs changed: every verdict is judged again
    again = readiness(store, cache.unsynced(store, sort="number"), prefs)
    assert sorted(calls) == [1, 2] and again[1][0] == "invalid"

    calls.clear()
    put(store, [make_invoice(1, total="99.00")])  # content changed: only that invoice is judged again
    readiness(store, cache.unsynced(store, sort="number"), prefs)
    assert calls == [1]


# A record with every kind of text and number the cache must keep byte for byte: its JSON text and content hash as
# the stdlib encoder wrote them before the encoding moved to msgspec. A ledger holds such hashes from earlier runs;
# if they changed, every synced invoice would look edited in ConnectWise.
GOLDEN = CWInvoice(
    id=7, number="INV-7 «Ünïcode» \"quoted\" back\\slash", type="Standard", status_id=4, status_name="Closed",
    company=CompanyRef(12, "AcmeDental", "Acme Dental\u2028Group\x7f\x01\ttab\nnew"), date=date(2026, 11, 30),
    due_date=None, subtotal=Decimal("1E+2"), sales_tax=Decimal("0.0000001"), total=Decimal("100.00"),
    lines=(InvoiceLine("time", 3, "Remote support 😀", Decimal("1.50"), Decimal("66.6667"), Decimal("100.00"), True,
                       "Remote", service_date=date(2026, 11, 2), member="jdoe", hours=Decimal("-0")),),
    billing_address=Address("1 Main", city="Zürich"), extra={"ticket": "#12", "nested": {"n": [1, "x", None]}},
    last_updated="2026-11-30T10:00:00Z")
GOLDEN_TEXT = (
    '{"id":7,"number":"INV-7 «Ünïcode» \\"quoted\\" back\\\\slash","type":"Standard","company":{"id":12,'
    '"identifier":"AcmeDental","name":"Acme Dental\u2028Group\x7f\\u0001\\ttab\\nnew"},"date":"2026-11-30",'
    '"due_date":null,"subtotal":"1E+2","sales_tax":"1E-7","total":"100.00","lines":[{"kind":"time","source_id":3,'
    '"description":"Remote support 😀","quantity":"1.50","unit_price":"66.6667","amount":"100.00","taxable":true,'
    '"item_key":"Remote","service_date":"2026-11-02","member":"jdoe","work_type":null,"work_role":null,"ticket":null,'
    '"notes":null,"hours":"-0","expense_type":null}],"bill_to":null,"terms":null,"customer_po":null,"reference":null,'
    '"location_id":null,"department_id":null,"tax_code":null,"taxable":true,"currency":null,"billing_address":'
    '{"line1":"1 Main","line2":"","city":"Zürich","state":"","zip":"","country":""},"shipping_address":null,'
    '"top_comment":null,"bottom_comment":null,"site_name":null,"extra":{"ticket":"#12","nested":{"n":[1,"x",null]}},'
    '"status_id":4,"status_name":"Closed","last_updated":"2026-11-30T10:00:00Z"}')
GOLDEN_HASH = "d319d4eb23ed43027998e90259a585e7"


def test_the_cached_text_and_content_hash_are_byte_for_byte_those_of_earlier_versions(store: Store) -> None:
    assert invoice_json_text_and_hash(GOLDEN) == (GOLDEN_TEXT, GOLDEN_HASH)
    assert GOLDEN.content_hash() == GOLDEN_HASH
    put(store, [GOLDEN])
    row = store.db.execute("select data, content_hash from invoices where cw_id = 7").fetchone()
    assert tuple(row) == (GOLDEN_TEXT, GOLDEN_HASH)
    assert invoice_from_json(money.loads(GOLDEN_TEXT)) == GOLDEN


@pytest.mark.parametrize("extra", [{"po": 1.5}, {"nested": [{"x": 0.1}]}])
def test_a_float_in_a_record_is_refused_not_stored_as_if_exact(store: Store, extra: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="float"):
        put(store, [replace(GOLDEN, extra=extra)])
    assert store.db.execute("select count(*) from invoices").fetchone()[0] == 0


def test_the_unsynced_listing_and_its_summary_read_an_index_in_listing_order(store: Store) -> None:
    """At 100,000 cached invoices, reading each ~2 KB row (its record) or sorting them is most of list-unsynced's
    second: the summary and the items must come from idx_invoices_unsynced, in the date order, with no sort."""
    put(store, [make_invoice(i, day=i % 3) for i in range(1, 7)])
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    count, total = cache.unsynced_summary(store)
    listed = [cw_id for cw_id, _, _ in cache.unsynced_json(store, "prefs")]
    store.db.conn.set_trace_callback(None)
    assert (count, total) == (6, Decimal("600.00"))
    assert listed == [3, 6, 1, 4, 2, 5]  # date, then number
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2
    for sql in selects:
        plan = " ".join(str(row[3]) for row in store.db.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
        assert "idx_invoices_unsynced" in plan and "TEMP B-TREE" not in plan, plan
