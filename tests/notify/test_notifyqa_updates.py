"""An update whose message cannot be made on a channel says so: in the answer, as a dead letter, in the
CLI."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import cli_through_the_app
from tests.notify.test_delivery import open_incident
from tests.peers import SmtpServer
from warroom.cli.main import app as cli_app
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.notify.config import EmailChannel, TemplateOverride
from warroom.notify.models import Delivery, DeliveryStatus

BROKEN = TemplateOverride(subject="{{ incident.nosuch }}")


def break_email_template(context: AppContext) -> EmailChannel:
    """The email channel with ``templates.incident_update.subject: "{{ incident.nosuch }}"``."""
    channels = list(context.org.notification_channels)
    index = next(i for i, channel in enumerate(channels) if channel.name == "email")
    email = channels[index]
    assert isinstance(email, EmailChannel)
    channels[index] = email.model_copy(update={"templates": {"incident_update": BROKEN}})
    context.org = context.org.model_copy(update={"notification_channels": channels})
    return email


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI's client commands, answered by the test app."""
    return cli_through_the_app(
        api, tokens["admin"], monkeypatch, "warroom.cli.incidents", "warroom.cli.notify"
    )


def test_an_update_that_cannot_be_made_is_a_dead_letter_named_in_the_answer(
    context: AppContext, api: TestClient, responder: dict[str, str], admin: dict[str, str], smtp_port: int
) -> None:
    working = break_email_template(context)
    ref = f"INC-{open_incident(context)}"
    answer = api.post(
        f"/api/v1/incidents/{ref}/updates",
        json={"audience": "executives", "message": "Failover done."},
        headers=responder,
    )
    assert answer.status_code == 201, answer.text  # the update itself is kept, and logged
    [outcome] = answer.json()["outcomes"]
    assert outcome["channel"] == "email:exec@acme.example"
    assert outcome["outcome"] == "not_sent"
    assert "could not be rendered" in outcome["error"] and "nosuch" in outcome["error"]
    # A dead letter at once, listed with the others.
    dead = api.get("/api/v1/notifications", params={"status": "dead"}, headers=admin).json()["items"]
    assert [(d["id"], d["recipient"], d["incident"], d["attempts"]) for d in dead] == [
        (outcome["notification"], "exec@acme.example", ref, 0)
    ]
    assert "could not be rendered" in dead[0]["last_error"]
    timeline = api.get(f"/api/v1/incidents/{ref}/timeline", headers=responder).json()["items"]
    [said] = [e for e in timeline if e["kind"] == "notification"]
    assert said["action"].startswith("Update to executives not sent via email")
    assert said["data"]["delivery_id"] == outcome["notification"]

    # Other channels say they queued it, or that they only log it.
    internal = api.post(
        f"/api/v1/incidents/{ref}/updates", json={"audience": "internal", "message": "x"}, headers=responder
    ).json()["outcomes"]
    assert [(o["channel"], o["outcome"], o["error"]) for o in internal] == [
        ("slack:#incidents", "queued", None)
    ]
    customers = api.post(
        f"/api/v1/incidents/{ref}/updates", json={"audience": "customers", "message": "x"}, headers=responder
    ).json()["outcomes"]
    assert [(o["channel"], o["outcome"]) for o in customers] == [("email", "not_sent"), ("in-app", "logged")]

    # Retrying while the template is still broken is refused and changes nothing; once fixed, it is made anew.
    retried = api.post(f"/api/v1/notifications/{outcome['notification']}/retry", headers=admin)
    assert retried.status_code == 422, retried.text
    assert "still cannot be sent" in retried.json()["error"]["message"]
    context.org = context.org.model_copy(
        update={
            "notification_channels": [
                working if c.name == "email" else c for c in context.org.notification_channels
            ]
        }
    )
    retried = api.post(f"/api/v1/notifications/{outcome['notification']}/retry", headers=admin)
    assert retried.status_code == 202, retried.text
    assert retried.json()["subject"].endswith("update: Checkout failing for EU customers")
    with SmtpServer(smtp_port) as smtp:
        Worker(context).run_once()
        assert [m["To"] for m in smtp.sink.messages] == ["exec@acme.example"]
        assert "Failover done." in smtp.sink.messages[0].get_body("plain").get_content()  # type: ignore[union-attr]
    with context.db.read() as session:
        sent = session.get(Delivery, outcome["notification"])
        assert sent is not None and sent.status == DeliveryStatus.sent


def test_send_update_shows_channels_that_failed_and_fails_when_none_took_it(
    context: AppContext, cli: CliRunner
) -> None:
    break_email_template(context)
    ref = f"INC-{open_incident(context)}"
    failed = cli.invoke(cli_app, ["incident", "send-update", ref, "x", "--audience", "executives"])
    assert failed.exit_code == 1, failed.output
    assert "Sent to" not in failed.stdout
    assert "not sent to executives via email:exec@acme.example" in failed.stderr
    assert "could not be rendered" in failed.stderr and "warroom notify retry" in failed.stderr
    as_json = cli.invoke(cli_app, ["incident", "send-update", ref, "x", "--audience", "executives", "--json"])
    assert as_json.exit_code == 1
    assert '"not_sent"' in as_json.stdout
    sent = cli.invoke(cli_app, ["incident", "send-update", ref, "x", "--audience", "internal"])
    assert sent.exit_code == 0, sent.output
    assert "Sent to internal via slack:#incidents" in sent.stdout
    listed = cli.invoke(cli_app, ["notify", "failures", "--incident", ref, "--json"])
    assert listed.exit_code == 0, listed.output
    with context.db.read() as session:
        dead = session.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.dead)).all()
    assert len(dead) == 2 and all(f'"id": {i}' in listed.stdout for i in dead)
