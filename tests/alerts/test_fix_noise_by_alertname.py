"""The noise report by type and the overview's loudest alert types group alerts by their name as the rules
read it: the alertname label, else the stored type. Mail alerts, tools' webhooks and plain JSON sharing one
type are told apart by their alertname (on SQLite and PostgreSQL alike)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from warroom.alerts.models import Alert
from warroom.context import AppContext


def test_alerts_are_grouped_by_alertname_else_type(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    def alert(dedup_key: str, name: str | None = None, **fields: Any) -> dict[str, Any]:
        labels = {"alertname": name} if name is not None else {}
        return {"summary": dedup_key, "type": "email", "dedup_key": dedup_key, "labels": labels, **fields}

    sent = api.post(
        f"/api/v1/alerts?key={generic_key}",
        json=[
            alert("backup-1", "BackupFailed"),
            alert("backup-2", "BackupFailed"),
            alert("backup-3", "BackupFailed"),
            alert("ups-1", "UpsOnBattery"),
            alert("ups-2", "UpsOnBattery"),
            alert("plain"),
        ],
    )
    assert sent.status_code == 202, sent.text
    with context.db.read() as session:
        assert set(session.scalars(select(Alert.alert_type))) == {"email"}  # one stored type

    noise = api.get("/api/v1/alerts/noise", headers=viewer)
    assert noise.status_code == 200, noise.text
    assert [(g["key"], g["alerts"]) for g in noise.json()["groups"]] == [
        ("BackupFailed", 3),
        ("UpsOnBattery", 2),
        ("email", 1),
    ]
    overview = api.get("/api/v1/alerts/overview", headers=viewer)
    assert overview.status_code == 200, overview.text
    assert overview.json()["loudest"] == [
        {"type": "BackupFailed", "alerts": 3, "occurrences": 3},
        {"type": "UpsOnBattery", "alerts": 2, "occurrences": 2},
        {"type": "email", "alerts": 1, "occurrences": 1},
    ]
