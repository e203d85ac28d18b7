"""A customer's ``affected_feature`` as the ``feature`` label and the alert's service. A feature naming a
service matched it only exactly (``API`` did not route as ``api``), and each spelling of a feature opened its
own incident (``Checkout``, ``CHECKOUT``, ``checkout.`` beside ``checkout``)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.models import Alert
from warroom.context import AppContext
from warroom.orgconfig import OrgConfig, parse_org_config

# The README's example (Reports from people): other spellings and languages of one feature, mapped to it.
SPELLINGS = """
automation:
  enrich:
    - name: checkout-spellings
      match:
        source: [customer-report]
        labels_regex: {feature: "kasse|caisse|check out|basket"}
      labels: {feature: checkout}
"""


@pytest.fixture
def org() -> OrgConfig:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["reports"]["rate_limit"] = 100
    data["automation"]["enrich"] = yaml.safe_load(SPELLINGS)["automation"]["enrich"]
    return parse_org_config(yaml.safe_dump(data))


def report(api: TestClient, feature: str) -> None:
    body = {"contact": "ann@example.com", "description": "it fails", "affected_feature": feature}
    answer = api.post("/api/v1/reports", json=body)
    assert answer.status_code == 202, answer.text


def alerts(context: AppContext) -> list[tuple[str, str | None, int | None]]:
    with context.db.read() as session:
        return [
            (alert.labels["feature"], alert.service, alert.incident_id)
            for alert in session.scalars(select(Alert).order_by(Alert.id))
        ]


def test_a_feature_naming_a_service_in_any_case_is_that_service(api: TestClient, context: AppContext) -> None:
    for feature in ["api", "API", " Api ", "api."]:
        report(api, feature)
    found = alerts(context)
    # The org's own spelling, as service and label; the service's alerts group as one.
    assert [(label, service) for label, service, _ in found] == [("api", "api")] * 4
    assert len({incident for _, _, incident in found}) == 1 and found[0][2] is not None


def test_spellings_of_one_feature_share_its_incident(api: TestClient, context: AppContext) -> None:
    for feature in ["checkout", "Checkout", "CHECKOUT", "checkout.", "Checkout !", "check\tout", "Kasse"]:
        report(api, feature)
    report(api, "search results")  # a feature of its own
    report(api, "Search   Results?")
    found = alerts(context)
    assert [label for label, _, _ in found] == [
        *["checkout"]
        * 6,  # "check out" (a space, once the tab is one) and "kasse" mapped by the enrich entry
        "checkout",
        "search results",
        "search results",
    ]
    assert all(service is None for _, service, _ in found)
    incidents = [incident for _, _, incident in found]
    assert len(set(incidents[:7])) == 1 and len(set(incidents[7:])) == 1 and incidents[0] != incidents[7]


def test_punctuation_alone_is_kept(api: TestClient, context: AppContext) -> None:
    report(api, "?!")
    assert alerts(context)[0][0] == "?!"
