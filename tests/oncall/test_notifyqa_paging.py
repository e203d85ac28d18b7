"""What paging says is true: the acknowledge link of a resolved incident offers no button, and a page of an
acknowledged incident does not promise delayed follow-ups that will not go out."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.oncall.test_paging import T0, open_incident, run_at, timeline
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.incidents.enums import IncidentStatus
from warroom.incidents.schemas import IncidentUpdate
from warroom.jobs.worker import Worker
from warroom.oncall.links import make_ack_token
from warroom.oncall.models import Page, PageStatus


def resolve(context: AppContext, incident_id: int, performer: str) -> None:
    with context.db.write() as session:
        incident_service.update_incident(
            session,
            org=context.org,
            ref=incident_id,
            data=IncidentUpdate(status=IncidentStatus.resolved),
            performer=performer,
        )


def test_the_ack_link_of_a_resolved_incident_says_so_and_offers_no_button(
    context: AppContext, api: TestClient
) -> None:
    clock.set(T0)
    incident_id = open_incident(context, title="<b>Checkout</b> & payments")
    ref = f"INC-{incident_id}"
    token = make_ack_token(context.settings.resolved_secret_key(), incident_id=incident_id, person="carol")
    clock.set(T0 + timedelta(minutes=7))
    resolve(context, incident_id, "dan<script>")
    page = api.get(f"/api/v1/ack/{token}")
    assert page.status_code == 200, page.text
    assert "<form" not in page.text and "<button" not in page.text
    assert f"{ref} is resolved" in page.text
    assert "resolved by dan&lt;script&gt; at 2026-03-02 10:07 UTC" in page.text
    assert "nothing to acknowledge" in page.text and "Acknowledging stops" not in page.text
    assert "&lt;b&gt;Checkout&lt;/b&gt; &amp; payments" in page.text and "<script>" not in page.text
    # Pressing a button kept from before still changes nothing.
    assert api.post(f"/api/v1/ack/{token}").status_code == 409
    with context.db.read() as session:
        assert incident_service.get_incident(session, incident_id).acknowledged_at is None

    # Acknowledged before it was resolved: the page says both, with who and when.
    clock.set(T0)
    other = open_incident(context)
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=other, performer="erin")
    link = make_ack_token(context.settings.resolved_secret_key(), incident_id=other, person="carol")
    acknowledged = api.get(f"/api/v1/ack/{link}")
    assert "already acknowledged" in acknowledged.text and "<form" not in acknowledged.text
    assert "acknowledged by erin at 2026-03-02 10:00 UTC" in acknowledged.text
    clock.set(T0 + timedelta(hours=1))
    resolve(context, other, "erin")
    resolved = api.get(f"/api/v1/ack/{link}")
    assert "<form" not in resolved.text
    assert "resolved by erin at 2026-03-02 11:00 UTC" in resolved.text
    assert "It was acknowledged by erin at 2026-03-02 10:00 UTC." in resolved.text


def test_a_page_of_an_acknowledged_incident_promises_no_delayed_follow_up(
    context: AppContext, api: TestClient, responder: dict[str, str]
) -> None:
    """carol's rules: email now, Slack after 5 minutes unless acknowledged. Paged again on an acknowledged
    incident, the Slack follow-up never goes out, so the timeline must not announce it."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    ref = f"INC-{incident_id}"
    run_at(worker, T0)
    [first] = [e.action for e in timeline(context, incident_id) if e.kind == "page"]
    assert "carol" in first and "slack in 5m unless acknowledged" in first
    clock.set(T0 + timedelta(minutes=1))
    with context.db.write() as session:
        # Not carol: whoever acknowledged is not paged by the request (test_paging_carry_acknowledger).
        incident_service.acknowledge(session, ref=incident_id, performer="ic")
    asked = api.post(
        f"/api/v1/incidents/{ref}/pages",
        json={"policy": "database-experts", "note": "need a DBA"},
        headers=responder,
    )
    assert asked.status_code == 202, asked.text
    run_at(worker, T0 + timedelta(minutes=1))
    [*_, again] = [e.action for e in timeline(context, incident_id) if e.kind == "page"]
    assert "database-experts" in again and "carol" in again, again
    assert "unless acknowledged" not in again
    assert f"slack after 5m skipped ({ref} is acknowledged)" in again
    # And indeed it does not go out.
    run_at(worker, T0 + timedelta(minutes=7))
    with context.db.read() as session:
        slack = session.scalars(
            select(Page).where(
                Page.incident_id == incident_id, Page.policy == "database-experts", Page.channel == "slack"
            )
        ).all()
    assert [page.status for page in slack] == [PageStatus.cancelled]
