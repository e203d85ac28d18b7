"""Integers beyond 64 bits in a payload (a 30-digit order id) are kept exact in the raw payload kept as
evidence: orjson, the intake's parser, reads them as floats."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.conftest import bearer
from warroom.alerts import adapters

ORDER = 123456789012345678901234567890


def test_a_long_integer_is_kept_exact_in_the_raw_payload(
    api: TestClient, generic_key: str, pd_key: str, tokens: dict[str, str]
) -> None:
    # The standard library writes the integer as it is (orjson could not).
    body = json.dumps(
        {"summary": "order stuck", "dedup_key": "o1", "details": {"order": ORDER, "ids": [1, -ORDER]}}
    )
    first = api.post(
        f"/api/v1/alerts?key={generic_key}", content=body, headers={"content-type": "application/json"}
    )
    assert first.status_code == 202, first.text
    alert_id = first.json()["alerts"][0]["id"]
    shown = api.get(f"/api/v1/alerts/{alert_id}", headers=bearer(tokens["viewer"])).json()
    assert shown["raw"]["details"] == {"order": ORDER, "ids": [1, -ORDER]}

    # The same delivery again is the same alert (its content hash is stable), seen once more.
    again = api.post(
        f"/api/v1/alerts?key={generic_key}", content=body, headers={"content-type": "application/json"}
    )
    assert again.json()["alerts"][0]["id"] == alert_id

    # PagerDuty's shape, whose custom_details are kept too.
    event = json.dumps(
        {
            "routing_key": pd_key,
            "event_action": "trigger",
            "dedup_key": "o2",
            "payload": {
                "summary": "stuck",
                "source": "shop",
                "severity": "error",
                "custom_details": {"order": ORDER},
            },
        }
    )
    answer = api.post("/v2/enqueue", content=event, headers={"content-type": "application/json"})
    assert answer.status_code == 202, answer.text
    listed = api.get("/api/v1/alerts", params={"search": "o2"}, headers=bearer(tokens["viewer"])).json()
    [pagerduty] = [a for a in listed["items"] if a["dedup_key"] == "o2"]
    detail = api.get(f"/api/v1/alerts/{pagerduty['id']}", headers=bearer(tokens["viewer"])).json()
    assert detail["raw"]["payload"]["custom_details"]["order"] == ORDER


def test_numbers_that_only_look_long_are_read_as_before() -> None:
    # Twenty digits inside a string, and a float with many digits, change nothing.
    assert adapters.parse_json(b'{"a": "x:12345678901234567890", "b": 1.2345678901234567890}') == {
        "a": "x:12345678901234567890",
        "b": 1.2345678901234567,
    }
    assert adapters.parse_json(b"[18446744073709551615]") == [18446744073709551615]  # u64, as orjson reads it
    hashed = adapters.content_hash({"order": ORDER})
    assert hashed == adapters.content_hash({"order": ORDER}) and hashed != adapters.content_hash({"order": 1})
