"""The simulated Intuit OAuth 2.0 endpoints: discovery, authorize, token (code and refresh), revoke.

Grants, codes and tokens live in the simulator state under "oauth", so a loopback server's state file keeps
connections across restarts. Refresh tokens rotate with a grace period, as Intuit documents.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

from cwqbo import money
from cwqbo.sandbox.quickbooks.core import SimulatorCore
from cwqbo.sandbox.quickbooks.responses import _html, _response

ACCESS_TOKEN_TTL = 3600
REFRESH_TOKEN_TTL = 100 * 86400  # rolling: x_refresh_token_expires_in = 8 640 000
REFRESH_HARD_TTL = 5 * 365 * 86400  # the 2025 five-year maximum
ROTATION_GRACE = 24 * 3600  # a superseded refresh token keeps working this long
AUTH_CODE_TTL = 600
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
KNOWN_SCOPES = {ACCOUNTING_SCOPE, "com.intuit.quickbooks.payment", "openid", "profile", "email", "phone", "address"}


class OAuthMixin(SimulatorCore):
    """The OAuth endpoints of `QBOSimulator`, over its clock, lock and state."""

    def _discovery(self, request: httpx.Request, tid: str) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        doc = {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }
        return _response(200, doc, tid)

    def _authorize(self, request: httpx.Request, tid: str) -> httpx.Response:
        q = {k: v[-1] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
        if q.get("client_id") != self.client_id:
            return _html(400, "invalid_client: unknown client_id", tid)
        redirect_uri = q.get("redirect_uri", "")
        parsed = urlparse(redirect_uri)
        registered = (redirect_uri in self.redirect_uris) if self.redirect_uris is not None else (
            parsed.scheme in ("http", "https") and bool(parsed.netloc))
        if not registered:
            return _html(400, "The redirect_uri query parameter value is invalid. Make sure it is listed in the "
                              "Redirect URIs section on your app's keys tab and matches it exactly.", tid)
        state = q.get("state", "")

        def back(**params: str) -> httpx.Response:
            sep = "&" if parsed.query else "?"
            return httpx.Response(302, headers={"Location": redirect_uri + sep + urlencode(params), "intuit_tid": tid})

        if q.get("response_type") != "code":
            return back(error="unsupported_response_type", state=state)
        scopes = set(q.get("scope", "").split())
        if not scopes or not scopes <= KNOWN_SCOPES:
            return back(error="invalid_scope", state=state)
        if not state:
            return _html(400, "state is required", tid)
        code = "AB" + secrets.token_urlsafe(36)
        with self._lock:
            self._state["oauth"]["codes"][code] = {
                "redirect_uri": redirect_uri, "scope": " ".join(sorted(scopes)),
                "expires_at": self.clock.now() + AUTH_CODE_TTL, "used": False, "grant": None}
        params = {"code": code, "state": state}
        if scopes & {ACCOUNTING_SCOPE, "com.intuit.quickbooks.payment"}:
            params["realmId"] = self.realm_id
        return back(**params)

    def _client_authenticated(self, request: httpx.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                user, _, pwd = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return secrets.compare_digest(user, self.client_id) and secrets.compare_digest(pwd, self.client_secret)
        return form.get("client_id") == self.client_id and secrets.compare_digest(
            form.get("client_secret", ""), self.client_secret)

    def _token(self, request: httpx.Request, tid: str) -> httpx.Response:
        if request.method != "POST":
            return _response(405, {"error": "invalid_request"}, tid)
        form = {k: v[-1] for k, v in parse_qs(request.content.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not self._client_authenticated(request, form):
            return _response(401, {"error": "invalid_client"}, tid)
        hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"
        grant_type = form.get("grant_type")
        now = self.clock.now()
        with self._lock:
            oauth = self._state["oauth"]
            if grant_type == "authorization_code":
                rec = oauth["codes"].get(form.get("code", ""))
                if rec is None or rec["expires_at"] < now:
                    return _response(400, {"error": "invalid_grant"}, tid)
                if rec["used"]:
                    # Intuit: a second exchange of the same code looks malicious and kills what it issued.
                    if rec["grant"] in oauth["grants"]:
                        oauth["grants"][rec["grant"]]["revoked"] = True
                    return _response(400, {"error": "invalid_grant"}, tid)
                if form.get("redirect_uri") != rec["redirect_uri"]:
                    return _response(400, {"error": "invalid_grant"}, tid)
                rec["used"] = True
                grant = self._new_grant(rec["scope"])
                rec["grant"] = grant
                return _response(200, self._token_response(grant, hard), tid)
            if grant_type == "refresh_token":
                token = form.get("refresh_token", "")
                rec = oauth["refresh"].get(token)
                if rec is None:
                    return _response(400, {"error": "invalid_grant"}, tid)
                grant = oauth["grants"].get(rec["grant"])
                stale = rec["superseded_at"] is not None and now > rec["superseded_at"] + ROTATION_GRACE
                if (grant is None or grant["revoked"] or rec["expires_at"] <= now or stale
                        or grant["hard_expires_at"] <= now):
                    return _response(400, {"error": "invalid_grant"}, tid)
                for other in oauth["refresh"].values():
                    if other["grant"] == rec["grant"] and other["superseded_at"] is None:
                        other["superseded_at"] = now
                return _response(200, self._token_response(rec["grant"], hard), tid)
            if not grant_type:
                return _response(400, {"error": "invalid_request"}, tid)
            return _response(400, {"error": "unsupported_grant_type"}, tid)

    def _new_grant(self, scope: str) -> str:
        grant = secrets.token_hex(8)
        self._state["oauth"]["grants"][grant] = {"realm": self.realm_id, "scope": scope, "revoked": False,
                                                 "hard_expires_at": self.clock.now() + REFRESH_HARD_TTL}
        return grant

    def _token_response(self, grant: str, hard: bool) -> dict[str, Any]:
        now = self.clock.now()
        oauth = self._state["oauth"]
        hard_at = oauth["grants"][grant]["hard_expires_at"]
        access = "eyJ" + secrets.token_urlsafe(48)
        refresh = "RT1-" + secrets.token_urlsafe(30)
        refresh_at = min(now + REFRESH_TOKEN_TTL, hard_at)
        oauth["access"][access] = {"grant": grant, "expires_at": now + ACCESS_TOKEN_TTL}
        oauth["refresh"][refresh] = {"grant": grant, "expires_at": refresh_at, "superseded_at": None}
        body: dict[str, Any] = {"token_type": "bearer", "expires_in": ACCESS_TOKEN_TTL, "refresh_token": refresh,
                                "x_refresh_token_expires_in": int(refresh_at - now), "access_token": access}
        if hard:
            body["x_refresh_token_hard_expires_in"] = int(hard_at - now)
        return body

    def _revoke(self, request: httpx.Request, tid: str) -> httpx.Response:
        if request.method != "POST":
            return _response(405, {"error": "invalid_request"}, tid)
        try:
            body = money.loads(request.content or b"{}")
        except ValueError:
            body = {}
        if not self._client_authenticated(request, {}):
            return _response(401, {"error": "invalid_client"}, tid)
        token = body.get("token") if isinstance(body, dict) else None
        if not token:
            return _response(400, {"error": "invalid_request"}, tid)
        with self._lock:
            oauth = self._state["oauth"]
            rec = oauth["refresh"].get(token) or oauth["access"].get(token)
            if rec is not None and rec["grant"] in oauth["grants"]:
                oauth["grants"][rec["grant"]]["revoked"] = True
        return httpx.Response(200, headers={"intuit_tid": tid})
