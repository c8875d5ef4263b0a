"""Shared fixtures: an isolated CWQBO_HOME, an in-memory keyring, no network but loopback, a CliRunner."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any
from pathlib import Path

os.environ.setdefault("_TYPER_FORCE_DISABLE_TERMINAL", "1")  # read by Typer at import: no ANSI in asserted output
os.environ.setdefault("COLUMNS", "200")

import keyring  # noqa: E402
import pytest  # noqa: E402
from keyring.backend import KeyringBackend  # noqa: E402
from typer.testing import CliRunner  # noqa: E402


class MemoryKeyring(KeyringBackend):
    """A keyring that works on headless CI and never touches the user's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


_real_connect = socket.socket.connect


def _loopback_only(sock: socket.socket, address: object) -> None:
    """Tests may talk to servers they start on 127.0.0.1, never to the network."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise OSError(f"test tried to reach the network ({host}); tests use the sandbox on loopback only")
    _real_connect(sock, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True)
def _no_transport_override() -> Iterator[None]:
    yield
    from cwqbo import http

    http.set_transport_override(None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CWQBO_HOME in tmp_path: config, secrets, db, locks and logs all land there."""
    monkeypatch.setenv("CWQBO_HOME", str(tmp_path))
    for var in ("CWQBO_CONFIG", "CWQBO_PROFILE", "CWQBO_CW_PRIVATE_KEY", "CWQBO_CW_CLIENT_ID",
                "CWQBO_QBO_CLIENT_ID", "CWQBO_QBO_CLIENT_SECRET", "CWQBO_CRASH_AT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids `mapping.readiness` judges from now on (list-unsynced, refilter, their refreshes, the memo hook)."""
    from cwqbo.mapping.document import readiness as real

    ids: list[int] = []

    def counting(inv: Any, prefs: Any, **kw: Any) -> Any:
        ids.append(inv.id)
        return real(inv, prefs, **kw)

    monkeypatch.setattr("cwqbo.sync.readiness.judge", counting)
    return ids

