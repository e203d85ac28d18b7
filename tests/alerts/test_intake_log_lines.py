"""A sender's group key reaches the server's log (a notification that left alerts out is logged with it) as
one line: its control characters cannot forge a line or send terminal escapes (``warroom.loglines``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key, payload
from warroom.context import AppContext

FORGED = "g\x1b]0;PWN\x07\r\nINFO:     forged line"
FORGED_SHOWN = "g\\x1b]0;PWN\\x07\\r\\nINFO:     forged line"


@pytest.mark.parametrize(
    ("kind", "example"),
    [("alertmanager", "alertmanager-0.25-firing.json"), ("grafana", "grafana-docs-example.json")],
)
def test_a_group_key_is_logged_on_one_line(
    api: TestClient, context: AppContext, served_log: Callable[[], str], kind: str, example: str
) -> None:
    key = make_key(context, kind)
    delivery = payload(example)
    delivery["groupKey"] = FORGED
    delivery["truncatedAlerts"] = 3
    answer = api.post(f"/api/v1/alerts/{kind}?key={key}", json=delivery)
    assert answer.status_code == 202, answer.text
    assert answer.json()["truncated_alerts"] == 3
    lines = served_log().splitlines()
    [warning] = [line for line in lines if " delivery of group " in line]
    assert warning.startswith(f"WARNING:     warroom.alerts: {kind} delivery of group {FORGED_SHOWN}: ")
    assert "the sender left 3 alert(s) of this group out" in warning
    assert not any(line.startswith("INFO:     forged") for line in lines)
    assert not any("\x1b" in line or "\x07" in line or "\r" in line for line in lines)
