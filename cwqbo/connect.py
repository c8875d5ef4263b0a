"""Connecting a profile to ConnectWise and QuickBooks: check the keys, run OAuth, save settings and secrets.

`cwqbo connect`, `cwqbo demo` and the end-to-end tests all connect through here, so the demo proves the very
code a real user runs. Nothing here prints or prompts: the caller gathers the inputs and renders the result;
the one interactive step of OAuth (the user approving in a browser) is a function the caller passes in.
Heavy libraries are imported inside the functions so `cwqbo --help` stays fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from cwqbo.errors import AuthError, CwqboError, RemoteError, UsageError
from cwqbo.settings.config import ENVIRONMENTS, CWSettings, QBOSettings

if TYPE_CHECKING:
    from cwqbo.context import AppContext
    from cwqbo.quickbooks.oauth import CallbackResult
    from cwqbo.settings.secrets import SecretStore

EXPIRY_WARN_DAYS = 14
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# (authorize URL, state) → what the browser brought back to the redirect URI.
Consent = Callable[[str, str], "CallbackResult"]


@dataclass(frozen=True)
class CWKeys:
    """What a user types to connect ConnectWise (an API member's keys and the integration's clientId)."""

    site: str
    company: str
    public_key: str
    private_key: str
    client_id: str
    scheme: str = "https"

    def __repr__(self) -> str:  # never show the private key
        return f"CWKeys(site={self.site!r}, company={self.company!r}, public_key={self.public_key!r})"


@dataclass(frozen=True)
class CWConnected:
    settings: CWSettings
    version: str  # ConnectWise's /system/info version, "" when it did not say


@dataclass(frozen=True)
class QBOConnected:
    settings: QBOSettings
    company_name: str
    realm_id: str


def normalize_site(site: str) -> str:
    """'https://na.myconnectwise.net/' → 'na.myconnectwise.net' (users paste the address bar)."""
    return site.strip().removeprefix("https://").removeprefix("http://").rstrip("/")


def _host(site: str) -> str:
    return (urlparse(f"//{site}").hostname or "").lower()


def check_scheme(site: str, scheme: str) -> None:
    """https always; http only for a sandbox on this machine (keys must never cross a network in clear)."""
    if scheme not in ("https", "http"):
        raise UsageError(f"--scheme must be https or http, not {scheme!r}")
    if scheme == "http" and _host(site) not in LOOPBACK_HOSTS:
        raise UsageError("http is only allowed for a loopback sandbox; use https", hint="drop --scheme http")


def secret_store_for(actx: AppContext, kind: str) -> SecretStore:
    """The store to use; when the kind changes, copy this profile's other secrets so nothing is stranded."""
    from cwqbo.settings.secrets import CW_PRIVATE_KEY, QBO_CLIENT_SECRET, QBO_TOKENS, secret_name

    profile = actx.ensure_profile()
    store = actx.secret_store(kind)
    if kind != profile.secret_store:
        try:
            old = actx.secret_store(profile.secret_store)
        except CwqboError:
            return store  # the old store is unusable: nothing can be copied from it
        for what in (CW_PRIVATE_KEY, QBO_CLIENT_SECRET, QBO_TOKENS):
            name = secret_name(profile.name, what)
            value = old.get(name)
            if value and not store.get(name):
                store.set(name, value)
    return store


# -- ConnectWise ----------------------------------------------------------------------------------------


def connect_connectwise(actx: AppContext, store: SecretStore, kind: str, keys: CWKeys) -> CWConnected:
    """Prove the site, company and keys work (companyinfo, then /system/info); then save key and settings."""
    import httpx

    from cwqbo.connectwise.client import fetch_company_info
    from cwqbo.context import new_cw_client
    from cwqbo.settings.secrets import CW_PRIVATE_KEY, secret_name

    check_scheme(keys.site, keys.scheme)
    try:
        info = fetch_company_info(keys.site, keys.company, scheme=keys.scheme)
        if not info or not info.get("Codebase"):
            raise UsageError(f"company {keys.company!r} was not found on {keys.site}",
                             hint="use the company id from the ConnectWise login screen")
        settings = CWSettings(site=keys.site, company_id=keys.company, public_key=keys.public_key,
                              client_id=keys.client_id, scheme=keys.scheme,
                              company_name=str(info.get("CompanyName", "")))
        with new_cw_client(settings, keys.private_key, str(info["Codebase"])) as client:
            system = client.get_json("/system/info")
    except httpx.HTTPError as e:
        raise RemoteError(f"cannot reach ConnectWise site {keys.site}: {type(e).__name__}",
                          hint="check the --site spelling and your network") from None
    profile = actx.ensure_profile()
    store.set(secret_name(profile.name, CW_PRIVATE_KEY), keys.private_key)
    profile.connectwise = settings
    profile.secret_store = kind
    actx.save_config()
    version = system.get("version", "") if isinstance(system, dict) else ""
    return CWConnected(settings, str(version or ""))


