"""Everything a command needs for one profile, built lazily so `--help` and simple commands stay fast."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cwqbo.clock import Clock
from cwqbo.settings.config import Config, Profile, load_config, save_config
from cwqbo.settings.paths import Paths
from cwqbo.errors import LockedError, NotConnectedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from cwqbo.connectwise.client import CWClient
    from cwqbo.quickbooks.client import QBOClient
    from cwqbo.quickbooks.oauth import TokenManager
    from cwqbo.settings.config import CWSettings
    from cwqbo.settings.secrets import SecretStore
    from cwqbo.state.store import Store


def new_cw_client(settings: CWSettings, private_key: str, codebase: str, clock: Clock | None = None) -> CWClient:
    """A ConnectWise client for saved settings (keywords: the frozen settings are read-only, which the
    client's `CWSettingsLike` protocol does not allow for yet)."""
    from cwqbo.connectwise.client import CWClient

    return CWClient(site=settings.site, company_id=settings.company_id, public_key=settings.public_key,
                    private_key=private_key, client_id=settings.client_id, codebase=codebase,
                    scheme=settings.scheme, api_version=settings.api_version, clock=clock)


def fetch_company_info_or_remote_error(fetch: Callable[..., dict[str, Any]],
                                       settings: CWSettings) -> dict[str, Any]:
    """companyinfo for a profile that *was* connected: a site that is down or unreachable is "a service kept
    failing" (exit 4, like the same failure mid-run), not a config error (exit 2, "check the site name")."""
    import httpx

    from cwqbo.errors import ConfigError, RemoteError

    try:
        return fetch(settings.site, settings.company_id, scheme=settings.scheme)
    except httpx.TransportError as exc:
        raise RemoteError(f"ConnectWise ({settings.site}) is unreachable: {type(exc).__name__}: {exc}",
                          hint="check the network and ConnectWise's status; the next run picks up from here") from exc
    except ConfigError as exc:
        cause = exc.__cause__
        text = str(exc)
        server_side = re.search(r"answered HTTP 5\d\d\b", text) is not None
        if isinstance(cause, httpx.TransportError) or server_side:
            detail = f"{type(cause).__name__}: {cause}" if isinstance(cause, httpx.TransportError) else text
            raise RemoteError(f"ConnectWise ({settings.site}) is unreachable: {detail}",
                              hint="check the network and ConnectWise's status; the next run picks up "
                                   "from here") from exc
        raise


@dataclass
class AppContext:
    paths: Paths
    config: Config
    profile_name: str
    clock: Clock = field(default_factory=Clock)
    _secret_store: SecretStore | None = None
    fresh_database: bool = False  # `--fresh-database`: accept an empty (0-byte) database file and start anew

    @classmethod
    def load(cls, paths: Paths, profile_name: str | None = None, clock: Clock | None = None) -> "AppContext":
        config = load_config(paths.config_file)
        return cls(paths, config, profile_name or config.default_profile, clock or Clock())

    @property
    def profile(self) -> Profile:
        return self.config.profile(self.profile_name)

    def ensure_profile(self) -> Profile:
        """The profile, created if missing (connect uses this to set up a new profile)."""
        return self.config.ensure_profile(self.profile_name)

    def save_config(self) -> None:
        save_config(self.config, self.paths.config_file)

    def open_store(self) -> Store:
        """The profile's database, created when absent (commands that write: sync, refresh, refilter)."""
        from cwqbo.state.store import Store

        self.paths.data_dir.mkdir(parents=True, exist_ok=True)
        return Store.open(self.paths.db_file(self.profile_name), fresh=self.fresh_database)

    def open_existing_store(self) -> Store | None:
        """The profile's database for a read-only command, or None when there is none yet (nothing is created).

        An empty (0-byte) file is refused like in `open_store`; with `--fresh-database` it reads as "nothing yet".
        """
        from cwqbo.state.store import Store, empty_database_error, is_empty_file

        path = self.paths.db_file(self.profile_name)
        if is_empty_file(path):
            if self.fresh_database:
                return None
            raise empty_database_error(path)
        if not path.exists():
            return None
        return Store.open(path)

    def secret_store(self, kind: str | None = None) -> "SecretStore":
        from cwqbo.settings.secrets import open_secret_store

        kind = kind or self.profile.secret_store
        if self._secret_store is None or self._secret_store.kind != kind:  # connect may switch the kind
            self._secret_store = open_secret_store(kind, self.paths)
        return self._secret_store

    def cw_client(self) -> CWClient:
        from cwqbo.connectwise.client import fetch_company_info
        from cwqbo.settings.secrets import CW_PRIVATE_KEY, secret_name

        settings = self.profile.connectwise
        if not settings.configured:
            raise NotConnectedError(f"ConnectWise is not connected for profile {self.profile_name!r}",
                                    hint="run `cwqbo connect connectwise`")
        private_key = self.secret_store().get(secret_name(self.profile_name, CW_PRIVATE_KEY))
        if not private_key:
            raise NotConnectedError("the ConnectWise private key is missing from the secret store",
                                    hint="run `cwqbo connect connectwise`")
        info = fetch_company_info_or_remote_error(fetch_company_info, settings)
        return new_cw_client(settings, private_key, str(info["Codebase"]), self.clock)

    def token_manager(self) -> "TokenManager":
        from cwqbo.quickbooks.oauth import TokenManager

        qbo = self.profile.quickbooks
        if not qbo.configured:
            raise NotConnectedError(f"QuickBooks is not connected for profile {self.profile_name!r}",
                                    hint="run `cwqbo connect quickbooks`")
        return TokenManager(qbo, self.secret_store(), self.profile_name,
                            self.paths.oauth_lock_file(self.profile_name), self.clock)

    def qbo_client(self) -> QBOClient:
        from cwqbo.quickbooks.client import QBOClient
        from cwqbo.quickbooks.oauth import Endpoints

        manager = self.token_manager()
        qbo = self.profile.quickbooks
        return QBOClient(Endpoints.for_settings(qbo).api_base, qbo.realm_id, manager, self.clock)

    @contextmanager
    def sync_lock(self) -> Iterator[None]:
        """One sync per profile; a second one fails at once (exit 75) instead of queueing behind cron."""
        from filelock import FileLock, Timeout

        self.paths.lock_dir.mkdir(parents=True, exist_ok=True)
        path = self.paths.sync_lock_file(self.profile_name)
        pid_file = path.with_suffix(".pid")
        lock = FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            try:
                pid = pid_file.read_text().strip() or "?"
            except OSError:
                pid = "?"
            raise LockedError(f"another cwqbo sync is running for profile {self.profile_name} (pid {pid})",
                              hint="wait for it to finish; cron can simply try again later") from None
        try:
            pid_file.write_text(str(os.getpid()))
            yield
        finally:
            pid_file.unlink(missing_ok=True)
            lock.release()
