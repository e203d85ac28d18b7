"""The shipped example org file told customers the incident's severity and title in the subject (QA: a new
team following the README got "[Acme P1] Login broken"): its email channel's ``incident_update`` override did
not branch on ``external``. The example branches now; an override that shows an outside audience what stays
inside fails for it (the update is not sent, and says why) instead of leaking, and config check refuses it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLE_CONFIG
from tests.notify.test_external_update_text import send_update
from tests.peers import SmtpServer
from warroom.context import AppContext
from warroom.incidents import service as incidents
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.worker import Worker
from warroom.notify.config import EmailChannel, EmailSettings, TemplateOverride
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config

LEAKING = "[Acme {{ incident.severity }}] {{ incident.title }}"


def example_email_to(smtp_port: int, subject: str | None = None) -> OrgConfig:
    """The example org file as shipped, its email channel (and its templates) pointed at a local server."""
    example = load_org_config(EXAMPLE_CONFIG)
    channels = []
    for channel in example.notification_channels:
        if channel.name == "email":
            assert isinstance(channel, EmailChannel)
            templates = dict(channel.templates)
            if subject is not None:
                templates["incident_update"] = TemplateOverride(subject=subject)
            channel = channel.model_copy(
                update={
                    "settings": EmailSettings(
                        host="127.0.0.1",
                        port=smtp_port,
                        security="none",
                        from_address="incidents@acme.example",
                    ),
                    "templates": templates,
                }
            )
        channels.append(channel)
    paging_off = {level.id: "none" for level in example.severities}
    return example.model_copy(update={"notification_channels": channels, "paging_modes": paging_off})


@pytest.fixture
def org(smtp_port: int) -> OrgConfig:
    return example_email_to(smtp_port)


def test_customers_get_no_severity_or_title_from_the_example(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int
) -> None:
    _, [message] = send_update(context, api, responder, smtp_port, "customers")
    assert message["Subject"] == "Acme Cloud incident update: investigating (payments)"
    assert "P1" not in message["Subject"] and "PostgresDown" not in message["Subject"]
    # Inside the org the example's own subject stays.
    _, messages = send_update(context, api, responder, smtp_port, "executives")
    assert [m["Subject"] for m in messages] == ["[Acme P1] Database: PostgresDown on db-1:5432"]


def test_an_override_that_would_leak_fails_for_customers_instead(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int
) -> None:
    context.org = example_email_to(smtp_port, subject=LEAKING)
    with context.db.write() as session:
        ref = incidents.create_incident(
            session,
            org=context.org,
            data=IncidentCreate(title="Login broken", severity="P1", services=["auth"]),
            performer="dana",
        ).ref
    with SmtpServer(smtp_port) as smtp:
        answer = api.post(
            f"/api/v1/incidents/{ref}/updates",
            json={"audience": "customers", "message": "We are looking into login failures"},
            headers=responder,
        )
        assert answer.status_code == 201, answer.text
        while Worker(context).run_once():
            pass
        assert smtp.sink.messages == []
    [email] = [outcome for outcome in answer.json()["outcomes"] if outcome["channel"] == "email"]
    assert email["outcome"] == "not_sent"
    assert "severity" in email["error"]


def test_config_check_refuses_an_override_that_shows_customers_the_severity() -> None:
    leaking = (
        "audiences: [{id: customers, channels: ['mail:c@x.example'], external: true}]\n"
        "notification_channels:\n"
        "  - name: mail\n"
        "    type: email\n"
        f"    templates: {{incident_update: {{subject: '{LEAKING}',\n"
        "                                  text: '{{ sender }}: {{ message }}'}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_org_config(leaking, "org.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "notification_channels[0].templates.incident_update.subject (line 5): shows incident.severity, "
        "incident.title to 'customers' (outside the org), who are told only the incident's status and "
        "services, so every update to them would fail; branch on external: {% if external %}…{% else %}…"
        "{% endif %}",
        "notification_channels[0].templates.incident_update.text (line 6): shows sender to 'customers' "
        "(outside the org), who are told only the incident's status and services, so every update to them "
        "would fail; branch on external: {% if external %}…{% else %}…{% endif %}",
    ]
    # The example's own override branches on external, and passes.
    load_org_config(EXAMPLE_CONFIG)
    # A template that tests for what it is not given, or that no outside audience uses, is fine.
    parse_org_config(
        "audiences:\n"
        "  - {id: customers, channels: [mail], external: true}\n"
        "  - {id: team, channels: ['ops:a@x.example']}\n"
        "notification_channels:\n"
        "  - name: mail\n"
        "    type: email\n"
        "    templates: {incident_update: {subject: "
        "'{{ incident.ref | default(\"\") }}{% if incident.severity %}!{% endif %}{{ incident.status }}'}}\n"
        "  - {name: ops, type: email, templates: {incident_update: {subject: '" + LEAKING + "'}}}\n"
    )


def test_an_unknown_filter_does_not_hide_what_the_template_shows_customers() -> None:
    both = (
        "audiences: [{id: customers, channels: [hook], external: true}]\n"
        "notification_channels:\n"
        "  - name: hook\n"
        "    type: webhook\n"
        "    templates: {incident_update: {text: '{{ incident.severity }}{{ message|nofilter }}"
        "{% if message is nosuchtest %}{{ incident.title|nofilter }}{% endif %}'}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_org_config(both, "org.yaml")
    problems = [str(p) for p in caught.value.problems]
    assert any("No filter named 'nofilter'" in p for p in problems), problems
    # What it shows as it would render (an unknown test tests false here), not what a branch not taken shows.
    [shown] = [p for p in problems if "(outside the org)" in p]
    assert shown.startswith(
        "notification_channels[0].templates.incident_update.text (line 5): shows incident.severity to "
        "'customers' (outside the org)"
    ), shown