# -- QuickBooks -----------------------------------------------------------------------------------------


def qbo_environment(requested: str | None, old: QBOSettings) -> str:
    env = requested or old.environment
    if env not in ENVIRONMENTS:
        raise UsageError(f"--environment must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    return env


def qbo_settings(old: QBOSettings, *, environment: str, client_id: str, redirect_uri: str | None,
                 simulator_url: str | None) -> QBOSettings:
    """The profile's QuickBooks settings with the given options applied (the realm comes from OAuth)."""
    env = qbo_environment(environment, old)
    settings = dataclasses.replace(
        old, environment=env, client_id=client_id, redirect_uri=redirect_uri or old.redirect_uri,
        simulator_url=(simulator_url or old.simulator_url).rstrip("/") if env == "simulator" else "")
    if env == "simulator" and not settings.simulator_url:
        raise UsageError("--simulator-url is required with --environment simulator")
    return settings


def stored_client_secret(store: SecretStore, profile: str) -> str | None:
    """The Intuit client secret saved by an earlier connect (so a reconnect need not ask again)."""
    from cwqbo.settings.secrets import QBO_CLIENT_SECRET, secret_name

    return store.get(secret_name(profile, QBO_CLIENT_SECRET))


def connect_quickbooks(actx: AppContext, store: SecretStore, kind: str, settings: QBOSettings, client_secret: str,
                       consent: Consent) -> QBOConnected:
    """OAuth 2.0 code flow: `consent` gets the user's approval; the code is exchanged and the tokens saved."""
    from cwqbo.quickbooks import oauth
    from cwqbo.settings.secrets import QBO_CLIENT_SECRET, save_tokens, secret_name

    profile = actx.ensure_profile()
    state = oauth.new_state()
    result = consent(oauth.authorize_url(settings, state), state)
    tokens = oauth.exchange_code(settings, client_secret, result.code, result.realm_id, actx.clock)
    # Save at once: the code is single-use, so losing these tokens means authorizing again.
    store.set(secret_name(profile.name, QBO_CLIENT_SECRET), client_secret)
    save_tokens(store, profile.name, tokens)
    settings = dataclasses.replace(settings, realm_id=result.realm_id)
    profile.quickbooks = settings
    profile.secret_store = kind
    actx.save_config()
    name = oauth.fetch_company_name(settings, tokens.access_token, result.realm_id)
    profile.quickbooks = dataclasses.replace(settings, company_name=name)
    actx.save_config()
    return QBOConnected(profile.quickbooks, name, result.realm_id)


def disconnect_quickbooks(actx: AppContext, store: SecretStore) -> str | None:
    """Revoke at Intuit and forget the tokens; returns a warning when Intuit could not be told (tokens go anyway)."""
    from cwqbo.quickbooks import oauth
    from cwqbo.settings.secrets import clear_tokens, load_tokens

    profile = actx.ensure_profile()
    warning = None
    try:
        tokens = load_tokens(store, profile.name)
    except CwqboError:
        tokens = None
    secret = stored_client_secret(store, profile.name)
    if tokens is not None and secret:
        try:
            oauth.revoke(profile.quickbooks, secret, tokens.refresh_token)
        except (RemoteError, AuthError) as e:
            warning = f"could not revoke at Intuit ({e}); forgetting the tokens locally anyway"
    clear_tokens(store, profile.name)
    profile.quickbooks = dataclasses.replace(profile.quickbooks, realm_id="", company_name="")
    actx.save_config()
    return warning


# -- the built-in sandbox (cwqbo demo, end-to-end tests) ----------------------------------------------------


def sandbox_consent(auth_url: str, state: str) -> CallbackResult:
    """The simulator's consent screen approves at once with a redirect carrying code/state/realmId, which is
    exactly what the browser would bring back to `connect quickbooks`."""
    from cwqbo import http
    from cwqbo.quickbooks import oauth

    with http.new_client() as client:
        response = client.get(auth_url)
    location = response.headers.get("location")
    if response.status_code not in (302, 303) or not location:
        raise AuthError(f"the sandbox's authorize endpoint answered HTTP {response.status_code} without a redirect")
    return oauth.parse_callback_url(location, state)


def connect_sandbox_connectwise(actx: AppContext, creds: dict[str, Any]) -> CWConnected:
    """Connect to the sandbox's ConnectWise with the credentials `Sandbox.credentials()` hands out."""
    kind = actx.ensure_profile().secret_store
    keys = CWKeys(site=creds["site"], company=creds["company_id"], public_key=creds["public_key"],
                  private_key=creds["private_key"], client_id=creds["client_id"], scheme=creds["scheme"])
    return connect_connectwise(actx, secret_store_for(actx, kind), kind, keys)


def connect_sandbox_quickbooks(actx: AppContext, creds: dict[str, Any]) -> QBOConnected:
    """Connect to the sandbox's QuickBooks simulator (its consent screen needs no user)."""
    kind = actx.ensure_profile().secret_store
    settings = QBOSettings(environment="simulator", client_id=creds["client_id"],
                           simulator_url=creds["simulator_url"])
    return connect_quickbooks(actx, secret_store_for(actx, kind), kind, settings, creds["client_secret"],
                              sandbox_consent)


# -- status ---------------------------------------------------------------------------------------------


def _when(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def connection_status(actx: AppContext) -> tuple[dict[str, Any], list[str]]:
    """Both connections as data (no network), plus warnings for tokens close to expiry."""
    from cwqbo.settings.secrets import CW_PRIVATE_KEY, load_tokens, secret_name

    profile = actx.profile
    cw, qbo = profile.connectwise, profile.quickbooks
    warnings: list[str] = []
    # Only touch the secret store when there is something in it: status must work on a fresh install.
    store = actx.secret_store() if (cw.configured or qbo.configured) else None
    cw_data: dict[str, Any] = {"connected": False}
    if store is not None and cw.configured:
        has_key = bool(store.get(secret_name(profile.name, CW_PRIVATE_KEY)))
        cw_data = {"connected": has_key, "site": cw.site, "company_id": cw.company_id,
                   "company_name": cw.company_name, "public_key": cw.public_key, "client_id": cw.client_id}
        if not has_key:
            warnings.append("the ConnectWise private key is missing: run `cwqbo connect connectwise`")
    qbo_data: dict[str, Any] = {"connected": False, "environment": qbo.environment}
    if store is not None and qbo.configured:
        try:
            tokens = load_tokens(store, profile.name)
        except CwqboError as e:
            warnings.append(str(e))
        else:
            now = actx.clock.now()
            qbo_data = {"connected": tokens.refresh_expires_at > now, "environment": qbo.environment,
                        "realm_id": qbo.realm_id, "company_name": qbo.company_name,
                        "access_expires_at": _when(tokens.access_expires_at),
                        "refresh_expires_at": _when(tokens.refresh_expires_at),
                        "refresh_hard_expires_at": _when(tokens.refresh_hard_expires_at)}
            ends = min(t for t in (tokens.refresh_expires_at, tokens.refresh_hard_expires_at) if t is not None)
            days = (ends - now) / 86400
            if days <= 0:
                warnings.append("the QuickBooks connection has expired: run `cwqbo connect quickbooks`")
            elif days < EXPIRY_WARN_DAYS:
                warnings.append(f"the QuickBooks connection expires in {days:.0f} days: "
                                "run `cwqbo connect quickbooks` (or any sync, which renews it)")
    data = {"profile": profile.name, "secret_store": profile.secret_store,
            "connectwise": cw_data, "quickbooks": qbo_data}
    return data, warnings
