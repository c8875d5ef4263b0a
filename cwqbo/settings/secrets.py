"""Secrets (CW private key, QBO client secret, QBO tokens): the OS keyring or one explicit 0600 file.

A keyring backend that fails or silently drops writes would lose the rotating refresh token, so
`open_secret_store` refuses it instead of falling back. No secret value ever appears in an
exception message or a repr.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path
from typing import Protocol

from cwqbo.files import atomic_write
from cwqbo.settings.paths import Paths
from cwqbo.errors import NotConnectedError, SecretStoreError
from cwqbo.settings.tokens import TokenSet

SERVICE = "cwqbo"
CW_PRIVATE_KEY = "cw_private_key"
QBO_CLIENT_SECRET = "qbo_client_secret"
QBO_TOKENS = "qbo_tokens"
_NOTE = "This file stores secret credentials for cwqbo. Do not share it."
_RESTORE_HINT = "restore it from a backup, or move it aside and re-run `cwqbo connect` (both services)"


def secret_name(profile: str, what: str) -> str:
    return f"{profile}/{what}"


class SecretStore(Protocol):
    kind: str

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


class KeyringStore:
    """The OS keyring (macOS Keychain, Windows Credential Manager, Secret Service)."""

    kind = "keyring"

    def __init__(self, service: str = SERVICE) -> None:
        self.service = service

    def get(self, name: str) -> str | None:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(self.service, name)
        except KeyringError as e:
            raise SecretStoreError(f"keyring could not read {name}: {type(e).__name__}",
                                   hint="use `--secret-store file`") from None

    def set(self, name: str, value: str) -> None:
        import keyring
        from keyring.errors import KeyringError

        try:
            keyring.set_password(self.service, name, value)
        except KeyringError as e:
            raise SecretStoreError(f"keyring could not save {name}: {type(e).__name__}",
                                   hint="use `--secret-store file`") from None

    def delete(self, name: str) -> None:
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            keyring.delete_password(self.service, name)
        except PasswordDeleteError:
            return
        except KeyringError as e:
            raise SecretStoreError(f"keyring could not delete {name}: {type(e).__name__}") from None

    def __repr__(self) -> str:
        return f"KeyringStore(service={self.service!r})"


class FileStore:
    """One JSON file, mode 0600 from creation, replaced atomically on every write."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        try:
            with open(self.path, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                raw_bytes = f.read()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise SecretStoreError(f"cannot read secrets file {self.path}: {e.strerror}") from None
        if os.name == "posix" and stat.S_IMODE(mode) & 0o077:
            # Refused, not repaired: a secret that other users could read may already be copied, and cron must
            # not keep going quietly with it. The fix is one command, and the keys should be rotated.
            raise SecretStoreError(
                f"secrets file {self.path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
                "refusing to use it",
                hint=f"run `chmod 600 {shlex.quote(str(self.path))}`, and rotate the keys if others may have read it")
        try:
            raw = raw_bytes.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SecretStoreError(f"secrets file {self.path} is not UTF-8 text (bad byte at offset {e.start})",
                                   hint=_RESTORE_HINT) from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise SecretStoreError(f"secrets file {self.path} is not valid JSON", hint=_RESTORE_HINT) from None
        if not isinstance(data, dict):
            raise SecretStoreError(f"secrets file {self.path} is not a JSON object", hint=_RESTORE_HINT)
        return {k: v for k, v in data.items() if isinstance(v, str) and not k.startswith("//")}

    def _write(self, data: dict[str, str]) -> None:
        payload = json.dumps({"// Note": _NOTE, **data}, indent=2, sort_keys=True).encode("utf-8")
        atomic_write(self.path, payload, prefix=".secrets-")  # 0600 from creation, durable before we return

    def get(self, name: str) -> str | None:
        return self._read().get(name)

    def set(self, name: str, value: str) -> None:
        data = self._read()
        data[name] = value
        self._write(data)

    def delete(self, name: str) -> None:
        data = self._read()
        if data.pop(name, None) is not None:
            self._write(data)

    def __repr__(self) -> str:
        return f"FileStore(path={str(self.path)!r})"


def _unusable_keyring_reason() -> str | None:
    """Why the active keyring backend cannot hold secrets, or None when it can."""
    import keyring

    try:
        backend = keyring.get_keyring()
    except Exception as e:  # a misconfigured PYTHON_KEYRING_BACKEND raises ModuleNotFoundError and friends
        return f"the keyring backend cannot be loaded ({type(e).__name__})"
    module = type(backend).__module__
    if module == "keyring.backends.fail":
        return "no usable OS keyring was found (keyring.backends.fail)"
    if module == "keyring.backends.null":
        return "the keyring is disabled (keyring.backends.null drops every secret)"
    if module == "keyring.backends.chainer" and not getattr(backend, "backends", None):
        return "no usable OS keyring was found (the chainer backend has no backends)"
    return None


def open_secret_store(kind: str, paths: Paths) -> SecretStore:
    """The configured store; refuses a keyring that would fail or silently discard secrets."""
    if kind == "file":
        return FileStore(paths.secrets_file)
    if kind != "keyring":
        raise SecretStoreError(f"unknown secret store {kind!r}", hint="use `--secret-store keyring` or `file`")
    reason = _unusable_keyring_reason()
    if reason:
        raise SecretStoreError(f"cannot store secrets in the keyring: {reason}",
                               hint="re-run with `--secret-store file` (a 0600 file; recommended for cron)")
    return KeyringStore()


# -- QBO tokens --------------------------------------------------------------------------------------


def load_tokens(store: SecretStore, profile: str) -> TokenSet:
    raw = store.get(secret_name(profile, QBO_TOKENS))
    if not raw:
        raise NotConnectedError(f"QuickBooks is not connected for profile {profile!r}",
                                hint="run `cwqbo connect quickbooks`")
    try:
        return TokenSet.from_json(json.loads(raw))
    except (ValueError, TypeError):
        raise SecretStoreError(f"stored QuickBooks tokens for profile {profile!r} are unreadable",
                               hint="run `cwqbo connect quickbooks`") from None


def save_tokens(store: SecretStore, profile: str, tokens: TokenSet) -> None:
    store.set(secret_name(profile, QBO_TOKENS), json.dumps(tokens.to_json()))


def clear_tokens(store: SecretStore, profile: str) -> None:
    store.delete(secret_name(profile, QBO_TOKENS))
