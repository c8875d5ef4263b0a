"""Issue 11: the local files an operator can break (secrets file, database) and what read-only commands leave
behind: one `error:` line with the fix and a documented exit code, never a traceback or a silent fresh start."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwqbo.cli.main import app
from cwqbo.sandbox.server import Sandbox
from tests.cli.test_bad_input_cli import Env, assert_clean_failure
from tests.e2e.harness import connect_home


@pytest.fixture(scope="module")
def connected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Sandbox]]:
    """One home connected to a sandbox per module; tests get copies."""
    base = tmp_path_factory.mktemp("connected")
    sandbox = Sandbox(seed=3, invoices=6)
    server = sandbox.start()
    try:
        connect_home(base, sandbox, server.url)
        yield base, sandbox
    finally:
        server.stop()


@pytest.fixture
def env(home: Path, runner: CliRunner, connected: tuple[Path, Sandbox]) -> Env:
    for p in connected[0].iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, home / p.name)
    return Env(home, connected[1], runner)


def test_non_utf8_secrets_file_is_exit_3_naming_the_file(env: Env) -> None:
    secrets = env.home / "secrets.json"
    secrets.write_bytes(b"\xff\xfe{" + secrets.read_bytes())
    line = assert_clean_failure(env.invoke("sync", "--all"), (3,), "secrets.json")
    assert "UTF-8" in line
    assert_clean_failure(env.invoke("connect", "--status"), (3,), "secrets.json")


def test_world_readable_secrets_file_is_refused_with_the_chmod_fix(env: Env) -> None:
    secrets = env.home / "secrets.json"
    os.chmod(secrets, 0o644)
    result = env.invoke("sync", "--all")
    line = assert_clean_failure(result, (3,), "readable by other users")
    assert str(secrets) in line and f"chmod 600 {secrets}" in result.stderr
    assert stat.S_IMODE(os.stat(secrets).st_mode) == 0o644  # refused, not silently repaired
    assert not list(env.home.glob("*.db")), "the sync went ahead with a world-readable secrets file"


# -- a zero-length database --------------------------------------------------------------------------------

def test_zero_length_database_is_refused_with_exit_5(env: Env) -> None:
    db = env.home / "cwqbo-demo.db"
    db.write_bytes(b"")
    for args in (("history",), ("history", "show", "1"), ("list-unsynced", "--no-refresh"), ("sync", "--all")):
        line = assert_clean_failure(env.invoke(*args), (5,), "is empty (0 bytes)")
        assert str(db) in line and "history and ledger are gone" in line
    assert db.stat().st_size == 0, "the empty database was silently initialised"


def test_fresh_database_flag_starts_over_in_an_empty_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    db = env.home / "cwqbo-demo.db"
    db.write_bytes(b"")
    result = env.invoke("--fresh-database", "history")
    assert result.exit_code == 0 and "nothing synced yet" in result.stdout.lower()
    assert db.stat().st_size == 0  # a read-only command still writes nothing
    monkeypatch.setenv("CWQBO_FRESH_DATABASE", "1")
    result = env.invoke("list-unsynced", "--refresh")  # a command that writes starts the new database
    assert result.exit_code == 0, result.stderr
    assert db.stat().st_size > 0 and "unsynced" in result.stdout


def test_fresh_database_flag_never_touches_a_real_database(env: Env) -> None:
    from cwqbo.settings.config import Paths
    from cwqbo.context import AppContext

    store = AppContext.load(Paths.from_env()).open_store()
    store.set_meta("marker", "kept")
    store.close()
    assert env.invoke("--fresh-database", "list-unsynced", "--no-refresh").exit_code == 0
    store = AppContext.load(Paths.from_env()).open_store()
    assert store.get_meta("marker") == "kept"
    store.close()


# -- read-only commands on an empty home -------------------------------------------------------------------

READ_ONLY = [
    ("history",), ("history", "--failed"), ("history", "--json"), ("history", "--invoice", "1042"),
    ("prefs",), ("prefs", "show"), ("prefs", "show", "--json"), ("prefs", "schedule"), ("prefs", "fields"),
    ("prefs", "export"), ("list-unsynced",), ("list-unsynced", "--json"), ("refilter", "--show"),
]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_on_an_empty_home_create_nothing(home: Path, runner: CliRunner, args: tuple[str, ...]
                                                            ) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in home.rglob("*")) == [], "a read-only command created files"


def test_history_on_an_empty_home_says_nothing_synced_yet(home: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["history"])
    assert result.exit_code == 0 and "nothing synced yet" in result.stdout.lower()
    result = runner.invoke(app, ["history", "--invoice", "1042"])
    assert result.exit_code == 0 and "nothing synced yet" in result.stdout.lower()


def test_connect_status_on_an_empty_home_creates_nothing(home: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["connect", "--status"])
    assert result.exit_code == 3  # not connected: the README's exit code for "connect first"
    assert list(home.iterdir()) == []
