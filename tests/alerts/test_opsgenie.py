"""Opsgenie's Alert API shape (``POST /v2/alerts``, close and acknowledge by alias): tools set up for Opsgenie
work when pointed at Warroom."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from tests.alerts.test_intake import alerts
from warroom.context import AppContext


@pytest.fixture
def genie_key(context: AppContext) -> dict[str, str]:
    return {"Authorization": f"GenieKey {make_key(context, 'opsgenie', 'opsgenie-shaped')}"}


def create(**fields: Any) -> dict[str, Any]:
    return {
        "message": "Disk almost full on db-1",
        "alias": "disk-db1",
        "description": "/var/lib/postgresql at 96%",
        "tags": ["disk", "prod"],
        "details": {"alertname": "DiskFull", "instance": "db-1"},
        "entity": "db-1",
        "priority": "P2",
        "responders": [{"type": "team", "name": "dba"}],
        **fields,
    }


def test_create_acknowledge_close_by_alias(
    api: TestClient, context: AppContext, genie_key: dict[str, str]
) -> None:
    created = api.post("/v2/alerts", json=create(), headers=genie_key)
    assert created.status_code == 202, created.text
    answer = created.json()
    assert answer["result"] == "Request will be processed" and len(answer["requestId"]) == 36
    [alert] = alerts(context)
    assert (alert.source, alert.status, alert.severity, alert.summary, alert.dedup_key) == (
        "opsgenie",
        "firing",
        "error",
        "Disk almost full on db-1",
        "disk-db1",
    )
    assert alert.alert_type == "DiskFull"
    assert alert.labels == {"alertname": "DiskFull", "instance": "db-1", "entity": "db-1"}
    assert alert.annotations["tags"] == ["disk", "prod"]
    assert alert.annotations["description"] == "/var/lib/postgresql at 96%"
    # The same alias again is another occurrence of the same alert, as in Opsgenie; the identical body again
    # is taken as a retry of the delivery and changes nothing.
    for body in (create(), create(description="/var/lib/postgresql at 97%")):
        assert api.post("/v2/alerts", json=body, headers=genie_key).status_code == 202
    assert [a.occurrences for a in alerts(context)] == [2]
    acked = api.post(
        "/v2/alerts/disk-db1/acknowledge?identifierType=alias", json={"user": "alice"}, headers=genie_key
    )
    assert acked.status_code == 202 and alerts(context)[0].status == "acknowledged"
    closed = api.post("/v2/alerts/disk-db1/close?identifierType=alias", headers=genie_key)
    assert closed.status_code == 202 and alerts(context)[0].status == "resolved"
    # No alias: each request is an alert of its own.
    for _ in range(2):
        api.post("/v2/alerts", json={"message": "Backup failed"}, headers=genie_key)
    assert [a.severity for a in alerts(context)[1:]] == ["warning", "warning"]  # P3, Opsgenie's default


def test_refusals_keep_opsgenie_shapes_and_store_nothing(
    api: TestClient, context: AppContext, genie_key: dict[str, str], generic_key: str
) -> None:
    for headers, status in [
        ({}, 401),
        ({"Authorization": genie_key["Authorization"].replace("GenieKey", "Bearer")}, 401),
        ({"Authorization": "GenieKey " + "0" * 32}, 401),
        ({"Authorization": f"GenieKey {generic_key}"}, 403),
    ]:
        refused = api.post("/v2/alerts", json=create(), headers=headers)
        assert refused.status_code == status, refused.text
        assert set(refused.json()) == {"message", "took", "requestId"}
    for body, field in [
        (create(message=""), "message"),
        (create(priority="P9"), "priority"),
        (create(details={"count": 3}), "details.count"),
        ([create()], "body"),
    ]:
        refused = api.post("/v2/alerts", json=body, headers=genie_key)
        assert refused.status_code == 422, refused.text
        assert field in refused.json()["errors"], refused.json()
    garbage = api.post("/v2/alerts", content=b"{", headers={**genie_key, "Content-Type": "application/json"})
    assert garbage.status_code == 422
    by_id = api.post("/v2/alerts/disk-db1/close", headers=genie_key)  # Opsgenie's default: by id
    assert by_id.status_code == 422 and "identifierType" in by_id.text
    assert (
        api.post("/v2/alerts/x/close?identifierType=alias", content=b"[1]", headers=genie_key).status_code
        == 422
    )
    assert alerts(context) == []
