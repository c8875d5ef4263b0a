"""OAuth 2.0 on the QBO simulator: authorize, code exchange, rotation with a 24 h grace, revoke, 401/403."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from cwqbo.clock import ManualClock
from cwqbo.sandbox.faults import Faults
from cwqbo.sandbox.quickbooks.simulator import QBOSimulator

REALM = "9341453000000000"
REDIRECT = "http://127.0.0.1:8765/callback"
BASIC = "Basic " + base64.b64encode(b"sandbox-client-id:sandbox-client-secret").decode()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> QBOSimulator:
    return QBOSimulator(clock, Faults())


@pytest.fixture
def client(sim: QBOSimulator) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(sim.handle), base_url="http://sim.test")


def authorize(client: httpx.Client, **overrides: str) -> httpx.Response:
    params = {"client_id": "sandbox-client-id", "response_type": "code", "scope": "com.intuit.quickbooks.accounting",
              "redirect_uri": REDIRECT, "state": "csrf-123", **overrides}
    return client.get("/connect/oauth2", params=params)


def code_from(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 302
    loc = urlparse(resp.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(loc.query).items()}


def exchange(client: httpx.Client, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/oauth2/v1/tokens/bearer", headers={"Authorization": BASIC, **(headers or {})},
                       data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})


def refresh(client: httpx.Client, token: str, **headers: str) -> httpx.Response:
    return client.post("/oauth2/v1/tokens/bearer", headers={"Authorization": BASIC, **headers},
                       data={"grant_type": "refresh_token", "refresh_token": token})


def api_get(client: httpx.Client, access: str, realm: str = REALM) -> httpx.Response:
    return client.get(f"/v3/company/{realm}/companyinfo/{realm}", headers={"Authorization": f"Bearer {access}"},
                      params={"minorversion": "75"})


def test_discovery_urls_use_the_requests_own_host(client: httpx.Client) -> None:
    for path in ("/.well-known/openid_sandbox_configuration", "/.well-known/openid_configuration/"):
        doc = client.get(path).json()
        assert doc["token_endpoint"] == "http://sim.test/oauth2/v1/tokens/bearer"
        assert doc["authorization_endpoint"] == "http://sim.test/connect/oauth2"
        assert doc["revocation_endpoint"] == "http://sim.test/v2/oauth2/tokens/revoke"
        assert set(doc["token_endpoint_auth_methods_supported"]) == {"client_secret_post", "client_secret_basic"}


def test_authorize_auto_consents_and_the_code_buys_tokens(client: httpx.Client) -> None:
    params = code_from(authorize(client))
    assert params["state"] == "csrf-123" and params["realmId"] == REALM
    resp = exchange(client, params["code"])
    assert resp.status_code == 200
    assert resp.headers["intuit_tid"].startswith("1-")
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == 100 * 86400
    assert "x_refresh_token_hard_expires_in" not in body
    assert api_get(client, body["access_token"]).status_code == 200


def test_authorize_rejects_bad_client_scope_and_redirect(client: httpx.Client) -> None:
    assert authorize(client, client_id="someone-else").status_code == 400
    assert code_from(authorize(client, scope="com.example.nope"))["error"] == "invalid_scope"
    assert authorize(client, redirect_uri="not a url").status_code == 400
    assert authorize(client, state="").status_code == 400


def test_client_secret_post_and_bad_client(client: httpx.Client) -> None:
    code = code_from(authorize(client))["code"]
    bad = client.post("/oauth2/v1/tokens/bearer", data={"grant_type": "authorization_code", "code": code,
                                                         "redirect_uri": REDIRECT, "client_id": "sandbox-client-id",
                                                         "client_secret": "wrong"})
    assert bad.status_code == 401 and bad.json() == {"error": "invalid_client"}
    ok = client.post("/oauth2/v1/tokens/bearer", data={"grant_type": "authorization_code", "code": code,
                                                        "redirect_uri": REDIRECT, "client_id": "sandbox-client-id",
                                                        "client_secret": "sandbox-client-secret"})
    assert ok.status_code == 200


def test_second_exchange_of_a_code_kills_the_first_tokens(client: httpx.Client) -> None:
    code = code_from(authorize(client))["code"]
    first = exchange(client, code).json()
    again = exchange(client, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert api_get(client, first["access_token"]).status_code == 401
    assert refresh(client, first["refresh_token"]).json() == {"error": "invalid_grant"}


def test_access_token_expires_after_an_hour_with_the_recorded_401(client: httpx.Client, sim: QBOSimulator,
                                                                 clock: ManualClock) -> None:
    tokens = sim.issue_tokens()
    clock.advance(3599)
    assert api_get(client, tokens["access_token"]).status_code == 200
    clock.advance(2)
    resp = api_get(client, tokens["access_token"])
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="Intuit", error="invalid_token"'
    body = resp.json()
    assert body["fault"]["type"] == "AUTHENTICATION"
    err = body["fault"]["error"][0]
    assert err["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    assert err["code"] == "3200" and err["detail"].startswith("Token expired: ")
    assert set(body) >= {"warnings", "intuitObject", "fault", "batchItemResponse", "time", "cdcresponse"}
    assert isinstance(body["time"], int)


def test_expire_access_tokens_helper(client: httpx.Client, sim: QBOSimulator) -> None:
    tokens = sim.issue_tokens()
    sim.expire_access_tokens()
    assert api_get(client, tokens["access_token"]).status_code == 401


def test_wrong_realm_is_403_3100(client: httpx.Client, sim: QBOSimulator) -> None:
    resp = api_get(client, sim.issue_tokens()["access_token"], realm="123")
    assert resp.status_code == 403
    err = resp.json()["Fault"]["Error"][0]
    assert err["code"] == "3100" and "ApplicationAuthorizationFailed" in err["Message"]


def test_refresh_rotates_and_the_old_token_has_a_24h_grace(client: httpx.Client, sim: QBOSimulator,
                                                           clock: ManualClock) -> None:
    first = sim.issue_tokens()
    second = refresh(client, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert api_get(client, second["access_token"]).status_code == 200
    clock.advance(23 * 3600)
    assert refresh(client, first["refresh_token"]).status_code == 200  # still inside the grace period
    clock.advance(2 * 3600)
    late = refresh(client, first["refresh_token"])
    assert late.status_code == 400 and late.json() == {"error": "invalid_grant"}


def test_refresh_token_dies_after_100_idle_days_and_hard_expiry_is_reported(client: httpx.Client,
                                                                             sim: QBOSimulator,
                                                                             clock: ManualClock) -> None:
    tokens = sim.issue_tokens()
    body = refresh(client, tokens["refresh_token"], **{"x-include-refresh-token-hard-expires-in": "true"}).json()
    assert 0 < body["x_refresh_token_hard_expires_in"] <= 5 * 365 * 86400
    assert body["x_refresh_token_expires_in"] == 100 * 86400
    clock.advance(100 * 86400 + 1)
    assert refresh(client, body["refresh_token"]).json() == {"error": "invalid_grant"}


def test_revoke_kills_the_grant(client: httpx.Client, sim: QBOSimulator) -> None:
    tokens = sim.issue_tokens()
    resp = client.post("/v2/oauth2/tokens/revoke", headers={"Authorization": BASIC},
                       json={"token": tokens["refresh_token"]})
    assert resp.status_code == 200
    assert api_get(client, tokens["access_token"]).status_code == 401
    assert refresh(client, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_unknown_grant_type_and_garbage_tokens(client: httpx.Client) -> None:
    resp = client.post("/oauth2/v1/tokens/bearer", headers={"Authorization": BASIC}, data={"grant_type": "password"})
    assert resp.json() == {"error": "unsupported_grant_type"}
    assert refresh(client, "nope").json() == {"error": "invalid_grant"}
    assert api_get(client, "nope").status_code == 401
