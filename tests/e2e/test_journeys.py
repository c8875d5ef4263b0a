"""The user journeys of issue 4, end to end: the `cwqbo` command in a subprocess against the loopback sandbox.

Each test asserts what a user would notice — the text and exit code of the command, and what QuickBooks
and ConnectWise hold afterwards — never the ledger's internals.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from cwqbo import money
from cwqbo.sandbox.generator import LONG_INVOICE_NUMBER
from cwqbo.sandbox.server import (
    CW_CLIENT_ID,
    CW_CODEBASE,
    CW_COMPANY,
    CW_PRIVATE_KEY,
    CW_PUBLIC_KEY,
)
from tests.e2e.harness import E2E, make_e2e

pytestmark = pytest.mark.e2e

LONG_ID = 1004  # seed 5, 12 invoices: the seeded 30-character invoice number (a credit memo)
NORTHWIND = "Northwind Traders"  # CW company 1; the seeded QBO company already has a Vendor of that name
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


@pytest.fixture
def e2e(home: Path) -> Iterator[E2E]:
    yield from make_e2e(home, invoices=12, seed=5)
    for term in list(Terminal.opened):
        term.close()
    Terminal.opened.clear()


def _json(r: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert r.stdout.strip(), f"no JSON on stdout (exit {r.returncode}): {r.stderr}"
    body: dict[str, Any] = money.loads(r.stdout)
    return body


def _qbo_doc(e: E2E, number: str) -> dict[str, Any]:
    found = [d for d in e.docs() if d.get("DocNumber") == number]
    assert len(found) == 1, f"expected one QBO document {number}, found {len(found)}"
    return found[0]


def _sales_amounts(doc: dict[str, Any]) -> Counter[Decimal]:
    return Counter(money.to_decimal(ln["Amount"]) for ln in doc["Line"] if ln.get("DetailType") == "SalesItemLineDetail")


def _without_long_invoice(e: E2E) -> None:
    """A sandbox where nothing fails on purpose: the 30-character invoice is not Closed (so out of scope)."""
    e.sandbox.cw.reopen_invoice(LONG_ID)
    e.must_fail.clear()


# -- 1. an operator ticks invoices on a real terminal -------------------------------------------------------

class Terminal:
    """`cwqbo ARGS` on a pseudo-terminal: what the operator sees, and keys the operator presses."""

    opened: ClassVar[list[Terminal]] = []  # closed by the e2e fixture, whatever the test's outcome

    def __init__(self, e: E2E, *args: str) -> None:
        self.opened.append(self)
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        env = e.env({"TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"})
        self.proc = subprocess.Popen([sys.executable, "-m", "cwqbo", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True, start_new_session=True)
        os.close(slave)
        self.raw = b""

    def read_until(self, needle: str, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.screen:
                return True
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                self.raw += chunk
            elif self.proc.poll() is not None:
                break
        return needle in self.screen

    def press(self, *keys: str) -> None:
        for key in keys:
            os.write(self.master, key.encode())
            time.sleep(0.1)  # prompt_toolkit redraws between keys, as it does for a person

    def finish(self, timeout: float = 30.0) -> int:
        self.read_until("\x00never", timeout=timeout)  # drain until the child exits and closes the terminal
        code = self.proc.wait(timeout=5)
        self.close()
        return code

    def close(self) -> None:
        """Kill the child if a failed assertion left it waiting for keys; release the terminal."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", errors="replace"))

    def offered(self, numbers: set[str]) -> list[str]:
        """The checklist's invoice numbers, top to bottom, from its first drawing."""
        text = self.screen
        start = text.index("space to tick")
        return sorted((n for n in numbers if n in text[start:]), key=lambda n: text.index(n, start))


DOWN, SPACE, ENTER = "\x1b[B", " ", "\r"


