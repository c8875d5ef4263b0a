"""`cwqbo connect …`: set up (and show, or remove) the ConnectWise and QuickBooks connections."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Optional
from urllib.parse import urlparse

import typer

from cwqbo.errors import AuthError, CwqboError, RemoteError, UsageError

EXPIRY_WARN_DAYS = 14
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

connect_app = typer.Typer(help="Connect cwqbo to ConnectWise PSA and QuickBooks Online.", no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.add_typer(connect_app, name="connect")


def _need(value: Optional[str], flag: str, prompt: str, hide: bool = False) -> str:
    """A required value: from the flag/env, else a prompt on a terminal, else a usage error."""
    if value:
        return value.strip()
    if sys.stdin.isatty():
        answer = typer.prompt(prompt, hide_input=hide)
        if answer and answer.strip():
            return answer.strip()
    raise UsageError(f"missing {flag}", hint=f"pass {flag} (it is only prompted for on a terminal)")


def _host(site: str) -> str:
    return (urlparse(f"//{site}").hostname or "").lower()


def _open_store(actx: Any, profile: Any, kind: str) -> Any:
    """The store to use; when the kind changes, copy this profile's other secrets so nothing is stranded."""
    from cwqbo.settings.secrets import CW_PRIVATE_KEY, QBO_CLIENT_SECRET, QBO_TOKENS, secret_name

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


# -- status ---------------------------------------------------------------------------------------------


