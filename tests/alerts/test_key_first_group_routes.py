"""The key comes first on the Alertmanager, Grafana and plain JSON routes: a caller whose key cannot deliver
is refused (401, 403) before its body is parsed, however large and valid the body is, and gets 401 or 403
for a malformed body too."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.conftest import make_key, payload
from tests.alerts.test_grafana_signing import SIGNATURE, grafana_sign, signing_integration
from warroom.alerts import adapters, fastpath
from warroom.auth import integrations
from warroom.auth.models import IntegrationKey
from warroom.context import AppContext

ROUTES = {
    "alertmanager": "/api/v1/alerts/alertmanager",
    "grafana": "/api/v1/alerts/grafana",
    "generic": "/api/v1/alerts",
}


def large_body(kind: str, alerts: int = 3000) -> bytes:
    """A valid delivery of over a megabyte (read in a worker thread when parsed); a plain JSON one just under
    its route's limit (max_body_bytes)."""
    if kind == "generic":
        alerts = 2500
        items = [
            {"summary": f"disk full {n}", "dedup_key": f"d-{n}", "labels": {"pad": "x" * 300}}
            for n in range(alerts)
        ]
        body = json.dumps(items).encode()
    else:
        firing = payload("alertmanager-0.25-firing.json")
        one = firing["alerts"][0]
        group = copy.deepcopy(firing)
        group["alerts"] = [
            {**copy.deepcopy(one), "fingerprint": f"{n:016x}", "labels": {**one["labels"], "n": str(n)}}
            for n in range(alerts)
        ]
        body = json.dumps(group).encode()
    assert len(body) > (512 if kind == "generic" else 1024) * 1024
    return body


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the intake parsed or read: each call of the JSON parser and of the events builders."""
    calls: list[str] = []

    def spy(name: str) -> None:
        real = getattr(adapters, name)

        def recording(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(adapters, name, recording)

    for name in ("parse_json", "from_alertmanager", "from_generic"):
        spy(name)
    return calls


def _bad_keys(context: AppContext, kind: str) -> list[tuple[str, dict[str, str], int]]:
    """(query, headers, expected status) for each key that cannot deliver to this route."""
    other = make_key(context, "heartbeat" if kind != "generic" else "alertmanager", "other-kind")
    return [
        ("", {}, 401),  # no key at all
        ("?key=" + "0" * 32, {}, 401),  # a key that names nothing
        ("", {"Authorization": "Bearer " + "1" * 32}, 401),
        (f"?key={other}", {}, 403),  # a key of another kind of integration
    ]


@pytest.mark.parametrize("kind", list(ROUTES))
def test_a_large_valid_body_without_a_good_key_is_not_parsed(
    api: TestClient, context: AppContext, parsed: list[str], kind: str
) -> None:
    body = large_body(kind)
    for query, headers, expected in _bad_keys(context, kind):
        response = api.post(
            ROUTES[kind] + query, content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == expected, (query, headers, response.text)
        assert parsed == [], (query, headers)


@pytest.mark.parametrize("kind", list(ROUTES))
@pytest.mark.parametrize(
    "body",
    [b"not json at all", b"[1, 2", b'{"alerts": "nope"}', b"[]", b'"a string"', b'{"summary": ""}', b"\xe9"],
)
def test_a_bad_body_with_a_bad_key_gets_the_keys_refusal(
    api: TestClient, context: AppContext, parsed: list[str], kind: str, body: bytes
) -> None:
    for query, headers, expected in _bad_keys(context, kind):
        response = api.post(
            ROUTES[kind] + query, content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == expected, (query, headers, response.text)
    assert parsed == []


def test_a_signed_integrations_delivery_with_a_wrong_signature_is_not_parsed(
    api: TestClient, context: AppContext, parsed: list[str]
) -> None:
    key, secret = signing_integration(context)
    body = large_body("grafana")
    for headers in ({}, {SIGNATURE: grafana_sign("not-the-secret-at-all", body)}):
        response = api.post(
            f"/api/v1/alerts/grafana?key={key}",
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
        assert response.status_code == 401, response.text
        assert parsed == []
    # Malformed and unsigned: the signature's refusal, not the body's.
    junk = api.post(
        f"/api/v1/alerts/grafana?key={key}", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert junk.status_code == 401, junk.text
    # Signed with the secret: read, and stored.
    good = payload("grafana-docs-example.json")
    raw = json.dumps(good).encode()
    accepted = api.post(
        f"/api/v1/alerts/grafana?key={key}",
        content=raw,
        headers={"Content-Type": "application/json", SIGNATURE: grafana_sign(secret, raw)},
    )
    assert accepted.status_code == 202, accepted.text
    assert "parse_json" in parsed


def test_a_good_keys_deliveries_cost_one_key_lookup_before_parsing(
    api: TestClient, context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before parsing asks the database once for a key, not on each delivery (the hot path); the
    writer still checks the key in each delivery's transaction."""
    key = make_key(context, "alertmanager")
    lookups: list[str] = []
    identify = fastpath.identify_caller

    def counting(*args: Any) -> Any:
        lookups.append("lookup")
        return identify(*args)

    monkeypatch.setattr(fastpath, "identify_caller", counting)
    firing = payload("alertmanager-0.25-firing.json")
    for _ in range(3):
        assert api.post(f"/api/v1/alerts/alertmanager?key={key}", json=firing).status_code == 202
    assert lookups == ["lookup"]


def test_a_key_revoked_after_it_was_known_is_refused_whatever_the_body(
    api: TestClient, context: AppContext
) -> None:
    key = make_key(context, "alertmanager", "revoked-soon")
    firing = payload("alertmanager-0.25-firing.json")
    assert api.post(f"/api/v1/alerts/alertmanager?key={key}", json=firing).status_code == 202
    with context.db.write() as session:
        found = session.scalar(select(IntegrationKey.id).where(IntegrationKey.name == "revoked-soon"))
        assert found is not None
        integrations.revoke_integration(session, org=context.org, integration_id=found)
    assert api.post(f"/api/v1/alerts/alertmanager?key={key}", json=firing).status_code == 401
    junk = api.post(
        f"/api/v1/alerts/alertmanager?key={key}", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert junk.status_code == 401, junk.text
