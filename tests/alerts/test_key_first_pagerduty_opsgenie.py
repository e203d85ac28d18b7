"""The key comes first on the PagerDuty-shaped routes (events v2 and v1, change events) and on Opsgenie's:
a caller whose key cannot deliver gets 401 or 403 before its event is validated, so its answer never says
what the body should hold. PagerDuty's key is in the body: a body that cannot be read, or has no key, is
answered 400 naming only the key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from warroom.alerts import adapters, changes
from warroom.context import AppContext

JSON = {"Content-Type": "application/json"}
PAGERDUTY = {"/v2/enqueue": "routing_key", "/generic/2010-04-15/create_event.json": "service_key"}
PD_ROUTES = {**PAGERDUTY, "/v2/change/enqueue": "routing_key"}


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each call of the events' readers (which validate a body against its shape)."""
    calls: list[str] = []

    def spy(module: Any, name: str) -> None:
        real = getattr(module, name)

        def recording(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, recording)

    for name in (
        "from_pagerduty",
        "from_pagerduty_v1",
        "from_opsgenie",
        "opsgenie_change",
        "opsgenie_action",
    ):
        spy(adapters, name)
    spy(changes, "validate_payload")
    return calls


def _valid(path: str, field: str, key: str) -> dict[str, Any]:
    if path == "/v2/change/enqueue":
        return {field: key, "payload": {"summary": "Deployed api " + "x" * 900, "source": "ci"}}
    if field == "service_key":
        return {
            field: key,
            "event_type": "trigger",
            "description": "disk full",
            "details": {"x": "y" * 50_000},
        }
    return {
        field: key,
        "event_action": "trigger",
        "payload": {
            "summary": "disk full",
            "source": "db-1",
            "severity": "error",
            "custom_details": {"x": "y" * 50_000},
        },
    }


@pytest.mark.parametrize("path", list(PD_ROUTES))
def test_pagerduty_shaped_routes_check_the_key_before_the_event(
    api: TestClient, context: AppContext, validated: list[str], path: str
) -> None:
    field = PD_ROUTES[path]
    other = make_key(context, "generic", "other-kind")
    for key, expected in (("0" * 32, 401), (" ", 401), (other, 403)):
        valid = api.post(path, json=_valid(path, field, key))
        assert valid.status_code == expected, (key, valid.text)
        assert set(valid.json()) == {"status", "message", "errors"}
        # An event missing what it needs: the key's refusal, not a list of the fields at fault.
        for invalid in (
            {field: key},
            {field: key, "event_action": "explode", "payload": 3},
            {field: key, "x": 1},
        ):
            refused = api.post(path, json=invalid)
            assert refused.status_code == expected, (key, invalid, refused.text)
            assert refused.json()["status"] in ("unauthorized", "forbidden"), refused.text
    assert validated == []


