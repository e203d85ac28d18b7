"""An update to an audience outside the org names no incident on any channel either: the webhook's body has
no incident ref and its ``data`` only the message, status and services (QA: it still carried "INC-8" and the
sender), the email no ``X-Warroom-Incident`` header, the Slack payload nothing internal. Internal audiences
get them as before."""

from __future__ import annotations

import json
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.notify.test_external_update_text import send_update as send_external_update
from tests.peers import Recorder
from warroom.context import AppContext
from warroom.orgconfig import AudienceConfig, OrgConfig

CHANNELS = ["email:partners@example.org", "slack", "ops-webhook"]
INTERNAL = ("INC-", "P1", "db-1", "PostgresDown", "dana", "responder-user", "partners")


@pytest.fixture
def org(org: OrgConfig) -> OrgConfig:
    audiences = [
        *org.audiences,
        AudienceConfig(id="partners", channels=CHANNELS, external=True),
        AudienceConfig(id="oncall-team", channels=CHANNELS),
    ]
    return org.model_copy(update={"audiences": audiences})


def send_update(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int, audience: str
) -> tuple[str, EmailMessage]:
    ref, messages = send_external_update(
        context, api, responder, smtp_port, audience, "Payments are failing for some customers."
    )
    [message] = messages
    return ref, message


def one_body(recorder: Recorder, path: str) -> dict[str, Any]:
    [request] = recorder.to(path)
    body: dict[str, Any] = json.loads(request.body)
    return body


def test_outside_the_org_no_channel_names_the_incident(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int, recorder: Recorder
) -> None:
    _, email = send_update(context, api, responder, smtp_port, "partners")
    assert "X-Warroom-Incident" not in email
    assert email["X-Warroom-Delivery"]  # still there: receivers deduplicate with it
    hook = one_body(recorder, "/hook")
    assert hook["incident"] is None
    assert hook["data"] == {
        "message": "Payments are failing for some customers.",
        "status": "investigating",
        "services": ["payments"],
    }
    slack = one_body(recorder, "/slack")
    for body in (json.dumps(hook), json.dumps(slack)):
        for internal in INTERNAL:
            assert internal not in body, internal


def test_inside_the_org_the_channels_name_the_incident_as_before(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int, recorder: Recorder
) -> None:
    ref, email = send_update(context, api, responder, smtp_port, "oncall-team")
    assert email["X-Warroom-Incident"] == ref
    hook = one_body(recorder, "/hook")
    assert hook["incident"] == ref
    assert hook["data"]["sender"] and hook["data"]["audience"] == "oncall-team"
    assert ref in json.dumps(one_body(recorder, "/slack"))
