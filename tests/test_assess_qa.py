"""Defects a user following the README met: a "no" to the safety question made a P0, an owner team of no team
passed `config check` (and paged nobody, with a hint that blamed the wrong thing), the suggested level's
reasons were only in the timeline's JSON, and an open incident could not be closed as the README said."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from warroom.cli.main import app as cli_app
from warroom.client import Client
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, load_org_config, parse_org_config
from warroom.settings import Settings

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

# --- 1. "no" to the safety question --------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "no",
        "No",
        "none",
        "None.",
        "No safety concerns",
        "no safety concerns.",
        "n/a",
        "N/A",
        "false",
        "  nothing ",
        "not applicable",
        False,
    ],
)
def test_a_no_to_the_safety_question_is_no_concern(
    api: TestClient, viewer: dict[str, str], answer: str | bool
) -> None:
    """Before: every one of these was "immediate safety concern", P0, and paged everyone."""
    answered = api.post(
        "/api/v1/severities/suggest", headers=viewer, json={"assessment": {"safety_concerns": answer}}
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["severity"] == "P2"
    assert "immediate safety concern" not in answered.json()["reasons"]


@pytest.mark.parametrize(
    "answer", ["smoke in the server room", "No power to rack 4; a fan caught fire", True]
)
def test_a_concern_still_makes_a_p0(api: TestClient, viewer: dict[str, str], answer: str | bool) -> None:
    answered = api.post(
        "/api/v1/severities/suggest", headers=viewer, json={"assessment": {"safety_concerns": answer}}
    )
    assert answered.status_code == 200, answered.text
    assert (answered.json()["severity"], answered.json()["reasons"]) == ("P0", ["immediate safety concern"])


def test_an_incident_declared_with_a_no_to_safety_is_not_a_p0(
    api: TestClient, responder: dict[str, str]
) -> None:
    created = api.post(
        "/api/v1/incidents",
        headers=responder,
        json={"title": "Search is slow", "services": ["search"], "assessment": {"safety_concerns": "No"}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["severity"] == "P2"
    assert created.json()["assessment"]["safety_concerns"] == "No"  # the answer is kept as given


def test_a_rule_may_answer_no_in_yaml(tmp_path: Path) -> None:
    """YAML reads ``no`` as false: a rule's assessment saying so was refused as "not a valid string"."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["rules"][0]["incident"]["assessment"]["safety_concerns"] = False
    org = parse_org_config(yaml.safe_dump(data))
    assessment = org.automation.rules[0].incident
    assert assessment is not None and assessment.assessment is not None
    assert assessment.assessment.safety_concerns is False


# --- 2. owner teams ------------------------------------------------------------------------------------


def test_the_example_file_names_only_teams_it_defines() -> None:
    org = load_org_config(EXAMPLE_CONFIG)
    teams = {team.name for team in org.teams}
    assert {service.owner_team for service in org.services} <= teams


def test_config_check_refuses_an_owner_team_that_is_no_team(tmp_path: Path) -> None:
    text = EXAMPLE_CONFIG.read_text().replace("owner_team: discovery", "owner_team: discvery")
    line = text.splitlines().index("    owner_team: discvery") + 1
    with pytest.raises(ConfigError) as refused:
        parse_org_config(text, "org.yaml")
    assert [str(problem) for problem in refused.value.problems] == [
        f"services[7].owner_team (line {line}): 'discvery' is not a team in this file; did you mean "
        "'discovery'?"
    ]
    config = tmp_path / "org.yaml"
    config.write_text(text.replace("owner_team: web", "owner_team: marketing"))
    checked = CliRunner().invoke(cli_app, ["config", "check", str(config)])
    assert checked.exit_code == 2, checked.output
    assert "services[7].owner_team" in checked.output and "did you mean 'discovery'?" in checked.output
    assert (
        "services[0].owner_team" in checked.output
        and "'marketing' is not a team in this file" in checked.output
    )


def test_a_file_without_teams_names_none(tmp_path: Path) -> None:
    text = "services:\n  - {name: api, owner_team: platform}\n"
    with pytest.raises(ConfigError) as refused:
        parse_org_config(text)
    assert [problem.message for problem in refused.value.problems] == [
        "'platform' is not a team in this file (no team is defined)"
    ]


@pytest.fixture
def org_file(tmp_path: Path) -> Path:
    path = tmp_path / "org.yaml"
    path.write_text(EXAMPLE_CONFIG.read_text())
    return path


@pytest.fixture
def settings(tmp_path: Path, database_url: str, org_file: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, config=org_file, run_worker=False)


def test_a_reload_refuses_an_owner_team_that_is_no_team(
    api: TestClient, context: AppContext, org_file: Path, admin: dict[str, str]
) -> None:
    org_file.write_text(org_file.read_text().replace("owner_team: data", "owner_team: dta"))
    refused = api.post("/api/v1/config/reload", headers=admin)
    assert refused.status_code == 422, refused.text
    (problem,) = refused.json()["error"]["details"]
    assert problem["location"] == "services[4].owner_team"
    assert problem["message"] == "'dta' is not a team in this file; did you mean 'data'?"
    database = context.org.service("database")
    assert database is not None and database.owner_team == "data"  # the running file stays


