"""QA round (an SRE scripting Warroom from cron): ``--json`` on every command a script runs, one shape
however many ids are given, and the same exit status with and without it. Client commands are answered by
the real app; admin commands work on the test database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner, Result

from warroom.cli.main import app
from warroom.client import Client
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.incidents.models import TimelineEntry
from warroom.incidents.schemas import IncidentCreate


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI's client commands, answered by the test app (as a responder)."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client() -> Client:
        return Client(
            "http://warroom.test", tokens["responder"], transport=httpx.MockTransport(through_the_app)
        )

    for module in ("alerts", "incidents", "maintenance", "oncall"):
        monkeypatch.setattr(f"warroom.cli.{module}.Client", client)
    yield CliRunner()


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def as_json(result: Result, exit_code: int = 0) -> Any:
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def said(result: Result) -> str:
    return " ".join(result.output.split())


# --- 6. alert actions: a list, however many ids ------------------------------------------------------------


def test_alert_actions_print_a_list_in_json_however_many_ids(cli: CliRunner) -> None:
    """``alerts resolve 24 --json`` printed an object, ``alerts resolve 21 18 --json`` a list, and ``ack 5
    ALR-5`` (one alert, named twice) an object again: a script could not parse them the same way."""
    for summary in ("disk full on nas1", "backup late", "cert expires"):
        assert run(cli, "report", summary, "--severity", "info").exit_code == 0
    one = as_json(run(cli, "alerts", "ack", "1", "--json"))
    assert isinstance(one, list) and [alert["ref"] for alert in one] == ["ALR-1"]
    twice = as_json(run(cli, "alerts", "snooze", "2", "ALR-2", "--for", "1h", "--json"))
    assert [alert["ref"] for alert in twice] == ["ALR-2"]
    several = as_json(run(cli, "alerts", "resolve", "1", "3", "--json"))
    assert [(alert["ref"], alert["status"]) for alert in several] == [
        ("ALR-1", "resolved"),
        ("ALR-3", "resolved"),
    ]
    noted = as_json(run(cli, "alerts", "note", "2", "-m", "known", "--json"))
    assert [alert["ref"] for alert in noted] == ["ALR-2"]
    # One refused among several: the others' list, and the command fails.
    partly = run(cli, "alerts", "resolve", "2", "3", "--json")
    assert [alert["ref"] for alert in as_json(partly, exit_code=1)] == ["ALR-2"]
    assert "ALR-3" in partly.stderr


# --- 9. ending a maintenance window twice ------------------------------------------------------------------


def test_ending_a_window_twice_says_it_had_ended_and_succeeds(cli: CliRunner, context: AppContext) -> None:
    """The second ``maintenance end MW-1`` (a retry, or two people at once) got 409 "already ended" and exited
    1, where a repeated ``incident ack`` exits 0."""
    started = run(cli, "maintenance", "start", "--service", "api", "--for", "1h", "-r", "upgrade", "--json")
    assert started.exit_code == 0, started.output
    ended = run(cli, "maintenance", "end", "MW-1")
    assert ended.exit_code == 0 and said(ended).startswith("MW-1 ended at "), ended.output
    again = run(cli, "maintenance", "end", "MW-1")
    assert again.exit_code == 0, again.output
    assert said(again).startswith("MW-1 had already ended at ") and "by responder-user" in said(again)
    window = as_json(run(cli, "maintenance", "end", "MW-1", "--json"))
    assert (window["state"], window["unchanged"]) == ("ended", True)
    # One cancelled before it started says so, with the plan it had.
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (
        run(
            cli, "maintenance", "start", "--service", "api", "--at", later, "--for", "1h", "-r", "x"
        ).exit_code
        == 0
    )
    assert said(run(cli, "maintenance", "end", "MW-2")).startswith("MW-2 cancelled (it was planned from ")
    cancelled = run(cli, "maintenance", "end", "MW-2")
    assert cancelled.exit_code == 0, cancelled.output
    assert said(cancelled).startswith("MW-2 had already been cancelled at ")
    assert "(planned from " in said(cancelled)
    # Extending one that is over is still refused: there is nothing to extend.
    refused = run(cli, "maintenance", "extend", "MW-1", "--by", "30m")
    assert refused.exit_code == 1 and "already ended" in refused.output


# --- 7. --json where it was missing ------------------------------------------------------------------------


def test_token_commands_print_json(database_url: str) -> None:
    runner = CliRunner()
    db = ["--database-url", database_url]
    created = runner.invoke(app, ["token", "create", "--name", "cron", "--role", "viewer", "--json", *db])
    token = as_json(created)
    assert (token["id"], token["name"], token["role"]) == (1, "cron", "viewer")
    assert token["token"].startswith(token["prefix"]) and created.stdout.count(token["token"]) == 1
    assert token["token"] not in created.stderr  # printed once: in the JSON, on stdout
    listed = as_json(runner.invoke(app, ["token", "list", "--json", *db]))
    assert [(row["id"], row["name"], row["revoked_at"]) for row in listed] == [(1, "cron", None)]
    assert "token" not in listed[0] and token["token"] not in json.dumps(listed)
    revoked = as_json(runner.invoke(app, ["token", "revoke", "1", "--json", *db]))
    assert revoked["revoked_at"] is not None and revoked["unchanged"] is False
    again = as_json(runner.invoke(app, ["token", "revoke", "1", "--json", *db]))
    assert (again["revoked_at"], again["unchanged"]) == (revoked["revoked_at"], True)


def test_integration_commands_print_json(database_url: str) -> None:
    runner = CliRunner()
    db = ["--database-url", database_url]
    created = runner.invoke(
        app,
        [
            "integration",
            "create",
            "--name",
            "grafana",
            "--type",
            "grafana",
            "--signing-secret",
            "--json",
            *db,
        ],
    )
    integration = as_json(created)
    key, secret = integration["key"], integration["signing_secret"]
    assert (integration["name"], integration["signing"]) == ("grafana", True) and key and secret
    assert created.output.count(key) == 1 and created.output.count(secret) == 1  # once each, in the JSON
    updated = as_json(
        runner.invoke(app, ["integration", "update", "1", "--name", "grafana-prod", "--json", *db])
    )
    assert updated["name"] == "grafana-prod" and "key" not in updated
    rotated = runner.invoke(app, ["integration", "rotate", "1", "--grace", "0s", "--json", *db])
    new = as_json(rotated)
    assert new["key"] != key and new["signing_secret"] != secret and rotated.output.count(new["key"]) == 1
    revoked = as_json(runner.invoke(app, ["integration", "revoke", "1", "--json", *db]))
    assert revoked["revoked_at"] is not None and revoked["unchanged"] is False
    assert as_json(runner.invoke(app, ["integration", "revoke", "1", "--json", *db]))["unchanged"] is True


def test_audit_verify_prints_json_and_fails_on_a_break_either_way(context: AppContext) -> None:
    database_url = context.settings.resolved_database_url
    with context.db.write() as session:
        incident_service.create_incident(
            session, org=context.org, performer="tester", data=IncidentCreate(title="db slow", severity="P2")
        )
    runner = CliRunner(env={"WARROOM_DATA_DIR": str(context.settings.data_dir)})  # the chain's key is there
    clean = as_json(runner.invoke(app, ["audit", "verify", "--json", "--database-url", database_url]))
    assert clean["problems"] == [] and clean["checked"] >= 1
    with context.db.write() as session:
        session.execute(update(TimelineEntry).where(TimelineEntry.seq == 1).values(action="nothing to see"))
    broken = runner.invoke(app, ["audit", "verify", "--json", "--database-url", database_url])
    [problem] = as_json(broken, exit_code=1)["problems"]
    assert (problem["incident"], problem["seq"]) == ("INC-1", 1) and "edited" in problem["reason"]
    text = runner.invoke(app, ["audit", "verify", "--database-url", database_url])
    assert text.exit_code == 1 and "INC-1 entry #1" in text.output


def test_removing_an_override_prints_json(cli: CliRunner) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    created = as_json(
        run(
            cli,
            "oncall",
            "override",
            "platform-primary",
            "--person",
            "frank",
            "--start",
            f"{day}T09:00:00+01:00",
            "--end",
            f"{day}T17:00:00+01:00",
            "--json",
        )
    )
    removed = as_json(run(cli, "oncall", "remove-override", "platform-primary", str(created["id"]), "--json"))
    assert (removed["id"], removed["person"]) == (created["id"], "frank")
