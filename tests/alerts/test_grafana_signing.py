"""Grafana's HMAC-signed webhook deliveries: integrations with a signing secret take only signed bodies."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.alerts.conftest import integration_rows, make_key, payload
from warroom.alerts import adapters
from warroom.alerts.intake import ingest_alone
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.auth import integrations
from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.auth.signing import SignedBody
from warroom.cli.main import app as cli_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.errors import Unauthorized

SIGNATURE = "X-Grafana-Alerting-Signature"
TIMESTAMP = "X-Grafana-Alerting-Signature-Timestamp"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

# The Grafana docs' example delivery (wire-formats.md section 3).
DELIVERY: dict[str, Any] = payload("grafana-docs-example.json")


def delivery(fingerprint: str = "c6eadffa33fcdf37") -> bytes:
    """A body as Grafana writes it: Go's json.Encoder, which ends it with a newline."""
    body = copy.deepcopy(DELIVERY)
    body["alerts"][0]["fingerprint"] = fingerprint
    return json.dumps(body).encode() + b"\n"


def grafana_sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """As grafana/alerting http/hmac.go signs: HMAC-SHA256 over [timestamp ":"] body, hex-encoded."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    if timestamp is not None:
        mac.update(timestamp.encode())
        mac.update(b":")
    mac.update(body)
    return mac.hexdigest()


def signing_integration(context: AppContext, secret: str | None = None) -> tuple[str, str]:
    with context.db.write() as session:
        created = integrations.create_integration(
            session,
            org=context.org,
            name="grafana-signed",
            type=IntegrationType.grafana,
            signing=True,
            signing_secret=secret,
        )
    assert created.signing_secret is not None
    return created.key, created.signing_secret


def count_alerts(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Alert)) or 0


def post(api: TestClient, key: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return api.post(
        f"/api/v1/alerts/grafana?key={key}",
        content=body,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


@pytest.fixture
def frozen() -> Iterator[datetime]:
    clock.set(NOW)
    yield NOW


def test_signed_delivery_is_accepted(api: TestClient, context: AppContext) -> None:
    key, secret = signing_integration(context)
    assert len(secret) == 64
    body = delivery()
    response = post(api, key, body, {SIGNATURE: grafana_sign(secret, body)})
    assert response.status_code == 202, response.text
    assert response.json()["alerts"][0]["outcome"] == "created"
    with context.db.read() as session:
        [alert] = session.scalars(select(Alert))
        assert alert.source == "grafana"
        assert alert.dedup_key == "c6eadffa33fcdf37"


def test_signed_delivery_with_timestamp_is_accepted(
    api: TestClient, context: AppContext, frozen: datetime
) -> None:
    key, secret = signing_integration(context, "a-secret-we-chose-ourselves")
    body = delivery()
    sent = str(int(frozen.timestamp()))
    headers = {SIGNATURE: grafana_sign(secret, body, sent), TIMESTAMP: sent}
    response = post(api, key, body, headers)
    assert response.status_code == 202, response.text
    # A retry four minutes later (Grafana re-signs, but an old signature is still in the window).
    clock.advance(timedelta(minutes=4, seconds=59))
    again = post(api, key, body, headers)
    assert again.status_code == 202, again.text
    assert again.json()["alerts"][0]["outcome"] == "unchanged"
    assert count_alerts(context) == 1


def _missing(secret: str, body: bytes, now: datetime) -> tuple[bytes, dict[str, str]]:
    return body, {}


def _wrong(secret: str, body: bytes, now: datetime) -> tuple[bytes, dict[str, str]]:
    return body, {SIGNATURE: grafana_sign("not-the-secret-at-all", body)}


def _tampered(secret: str, body: bytes, now: datetime) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"blue", b"red!"), {SIGNATURE: grafana_sign(secret, body)}


def _stale(secret: str, body: bytes, now: datetime) -> tuple[bytes, dict[str, str]]:
    sent = str(int(now.timestamp()) - 301)
    return body, {SIGNATURE: grafana_sign(secret, body, sent), TIMESTAMP: sent}


def _future(secret: str, body: bytes, now: datetime) -> tuple[bytes, dict[str, str]]:
    sent = str(int(now.timestamp()) + 301)
    return body, {SIGNATURE: grafana_sign(secret, body, sent), TIMESTAMP: sent}


def _timestamp_dropped(secret: str, body: bytes, now: datetime) -> tuple[bytes, dict[str, str]]:
    # Signed with a timestamp whose header did not arrive (e.g. Grafana names another timestamp header).
    return body, {SIGNATURE: grafana_sign(secret, body, str(int(now.timestamp())))}


def _timestamp_not_a_number(secret: str, body: bytes, now: datetime) -> tuple[bytes, dict[str, str]]:
    sent = now.isoformat()
    return body, {SIGNATURE: grafana_sign(secret, body, sent), TIMESTAMP: sent}


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_missing, f"the {SIGNATURE} header is missing"),
        (_wrong, "does not match the request body"),
        (_tampered, "does not match the request body"),
        (_stale, "more than 300 seconds from the server's clock"),
        (_future, "more than 300 seconds from the server's clock"),
        (_timestamp_dropped, "does not match the request body"),
        (_timestamp_not_a_number, "must be a Unix time in seconds"),
    ],
    ids=["missing", "wrong", "tampered", "stale", "future", "timestamp-dropped", "timestamp-not-a-number"],
)
def test_unsigned_or_badly_signed_delivery_gets_401_and_stores_nothing(
    api: TestClient, context: AppContext, frozen: datetime, make: Any, says: str
) -> None:
    key, secret = signing_integration(context)
    first = delivery("1111111111111111")
    assert post(api, key, first, {SIGNATURE: grafana_sign(secret, first)}).status_code == 202
    before = count_alerts(context)

    body, headers = make(secret, delivery("2222222222222222"), frozen)
    response = post(api, key, body, headers)
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert says in error["message"]
    assert count_alerts(context) == before == 1


def test_a_refused_delivery_does_not_mark_the_key_used(
    api: TestClient, context: AppContext, frozen: datetime
) -> None:
    """A delivery refused for its signature is not a use of the key: neither ``last_used_at`` nor the
    metric move (the shared intake transaction commits all the same), until a signed one is accepted."""

    def last_used() -> list[tuple[Any, ...]]:
        return integration_rows(context, IntegrationKey.last_used_at)

    def gauge() -> list[str]:
        metric = "warroom_integration_last_used_timestamp_seconds{"
        return [line for line in api.get("/metrics").text.splitlines() if line.startswith(metric)]

    key, secret = signing_integration(context)
    body = delivery()
    assert post(api, key, body).status_code == 401
    assert post(api, key, body, {SIGNATURE: grafana_sign("not-the-secret-at-all", body)}).status_code == 401
    assert last_used() == [(None,)]
    assert gauge() == []

    clock.advance(timedelta(minutes=2))
    assert post(api, key, body, {SIGNATURE: grafana_sign(secret, body)}).status_code == 202
    assert last_used() == [(NOW + timedelta(minutes=2),)]
    [line] = gauge()
    assert float(line.rsplit(" ", 1)[1]) == (NOW + timedelta(minutes=2)).timestamp()


def test_integration_without_secret_takes_unsigned_deliveries(api: TestClient, context: AppContext) -> None:
    key = make_key(context, "grafana")
    assert post(api, key, delivery("1111111111111111")).status_code == 202
    # A signature it has no secret for is not checked.
    signed = delivery("2222222222222222")
    response = post(api, key, signed, {SIGNATURE: "00" * 32, TIMESTAMP: "12"})
    assert response.status_code == 202, response.text
    assert count_alerts(context) == 2


def test_legacy_signature_header_name_is_accepted(api: TestClient, context: AppContext) -> None:
    key, secret = signing_integration(context)
    body = delivery()
    response = post(api, key, body, {"X-Grafana-Alert-Signature": grafana_sign(secret, body)})
    assert response.status_code == 202, response.text


def test_fastapi_route_checks_signatures_too(context: AppContext) -> None:
    """The documented route (used when the app is mounted without the intake fast path)."""
    app = create_app(context=context)
    app.intake = None
    key, secret = signing_integration(context)
    body = delivery()
    with TestClient(app) as api:
        assert post(api, key, body).status_code == 401
        wrong = {SIGNATURE: grafana_sign("wrong-secret-entirely", body)}
        assert post(api, key, body, wrong).status_code == 401
        assert count_alerts(context) == 0
        response = post(api, key, body, {SIGNATURE: grafana_sign(secret, body)})
        assert response.status_code == 202, response.text
    assert count_alerts(context) == 1


def test_shared_batch_answers_each_signed_delivery_on_its_own(
    context: AppContext, batch_sizes: list[int]
) -> None:
    key, secret = signing_integration(context)
    plain_key = make_key(context, "grafana", "grafana-plain")
    app = create_app(context=context)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warroom") as client:

            def send(index: int) -> Any:
                body = delivery(f"{index:016x}")
                if index % 4 == 3:  # signed with the wrong secret
                    headers = {SIGNATURE: grafana_sign("some-other-secret!", body)}
                elif index % 4 == 2:  # an integration without a secret: unsigned is fine
                    return client.post(f"/api/v1/alerts/grafana?key={plain_key}", content=body)
                else:
                    headers = {SIGNATURE: grafana_sign(secret, body)}
                return client.post(f"/api/v1/alerts/grafana?key={key}", content=body, headers=headers)

            return list(await asyncio.gather(*(send(i) for i in range(40))))

    responses = asyncio.run(run())
    for index, response in enumerate(responses):
        expected = 401 if index % 4 == 3 else 202
        assert response.status_code == expected, (index, response.text)
    with context.db.read() as session:
        stored = set(session.scalars(select(Alert.dedup_key)))
    assert stored == {f"{i:016x}" for i in range(40) if i % 4 != 3}
    assert batch_sizes and max(batch_sizes) > 1  # signed deliveries really shared a transaction


def test_ingest_alone_checks_the_signature(context: AppContext, frozen: datetime) -> None:
    """The fallback path (each delivery in its own transaction) verifies as the shared batch does."""
    key, secret = signing_integration(context)
    body = delivery()
    events = adapters.from_alertmanager(adapters.parse_json(body))
    sent = str(int(frozen.timestamp()))
    refused = [
        None,
        SignedBody(body, None, None),
        SignedBody(body, grafana_sign("not-the-secret-at-all", body).encode(), None),
        SignedBody(body, grafana_sign(secret, body, sent).encode(), str(int(sent) - 600).encode()),
    ]
    for signed in refused:
        with pytest.raises(Unauthorized):
            ingest_alone(context, key, IntegrationType.grafana, "grafana", events, signed)
    assert count_alerts(context) == 0
    good = SignedBody(body, grafana_sign(secret, body, sent).encode(), sent.encode())
    result = ingest_alone(context, key, IntegrationType.grafana, "grafana", events, good)
    assert result.alerts[0].outcome == "created"
    assert count_alerts(context) == 1


def test_cli_create_with_signing_secret(database_url: str) -> None:
    runner = CliRunner()
    base = ["integration", "create", "--type", "grafana", "--database-url", database_url]
    created = runner.invoke(cli_app, [*base, "--name", "grafana", "--signing-secret"])
    assert created.exit_code == 0, created.output
    lines = created.stdout.strip().splitlines()
    key = lines[-1]
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    [secret_line] = [line for line in lines if line.startswith("signing secret: ")]
    secret = secret_line.removeprefix("signing secret: ")
    assert len(secret) == 64 and secret != key
    listed = runner.invoke(cli_app, ["integration", "list", "--json", "--database-url", database_url])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["signing"] is True and secret not in listed.stdout

    given = runner.invoke(
        cli_app,
        [*base, "--name", "grafana-given", "--signing-secret-value", "a-secret-we-chose-ourselves"],
    )
    assert given.exit_code == 0, given.output
    assert given.stdout.strip().splitlines() == [given.stdout.strip().splitlines()[-1]]  # the key alone
    assert "a-secret-we-chose-ourselves" not in given.stdout

    from_env = runner.invoke(
        cli_app,
        [*base, "--name", "grafana-env"],
        env={"WARROOM_INTEGRATION_SIGNING_SECRET": "another-secret-from-the-env"},
    )
    assert from_env.exit_code == 0, from_env.output

    from warroom.db import Database

    database = Database(database_url)
    with database.read() as session:
        rows = session.execute(select(IntegrationKey.id, IntegrationKey.signing_secret))
        stored = {row_id: secret for row_id, secret in rows}
    database.dispose()
    assert stored == {1: secret, 2: "a-secret-we-chose-ourselves", 3: "another-secret-from-the-env"}

    refused = [
        ["integration", "create", "--name", "p", "--type", "alertmanager", "--signing-secret"],
        [*base, "--name", "g", "--signing-secret-value", "short"],
        [*base, "--name", "g", "--signing-secret", "--signing-secret-value", "a-secret-we-chose-ourselves"],
    ]
    # ``base`` names the database already: an option given twice is refused before anything is checked.
    results = [
        runner.invoke(cli_app, args if "--database-url" in args else [*args, "--database-url", database_url])
        for args in refused
    ]
    assert [result.exit_code for result in results] == [1, 1, 2], [result.output for result in results]
    wrong_type, short, both = (" ".join(result.stderr.split()) for result in results)  # unwrapped
    assert (
        "--signing-secret: only grafana and webhook integrations can sign their deliveries (type is "
        "alertmanager)" in wrong_type
    )
    assert "--signing-secret-value (or WARROOM_INTEGRATION_SIGNING_SECRET) must be 16 to 200 characters" in (
        short
    )
    assert "not both" in both
    blank = runner.invoke(cli_app, [*base, "--name", " "])
    assert blank.exit_code == 1 and "error: --name must not be blank" in blank.stderr, blank.output


def test_api_create_with_signing(api: TestClient, context: AppContext, admin: dict[str, str]) -> None:
    created = api.post(
        "/api/v1/integrations", json={"name": "grafana", "type": "grafana", "signing": True}, headers=admin
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["signing"] is True and len(body["signing_secret"]) == 64
    given = api.post(
        "/api/v1/integrations",
        json={"name": "grafana-2", "type": "grafana", "signing_secret": "a-secret-we-chose-ourselves"},
        headers=admin,
    )
    assert given.status_code == 201, given.text
    assert given.json()["signing_secret"] == "a-secret-we-chose-ourselves"
    plain = api.post("/api/v1/integrations", json={"name": "g3", "type": "grafana"}, headers=admin).json()
    assert plain["signing"] is False and plain["signing_secret"] is None
    # Shown once: the listing says which integrations sign, never the secret.
    listing = api.get("/api/v1/integrations", headers=admin)
    assert [i["signing"] for i in listing.json()] == [True, True, False]
    assert "signing_secret" not in listing.text

    # The created secret works end to end.
    delivered = delivery()
    response = post(api, body["key"], delivered, {SIGNATURE: grafana_sign(body["signing_secret"], delivered)})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"signing": True}, "signing"), ({"signing_secret": "a-secret-we-chose-ourselves"}, "signing_secret")],
)
@pytest.mark.parametrize("kind", ["alertmanager", "pagerduty", "generic"])
def test_api_refuses_signing_for_other_types(
    api: TestClient, context: AppContext, admin: dict[str, str], kind: str, extra: dict[str, Any], field: str
) -> None:
    response = api.post("/api/v1/integrations", json={"name": "x", "type": kind, **extra}, headers=admin)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["field"] == field
    assert field in error["message"] and "grafana" in error["message"]
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(IntegrationKey)) == 0


def test_api_refuses_weak_signing_secret(api: TestClient, context: AppContext, admin: dict[str, str]) -> None:
    for secret in ["short", " padded-secret-value-here "]:
        response = api.post(
            "/api/v1/integrations",
            json={"name": "g", "type": "grafana", "signing_secret": secret},
            headers=admin,
        )
        assert response.status_code == 422, response.text
        assert "signing_secret" in response.json()["error"]["message"]
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(IntegrationKey)) == 0


def test_custom_header_names(
    api: TestClient, context: AppContext, admin: dict[str, str], frozen: datetime
) -> None:
    response = api.post(
        "/api/v1/integrations",
        json={
            "name": "grafana-custom",
            "type": "grafana",
            "signing": True,
            "signature_header": "X-Hub-Signature",
            "timestamp_header": "X-Hub-Time",
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["signature_header"] == "X-Hub-Signature" and created["timestamp_header"] == "X-Hub-Time"
    key, secret = created["key"], created["signing_secret"]
    body = delivery()
    sent = str(int(frozen.timestamp()))
    signature = grafana_sign(secret, body, sent)

    # Grafana sends the names it was given (header names are case-insensitive).
    accepted = post(api, key, body, {"x-hub-signature": signature, "X-HUB-TIME": sent})
    assert accepted.status_code == 202, accepted.text
    # The default names are not read for this integration.
    refused = post(api, key, delivery("aa"), {SIGNATURE: grafana_sign(secret, delivery("aa"))})
    assert refused.status_code == 401
    assert "X-Hub-Signature header is missing" in refused.json()["error"]["message"]
    # The timestamp under the custom name is signed and checked against the clock.
    stale = str(int(frozen.timestamp()) - 301)
    late = post(
        api,
        key,
        delivery("bb"),
        {"X-Hub-Signature": grafana_sign(secret, delivery("bb"), stale), "X-Hub-Time": stale},
    )
    assert late.status_code == 401 and "seconds from the server's clock" in late.json()["error"]["message"]
    # A timestamp under the default name is not this integration's: the signature then fails.
    misnamed = post(
        api,
        key,
        delivery("cc"),
        {"X-Hub-Signature": grafana_sign(secret, delivery("cc"), sent), TIMESTAMP: sent},
    )
    assert misnamed.status_code == 401 and "X-Hub-Time" in misnamed.json()["error"]["message"]
    assert count_alerts(context) == 1


def test_only_the_signature_header_renamed(
    api: TestClient, context: AppContext, admin: dict[str, str], frozen: datetime
) -> None:
    created = api.post(
        "/api/v1/integrations",
        json={"name": "g", "type": "grafana", "signing": True, "signature_header": "X-Sig"},
        headers=admin,
    ).json()
    body = delivery()
    sent = str(int(frozen.timestamp()))
    response = post(
        api,
        created["key"],
        body,
        {"X-Sig": grafana_sign(created["signing_secret"], body, sent), TIMESTAMP: sent},
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "fields",
    [
        {"signing": True, "signature_header": "X Bad Header"},
        {"signing": True, "signature_header": "X-Sig:"},
        {"signing": True, "timestamp_header": "x" * 101},
        {"signing": True, "signature_header": "Authorization"},
        {"signing": True, "signature_header": "X-Same", "timestamp_header": "x-same"},
        {"signing": True, "timestamp_header": SIGNATURE},
        {"signature_header": "X-Sig"},  # not signing: nothing would read it
    ],
)
def test_bad_header_names_are_refused(
    api: TestClient, context: AppContext, admin: dict[str, str], fields: dict[str, Any]
) -> None:
    response = api.post(
        "/api/v1/integrations", json={"name": "g", "type": "grafana", **fields}, headers=admin
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]
    assert api.get("/api/v1/integrations", headers=admin).json() == []


def test_cli_custom_header_names(database_url: str) -> None:
    runner = CliRunner()
    base = ["integration", "create", "--name", "g", "--type", "grafana", "--database-url", database_url]
    created = runner.invoke(
        cli_app, [*base, "--signing-secret", "--signature-header", "X-Sig", "--timestamp-header", "X-Time"]
    )
    assert created.exit_code == 0, created.output
    listed = runner.invoke(cli_app, ["integration", "list", "--json", "--database-url", database_url])
    [row] = json.loads(listed.stdout)
    assert (row["signature_header"], row["timestamp_header"]) == ("X-Sig", "X-Time")
    refused = runner.invoke(cli_app, [*base, "--signature-header", "X-Sig"])
    assert refused.exit_code != 0 and "--signature-header" in refused.output
    assert (
        len(
            json.loads(
                runner.invoke(
                    cli_app, ["integration", "list", "--json", "--database-url", database_url]
                ).stdout
            )
        )
        == 1
    )
