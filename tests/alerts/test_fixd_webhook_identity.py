"""A tool's own webhook: a body that is not what the format reads (not an object, or none of the fields its
identity renders) is refused with a clear 400 and stores nothing, instead of opening an alert called after
the format with the dedup key ``gcp-``."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from tests.alerts.test_intake import alerts
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.adapters import InvalidPayload, from_webhook
from warroom.alerts.config import WebhookFormat
from warroom.context import AppContext
from warroom.orgconfig import OrgConfig, load_org_config

DATADOG = {
    "name": "datadog",
    "alert": "{{ payload.title }}",
    "dedup_key": "dd-{{ payload.id }}",
    "summary": "{{ payload.body }}",
}
# Items that are scalars: documented (item is the element), and kept.
HOSTS = {"name": "hosts", "each": "payload.hosts", "alert": "{{ item }} down", "summary": "{{ item }} down"}
# A fixed alert: its identity reads nothing of the payload, so any body is that one alert.
FIXED = {"name": "deploy-hook", "alert": "Deploy failed", "summary": "A deploy failed"}
MULTI = {
    "name": "multi",
    "each": "payload.checks",
    "alert": "{{ item.name }}",
    "dedup_key": "multi-{{ item.id }}",
    "summary": "{{ item.name }} is {{ item.status }}",
}


@pytest.fixture
def org() -> OrgConfig:
    base = load_org_config(EXAMPLE_CONFIG)
    formats = [
        *base.automation.webhook_formats,
        *(WebhookFormat(**f) for f in (DATADOG, HOSTS, FIXED, MULTI)),
    ]
    return base.model_copy(
        update={"automation": base.automation.model_copy(update={"webhook_formats": formats})}
    )


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("google-cloud", "{}", "body"),
        ("google-cloud", '{"incident": {}}', "body"),
        ("google-cloud", "42", "body"),
        ("google-cloud", "null", "body"),
        ("datadog", "[1, 2]", "body"),
        ("datadog", '"hi"', "body"),
        ("multi", '{"checks": [{"id": 1, "name": "a"}, {}]}', "[1]"),
    ],
)
def test_a_body_the_format_reads_nothing_of_is_refused(
    api: TestClient, context: AppContext, name: str, body: str, field: str
) -> None:
    key = make_key(context, "webhook", "tools")
    refused = api.post(f"/api/v1/alerts/webhook/{name}?key={key}", content=body)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_payload"
    assert name in error["message"]
    assert any(detail["field"] == field for detail in error["details"]), error
    assert alerts(context) == []


def test_what_the_formats_do_read_is_kept(api: TestClient, context: AppContext) -> None:
    key = make_key(context, "webhook", "tools")

    def post(name: str, body: Any) -> Any:
        answer = api.post(f"/api/v1/alerts/webhook/{name}?key={key}", json=body)
        assert answer.status_code == 202, answer.text
        return answer.json()

    assert post("hosts", {"hosts": ["db1", "db2"]})["accepted"] == 2
    assert post("deploy-hook", {})["accepted"] == 1
    assert post("datadog", {"id": 7})["accepted"] == 1  # a dedup key of its own is enough
    stored = {alert.dedup_key or alert.summary: alert for alert in alerts(context)}
    assert stored["dd-7"].raw == {"id": 7}  # the evidence is the body as sent


def test_the_check_reads_only_the_rendered_identity() -> None:
    google = load_org_config(EXAMPLE_CONFIG).automation.webhook_format("google-cloud")
    assert google is not None
    with pytest.raises(InvalidPayload, match="none of the fields"):
        from_webhook({"unrelated": 1}, google)
    [event] = from_webhook({"incident": {"incident_id": "0.abc"}}, google)
    assert event.dedup_key == "gcp-0.abc"
