"""A lone UTF-16 surrogate (a JSON escape such as ``"\\ud800"`` not in a pair) is text no database can store
(it is not UTF-8). Plain string fields refused it by their schema, but a free-form object (an assessment, a
timeline entry's system state, a change's details) took it and the write failed with a 500. The request guard
now refuses one in any key or string of a JSON body, naming the field; a whole pair (an escaped emoji) and an
escaped backslash before the letters are plain text."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.conftest import make_key
from warroom.alerts.models import Alert, ChangeEvent
from warroom.context import AppContext
from warroom.incidents.models import Incident, TimelineEntry
from warroom.jsonbody import surrogate_escape_in, surrogate_field

JSON = {"Content-Type": "application/json"}


def count(context: AppContext, table: type) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def refused_naming(response: object, field: str) -> None:
    assert getattr(response, "status_code", None) == 422, getattr(response, "text", response)
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "invalid"
    assert error["message"].startswith(f"{field}: text must not contain a lone UTF-16 surrogate"), error
    assert error["details"][0]["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"title": "t", "severity": "P3", "assessment": {"scope": "\\ud800"}}', "assessment.scope"),
        ('{"title": "t", "severity": "P3", "assessment": {"scope": "a\\uDC00b"}}', "assessment.scope"),
        ('{"title": "t", "severity": "P3", "assessment": {"sc\\udfffope": "x"}}', "assessment.sc\\udfffope"),
        ('{"title": "t", "severity": "P3", "services": ["search", "x\\ud83d"]}', "services.1"),
        ('{"title": "t\\ud800", "severity": "P3"}', "title"),
    ],
)
def test_creating_an_incident_with_a_lone_surrogate_is_refused_naming_the_field(
    api: TestClient, context: AppContext, admin: dict[str, str], body: str, field: str
) -> None:
    refused_naming(api.post("/api/v1/incidents", content=body, headers={**admin, **JSON}), field)
    assert count(context, Incident) == 0


def test_every_json_route_refuses_one_in_a_free_form_object(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    created = api.post("/api/v1/incidents", json={"title": "t", "severity": "P3"}, headers=admin)
    assert created.status_code == 201, created.text
    ref = created.json()["id"]
    entries = count(context, TimelineEntry)
    headers = {**admin, **JSON}

    timeline = api.post(
        f"/api/v1/incidents/{ref}/timeline",
        content='{"action": "a", "system_state": {"k": "\\ud800"}}',
        headers=headers,
    )
    refused_naming(timeline, "system_state.k")
    patched = api.patch(
        f"/api/v1/incidents/{ref}",
        content='{"assessment": {"scope": {"deep": ["\\ud800"]}}}',
        headers=headers,
    )
    refused_naming(patched, "assessment.scope.deep.0")
    change = api.post(
        "/api/v1/changes",
        content='{"summary": "ok", "service": "search", "details": {"a": "\\ud800"}}',
        headers=headers,
    )
    refused_naming(change, "details.a")

    assert count(context, TimelineEntry) == entries
    assert count(context, ChangeEvent) == 0
    assert api.get(f"/api/v1/incidents/{ref}", headers=admin).json()["assessment"] in (None, {})


def test_a_whole_pair_and_an_escaped_backslash_are_plain_text(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    body = '{"title": "t", "severity": "P3", "assessment": {"scope": "fire \\ud83d\\udd25 C:\\\\ud800"}}'
    created = api.post("/api/v1/incidents", content=body, headers={**admin, **JSON})
    assert created.status_code == 201, created.text
    ref = created.json()["id"]
    shown = api.get(f"/api/v1/incidents/{ref}", headers=admin).json()
    assert shown["assessment"]["scope"] == "fire \U0001f525 C:\\ud800"


def test_a_tools_webhook_refuses_one_naming_the_field_and_plain_intake_still_refuses_one(
    api: TestClient, context: AppContext
) -> None:
    key = make_key(context, "webhook")
    body = '{"monitor": {"id": 8, "name": "shop"}, "heartbeat": {"status": 0, "msg": "down \\ud800"}}'
    hook = api.post(f"/api/v1/alerts/webhook/uptime-kuma?key={key}", content=body, headers=JSON)
    assert hook.status_code == 400, hook.text
    assert hook.json()["error"]["message"].startswith("heartbeat.msg: text must not contain a lone UTF-16")
    generic = make_key(context, "generic")
    plain = api.post(f"/api/v1/alerts?key={generic}", content='{"summary": "s\\ud800"}', headers=JSON)
    assert plain.status_code == 400, plain.text
    assert count(context, Alert) == 0


def test_the_byte_hint_and_the_walk() -> None:
    assert not surrogate_escape_in(b'{"a": "\\u00e9 \\ud7ff \\u0dff plain"}')
    assert surrogate_escape_in(b'{"a": "\\uD800"}')
    assert surrogate_escape_in(b'{"a": "\\udfff"}')
    assert surrogate_field({"a": [{"b": "ok"}, {"c": "\ud800"}]}) == "a.1.c"
    assert surrogate_field({"a": "\U0001f525", "b": ["\u00e9"]}) is None
    assert surrogate_field("\udc00") == "body"


# JSON exchanged between systems is UTF-8 (RFC 8259 8.1). The API's parser (``json.loads`` of bytes) also
# decodes UTF-16 and UTF-32, whose ``\ud800`` and ``\u0000`` escapes the guard's byte searches cannot see: a
# lone surrogate reached the database (500) and a NUL was stored. The guard now refuses such a body.
UTF16_BODIES = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("encoding", UTF16_BODIES)
@pytest.mark.parametrize("escape", ["\\ud800", "\\u0000", "plain"])
def test_a_json_body_in_utf16_or_utf32_is_refused_as_not_utf8(
    api: TestClient, context: AppContext, admin: dict[str, str], encoding: str, escape: str
) -> None:
    body = '{"summary": "u16", "details": {"a": "x' + escape + '"}}'
    for headers in ({**admin, **JSON}, {**admin, "Content-Type": "application/json; charset=utf-16"}, admin):
        answer = api.post("/api/v1/changes", content=body.encode(encoding), headers=headers)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "bad_request"
        assert error["message"].startswith("the body is not valid UTF-8"), error
        assert error["message"].endswith("send JSON encoded as UTF-8 (UTF-16 and UTF-32 are not taken)")
        assert error["details"][0]["field"] == "body"
    assert count(context, ChangeEvent) == 0


def test_a_utf8_body_with_a_byte_order_mark_is_still_taken_as_the_intake_takes_it(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    body = '{"summary": "bom \\u00e9", "details": {"a": "\u00e9"}}'.encode("utf-8-sig")
    created = api.post("/api/v1/changes", content=body, headers={**admin, **JSON})
    assert created.status_code == 201, created.text
    assert count(context, ChangeEvent) == 1
    generic = make_key(context, "generic")
    alert = api.post(f"/api/v1/alerts?key={generic}", content=b'\xef\xbb\xbf{"summary": "s"}', headers=JSON)
    assert alert.status_code in (200, 201, 202), alert.text
