"""A database at this version's revision whose tables were dropped by hand is not mended by ``warroom db
upgrade`` (its version table says there is nothing to run): the API's 503 ``wrong_schema`` said to run it all
the same, and ``db upgrade`` said "up to date" and exited 0. Now both give /healthz's advice (restore it from
a backup, or empty it and run ``warroom db upgrade``); a database behind this version's schema is still told
to run ``warroom db upgrade``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.alerts.conftest import make_key
from tests.test_contract_schema_missing import tables_gone
from warroom.app import create_app
from warroom.auth import service as auth_service
from warroom.auth.models import Role
from warroom.cli.main import app as cli
from warroom.context import AppContext

ADVICE = "restore it from a backup, or empty it and run warroom db upgrade"


def _said(answer: httpx.Response) -> str:
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer.text
    body = answer.json()
    return str(body["error"]["message"] if "error" in body else body["message"])


def _answers(context: AppContext, *also_gone: str) -> list[str]:
    """What intake's fast path, an API route and PagerDuty's route say, two tables (and ``also_gone``) being
    gone meanwhile."""
    key, pagerduty = make_key(context, "generic"), make_key(context, "pagerduty")
    with context.db.write() as session:
        token = auth_service.create_token(session, name="ic", role=Role.responder).token
    payload = {"summary": "replica lag", "source": "db-2", "severity": "error"}
    event = {"routing_key": pagerduty, "event_action": "trigger", "payload": payload}
    with (
        TestClient(create_app(context=context), raise_server_exceptions=False) as api,
        tables_gone(context, "integration_keys", "api_tokens", *also_gone),
    ):
        return [
            _said(api.post(f"/api/v1/alerts?key={key}", json={"summary": "disk full"})),
            _said(api.get("/api/v1/incidents", headers={"Authorization": f"Bearer {token}"})),
            _said(api.post("/v2/enqueue", json=event)),
        ]


def test_tables_dropped_at_this_revision_get_the_healthz_advice(context: AppContext) -> None:
    for said in _answers(context):
        assert said.endswith(f"(were Warroom's tables dropped?): {ADVICE}"), said


def test_a_database_behind_this_schema_is_still_told_to_upgrade(context: AppContext) -> None:
    # No version table: an empty database, or one this version never upgraded.
    for said in _answers(context, "alembic_version"):
        assert said.endswith("): run warroom db upgrade") and "restore" not in said, said


def test_db_upgrade_says_tables_are_missing_instead_of_up_to_date(
    context: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARROOM_DATA_DIR", str(tmp_path))
    url = context.settings.resolved_database_url
    with tables_gone(context, "change_events"):
        result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "has no table change_events" in lines[0] and lines[0].endswith(ADVICE), lines
    assert "up to date" not in result.output
    # Put back: up to date again.
    again = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0 and "is up to date" in again.output, again.output
