"""An update to an audience outside the org (customers, the status page) says what the org wrote for them and
the incident's status and services, not its internal details (QA: a status-page update went out as "[P0] INC-1
update: Database: PostgresDown on db-1:5432 … commander dana")."""

from __future__ import annotations

from email.message import EmailMessage

from fastapi.testclient import TestClient

from tests.peers import SmtpServer
from warroom.context import AppContext
from warroom.incidents import service as incidents
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.worker import Worker

MESSAGE = "Payments are failing for some customers.\nWe are working on a fix.\u202e"


def send_update(
    context: AppContext,
    api: TestClient,
    responder: dict[str, str],
    smtp_port: int,
    audience: str,
    message: str = MESSAGE,
) -> tuple[str, list[EmailMessage]]:
    """An update to ``audience`` about a P1 of payments titled with a host name, commanded by dana, delivered
    by the worker: the incident's ref and the mail the SMTP server took."""
    with context.db.write() as session:
        incident = incidents.create_incident(
            session,
            org=context.org,
            data=IncidentCreate(
                title="Database: PostgresDown on db-1:5432",
                severity="P1",
                commander="dana",
                services=["payments"],
            ),
            performer="dana",
        )
        ref = incident.ref
    with SmtpServer(smtp_port) as smtp:
        answer = api.post(
            f"/api/v1/incidents/{ref}/updates",
            json={"audience": audience, "message": message},
            headers=responder,
        )
        assert answer.status_code == 201, answer.text
        while Worker(context).run_once():
            pass
        return ref, list(smtp.sink.messages)


def sent_update(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int, audience: str
) -> EmailMessage:
    _, messages = send_update(context, api, responder, smtp_port, audience)
    [message] = [m for m in messages if "exec@" not in str(m["To"])] or messages
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_customers_get_the_message_status_and_services_only(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int
) -> None:
    message = sent_update(context, api, responder, smtp_port, "customers")
    text, html = parts(message)
    assert message["Subject"] == "Acme Cloud incident update: investigating (payments)"
    for internal in ("INC-", "P1", "db-1", "PostgresDown", "dana", "responder-user", "\u202e"):
        assert internal not in message["Subject"] and internal not in text and internal not in html, internal
    assert text.splitlines()[:2] == ["Payments are failing for some customers.", "We are working on a fix."]
    assert "Status: investigating · affects payments" in text
    assert "Payments are failing for some customers.<br>We are working on a fix." in html


def test_people_inside_the_org_still_get_the_incidents_details(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int
) -> None:
    message = sent_update(context, api, responder, smtp_port, "executives")
    text, _ = parts(message)
    assert message["Subject"].startswith("[P1] INC-") and "PostgresDown on db-1:5432" in message["Subject"]
    assert "(P1, investigating, commander dana):" in text
    assert "> Payments are failing for some customers." in text
