from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from warroom.context import AppContext
from warroom.incidents.models import Incident, TimelineEntry


def create(api: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"title": "API returning 500s", "severity": "P1", "services": ["api"], **fields}
    response = api.post("/api/v1/incidents", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def count_rows(context: AppContext, model: type[Any]) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_create_show_and_list(api: TestClient, responder: dict[str, str], viewer: dict[str, str]) -> None:
    created = create(api, responder, commander="Alice", summary="errors everywhere")
    assert created["id"] == "INC-1"
    assert created["status"] == "investigating"
    assert created["commander"] == "Alice"
    assert created["created_by"] == "responder-user"
    assert created["response_due_at"] is not None
    shown = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert shown["title"] == "API returning 500s"
    assert [r["role"] for r in shown["responders"]] == ["commander"]
    second = create(api, responder, title="Search slow", severity="P2", services=["search"])
    assert second["id"] == "INC-2"
    listing = api.get("/api/v1/incidents", headers=viewer).json()
    assert listing["total"] == 2
    assert [i["id"] for i in listing["items"]] == ["INC-2", "INC-1"]


def test_filters_and_pagination(api: TestClient, responder: dict[str, str]) -> None:
    create(api, responder, severity="P0", services=["payments"])
    create(api, responder, severity="P2", services=["search"])
    third = create(api, responder, severity="P2", services=["api"])
    api.patch(f"/api/v1/incidents/{third['id']}", json={"status": "resolved"}, headers=responder)

    def ids(**params: Any) -> list[str]:
        response = api.get("/api/v1/incidents", params=params, headers=responder)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["items"]]

    assert ids(severity="P2") == ["INC-3", "INC-2"]
    assert ids(service="payments") == ["INC-1"]
    assert ids(status="resolved") == ["INC-3"]
    assert ids(state="open") == ["INC-2", "INC-1"]
    assert ids(state="closed") == ["INC-3"]
    assert ids(limit=1, offset=1) == ["INC-2"]
    page = api.get("/api/v1/incidents", params={"limit": 1}, headers=responder).json()
    assert page["total"] == 3 and len(page["items"]) == 1


def test_status_lifecycle_and_timestamps(api: TestClient, responder: dict[str, str]) -> None:
    incident = create(api, responder)
    ref = incident["id"]
    for status in ("identified", "monitoring", "resolved"):
        response = api.patch(f"/api/v1/incidents/{ref}", json={"status": status}, headers=responder)
        assert response.status_code == 200, response.text
        assert response.json()[f"{status}_at"] is not None
    reopened = api.patch(
        f"/api/v1/incidents/{ref}", json={"status": "investigating", "note": "errors back"}, headers=responder
    ).json()
    assert reopened["status"] == "investigating" and reopened["resolved_at"] is None
    api.patch(f"/api/v1/incidents/{ref}", json={"status": "resolved"}, headers=responder)
    api.patch(f"/api/v1/incidents/{ref}", json={"status": "postmortem"}, headers=responder)
    closed = api.patch(f"/api/v1/incidents/{ref}", json={"status": "closed"}, headers=responder).json()
    assert closed["closed_at"] is not None
    kinds = [
        e["kind"] for e in api.get(f"/api/v1/incidents/{ref}/timeline", headers=responder).json()["items"]
    ]
    assert kinds.count("reopened") == 1
    assert kinds.count("status_change") == 6


@pytest.mark.parametrize(
    ("method", "path", "body", "change"),
    [
        ("patch", "", {"title": "Renamed after the review"}, "a change"),
        ("patch", "", {"status": "investigating"}, "a change"),
        ("post", "/ack", None, "an acknowledgement"),
        ("post", "/timeline", {"action": "one more thing"}, "a timeline entry"),
        ("post", "/responders", {"name": "Bob", "role": "scribe"}, "a new responder"),
        ("post", "/updates", {"audience": "internal", "message": "still on it"}, "an update"),
    ],
)
def test_a_closed_incident_is_a_final_record(
    api: TestClient,
    responder: dict[str, str],
    context: AppContext,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    change: str,
) -> None:
    ref = create(api, responder)["id"]
    for status in ("resolved", "postmortem", "closed"):
        moved = api.patch(f"/api/v1/incidents/{ref}", json={"status": status}, headers=responder)
        assert moved.status_code == 200, moved.text
    before = api.get(f"/api/v1/incidents/{ref}", headers=responder).json()
    entries = count_rows(context, TimelineEntry)
    refused = getattr(api, method)(f"/api/v1/incidents/{ref}{path}", json=body, headers=responder)
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert message == f"{ref} is closed, so its record is final: {change} is refused"
    assert api.get(f"/api/v1/incidents/{ref}", headers=responder).json() == before
    assert count_rows(context, TimelineEntry) == entries


