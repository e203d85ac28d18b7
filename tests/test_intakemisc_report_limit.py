"""The public report form's rate limit is counted in the database: two servers on one database (two
``warroom serve`` processes behind a load balancer) allow a client the limit between them, not twice it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from warroom.alerts import retention
from warroom.alerts.config import ReportsConfig
from warroom.alerts.models import Alert, ReportHit
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import Database
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings

REPORT = {
    "contact": "ann@example.com",
    "description": "Checkout spins forever",
    "affected_feature": "payments",
}
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def org(org: OrgConfig) -> OrgConfig:
    reports = ReportsConfig(rate_limit=3, rate_period=timedelta(minutes=1))
    return org.model_copy(update={"automation": org.automation.model_copy(update={"reports": reports})})


@pytest.fixture
def servers(settings: Settings, org: OrgConfig) -> Iterator[list[AppContext]]:
    """Two servers on one database, each with its own engine and app, as two processes have."""
    contexts = [
        AppContext(settings=settings, db=Database(settings.resolved_database_url), org=org) for _ in range(2)
    ]
    yield contexts
    for context in contexts:
        context.db.dispose()


def clients(stack: ExitStack, contexts: list[AppContext], address: str) -> list[TestClient]:
    return [
        stack.enter_context(TestClient(create_app(context=context), client=(address, 50000)))
        for context in contexts
    ]


def stored_reports(context: AppContext) -> int:
    with context.db.read() as session:
        query = select(func.count()).select_from(Alert).where(Alert.source == "customer-report")
        return session.scalar(query) or 0


def test_two_servers_on_one_database_allow_a_client_the_limit_between_them(
    servers: list[AppContext],
) -> None:
    clock.set(T0)
    with ExitStack() as stack:
        first, second = clients(stack, servers, "203.0.113.9")
        answers = [client.post("/api/v1/reports", json=REPORT) for client in (first, second) * 3]
        assert [answer.status_code for answer in answers] == [202, 202, 202, 429, 429, 429]
        # The same answer from either server: when the oldest of the three leaves the window.
        clock.advance(timedelta(seconds=20))
        for client in (first, second):
            limited = client.post("/api/v1/reports", json=REPORT)
            assert limited.status_code == 429
            assert limited.headers["Retry-After"] == "40"
            assert limited.json()["error"]["code"] == "rate_limited"
        # Another address (another IPv6 /64 too) has a limit of its own.
        other_v4, other_v6 = (
            clients(stack, servers, "203.0.113.10")[0],
            clients(stack, servers, "2001:db8::1")[1],
        )
        assert other_v4.post("/api/v1/reports", json=REPORT).status_code == 202
        assert other_v6.post("/api/v1/reports", json=REPORT).status_code == 202
        clock.advance(timedelta(seconds=41))
        assert second.post("/api/v1/reports", json=REPORT).status_code == 202
        assert first.post("/api/v1/reports", json=REPORT).status_code == 202
    assert stored_reports(servers[0]) == 7


def test_reports_sent_at_once_to_both_servers_never_pass_the_limit(servers: list[AppContext]) -> None:
    """On PostgreSQL the two servers' transactions run at once: each bucket's take turns."""
    clock.set(T0)
    with ExitStack() as stack:
        pair = clients(stack, servers, "198.51.100.7")
        codes: list[int] = []
        start = threading.Barrier(8)

        def send(client: TestClient) -> None:
            start.wait()
            codes.append(client.post("/api/v1/reports", json=REPORT).status_code)

        threads = [threading.Thread(target=send, args=(pair[n % 2],)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(codes) == [202] * 3 + [429] * 5
    assert stored_reports(servers[0]) == 3


def test_retention_deletes_the_hits_older_than_the_period(servers: list[AppContext]) -> None:
    clock.set(T0)
    with ExitStack() as stack:
        client = clients(stack, servers, "203.0.113.9")[0]
        assert client.post("/api/v1/reports", json=REPORT).status_code == 202
        clock.advance(timedelta(seconds=30))
        assert client.post("/api/v1/reports", json=REPORT).status_code == 202
    clock.advance(timedelta(seconds=31))
    assert retention.prune(servers[0], clock.now())["report_hits"] == 1
    with servers[0].db.read() as session:
        assert list(session.scalars(select(ReportHit.at))) == [T0 + timedelta(seconds=30)]
