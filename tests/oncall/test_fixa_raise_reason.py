"""Severity changes made before the worker ran: the raise's page says what brought the incident to its level
now, and skips a person as its raiser only when their raise made that level. Before, the page named the level
now with the raiser of whichever queued job ran ("severity raised to P1 by carol" after carol's P3 → P0 and
dave's P0 → P1), and skipped that person as "the one who raised it to P1", so nobody was paged for the P1.
And a level with no policy was said to have none once per queued job."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.conftest import bearer
from tests.oncall.test_paging import T0, run_at, sent, timeline
from warroom.auth import service as auth_service
from warroom.auth.models import Role
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker

# At T0 platform-primary (step 1 of platform-escalation) is carol, platform-secondary alice.
PEOPLE = ("alice", "bob", "carol", "dave")


def people(context: AppContext) -> dict[str, dict[str, str]]:
    """Responder tokens named as the org's people, so the timeline names who changed what."""
    with context.db.write() as session:
        return {
            name: bearer(auth_service.create_token(session, name=name, role=Role.responder).token)
            for name in PEOPLE
        }


def open_incident(api: TestClient, headers: dict[str, str], severity: str, services: list[str]) -> str:
    body = {"title": "API returning 500s", "severity": severity, "services": services}
    answer = api.post("/api/v1/incidents", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def set_severity(api: TestClient, headers: dict[str, str], ref: str, severity: str) -> None:
    """A change a second after the last (each raise queues a job of its own, as changes made apart do)."""
    clock.set(clock.now() + timedelta(seconds=1))
    answer = api.patch(f"/api/v1/incidents/{ref}", json={"severity": severity}, headers=headers)
    assert answer.status_code == 200, answer.text


def paged(context: AppContext, ref: str) -> list[str]:
    number = int(ref.removeprefix("INC-"))
    return [e.action for e in timeline(context, number) if e.kind == "page" and e.performer == "warroom"]


def test_a_level_someone_lowered_to_names_the_raise_and_the_lowering(
    api: TestClient, context: AppContext
) -> None:
    """QA's case: a P3; carol raises it to P0, dave lowers it to P1, before the worker runs. Nobody raised it
    to P1: the page says so, and carol, on call, is paged for the P1 (she raised it to P0, not to this)."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    by = people(context)
    ref = open_incident(api, by["alice"], "P3", ["api"])
    set_severity(api, by["carol"], ref, "P0")
    set_severity(api, by["dave"], ref, "P1")
    run_at(worker, T0 + timedelta(seconds=30))

    (page,) = paged(context, ref)
    assert page.startswith(
        "Paged step 1 of platform-escalation (severity raised to P0 by carol, since lowered to P1 by dave): "
        "carol (on call for platform-primary) via email"
    ), page
    assert "skipped" not in page
    assert ("carol", "email", 1, 1) in sent(context, int(ref.removeprefix("INC-")))


def test_the_on_call_who_made_an_earlier_raise_is_paged_for_the_level_now(
    api: TestClient, context: AppContext
) -> None:
    """QA's second case: carol P3 → P2, alice P2 → P0, bob P0 → P1. Before, the first job's raiser (carol,
    on call) was skipped "as the one who raised it to P1", and step 1 paged nobody."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    by = people(context)
    ref = open_incident(api, by["dave"], "P3", ["api"])
    set_severity(api, by["carol"], ref, "P2")
    set_severity(api, by["alice"], ref, "P0")
    set_severity(api, by["bob"], ref, "P1")
    run_at(worker, T0 + timedelta(seconds=30))

    (page,) = paged(context, ref)
    assert "(severity raised to P0 by alice, since lowered to P1 by bob)" in page, page
    assert "skipped" not in page and "carol (on call for platform-primary) via email" in page


def test_the_latest_raise_made_the_level_and_its_raiser_is_skipped(
    api: TestClient, context: AppContext
) -> None:
    """dave raises a P3 to P2, carol the P2 to P1: whichever job runs, the page names carol's raise, and skips
    her (on call) as the one who raised it to P1, not dave, whose level it no longer is."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    by = people(context)
    ref = open_incident(api, by["alice"], "P3", ["api"])
    set_severity(api, by["dave"], ref, "P2")
    set_severity(api, by["carol"], ref, "P1")
    run_at(worker, T0 + timedelta(seconds=30))

    (first, *handed_on) = paged(context, ref)
    assert first == (
        "Paged step 1 of platform-escalation (severity raised to P1 by carol): carol (on call for "
        "platform-primary) skipped as the one who raised it to P1"
    )
    assert handed_on == []  # she is on it: step 2 waits for the deadline


def test_no_policy_for_the_level_is_said_once(api: TestClient, context: AppContext) -> None:
    """A P2 on frontend (its team has no policy) raised to P1 before the worker ran: the opening's job and
    the raise's find the same level with no policy; the timeline says so once. A later raise to another
    level says it again, for that level."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    by = people(context)
    ref = open_incident(api, by["alice"], "P2", ["frontend"])
    set_severity(api, by["carol"], ref, "P1")
    run_at(worker, T0 + timedelta(seconds=30))
    number = int(ref.removeprefix("INC-"))

    def said() -> list[str]:
        return [e.action for e in timeline(context, number) if e.action.startswith("No escalation policy")]

    assert [a.split(",")[0] for a in said()] == ["No escalation policy covers P1 here"]
    set_severity(api, by["carol"], ref, "P0")
    run_at(worker, T0 + timedelta(minutes=1))
    assert [a.split(",")[0] for a in said()] == [
        "No escalation policy covers P1 here",
        "No escalation policy covers P0 here",
    ]


def test_no_policy_for_the_level_a_merge_raised_to_is_said_once(api: TestClient, context: AppContext) -> None:
    """A P1 merged into a P2 on frontend just opened raises it before the worker paged for its opening."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    by = people(context)
    target = open_incident(api, by["alice"], "P2", ["frontend"])
    source = open_incident(api, by["alice"], "P1", ["frontend"])
    merged = api.post(f"/api/v1/incidents/{source}/merge", json={"into": target}, headers=by["carol"])
    assert merged.status_code == 200, merged.text
    run_at(worker, T0 + timedelta(seconds=30))
    actions = [e.action for e in timeline(context, int(target.removeprefix("INC-")))]
    assert "Severity raised: P2 → P1 — merged from " + source in actions
    said = [a for a in actions if a.startswith("No escalation policy")]
    assert [a.split(",")[0] for a in said] == ["No escalation policy covers P1 here"], actions
