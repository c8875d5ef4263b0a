"""Our OAuth endpoints and token parsing agree with Intuit's own published samples (../shared/data/qbo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cwqbo.settings.config import QBOSettings
from cwqbo.quickbooks.oauth import Endpoints, _token_set

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "qbo" / "intuit_dotnet_oauth_samples"
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/data/qbo OAuth samples not present")


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("environment", ["production", "sandbox"])
def test_our_endpoints_are_the_ones_intuit_discovery_publishes(environment: str) -> None:
    discovery = sample("discovery.json")
    ours = Endpoints.for_settings(QBOSettings(environment=environment, client_id="x"))
    assert ours.authorize == discovery["authorization_endpoint"]
    assert ours.token == discovery["token_endpoint"]
    assert ours.revoke == discovery["revocation_endpoint"]


def test_intuit_token_response_becomes_both_expiries() -> None:
    tokens = _token_set(sample("success_token_response.json"), 1_000.0, "123")
    assert (tokens.access_token, tokens.refresh_token, tokens.realm_id) == ("access_token", "refresh_token", "123")
    assert tokens.access_expires_at == 1_000.0 + 3600
    assert tokens.refresh_expires_at == 1_000.0 + 15_552_000
    assert tokens.refresh_hard_expires_at is None  # not in this sample: kept unknown, never invented
