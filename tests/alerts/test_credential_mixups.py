"""The two secrets people mix up, an API token and an integration key, and the CLI's two settings: each
refusal says which one is wrong and how to get it right."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from warroom.cli.output import _setting_hint
from warroom.client import ApiError


def test_an_integration_key_sent_as_an_api_token_is_named(api: TestClient, generic_key: str) -> None:
    answer = api.get("/api/v1/incidents", headers={"Authorization": f"Bearer {generic_key}"})
    assert answer.status_code == 401
    message = answer.json()["error"]["message"]
    assert message.startswith("the token is not valid: it is an integration key, which alert sources send")
    assert "warroom token create" in message
    # Any other unknown secret says only that it is not valid (it gives nothing away).
    other = api.get("/api/v1/incidents", headers={"Authorization": "Bearer not-a-secret-of-ours"})
    assert other.json()["error"]["message"] == "the token is not valid"


def test_the_cli_points_at_the_setting_an_answer_blames(monkeypatch: pytest.MonkeyPatch) -> None:
    required = ApiError(401, "unauthorized", "a token is required: send 'Authorization: Bearer <token>'")
    not_found = ApiError(404, "not_found", "Not Found")
    monkeypatch.delenv("WARROOM_TOKEN", raising=False)
    monkeypatch.setenv("WARROOM_URL", "http://warroom.example.com:8080/api/v1/")
    assert _setting_hint(required) == (
        "set WARROOM_TOKEN to an API token (warroom token create --name NAME --role responder)"
    )
    assert _setting_hint(not_found) == (
        "WARROOM_URL is the server's address, without a path: http://warroom.example.com:8080"
    )
    monkeypatch.setenv("WARROOM_TOKEN", "abc")
    monkeypatch.setenv("WARROOM_URL", "http://warroom.example.com:8080/")
    assert _setting_hint(required) is None
    assert _setting_hint(not_found) is None  # an incident that does not exist, at the right address