def test_operator_ticks_two_invoices_and_only_those_reach_quickbooks(e2e: E2E) -> None:
    unsynced = {str(i["number"]) for i in e2e.json_of("list-unsynced")["data"]["invoices"]}
    term = Terminal(e2e, "sync", "--select")
    assert term.read_until("space to tick"), f"no checklist appeared:\n{term.screen[-2000:]}"
    assert all(term.read_until(n) for n in unsynced), "the checklist lists every unsynced invoice"
    offered = term.offered(unsynced)
    assert set(offered) == unsynced and NORTHWIND in term.screen
    term.press(SPACE, DOWN, DOWN, SPACE, ENTER)  # tick the first and the third
    assert term.read_until("Sync 2 invoice(s) totalling"), term.screen[-2000:]  # confirm before sending
    term.press("y", ENTER)
    code = term.finish()
    ticked = [offered[0], offered[2]]
    assert code == 0, term.screen[-3000:]
    assert "done (2 selections)" in term.screen
    assert sorted(d["DocNumber"] for d in e2e.docs()) == sorted(ticked)
    assert "2 sent to QuickBooks, 0 failed" in term.screen
    batches = e2e.cw_batches()
    assert len(batches) == 1 and batches[0]["batchIdentifier"] in term.screen
    ids = set(batches[0]["invoices"])
    by_number = {str(i["invoiceNumber"]): int(i["id"]) for i in e2e.sandbox.cw.invoices()}
    assert ids == {by_number[n] for n in ticked}
    left = {str(i["number"]) for i in e2e.json_of("list-unsynced")["data"]["invoices"]}
    assert left == unsynced - set(ticked)


def test_enter_without_ticking_syncs_nothing(e2e: E2E) -> None:
    term = Terminal(e2e, "sync", "--select")
    assert term.read_until("space to tick"), term.screen[-2000:]
    term.press(ENTER)
    assert term.finish() == 0
    assert "nothing selected" in term.screen
    assert e2e.docs() == [] and e2e.cw_batches() == []


def test_checklist_shows_each_invoice_date(e2e: E2E) -> None:
    term = Terminal(e2e, "sync", "--select")
    assert term.read_until("space to tick"), term.screen[-2000:]
    term.read_until("20010")
    term.press(ENTER)
    term.finish()
    row = next(line for line in term.screen.splitlines() if "20000" in line and "Acme: West" in line)
    assert "2026-09-01" in row, row


# -- 2. cron --------------------------------------------------------------------------------------------------