def test_a_closed_incident_keeps_its_responders(api: TestClient, responder: dict[str, str]) -> None:
    ref = create(api, responder)["id"]
    scribe = api.post(
        f"/api/v1/incidents/{ref}/responders", json={"name": "Bob", "role": "scribe"}, headers=responder
    ).json()
    for status in ("resolved", "closed"):
        api.patch(f"/api/v1/incidents/{ref}", json={"status": status}, headers=responder)
    left = api.delete(f"/api/v1/incidents/{ref}/responders/{scribe['id']}", headers=responder)
    assert left.status_code == 409, left.text
    assert "a responder leaving is refused" in left.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"status": "closed"}, 409, "allowed from investigating"),
        ({"status": "nonsense"}, 422, "status"),
        ({"severity": "P7"}, 422, "P0, P1, P2, P3"),
        ({"services": ["nope"]}, 422, "unknown service"),
        ({}, 422, "nothing to change"),
        ({"title": ""}, 422, "title"),
        ({"unknown_field": 1}, 422, "unknown_field"),
    ],
)
def test_bad_updates_change_nothing(
    api: TestClient,
    responder: dict[str, str],
    context: AppContext,
    body: dict[str, Any],
    status: int,
    needle: str,
) -> None:
    incident = create(api, responder)
    before = api.get(f"/api/v1/incidents/{incident['id']}", headers=responder).json()
    entries = count_rows(context, TimelineEntry)
    response = api.patch(f"/api/v1/incidents/{incident['id']}", json=body, headers=responder)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"] or needle in str(error["details"])
    assert api.get(f"/api/v1/incidents/{incident['id']}", headers=responder).json() == before
    assert count_rows(context, TimelineEntry) == entries


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"severity": "P1"}, "title"),
        ({"title": "x", "severity": "SEV1"}, "allowed: P0, P1, P2, P3"),
        ({"title": "x", "services": ["mainframe"]}, "unknown service"),
        ({"title": "   "}, "title"),
        ({"title": "x", "assessment": {"business_impact": {"revenue": "huge"}}}, "revenue"),
        ({"title": "x", "assessment": {"user_impact": {"estimated": -4}}}, "estimated"),
    ],
)
def test_bad_creates_are_rejected(
    api: TestClient, responder: dict[str, str], context: AppContext, body: dict[str, Any], needle: str
) -> None:
    response = api.post("/api/v1/incidents", json=body, headers=responder)
    assert response.status_code == 422, response.text
    assert needle in response.text
    assert count_rows(context, Incident) == 0


