"""An audience's ``name:recipient`` is delivered through the channel the file *names* so
(``notify.subscribers``), not through a channel of that type: in a file whose only email channel is
``mail``, ``email:ops@mailhost`` passed config check (its address unchecked, there being no channel
``email``) and every update to it was only logged. Config check (and a reload) now warn of such an entry,
as delivery would send nothing through it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.peers import SmtpServer
from warroom.alerts.config import file_warnings
from warroom.context import AppContext
from warroom.incidents import service as incidents
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.worker import Worker
from warroom.notify.config import unheard_recipients
from warroom.orgconfig import ConfigError, OrgConfig, parse_org_config


def org_file(audience_channels: str, smtp_port: int = 2525) -> str:
    return (
        f"audiences:\n  - {{id: ops, channels: {audience_channels}}}\n"
        "notification_channels:\n"
        "  - name: mail\n"
        "    type: email\n"
        f"    settings: {{host: 127.0.0.1, port: {smtp_port}, security: none,\n"
        "                from_address: w@acme.example}\n"
    )


def test_a_recipient_on_a_name_no_channel_has_is_warned_of() -> None:
    # A warning, not a problem: an org file that loaded before this check must still load (a server that
    # refused its file after an upgrade would not start).
    org = parse_org_config(org_file('["email:ops@mailhost", "email:ops@acme.example", status-page, in-app]'))
    assert unheard_recipients(org) == [
        f"audiences[0] (ops).channels: 'email:ops@{host}': nothing would be sent to 'ops@{host}' "
        "(an update there is only logged): 'email' is not a notification channel in this file; "
        "did you mean 'mail'?"
        for host in ("mailhost", "acme.example")
    ]
    assert unheard_recipients(org) == file_warnings(org, datetime.now(UTC))  # what check and reload say
    # Through the channel so named, the address itself is checked.
    with pytest.raises(ConfigError) as caught:
        parse_org_config(org_file('["mail:ops@mailhost"]'))
    [problem] = [str(problem) for problem in caught.value.problems]
    assert "'mail:ops@mailhost': 'ops@mailhost' is not an email address" in problem
    assert (
        unheard_recipients(parse_org_config(org_file('["mail:ops@acme.example", status-page, in-app]'))) == []
    )


@pytest.fixture
def org(smtp_port: int) -> OrgConfig:
    valid = parse_org_config(org_file('["mail:ops@acme.example"]', smtp_port))
    [audience] = valid.audiences
    unnamed = audience.model_copy(update={"channels": ["email:ops@acme.example", "mail:ops@acme.example"]})
    return valid.model_copy(update={"audiences": [unnamed], "paging_modes": {}})


def test_delivery_finds_the_channel_by_its_name_not_its_type(
    context: AppContext, api: TestClient, responder: dict[str, str], smtp_port: int
) -> None:
    with context.db.write() as session:
        ref = incidents.create_incident(
            session, org=context.org, data=IncidentCreate(title="Login broken", severity="P1"), performer="qa"
        ).ref
    with SmtpServer(smtp_port) as smtp:
        answer = api.post(
            f"/api/v1/incidents/{ref}/updates", json={"audience": "ops", "message": "m"}, headers=responder
        )
        assert answer.status_code == 201, answer.text
        while Worker(context).run_once():
            pass
        sent = list(smtp.sink.messages)
    outcomes = {outcome["channel"]: outcome["outcome"] for outcome in answer.json()["outcomes"]}
    assert outcomes == {"email:ops@acme.example": "logged", "mail:ops@acme.example": "queued"}
    assert len(sent) == 1  # through mail only
