"""`cwqbo list-unsynced`: the table, --json, --csv, the empty state, and working from the cache offline."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cwqbo import http
from cwqbo.cli.main import app

CW_ARGS = ["connect", "connectwise", "--site", "127.0.0.1:8999", "--scheme", "http", "--company", "cwqbo_demo",
           "--public-key", "sandbox-public", "--client-id", "00000000-0000-4000-8000-00000000c1d0",
           "--private-key", "sandbox-private"]


@pytest.fixture
def sandbox(home: Path, runner: CliRunner) -> Iterator[Any]:
    """A connected profile talking to an in-process sandbox with a few dozen invoices."""
    from cwqbo.sandbox.server import Sandbox

    sb = Sandbox(seed=5, invoices=30)
    http.set_transport_override(sb.transport())
    result = runner.invoke(app, CW_ARGS)
    assert result.exit_code == 0, result.output
    yield sb


def expected_unsynced(sb: Any) -> dict[int, dict[str, Any]]:
    closed = {s["id"] for s in sb.cw.to_state()["billing_statuses"] if s["closedFlag"]}
    unposted = set(sb.cw.unposted_ids())
    return {r["id"]: r for r in sb.cw.invoices() if r["status"]["id"] in closed and r["id"] in unposted}


def test_table_lists_every_unsynced_invoice(sandbox: Any, runner: CliRunner) -> None:
    result = runner.invoke(app, ["list-unsynced"])
    assert result.exit_code == 0, result.output
    expected = expected_unsynced(sandbox)
    assert expected
    for raw in expected.values():
        assert raw["invoiceNumber"] in result.stdout
    assert f"{len(expected)} unsynced" in result.stdout
    assert "Traceback" not in result.output


def test_json_envelope_has_exact_totals_as_strings(sandbox: Any, runner: CliRunner) -> None:
    result = runner.invoke(app, ["list-unsynced", "--json", "--sort", "total"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["cwqbo_result_version"] == "1" and doc["command"] == "list-unsynced" and doc["status"] == "ok"
    expected = expected_unsynced(sandbox)
    got = {i["cw_id"]: i for i in doc["data"]["invoices"]}
    assert set(got) == set(expected)
    for cw_id, item in got.items():
        assert isinstance(item["total"], str)
        assert Decimal(item["total"]) == Decimal(str(expected[cw_id]["total"]))
        assert item["mapping_status"]
    totals = [Decimal(i["total"]) for i in doc["data"]["invoices"]]
    assert totals == sorted(totals, reverse=True)
    assert Decimal(doc["data"]["total"]) == sum(totals, Decimal(0))
    assert doc["data"]["refresh"]["fetched"] >= len(expected)


def test_csv_to_stdout_and_file(sandbox: Any, runner: CliRunner, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["list-unsynced", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = expected_unsynced(sandbox)
    assert {int(r["cw_id"]) for r in rows} == set(expected)
    assert all(Decimal(r["total"]) == Decimal(str(expected[int(r["cw_id"])]["total"])) for r in rows)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["list-unsynced", "--csv", "--no-refresh"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "--no-refresh").exists()  # --csv is a flag: it never takes the next option as a file
    assert list(csv.DictReader(io.StringIO(result.stdout)))[0]["cw_id"]
    result = runner.invoke(app, ["list-unsynced", "--no-refresh", "--output", "out.csv"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.csv").read_text().splitlines()[0].startswith("cw_id,number,")
    assert len((tmp_path / "out.csv").read_text().splitlines()) == len(expected) + 1


def test_output_refuses_a_flag_as_its_file_name(sandbox: Any, runner: CliRunner, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for bad in ("--no-refresh", "-"):
        result = runner.invoke(app, ["list-unsynced", "--output", bad])
        assert result.exit_code == 2 and "--output needs a file name" in result.stderr, result.stderr
    assert not (tmp_path / "--no-refresh").exists() and not (tmp_path / "-").exists()


def test_filters_and_sorting_options(sandbox: Any, runner: CliRunner) -> None:
    runner.invoke(app, ["list-unsynced", "--json"])
    some = next(iter(expected_unsynced(sandbox).values()))
    ident = some["company"]["identifier"]
    doc = json.loads(runner.invoke(app, ["list-unsynced", "--no-refresh", "--json", "--company", ident]).stdout)
    assert doc["data"]["invoices"] and all(i["company"]["identifier"] == ident for i in doc["data"]["invoices"])
    doc = json.loads(runner.invoke(app, ["list-unsynced", "--no-refresh", "--json", "--since", "2999-01-01"]).stdout)
    assert doc["data"]["invoices"] == []


def test_empty_state_is_plain(sandbox: Any, runner: CliRunner) -> None:
    for cw_id in list(expected_unsynced(sandbox)):
        sandbox.cw.reopen_invoice(cw_id)
    result = runner.invoke(app, ["list-unsynced"])
    assert result.exit_code == 0, result.output
    assert "No unsynced invoices — everything Closed in scope is in QuickBooks." in result.stdout


def test_synced_invoices_drop_off_the_list(sandbox: Any, runner: CliRunner, home: Path) -> None:
    from cwqbo.state.store import Store

    doc = json.loads(runner.invoke(app, ["list-unsynced", "--json"]).stdout)
    first = doc["data"]["invoices"][0]["cw_id"]
    store = Store.open(home / "cwqbo-default.db")
    store.db["ledger"].insert({"cw_id": first, "state": "created", "qbo_id": "1"})
    store.close()
    doc = json.loads(runner.invoke(app, ["list-unsynced", "--no-refresh", "--json"]).stdout)
    assert first not in {i["cw_id"] for i in doc["data"]["invoices"]}


def test_bad_options_are_one_line_errors(sandbox: Any, runner: CliRunner) -> None:
    result = runner.invoke(app, ["list-unsynced", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "--since must be a date" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["list-unsynced", "--sort", "colour"])
    assert result.exit_code == 2 and "--sort must be one of" in result.stderr


def test_not_connected_lists_the_cache_or_refuses_refresh(home: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["list-unsynced"])
    assert result.exit_code == 0, result.output
    assert "Nothing cached yet" in result.stdout and "connect connectwise" in result.stdout
    assert not list(home.glob("*.db"))  # listing is read-only
    result = runner.invoke(app, ["list-unsynced", "--refresh"])
    assert result.exit_code == 3 and "connect connectwise" in result.stderr


def test_table_is_readable_at_80_columns_in_a_pipe(sandbox: Any, runner: CliRunner,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from cwqbo.cli import render

    monkeypatch.setenv("COLUMNS", "80")
    for name in ("out", "err"):
        monkeypatch.delitem(render.__dict__, name, raising=False)
    doc = json.loads(runner.invoke(app, ["list-unsynced", "--json"]).stdout)
    result = runner.invoke(app, ["list-unsynced", "--no-refresh", "--limit", "0"])
    for name in ("out", "err"):
        render.__dict__.pop(name, None)
    out = result.stdout
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in out.splitlines()) <= 80
    assert not re.search(r"\S…", out), "a value was cut"
    for inv in doc["data"]["invoices"]:
        # an outsized invoice number wraps (whole) onto the next line rather than pushing the date off the screen
        row = next(line for line in out.splitlines() if line.startswith(inv["number"][:13]))
        assert inv["date"] in row and inv["type"] in row, row
        assert render.money(Decimal(inv["total"])) in row, row
        if inv["reason"]:  # reasons are whole, under the table
            assert " ".join(inv["reason"].split()) in " ".join(out.split())


def test_table_pages_in_sql_but_counts_and_totals_every_row(sandbox: Any, runner: CliRunner) -> None:
    full = json.loads(runner.invoke(app, ["list-unsynced", "--json", "--sort", "total"]).stdout)["data"]
    assert full["count"] > 3
    result = runner.invoke(app, ["list-unsynced", "--no-refresh", "--limit", "3", "--sort", "total"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{full['count']} unsynced invoice(s)" in out
    assert f"… {full['count'] - 3} more not shown" in out
    assert f"{full['count']} unsynced, total" in out and "of the 3 shown ready to sync" in out
    shown = [inv["number"] for inv in full["invoices"][:3]]
    assert all(number[:10] in out for number in shown)
    assert sum(Decimal(i["total"]) for i in full["invoices"]) == Decimal(full["total"])


def test_streamed_json_and_csv_list_every_row_once(sandbox: Any, runner: CliRunner, tmp_path: Path) -> None:
    from cwqbo.cli.invoices import csv_chunks

    doc = json.loads(runner.invoke(app, ["list-unsynced", "--json"]).stdout)
    assert doc["data"]["count"] > 0
    assert list(doc["data"]) == ["count", "total", "invoices", "refresh"]
    assert len(doc["data"]["invoices"]) == doc["data"]["count"]
    out = tmp_path / "u.csv"
    result = runner.invoke(app, ["list-unsynced", "--json", "--no-refresh", "--output", str(out)])
    assert json.loads(result.stdout)["data"]["invoices"] == doc["data"]["invoices"]
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [int(r["cw_id"]) for r in rows] == [i["cw_id"] for i in doc["data"]["invoices"]]
    item = doc["data"]["invoices"][0]
    assert "".join(csv_chunks([item] * 5, every=2)).count("\n") == 6  # header + 5, across chunks


def test_json_built_by_sqlite_says_exactly_what_the_item_by_item_listing_says(
        sandbox: Any, runner: CliRunner, home: Path) -> None:
    """`--json` (sorted by date, number or company) has SQLite build the items from the memoised verdicts; `--sort
    total` goes item by item. First listing (nothing memoised), second (all memoised), a document kept for review
    (never memoised): the same invoices, fields and verdicts, and the order of each sort."""
    from cwqbo.state.store import Store

    def listing(*args: str) -> list[dict[str, Any]]:
        result = runner.invoke(app, ["list-unsynced", "--no-refresh", "--json", *args])
        assert result.exit_code == 0, result.output
        items: list[dict[str, Any]] = json.loads(result.stdout)["data"]["invoices"]
        return items

    assert runner.invoke(app, ["list-unsynced", "--json"]).exit_code == 0  # reads ConnectWise into the cache
    store = Store.open(home / "cwqbo-default.db")
    store.db.execute("DELETE FROM readiness")  # nothing memoised: every verdict judged item by item
    store.db.conn.commit()
    store.close()
    first = listing()
    memoised = listing()
    reference = {i["cw_id"]: i for i in listing("--sort", "total")}
    assert first == memoised and {i["cw_id"]: i for i in memoised} == reference and len(reference) > 5
    assert [i["date"] for i in memoised] == sorted(i["date"] for i in memoised)
    assert [i["number"] for i in listing("--sort", "number")] == sorted(i["number"] for i in memoised)
    kept = memoised[0]["cw_id"]
    store = Store.open(home / "cwqbo-default.db")
    store.db["ledger"].insert({"cw_id": kept, "state": "failed", "qbo_id": "77", "error": "kept for review"})
    store.close()
    after = {i["cw_id"]: i for i in listing()}
    assert after == {i["cw_id"]: i for i in listing("--sort", "total")}
    assert after[kept]["mapping_status"] != "ready" and after[kept] != reference[kept]


def test_refilter_judges_as_it_reads_so_the_first_json_listing_judges_nothing(
        sandbox: Any, runner: CliRunner, home: Path, judged: list[int]) -> None:
    """After a refilter, the first `--json` listing answers every verdict from the memo (no wait at 100,000
    invoices), with the verdicts a listing that judges everything gives; a prefs change judges them all again."""
    from cwqbo.state.store import Store

    assert runner.invoke(app, ["refilter", "--clear", "--json"]).exit_code == 0
    unsynced = set(expected_unsynced(sandbox))
    assert set(judged) == unsynced and len(judged) == len(unsynced)  # each unsynced invoice once, as it was read

    judged.clear()
    listed = json.loads(runner.invoke(app, ["list-unsynced", "--no-refresh", "--json"]).stdout)["data"]["invoices"]
    assert judged == [] and {i["cw_id"] for i in listed} == unsynced
    store = Store.open(home / "cwqbo-default.db")
    store.db.execute("DELETE FROM readiness")
    store.db.conn.commit()
    store.close()
    rejudged = json.loads(runner.invoke(app, ["list-unsynced", "--no-refresh", "--json"]).stdout)["data"]["invoices"]
    assert rejudged == listed and sorted(judged) == sorted(unsynced)

    judged.clear()
    assert runner.invoke(app, ["prefs", "set", "fields.docnumber_prefix", "P" * 20]).exit_code == 0  # no room left
    after = json.loads(runner.invoke(app, ["list-unsynced", "--no-refresh", "--json"]).stdout)["data"]["invoices"]
    assert sorted(judged) == sorted(unsynced)  # the prefs changed: no verdict is reused
    assert {i["mapping_status"] for i in after} == {"invalid"}
    assert all("QuickBooks allows 21" in i["reason"] for i in after)


def test_a_json_listing_judges_each_invoice_its_refresh_reads_once(sandbox: Any, runner: CliRunner,
                                                                  judged: list[int]) -> None:
    """The first `--json` reads ConnectWise and judges each page as it is stored: the listing then finds every
    verdict memoised (judged once, not again), and so does the next listing."""
    first = runner.invoke(app, ["list-unsynced", "--json"])
    assert first.exit_code == 0, first.output
    assert sorted(judged) == sorted(expected_unsynced(sandbox))
    judged.clear()
    again = runner.invoke(app, ["list-unsynced", "--json", "--no-refresh"])
    assert judged == [] and json.loads(again.stdout)["data"]["invoices"] == json.loads(first.stdout)["data"]["invoices"]


def test_the_table_judges_only_the_rows_it_shows_even_after_reading_everything(
        sandbox: Any, runner: CliRunner, judged: list[int]) -> None:
    result = runner.invoke(app, ["list-unsynced", "--limit", "3"])  # a first, full read of ConnectWise
    assert result.exit_code == 0, result.output
    assert len(judged) == 3 < len(expected_unsynced(sandbox))


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 2500])
def test_a_long_json_listing_is_every_item_once_in_order(count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from cwqbo.cli import invoices, render

    out = io.StringIO()
    monkeypatch.setattr(render, "console", lambda name: SimpleNamespace(file=out))
    items: list[dict[str, Any] | str] = [json.dumps({"cw_id": i}) if i % 2 else {"cw_id": i} for i in range(count)]
    invoices._emit_json_listing({"count": count, "total": "0", "invoices": None}, iter(items))
    doc = json.loads(out.getvalue())
    assert [it["cw_id"] for it in doc["data"]["invoices"]] == list(range(count))
    assert doc["data"]["count"] == count and out.getvalue().endswith("}\n")
