"""Bad input at the command line: one `error:` line (plus an optional hint), a documented exit code, no
traceback, and nothing the user had on disk lost or changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cwqbo.cli.main import app
from cwqbo.sandbox.server import Sandbox
from tests.e2e.harness import PROFILE, connect_home

LOG_PARTS = ("logs", "log", "locks", "lock")


def _snapshot(home: Path) -> dict[str, str]:
    """sha256 of every user file under home (logs and lock files excluded: they are ours to write)."""
    out: dict[str, str] = {}
    for p in sorted(home.rglob("*")):
        rel = p.relative_to(home)
        if not p.is_file() or any(part in LOG_PARTS for part in rel.parts[:-1]) or p.suffix in (".log", ".lock"):
            continue
        if p.name.endswith(("-wal", "-shm")):
            continue
        out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_clean_failure(result: Any, codes: tuple[int, ...] = (2,), mentions: str = "") -> str:
    assert result.exit_code in codes, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error:"), result.stderr
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint:")), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in lines[0], lines[0]
    if mentions:
        assert mentions.lower() in lines[0].lower(), lines[0]
    return lines[0]


@dataclass
class Env:
    home: Path
    sandbox: Sandbox
    runner: CliRunner

    def invoke(self, *args: str) -> Any:
        return self.runner.invoke(app, list(args))

    @property
    def config(self) -> Path:
        return self.home / "config.toml"

    def db(self) -> Path:
        dbs = [p for p in self.home.rglob("*.db")]
        assert dbs, "no database was created"
        return dbs[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Sandbox]]:
    """One connected home (and one synced copy) per module, against one sandbox; tests get copies."""

    base = tmp_path_factory.mktemp("template")
    connected, synced = base / "connected", base / "synced"
    sandbox = Sandbox(seed=3, invoices=6)
    server = sandbox.start()
    mp = pytest.MonkeyPatch()
    try:
        connect_home(connected, sandbox, server.url)
        shutil.copytree(connected, synced)
        mp.setenv("CWQBO_HOME", str(synced))
        r = CliRunner().invoke(app, ["sync", "--all"])
        assert r.exit_code in (0, 1), r.stderr
        mp.undo()
        yield connected, synced, sandbox
    finally:
        mp.undo()
        server.stop()


def _copy(src: Path, home: Path) -> None:
    for p in src.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, home / p.name)


@pytest.fixture
def env(home: Path, runner: CliRunner, template: tuple[Path, Path, Sandbox]) -> Env:
    _copy(template[0], home)
    return Env(home, template[2], runner)


@pytest.fixture
def synced(home: Path, runner: CliRunner, template: tuple[Path, Path, Sandbox]) -> Env:
    _copy(template[1], home)
    return Env(home, template[2], runner)


# -- config file -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, mentions", [
    (lambda t: t + "\n[[[not toml\n", "TOML"),
    (lambda t: t.replace("[profiles.demo]", "[profiles.demo]\nbogus_key = 1", 1), "bogus_key"),
    (lambda t: t.replace('scheme = "http"', 'scheme = "ftp"', 1), "scheme"),
    (lambda t: t.replace("default_profile", "default_profle", 1), "default_profle"),
    (lambda t: "\x00\xff garbage", ""),
])
def test_broken_config_file_is_one_line_exit_2_and_left_alone(env: Env, mutate: Any, mentions: str) -> None:
    original = env.config.read_text(encoding="utf-8")
    broken = mutate(original)
    assert broken != original
    env.config.write_text(broken, encoding="utf-8")
    before = _snapshot(env.home)
    for args in (("connect", "--status"), ("list-unsynced",), ("prefs", "set", "time.detail", "detailed")):
        line = assert_clean_failure(env.invoke(*args), (2,), mentions)
        assert "config" in line.lower() or "toml" in line.lower(), line
    assert _snapshot(env.home) == before, "a command rewrote or deleted a file after a config error"


# -- prefs / refilter / invoice --------------------------------------------------------------------------

@pytest.mark.parametrize("args, mentions", [
    (("prefs", "set", "tax.mode", "sometimes"), "tax.mode"),
    (("prefs", "set", "no.such.key", "1"), "no.such.key"),
    (("prefs", "set", "time.hours_rounding", "abc"), "hours_rounding"),
    (("prefs", "set", "schedule", "not a cron"), "schedule"),
    (("prefs", "set", "fields.docnumber_prefix", "X" * 40), "docnumber_prefix"),
    (("refilter", "--from-date", "2026-13-45"), "2026-13-45"),
    (("refilter", "--from-date", "yesterday'; drop"), ""),
    (("sync", "--invoice", "NO-SUCH-1"), "NO-SUCH-1"),
    (("history", "--invoice", "NO-SUCH-1"), "NO-SUCH-1"),
])
def test_bad_values_are_refused_and_nothing_changes(synced: Env, args: tuple[str, ...], mentions: str) -> None:
    before = _snapshot(synced.home)
    docs_before = len(synced.sandbox.qbo.documents("Invoice"))
    assert_clean_failure(synced.invoke(*args), (2,), mentions)
    after = _snapshot(synced.home)
    if args[0] == "sync":  # a sync refreshes the cache and records the failed run: only the DB may change
        before = {k: v for k, v in before.items() if not k.endswith(".db")}
        after = {k: v for k, v in after.items() if not k.endswith(".db")}
    assert after == before
    assert len(synced.sandbox.qbo.documents("Invoice")) == docs_before


# -- the database ---------------------------------------------------------------------------------------

def test_corrupted_database_is_a_store_error_and_is_not_overwritten(synced: Env) -> None:
    db = synced.db()
    for side in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        side.unlink(missing_ok=True)
    db.write_bytes(os.urandom(8192))
    before = _snapshot(synced.home)
    for args in (("history",), ("list-unsynced",), ("sync", "--all")):
        assert_clean_failure(synced.invoke(*args), (5,))
    assert _snapshot(synced.home) == before, "the corrupted database was modified or replaced"


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real busy timeout is 30 s (wait for the other process); 0.2 s keeps this test fast."""
    from cwqbo.state.store import Store

    original = Store.open.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Store, "open", classmethod(lambda cls, path, **kw: original(cls, path, busy_timeout_ms=200)))


