from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from warroom.alerts.intake import IntakeWriter
from warroom.auth import integrations
from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.context import AppContext
from warroom.events import DomainEvent, _subscribers, subscribe

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def integration_rows(context: AppContext, *columns: Any) -> list[tuple[Any, ...]]:
    """These columns of every integration, by id: what a test compares before and after a refusal."""
    with context.db.read() as session:
        return [tuple(row) for row in session.execute(select(*columns).order_by(IntegrationKey.id))]


def make_key(context: AppContext, type_: str, name: str | None = None) -> str:
    with context.db.write() as session:
        return integrations.create_integration(
            session, org=context.org, name=name or f"{type_}-source", type=IntegrationType(type_)
        ).key


@pytest.fixture
def am_key(context: AppContext) -> str:
    return make_key(context, "alertmanager", "prometheus")


@pytest.fixture
def generic_key(context: AppContext) -> str:
    return make_key(context, "generic", "scripts")


@pytest.fixture
def pd_key(context: AppContext) -> str:
    return make_key(context, "pagerduty", "pd-shaped")


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many deliveries each shared intake transaction held (the writer's group commit at work)."""
    sizes: list[int] = []
    together = IntakeWriter._together

    def recording(self: IntakeWriter, jobs: list[Any]) -> Any:
        sizes.append(len(jobs))
        return together(self, jobs)

    monkeypatch.setattr(IntakeWriter, "_together", recording)
    return sizes


@pytest.fixture
def page_requests() -> Iterator[list[DomainEvent]]:
    """The ``incident.page_requested`` events published while the test runs."""
    seen: list[DomainEvent] = []

    def record(_: Any, event: DomainEvent) -> None:
        seen.append(event)

    subscribe("incident.page_requested")(record)
    yield seen
    _subscribers["incident.page_requested"].remove(record)
