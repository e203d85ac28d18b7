"""Wording: a webhook acknowledgement names the integration it came through."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_webhook_formats import check, org, webhook_key  # noqa: F401 (fixtures)
from warroom.alerts.models import Alert
from warroom.context import AppContext
from warroom.incidents.models import TimelineEntry


def test_a_webhook_acknowledgement_names_its_integration(
    api: TestClient,
    context: AppContext,
    webhook_key: str,  # noqa: F811
) -> None:
    path = f"/api/v1/alerts/webhook/checks?key={webhook_key}"
    fired = api.post(path, json={"team": "payments", "checks": [check()]})
    assert fired.status_code == 202, fired.text
    with context.db.read() as session:
        [incident_id] = session.scalars(select(Alert.incident_id)).all()
    assert incident_id is not None
    acked = api.post(path, json={"team": "payments", "checks": [check(state="acked")]})
    assert acked.status_code == 202, acked.text
    assert acked.json()["alerts"][0]["outcome"] == "acknowledged"
    with context.db.read() as session:
        actions = [
            entry.action
            for entry in session.scalars(
                select(TimelineEntry).where(TimelineEntry.incident_id == incident_id)
            )
        ]
    assert any("acknowledged at its source (webhook tools)" in action for action in actions), actions
