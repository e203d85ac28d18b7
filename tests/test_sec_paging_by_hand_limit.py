"""Paging the same person by hand for the same incident is refused (409) within a minute of the last time,
saying who asked and when, unless the incident's severity rose since: a responder could page someone every
second, and each page reached them (a page by hand is never held back as a duplicate)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.oncall.conftest import org  # noqa: F401  (a fixture: the example org, console channels)
from tests.oncall.test_page_request import ask, paged_p1
from tests.oncall.test_paging import T0, run_at
from tests.oncall.test_raise_and_duplicates import deliveries_to
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import TimelineEntry


def timeline_count(context: AppContext, incident_id: int) -> int:
    with context.db.read() as session:
        count = session.scalar(
            select(func.count()).select_from(TimelineEntry).where(TimelineEntry.incident_id == incident_id)
        )
        return count or 0


def test_paging_one_person_by_hand_again_within_a_minute_is_refused_with_who_and_when(
    api: TestClient, context: AppContext, responder: dict[str, str], admin: dict[str, str]
) -> None:
    worker, incident_id = paged_p1(context)
    ref = f"INC-{incident_id}"
    clock.set(T0 + timedelta(minutes=1))
    assert ask(api, responder, ref, person="frank", note="spam 1").status_code == 202
    run_at(worker, T0 + timedelta(minutes=1))
    assert len(deliveries_to(context, incident_id, "frank", "email")) == 1

    clock.set(T0 + timedelta(minutes=1, seconds=20))
    before = timeline_count(context, incident_id)
    again = ask(api, admin, ref, person="frank", note="spam 2")
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert (
        "frank was paged by hand for" in error["message"]
        and "by responder-user at 10:01:00" in (error["message"])
    ), error
    assert "ask again in 40s" in error["message"], error
    [details] = error["details"]
    assert details["last_requested_by"] == "responder-user" and details["retry_after_seconds"] == 40
    assert timeline_count(context, incident_id) == before  # nothing recorded, nothing queued
    run_at(worker, T0 + timedelta(minutes=1, seconds=20))
    assert len(deliveries_to(context, incident_id, "frank", "email")) == 1

    # Someone else may be paged meanwhile; frank again once the minute is over.
    assert ask(api, responder, ref, person="grace").status_code == 202
    clock.set(T0 + timedelta(minutes=2, seconds=1))
    assert ask(api, responder, ref, person="frank", note="still failing").status_code == 202
    run_at(worker, T0 + timedelta(minutes=2, seconds=1))
    assert len(deliveries_to(context, incident_id, "frank", "email")) == 2

    # A rise in severity is news: frank may be paged for it at once. A fall is not.
    clock.set(T0 + timedelta(minutes=2, seconds=10))
    assert ask(api, responder, ref, person="frank").status_code == 409
    raised = api.patch(f"/api/v1/incidents/{ref}", json={"severity": "P0"}, headers=responder)
    assert raised.status_code == 200, raised.text
    assert ask(api, responder, ref, person="frank", note="now P0").status_code == 202
    run_at(worker, T0 + timedelta(minutes=2, seconds=10))
    lowered = api.patch(f"/api/v1/incidents/{ref}", json={"severity": "P1"}, headers=responder)
    assert lowered.status_code == 200, lowered.text
    assert ask(api, responder, ref, person="frank").status_code == 409