def test_malformed_json_and_unknown_incident(api: TestClient, responder: dict[str, str]) -> None:
    response = api.post(
        "/api/v1/incidents", content=b"{not json", headers={**responder, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
    for ref in ("INC-404", "404", "garbage"):
        missing = api.get(f"/api/v1/incidents/{ref}", headers=responder)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


def test_body_over_limit_is_413(api: TestClient, responder: dict[str, str], context: AppContext) -> None:
    big = {"title": "x", "summary": "a" * (1024 * 1024 + 10)}
    response = api.post("/api/v1/incidents", json=big, headers=responder)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:
        yield b'{"title": "x", "summary": "'
        for _ in range(20):
            yield b"b" * 65536
        yield b'"}'

    streamed = api.post(
        "/api/v1/incidents", content=chunks(), headers={**responder, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert count_rows(context, Incident) == 0


def test_auth_roles(
    api: TestClient, tokens: dict[str, str], viewer: dict[str, str], context: AppContext
) -> None:
    assert api.get("/api/v1/incidents").status_code == 401
    assert api.get("/api/v1/incidents", headers={"Authorization": "Bearer wr_wrong"}).status_code == 401
    assert api.get("/api/v1/incidents", headers=viewer).status_code == 200
    denied = api.post("/api/v1/incidents", json={"title": "x"}, headers=viewer)
    assert denied.status_code == 403
    assert "responder" in denied.json()["error"]["message"]
    assert count_rows(context, Incident) == 0
    assert (
        api.get("/api/v1/tokens", headers={"Authorization": f"Bearer {tokens['responder']}"}).status_code
        == 403
    )


def test_revoked_token_is_refused(api: TestClient, admin: dict[str, str]) -> None:
    created = api.post("/api/v1/tokens", json={"name": "ci-bot", "role": "responder"}, headers=admin).json()
    token = {"Authorization": f"Bearer {created['token']}"}
    assert api.get("/api/v1/whoami", headers=token).json()["name"] == "ci-bot"
    assert api.delete(f"/api/v1/tokens/{created['id']}", headers=admin).status_code == 200
    refused = api.get("/api/v1/whoami", headers=token)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]


def test_a_token_name_is_visible_text(api: TestClient, admin: dict[str, str]) -> None:
    """The name is who acts with the token: a line break or a direction mark would let it print as
    another name on timelines. Two active tokens may not share one: notes are edited by author name."""
    for name in ("ci\nbot", "alice\u202eecila", "   ", "x" * 201):
        refused = api.post("/api/v1/tokens", json={"name": name, "role": "responder"}, headers=admin)
        assert refused.status_code == 422, (name, refused.text)
    created = api.post("/api/v1/tokens", json={"name": " alice ", "role": "responder"}, headers=admin)
    assert created.status_code == 201 and created.json()["name"] == "alice"
    again = api.post("/api/v1/tokens", json={"name": "alice", "role": "responder"}, headers=admin)
    assert again.status_code == 409, again.text


def test_severity_change_and_ack(api: TestClient, responder: dict[str, str]) -> None:
    incident = create(api, responder, severity="P2")
    raised = api.patch(
        f"/api/v1/incidents/{incident['id']}",
        json={"severity": "P0", "note": "payments too"},
        headers=responder,
    ).json()
    assert raised["severity"] == "P0"
    first = api.post(f"/api/v1/incidents/{incident['id']}/ack", headers=responder).json()
    again = api.post(f"/api/v1/incidents/{incident['id']}/ack", headers=responder).json()
    assert first["acknowledged_at"] == again["acknowledged_at"]
    timeline = api.get(f"/api/v1/incidents/{incident['id']}/timeline", headers=responder).json()["items"]
    assert [e["kind"] for e in timeline].count("acknowledged") == 1
    change = next(e for e in timeline if e["kind"] == "severity_change")
    assert change["data"] == {"from": "P2", "to": "P0", "direction": "raised"}
    assert "raised" in change["action"]


def test_responders_and_single_commander(api: TestClient, responder: dict[str, str]) -> None:
    incident = create(api, responder, commander="Alice")
    ref = incident["id"]
    bob = api.post(
        f"/api/v1/incidents/{ref}/responders",
        json={"name": "Bob", "role": "technical", "contact": "bob@example.com"},
        headers=responder,
    )
    assert bob.status_code == 201
    bad_role = api.post(
        f"/api/v1/incidents/{ref}/responders", json={"name": "Eve", "role": "wizard"}, headers=responder
    )
    assert bad_role.status_code == 422 and "allowed" in bad_role.json()["error"]["message"]
    handoff = api.post(
        f"/api/v1/incidents/{ref}/responders", json={"name": "Carol", "role": "commander"}, headers=responder
    )
    assert handoff.status_code == 201
    responders = api.get(f"/api/v1/incidents/{ref}/responders", headers=responder).json()
    active_commanders = [r for r in responders if r["role"] == "commander" and r["left_at"] is None]
    assert [r["name"] for r in active_commanders] == ["Carol"]
    assert api.get(f"/api/v1/incidents/{ref}", headers=responder).json()["commander"] == "Carol"
    carol = active_commanders[0]
    refused = api.delete(f"/api/v1/incidents/{ref}/responders/{carol['id']}", headers=responder)
    assert refused.status_code == 409
    left = api.delete(f"/api/v1/incidents/{ref}/responders/{bob.json()['id']}", headers=responder)
    assert left.json()["left_at"] is not None
    via_patch = api.patch(f"/api/v1/incidents/{ref}", json={"commander": "Dan"}, headers=responder).json()
    assert via_patch["commander"] == "Dan"
    kinds = [
        e["kind"] for e in api.get(f"/api/v1/incidents/{ref}/timeline", headers=responder).json()["items"]
    ]
    assert kinds.count("commander_change") == 3


def test_communications_use_audience_channels(api: TestClient, responder: dict[str, str]) -> None:
    incident = create(api, responder)
    sent = api.post(
        f"/api/v1/incidents/{incident['id']}/updates",
        json={"message": "We are investigating.", "audience": "customers"},
        headers=responder,
    )
    assert sent.status_code == 201
    assert sent.json()["channels"] == ["email", "in-app"]
    unknown = api.post(
        f"/api/v1/incidents/{incident['id']}/updates",
        json={"message": "hi", "audience": "martians"},
        headers=responder,
    )
    assert unknown.status_code == 422
    assert "internal" in unknown.json()["error"]["message"]
    log = api.get(f"/api/v1/incidents/{incident['id']}/updates", headers=responder).json()
    assert [c["audience"] for c in log] == ["customers"]


def test_a_private_incident_s_updates_stay_inside_the_org(api: TestClient, responder: dict[str, str]) -> None:
    """A private incident (a breach, say) is not told to the status page or to customers: refused, and
    nothing is queued; the people working it still get its updates."""
    incident = create(api, responder, title="Customer database exposed", is_private=True)
    url = f"/api/v1/incidents/{incident['id']}/updates"
    for audience in ("status-page", "customers"):
        refused = api.post(
            url, json={"message": "We are investigating.", "audience": audience}, headers=responder
        )
        assert refused.status_code == 409, refused.text
        assert "private" in refused.json()["error"]["message"]
    inside = api.post(url, json={"message": "Rotate the keys.", "audience": "internal"}, headers=responder)
    assert inside.status_code == 201, inside.text
    assert [c["audience"] for c in api.get(url, headers=responder).json()] == ["internal"]


def test_what_a_timeline_cannot_keep_exactly_is_refused(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """A non-finite number would be stored as null under a hash of Infinity (a false tamper alarm), and
    deep nesting could not be read back (every later read a 500): both are refused, and nothing changes.
    Blank names and titles are refused too."""
    incident = create(api, responder)
    url = f"/api/v1/incidents/{incident['id']}/timeline"
    before = len(api.get(url, headers=responder).json()["items"])
    deep = '{"action": "d", "system_state": {"x": ' + "[" * 900 + "]" * 900 + "}}"
    for body in (
        '{"action": "inf", "system_state": {"x": 1e400}}',
        '{"action": "n", "system_state": {"x": NaN}}',
        deep,
    ):
        refused = api.post(url, content=body, headers={**responder, "content-type": "application/json"})
        assert refused.status_code == 422, refused.text
    assert len(api.get(url, headers=responder).json()["items"]) == before
    ref = incident["id"]
    for path, body in (
        (f"/api/v1/incidents/{ref}", {"title": "   "}),
        (f"/api/v1/incidents/{ref}", {"commander": " "}),
    ):
        assert api.patch(path, json=body, headers=responder).status_code == 422, body
    blank = api.post(
        f"/api/v1/incidents/{ref}/responders", json={"name": "  ", "role": "scribe"}, headers=responder
    )
    assert blank.status_code == 422
    from warroom.incidents import service as incident_service

    with context.db.read() as session:
        assert incident_service.verify_timelines(session)[1] == []


def test_log_action_with_system_state(api: TestClient, responder: dict[str, str]) -> None:
    incident = create(api, responder)
    entry = api.post(
        f"/api/v1/incidents/{incident['id']}/timeline",
        json={"action": "Restarted api pods", "impact": "errors dropped", "system_state": {"api.pods": 12}},
        headers=responder,
    )
    assert entry.status_code == 201
    timeline = api.get(f"/api/v1/incidents/{incident['id']}/timeline", headers=responder).json()["items"]
    assert timeline[-1]["system_state"] == {"api.pods": 12}
    assert timeline[-1]["performer"] == "responder-user"
    assert timeline[-1]["prev_hash"] == timeline[-2]["hash"]


def test_severity_suggest_and_matrix(api: TestClient, viewer: dict[str, str]) -> None:
    matrix = api.get("/api/v1/severities", headers=viewer).json()
    assert [(s["id"], s["response_target"]) for s in matrix] == [
        ("P0", "5m"),
        ("P1", "15m"),
        ("P2", "2h"),
        ("P3", "next business day"),
    ]
    outage = api.post(
        "/api/v1/severities/suggest", headers=viewer, json={"assessment": {"symptoms": ["data_loss"]}}
    ).json()
    assert outage["severity"] == "P0" and outage["reasons"]
    bad = api.post("/api/v1/severities/suggest", headers=viewer, json={"assessment": {"symptoms": "x"}})
    assert bad.status_code == 422
    unknown = api.post(
        "/api/v1/severities/suggest", headers=viewer, json={"assessment": {}, "services": ["mainframe"]}
    )
    assert unknown.status_code == 422 and "unknown service 'mainframe'" in unknown.json()["error"]["message"]


def test_a_service_filter_names_a_service(api: TestClient, responder: dict[str, str]) -> None:
    """As an alert list refuses an unknown source: an empty page for a typo reads as "no incidents"."""
    create(api, responder, services=["payments"])
    found = api.get("/api/v1/incidents", params={"service": "payments"}, headers=responder).json()
    assert found["total"] == 1
    assert api.get("/api/v1/incidents", params={"service": "api"}, headers=responder).json()["total"] == 0
    typo = api.get("/api/v1/incidents", params={"service": "paymnets"}, headers=responder)
    assert typo.status_code == 422 and "unknown service 'paymnets'" in typo.json()["error"]["message"]


def test_create_without_severity_uses_suggestion(api: TestClient, responder: dict[str, str]) -> None:
    created = api.post(
        "/api/v1/incidents",
        headers=responder,
        json={
            "title": "Payments failing",
            "services": ["payments"],
            "assessment": {
                "source": "monitoring-alert",
                "symptoms": ["payment_failure"],
                "user_impact": {"estimated": 15000, "confirmed": 847, "regions": ["us-east", "eu-west"]},
                "business_impact": {"revenue": "high", "reputation": "medium", "compliance": "none"},
                "recurring": False,
            },
        },
    ).json()
    assert created["severity"] == "P0"
    assert created["assessment"]["user_impact"]["regions"] == ["us-east", "eu-west"]


def test_openapi_and_healthz(api: TestClient) -> None:
    assert api.get("/healthz").json()["status"] == "ok"
    head = api.head("/healthz")  # what some load balancers send
    assert (head.status_code, head.content) == (200, b"")
    spec = api.get("/openapi.json").json()
    assert "/api/v1/incidents" in spec["paths"]
    assert api.get("/metrics").status_code == 200


def test_metrics_count_incidents(api: TestClient, responder: dict[str, str]) -> None:
    create(api, responder, severity="P0")
    acked = create(api, responder, severity="P0")
    api.post(f"/api/v1/incidents/{acked['id']}/ack", headers=responder)
    text = api.get("/metrics").text
    assert 'warroom_incidents{severity="P0",status="investigating"} 2.0' in text
    assert 'warroom_incidents_unacknowledged{severity="P0"} 1.0' in text


def test_nul_characters_are_refused(api: TestClient, responder: dict[str, str], context: AppContext) -> None:
    response = api.post("/api/v1/incidents", json={"title": "bad\x00title"}, headers=responder)
    assert response.status_code == 422
    assert "NUL" in response.json()["error"]["message"]
    assert api.get("/api/v1/incidents", params={"service": "a\x00b"}, headers=responder).status_code == 422
    assert count_rows(context, Incident) == 0


def test_a_resolved_incident_is_not_acknowledged_and_a_reopened_one_is_owned_again(
    api: TestClient, responder: dict[str, str]
) -> None:
    """An ack after the fact would only distort time-to-acknowledge; a problem that came back needs someone to
    take it again (its escalation otherwise stopped at the first page, on the old acknowledgement)."""
    ref = create(api, responder)["id"]
    assert api.post(f"/api/v1/incidents/{ref}/ack", headers=responder).status_code == 200
    api.patch(f"/api/v1/incidents/{ref}", json={"status": "resolved"}, headers=responder)
    assert api.post(f"/api/v1/incidents/{ref}/ack", headers=responder).status_code == 200  # already: no-op
    reopened = api.patch(f"/api/v1/incidents/{ref}", json={"status": "investigating"}, headers=responder)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["acknowledged_at"] is None and reopened.json()["acknowledged_by"] is None
    entry = api.get(f"/api/v1/incidents/{ref}/timeline", headers=responder).json()["items"][-1]
    assert entry["kind"] == "reopened"
    assert entry["data"]["previous_acknowledgement"]["by"] == "responder-user"
    assert api.post(f"/api/v1/incidents/{ref}/ack", headers=responder).json()["acknowledged_at"] is not None

    unacknowledged = create(api, responder)["id"]
    api.patch(f"/api/v1/incidents/{unacknowledged}", json={"status": "resolved"}, headers=responder)
    late = api.post(f"/api/v1/incidents/{unacknowledged}/ack", headers=responder)
    assert late.status_code == 409, late.text
    assert late.json()["error"]["message"] == f"{unacknowledged} is resolved; there is nothing to acknowledge"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "", {"title": "line1\nline2"}, "title"),
        ("post", "", {"title": "\u200b"}, "title"),
        ("post", "", {"title": "ok", "commander": "Eve\nAcknowledged by admin"}, "commander"),
        ("post", "", {"title": "ok", "assessment": {"assessed_at": "2026-03-02T10:00:00"}}, "assessed_at"),
        ("post", "", {"title": "ok", "assessment": {"assessed_at": "9999-12-31T23:59:59Z"}}, "assessed_at"),
        ("patch", "", {"title": "quiet\u202eevil"}, "title"),
        ("post", "/responders", {"name": "\u202eadmin", "role": "scribe"}, "name"),
        ("post", "/timeline", {"action": "   "}, "action"),
        ("post", "/updates", {"audience": "internal", "message": " \n "}, "message"),
    ],
)
def test_names_and_text_must_show_what_they_say(
    api: TestClient,
    responder: dict[str, str],
    context: AppContext,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    """A name with a line break printed as a second timeline line; a blank note stayed on the record."""
    ref = create(api, responder)["id"]
    entries = count_rows(context, TimelineEntry)
    target = "/api/v1/incidents" if method == "post" and not path else f"/api/v1/incidents/{ref}{path}"
    refused = getattr(api, method)(target, json=body, headers=responder)
    assert refused.status_code == 422, refused.text
    assert field in str(refused.json()["error"]["details"])
    assert count_rows(context, TimelineEntry) == entries


def test_titles_are_trimmed_on_update_as_on_create(api: TestClient, responder: dict[str, str]) -> None:
    ref = create(api, responder, title="  padded  ")["id"]
    assert api.get(f"/api/v1/incidents/{ref}", headers=responder).json()["title"] == "padded"
    updated = api.patch(f"/api/v1/incidents/{ref}", json={"title": "  again  "}, headers=responder).json()
    assert updated["title"] == "again"
    emoji = "\U0001f469\u200d\U0001f4bb on call"  # a joiner inside an emoji is kept
    assert api.patch(f"/api/v1/incidents/{ref}", json={"title": emoji}, headers=responder).status_code == 200


@pytest.mark.parametrize("ref", ["%EF%BC%94", "INC-%D9%A4"])
def test_only_ascii_digits_name_an_incident(api: TestClient, responder: dict[str, str], ref: str) -> None:
    for _ in range(4):
        create(api, responder)
    assert api.get("/api/v1/incidents/INC-4", headers=responder).status_code == 200
    assert api.get(f"/api/v1/incidents/{ref}", headers=responder).status_code == 404


def test_an_assessment_stored_before_times_needed_an_offset_still_reads(
    api: TestClient, responder: dict[str, str], context: AppContext
) -> None:
    """Earlier versions kept a time as given; a stricter read would make the incident, and every list that
    holds it, a 500."""
    kept, lost = create(api, responder)["id"], create(api, responder)["id"]
    with context.db.write() as session:
        for ref, assessed_at in ((kept, "2026-03-02T10:00:00"), (lost, "0001-01-01T00:00:00")):
            incident = session.get(Incident, int(ref.removeprefix("INC-")))
            assert incident is not None
            incident.assessment = {"source": "manual", "assessed_at": assessed_at}
    assert api.get("/api/v1/incidents", headers=responder).status_code == 200
    shown = api.get(f"/api/v1/incidents/{kept}", headers=responder).json()["assessment"]
    assert shown["assessed_at"] == "2026-03-02T10:00:00Z"
    assert api.get(f"/api/v1/incidents/{lost}", headers=responder).json()["assessment"]["assessed_at"] is None