def test_cron_in_automatic_mode_is_silent_when_everything_syncs(e2e: E2E) -> None:
    _without_long_invoice(e2e)
    assert e2e.run_cli("prefs", "set", "sync_mode", "automatic").returncode == 0
    r = e2e.run_cli("sync", "--all", env={"CWQBO_SCHEDULED": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "", "cron mails any output: a clean scheduled run prints nothing"
    assert "Traceback" not in r.stderr
    e2e.assert_exactly_once()
    run = e2e.json_of("history")["data"]["runs"][0]
    assert run["trigger"] == "scheduled" and run["created"] == len(e2e.expected) and run["failed"] == 0


def test_cron_in_automatic_mode_reports_only_the_failure(e2e: E2E) -> None:
    assert e2e.run_cli("prefs", "set", "sync_mode", "automatic").returncode == 0
    r = e2e.run_cli("sync", "--all", env={"CWQBO_SCHEDULED": "1"})
    assert r.returncode == 1, r.stderr
    out = r.stdout + r.stderr
    assert LONG_INVOICE_NUMBER in out and "QuickBooks allows 21" in out
    synced = [inv["invoiceNumber"] for inv in e2e.expected.values()]
    assert not [n for n in synced if re.search(rf"\b{n}\b", r.stdout.split("sent to QuickBooks")[0])], (
        "only the failure is listed, not the invoices that went through")
    e2e.assert_exactly_once()


def test_cron_in_manual_mode_does_nothing(e2e: E2E) -> None:
    before = e2e.remote_state()
    r = e2e.run_cli("sync", "--all", env={"CWQBO_SCHEDULED": "1"})
    assert r.returncode == 0 and r.stdout == ""
    assert "manual" in r.stderr
    assert e2e.docs() == [] and e2e.cw_batches() == []
    assert e2e.remote_state()["cw"]["batches"] == before["cw"]["batches"]
    assert e2e.json_of("history")["data"]["runs"] == [], "a no-op cron run leaves no run behind"


# -- 3. support reads the history -----------------------------------------------------------------------------

def test_history_agrees_with_what_was_synced(e2e: E2E) -> None:
    sync = _json(e2e.run_cli("sync", "--all", "--json"))["data"]
    created = {i["number"]: i for i in sync["items"] if i["outcome"] == "created"}
    qbo_ids = {str(d["DocNumber"]): str(d["Id"]) for d in e2e.docs()}
    assert {n: str(i["qbo_id"]) for n, i in created.items()} == qbo_ids
    assert all(i["intuit_tid"] for i in created.values()), "every created document has an Intuit tid"

    runs = _json(e2e.run_cli("history", "--json"))["data"]["runs"]
    assert len(runs) == 1
    run = runs[0]
    assert run["id"] == sync["run_id"] and run["batch_identifier"] == sync["batch_identifier"]
    assert (run["created"], run["failed"]) == (len(created), 1)
    assert run["batch_identifier"] == e2e.cw_batches()[0]["batchIdentifier"]

    text = e2e.run_cli("history")
    assert text.returncode == 0 and sync["batch_identifier"] in text.stdout
    row = next(line for line in text.stdout.splitlines() if line.split()[:1] == [str(run["id"])])
    assert f" {len(created)} " in row and " 1 " in row and "partial" in row, row  # sent, failed, status

    shown = _json(e2e.run_cli("history", "show", str(run["id"]), "--json"))["data"]
    items = {str(i.get("number") or i.get("invoice_number")): i for i in _items(shown)}
    for number, item in created.items():
        assert str(items[number]["qbo_id"]) == qbo_ids[number]
        assert items[number]["intuit_tid"] == item["intuit_tid"]
    assert items[LONG_INVOICE_NUMBER]["outcome"] == "failed"
    show_text = e2e.run_cli("history", "show", str(run["id"]))
    assert show_text.returncode == 0
    assert all(n in show_text.stdout for n in created) and LONG_INVOICE_NUMBER in show_text.stdout

    number = min(created)
    story = _json(e2e.run_cli("history", "--invoice", number, "--json"))["data"]["invoice"]
    assert story["ledger"]["state"] == "batched" and str(story["ledger"]["qbo_id"]) == qbo_ids[number]
    assert story["ledger"]["intuit_tid"] == created[number]["intuit_tid"]
    assert story["batch"]["identifier"] == sync["batch_identifier"]
    story_text = e2e.run_cli("history", "--invoice", number)
    assert story_text.returncode == 0 and number in story_text.stdout and qbo_ids[number] in story_text.stdout

    failed = _json(e2e.run_cli("history", "--failed", "--json"))["data"]
    assert [r["id"] for r in failed["runs"]] == [run["id"]]
    assert [a["invoice_number"] for a in failed["attention"]] == [LONG_INVOICE_NUMBER]
    assert "21" in failed["attention"][0]["detail"]
    failed_text = e2e.run_cli("history", "--failed")
    assert failed_text.returncode == 0 and LONG_INVOICE_NUMBER in failed_text.stdout


def _items(data: Any) -> list[dict[str, Any]]:
    for key in ("items", "invoices", "run_items"):
        if isinstance(data, dict) and isinstance(data.get(key), list):
            return list(data[key])
    if isinstance(data, dict):
        for value in data.values():
            found = _items(value)
            if found:
                return found
    return []


# -- 4. beside another tool that already batched some invoices ------------------------------------------------

def _post_foreign_batch(e: E2E, identifier: str, ids: list[int]) -> None:
    """What WiseSync does through the CW REST API: export those invoices, then batch the export's GL entries."""
    auth = base64.b64encode(f"{CW_COMPANY}+{CW_PUBLIC_KEY}:{CW_PRIVATE_KEY}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "clientId": CW_CLIENT_ID, "Content-Type": "application/json"}
    api = f"{e.url}/{CW_CODEBASE}apis/3.0/finance/accounting"
    rows = [e.sandbox.cw.unposted_row_id(i) for i in ids]
    export = httpx.post(f"{api}/export", timeout=10, headers=headers, content=json.dumps(
        {"batchIdentifier": identifier, "exportInvoicesFlag": True, "includedInvoiceIds": rows}))
    assert export.status_code == 200, export.text
    gl = [int(g) for t in export.json()["transactions"] for g in t["glEntryIds"].split(",")]
    r = httpx.post(f"{api}/batches", timeout=10, headers=headers,
                   content=json.dumps({"batchIdentifier": identifier, "exportInvoicesFlag": True,
                                       "processedRecordIds": gl}))
    assert r.status_code in (200, 201), r.text


def test_invoices_batched_by_another_tool_are_left_alone(e2e: E2E) -> None:
    theirs = sorted(e2e.expected)[:3]
    their_numbers = {e2e.expected[i]["invoiceNumber"] for i in theirs}
    _post_foreign_batch(e2e, "WISESYNC-0001", theirs)
    for cw_id in theirs:
        del e2e.expected[cw_id]

    listed = {str(i["number"]) for i in e2e.json_of("list-unsynced")["data"]["invoices"]}
    assert not listed & their_numbers
    text = e2e.run_cli("list-unsynced")
    assert text.returncode == 0 and not [n for n in their_numbers if re.search(rf"\b{n}\b", text.stdout)]

    r = e2e.run_cli("sync", "--all", "--json")
    assert r.returncode == 1, r.stderr  # the 30-character number, alone
    assert not their_numbers & {i["number"] for i in _json(r)["data"]["items"]}
    assert not their_numbers & set(e2e.doc_counts()), "QBO got documents for invoices another tool exported"
    e2e.assert_exactly_once()  # cwqbo batches hold exactly the invoices it sent: none of theirs
    foreign = [b for b in e2e.sandbox.cw.batches() if b["batchIdentifier"] == "WISESYNC-0001"]
    assert len(foreign) == 1 and sorted(e2e.sandbox.cw.invoices_in_batch(foreign[0]["id"])) == theirs


def test_invoices_batched_by_another_tool_after_cwqbo_listed_them_are_left_alone(e2e: E2E) -> None:
    """The local cache still thinks they are unposted; sync must re-read ConnectWise and leave them alone."""
    before = {str(i["number"]) for i in e2e.json_of("list-unsynced")["data"]["invoices"]}
    theirs = sorted(e2e.expected)[-2:]
    their_numbers = {e2e.expected[i]["invoiceNumber"] for i in theirs}
    assert their_numbers <= before
    _post_foreign_batch(e2e, "WISESYNC-0002", theirs)
    for cw_id in theirs:
        del e2e.expected[cw_id]
    r = e2e.run_cli("sync", "--all", "--json")
    assert r.returncode == 1, r.stderr
    assert not their_numbers & set(e2e.doc_counts())
    e2e.assert_exactly_once()
    listed = {str(i["number"]) for i in e2e.json_of("list-unsynced")["data"]["invoices"]}
    assert listed == {LONG_INVOICE_NUMBER}


# -- 5. a re-run ----------------------------------------------------------------------------------------------

def test_rerun_syncs_nothing_new(e2e: E2E) -> None:
    _without_long_invoice(e2e)
    first = e2e.run_cli("sync", "--all", "--json")
    assert first.returncode == 0 and _json(first)["data"]["created"] == len(e2e.expected)
    docs, batches = len(e2e.docs()), len(e2e.cw_batches())

    rerun = e2e.run_cli("sync", "--all", "--json")
    body = _json(rerun)
    assert rerun.returncode == 0 and body["exit_code"] == 0
    assert body["data"]["created"] == 0 and body["data"]["failed"] == 0 and body["data"]["batch_identifier"] is None
    quiet = e2e.run_cli("sync", "--all")
    assert quiet.returncode == 0 and quiet.stdout == "" and "Traceback" not in quiet.stderr
    assert len(e2e.docs()) == docs and len(e2e.cw_batches()) == batches == 1
    listed = e2e.run_cli("list-unsynced", "--json")
    assert _json(listed)["data"]["invoices"] == []


def test_rerun_of_one_invoice_says_it_is_already_in_quickbooks(e2e: E2E) -> None:
    number = next(iter(e2e.expected.values()))["invoiceNumber"]
    assert e2e.run_cli("sync", "--invoice", number).returncode == 0
    qbo_id = _qbo_doc(e2e, number)["Id"]
    again = e2e.run_cli("sync", "--invoice", number)
    assert again.returncode == 0, again.stderr
    assert "skipped" in again.stdout and f"already in QuickBooks (Invoice {qbo_id})" in again.stdout
    assert "0 sent to QuickBooks, 0 failed, 1 skipped" in again.stdout
    assert e2e.doc_counts()[number] == 1 and len(e2e.cw_batches()) == 1


def test_rerun_on_a_terminal_says_there_is_nothing_to_sync(e2e: E2E) -> None:
    _without_long_invoice(e2e)
    assert e2e.run_cli("sync", "--all").returncode == 0
    docs = len(e2e.docs())
    term = Terminal(e2e, "sync", "--all")
    assert term.finish() == 0, term.screen[-2000:]
    assert "Nothing to sync: every Closed invoice in scope is already in QuickBooks." in term.screen
    assert len(e2e.docs()) == docs and len(e2e.cw_batches()) == 1


# -- 6. a credit memo -----------------------------------------------------------------------------------------

def test_credit_memo_becomes_a_qbo_credit_memo_with_positive_lines(e2e: E2E) -> None:
    inv = e2e.sandbox.cw.add_invoice(
        company="Café Zürich GmbH", invoiceNumber="CM-7001", tax_rate=Decimal("0.0825"),
        products=[{"quantity": Decimal(-2), "price": Decimal("289.99"), "taxableFlag": True},
                  {"quantity": Decimal(-1), "price": Decimal("22.00"), "taxableFlag": False}])
    assert (inv["total"], inv["salesTax"]) == (Decimal("-649.83"), Decimal("-47.85"))
    r = e2e.run_cli("sync", "--invoice", "CM-7001")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "CM-7001" in r.stdout and "created" in r.stdout and "-649.83" in r.stdout
    doc = _qbo_doc(e2e, "CM-7001")
    assert doc["_entity"] == "CreditMemo"
    assert money.to_decimal(doc["TotalAmt"]) == Decimal("649.83")
    assert money.to_decimal(doc["TxnTaxDetail"]["TotalTax"]) == Decimal("47.85")
    assert _sales_amounts(doc) == Counter({Decimal("579.98"): 1, Decimal("22.00"): 1})
    sales = [ln["SalesItemLineDetail"] for ln in doc["Line"] if ln.get("DetailType") == "SalesItemLineDetail"]
    assert all(money.to_decimal(d["Qty"]) > 0 and money.to_decimal(d["UnitPrice"]) > 0 for d in sales)
    assert e2e.sandbox.qbo.documents("Invoice") == [], "a credit memo is never sent as an Invoice"
    story = e2e.json_of("history", "--invoice", "CM-7001")["data"]["invoice"]["ledger"]
    assert story["entity"] == "CreditMemo" and str(story["qbo_id"]) == str(doc["Id"])


# -- 7. time and expense lines --------------------------------------------------------------------------------

def _add_service_invoice(e: E2E, number: str) -> None:
    role = {"id": 1, "name": "Engineer"}
    e.sandbox.cw.add_invoice(
        company="Acme: West", invoiceNumber=number,
        products=[{"quantity": Decimal(1), "price": Decimal("100.00")}],
        time_entries=[{"actualHours": Decimal("1.5"), "hourlyRate": Decimal("145.00"), "workRole": role,
                       "chargeToId": 7101, "notes": "Replaced failed drive"},
                      {"actualHours": Decimal("0.5"), "hourlyRate": Decimal("145.00"), "workRole": role,
                       "chargeToId": 7102, "notes": "Firewall firmware update"}],
        expenses=[{"amount": Decimal("23.40"), "notes": "Parking"}])


def test_time_and_expense_lines_reach_quickbooks_with_exact_amounts(e2e: E2E) -> None:
    _add_service_invoice(e2e, "SVC-1")
    r = e2e.run_cli("sync", "--invoice", "SVC-1")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = _qbo_doc(e2e, "SVC-1")
    assert doc["_entity"] == "Invoice" and money.to_decimal(doc["TotalAmt"]) == Decimal("413.40")
    # default time detail (summary): the two Engineer/Regular entries become one 2-hour line
    assert _sales_amounts(doc) == Counter({Decimal("100.00"): 1, Decimal("290.00"): 1, Decimal("23.40"): 1})


def test_detailed_time_gives_one_line_per_time_entry(e2e: E2E) -> None:
    r = e2e.run_cli("prefs", "set", "time.detail", "detailed")
    assert r.returncode == 0, r.stderr
    _add_service_invoice(e2e, "SVC-2")
    r = e2e.run_cli("sync", "--invoice", "SVC-2")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = _qbo_doc(e2e, "SVC-2")
    assert money.to_decimal(doc["TotalAmt"]) == Decimal("413.40")
    assert _sales_amounts(doc) == Counter({Decimal("100.00"): 1, Decimal("217.50"): 1, Decimal("72.50"): 1,
                                           Decimal("23.40"): 1})
    descriptions = " ".join(str(ln.get("Description", "")) for ln in doc["Line"])
    assert "Replaced failed drive" in descriptions and "Firewall firmware update" in descriptions


# -- 8. a customer name already taken by a QBO Vendor ---------------------------------------------------------

def test_customer_name_collision_gets_one_suffixed_customer_reused_next_time(e2e: E2E) -> None:
    northwind = next(i for i in e2e.sandbox.cw.invoices() if i["company"]["name"] == NORTHWIND)
    r = e2e.run_cli("sync", "--invoice", northwind["invoiceNumber"])
    assert r.returncode == 0, r.stdout + r.stderr
    named = [c for c in e2e.sandbox.qbo.documents("Customer") if NORTHWIND in str(c.get("DisplayName"))]
    assert [c["DisplayName"] for c in named] == [f"{NORTHWIND} (CW {northwind['company']['id']})"]
    first = _qbo_doc(e2e, northwind["invoiceNumber"])
    assert str(first["CustomerRef"]["value"]) == str(named[0]["Id"])
    assert [v["DisplayName"] for v in e2e.sandbox.qbo.documents("Vendor")].count(NORTHWIND) == 1

    e2e.sandbox.cw.add_invoice(company=NORTHWIND, invoiceNumber="NW-2",
                               products=[{"quantity": Decimal(3), "price": Decimal("22.00")}])
    r = e2e.run_cli("sync", "--invoice", "NW-2")
    assert r.returncode == 0, r.stdout + r.stderr
    again = [c for c in e2e.sandbox.qbo.documents("Customer") if NORTHWIND in str(c.get("DisplayName"))]
    assert [c["Id"] for c in again] == [named[0]["Id"]], "the suffixed customer is made once and reused"
    assert str(_qbo_doc(e2e, "NW-2")["CustomerRef"]["value"]) == str(named[0]["Id"])


# -- 9. an invoice number QBO cannot take ---------------------------------------------------------------------

def test_overlong_invoice_number_fails_alone_with_its_reason(e2e: E2E) -> None:
    r = e2e.run_cli("sync", "--all")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert LONG_INVOICE_NUMBER in r.stdout
    assert f"invoice number {LONG_INVOICE_NUMBER} is 30 characters; QuickBooks allows 21" in r.stdout
    assert f"{len(e2e.expected)} sent to QuickBooks, 1 failed" in r.stdout
    e2e.assert_exactly_once()
    assert LONG_INVOICE_NUMBER not in e2e.doc_counts()
    assert LONG_ID not in e2e.batched_ids()
    listed = e2e.json_of("list-unsynced")["data"]["invoices"]
    assert [i["number"] for i in listed] == [LONG_INVOICE_NUMBER]


def test_overlong_invoice_number_failure_says_how_to_fix_it(e2e: E2E) -> None:
    r = e2e.run_cli("sync", "--all")
    assert r.returncode == 1
    out = " ".join((r.stdout + r.stderr).split())  # the reason may wrap inside its table column
    assert "renumber the invoice in ConnectWise to at most 21 characters" in out, out
    assert "docnumber_prefix" not in out, "no prefix is set, so clearing one is not the fix"
