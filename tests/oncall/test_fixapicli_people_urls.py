"""``GET /api/v1/people`` shows a responder the URLs people are paged at by their host only (a webhook URL is
a credential in itself), as the notifications API, an incident's pages and the timeline do; an admin sees
them whole, a viewer not at all. A responder saw them whole."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def _people(api: TestClient, token: dict[str, str]) -> dict[str, Any]:
    response = api.get("/api/v1/people", headers=token)
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()}


def test_a_responder_sees_paging_urls_by_their_host(api: TestClient, responder: dict[str, str]) -> None:
    people = _people(api, responder)
    alice, carol, bob = people["alice"], people["carol"], people["bob"]
    assert alice["contact_methods"] == [
        {"name": "work-email", "channel": "email", "to": "alice@acme.example"},
        {"name": "pager-hook", "channel": "webhook", "to": "https://pager.acme.example/…"},
    ]
    assert [r["to"] for r in alice["notification_rules"]] == [
        "alice@acme.example",
        "https://pager.acme.example/…",
    ]
    assert [r["to"] for r in carol["notification_rules"] if r["channel"] == "slack"] == [
        "https://hooks.slack.example/…"
    ]
    assert bob["notification_rules"][0]["to"] == "bob@acme.example"
    assert "/hooks/" not in str(people) and "/services/" not in str(people)


def test_an_admin_sees_them_whole(api: TestClient, admin: dict[str, str]) -> None:
    people = _people(api, admin)
    assert people["alice"]["contact_methods"][1]["to"] == "https://pager.acme.example/hooks/alice"
    assert [r["to"] for r in people["carol"]["notification_rules"] if r["channel"] == "slack"] == [
        "https://hooks.slack.example/services/T000/B000/carol"
    ]


def test_a_viewer_sees_none(api: TestClient, viewer: dict[str, str]) -> None:
    people = _people(api, viewer).values()
    assert all(m["to"] is None for p in people for m in p["contact_methods"])
    assert all(r["to"] is None for p in people for r in p["notification_rules"])
    assert all(p["phone"] is None for p in people)
