from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from cwqbo import http
from cwqbo.clock import ManualClock
from cwqbo.settings.config import QBOSettings
from cwqbo.errors import AuthError, RemoteError
from cwqbo.quickbooks import oauth
from cwqbo.quickbooks.oauth import CallbackListener, Endpoints, TokenManager
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator
from cwqbo.settings.secrets import FileStore, load_tokens, save_tokens

SIM = "http://sim.test"
SETTINGS = QBOSettings(environment="simulator", client_id="sandbox-client-id", simulator_url=SIM,
                       redirect_uri="http://127.0.0.1:8725/callback", realm_id="9341453000000000")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Counting:
    """The simulator behind a transport that counts token-endpoint calls; `token_faults` are served first
    (an HTTP status, or a transport error raised before the request reaches the simulator)."""

    def __init__(self, sim: QBOSimulator) -> None:
        self.sim, self.token_calls = sim, 0
        self.token_faults: list[int | type[httpx.TransportError]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/v1/tokens/bearer":
            self.token_calls += 1
            assert request.headers["x-include-refresh-token-hard-expires-in"] == "true"
            if self.token_faults:
                fault = self.token_faults.pop(0)
                if isinstance(fault, int):
                    return httpx.Response(fault, json={"error": "server_error"}, headers={"intuit_tid": "tid-1"})
                raise fault("down", request=request)
        return self.sim.handle(request)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> QBOSimulator:
    return QBOSimulator(clock, Faults())


@pytest.fixture
def counting(sim: QBOSimulator) -> Counting:
    c = Counting(sim)
    http.set_transport_override(httpx.MockTransport(c.handle))
    return c


@pytest.fixture
def store(tmp_path: Path, counting: Counting, clock: ManualClock) -> FileStore:
    """A store holding a fresh connection, as `connect quickbooks` leaves it."""
    store = FileStore(tmp_path / "secrets.json")
    state = oauth.new_state()
    with http.new_client() as client:
        loc = client.get(oauth.authorize_url(SETTINGS, state)).headers["location"]
    result = oauth.parse_callback_url(loc, state)
    tokens = oauth.exchange_code(SETTINGS, "sandbox-client-secret", result.code, result.realm_id, clock)
    assert tokens.refresh_hard_expires_at is not None
    save_tokens(store, "p", tokens)
    store.set("p/qbo_client_secret", "sandbox-client-secret")
    counting.token_calls = 0
    return store


def manager(store: FileStore, tmp_path: Path, clock: ManualClock) -> TokenManager:
    return TokenManager(SETTINGS, store, "p", tmp_path / "locks" / "p.oauth.lock", clock)


def test_endpoints_per_environment() -> None:
    prod = Endpoints.for_settings(QBOSettings(environment="production"))
    assert prod.token == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert prod.api_base == "https://quickbooks.api.intuit.com/v3"
    assert Endpoints.for_settings(QBOSettings(environment="sandbox")).api_base.startswith("https://sandbox-")
    sim = Endpoints.for_settings(QBOSettings(environment="simulator", simulator_url="http://127.0.0.1:9/"))
    assert sim.authorize == "http://127.0.0.1:9/connect/oauth2"
    assert sim.revoke == "http://127.0.0.1:9/v2/oauth2/tokens/revoke"


def test_authorize_url_carries_scope_state_and_redirect() -> None:
    q = parse_qs(urlparse(oauth.authorize_url(QBOSettings(client_id="cid"), "st4te")).query)
    assert q["scope"] == ["com.intuit.quickbooks.accounting"] and q["state"] == ["st4te"]
    assert q["redirect_uri"] == ["http://127.0.0.1:8725/callback"] and q["client_id"] == ["cid"]


def test_fresh_token_is_used_without_refresh(store: FileStore, tmp_path: Path, clock: ManualClock,
                                             counting: Counting) -> None:
    token = manager(store, tmp_path, clock).access_token()
    assert token == load_tokens(store, "p").access_token and counting.token_calls == 0


def test_refresh_saves_rotated_token_before_returning(store: FileStore, tmp_path: Path, clock: ManualClock,
                                                     counting: Counting, monkeypatch: pytest.MonkeyPatch) -> None:
    before = load_tokens(store, "p")
    seen: dict[str, str] = {}
    monkeypatch.setattr(oauth, "crashpoint", lambda name: seen.setdefault(name, load_tokens(store, "p").refresh_token))
    clock.advance(3600 - 200)  # under 5 minutes left
    token = manager(store, tmp_path, clock).access_token()
    after = load_tokens(store, "p")
    assert counting.token_calls == 1
    assert token == after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token
    assert seen == {"oauth.after_refresh_response": before.refresh_token,
                    "oauth.after_refresh_saved": after.refresh_token}


def test_failed_save_never_hands_out_the_token(store: FileStore, tmp_path: Path, clock: ManualClock,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    clock.advance(3600)
    monkeypatch.setattr(oauth, "save_tokens", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        manager(store, tmp_path, clock).access_token()


def test_second_process_sees_the_rotated_token(store: FileStore, tmp_path: Path, clock: ManualClock,
                                              counting: Counting, sim: QBOSimulator) -> None:
    first, second = manager(store, tmp_path, clock), manager(store, tmp_path, clock)
    assert first.access_token() == second.access_token()  # both have read the same tokens
    clock.advance(3600)
    new = first.access_token()
    assert counting.token_calls == 1
    assert second.access_token() == new  # re-read under the lock: no second refresh with a stale token
    assert counting.token_calls == 1
    clock.advance(3600 + 25 * 3600)  # long after the old refresh token would have died
    assert second.access_token() != new and counting.token_calls == 2


def test_force_refresh_after_401(store: FileStore, tmp_path: Path, clock: ManualClock, counting: Counting) -> None:
    first, second = manager(store, tmp_path, clock), manager(store, tmp_path, clock)
    old = first.access_token()
    second.access_token()
    new = first.force_refresh()
    assert new != old and counting.token_calls == 1
    assert second.force_refresh() == new and counting.token_calls == 1  # someone already replaced it


def test_refresh_is_retried_on_the_clock_like_an_api_call(store: FileStore, tmp_path: Path, clock: ManualClock,
                                                          counting: Counting) -> None:
    """A refresh is safe to repeat: the refresh token it used stays valid for 24 h after a rotation."""
    before = load_tokens(store, "p")
    clock.advance(3600)
    start = clock.now()
    counting.token_faults = [503, httpx.ReadTimeout, 429]
    token = manager(store, tmp_path, clock).access_token()
    assert counting.token_calls == 4 and token == load_tokens(store, "p").access_token != before.access_token
    assert clock.now() > start  # backed off on the injected clock


def test_refresh_that_keeps_failing_is_a_remote_error(store: FileStore, tmp_path: Path, clock: ManualClock,
                                                      counting: Counting) -> None:
    clock.advance(3600)
    counting.token_faults = [503] * 10
    with pytest.raises(RemoteError, match="the QuickBooks token endpoint kept failing: HTTP 503 after 6 attempts") as info:
        manager(store, tmp_path, clock).access_token()
    assert info.value.exit_code == 4 and info.value.tid == "tid-1" and counting.token_calls == 6


def test_code_exchange_is_retried_only_when_it_cannot_have_reached_intuit(counting: Counting,
                                                                          clock: ManualClock) -> None:
    """A second exchange of the same code revokes the tokens: never resend one that may have arrived."""

    def code() -> oauth.CallbackResult:
        state = oauth.new_state()
        with http.new_client() as client:
            return oauth.parse_callback_url(client.get(oauth.authorize_url(SETTINGS, state)).headers["location"],
                                            state)

    first = code()
    counting.token_faults = [httpx.ConnectError, 429]  # never arrived / refused before anything was done
    tokens = oauth.exchange_code(SETTINGS, "sandbox-client-secret", first.code, first.realm_id, clock)
    assert tokens.access_token and counting.token_calls == 3

    counting.token_calls = 0
    second = code()
    counting.token_faults = [503]
    with pytest.raises(RemoteError, match="HTTP 503"):
        oauth.exchange_code(SETTINGS, "sandbox-client-secret", second.code, second.realm_id, clock)
    assert counting.token_calls == 1

    counting.token_calls = 0
    counting.token_faults = [httpx.ReadError]
    with pytest.raises(RemoteError, match="cannot reach the QuickBooks token endpoint: ReadError"):
        oauth.exchange_code(SETTINGS, "sandbox-client-secret", code().code, first.realm_id, clock)
    assert counting.token_calls == 1


def test_invalid_grant_says_reconnect(store: FileStore, tmp_path: Path, clock: ManualClock) -> None:
    with http.new_client() as client:
        client.post(f"{SIM}/v2/oauth2/tokens/revoke", auth=("sandbox-client-id", "sandbox-client-secret"),
                    json={"token": load_tokens(store, "p").refresh_token})
    clock.advance(3600)
    with pytest.raises(AuthError) as exc:
        manager(store, tmp_path, clock).access_token()
    assert str(exc.value) == "QuickBooks connection expired or revoked — re-run `cwqbo connect quickbooks`"
    assert exc.value.exit_code == 3


def test_callback_listener_accepts_matching_state_on_loopback() -> None:
    port = free_port()
    listener = CallbackListener(f"http://127.0.0.1:{port}/callback", "good").start()
    assert listener.address == ("127.0.0.1", port)
    r = httpx.get(f"http://127.0.0.1:{port}/callback", params={"code": "C", "state": "good", "realmId": "42"})
    assert r.status_code == 200 and "connected" in r.text
    result = listener.wait(5)
    assert (result.code, result.realm_id) == ("C", "42")


def test_callback_listener_rejects_wrong_state() -> None:
    port = free_port()
    listener = CallbackListener(f"http://127.0.0.1:{port}/callback", "good").start()
    holder: dict[str, httpx.Response] = {}
    t = threading.Thread(target=lambda: holder.setdefault("r", httpx.get(
        f"http://127.0.0.1:{port}/callback?code=C&state=evil&realmId=42")))
    t.start()
    with pytest.raises(AuthError, match="state parameter does not match"):
        listener.wait(5)
    t.join()
    assert holder["r"].status_code == 400 and "could not connect" in holder["r"].text


def test_callback_listener_refuses_non_loopback_redirect() -> None:
    with pytest.raises(Exception, match="not a loopback"):
        CallbackListener("https://example.com/callback", "s")


def test_pasted_url_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthError, match="no \\?code"):
        oauth.parse_callback_url("http://127.0.0.1:8725/callback", "s")
    with pytest.raises(AuthError, match="access_denied"):
        oauth.parse_callback_url("http://127.0.0.1:8725/callback?error=access_denied&state=s", "s")
    assert oauth.parse_callback_url(" http://x/cb?code=c&state=s&realmId=1 ", "s").realm_id == "1"
