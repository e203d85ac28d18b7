"""Change events: the same PagerDuty delivery again within a minute is a retry; a change naming a service is
noted only on open incidents of that service, on a bounded number of them; refusals name the sender's
fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.test_changes import pagerduty_change, stored, timeline_actions
from warroom.alerts import changes
from warroom.alerts.models import ChangeEvent
from warroom.clock import clock
from warroom.context import AppContext

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _incident(api: TestClient, responder: dict[str, str], **extra: Any) -> str:
    declared = api.post(
        "/api/v1/incidents", json={"title": "Odd", "severity": "P3", **extra}, headers=responder
    )
    assert declared.status_code == 201, declared.text
    ref: str = declared.json()["id"]
    return ref


@pytest.mark.parametrize("timestamp", [None, "2026-03-02T09:58:00Z"])
def test_the_same_delivery_again_within_a_minute_is_a_retry(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str], timestamp: str | None
) -> None:
    clock.set(T0)
    _incident(api, responder)  # INC-1, no service: every change naming none goes on it
    body = pagerduty_change(pd_key, source="ci", **({"timestamp": timestamp} if timestamp else {}))
    first = api.post("/v2/change/enqueue", json=body)
    clock.set(T0 + timedelta(seconds=20))
    again = api.post("/v2/change/enqueue", json=body)
    assert first.status_code == again.status_code == 202, again.text
    assert first.json()["id"] == again.json()["id"] == "CHG-1"
    assert stored(context) == 1
    assert len(timeline_actions(context, 1)) == 1
    # A different change is not a retry, nor is the same one sent again later.
    other = api.post("/v2/change/enqueue", json=pagerduty_change(pd_key, source="ci", summary="other"))
    assert other.json()["id"] == "CHG-2"
    clock.set(T0 + timedelta(minutes=2))
    later = api.post("/v2/change/enqueue", json=body)
    assert later.json()["id"] == "CHG-3"
    assert len(timeline_actions(context, 1)) == 3


def test_a_change_naming_a_service_goes_only_on_that_services_open_incidents(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    unserviced = _incident(api, responder)
    serviced = _incident(api, responder, services=["payments"])
    named = api.post(
        "/api/v1/changes", json={"summary": "Deployed payments", "service": "payments"}, headers=responder
    )
    assert named.status_code == 201, named.text
    assert named.json()["noted_on"] == [serviced]
    sent = api.post("/v2/change/enqueue", json=pagerduty_change(pd_key, custom_details={"service": "search"}))
    assert sent.status_code == 202
    assert timeline_actions(context, int(unserviced.removeprefix("INC-"))) == []
    unnamed = api.post("/api/v1/changes", json={"summary": "Flipped a flag"}, headers=responder)
    assert unnamed.json()["noted_on"] == [unserviced, serviced]


def test_a_change_is_noted_on_a_bounded_number_of_open_incidents(
    api: TestClient, context: AppContext, responder: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(T0)
    refs = [_incident(api, responder) for _ in range(4)]
    monkeypatch.setattr(changes, "NOTE_ON_LIMIT", 2)
    unnamed = api.post("/api/v1/changes", json={"summary": "Flipped a flag"}, headers=responder)
    assert unnamed.status_code == 201, unnamed.text
    assert unnamed.json()["noted_on"] == refs[2:]  # the last opened


def test_a_future_timestamp_is_refused_naming_payload_timestamp(
    api: TestClient, context: AppContext, pd_key: str
) -> None:
    clock.set(T0)
    refused = api.post("/v2/change/enqueue", json=pagerduty_change(pd_key, timestamp="2026-03-09T10:00:00Z"))
    assert refused.status_code == 400, refused.text
    errors = refused.json()["errors"]
    assert errors and all(error.startswith("payload.timestamp: ") for error in errors), errors
    assert "happened_at" not in refused.text
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ChangeEvent)) == 0
