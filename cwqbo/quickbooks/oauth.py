"""QuickBooks OAuth 2.0: authorize URL, loopback callback, code exchange, revoke, and token refresh.

Intuit rotates refresh tokens and kills the old one 24 h later, so `TokenManager` refreshes under
a file lock (one process at a time), re-reads the store after taking the lock (another process
may already have refreshed), and saves the rotated token *before* handing out the access token.

Calls to Intuit follow the retry policy shared with the API clients (`cwqbo.http`). A refresh is safe to
repeat (the refresh token it used stays valid for 24 h after a rotation), and so are revoke and the
companyinfo read; the code exchange is not (a second exchange of the same code revokes the tokens), so it is
retried only when it cannot have reached Intuit, or on 429.
"""

from __future__ import annotations

import html
import logging
import secrets as _stdlib_secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

from cwqbo import http, money
from cwqbo.clock import Clock
from cwqbo.settings.config import QBOSettings
from cwqbo.crashpoints import crashpoint
from cwqbo.errors import AuthError, ConfigError, RemoteError
from cwqbo.settings.tokens import TokenSet
from cwqbo.settings.secrets import QBO_CLIENT_SECRET, SecretStore, load_tokens, save_tokens, secret_name

log = logging.getLogger(__name__)

SCOPE = "com.intuit.quickbooks.accounting"
HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"
REFRESH_MARGIN = 300.0  # refresh when less than 5 minutes of access-token life remain
EXPIRED_MESSAGE = "QuickBooks connection expired or revoked — re-run `cwqbo connect quickbooks`"


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str
    revoke: str
    api_base: str

    @classmethod
    def for_settings(cls, qbo: QBOSettings) -> "Endpoints":
        if qbo.environment == "simulator":
            if not qbo.simulator_url:
                raise ConfigError("quickbooks.simulator_url is required for the simulator environment")
            url = qbo.simulator_url.rstrip("/")
            return cls(f"{url}/connect/oauth2", f"{url}/oauth2/v1/tokens/bearer",
                       f"{url}/v2/oauth2/tokens/revoke", f"{url}/v3")
        if qbo.environment not in ("production", "sandbox"):
            raise ConfigError(f"unknown QuickBooks environment {qbo.environment!r}")
        api = ("https://quickbooks.api.intuit.com/v3" if qbo.environment == "production"
               else "https://sandbox-quickbooks.api.intuit.com/v3")
        return cls("https://appcenter.intuit.com/connect/oauth2",
                   "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
                   "https://developer.api.intuit.com/v2/oauth2/tokens/revoke", api)


def new_state() -> str:
    return _stdlib_secrets.token_urlsafe(24)


def authorize_url(settings: QBOSettings, state: str) -> str:
    params = {"client_id": settings.client_id, "response_type": "code", "scope": SCOPE,
              "redirect_uri": settings.redirect_uri, "state": state}
    return f"{Endpoints.for_settings(settings).authorize}?{urlencode(params)}"


@dataclass(frozen=True)
class CallbackResult:
    code: str
    realm_id: str

    def __repr__(self) -> str:
        return f"CallbackResult(realm_id={self.realm_id!r})"


def parse_callback(query: str, state: str) -> CallbackResult:
    """Validate a redirect's query string: the state must match, and Intuit must have sent a code."""
    q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if not _stdlib_secrets.compare_digest(q.get("state", ""), state):
        raise AuthError("QuickBooks callback rejected: the state parameter does not match this connect attempt",
                        hint="start `cwqbo connect quickbooks` again and use the newest link")
    if "error" in q:
        raise AuthError(f"QuickBooks authorization failed: {q['error']}",
                        hint="approve the connection in the browser, or check the app's keys and redirect URI")
    if not q.get("code") or not q.get("realmId"):
        raise AuthError("QuickBooks callback is missing the code or realmId",
                        hint="connect with an accounting-scope app and paste the full redirect URL")
    return CallbackResult(q["code"], q["realmId"])


def parse_callback_url(url: str, state: str) -> CallbackResult:
    """For --no-browser: the user pastes the URL the browser was redirected to."""
    parsed = urlparse(url.strip())
    if not parsed.query:
        raise AuthError("that is not the redirect URL (it has no ?code=…&state=… part)",
                        hint="copy the whole address from the browser after approving the connection")
    return parse_callback(parsed.query, state)


