"""`cwqbo history` served without Typer, rich or sqlite_utils (`cli/fast_path.py`): the same output as the full
CLI, nothing printed when it hands over, and the full CLI for every line it is not sure of."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.main import get_command
from typer.testing import CliRunner

from cwqbo.cli import fast_path, render, text_table
from cwqbo.cli.main import app
from cwqbo.state.store import Store, migrations
from tests.cli.test_cli_history import filled  # noqa: F401  (a fixture: two runs, a batch, a failure)


def fast(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int | None, str]:
    code = fast_path.serve(list(argv))
    return code, capsys.readouterr().out


def full(runner: CliRunner, *argv: str) -> str:
    result = runner.invoke(app, list(argv))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("argv", [
    ("history",), ("history", "--failed"), ("history", "--json"), ("history", "-n", "1"), ("history", "--limit=1"),
    ("history", "--invoice", "INV-101"), ("history", "-i", "102", "--json"), ("--profile", "default", "history"),
    ("history", "show", "{ok}"), ("history", "show", "{partial}", "--failed"), ("history", "show", "{ok}", "--json"),
    ("history", "show", "--page", "1", "-n", "1", "{ok}"), ("history", "show", "{ok}", "--offset", "5"),
])
def test_same_output_as_the_full_cli(argv: tuple[str, ...], filled: dict[str, int],  # noqa: F811
                                     runner: CliRunner, capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(**filled) for a in argv]
    expected = full(runner, *args)
    code, out = fast(capsys, *args)
    assert code == 0
    assert out == expected


def test_reads_without_changing_the_database(filled: dict[str, int], home: Path,  # noqa: F811
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Opened read-only: the database is byte for byte the same; SQLite's sidecar files stay private and empty of
    data (SQLite keeps a read-only reader's -shm index and an empty -wal)."""
    db = home / "cwqbo-default.db"
    before = db.read_bytes()
    assert fast(capsys, "history")[0] == 0
    assert db.read_bytes() == before
    for side in home.glob("cwqbo-default.db-*"):
        assert side.stat().st_mode & 0o077 == 0, side
    wal = home / "cwqbo-default.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_no_database_yet_is_said_plainly_and_creates_nothing(home: Path, runner: CliRunner,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert fast(capsys, "history") == (0, full(runner, "history"))
    assert fast(capsys, "history", "--failed", "--json")[1] == full(runner, "history", "--failed", "--json")
    assert not list(home.rglob("*.db"))


