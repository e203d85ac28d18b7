"""The OpenAPI document says what the server really does: who may call each operation, the error shapes it
answers with, and the bodies the intake routes take. Real answers are checked against the document's
schemas (a small validator for the JSON Schema this document uses)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key, payload
from warroom.context import AppContext

Schema = dict[str, Any]

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "number": (int, float),
    "integer": int,
}


def problems(document: Schema, schema: Schema, value: Any, at: str = "") -> list[str]:
    """Where ``value`` breaks ``schema`` (refs resolved in ``document``): empty when it conforms."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return problems(document, document["components"]["schemas"][name], value, at)
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema["oneOf"]
        if all(problems(document, option, value, at) for option in options):
            return [f"{at or 'body'}: matches none of {len(options)} options"]
        return []
    found: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else kinds
        if not any(
            isinstance(value, _TYPES[kind])
            and not (kind in ("integer", "number") and isinstance(value, bool))
            for kind in allowed
        ):
            return [f"{at or 'body'}: {type(value).__name__} is not {kinds}"]
    if "const" in schema and value != schema["const"]:
        found.append(f"{at}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            found.append(f"{at}: length {len(value)} out of bounds")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{at}: does not match {schema['pattern']}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (value < schema.get("minimum", value) or value > schema.get("maximum", value)):
        found.append(f"{at}: {value} out of bounds")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{at}: fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            found += problems(document, schema.get("items", {}), item, f"{at}[{index}]")
    if isinstance(value, dict):
        found += [f"{at}.{name}: missing" for name in schema.get("required", []) if name not in value]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                found += problems(document, properties[name], item, f"{at}.{name}")
            elif extra is False:
                found.append(f"{at}.{name}: not allowed")
            elif isinstance(extra, dict):
                found += problems(document, extra, item, f"{at}.{name}")
    return found


@pytest.fixture
def document(api: TestClient) -> Schema:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    spec: Schema = response.json()
    return spec


def operation(document: Schema, method: str, path: str) -> Schema:
    found: Schema = document["paths"][path][method]
    return found


def security(document: Schema, method: str, path: str) -> list[dict[str, list[str]]]:
    """The operation's requirements, or the document's default when it names none."""
    op = operation(document, method, path)
    found: list[dict[str, list[str]]] = op.get("security", document.get("security", []))
    return found


def response_schema(document: Schema, method: str, path: str, status: int) -> Schema:
    responses = operation(document, method, path)["responses"]
    assert str(status) in responses, f"{method} {path} does not document {status}: {sorted(responses)}"
    schema: Schema = responses[str(status)]["content"]["application/json"]["schema"]
    return schema


def body_schema(document: Schema, method: str, path: str) -> Schema:
    body = operation(document, method, path).get("requestBody")
    assert body is not None, f"{method} {path} has no request body"
    schema: Schema = body["content"]["application/json"]["schema"]
    return schema


def conforms(document: Schema, schema: Schema, value: Any) -> None:
    found = problems(document, schema, value)
    assert not found, (found, value)


def test_bearer_token_is_declared_and_required_where_a_token_is(document: Schema) -> None:
    schemes = document["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s["type"] == "http" and s["scheme"] == "bearer"]
    token = next(name for name in bearer if "API token" in schemes[name]["description"])
    for method, path in [
        ("get", "/api/v1/alerts"),
        ("post", "/api/v1/alerts/{ref}/acknowledge"),
        ("get", "/api/v1/incidents"),
        ("post", "/api/v1/integrations"),
        ("get", "/api/v1/config"),
    ]:
        assert security(document, method, path) == [{token: []}], (method, path)
    for method, path in [
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("post", "/api/v1/reports"),
        ("get", "/api/v1/ack/{token}"),
        ("post", "/api/v1/ack/{token}"),
        ("post", "/v2/enqueue"),  # routing_key in the body
        ("post", "/v2/change/enqueue"),
    ]:
        assert security(document, method, path) == [], (method, path)
    # Intake takes an integration key (?key= or Bearer), or Opsgenie's GenieKey: never an API token.
    key_ways = security(document, "post", "/api/v1/alerts")
    assert {"in": "query", "name": "key"}.items() <= schemes[next(iter(key_ways[0]))].items()
    assert all(token not in way for way in key_ways) and len(key_ways) == 2
    genie = security(document, "post", "/v2/alerts")
    assert schemes[next(iter(genie[0]))] | {"description": ""} == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "",
    }


def test_no_operation_documents_fastapis_validation_error(document: Schema) -> None:
    assert "HTTPValidationError" not in json.dumps(document)
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            invalid = op["responses"].get("422")
            if invalid is not None:
                assert invalid["content"]["application/json"]["schema"]["$ref"].endswith(
                    ("/Error", "/OpsgenieError")
                ), (method, path)
            assert "503" in op["responses"], (method, path)
            assert "Retry-After" in op["responses"]["503"]["headers"], (method, path)


def test_documented_errors_are_the_real_answers(
    api: TestClient, document: Schema, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    missing = api.get("/api/v1/alerts/999", headers=viewer)
    assert missing.status_code == 404
    conforms(document, response_schema(document, "get", "/api/v1/alerts/{ref}", 404), missing.json())
    invalid = api.get("/api/v1/alerts", params={"limit": 0}, headers=viewer)
    assert invalid.status_code == 422
    conforms(document, response_schema(document, "get", "/api/v1/alerts", 422), invalid.json())
    no_token = api.get("/api/v1/alerts")
    assert no_token.status_code == 401
    conforms(document, response_schema(document, "get", "/api/v1/alerts", 401), no_token.json())
    too_low = api.post("/api/v1/alerts/1/acknowledge", headers=viewer)
    assert too_low.status_code == 403
    conforms(
        document, response_schema(document, "post", "/api/v1/alerts/{ref}/acknowledge", 403), too_low.json()
    )
    for status in (404, 409):
        response_schema(document, "post", "/api/v1/alerts/{ref}/acknowledge", status)
    for status in (400, 413, 415):
        response_schema(document, "post", "/api/v1/alerts", status)
    # The error schema is not so loose that anything passes.
    assert problems(document, response_schema(document, "get", "/api/v1/alerts", 422), {"detail": []})

    # PagerDuty- and Opsgenie-shaped routes answer, and document, their own shapes.
    pagerduty = api.post("/v2/enqueue", json={"event_action": "trigger"})
    assert pagerduty.status_code == 400
    pd_schema = response_schema(document, "post", "/v2/enqueue", 400)
    conforms(document, pd_schema, pagerduty.json())
    assert problems(document, pd_schema, missing.json())
    opsgenie = api.post("/v2/alerts", json={"message": "disk full"})
    assert opsgenie.status_code == 401
    conforms(document, response_schema(document, "post", "/v2/alerts", 401), opsgenie.json())


def test_intake_routes_document_their_bodies(api: TestClient, document: Schema, context: AppContext) -> None:
    for method, path in [
        ("post", "/api/v1/alerts"),
        ("post", "/api/v1/alerts/alertmanager"),
        ("post", "/api/v1/alerts/grafana"),
        ("put", "/api/v1/alerts/grafana"),
        ("post", "/api/v1/alerts/webhook/{format_name}"),
        ("post", "/api/v1/alerts/preview"),
        ("post", "/v2/enqueue"),
        ("post", "/generic/2010-04-15/create_event.json"),
        ("post", "/v2/alerts"),
        ("post", "/v2/alerts/{identifier}/{action}"),
        ("put", "/v2/alerts/{identifier}/{update}"),
        ("post", "/v2/alerts/{identifier}/notes"),
        ("post", "/v2/change/enqueue"),
    ]:
        body_schema(document, method, path)

    generic = body_schema(document, "post", "/api/v1/alerts")
    alert = {"summary": "disk full on db-1", "severity": "critical", "labels": {"host": "db-1"}}
    conforms(document, generic, alert)
    conforms(document, generic, [alert, {**alert, "summary": "disk full on db-2"}])
    assert problems(document, generic, {"severity": "critical"})  # no summary
    assert problems(document, generic, {**alert, "colour": "red"})  # a field it refuses
    assert problems(document, generic, [])
    accepted = api.post("/api/v1/alerts", params={"key": make_key(context, "generic")}, json=alert)
    assert accepted.status_code == 202, accepted.text
    conforms(document, response_schema(document, "post", "/api/v1/alerts", 202), accepted.json())

    webhook = payload("alertmanager-0.25-firing.json")
    conforms(document, body_schema(document, "post", "/api/v1/alerts/alertmanager"), webhook)
    pagerduty = payload("pdpyras-5.4.1-trigger-request.json")["body"]  # as pdpyras sent it
    conforms(document, body_schema(document, "post", "/v2/enqueue"), pagerduty)


def test_ingest_result_documents_a_truncated_delivery(
    api: TestClient, document: Schema, context: AppContext
) -> None:
    properties = document["components"]["schemas"]["IngestResult"]["properties"]
    assert {"truncated_alerts", "warning"} <= properties.keys()
    truncated = {**payload("alertmanager-0.25-firing.json"), "truncatedAlerts": 3}
    answer = api.post(
        "/api/v1/alerts/alertmanager", params={"key": make_key(context, "alertmanager")}, json=truncated
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["truncated_alerts"] == 3
    conforms(document, response_schema(document, "post", "/api/v1/alerts/alertmanager", 202), answer.json())


def test_durations_are_written_as_the_server_reads_them(document: Schema) -> None:
    assert '"format": "duration"' not in json.dumps(document)
    snooze = document["components"]["schemas"]["SnoozeRequest"]["properties"]["duration"]
    for written in ("2h", "90s", "1h30m", "PT2H"):
        conforms(document, snooze, written)
    since = next(
        p for p in operation(document, "get", "/api/v1/alerts")["parameters"] if p["name"] == "since"
    )
    conforms(document, since["schema"], "2h")
    for name, field in [("MaintenanceCreate", "duration"), ("MaintenanceExtend", "by")]:
        conforms(document, document["components"]["schemas"][name]["properties"][field], "2h")


def test_metrics_are_in_the_document(document: Schema) -> None:
    metrics = operation(document, "get", "/metrics")
    assert "text/plain" in metrics["responses"]["200"]["content"]


def test_the_document_is_valid_openapi(document: Schema) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)
