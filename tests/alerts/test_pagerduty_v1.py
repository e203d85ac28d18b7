"""PagerDuty's Events API v1 (``POST /generic/2010-04-15/create_event.json``): older tools, and Alertmanager's
``pagerduty_configs`` with a ``service_key``, work when pointed at Warroom."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.alerts.test_intake import alerts
from warroom.context import AppContext

V1 = "/generic/2010-04-15/create_event.json"


def trigger(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "service_key": key,
        "event_type": "trigger",
        "incident_key": "raid-nas1",
        "description": "RAID degraded on nas1",
        **fields,
    }


def test_trigger_acknowledge_resolve(api: TestClient, context: AppContext, pd_key: str) -> None:
    # As Alertmanager sends it: v2's fields empty or null beside v1's.
    fired = api.post(
        V1,
        json=trigger(
            pd_key,
            details={"firing": "Labels:\n - alertname = RaidDegraded\n", "num_firing": "1"},
            client="Alertmanager",
            client_url="http://am.example/#/alerts",
            contexts=[
                {"type": "link", "href": "https://runbooks.example/raid", "text": "runbook"},
                {"type": "image", "src": "https://graphs.example/raid.png", "alt": "rebuild progress"},
            ],
            event_action="",
            payload=None,
        ),
    )
    assert fired.status_code == 200, fired.text
    assert fired.json() == {"status": "success", "message": "Event processed", "incident_key": "raid-nas1"}
    [alert] = alerts(context)
    assert (alert.source, alert.status, alert.severity, alert.summary) == (
        "pagerduty",
        "firing",
        "error",
        "RAID degraded on nas1",
    )
    assert alert.dedup_key == "raid-nas1" and alert.labels["source"] == "Alertmanager"
    assert alert.annotations["custom_details"]["num_firing"] == "1"
    assert [link["href"] for link in alert.links] == [
        "https://runbooks.example/raid",
        "http://am.example/#/alerts",
        "https://graphs.example/raid.png",
    ]
    assert "service_key" not in alert.raw and alert.raw["description"] == "RAID degraded on nas1"
    # The same trigger again is an occurrence of the same alert.
    assert api.post(V1, json=trigger(pd_key)).status_code == 200
    assert len(alerts(context)) == 1
    acked = api.post(
        V1, json={"service_key": pd_key, "event_type": "acknowledge", "incident_key": "raid-nas1"}
    )
    assert acked.status_code == 200 and alerts(context)[0].status == "acknowledged"
    resolved = api.post(
        V1, json={"service_key": pd_key, "event_type": "resolve", "incident_key": "raid-nas1"}
    )
    assert resolved.json()["incident_key"] == "raid-nas1" and alerts(context)[0].status == "resolved"
    # No incident key on a trigger: one is made up and returned.
    made_up = api.post(
        V1, json={"service_key": pd_key, "event_type": "trigger", "description": "UPS on battery"}
    )
    assert made_up.status_code == 200 and len(made_up.json()["incident_key"]) == 32


def test_refusals_keep_pagerduty_shapes_and_store_nothing(
    api: TestClient, context: AppContext, pd_key: str, generic_key: str
) -> None:
    for body, status, errors in [
        (trigger(pd_key, description=None), 400, ["description: required for a trigger"]),
        (trigger(pd_key, description="   "), 400, ["description: required for a trigger"]),
        (trigger(pd_key, description="x" * 1025), 400, None),
        (trigger(pd_key, event_type="snooze"), 400, None),
        ({"service_key": pd_key, "event_type": "resolve"}, 400, ["incident_key: required for resolve"]),
        (trigger(pd_key, contexts=[{"type": "video"}]), 400, None),
        ({"event_type": "trigger", "description": "x"}, 400, None),  # no service key
        (trigger("0" * 32), 401, None),
        (trigger(generic_key), 403, None),  # a key of another kind of sender
    ]:
        refused = api.post(V1, json=body)
        assert refused.status_code == status, (body, refused.text)
        answer = refused.json()
        assert set(answer) == {"status", "message", "errors"} and answer["errors"], answer
        if errors is not None:
            assert answer["errors"] == errors
    garbage = api.post(V1, content=b"nope", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["status"] == "Unrecognized object"
    assert api.post(V1, json=[trigger(pd_key)]).status_code == 400
    assert alerts(context) == []