class CallbackListener:
    """A one-shot HTTP server on 127.0.0.1 at the redirect URI's port that waits for Intuit's redirect."""

    def __init__(self, redirect_uri: str, state: str) -> None:
        parsed = urlparse(redirect_uri)
        if parsed.hostname not in ("127.0.0.1", "localhost"):
            raise ConfigError(f"redirect URI {redirect_uri!r} is not a loopback address",
                              hint="use --no-browser and paste the redirect URL, or a http://127.0.0.1:PORT/ URI")
        self.path = parsed.path or "/"
        self.state = state
        self._result: CallbackResult | None = None
        self._error: AuthError | None = None
        self._done = threading.Event()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                url = urlparse(self.path)
                if url.path != listener.path:
                    self._reply(404, "Not found.")
                    return
                try:
                    listener._result = parse_callback(url.query, listener.state)
                except AuthError as e:
                    listener._error = e
                    self._reply(400, f"cwqbo could not connect: {e}. You can close this window.")
                else:
                    self._reply(200, "cwqbo is connected to QuickBooks. You can close this window.")
                listener._done.set()

            def _reply(self, status: int, text: str) -> None:
                body = f"<!doctype html><title>cwqbo</title><p>{html.escape(text)}</p>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                return

        port = parsed.port or 80
        try:
            self._server = HTTPServer(("127.0.0.1", port), Handler)
        except OSError as e:
            raise ConfigError(f"cannot listen on 127.0.0.1:{port} for the QuickBooks callback: {e.strerror}",
                              hint="free the port, pick another --redirect-uri, or use --no-browser") from None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> "CallbackListener":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float = 300.0) -> CallbackResult:
        try:
            if not self._done.wait(timeout):
                raise AuthError("timed out waiting for the QuickBooks authorization",
                                hint="re-run, or use --no-browser and paste the redirect URL")
            if self._error is not None:
                raise self._error
            assert self._result is not None
            return self._result
        finally:
            self.close()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "CallbackListener":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- token endpoint -----------------------------------------------------------------------------------


def _call(label: str, send: Callable[[], httpx.Response], *, idempotent: bool, clock: Clock | None) -> httpx.Response:
    """`send()` under the shared retry policy; the final failure is a RemoteError naming `label`.

    Exceptions are not chained to httpx's (`from None`): they would carry the request, and its form holds
    the refresh token or the authorization code.
    """
    clk = clock or Clock()

    def attempt() -> httpx.Response:
        try:
            response = send()
        except httpx.TransportError as e:
            failure = http.transport_failure(e, idempotent=idempotent)
            if failure is not None:
                raise failure from None
            raise RemoteError(f"cannot reach {label}: {type(e).__name__}") from None
        except httpx.HTTPError as e:
            raise RemoteError(f"cannot reach {label}: {type(e).__name__}") from None
        failure = http.response_failure(response, idempotent=idempotent, now=clk.now())
        if failure is not None:
            raise failure
        return response

    def give_up(last: http.Retriable) -> RemoteError:
        tid = last.response.headers.get("intuit_tid") if last.response is not None else None
        return RemoteError(f"{label} kept failing: {last.reason} after {last.attempts} attempts",
                           status=last.status, tid=tid, hint="QuickBooks may be down; try again later")

    return http.RETRY_POLICY.call(attempt, clock=clk, label=label, give_up=give_up)


def _token_request(settings: QBOSettings, client_secret: str, form: dict[str, str], *, idempotent: bool,
                   clock: Clock | None) -> dict[str, Any]:
    endpoints = Endpoints.for_settings(settings)
    with http.new_client(auth=(settings.client_id, client_secret), headers={HARD_EXPIRY_HEADER: "true"}) as client:
        response = _call("the QuickBooks token endpoint", lambda: client.post(endpoints.token, data=form),
                         idempotent=idempotent, clock=clock)
    tid = response.headers.get("intuit_tid")
    try:
        body = money.loads(response.content or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 200 and body.get("access_token") and body.get("refresh_token"):
        return body
    error = str(body.get("error", ""))
    log.warning("token endpoint answered %s %s (intuit_tid %s)", response.status_code, error, tid)
    if error == "invalid_grant":
        raise AuthError(EXPIRED_MESSAGE)
    if error == "invalid_client" or response.status_code == 401:
        raise AuthError("QuickBooks rejected the app's client id or client secret",
                        hint="check them on the app's Keys page and re-run `cwqbo connect quickbooks`")
    raise RemoteError(f"QuickBooks token endpoint failed: HTTP {response.status_code} {error}".strip(),
                      status=response.status_code, code=error or None, tid=tid)


def _token_set(body: dict[str, Any], now: float, realm_id: str, previous: TokenSet | None = None) -> TokenSet:
    hard = body.get("x_refresh_token_hard_expires_in")
    return TokenSet(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]),
        access_expires_at=now + float(body.get("expires_in", 3600)),
        refresh_expires_at=now + float(body.get("x_refresh_token_expires_in", 8_726_400)),
        refresh_hard_expires_at=(now + float(hard)) if hard is not None else (
            previous.refresh_hard_expires_at if previous else None),
        realm_id=realm_id,
    )


def exchange_code(settings: QBOSettings, client_secret: str, code: str, realm_id: str,
                  clock: Clock | None = None) -> TokenSet:
    """Trade the authorization code for tokens (exactly once: a second exchange revokes them)."""
    now = (clock or Clock()).now()
    body = _token_request(settings, client_secret, {"grant_type": "authorization_code", "code": code,
                                                     "redirect_uri": settings.redirect_uri},
                          idempotent=False, clock=clock)
    return _token_set(body, now, realm_id)


