"""A REST write that PostgreSQL aborted to settle a deadlock or a serialization failure with another process
is run again (``deps.RetriedRoute``), not answered 503 "database unavailable"; if it loses every time, 409
says what happened. The database's abort is stood in for: its lock order is tested in
``tests/alerts/test_incident_lock_order.py``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tests.incidents.test_api import create
from warroom.context import AppContext
from warroom.db import is_retryable
from warroom.incidents import service
from warroom.incidents.models import Incident, TimelineEntry, TimelineKind


class _Deadlock(Exception):
    sqlstate = "40P01"  # PostgreSQL's "deadlock detected"


def _acknowledging_then_aborted(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """``service.acknowledge`` does its work, then fails as an aborted transaction would, ``failures`` times.
    Its runs, counted."""
    runs: list[int] = []
    acknowledge = service.acknowledge

    def aborted(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        incident = acknowledge(*args, **kwargs)
        if len(runs) <= failures:
            raise OperationalError("UPDATE incidents ...", {}, _Deadlock("deadlock detected"))
        return incident

    monkeypatch.setattr(service, "acknowledge", aborted)
    return runs


def _ack_entries(context: AppContext) -> list[str]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(TimelineEntry.action).where(TimelineEntry.kind == TimelineKind.acknowledged)
            )
        )


def test_a_write_aborted_by_a_deadlock_is_run_again(
    api: TestClient, context: AppContext, responder: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert is_retryable(OperationalError("", {}, _Deadlock()))
    ref = create(api, responder)["id"]
    runs = _acknowledging_then_aborted(monkeypatch, failures=1)
    response = api.post(f"/api/v1/incidents/{ref}/ack", headers=responder)
    assert response.status_code == 200, response.text
    assert response.json()["acknowledged_at"] is not None
    assert len(runs) == 2
    assert len(_ack_entries(context)) == 1  # the aborted run's entry was rolled back with it


def test_a_write_that_loses_every_run_is_answered_409_not_503(
    api: TestClient,
    context: AppContext,
    responder: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = create(api, responder)["id"]
    runs = _acknowledging_then_aborted(monkeypatch, failures=99)
    with caplog.at_level(logging.WARNING, logger="warroom"):
        response = api.post(f"/api/v1/incidents/{ref}/ack", headers=responder)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert "same moment" in error["message"] and "retry" in error["message"]
    assert len(runs) == 3
    assert "database unavailable" not in caplog.text
    assert "lost to a concurrent change: deadlock detected" in caplog.text
    with context.db.read() as session:
        assert session.scalars(select(Incident.acknowledged_at)).one() is None
    assert _ack_entries(context) == []
