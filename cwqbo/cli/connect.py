"""`cwqbo connect …`: set up (and show, or remove) the ConnectWise and QuickBooks connections."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional

import typer

from cwqbo.errors import UsageError

if TYPE_CHECKING:
    from cwqbo.quickbooks.oauth import CallbackResult

connect_app = typer.Typer(help="Connect cwqbo to ConnectWise PSA and QuickBooks Online.", no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.add_typer(connect_app, name="connect")


def _need(value: Optional[str], flag: str, prompt: str, hide: bool = False) -> str:
    """A required value: from the flag/env, else a prompt on a terminal, else a usage error."""
    if value:
        return value.strip()
    if sys.stdin.isatty():
        answer = str(typer.prompt(prompt, hide_input=hide))
        if answer and answer.strip():
            return answer.strip()
    raise UsageError(f"missing {flag}", hint=f"pass {flag} (it is only prompted for on a terminal)")


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
    from cwqbo import connect as core
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context, use_json

    use_json(ctx, "connect", json_out)
    data, warnings = core.connection_status(get_app_context(ctx))
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
    from cwqbo import connect as core
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context

    actx = get_app_context(ctx)
    kind = secret_store or actx.ensure_profile().secret_store
    store = core.secret_store_for(actx, kind)  # fail on an unusable keyring before asking for anything
    site = core.normalize_site(_need(site, "--site", "ConnectWise site (e.g. na.myconnectwise.net)"))
    keys = core.CWKeys(site=site, company=_need(company, "--company", "Company id"),
                       public_key=_need(public_key, "--public-key", "Public key"),
                       private_key=_need(private_key, "--private-key", "Private key", hide=True),
                       client_id=_need(client_id, "--client-id", "clientId"), scheme=scheme)
    done = core.connect_connectwise(actx, store, kind, keys)
    render.info(f"Connected to ConnectWise: {done.settings.company_name or keys.company} on {site}"
                + (f" (version {done.version})" if done.version else "") + f"; profile {actx.profile_name!r}.")


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
    from cwqbo import connect as core
    from cwqbo.cli import render
    from cwqbo.cli.main import get_app_context

    actx = get_app_context(ctx)
    profile = actx.ensure_profile()
    kind = secret_store or profile.secret_store
    store = core.secret_store_for(actx, kind)
    if disconnect:
        warning = core.disconnect_quickbooks(actx, store)
        if warning:
            render.warn(warning)
        render.info(f"Disconnected QuickBooks for profile {profile.name!r}.")
        return
    old = profile.quickbooks
    env = core.qbo_environment(environment, old)
    settings = core.qbo_settings(old, environment=env,
                                 client_id=_need(client_id or old.client_id or None, "--client-id", "Client id"),
                                 redirect_uri=redirect_uri, simulator_url=simulator_url)
    secret = _need(client_secret or core.stored_client_secret(store, profile.name), "--client-secret",
                   "Client secret", hide=True)

    def consent(url: str, state: str) -> CallbackResult:
        return _browser_consent(url, state, settings.redirect_uri, no_browser=no_browser, timeout=timeout)

    done = core.connect_quickbooks(actx, store, kind, settings, secret, consent)
    render.info(f"Connected to QuickBooks: {done.company_name or 'company'} (realm {done.realm_id}, {env}); "
                f"profile {profile.name!r}.")


def _browser_consent(url: str, state: str, redirect_uri: str, *, no_browser: bool, timeout: float
                     ) -> CallbackResult:
    """The user approves in a browser: we open it and catch the redirect, or (--no-browser) they paste it."""
    from cwqbo.quickbooks import oauth

    if no_browser:
        return oauth.parse_callback_url(_ask_redirect_url(url), state)
    listener = oauth.CallbackListener(redirect_uri, state).start()
    try:
        _open_browser(url)
    except Exception:
        listener.close()
        raise
    return listener.wait(timeout)
