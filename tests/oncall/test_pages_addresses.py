"""`oncall pages` (GET /api/v1/incidents/{id}/pages) shows a page's URL address by its host to responders, as
the notifications API does: a person's own hook URL is a credential. Admins see it whole."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.oncall.test_paging import T0, open_incident, run_at
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker

CAROL_HOOK = "https://hooks.slack.example/services/T000/B000/carol"


def test_page_urls_are_shortened_for_responders_and_whole_for_admins(
    context: AppContext, api: TestClient, tokens: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    run_at(worker, T0 + timedelta(minutes=5))  # carol's slack rule waits 5 minutes

    def addresses(role: str) -> list[str]:
        answer = api.get(
            f"/api/v1/incidents/INC-{incident_id}/pages", headers={"Authorization": f"Bearer {tokens[role]}"}
        )
        assert answer.status_code == 200, answer.text
        return [page["to"] for page in answer.json()["pages"]]

    as_responder, as_admin = addresses("responder"), addresses("admin")
    assert as_admin == ["carol", CAROL_HOOK]  # her first rule's address (a console here), then her hook
    assert as_responder == ["carol", "https://hooks.slack.example/…"]
