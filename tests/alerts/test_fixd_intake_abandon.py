"""A delivery answered 503 because it was not committed in time is never stored later (SQLite's deadline and
the intake writer's backstop): the answer and the outcome agree."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from tests.alerts.conftest import make_key
from warroom.alerts import intake
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.context import AppContext
from warroom.db import Database
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings

BUSY = 1.0


@pytest.fixture
def waiting(settings: Settings, org: OrgConfig) -> Iterator[AppContext]:
    if make_url(settings.resolved_database_url).get_backend_name() != "sqlite":
        pytest.skip("only SQLite's busy timeout gives intake deliveries a deadline")
    settings = settings.model_copy(update={"sqlite_busy_timeout": BUSY})
    db = Database.from_settings(settings)
    yield AppContext(settings=settings, db=db, org=org)
    db.dispose()


def created() -> float:
    return (
        REGISTRY.get_sample_value(
            "warroom_alerts_received_total", {"source": "generic", "outcome": "created"}
        )
        or 0
    )


def stored_keys(context: AppContext) -> set[str]:
    with context.db.read() as session:
        return set(session.scalars(select(Alert.dedup_key)))


def slow_ingest(monkeypatch: pytest.MonkeyPatch, slow: Any) -> None:
    """``slow(session, keys)`` runs after the real ingest of every batch, before its COMMIT."""
    real = intake.service.ingest

    def ingest(session: Any, **kwargs: Any) -> Any:
        ingested = real(session, **kwargs)
        slow(session, {event.dedup_key for event in kwargs["events"]})
        return ingested

    monkeypatch.setattr(intake.service, "ingest", ingest)


async def post(
    client: httpx.AsyncClient, url: str, key: str, after: float = 0
) -> tuple[httpx.Response, float]:
    await asyncio.sleep(after)
    started = time.monotonic()
    response = await client.post(url, json={"summary": key, "dedup_key": key})
    return response, time.monotonic() - started


def run(
    context: AppContext, url: str, posts: list[tuple[str, float]], poster: Any = post
) -> list[tuple[httpx.Response, float]]:
    app = create_app(context=context)

    async def go() -> list[tuple[httpx.Response, float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warroom", timeout=60) as client:
            answers = list(await asyncio.gather(*(poster(client, url, key, after) for key, after in posts)))
            # The writer is done with all of them once a later delivery is answered (it works in order).
            last = await client.post(url, json={"summary": "last", "dedup_key": "last"})
            assert last.status_code == 202, last.text
            return answers

    return asyncio.run(go())


def test_a_delivery_answered_503_while_it_was_being_applied_is_not_stored(
    waiting: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"

    def slow(_: Any, keys: set[str]) -> None:
        if "slow" in keys:
            time.sleep(BUSY * 1.5)  # past the backstop, before COMMIT

    slow_ingest(monkeypatch, slow)
    before = created()
    [(response, elapsed)] = run(context, url, [("slow", 0)])
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    assert elapsed < BUSY * 1.4
    assert stored_keys(context) == {"last"}
    assert created() - before == 1  # "last" only


def test_the_other_deliveries_of_a_batch_keep_theirs_when_one_is_answered_503(
    waiting: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "first" keeps the writer busy until "slow" and "kept" have arrived (two groups of one batch, "kept"
    with a later deadline); the batch is still applying "slow" when its backstop answers it 503: the batch is
    redone without it, and "kept" is stored and answered 202."""
    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"
    handed_over: list[int] = []
    hand_over = intake.IntakeWriter._hand_over

    def counting(self: intake.IntakeWriter, loop: Any) -> None:
        handed_over.append(1)
        hand_over(self, loop)

    monkeypatch.setattr(intake.IntakeWriter, "_hand_over", counting)
    answered_slow = threading.Event()
    batches: list[set[str]] = []

    def slow(_: Any, keys: set[str]) -> None:
        batches.append(keys)
        deadline = time.monotonic() + BUSY * 3
        if "first" in keys:
            while len(handed_over) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        if "slow" in keys:
            answered_slow.wait(BUSY * 3)

    slow_ingest(monkeypatch, slow)

    async def post_slow(client: httpx.AsyncClient, url: str, key: str, after: float) -> Any:
        answer = await post(client, url, key, after)
        if key == "slow":
            answered_slow.set()
        return answer

    answers = run(context, url, [("first", 0), ("slow", BUSY * 0.05), ("kept", BUSY * 0.6)], post_slow)
    assert [response.status_code for response, _ in answers] == [202, 503, 202], [
        response.text for response, _ in answers
    ]
    assert {"slow", "kept"} in batches  # one batch, then redone without "slow"
    assert stored_keys(context) == {"first", "kept", "last"}


def test_a_delivery_that_runs_past_its_deadline_is_stopped_and_does_not_hold_up_the_next(
    waiting: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement of a batch still running at the backstop is interrupted: the next delivery is applied then,
    not after the slow one's work ends."""
    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"

    def slow(session: Any, keys: set[str]) -> None:
        if "slow" in keys:  # a statement that would run for minutes
            session.execute(
                text(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) "
                    "SELECT count(*) FROM c"
                )
            )

    slow_ingest(monkeypatch, slow)
    before = created()
    started = time.monotonic()
    answers = run(context, url, [("slow", 0), ("next", BUSY * 0.3)])
    [(slow_answer, slow_elapsed), (next_answer, _)] = answers
    assert slow_answer.status_code == 503, slow_answer.text
    assert slow_elapsed < BUSY * 1.4
    assert next_answer.status_code == 202, next_answer.text
    assert time.monotonic() - started < BUSY * 5
    assert stored_keys(context) == {"next", "last"}
    assert created() - before == 2