def _when(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def connection_status(actx: Any) -> tuple[dict[str, Any], list[str]]:
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


@connect_app.callback(invoke_without_command=True)
def connect(
    ctx: typer.Context,
    status: bool = typer.Option(False, "--status", help="Show both connections (the default with no subcommand)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Connect to ConnectWise and QuickBooks, or show the connections.

    \b
    Examples:
      cwqbo connect connectwise --site na.myconnectwise.net --company acme --public-key …
      cwqbo connect quickbooks --client-id … --no-browser
      cwqbo connect --status --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context, use_json

    use_json(ctx, "connect", json_out)
    actx = get_app_context(ctx)
    data, warnings = connection_status(actx)
    connected = data["connectwise"]["connected"] and data["quickbooks"]["connected"]
    code = 0 if connected else 3
    if json_out:
        render.emit_json("connect", "ok" if connected else "error", code, data,
                         [{"code": "warning", "message": w} for w in warnings])
        raise typer.Exit(code)
    cw, qbo = data["connectwise"], data["quickbooks"]
    rows = [
        ("ConnectWise", "connected" if cw["connected"] else "not connected",
         f"{cw.get('company_name') or cw.get('company_id', '')} @ {cw['site']} (public key {cw['public_key']})"
         if "site" in cw else "run `cwqbo connect connectwise`"),
        ("QuickBooks", "connected" if qbo["connected"] else "not connected",
         f"{qbo.get('company_name') or ''} realm {qbo['realm_id']} ({qbo['environment']}); access token until "
         f"{qbo['access_expires_at']}, connection until {qbo['refresh_expires_at']}"
         if "realm_id" in qbo else "run `cwqbo connect quickbooks`"),
    ]
    render.out.print(render.table(["Service", "Status", "Details"], rows, title=f"Profile {data['profile']}"))
    for w in warnings:
        render.warn(w)
    raise typer.Exit(code)


# -- ConnectWise ----------------------------------------------------------------------------------------


@connect_app.command("connectwise")
def connect_connectwise(
    ctx: typer.Context,
    site: Optional[str] = typer.Option(None, "--site", help="ConnectWise site, e.g. na.myconnectwise.net."),
    company: Optional[str] = typer.Option(None, "--company", help="Company id you log in with."),
    public_key: Optional[str] = typer.Option(None, "--public-key", help="API member public key."),
    private_key: Optional[str] = typer.Option(None, "--private-key", envvar="CWQBO_CW_PRIVATE_KEY",
                                              show_envvar=True, help="API member private key."),
    client_id: Optional[str] = typer.Option(None, "--client-id", envvar="CWQBO_CW_CLIENT_ID", show_envvar=True,
                                            help="Integration clientId (a GUID from developer.connectwise.com)."),
    scheme: str = typer.Option("https", "--scheme", help="https (http only for a loopback sandbox)."),
    secret_store: Optional[str] = typer.Option(None, "--secret-store", help="keyring or file."),
) -> None:
    """Connect to ConnectWise PSA with an API member's keys and check they work."""
    import httpx

    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context
    from cwqbo.settings.config import CWSettings
    from cwqbo.settings.secrets import CW_PRIVATE_KEY, secret_name

    actx = get_app_context(ctx)
    profile = actx.ensure_profile()
    kind = secret_store or profile.secret_store
    store = _open_store(actx, profile, kind)  # fail on an unusable keyring before asking for anything
    site = _need(site, "--site", "ConnectWise site (e.g. na.myconnectwise.net)").removeprefix("https://")
    site = site.removeprefix("http://").rstrip("/")
    company = _need(company, "--company", "Company id")
    public_key = _need(public_key, "--public-key", "Public key")
    private_key = _need(private_key, "--private-key", "Private key", hide=True)
    client_id = _need(client_id, "--client-id", "clientId")
    if scheme not in ("https", "http"):
        raise UsageError(f"--scheme must be https or http, not {scheme!r}")
    if scheme == "http" and _host(site) not in LOOPBACK_HOSTS:
        raise UsageError("http is only allowed for a loopback sandbox; use https", hint="drop --scheme http")

    from cwqbo.connectwise.client import CWClient, fetch_company_info  # type: ignore[import-not-found]

    try:
        info = fetch_company_info(site, company, scheme=scheme)
        if not info or not info.get("Codebase"):
            raise UsageError(f"company {company!r} was not found on {site}",
                             hint="use the company id from the ConnectWise login screen")
        settings = CWSettings(site=site, company_id=company, public_key=public_key, client_id=client_id,
                              scheme=scheme, company_name=str(info.get("CompanyName", "")))
        client = CWClient(settings, private_key, info["Codebase"])
        system = client.get_json("/system/info")
    except httpx.HTTPError as e:
        raise RemoteError(f"cannot reach ConnectWise site {site}: {type(e).__name__}",
                          hint="check the --site spelling and your network") from None
    store.set(secret_name(profile.name, CW_PRIVATE_KEY), private_key)
    profile.connectwise = settings
    profile.secret_store = kind
    actx.save_config()
    version = system.get("version", "") if isinstance(system, dict) else ""
    render.info(f"Connected to ConnectWise: {settings.company_name or company} on {site}"
                + (f" (version {version})" if version else "") + f"; profile {profile.name!r}.")


# -- QuickBooks -----------------------------------------------------------------------------------------


def _ask_redirect_url(auth_url: str) -> str:
    """--no-browser: show the link, read back the URL the browser ended on."""
    from cwqbo.cli import render

    render.info("Open this link in a browser, approve the connection, then paste the address you land on:")
    render.out.print(auth_url, markup=False, highlight=False, soft_wrap=True)
    try:
        return str(typer.prompt("Redirect URL"))
    except typer.Abort:  # EOF on stdin (e.g. run from a script with nothing piped in)
        raise UsageError("no redirect URL was pasted",
                         hint="paste the full address the browser landed on after approving") from None


def _open_browser(auth_url: str) -> None:
    import webbrowser

    from cwqbo.cli import render

    render.info(f"Opening your browser to authorize cwqbo. If it does not open, visit:\n{auth_url}")
    webbrowser.open(auth_url)


@connect_app.command("quickbooks")
def connect_quickbooks(
    ctx: typer.Context,
    environment: Optional[str] = typer.Option(None, "--environment",
                                              help="production, sandbox or simulator."),
    client_id: Optional[str] = typer.Option(None, "--client-id", envvar="CWQBO_QBO_CLIENT_ID", show_envvar=True,
                                            help="Intuit app client id."),
    client_secret: Optional[str] = typer.Option(None, "--client-secret", envvar="CWQBO_QBO_CLIENT_SECRET",
                                                show_envvar=True, help="Intuit app client secret."),
    redirect_uri: Optional[str] = typer.Option(None, "--redirect-uri",
                                               help="Registered redirect URI [default: http://127.0.0.1:8725/callback]."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the link and paste the redirect URL back."),
    simulator_url: Optional[str] = typer.Option(None, "--simulator-url", help="QBO simulator base URL."),
    disconnect: bool = typer.Option(False, "--disconnect", help="Revoke the connection and forget the tokens."),
    secret_store: Optional[str] = typer.Option(None, "--secret-store", help="keyring or file."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the browser.", hidden=True),
) -> None:
    """Authorize cwqbo in QuickBooks Online (OAuth 2.0) and store the tokens."""
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context
    from cwqbo.settings.config import ENVIRONMENTS
    from cwqbo.quickbooks import oauth
    from cwqbo.settings.secrets import QBO_CLIENT_SECRET, save_tokens, secret_name

    actx = get_app_context(ctx)
    profile = actx.ensure_profile()
    kind = secret_store or profile.secret_store
    store = _open_store(actx, profile, kind)
    if disconnect:
        _disconnect(actx, profile, store)
        return
    old = profile.quickbooks
    env = environment or old.environment
    if env not in ENVIRONMENTS:
        raise UsageError(f"--environment must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    settings = dataclasses.replace(
        old, environment=env, client_id=_need(client_id or old.client_id or None, "--client-id", "Client id"),
        redirect_uri=redirect_uri or old.redirect_uri,
        simulator_url=(simulator_url or old.simulator_url).rstrip("/") if env == "simulator" else "")
    if env == "simulator" and not settings.simulator_url:
        raise UsageError("--simulator-url is required with --environment simulator")
    secret = client_secret or store.get(secret_name(profile.name, QBO_CLIENT_SECRET))
    secret = _need(secret, "--client-secret", "Client secret", hide=True)

    state = oauth.new_state()
    url = oauth.authorize_url(settings, state)
    if no_browser:
        result = oauth.parse_callback_url(_ask_redirect_url(url), state)
    else:
        listener = oauth.CallbackListener(settings.redirect_uri, state).start()
        try:
            _open_browser(url)
        except Exception:
            listener.close()
            raise
        result = listener.wait(timeout)
    tokens = oauth.exchange_code(settings, secret, result.code, result.realm_id, actx.clock)
    # Save at once: the code is single-use, so losing these tokens means authorizing again.
    store.set(secret_name(profile.name, QBO_CLIENT_SECRET), secret)
    save_tokens(store, profile.name, tokens)
    settings = dataclasses.replace(settings, realm_id=result.realm_id)
    profile.quickbooks = settings
    profile.secret_store = kind
    actx.save_config()
    name = oauth.fetch_company_name(settings, tokens.access_token, result.realm_id)
    profile.quickbooks = dataclasses.replace(settings, company_name=name)
    actx.save_config()
    render.info(f"Connected to QuickBooks: {name or 'company'} (realm {result.realm_id}, {env}); "
                f"profile {profile.name!r}.")


def _disconnect(actx: Any, profile: Any, store: Any) -> None:
    from cwqbo.cli import render
    from cwqbo.quickbooks import oauth
    from cwqbo.settings.secrets import QBO_CLIENT_SECRET, clear_tokens, load_tokens, secret_name

    try:
        tokens = load_tokens(store, profile.name)
    except CwqboError:
        tokens = None
    secret = store.get(secret_name(profile.name, QBO_CLIENT_SECRET))
    if tokens is not None and secret:
        try:
            oauth.revoke(profile.quickbooks, secret, tokens.refresh_token)
        except (RemoteError, AuthError) as e:
            render.warn(f"could not revoke at Intuit ({e}); forgetting the tokens locally anyway")
    clear_tokens(store, profile.name)
    profile.quickbooks = dataclasses.replace(profile.quickbooks, realm_id="", company_name="")
    actx.save_config()
    render.info(f"Disconnected QuickBooks for profile {profile.name!r}.")
