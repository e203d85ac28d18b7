"""Every error in Warroom's own shape has ``details`` in one shape: null, or a list of entries, each an
object with a ``message`` and, when it is about one field, the ``field`` (and ``allowed`` a list). It was an
object in some refusals (a service's, a 405's) and a list in others, and a dry run of a PagerDuty body listed
bare strings. PagerDuty's and Opsgenie's routes keep their own shapes."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from tests.test_openapi_contract import problems
from warroom.context import AppContext
from warroom.errors import InvalidInput, NotFound, error_details, field_at_fault


def assert_one_shape(document: dict[str, Any], response: httpx.Response, status: int) -> list[dict[str, Any]]:
    """The answer is ``status`` in Warroom's error shape, as the document's ``Error`` schema says, with a list
    of details; returns it."""
    assert response.status_code == status, response.text
    found = problems(document, {"$ref": "#/components/schemas/Error"}, response.json())
    assert not found, (found, response.text)
    details = response.json()["error"]["details"]
    assert isinstance(details, list) and details, response.text
    for entry in details:
        assert isinstance(entry, dict) and isinstance(entry["message"], str), response.text
        assert isinstance(entry.get("field", ""), str), response.text
        assert isinstance(entry.get("allowed", []), list), response.text
    return details


def test_refusals_give_details_as_a_list_of_entries(
    api: TestClient, context: AppContext, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    document = api.get("/openapi.json").json()
    # A service's refusal of one field (it gave {"field": ..., "allowed": [...]}).
    severity = api.post(
        "/api/v1/incidents", json={"title": "Checkout failing", "severity": "P7"}, headers=admin
    )
    [entry] = assert_one_shape(document, severity, 422)
    assert entry["field"] == "severity" and entry["allowed"] == ["P0", "P1", "P2", "P3"]
    assert entry["message"] == severity.json()["error"]["message"]
    # A refusal about no one field: the names a schedule could be ({"allowed": [...]}).
    schedule = api.get("/api/v1/oncall/nosuch/shifts", headers=viewer)
    [entry] = assert_one_shape(document, schedule, 404)
    assert "field" not in entry and entry["allowed"]
    # A conflict naming its field and the integration in the way.
    created = api.post("/api/v1/integrations", json={"name": "prom", "type": "generic"}, headers=admin)
    assert created.status_code == 201, created.text
    taken = api.post("/api/v1/integrations", json={"name": "prom", "type": "generic"}, headers=admin)
    [entry] = assert_one_shape(document, taken, 409)
    assert (entry["field"], entry["integration_id"]) == ("name", created.json()["id"])
    # The framework's own: a method the path does not take, a value not among those allowed (pydantic says
    # them as one string, "'a', 'b' or 'c'": a list here, as the services give them).
    [entry] = assert_one_shape(document, api.put("/api/v1/alerts", headers=admin), 405)
    assert entry["allowed"] == ["GET", "HEAD", "POST"]
    state = api.get("/api/v1/alerts", params={"status": "sleeping"}, headers=viewer)
    [entry] = assert_one_shape(document, state, 422)
    assert entry["field"] == "status" and entry["index"] == 0, entry
    assert entry["allowed"] == ["firing", "acknowledged", "resolved"], entry
    # A dry run of a PagerDuty body that is no object listed a bare string.
    preview = api.post("/api/v1/alerts/preview", params={"source": "pagerduty"}, json=[1], headers=viewer)
    [entry] = assert_one_shape(document, preview, 400)
    assert entry == {"message": "the body must be a JSON object"}


def test_a_signature_refusal_names_the_header_as_its_field(api: TestClient, context: AppContext) -> None:
    with context.db.write() as session:
        from warroom.auth import integrations
        from warroom.auth.models import IntegrationType

        key = integrations.create_integration(
            session, org=context.org, name="grafana-signed", type=IntegrationType.grafana, signing=True
        ).key
    document = api.get("/openapi.json").json()
    unsigned = api.post(f"/api/v1/alerts/grafana?key={key}", json={"alerts": []})
    [entry] = assert_one_shape(document, unsigned, 401)
    assert entry["field"] == "X-Grafana-Alerting-Signature", entry


def test_pagerduty_and_opsgenie_answers_keep_their_own_shapes(api: TestClient, context: AppContext) -> None:
    """Their ``errors`` are as before: PagerDuty's a list of strings, Opsgenie's an object by field."""
    not_an_object = api.post("/v2/enqueue", json=[1])
    assert not_an_object.status_code == 400
    assert not_an_object.json() == {
        "status": "Unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": ["the body must be a JSON object"],
    }
    compressed = api.post(
        "/v2/enqueue",
        content=gzip.compress(b"{}"),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert compressed.status_code == 415
    assert compressed.json()["errors"] == [
        "Content-Encoding 'gzip' is not supported: send the body uncompressed, without Content-Encoding"
    ]
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    assert (
        api.post("/v2/alerts", json={"message": "disk full", "alias": "disk"}, headers=genie).status_code
        == 202
    )
    past = api.post(
        "/v2/alerts/disk/snooze?identifierType=alias", json={"endTime": "2020-01-01T00:00:00Z"}, headers=genie
    )
    assert past.status_code == 422, past.text
    assert set(past.json()["errors"]) == {"endTime"}


def test_an_error_made_with_one_entry_or_a_list() -> None:
    one = InvalidInput("since must be between 1s and 366d", {"field": "since"})
    assert one.details == [{"field": "since", "message": "since must be between 1s and 366d"}]
    assert field_at_fault(one.details) == "since"
    about_none = NotFound("no schedule 'x'; known: a", {"allowed": ["a"]})
    assert about_none.details == [{"message": "no schedule 'x'; known: a", "allowed": ["a"]}]
    assert field_at_fault(about_none.details) is None
    assert InvalidInput("nothing to change", {"field": None}).details == [{"message": "nothing to change"}]
    listed = [{"field": "a", "message": "empty"}, {"field": "b", "message": "too long"}]
    assert InvalidInput("two fields", listed).details == listed
    assert InvalidInput("plain").details is None and error_details("plain", None) is None