@pytest.mark.usefixtures("short_busy_timeout")
@pytest.mark.parametrize("args", [("sync", "--all"), ("list-unsynced",)])
def test_locked_database_fails_cleanly(synced: Env, args: tuple[str, ...]) -> None:
    synced.sandbox.cw.add_invoice(invoiceNumber="NEW-1", products=[{"quantity": "1", "price": "5"}])
    db = synced.db()
    holder = sqlite3.connect(db, timeout=0.1)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        before = _snapshot(synced.home)
        r = synced.invoke(*args)
        assert_clean_failure(r, (5, 75))
        assert "lock" in r.stderr.lower() or "busy" in r.stderr.lower()
        assert _snapshot(synced.home) == before
    finally:
        holder.rollback()
        holder.close()
    assert "NEW-1" not in {d["DocNumber"] for d in synced.sandbox.qbo.documents("Invoice")}


def test_click_level_bad_values_exit_2_without_traceback(synced: Env) -> None:
    """Values Click itself parses (an integer option) get Click's usage message; still exit 2, no traceback."""
    before = _snapshot(synced.home)
    for args in (("refilter", "--location", "abc"), ("history", "--limit", "many"), ("sync", "--bogus")):
        r = synced.invoke(*args)
        assert r.exit_code == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and "error" in r.stderr.lower()
    assert _snapshot(synced.home) == before


def test_sync_while_another_sync_holds_the_lock_exits_75(synced: Env) -> None:
    from filelock import FileLock

    from cwqbo.settings.config import Paths

    # The very file a sync locks: if it moved or the lock broke, this fails instead of passing quietly.
    target = Paths.from_env().sync_lock_file(PROFILE)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target)):
        r = synced.invoke("sync", "--all")
    assert_clean_failure(r, (75,))
    assert "another cwqbo sync is running" in r.stderr


# -- the home directory ------------------------------------------------------------------------------------