@pytest.mark.parametrize("path", list(PD_ROUTES))
def test_pagerduty_shaped_body_without_a_key_names_only_the_key(
    api: TestClient, context: AppContext, validated: list[str], path: str
) -> None:
    field = PD_ROUTES[path]
    for body in ({}, {field: ""}, {field: None, "event_action": "explode"}, {"payload": {"summary": ""}}):
        refused = api.post(path, json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["errors"] == [f"'{field}' is missing or blank"], refused.text
    not_a_string = api.post(path, json={field: 5, "payload": 1})
    assert not_a_string.status_code == 400
    assert not_a_string.json()["errors"] == [f"{field}: Input should be a valid string"]
    # A body that cannot be read at all is 400 as PagerDuty answers it (the key cannot be found).
    for raw in (b"nope", b"[1, 2]", b'"x"'):
        garbage = api.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert garbage.status_code == 400 and garbage.json()["status"] == "Unrecognized object", garbage.text
    assert validated == []


def test_a_good_pagerduty_key_still_gets_the_events_refusal(api: TestClient, context: AppContext) -> None:
    key = make_key(context, "pagerduty", "pd")
    bad = api.post(
        "/v2/enqueue", json={"routing_key": key, "event_action": "trigger", "payload": {"summary": "s"}}
    )
    assert bad.status_code == 400 and "'payload.source' is missing or blank" in bad.json()["errors"], bad.text
    change = api.post("/v2/change/enqueue", json={"routing_key": key, "payload": {"summary": ""}})
    assert change.status_code == 400 and "'payload.summary' is missing or blank" in change.json()["errors"]


GENIE = "/v2/alerts"


def _opsgenie_requests() -> list[tuple[str, str, Any]]:
    """(method, path, an invalid JSON body) of each Opsgenie route that reads a body."""
    base = "/v2/alerts/disk%2F1"
    return [
        ("POST", GENIE, {"message": ""}),
        ("POST", f"{base}/close?identifierType=alias", {"note": 5}),
        ("POST", f"{base}/acknowledge?identifierType=alias", [1]),
        ("POST", f"{base}/notes?identifierType=alias", {}),
        ("POST", f"{base}/snooze?identifierType=alias", {"endTime": "soon"}),
        ("POST", f"{base}/tags?identifierType=alias", {"tags": "x"}),
        ("POST", f"{base}/details?identifierType=alias", {"details": {"n": 3}}),
        ("PUT", f"{base}/message?identifierType=alias", {}),
        ("PUT", f"{base}/description?identifierType=alias", {"description": 5}),
        ("PUT", f"{base}/priority?identifierType=alias", {"priority": "P9"}),
        ("DELETE", f"{base}/tags?identifierType=alias&tags=", None),
    ]


def _genie_keys(context: AppContext) -> list[tuple[dict[str, str], int]]:
    other = make_key(context, "pagerduty", "other-kind")
    return [
        ({}, 401),
        ({"Authorization": "GenieKey " + "0" * 32}, 401),
        ({"Authorization": "Bearer " + "0" * 32}, 401),
        ({"Authorization": f"GenieKey {other}"}, 403),
    ]


def test_opsgenie_routes_check_the_key_before_the_body(
    api: TestClient, context: AppContext, validated: list[str]
) -> None:
    requests = _opsgenie_requests()
    for headers, expected in _genie_keys(context):
        # A valid (large) create request, and an invalid request on each route.
        valid = {
            "message": "disk full",
            "alias": "disk/1",
            "description": "d" * 14_000,
            "details": {"a": "b"},
        }
        created = api.post(GENIE, json=valid, headers=headers)
        assert created.status_code == expected, (headers, created.text)
        for method, path, body in requests:
            refused = api.request(method, path, json=body, headers=headers)
            assert refused.status_code == expected, (headers, method, path, refused.text)
            assert "errors" not in refused.json(), refused.text
        junk = api.post(GENIE, content=b"{", headers={"Content-Type": "application/json", **headers})
        assert junk.status_code == expected, junk.text
    assert validated == []


def test_a_good_genie_key_still_gets_the_bodys_refusal(api: TestClient, context: AppContext) -> None:
    headers = {"Authorization": f"GenieKey {make_key(context, 'opsgenie', 'am')}"}
    refused = api.post(GENIE, json={"message": ""}, headers=headers)
    assert refused.status_code == 422 and "message" in refused.json()["errors"], refused.text
    update = api.put("/v2/alerts/a/message?identifierType=alias", json={}, headers=headers)
    assert update.status_code == 422 and "message" in update.json()["errors"], update.text


def _with_text(path: str, field: str, key: str, text: str) -> str:
    """A valid body with ``text`` in a detail, as JSON with its NUL or lone surrogate escaped."""
    body = _valid(path, field, key)
    if field == "service_key":
        body["details"] = {"x": text}
    else:
        body["payload"]["custom_details"] = {"x": text}
    return json.dumps(body)


@pytest.mark.parametrize("path", list(PD_ROUTES))
def test_a_lone_surrogate_or_a_nul_in_a_pagerduty_shaped_body_is_answered_after_the_key(
    api: TestClient, context: AppContext, path: str
) -> None:
    """The request guard refused a lone surrogate (and, on change events, a NUL) naming its field before
    the handler read the key in the body: a caller with an unknown key got 400 about its body, not 401. The
    routes now refuse either once the key is checked, naming the field in PagerDuty's shape."""
    field = PD_ROUTES[path]
    other = make_key(context, "generic", "other-kind")
    for key, expected in (("0" * 32, 401), (other, 403)):
        for text in ("x\ud800", "a\x00b"):
            refused = api.post(path, headers=JSON, content=_with_text(path, field, key, text))
            assert refused.status_code == expected, (key, text, refused.text)
            assert refused.json()["status"] in ("unauthorized", "forbidden"), refused.text
    good = make_key(context, "pagerduty", "pd")
    named = "details.x" if field == "service_key" else "payload.custom_details.x"
    surrogate = api.post(path, headers=JSON, content=_with_text(path, field, good, "x\ud800"))
    assert surrogate.status_code == 400, surrogate.text
    assert surrogate.json()["status"] == "invalid event", surrogate.text
    assert surrogate.json()["errors"][0].startswith(f"{named}: text must not contain a lone UTF-16"), (
        surrogate.text
    )
    nul = api.post(path, headers=JSON, content=_with_text(path, field, good, "a\x00b"))
    if path == "/v2/change/enqueue":  # refused naming the field; the alert routes replace a NUL
        assert nul.status_code == 400, nul.text
        assert nul.json()["errors"][0].startswith(f"{named}: text must not contain NUL"), nul.text
    else:
        assert nul.status_code in (200, 202), nul.text
