"""Issue 11: every command's `--json` envelope uses one status vocabulary, tied to the exit code:
ok (0), partial / failed (1), error (2 and up)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cwqbo.cli.main import app
from tests.cli.test_bad_input_cli import Env
from tests.cli.test_local_files import connected, env  # noqa: F401 - fixtures

VOCABULARY = {"ok", "partial", "failed", "error"}


def check(result: object, command: str) -> dict[str, object]:
    out = result.stdout  # type: ignore[attr-defined]
    code = result.exit_code  # type: ignore[attr-defined]
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert doc["command"] == command and doc["exit_code"] == code, doc
    assert doc["status"] in VOCABULARY, doc["status"]
    expected = {0: {"ok"}, 1: {"partial", "failed"}}.get(code, {"error"})
    assert doc["status"] in expected, (command, code, doc["status"])
    return doc


def test_every_command_speaks_the_same_status_vocabulary(env: Env) -> None:  # noqa: F811
    seen: dict[str, set[str]] = {}

    def run(command: str, *args: str) -> dict[str, object]:
        doc = check(env.invoke(*args), command)
        seen.setdefault(command, set()).add(str(doc["status"]))
        return doc

    run("connect", "connect", "--status", "--json")
    run("check-permissions", "check-permissions", "--json")
    run("refilter", "refilter", "--show", "--json")
    run("list-unsynced", "list-unsynced", "--json")
    run("prefs show", "prefs", "show", "--json")
    run("prefs schedule", "prefs", "schedule", "--json")
    run("prefs schedule", "prefs", "schedule", "--print", "--json")
    run("sync", "sync", "--all", "--dry-run", "--json")
    sync = run("sync", "sync", "--all", "--json")
    run("history", "history", "--json")
    run("history", "history", "--failed", "--json")
    run("history show", "history", "show", str(sync["data"]["run_id"]), "--json")  # type: ignore[index]
    run("history", "history", "--invoice", "nope", "--json")  # an unknown invoice: usage error
    run("history show", "history", "show", "999", "--json")
    run("sync", "sync", "--all", "--invoice", "1", "--json")  # bad usage
    assert seen["history show"] == {"ok", "error"} and "error" in seen["sync"]
    assert seen["connect"] == {"ok"} and seen["prefs show"] == {"ok"}


def test_not_connected_status_is_error_exit_3(home: Path, runner: CliRunner) -> None:
    doc = check(runner.invoke(app, ["connect", "--status", "--json"]), "connect")
    assert doc["status"] == "error" and doc["exit_code"] == 3


@pytest.mark.parametrize("status, code, expected", [("success", 0, "ok"), ("noop", 0, "ok"), ("partial", 1, "partial"),
                                                    ("failed", 1, "failed"), ("error", 3, "error"), ("ok", 5, "error")])
def test_envelope_status_follows_the_exit_code(status: str, code: int, expected: str) -> None:
    from cwqbo.cli.render import envelope

    assert envelope("x", status, code)["status"] == expected
