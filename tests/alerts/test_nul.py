"""Text PostgreSQL cannot store, and JSON the intake cannot write again, are refused on every intake path
(the fast paths answer before the app's request guard runs), except that the monitoring tools' routes
(Alertmanager, Grafana, PagerDuty, Opsgenie) mark a NUL in the body (``test_storm_bodies``); text that only
looks like it is taken."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.conftest import make_key
from tests.conftest import bearer
from warroom.alerts.models import Alert
from warroom.context import AppContext


def stored(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Alert)) or 0


@pytest.mark.parametrize(
    ("kind", "path", "body", "field"),
    [
        ("generic", "/api/v1/alerts?key={key}", {"summary": "disk \x00 full"}, "summary"),
        (
            "generic",
            "/api/v1/alerts?key={key}",
            [{"summary": "ok"}, {"summary": "x", "dedup_key": "a\x00"}],
            "1.dedup_key",
        ),
        (
            "generic",
            "/api/v1/alerts?key={key}",
            {"summary": "x", "labels": {"ho\x00st": "db"}},
            "labels.ho\\u0000st",
        ),
    ],
)
def test_nul_in_a_delivery_is_refused_with_its_field(
    api: TestClient, context: AppContext, kind: str, path: str, body: Any, field: str
) -> None:
    key = make_key(context, kind)
    text = json.dumps(body).replace("{key}", key)
    response = api.post(path.format(key=key), content=text, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    answer = response.json()
    said = [answer["error"]["message"]] if "error" in answer else answer["errors"]  # PagerDuty's shape
    assert any(text.startswith(f"{field}: text must not contain NUL") for text in said), said
    assert stored(context) == 0


def test_nul_in_a_form_field_is_refused(api: TestClient, context: AppContext) -> None:
    key = make_key(context, "webhook")
    response = api.post(
        f"/api/v1/alerts/webhook/pingdom?key={key}",
        content="check_id=9%00&check_name=web&current_state=DOWN",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400, response.text
    assert "check_id" in response.json()["error"]["message"]
    assert stored(context) == 0


def test_an_escaped_backslash_before_u0000_is_plain_text(
    api: TestClient, context: AppContext, generic_key: str, admin: dict[str, str]
) -> None:
    """``"C:\\\\u0000dir"`` in JSON is a backslash and letters, not a NUL: taken by intake and by the routes
    behind the request guard alike."""
    body = '{"summary": "path C:\\\\u0000dir is full", "dedup_key": "path"}'
    response = api.post(
        f"/api/v1/alerts?key={generic_key}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text
    with context.db.read() as session:
        assert session.scalar(select(Alert.summary)) == "path C:\\u0000dir is full"

    incident = api.post(
        "/api/v1/incidents",
        content='{"title": "C:\\\\u0000dir full", "severity": "P3"}',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert incident.status_code == 201, incident.text
    assert incident.json()["title"] == "C:\\u0000dir full"
    # ... while a real NUL behind the guard is still refused before any handler runs.
    refused = api.post("/api/v1/incidents", json={"title": "a\x00b", "severity": "P3"}, headers=admin)
    assert refused.status_code == 422
    assert "NUL" in refused.json()["error"]["message"]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_body_nested_too_deeply_is_refused(api: TestClient, context: AppContext, generic_key: str) -> None:
    deep = api.post(f"/api/v1/alerts?key={generic_key}", json={"summary": "d", "details": nested(300)})
    assert deep.status_code == 400, deep.text
    assert "nested too deeply" in deep.json()["error"]["message"]
    pd_key = make_key(context, "pagerduty")
    event = {
        "routing_key": pd_key,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "info", "custom_details": nested(300)},
    }
    refused = api.post("/v2/enqueue", json=event)
    assert refused.status_code == 400, refused.text
    assert refused.json()["status"] == "invalid event"  # PagerDuty's shape
    assert stored(context) == 0
    # Deep, but not too deep, is taken and kept as evidence.
    taken = api.post(f"/api/v1/alerts?key={generic_key}", json={"summary": "d", "details": nested(200)})
    assert taken.status_code == 202, taken.text
    assert stored(context) == 1


def test_json_posted_as_a_form_is_read_as_json(api: TestClient, context: AppContext) -> None:
    """``curl -d '{...}'`` sends JSON with the form content type: a form never starts with a brace."""
    key = make_key(context, "webhook")
    body = {"check_id": 5, "check_name": "web", "current_state": "DOWN", "description": "timeout"}
    response = api.post(
        f"/api/v1/alerts/webhook/pingdom?key={key}",
        content=json.dumps(body),
        headers={"Content-Type": "application/x-www-form-urlencoded", **bearer(key)},
    )
    assert response.status_code == 202, response.text
    with context.db.read() as session:
        alert = session.scalars(select(Alert)).one()
    assert (alert.dedup_key, alert.summary) == ("pingdom-5", "web is DOWN: timeout")


def test_nul_on_opsgenie_routes_is_refused_in_opsgenie_shape(api: TestClient, context: AppContext) -> None:
    """The request guard refuses a NUL in the path or query before Opsgenie's handlers run, so it answers
    as they answer bad input: Opsgenie's 422 with the field in ``errors``. (One in the body is marked.)"""
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}", "Content-Type": "application/json"}
    for method, path, body, field in [
        ("POST", "/v2/alerts/og1/close?identifierType=alias&user=a%00b", "", "user"),
        ("DELETE", "/v2/alerts/og1/tags?identifierType=alias&tags=a%00b", "", "tags"),
    ]:
        refused = api.request(method, path, content=body, headers=genie)
        assert refused.status_code == 422, (path, refused.text)
        answer = refused.json()
        assert set(answer) == {"message", "took", "errors", "requestId"}, answer
        assert answer["message"] == "Request body is not processable. Please check the errors."
        assert answer["errors"] == {field: "text must not contain NUL (\\u0000) characters"}, answer
    assert stored(context) == 0


def test_nul_in_a_webhook_json_body_is_refused_with_its_field(api: TestClient, context: AppContext) -> None:
    """As the same NUL sent form-encoded is (above): 400 invalid_payload naming the field."""
    key = make_key(context, "webhook")
    for content_type in ("application/json", "application/x-www-form-urlencoded"):  # curl -d's default
        refused = api.post(
            f"/api/v1/alerts/webhook/pingdom?key={key}",
            content='{"check_id": "n\\u0000l", "check_name": "x", "current_state": "DOWN"}',
            headers={"Content-Type": content_type},
        )
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_payload"
        assert error["message"] == "check_id: text must not contain NUL (\\u0000) characters"
        assert error["details"] == [
            {"field": "check_id", "message": "text must not contain NUL (\\u0000) characters"}
        ]
    in_query = api.post(f"/api/v1/alerts/webhook/pingdom?key={key}&x=%00", json={"check_id": 1})
    assert in_query.status_code == 400, in_query.text
    assert in_query.json()["error"]["details"][0]["field"] == "x"
    assert stored(context) == 0
