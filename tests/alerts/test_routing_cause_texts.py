"""What the timeline says when an alert an inhibitor muted joins that inhibitor's incident: why its service is
affected (a symptom, not a dependency), what state it was in while muted, and one acknowledgement entry."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.alerts.test_routing_cause_inhibitor import send, stored
from tests.alerts.test_source_ack import timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.orgconfig import OrgConfig, parse_org_config


@pytest.fixture
def org() -> OrgConfig:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["inhibit_rules"] = [
        {"name": "host-down", "source": {"type": ["HostDown"]}, "target": {"type": ["DiskFull"]}}
    ]
    data["automation"]["rules"].insert(
        0,
        {
            "name": "everything",
            "match": {"source": ["generic"]},
            "incident": {"title": "{{ alert.summary }}"},
        },
    )
    return parse_org_config(yaml.safe_dump(data))


def muted_disk(
    api: TestClient, key: str, responder: dict[str, str], *, status: str = "monitoring"
) -> tuple[str, str]:
    """HostDown on database opens INC-1, acknowledged (and moved to ``status``); DiskFull on cache (a service
    with no dependencies) is muted by it. (The host's ref, the disk's ref.)"""
    host = send(api, key, "HostDown", "database", "critical")
    assert host["incident"] == "INC-1"
    assert api.post("/api/v1/incidents/INC-1/ack", headers=responder).status_code == 200
    if status != "investigating":
        moved = api.patch("/api/v1/incidents/INC-1", json={"status": status}, headers=responder)
        assert moved.status_code == 200, moved.text
    disk = send(api, key, "DiskFull", "cache", "warning")
    assert disk["incident"] is None
    return f"ALR-{host['id']}", f"ALR-{disk['id']}"


def test_a_released_symptom_says_it_is_one_and_what_it_was_with_one_acknowledgement(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    host, disk = muted_disk(api, generic_key, responder)
    send(api, generic_key, "HostDown", "database", "critical", status="resolved")
    assert stored(context, int(disk.removeprefix("ALR-"))).incident_id == 1
    with context.db.read() as session:
        assert session.get_one(Incident, 1).service_names == ["database", "cache"]
    actions = [entry.action for entry in timeline(context, 1)]
    # a. cache depends on nothing: it is affected as the place a symptom of the host's outage shows.
    services = [action for action in actions if "cache" in action and action.startswith("Affected services")]
    assert len(services) == 1, actions
    assert f"alert {disk}: a symptom of {host}" in services[0], services
    assert "depends on" not in services[0]
    # b. It still fired when its inhibitor resolved; it was acknowledged on joining, a moment after.
    assert any(
        f"{disk} was inhibited by {host}" in action and action.endswith("it was still firing.")
        for action in actions
    ), actions
    # c. Nobody acknowledged it by hand: one entry, the joining's.
    acknowledged = [action for action in actions if f"Alert {disk} acknowledged" in action]
    assert len(acknowledged) == 1, acknowledged
    assert acknowledged[0].startswith(f"Alert {disk} acknowledged on joining INC-1"), acknowledged


def test_one_acknowledged_while_muted_keeps_its_own_acknowledgement(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    host, disk = muted_disk(api, generic_key, responder, status="investigating")
    acked = api.post(f"/api/v1/alerts/{disk}/acknowledge", headers=responder)
    assert acked.status_code == 200, acked.text
    send(api, generic_key, "HostDown", "database", "critical", status="resolved")
    actions = [entry.action for entry in timeline(context, 1)]
    assert any(
        f"{disk} was inhibited by {host}" in action and action.endswith("it was still acknowledged.")
        for action in actions
    ), actions
    acknowledged = [action for action in actions if f"Alert {disk} acknowledged" in action]
    assert len(acknowledged) == 1 and "acknowledged by hand" in acknowledged[0], acknowledged
