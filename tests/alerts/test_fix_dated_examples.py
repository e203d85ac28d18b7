"""README examples that do not go out of date: ``maintenance start --at +2h`` (a start relative to now), and a
change event already past the org file's retention of changes is refused (it would be deleted within the
hour) rather than answered as recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.alerts.conftest import make_key
from warroom.alerts.models import ChangeEvent
from warroom.cli.main import app
from warroom.client import Client
from warroom.context import AppContext


def through(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    monkeypatch.setattr(
        f"warroom.cli.{module}.Client",
        lambda: Client(
            "http://warroom.test", tokens["responder"], transport=httpx.MockTransport(through_the_app)
        ),
    )


def test_maintenance_can_start_some_time_from_now(
    api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, responder: dict[str, str]
) -> None:
    through(api, tokens, monkeypatch, "maintenance")
    runner = CliRunner()
    before = datetime.now(UTC)
    started = runner.invoke(
        app,
        [
            "maintenance",
            "start",
            "--label",
            "env=staging",
            "--at",
            "+2h",
            "--for",
            "4h",
            "-r",
            "staging rebuild",
        ],
        env={"COLUMNS": "250"},
    )
    assert started.exit_code == 0, started.output
    [window] = api.get("/api/v1/maintenance", params={"all": "true"}, headers=responder).json()
    starts = datetime.fromisoformat(window["starts_at"])
    assert before + timedelta(hours=2) <= starts <= datetime.now(UTC) + timedelta(hours=2)
    assert datetime.fromisoformat(window["ends_at"]) - starts == timedelta(hours=4)

    for bad, said in [
        ("+soon", "+DURATION"),
        ("+2026-12-05", "+DURATION"),
        ("+30", "30 has no unit"),  # not 30 seconds, as the API refuses a bare number too
        ("+", "needs a duration after it"),
    ]:
        refused = runner.invoke(
            app, ["maintenance", "start", "--label", "env=x", "--at", bad, "--for", "1h", "-r", "x"]
        )
        assert refused.exit_code == 2, refused.output
        assert said in " ".join(refused.output.split()), refused.output
    assert len(api.get("/api/v1/maintenance", params={"all": "true"}, headers=responder).json()) == 1


def test_a_change_older_than_its_retention_is_refused(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """The example org file keeps changes 90 days."""
    now = datetime.now(UTC)
    old = (now - timedelta(days=91)).isoformat()
    refused = api.post(
        "/api/v1/changes", json={"summary": "old deploy", "happened_at": old}, headers=responder
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["message"] == (
        "happened_at is older than the org file's retention of changes (90d): it would be deleted at the "
        "next retention run"
    )
    key = make_key(context, "pagerduty", "ci")
    event = {"routing_key": key, "payload": {"summary": "old deploy", "source": "ci", "timestamp": old}}
    answer = api.post("/v2/change/enqueue", json=event)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"] == [
        "payload.timestamp: is older than the org file's retention of changes (90d): it would be deleted at "
        "the next retention run"
    ]
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ChangeEvent)) == 0
    # Within it, recorded as before.
    recent = (now - timedelta(days=89)).isoformat()
    kept = api.post("/api/v1/changes", json={"summary": "deploy", "happened_at": recent}, headers=responder)
    assert kept.status_code == 201, kept.text
    event["payload"]["timestamp"] = recent  # type: ignore[index]
    assert api.post("/v2/change/enqueue", json=event).status_code == 202


def test_a_change_can_be_recorded_some_time_ago(
    api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, viewer: dict[str, str]
) -> None:
    through(api, tokens, monkeypatch, "changes")
    runner = CliRunner()
    before = datetime.now(UTC)
    recorded = runner.invoke(app, ["changes", "record", "Raised the pool to 200", "--at", "30m"])
    assert recorded.exit_code == 0, recorded.output
    [change] = api.get("/api/v1/changes", headers=viewer).json()["items"]
    happened = datetime.fromisoformat(change["happened_at"])
    assert before - timedelta(minutes=30, seconds=1) <= happened <= datetime.now(UTC) - timedelta(minutes=30)
    refused = runner.invoke(app, ["changes", "record", "x", "--at", "lately"])
    assert refused.exit_code == 2 and "or give an ISO 8601 time" in refused.output, refused.output
    for bad, said in [("30", "30 has no unit"), ("18:00", "a time of day without its date")]:
        refused = runner.invoke(app, ["changes", "record", "x", "--at", bad])
        assert refused.exit_code == 2 and said in " ".join(refused.output.split()), refused.output
    assert len(api.get("/api/v1/changes", headers=viewer).json()["items"]) == 1
