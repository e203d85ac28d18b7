"""QA findings: email addresses are checked where they are given, the jobs filter refuses an incident that
does not exist, and a repeated revoke or leave says it changed nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG, cli_through_the_app
from warroom.cli.main import app as cli_app
from warroom.context import AppContext
from warroom.notify.config import INCIDENT_FIELDS, check_email_address
from warroom.notify.models import Delivery
from warroom.notify.service import incident_view
from warroom.orgconfig import ConfigError, parse_org_config

GOOD = [
    "oncall@acme.example",
    "first.last+pager@eu.acme.example",
    "o'brien@acme.example",
    "jörg@bücher.de",
    "ops@xn--bcher-kva.de",
    "pager@mail.corp.local",  # a company network's own mail domain
    "qa@staging.test",
]
BAD = [
    "bad address",
    "Bob <bob@acme.example>",
    "bob",
    "bob@",
    "@acme.example",
    "bob@@acme.example",
    "a@b@acme.example",
    "bob@localhost",
    ".bob@acme.example",
    "bob.@acme.example",
    "bo..b@acme.example",
    "bo(b)@acme.example",
    "bob@-acme.example",
    "bob@acme-.example",
    "bob@acme..example",
    "bob@acme_corp.example",
    "bob@10.0.0.1",
    "bob@[10.0.0.1]",
    "x" * 65 + "@acme.example",
]


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI's client commands, answered by the test app (as admin)."""
    return cli_through_the_app(
        api, tokens["admin"], monkeypatch, "warroom.cli.incidents", "warroom.cli.notify"
    )


@pytest.mark.parametrize("address", GOOD)
def test_addresses_mail_servers_take_pass(address: str) -> None:
    assert check_email_address(address) == address


@pytest.mark.parametrize("address", BAD)
def test_what_is_not_an_address_is_refused_saying_why(address: str) -> None:
    with pytest.raises(ValueError, match="is not an email address: "):
        check_email_address(address)


def test_a_test_message_to_a_bad_address_is_refused(
    context: AppContext, api: TestClient, admin: dict[str, str], cli: CliRunner
) -> None:
    for to in ("bad address", "ok@acme.example, bad address", "Bob <bob@acme.example>"):
        refused = api.post("/api/v1/notifications/test", json={"channel": "email", "to": to}, headers=admin)
        assert refused.status_code == 422, refused.text
        assert "is not an email address" in refused.json()["error"]["message"]
    said = cli.invoke(cli_app, ["notify", "test", "--channel", "email", "--to", "bad address", "--wait", "0"])
    assert said.exit_code == 1, said.output
    assert "'bad address' is not an email address" in said.output
    with context.db.read() as session:
        assert session.scalars(select(Delivery)).all() == []
    # Several good ones, as a channel's `to` may list them.
    sent = api.post(
        "/api/v1/notifications/test",
        json={"channel": "email", "to": "a@acme.example, b@acme.example"},
        headers=admin,
    )
    assert sent.status_code == 202, sent.text


def test_config_check_refuses_addresses_no_mail_could_reach() -> None:
    text = EXAMPLE_CONFIG.read_text()
    text = text.replace("email: bob@acme.example", "email: bob at acme")
    text = text.replace(
        "{name: work-email, channel: email, to: alice@acme.example}",
        "{name: work-email, channel: email, to: 'Alice <alice@acme.example>'}",
    )
    text = text.replace('channels: ["email:exec@acme.example"]', 'channels: ["email:exec@acme"]')
    text = text.replace("to: incident-updates@acme.example", "to: incident-updates")
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text)
    problems = [f"{p.location}: {p.message}" for p in caught.value.problems]
    expected = [
        ("people[1].email", "'bob at acme' is not an email address"),
        ("people[0].contact_methods[0].to", "'Alice <alice@acme.example>' is not an email address"),
        ("audiences[3].channels", "'exec@acme' is not an email address"),
        ("notification_channels[1].to", "'incident-updates' is not an email address"),
    ]
    for location, message in expected:
        assert any(p.startswith(location) and message in p for p in problems), (location, problems)
    assert len(problems) == len(expected), problems


