"""Pages reach a real SMTP server (aiosmtpd); the ack link in the mail acknowledges and stops escalation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.peers import SmtpServer
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import Database
from warroom.incidents import service as incident_service
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.worker import Worker
from warroom.notify.config import EmailChannel, EmailSettings
from warroom.notify.models import Delivery
from warroom.oncall.models import Escalation, EscalationState
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # carol is on call for platform-primary, alice secondary


@pytest.fixture
def mail_context(settings: Settings, org: OrgConfig, smtp: SmtpServer) -> Iterator[AppContext]:
    local_org = org.model_copy(deep=True)
    # Everyone is reached by email only, through the local SMTP server.
    local_org.notification_channels = [
        EmailChannel(
            name="email",
            type="email",
            settings=EmailSettings(
                host="127.0.0.1", port=smtp.port, security="none", from_address="pager@acme.example"
            ),
        )
    ]
    for person in local_org.people:
        person.notification_rules = []
        person.contact_methods = []
    settings = settings.model_copy(update={"public_url": "http://warroom.test"})
    context = AppContext(settings=settings, db=Database(settings.resolved_database_url), org=local_org)
    yield context
    context.db.dispose()


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_pages_by_email_and_ack_link_stops_escalation(mail_context: AppContext, smtp: SmtpServer) -> None:
    mails = smtp.sink
    clock.set(T0)
    worker = Worker(mail_context, name="mail-worker")
    with mail_context.db.write() as session:
        incident = incident_service.create_incident(
            session,
            org=mail_context.org,
            data=IncidentCreate(title="Checkout <fails>", severity="P1", services=["api"]),
            performer="tester",
        )
        ref = incident.ref
    drain(worker)  # start paging, then deliver the page
    [page] = mails.to("carol@acme.example")
    assert ref in page["Subject"] and "P1" in page["Subject"]
    text = page.get_body(preferencelist=("plain",))
    assert text is not None
    body = text.get_content()
    assert "Checkout <fails>" in body
    assert "on call for platform-primary (step 1 of platform-escalation)" in body
    assert "Acknowledge by 2026-03-02 10:15 UTC" in body
    link = re.search(r"http://warroom\.test(/api/v1/ack/\S+)", body)
    assert link is not None

    # Nobody acknowledges in 15 minutes: alice (platform-secondary) gets mail.
    clock.set(T0 + timedelta(minutes=15))
    drain(worker)
    assert len(mails.to("alice@acme.example")) == 1
    assert len(mails.to("carol@acme.example")) == 1  # carol was not paged twice

    # carol follows the link in her mail and presses the button on the page it opens.
    with TestClient(create_app(context=mail_context)) as api:
        page = api.get(link.group(1))
        assert page.status_code == 200 and f"Acknowledge {ref}?" in page.text
        response = api.post(link.group(1))
    assert response.status_code == 200 and f"{ref} acknowledged" in response.text
    clock.set(T0 + timedelta(hours=3))
    drain(worker)
    assert len(mails.messages) == 2  # nothing after the acknowledgement
    with mail_context.db.read() as session:
        escalation = session.scalar(select(Escalation))
        assert escalation is not None and escalation.state == EscalationState.acknowledged
        assert session.get(type(incident), incident.id).acknowledged_by == "carol"  # type: ignore[union-attr]
        deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert [(d.recipient, d.status.value) for d in deliveries] == [
            ("carol@acme.example", "sent"),
            ("alice@acme.example", "sent"),
        ]
        assert all(d.idempotency_key and d.idempotency_key.startswith("page:") for d in deliveries)
        actions = [e.action for e in incident_service.get_timeline(session, ref)]
    assert any(a.startswith("Paged step 1 of platform-escalation") for a in actions)
    assert any(a.startswith("Escalated to step 2 of platform-escalation") for a in actions)
    assert "Acknowledged by carol" in actions
    assert any(a.startswith("Escalation stopped (acknowledged)") for a in actions)
