"""Concurrent deliveries share one transaction (group commit) without mixing up their answers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from tests.alerts.conftest import make_key
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.context import AppContext


def test_concurrent_requests_fold_and_keep_their_own_answers(
    context: AppContext, batch_sizes: list[int]
) -> None:
    key = make_key(context, "generic")
    revoked_key = make_key(context, "generic", "old")
    from warroom.auth import integrations

    with context.db.write() as session:
        integrations.revoke_integration(session, org=None, integration_id=2)
    app = create_app(context=context)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warroom") as client:

            def post(index: int) -> Any:
                if index % 10 == 9:
                    return client.post(f"/api/v1/alerts?key={revoked_key}", json={"summary": "x"})
                if index % 10 == 8:
                    return client.post(f"/api/v1/alerts?key={key}", json={"summary": "x", "severity": "bad"})
                body = {"summary": f"sample {index}", "dedup_key": f"key-{index % 5}", "severity": "info"}
                return client.post(f"/api/v1/alerts?key={key}", json=body)

            return list(await asyncio.gather(*(post(i) for i in range(60))))

    responses = asyncio.run(run())
    statuses = [r.status_code for r in responses]
    assert statuses.count(401) == 6
    assert statuses.count(400) == 6
    assert statuses.count(202) == 48
    for index, response in enumerate(responses):
        if response.status_code == 202:
            [outcome] = response.json()["alerts"]
            assert outcome["dedup_key"] == f"key-{index % 5}"
    with context.db.read() as session:
        rows = session.scalar(select(func.count()).select_from(Alert))
        occurrences = session.scalar(select(func.sum(Alert.occurrences)))
    assert rows == 5
    assert occurrences == 48
    assert batch_sizes and max(batch_sizes) > 1  # requests really shared a transaction


def test_a_failing_request_does_not_fail_the_others(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from warroom.alerts import intake

    key = make_key(context, "generic")
    real_ingest = intake.service.ingest

    def ingest(session: Any, **kwargs: Any) -> Any:
        if any(event.summary == "poison" for event in kwargs["events"]):
            raise RuntimeError("simulated database failure")
        return real_ingest(session, **kwargs)

    monkeypatch.setattr(intake.service, "ingest", ingest)
    app = create_app(context=context)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warroom") as client:
            bodies = [
                {"summary": "poison" if i == 3 else f"fine {i}", "dedup_key": f"k{i}"} for i in range(12)
            ]
            return list(
                await asyncio.gather(
                    *(client.post(f"/api/v1/alerts?key={key}", json=body) for body in bodies)
                )
            )

    responses = asyncio.run(run())
    assert responses[3].status_code == 500
    assert responses[3].json()["error"]["code"] == "internal"
    assert [r.status_code for i, r in enumerate(responses) if i != 3] == [202] * 11
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 11


def test_the_writer_recovers_when_its_database_connection_dies(context: AppContext, api: TestClient) -> None:
    """The writer keeps one connection; when the server drops it, the batch is retried on a fresh one and
    the delivery is answered and stored (PostgreSQL: the server ends the writer's session)."""
    if context.db.is_sqlite:
        pytest.skip("a SQLite connection is a file handle: there is no server to drop it")
    key = make_key(context, "generic")
    first = api.post(f"/api/v1/alerts?key={key}", json={"summary": "before", "dedup_key": "a"})
    assert first.status_code == 202, first.text
    # End every other session on this database: the writer's kept connection and the pool's idle ones.
    with context.db.engine.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    assert ended, "the writer's connection should have been open"
    second = api.post(f"/api/v1/alerts?key={key}", json={"summary": "after", "dedup_key": "b"})
    assert second.status_code == 202, second.text
    third = api.post(f"/api/v1/alerts?key={key}", json={"summary": "again", "dedup_key": "b"})
    assert third.status_code == 202 and third.json()["alerts"][0]["outcome"] == "updated"
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 2