def test_config_check_refuses_a_field_an_incident_never_has_in_a_message_template() -> None:
    text = EXAMPLE_CONFIG.read_text().replace(
        "{%- else %}[Acme {{ incident.severity }}] {{ incident.title }}{% endif %}",
        "{%- else %}[Acme {{ incident.severity }}] {{ incident.nosuch }}{% endif %}\n"
        '        text: "{{ message | nofilter }}"',
    )
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text)
    problems = [f"{p.location}: {p.message}" for p in caught.value.problems]
    assert len(problems) == 2, problems
    subject, body = problems
    assert subject.startswith("notification_channels[1].templates.incident_update.subject")
    assert "incident.nosuch: incident has no such field; it has ref, title" in subject
    assert body.startswith("notification_channels[1].templates.incident_update.text")
    assert "No filter named 'nofilter'" in body


def test_the_fields_config_check_knows_are_those_templates_get(context: AppContext) -> None:
    from warroom.incidents import service as incidents
    from warroom.incidents.schemas import IncidentCreate

    with context.db.write() as session:
        incident = incidents.create_incident(
            session, org=context.org, data=IncidentCreate(title="t", severity="P2"), performer="qa"
        )
        assert tuple(incident_view(incident)) == INCIDENT_FIELDS


def test_jobs_of_an_incident_that_does_not_exist_are_refused(
    context: AppContext, api: TestClient, admin: dict[str, str], responder: dict[str, str]
) -> None:
    created = api.post(
        "/api/v1/incidents", json={"title": "Checkout down", "severity": "P1"}, headers=responder
    ).json()
    ref = created["id"]
    assert api.get("/api/v1/jobs", params={"incident": ref}, headers=admin).status_code == 200
    for missing in ("INC-999", "999", "abc"):
        refused = api.get("/api/v1/jobs", params={"incident": missing}, headers=admin)
        assert refused.status_code == 404, (missing, refused.text)
    assert (
        "no incident INC-999"
        in api.get("/api/v1/jobs", params={"incident": "INC-999"}, headers=admin).json()["error"]["message"]
    )
    # As notifications answer.
    assert api.get("/api/v1/notifications", params={"incident": "INC-999"}, headers=admin).status_code == 404


def test_revoking_a_token_twice_says_it_was_revoked_already(
    context: AppContext, api: TestClient, admin: dict[str, str]
) -> None:
    made = api.post("/api/v1/tokens", json={"name": "tmp", "role": "viewer"}, headers=admin).json()
    first = api.delete(f"/api/v1/tokens/{made['id']}", headers=admin)
    assert first.status_code == 200 and first.json()["unchanged"] is False
    again = api.delete(f"/api/v1/tokens/{made['id']}", headers=admin)
    assert again.status_code == 200
    assert again.json()["unchanged"] is True and again.json()["revoked_at"] == first.json()["revoked_at"]
    # The admin command on the database, twice.
    url = context.settings.resolved_database_url
    other = api.post("/api/v1/tokens", json={"name": "tmp2", "role": "viewer"}, headers=admin).json()
    runner = CliRunner()
    said = runner.invoke(cli_app, ["token", "revoke", str(other["id"]), "--database-url", url])
    assert said.exit_code == 0, said.output
    assert f"revoked token {other['id']} (tmp2)" in said.stdout
    said = runner.invoke(cli_app, ["token", "revoke", str(other["id"]), "--database-url", url])
    assert said.exit_code == 0, said.output
    assert f"token {other['id']} (tmp2) was already revoked (at " in said.stdout
    assert "revoked token" not in said.stdout


def test_a_responder_who_left_already_is_told_so(
    api: TestClient, responder: dict[str, str], cli: CliRunner
) -> None:
    ref = api.post(
        "/api/v1/incidents", json={"title": "Checkout down", "severity": "P1"}, headers=responder
    ).json()["id"]
    bob = api.post(
        f"/api/v1/incidents/{ref}/responders", json={"name": "Bob", "role": "scribe"}, headers=responder
    ).json()
    left = cli.invoke(cli_app, ["responder", "remove", ref, str(bob["id"])])
    assert left.exit_code == 0, left.output
    assert f"Bob left {ref}" in left.stdout
    again = cli.invoke(cli_app, ["responder", "remove", ref, str(bob["id"])])
    assert again.exit_code == 0, again.output
    assert f"Bob had already left {ref} (at " in again.stdout
    answer = api.delete(f"/api/v1/incidents/{ref}/responders/{bob['id']}", headers=responder)
    assert answer.status_code == 200 and answer.json()["unchanged"] is True
    timeline = api.get(f"/api/v1/incidents/{ref}/timeline", headers=responder).json()["items"]
    assert [e["action"] for e in timeline if e["kind"] == "responder_left"] == ["Bob (scribe) left"]
