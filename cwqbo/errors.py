"""Exceptions the core raises, each with the exit code the CLI turns it into.

Exit codes (cron users rely on them): 0 all good, 1 some invoices failed, 2 usage or config,
3 authentication / permissions (reconnect or fix the API member), 4 a remote service kept failing,
5 local store problem, 75 another run holds the lock (try later).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_REMOTE = 4
EXIT_STORE = 5
EXIT_LOCKED = 75


class CwqboError(Exception):
    """A problem the user can act on. `str(e)` is one line; `hint` says what to do."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(CwqboError):
    """config.toml, a prefs value or a setting is wrong: the user fixes the file or the flag (exit 2)."""

    exit_code = EXIT_USAGE


class UsageError(CwqboError):
    """The command line asks for something that can't be done, e.g. an unknown invoice number (exit 2)."""

    exit_code = EXIT_USAGE


class NotConnectedError(CwqboError):
    """A profile has no ConnectWise keys or QuickBooks tokens yet: run `cwqbo connect` (exit 3)."""

    exit_code = EXIT_AUTH


class AuthError(CwqboError):
    """Credentials rejected or expired (CW 401, QBO invalid_grant)."""

    exit_code = EXIT_AUTH


class PermissionDenied(CwqboError):
    """A right is missing: the ConnectWise API member's security role, or QuickBooks refusing the app (HTTP 403)."""

    exit_code = EXIT_AUTH


class SecretStoreError(CwqboError):
    """The keyring or the 0600 secrets file can't be used safely (unreadable, readable by others) (exit 3)."""

    exit_code = EXIT_AUTH


class RemoteError(CwqboError):
    """A service answered with an error we could not retry past."""

    exit_code = EXIT_REMOTE

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None,
                 code: str | None = None, tid: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.tid = tid


class StoreError(CwqboError):
    exit_code = EXIT_STORE


class LockedError(CwqboError):
    exit_code = EXIT_LOCKED


def kept_failing(exc: BaseException) -> bool:
    """A service that kept failing (transport, throttling, 5xx, after every retry), not a refusal of the request:
    the run stops with exit 4 rather than blaming each invoice."""
    if not isinstance(exc, RemoteError):
        return False
    return exc.status is None or exc.status == 429 or exc.status >= 500