def refresh_tokens(settings: QBOSettings, client_secret: str, tokens: TokenSet, clock: Clock) -> TokenSet:
    now = clock.now()
    body = _token_request(settings, client_secret, {"grant_type": "refresh_token",
                                                     "refresh_token": tokens.refresh_token},
                          idempotent=True, clock=clock)
    return _token_set(body, now, tokens.realm_id, tokens)


def revoke(settings: QBOSettings, client_secret: str, token: str, clock: Clock | None = None) -> None:
    """Revoke the grant at Intuit (the refresh token revokes the whole connection)."""
    endpoints = Endpoints.for_settings(settings)
    with http.new_client(auth=(settings.client_id, client_secret)) as client:
        response = _call("the QuickBooks revoke endpoint",
                         lambda: client.post(endpoints.revoke, content=money.dumps({"token": token}),
                                             headers={"Content-Type": "application/json"}),
                         idempotent=True, clock=clock)
    if response.status_code >= 400:
        raise RemoteError(f"QuickBooks revoke failed: HTTP {response.status_code}", status=response.status_code,
                          tid=response.headers.get("intuit_tid"))


def fetch_company_name(settings: QBOSettings, access_token: str, realm_id: str, clock: Clock | None = None) -> str:
    """Prove the new connection works (one read) and name the company for the user."""
    base = Endpoints.for_settings(settings).api_base
    with http.new_client(headers={"Authorization": f"Bearer {access_token}"}) as client:
        response = _call("QuickBooks", lambda: client.get(f"{base}/company/{realm_id}/companyinfo/{realm_id}",
                                                          params={"minorversion": "75"}),
                         idempotent=True, clock=clock)
    if response.status_code in (401, 403):
        raise http.error_class(response.status_code)(
            f"QuickBooks refused the new connection (HTTP {response.status_code})",
            hint="check the environment (sandbox vs production) matches the app's keys")
    if response.status_code != 200:
        raise RemoteError(f"QuickBooks companyinfo failed: HTTP {response.status_code}",
                          status=response.status_code, tid=response.headers.get("intuit_tid"))
    body = money.loads(response.content)
    return str(body.get("CompanyInfo", {}).get("CompanyName", ""))


class TokenManager:
    """Hands out a valid access token; refreshes (and persists the rotation) when it is about to expire."""

    def __init__(self, settings: QBOSettings, secret_store: SecretStore, profile: str, lock_path: Path,
                 clock: Clock | None = None, lock_timeout: float = 60.0) -> None:
        self.settings = settings
        self.store = secret_store
        self.profile = profile
        self.lock_path = lock_path
        self.clock = clock or Clock()
        self.lock_timeout = lock_timeout
        self._tokens: TokenSet | None = None

    def __repr__(self) -> str:
        return f"TokenManager(profile={self.profile!r}, realm_id={self.settings.realm_id!r})"

    @property
    def tokens(self) -> TokenSet:
        if self._tokens is None:
            self._tokens = load_tokens(self.store, self.profile)
        return self._tokens

    def _fresh(self, tokens: TokenSet) -> bool:
        return tokens.access_expires_at - self.clock.now() >= REFRESH_MARGIN

    def access_token(self) -> str:
        tokens = self.tokens
        if self._fresh(tokens):
            return tokens.access_token
        return self._refresh(stale_access=tokens.access_token)

    def force_refresh(self) -> str:
        """After a 401: refresh unless another process already replaced the token we were using."""
        return self._refresh(stale_access=self.tokens.access_token, force=True)

    def _refresh(self, stale_access: str, force: bool = False) -> str:
        from filelock import FileLock, Timeout

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self.lock_path), timeout=self.lock_timeout):
                # Another process may have refreshed while we waited: its rotated token is the only valid one.
                current = load_tokens(self.store, self.profile)
                if current.access_token != stale_access and self._fresh(current):
                    self._tokens = current
                    return current.access_token
                if not force and self._fresh(current):
                    self._tokens = current
                    return current.access_token
                client_secret = self.store.get(secret_name(self.profile, QBO_CLIENT_SECRET))
                if not client_secret:
                    raise AuthError("the QuickBooks client secret is missing from the secret store",
                                    hint="re-run `cwqbo connect quickbooks`")
                rotated = refresh_tokens(self.settings, client_secret, current, self.clock)
                crashpoint("oauth.after_refresh_response")
                # Persist before use: once Intuit has rotated, the old refresh token dies within 24 h.
                save_tokens(self.store, self.profile, rotated)
                crashpoint("oauth.after_refresh_saved")
                self._tokens = rotated
                log.info("refreshed QuickBooks access token for profile %s", self.profile)
                return rotated.access_token
        except Timeout:
            raise AuthError("timed out waiting for another cwqbo process to refresh the QuickBooks token",
                            hint="try again in a minute") from None