def nobody_paged_note(context: AppContext, **fields: Any) -> str:
    """The timeline's note that nobody was paged, for a new incident of ``fields`` run by the worker."""
    clock.set(T0)
    with context.db.write() as session:
        incident = incident_service.create_incident(
            session,
            org=context.org,
            data=IncidentCreate.model_validate({"title": "Something is off", **fields}),
            performer="alice",
        )
        incident_id = incident.id
    worker = Worker(context, name="w1")
    while worker.run_once():
        pass
    with context.db.read() as session:
        actions = [entry.action for entry in incident_service.get_timeline(session, incident_id)]
    (note,) = [action for action in actions if action.startswith("No escalation policy covers")]
    return note


def test_nobody_paged_names_the_owner_team_with_nobody_to_page(context: AppContext) -> None:
    """Before: "(map the severity in severity_policies, or give a service an escalation_policy or an owner
    team)", for a service that has an owner team: the team is what has nobody to page."""
    assert nobody_paged_note(context, severity="P2", services=["search", "database"]) == (
        "No escalation policy covers P2 here, so none is paged for it (search's owner team discovery has no "
        "escalation_policy, schedule, members or manager to page, database's owner team data has no "
        "escalation_policy, schedule, members or manager to page, and severity_policies maps no policy to "
        "P2); a rule's page still pages its own"
    )


def test_nobody_paged_names_what_an_incident_without_services_lacks(context: AppContext) -> None:
    assert nobody_paged_note(context, severity="P1") == (
        "No escalation policy covers P1 here, so none is paged for it (the incident names no service, and "
        "severity_policies maps no policy to P1); a rule's page still pages its own"
    )


# --- 3. the suggestion's reasons on the timeline -------------------------------------------------------


@pytest.fixture
def cli_through_app(
    api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    """``warroom incident …`` answered by the test app, as the responder."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client() -> Client:
        return Client(
            "http://warroom.test", tokens["responder"], transport=httpx.MockTransport(through_the_app)
        )

    monkeypatch.setattr("warroom.cli.incidents.Client", client)
    monkeypatch.setenv("COLUMNS", "250")
    yield CliRunner()


README_ASSESSMENT = """{
  "source": "monitoring-alert",
  "symptoms": ["payment_failure", "high_error_rate"],
  "user_impact": {"estimated": 15000, "confirmed": 847, "regions": ["us-east", "eu-west"]},
  "business_impact": {"revenue": "high", "reputation": "medium", "compliance": "none"},
  "scope": "all card payments", "recurring": false
}"""


def test_the_timeline_says_why_the_level_was_suggested(
    cli_through_app: CliRunner, api: TestClient, viewer: dict[str, str]
) -> None:
    """README section 2: the suggestion is recorded "with why on the timeline"; the entry said only "declared
    at P0", the reasons were in its JSON."""
    created = cli_through_app.invoke(
        cli_app,
        [
            "incident",
            "create",
            "Payments failing",
            "--service",
            "payments",
            "--assessment",
            README_ASSESSMENT,
        ],
    )
    assert created.exit_code == 0, created.output
    shown = cli_through_app.invoke(cli_app, ["incident", "timeline", "INC-1"])
    assert shown.exit_code == 0, shown.output
    expected = (
        "Incident INC-1 declared at P0: Payments failing (suggested from the assessment: complete outage, "
        "data loss, exposed data or failing payments)"
    )
    assert expected in " ".join(shown.output.split())
    (first, *_) = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert first["action"] == expected
    assert first["data"]["suggestion"]["reasons"] == [
        "complete outage, data loss, exposed data or failing payments"
    ]


def test_a_level_given_is_declared_without_a_suggestion(api: TestClient, responder: dict[str, str]) -> None:
    created = api.post(
        "/api/v1/incidents",
        headers=responder,
        json={"title": "Search is slow", "severity": "P3", "assessment": {"symptoms": ["complete_outage"]}},
    )
    assert created.status_code == 201, created.text
    (first, *_) = api.get("/api/v1/incidents/INC-1/timeline", headers=responder).json()["items"]
    assert first["action"] == "Incident INC-1 declared at P3: Search is slow"


# --- 4. closing an open incident -----------------------------------------------------------------------


def test_an_open_incident_is_resolved_before_it_is_closed(api: TestClient, responder: dict[str, str]) -> None:
    """README section 3 said status may skip to "closed without a post-mortem"; that is from resolved. An
    open incident's 409 says to resolve it first."""
    created = api.post(
        "/api/v1/incidents", headers=responder, json={"title": "Search is slow", "severity": "P3"}
    )
    assert created.status_code == 201, created.text
    for target in ("closed", "postmortem"):
        refused = api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": target})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["message"] == (
            f"cannot move from investigating to {target}; allowed from investigating: identified, "
            "monitoring, resolved; resolve it first"
        )
    for target in (
        "resolved",
        "closed",
    ):  # skipping ahead: straight to resolved, closed without a post-mortem
        moved = api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": target})
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == target


def test_a_safety_answer_that_is_neither_text_nor_yes_or_no_is_refused(
    api: TestClient, viewer: dict[str, str]
) -> None:
    answered = api.post(
        "/api/v1/severities/suggest", headers=viewer, json={"assessment": {"safety_concerns": 42}}
    )
    assert answered.status_code == 422, answered.text
    assert answered.json()["error"]["details"] == [
        {
            "field": "assessment.safety_concerns",
            "message": "should be a text saying what the concern is, or false when there is none",
        }
    ]