@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_home_is_one_line(env: Env) -> None:
    before = _snapshot(env.home)
    os.chmod(env.home, 0o500)
    try:
        for args in (("prefs", "set", "time.detail", "detailed"), ("sync", "--all")):
            r = env.invoke(*args)
            assert_clean_failure(r, (2, 3, 5))
    finally:
        os.chmod(env.home, 0o700)
    assert _snapshot(env.home) == before


def test_home_that_is_not_a_directory_is_one_line(tmp_path: Path, runner: CliRunner,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Works as root too: a file where the home directory should be cannot be written through."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("keep me", encoding="utf-8")
    monkeypatch.setenv("CWQBO_HOME", str(blocker / "home"))
    for args in (("prefs", "set", "time.detail", "detailed"), ("history",), ("connect", "--status")):
        r = runner.invoke(app, list(args))
        assert r.exit_code != 0, r.stdout
        assert_clean_failure(r, (2, 3, 5))
    assert blocker.read_text(encoding="utf-8") == "keep me"


def test_config_path_that_is_a_directory_is_one_line(home: Path, runner: CliRunner) -> None:
    (home / "adir").mkdir()
    r = runner.invoke(app, ["--config", str(home / "adir"), "list-unsynced"])
    assert_clean_failure(r, (2,))
    assert (home / "adir").is_dir() and not any((home / "adir").iterdir())


# -- ConnectWise text that looks like rich markup ------------------------------------------------------------

MARKUP_NAMES = ["Acme [/] Corp", "[bold]Bold[/bold] [link=http://evil.example]click[/link]", "Tag [red]open"]


@pytest.fixture
def markup_env(home: Path, runner: CliRunner) -> Iterator[Env]:

    sandbox = Sandbox(seed=4, invoices=3)
    for i, name in enumerate(MARKUP_NAMES):
        sandbox.cw.add_invoice(company={"id": 950 + i, "identifier": f"[/]{i}", "name": name},
                               invoiceNumber=f"M[/]{i}", products=[{"quantity": "1", "price": "5",
                                                                     "description": "[/] desc [bold]"}])
    server = sandbox.start()
    try:
        connect_home(home, sandbox, server.url)
        yield Env(home, sandbox, runner)
    finally:
        server.stop()


def test_company_names_that_look_like_markup_print_as_written(markup_env: Env) -> None:
    """Found here: list-unsynced / prefs fields crashed with MarkupError (exit 70) on a company 'Acme [/] Corp'."""
    for args in (("list-unsynced",), ("sync", "--all"), ("history",), ("history", "--invoice", "M[/]0"),
                 ("prefs", "fields")):
        r = markup_env.runner.invoke(app, list(args), env={"COLUMNS": "250"})
        assert r.exit_code in (0, 1), (args, r.stderr)
        assert "internal error" not in r.stderr and "MarkupError" not in r.stderr
    r = markup_env.runner.invoke(app, ["list-unsynced"], env={"COLUMNS": "250"})
    synced = {d["DocNumber"] for d in markup_env.sandbox.qbo.documents("Invoice")}
    assert {"M[/]0", "M[/]1", "M[/]2"} <= synced
    r = markup_env.runner.invoke(app, ["history", "--invoice", "M[/]1"], env={"COLUMNS": "250"})
    assert "M[/]1" in r.stdout


def test_dry_run_with_a_markup_like_company_name(markup_env: Env) -> None:
    r = markup_env.runner.invoke(app, ["sync", "--all", "--dry-run"], env={"COLUMNS": "250"})
    assert r.exit_code in (0, 1) and "internal error" not in r.stderr, r.stderr


@pytest.mark.usefixtures("short_busy_timeout")
def test_refilter_on_a_locked_database_changes_nothing(synced: Env) -> None:
    holder = sqlite3.connect(synced.db(), timeout=0.1)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        before = synced.config.read_bytes()
        r = synced.invoke("refilter", "--from-date", "2026-01-01")
        assert_clean_failure(r, (5, 75))
        assert synced.config.read_bytes() == before
    finally:
        holder.rollback()
        holder.close()