@pytest.mark.parametrize("argv", [
    ("history", "--verbose"), ("-v", "history"), ("history", "--limit", "many"), ("history", "-n5"),
    ("history", "show", "x"), ("history", "show", "{ok}", "--page", "0"), ("history", "show", "{ok}", "--limit", "-1"),
    ("history", "show", "{ok}", "{ok}"), ("history", "--json", "show", "{ok}"), ("history", "--invoice"),
    ("history", "--invoice", "NO-SUCH-1"), ("history", "show", "999"), ("history", "show", "{ok}", "--page", "2",
                                                                       "--offset", "1"),
    ("--fresh-database", "history"), ("history", "extra"), ("--profile", "../elsewhere", "history"),
    ("prefs", "history"),
])
def test_hands_over_without_printing(argv: tuple[str, ...], filled: dict[str, int],  # noqa: F811
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert fast(capsys, *(a.format(**filled) for a in argv)) == (None, "")


def test_a_database_it_is_not_sure_of_goes_to_the_full_cli(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Empty, corrupt, or an older schema (the full CLI migrates it): none is read here."""
    db = home / "cwqbo-default.db"
    db.write_bytes(b"")
    assert fast(capsys, "history") == (None, "")
    db.write_bytes(os.urandom(4096))
    assert fast(capsys, "history") == (None, "")
    db.unlink()
    from sqlite_utils import Database

    old = Database(db)
    migrations().apply(old, stop_before="m003_readiness_memo")
    old.close()
    assert fast(capsys, "history") == (None, "")
    Store.open(db).close()  # migrated: now it is
    assert fast(capsys, "history")[0] == 0


def test_profile_comes_from_the_option_the_environment_then_the_config(
        filled: dict[str, int], home: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    assert "INV-" not in fast(capsys, "--profile", "other", "history")[1]
    monkeypatch.setenv("CWQBO_PROFILE", "other")
    assert "No sync runs yet" in fast(capsys, "history")[1]
    monkeypatch.delenv("CWQBO_PROFILE")
    (home / "config.toml").write_text('default_profile = "other"\n', encoding="utf-8")
    assert "No sync runs yet" in fast(capsys, "history")[1]
    assert "Sync runs" in fast(capsys, "-p", "default", "history")[1]
    (home / "config.toml").write_text('default_profile = [\n', encoding="utf-8")
    assert fast(capsys, "history") == (None, "")  # the full CLI says what is wrong with the file


def test_options_are_the_commands_own() -> None:
    """Every option the fast path reads is declared by the Typer command (same name, kind, minimum and default):
    it can't quietly read a line differently from the full CLI."""
    root = get_command(app)
    history = root.commands["history"]  # type: ignore[attr-defined]
    show = history.commands["show"]
    for command, table, defaults in ((root, fast_path.GLOBAL_OPTIONS, {}),
                                     (history, fast_path.HISTORY_OPTIONS, fast_path.HISTORY_DEFAULTS),
                                     (show, fast_path.SHOW_OPTIONS, fast_path.SHOW_DEFAULTS)):
        declared = {opt: p for p in command.params for opt in p.opts}
        for opt, (name, kind) in table.items():
            param = declared[opt]
            assert param.name == name and bool(param.is_flag) == (kind == "flag"), opt
            if kind == "int":
                assert param.type_descriptor.annotation is int, opt
        for name, default in defaults.items():
            assert next(p for p in command.params if p.name == name).default == default, name
    minimums = {p.name: p.min for p in show.params}
    assert minimums == {"run_id": None, "failed": None, "json_out": None, **fast_path.SHOW_MINIMUM}
    assert [p.type_descriptor.annotation for p in show.params if p.name == "run_id"] == [int]


def test_history_imports_none_of_the_heavy_libraries(filled: dict[str, int], home: Path) -> None:  # noqa: F811
    script = ("import sys\nfrom cwqbo.cli import entry\nsys.argv = ['cwqbo', 'history']\n"
              "try:\n    entry.run()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
              "print(sorted({'typer', 'click', 'rich', 'sqlite_utils', 'pydantic', 'httpx'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "CWQBO_HOME": str(home)}).stdout
    assert "Sync runs" in out and out.rstrip().endswith("[]"), out


@pytest.mark.parametrize("width", [80, 132])
def test_plain_tables_are_laid_out_as_rich_lays_them_out(width: int) -> None:
    columns = ["Run", "Started", "Trigger", "Sent", "Failed", "Took", "Status", "By"]
    rows = [(3, "2026-12-01 10:00", "cron (dry)", 10, 0, "1m 02s", "ok", "me@host"),
            (12, "2026-12-01 10:00", "manual", 1000, 3, "3.2s", "partial",
             "someone.with.a.very.long.name@host.example.com"),
            (7, "2026-12-02 09:15", "all", 5, 1, "", "failed", "ana maría o'neill on the office pc")]
    money = [("INV-1", "created", "Invoice 55", Decimal("1234.5"), Decimal("-0.5")),
             ("ÜBER-é-ß", "failed", "", Decimal("-20"), None), ("X" * 30, "created", "CreditMemo 9", None,
                                                                  Decimal("1000000"))]
    for cols, data, title in ((columns, rows, "Sync runs"),
                              (["Invoice", "Outcome", "QBO", "CW total", "QBO total"], money, "Invoices 1–3 of 3"),
                              (["Invoice", "CW id", "Problem", "Since", "Run"],
                               [("INV-2", 102, "failed: QBO error 6000 the item is inactive", "2026-11-02", 2)],
                               None)):
        console = Console(file=io.StringIO(), width=width, highlight=False, soft_wrap=True)
        render.console("out")  # built once, then replaced for this test
        saved = render.out
        render.out = console  # type: ignore[attr-defined]
        try:
            console.print(render.table(cols, data, title=title))
        finally:
            render.out = saved  # type: ignore[attr-defined]
        expected = console.file.getvalue()  # type: ignore[attr-defined]
        plain = text_table.lines(cols, [[render.cell_text(v) for v in row] for row in data], title,
                                 width=width, styled=False)
        assert "\n".join(plain) + "\n" == expected


def test_a_terminal_too_narrow_for_the_fixed_columns_wraps_lines_but_never_cuts_a_value() -> None:
    """Rich would shrink every column then, cutting headers and dates mid-word; these lines run long and the
    terminal wraps them, every word of every fixed value whole (a date may put its time on a second line)."""
    columns = ["Run", "Started", "Trigger", "Sent", "Failed", "Took", "Status", "By"]
    row = ["12", "2026-12-01 10:00", "scheduled", "1000", "3", "1m 02s", "partial", "cron@server"]
    out = text_table.lines(columns, [row], "Sync runs", width=40, styled=False)
    assert out[1].split() == columns
    body = [line.split() for line in out[3:]]
    assert all(any(word in words for words in body) for value in row[:7] for word in value.split())
