"""The OpenAPI document describes the success answers of PagerDuty's and Opsgenie's routes (it said only "any
JSON", so a generated client knew nothing of ``dedup_key`` or ``requestId``), and lists no 409 for the dry
run, which changes nothing and so conflicts with nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key, payload
from tests.test_openapi_contract import Schema, problems, response_schema
from warroom.context import AppContext


@pytest.fixture
def document(api: TestClient) -> Schema:
    spec: Schema = api.get("/openapi.json").json()
    return spec


def assert_documented(
    document: Schema, method: str, path: str, answer: httpx.Response, status: int
) -> Schema:
    assert answer.status_code == status, answer.text
    schema = response_schema(document, method, path, status)
    assert "$ref" in schema, (method, path, schema)  # a model, not "any JSON"
    found = problems(document, schema, answer.json())
    assert not found, (method, path, found, answer.text)
    return schema


def test_pagerduty_success_answers_are_documented(
    api: TestClient, document: Schema, context: AppContext
) -> None:
    event = payload("pdpyras-5.4.1-trigger-request.json")["body"]
    event["routing_key"] = make_key(context, "pagerduty")
    v2 = api.post("/v2/enqueue", json=event)
    schema = assert_documented(document, "post", "/v2/enqueue", v2, 202)
    assert v2.json()["dedup_key"]
    assert problems(document, schema, {"status": "success", "message": "Event processed"})  # no dedup_key
    v1 = api.post(
        "/generic/2010-04-15/create_event.json",
        json={
            "service_key": make_key(context, "pagerduty", "v1"),
            "event_type": "trigger",
            "description": "x",
        },
    )
    schema = assert_documented(document, "post", "/generic/2010-04-15/create_event.json", v1, 200)
    assert problems(document, schema, v2.json())  # v2's answer is not v1's


def test_opsgenie_success_answers_are_documented(
    api: TestClient, document: Schema, context: AppContext
) -> None:
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    alias = "?identifierType=alias"
    answers: list[tuple[str, str, httpx.Response]] = [
        (
            "post",
            "/v2/alerts",
            api.post("/v2/alerts", json={"message": "disk full", "alias": "disk"}, headers=genie),
        ),
        (
            "post",
            "/v2/alerts/{identifier}/notes",
            api.post(f"/v2/alerts/disk/notes{alias}", json={"note": "looking"}, headers=genie),
        ),
        (
            "post",
            "/v2/alerts/{identifier}/{action}",
            api.post(f"/v2/alerts/disk/tags{alias}", json={"tags": ["db"]}, headers=genie),
        ),
        (
            "delete",
            "/v2/alerts/{identifier}/{removed}",
            api.delete(f"/v2/alerts/disk/tags{alias}&tags=db", headers=genie),
        ),
        (
            "put",
            "/v2/alerts/{identifier}/{update}",
            api.put(f"/v2/alerts/disk/message{alias}", json={"message": "disk fuller"}, headers=genie),
        ),
    ]
    for method, path, answer in answers:
        schema = assert_documented(document, method, path, answer, 202)
        wrong: dict[str, Any] = {"message": "Request will be processed", "took": 0.0}  # Opsgenie's 4xx words
        assert problems(document, schema, wrong), (method, path)


def test_the_dry_run_documents_no_conflict(document: Schema) -> None:
    """Read-only: it cannot conflict with a state, and its reads lose no race (no 409 is ever answered)."""
    responses = document["paths"]["/api/v1/alerts/preview"]["post"]["responses"]
    assert "409" not in responses and {"200", "400", "422", "503"} <= responses.keys()
    suggest = document["paths"]["/api/v1/severities/suggest"]["post"]["responses"]
    assert "409" not in suggest
    # Routes that change state still document it.
    assert "409" in document["paths"]["/api/v1/alerts/{ref}/acknowledge"]["post"]["responses"]
