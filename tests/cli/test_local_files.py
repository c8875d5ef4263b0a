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
