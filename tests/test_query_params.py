"""A query parameter of one value given twice is refused on every route, rather than the last one kept."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient


def _takes_many(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "array" or any(_takes_many(option) for option in schema.get("anyOf", []))


def test_every_route_refuses_a_single_value_parameter_given_twice(
    api: TestClient, viewer: dict[str, str]
) -> None:
    checked = 0
    for route_path, operations in api.get("/openapi.json").json()["paths"].items():
        operation = operations.get("get")
        if operation is None:
            continue
        path = re.sub(r"\{[^}]+\}", "1", route_path)
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query" or _takes_many(parameter["schema"]):
                continue
            name = parameter["name"]
            twice = api.get(path, params=[(name, "1"), (name, "2")], headers=viewer)
            assert twice.status_code == 422, (route_path, name, twice.text)
            error = twice.json()["error"]
            assert error["message"] == f"{name} was given 2 times; it takes one value", (route_path, error)
            assert error["details"] == [{"field": name, "message": error["message"], "given": ["1", "2"]}]
            checked += 1
    assert checked >= 20, checked  # the lists' limit, offset, since, service… on many routes


def test_parameters_of_many_values_still_repeat(
    api: TestClient, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    for severity, service in [("P1", "api"), ("P2", "search"), ("P3", "api")]:
        body = {"title": f"{service} slow", "severity": severity, "services": [service]}
        assert api.post("/api/v1/incidents", json=body, headers=responder).status_code == 201
    listing = api.get("/api/v1/incidents", params=[("severity", "P1"), ("severity", "P2")], headers=viewer)
    assert listing.status_code == 200, listing.text
    assert sorted(i["severity"] for i in listing.json()["items"]) == ["P1", "P2"]
    limit_twice = api.get("/api/v1/incidents", params=[("limit", "1"), ("limit", "1")], headers=viewer)
    assert limit_twice.status_code == 422  # the same value twice is still two values of one parameter
    once = api.get("/api/v1/incidents", params={"limit": "1", "service": "api"}, headers=viewer)
    assert once.status_code == 200 and len(once.json()["items"]) == 1


def test_alert_filters_naming_nothing_or_too_many_are_a_422_naming_the_filter(
    api: TestClient, viewer: dict[str, str]
) -> None:
    """A thousand label filters passed SQLite's expression depth and were answered 503 "database unavailable"
    (clients retry that for ever); an unknown integration was a 404, other filters a 422. An incident that
    does not exist is a 404, as in every list's incident filter (``test_api2_lists``)."""
    many = api.get(
        "/api/v1/alerts", params=[("label", f"a{number}=b") for number in range(1000)], headers=viewer
    )
    assert many.status_code == 422, many.text
    assert [d["field"] for d in many.json()["error"]["details"]] == ["label"]
    fifty = api.get(
        "/api/v1/alerts", params=[("label", f"a{number}=b") for number in range(50)], headers=viewer
    )
    assert fifty.status_code == 200, fifty.text
    unknown = api.get("/api/v1/alerts", params={"integration": "nosuch"}, headers=viewer)
    assert unknown.status_code == 422, unknown.text
    assert [d["field"] for d in unknown.json()["error"]["details"]] == ["integration"]


def test_a_refusal_says_the_validators_own_words(api: TestClient, viewer: dict[str, str]) -> None:
    """Pydantic put "Value error, " before a validator's message: "since: Value error, '09:00' is a time…"."""
    refused = api.get("/api/v1/alerts", params={"since": "09:00"}, headers=viewer)
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert message.startswith("since: '09:00' is a time of day without"), message
    # With its seconds too: pydantic read 18:00:30 as a duration of 18 hours, a period no one meant by it.
    seconds = api.get("/api/v1/alerts", params={"until": "18:00:30"}, headers=viewer)
    assert seconds.status_code == 422, seconds.text
    assert seconds.json()["error"]["message"].startswith("until: '18:00:30' is a time of day without")


def test_every_api_read_refuses_a_parameter_it_does_not_take(api: TestClient, viewer: dict[str, str]) -> None:
    # FastAPI ignores an unknown parameter: ``?stauts=firing`` (a typo) answered every alert, unfiltered.
    checked = 0
    for route_path, operations in api.get("/openapi.json").json()["paths"].items():
        operation = operations.get("get")
        if operation is None or not operation.get("security"):
            continue
        path = re.sub(r"\{[^}]+\}", "1", route_path)
        taken = [
            parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "query"
        ]
        answer = api.get(path, params={"stauts": "firing"}, headers=viewer)
        assert answer.status_code == 422, (route_path, answer.text)
        error = answer.json()["error"]
        assert error["message"] == (
            f"unknown query parameter 'stauts'; {route_path} takes: {', '.join(taken) or 'none'}"
        ), route_path
        assert error["details"] == [{"field": "stauts", "message": error["message"], "allowed": taken}]
        checked += 1
    assert checked >= 25, checked


def test_known_parameters_and_public_routes_are_unchanged(api: TestClient, viewer: dict[str, str]) -> None:
    assert (
        api.get("/api/v1/alerts", params={"status": "firing", "limit": "5"}, headers=viewer).status_code
        == 200
    )
    # Public routes: a probe or a mail client's tracking tag is not refused.
    assert api.get("/healthz", params={"utm_source": "mail"}).status_code == 200
    assert api.get("/metrics", params={"x": "1"}).status_code == 200
    # An unknown parameter is refused before the token is checked: either way nothing is answered.
    assert api.get("/api/v1/alerts", params={"stauts": "firing"}).status_code in (401, 422)
