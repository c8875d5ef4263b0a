"""Payments back to ConnectWise end to end: the real CLI in a subprocess against the loopback sandbox.

After invoices are synced, payments are received in the simulated QuickBooks (full, partial, across invoices, a
credit memo applied), some voided, deleted or edited; `cwqbo sync --payments` must leave every QuickBooks payment
in ConnectWise exactly once and every ConnectWise balance equal to QuickBooks' to the cent — also when the process
is killed (SIGKILL) at each payments crashpoint of a 100-payment run and then re-run. Scenarios have their own
sandbox and CWQBO_HOME and run concurrently (a module fixture); each test audits one.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from cwqbo import money
from tests.e2e.harness import KILLED, E2E, make_e2e

pytestmark = pytest.mark.e2e

WORKERS = 4
BIG = 130  # invoices: ≥ 100 of them reach QuickBooks, one payment each
DAY = "2026-03-02"
KILLS = ["payments.after_intent", "payments.after_intent:40", "payments.after_post", "payments.after_post:70",
         "payments.before_record", "payments.before_record:30", "payments.after_delete", "payments.after_delete:5"]


@dataclass
class Played:
    e2e: E2E
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


def _invoices(e: E2E) -> list[dict[str, Any]]:
    return sorted((d for d in e.docs() if d["_entity"] == "Invoice"), key=lambda d: int(d["Id"]))


def _receive(e: E2E, doc: dict[str, Any], amount: Decimal, *more: tuple[str, dict[str, Any], Decimal]) -> str:
    lines = [["Invoice", doc["Id"], amount]] + [[ent, d["Id"], a] for ent, d, a in more]
    out = e.control("qbo/payments", {"action": "receive", "customer_id": doc["CustomerRef"]["value"],
                                     "lines": lines, "date": DAY})
    return str(out["Payment"]["Id"])


def _payments(e: E2E) -> dict[str, Any]:
    r = e.run_cli("sync", "--payments", "--json")
    assert r.returncode in (0, 1), r.stderr
    body: dict[str, Any] = money.loads(r.stdout)["data"]["payments"]
    return body


def _cw_id(e: E2E, qbo_id: str, entity: str = "Invoice") -> int:
    import sqlite3

    db = sqlite3.connect(e.home / "cwqbo-demo.db")
    try:
        return int(db.execute("select cw_id from ledger where qbo_id = ? and entity = ?", [qbo_id, entity])
                   .fetchone()[0])
    finally:
        db.close()


def assert_payments_match(e: E2E, *, skip: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    """Every cwqbo invoice: CW balance == QBO balance to the cent, and no CW payment id claimed twice."""
    for doc in _invoices(e):
        cw_id = _cw_id(e, str(doc["Id"]))
        if cw_id in skip:
            continue
        qbo_doc = e.sandbox.qbo.documents("Invoice")
        balance = next(money.to_decimal(d["Balance"]) for d in qbo_doc if d["Id"] == doc["Id"])
        cw_balance = money.to_decimal(e.sandbox.cw.invoice(cw_id)["balance"])
        assert cw_balance == balance, f"invoice {doc['DocNumber']}: CW balance {cw_balance} != QBO {balance}"


def _scenarios(e: E2E) -> Played:
    """Full, partial, multi-invoice, credit memo applied, voided, edited, deleted, a refused invoice, another
    currency — in one company."""
    out = Played(e)
    try:
        out.runs.append(e.run_cli("sync", "--all"))
        inv = _invoices(e)
        by_customer: dict[str, list[dict[str, Any]]] = {}
        for d in inv:
            by_customer.setdefault(d["CustomerRef"]["value"], []).append(d)
        pair = next(ds for ds in by_customer.values() if len(ds) >= 2)
        credit = next(c for c in e.sandbox.qbo.documents("CreditMemo")
                      if c["CustomerRef"]["value"] in by_customer)
        with_credit = by_customer[credit["CustomerRef"]["value"]][0]
        rest = [d for d in inv if d not in pair and d is not with_credit]
        n = out.notes
        n["full"] = _receive(e, rest[0], money.to_decimal(rest[0]["TotalAmt"]))
        n["partial"] = _receive(e, rest[1], Decimal("10.01"))
        n["multi"] = _receive(e, pair[0], Decimal("5.00"), ("Invoice", pair[1], Decimal("7.25")))
        applied = min(money.to_decimal(credit["TotalAmt"]), money.to_decimal(with_credit["TotalAmt"]))
        n["credit"] = _receive(e, with_credit, applied, ("CreditMemo", credit, applied))
        n["credit_invoice"] = _cw_id(e, str(with_credit["Id"]))
        n["void"] = _receive(e, rest[2], Decimal("20.00"))
        n["edit"] = _receive(e, rest[3], Decimal("30.00"))
        n["delete"] = _receive(e, rest[4], Decimal("40.00"))
        n["refused_invoice"] = _cw_id(e, str(rest[5]["Id"]))
        e.sandbox.cw.reopen_invoice(n["refused_invoice"])  # ConnectWise takes no payment on an open invoice
        n["refused"] = _receive(e, rest[5], Decimal("1.00"))
        n["currency_invoice"] = _cw_id(e, str(rest[6]["Id"]))
        e.sandbox.cw.update_invoice(n["currency_invoice"], currency={"id": 2, "symbol": "€", "currencyCode": "EUR",
                                                                     "name": "Euro"})
        n["currency"] = _receive(e, rest[6], Decimal("2.00"))
        n["first"] = _payments(e)
        e.control("qbo/payments", {"action": "void", "id": n["void"]})
        e.control("qbo/payments", {"action": "edit", "id": n["edit"],
                                   "lines": [["Invoice", rest[3]["Id"], Decimal("25.50")]]})
        e.control("qbo/payments", {"action": "delete", "id": n["delete"]})
        n["second"] = _payments(e)
        n["third"] = _payments(e)
    except BaseException as exc:  # noqa: BLE001 - reported by the tests that audit this scenario
        out.error = exc
    return out


def _killed(e: E2E, spec: str) -> Played:
    """100+ payments, a kill -9 at `spec` during the run that posts (or reverses) them, then a re-run."""
    out = Played(e)
    try:
        out.runs.append(e.run_cli("sync", "--all"))
        inv = _invoices(e)
        count = 0
        for i, doc in enumerate(inv):
            total = money.to_decimal(doc["TotalAmt"])
            _receive(e, doc, total if i % 3 else (total / 2).quantize(Decimal("0.01")))
            count += 1
        out.notes["payments"] = count
        env = {"CWQBO_CRASH_AT": spec}
        if spec.startswith("payments.after_delete"):
            out.notes["before"] = _payments(e)
            for pid in [str(p["Id"]) for p in e.sandbox.qbo.documents("Payment")][:20]:
                e.control("qbo/payments", {"action": "void", "id": pid})
        out.runs.append(e.run_cli("sync", "--payments", env=env))
        out.notes["final"] = _payments(e)
    except BaseException as exc:  # noqa: BLE001
        out.error = exc
    return out


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Played]]:
    with contextlib.ExitStack() as stack:
        worlds = {"scenarios": stack.enter_context(contextlib.contextmanager(make_e2e)(
            tmp_path_factory.mktemp("pay-scenarios"), invoices=40, seed=5))}
        for spec in KILLS:
            worlds[spec] = stack.enter_context(contextlib.contextmanager(make_e2e)(
                tmp_path_factory.mktemp("pay-kill"), invoices=BIG, seed=7))
        with ThreadPoolExecutor(WORKERS) as pool:
            futures = {name: pool.submit(_scenarios if name == "scenarios" else _killed, e, *([] if name ==
                                         "scenarios" else [name])) for name, e in worlds.items()}
            yield {name: f.result() for name, f in futures.items()}


def _outcomes(report: dict[str, Any], pid: str) -> list[str]:
    return [i["outcome"] for i in report["items"] if i["qbo_payment_id"] == pid]


def test_full_partial_multi_invoice_and_credit_memo_payments_reach_connectwise(played: dict[str, Played]) -> None:
    p = played["scenarios"]
    assert p.error is None, repr(p.error)
    n, cw = p.notes, p.e2e.sandbox.cw
    first = n["first"]
    assert _outcomes(first, n["full"]) == ["posted"] and _outcomes(first, n["partial"]) == ["posted"]
    assert _outcomes(first, n["multi"]) == ["posted", "posted"], "one CW payment per invoice"
    credit_items = [i for i in first["items"] if i["qbo_payment_id"] == n["credit"]]
    assert [i["outcome"] for i in credit_items] == ["posted"] and credit_items[0]["credit_cw_id"]
    assert any(pay.get("credit") for pay in cw.invoice_payments(n["credit_invoice"])), "the credit memo is applied"
    assert_payments_match(p.e2e, skip={n["refused_invoice"], n["currency_invoice"]})


def test_voided_deleted_and_edited_payments_are_reversed_in_connectwise(played: dict[str, Played]) -> None:
    p = played["scenarios"]
    assert p.error is None, repr(p.error)
    second = p.notes["second"]
    assert _outcomes(second, p.notes["void"]) == ["reversed"]
    assert _outcomes(second, p.notes["delete"]) == ["reversed"]
    assert sorted(_outcomes(second, p.notes["edit"])) == ["posted", "reversed"], "edit = delete + re-post"
    assert p.notes["third"]["posted"] == 0 and p.notes["third"]["reversed"] == 0, "nothing twice"
    assert_payments_match(p.e2e, skip={p.notes["refused_invoice"], p.notes["currency_invoice"]})


def test_a_refused_invoice_and_another_currency_fail_alone_with_a_reason(played: dict[str, Played]) -> None:
    p = played["scenarios"]
    assert p.error is None, repr(p.error)
    first = p.notes["first"]
    assert first["status"] == "partial" and first["posted"] >= 6
    refused = [i for i in first["items"] if i["qbo_payment_id"] == p.notes["refused"]]
    assert [i["outcome"] for i in refused] == ["failed"] and "refused" in refused[0]["reason"]
    other = [i for i in first["items"] if i["qbo_payment_id"] == p.notes["currency"]]
    assert [i["outcome"] for i in other] == ["failed"] and "EUR" in other[0]["reason"]
    assert p.e2e.sandbox.cw.invoice_payments(p.notes["currency_invoice"]) == []


def test_no_secret_reaches_payments_output_or_the_store(played: dict[str, Played]) -> None:
    p = played["scenarios"]
    e = p.e2e
    creds = e.sandbox.credentials(e.url)
    secrets = [str(v) for side in creds.values() for k, v in side.items()
               if any(w in k.lower() for w in ("secret", "private", "token", "password")) and v]
    r = e.run_cli("sync", "--payments", "--json")
    blob = r.stdout + r.stderr + (e.home / "cwqbo-demo.db").read_bytes().decode("latin-1")
    assert secrets and not [s for s in secrets if len(s) >= 8 and s in blob]


@pytest.mark.parametrize("spec", KILLS)
def test_kill_9_during_a_100_payment_run_then_rerun_settles_exactly_once(played: dict[str, Played],
                                                                        spec: str) -> None:
    p = played[spec]
    assert p.error is None, repr(p.error)
    assert p.notes["payments"] >= 100
    assert p.runs[-1].returncode == KILLED, f"the crashpoint {spec} was never reached: {p.runs[-1].stderr[-500:]}"
    final = p.notes["final"]
    assert final["status"] == "ok" and final["failed"] == 0 and not final["mismatches"], final
    e = p.e2e
    ids = [pay["id"] for inv in e.sandbox.cw.invoices() for pay in e.sandbox.cw.invoice_payments(int(inv["id"]))]
    live = [pay for pay in e.sandbox.qbo.documents("Payment") if money.to_decimal(pay.get("TotalAmt") or 0)]
    assert len(ids) == len(set(ids)) == len(live), "every live QBO payment in ConnectWise exactly once"
    assert_payments_match(e)
