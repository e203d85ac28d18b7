"""A database without Warroom's tables (dropped, or a new empty database never upgraded) is answered 503
``wrong_schema`` saying to run ``warroom db upgrade``, as ``/healthz`` says, logged in one line per request.
On PostgreSQL a missing table is a ProgrammingError (undefined_table): intake and the API answered 500 with
tracebacks; on SQLite ("no such table", an OperationalError) 503 ``database_unavailable``, retry later, which
no retry mends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.alerts.conftest import make_key
from warroom.app import create_app
from warroom.auth import service as auth_service
from warroom.auth.models import Role
from warroom.context import AppContext


@contextmanager
def tables_gone(context: AppContext, *names: str) -> Iterator[None]:
    """The tables missing, as after a DROP (put back afterwards)."""
    with context.db.write() as session:
        for name in names:
            session.execute(text(f"ALTER TABLE {name} RENAME TO {name}_gone"))
    try:
        yield
    finally:
        context.db.dispose()  # connections that cached plans on the missing tables
        with context.db.write() as session:
            for name in names:
                session.execute(text(f"ALTER TABLE {name}_gone RENAME TO {name}"))


MESSAGE = "run warroom db upgrade"


def assert_schema_missing(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "wrong_schema" and MESSAGE in error["message"], error


def logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("warroom")]


def test_requests_on_missing_tables_answer_503_wrong_schema(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    generic, pagerduty = make_key(context, "generic"), make_key(context, "pagerduty")
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    webhook, heartbeat = make_key(context, "webhook"), make_key(context, "heartbeat")
    with context.db.write() as session:
        token = auth_service.create_token(session, name="ic", role=Role.responder).token
    bearer = {"Authorization": f"Bearer {token}"}
    event = {
        "routing_key": pagerduty,
        "event_action": "trigger",
        "payload": {"summary": "replica lag", "source": "db-2", "severity": "error"},
    }
    caplog.set_level(logging.INFO)
    with TestClient(create_app(context=context), raise_server_exceptions=False) as api:
        with tables_gone(context, "integration_keys", "api_tokens"):
            caplog.clear()
            answers: list[tuple[str, Any]] = [
                # Intake's fast path (the writer's transaction), then the framework's routes (the key lookup
                # run on the driver), and a route that takes an API token.
                ("generic", api.post(f"/api/v1/alerts?key={generic}", json={"summary": "disk full"})),
                ("webhook", api.post(f"/api/v1/alerts/webhook/uptime-kuma?key={webhook}", json={"a": 1})),
                ("heartbeat", api.post(f"/api/v1/heartbeats/prometheus-watchdog?key={heartbeat}")),
                ("api", api.get("/api/v1/incidents", headers=bearer)),
            ]
            for _, answer in answers:
                assert_schema_missing(answer)
            # PagerDuty's and Opsgenie's routes say so in their own shapes.
            pd = api.post("/v2/enqueue", json=event)
            assert pd.status_code == 503 and pd.headers["Retry-After"] == "5", pd.text
            assert pd.json()["status"] == "wrong_schema" and MESSAGE in pd.json()["message"], pd.text
            genie_answer = api.post("/v2/alerts", json={"message": "replica lag"}, headers=genie)
            assert genie_answer.status_code == 503, genie_answer.text
            assert MESSAGE in genie_answer.json()["message"], genie_answer.text
            health = api.get("/healthz")
            # The version table is there, but two tables are not: the node is no use to a load balancer.
            assert health.status_code == 503, health.text
            assert "has no table api_tokens, integration_keys" in health.json()["error"]["message"]
            # One line per request, no traceback.
            records = logged(caplog)
            assert len(records) == len(answers) + 2, [r.getMessage() for r in records]
            for record in records:
                said = record.getMessage()
                assert record.exc_info is None and "\n" not in said and "schema" in said, said
                assert "integration_keys" in said or "api_tokens" in said, said
        assert api.post(f"/api/v1/alerts?key={generic}", json={"summary": "disk full"}).status_code == 202
        assert api.get("/api/v1/incidents", headers=bearer).status_code == 200
