"""SQLite's deadline and the intake writer's backstop: a delivery the writer has started is answered with its
real outcome however long it takes; one answered 503 (still queued at its deadline, or in a batch that failed
after it) is never stored. The answer and the outcome agree."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
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
    """``slow(session, keys)`` runs after the real ingest of every batch (and of each delivery tried alone),
    before its COMMIT."""
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


def test_a_delivery_slower_than_the_busy_timeout_is_stored_and_answered_202(
    waiting: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"

    def slow(_: Any, keys: set[str]) -> None:
        if "slow" in keys:
            time.sleep(BUSY * 1.5)  # past its deadline and its backstop, before COMMIT

    slow_ingest(monkeypatch, slow)
    before = created()
    [(response, elapsed)] = run(context, url, [("slow", 0)])
    assert response.status_code == 202, response.text
    assert elapsed >= BUSY * 1.5
    assert stored_keys(context) == {"slow", "last"}
    assert created() - before == 2


def test_a_delivery_queued_behind_a_slow_one_past_its_deadline_gets_503_and_nothing_stored(
    waiting: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"

    def slow(_: Any, keys: set[str]) -> None:
        if "slow" in keys:
            time.sleep(BUSY * 1.5)  # "next" waits in the queue past its deadline (0.3 + 1) and backstop

    slow_ingest(monkeypatch, slow)
    before = created()
    [(slow_answer, _), (next_answer, next_elapsed)] = run(context, url, [("slow", 0), ("next", BUSY * 0.3)])
    assert slow_answer.status_code == 202, slow_answer.text
    assert next_answer.status_code == 503, next_answer.text
    assert next_answer.json()["error"]["code"] == "database_unavailable"
    assert next_elapsed < BUSY * 1.4  # the backstop's answer, not the end of the slow batch
    assert stored_keys(context) == {"slow", "last"}
    assert created() - before == 2  # "slow" and "last": nothing counted for "next"


def test_in_a_batch_that_fails_a_delivery_whose_backstop_came_gets_503_the_others_their_202(
    waiting: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "first" keeps the writer busy until "late" and "kept" have arrived (two groups of one batch, "kept"
    with a later deadline). That batch is still running when the backstop of "late" comes, then fails: "late"
    gets 503 and is not stored, "kept" is retried alone and gets 202."""
    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"
    handed_over: list[int] = []
    hand_over = intake.IntakeWriter._hand_over

    def counting(self: intake.IntakeWriter, loop: Any) -> None:
        handed_over.append(1)
        hand_over(self, loop)

    monkeypatch.setattr(intake.IntakeWriter, "_hand_over", counting)
    backstop_came = threading.Event()
    answer_late = intake.IntakeWriter._answer_late

    def noting(self: intake.IntakeWriter, group: Any) -> None:
        answer_late(self, group)
        backstop_came.set()

    monkeypatch.setattr(intake.IntakeWriter, "_answer_late", noting)
    batches: list[set[str]] = []

    def slow(_: Any, keys: set[str]) -> None:
        batches.append(keys)
        if "first" in keys:
            deadline = time.monotonic() + BUSY * 3
            while len(handed_over) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        if keys == {"late", "kept"}:
            assert backstop_came.wait(BUSY * 3)
            raise RuntimeError("the batch fails")

    slow_ingest(monkeypatch, slow)
    before = created()
    answers = run(context, url, [("first", 0), ("late", BUSY * 0.05), ("kept", BUSY * 0.5)])
    assert [response.status_code for response, _ in answers] == [202, 503, 202], [
        response.text for response, _ in answers
    ]
    assert {"late", "kept"} in batches and {"kept"} in batches  # one batch, then "kept" alone
    assert {"late"} not in batches  # answered 503 without being tried again
    assert stored_keys(context) == {"first", "kept", "last"}
    assert created() - before == 3
