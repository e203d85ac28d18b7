"""Rotating an integration: a new key (and signing secret) for the same integration, so its open alerts
still dedup and resolve; the replaced key works only for the grace period."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.alerts.conftest import integration_rows, make_key, payload
from tests.alerts.test_grafana_signing import SIGNATURE, delivery, grafana_sign, signing_integration
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.auth import integrations
from warroom.auth.models import IntegrationKey
from warroom.cli.main import app as cli_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[datetime]:
    clock.set(NOW)
    yield NOW


def alerts(context: AppContext) -> list[Alert]:
    with context.db.read() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def key_rows(context: AppContext) -> list[tuple[Any, ...]]:
    return integration_rows(
        context,
        IntegrationKey.id,
        IntegrationKey.key_hash,
        IntegrationKey.previous_key_hash,
        IntegrationKey.signing_secret,
        IntegrationKey.previous_valid_until,
        IntegrationKey.revoked_at,
    )


def fire(api: TestClient, key: str, document: str = "alertmanager-0.25-firing.json") -> Any:
    return api.post(f"/api/v1/alerts/alertmanager?key={key}", json=payload(document))


def test_rotation_keeps_open_alerts_and_the_old_key_works_until_the_grace_ends(
    api: TestClient, context: AppContext, admin: dict[str, str], am_key: str, frozen: datetime
) -> None:
    assert fire(api, am_key).json()["alerts"][0]["outcome"] == "created"
    [integration] = api.get("/api/v1/integrations", headers=admin).json()

    response = api.post(
        f"/api/v1/integrations/{integration['id']}/rotate", json={"grace": "30m"}, headers=admin
    )
    assert response.status_code == 200, response.text
    rotated = response.json()
    new_key = rotated["key"]
    assert new_key != am_key and len(new_key) == 32 and rotated["prefix"] == new_key[:8]
    assert rotated["id"] == integration["id"]
    assert rotated["rotated_at"].startswith("2026-06-01T12:00:00")
    assert rotated["previous_valid_until"].startswith("2026-06-01T12:30:00")
    assert rotated["signing_secret"] is None

    # Both keys work during the grace period, and both reach the same open alert.
    assert fire(api, am_key).json()["alerts"][0]["outcome"] == "unchanged"
    clock.advance(timedelta(minutes=29, seconds=59))
    resolved = api.post(
        "/api/v1/alerts/alertmanager",
        json=payload("alertmanager-0.25-resolved.json"),
        headers={"Authorization": f"Bearer {new_key}"},
    )
    assert resolved.status_code == 202, resolved.text
    assert resolved.json()["alerts"][0]["outcome"] == "resolved"
    [alert] = alerts(context)
    assert alert.status == "resolved" and alert.integration_id == integration["id"]
    assert fire(api, am_key).status_code == 202  # still inside the grace period: opens a new alert

    # Once the grace period is over the old key is refused, and nothing it sends is stored.
    clock.advance(timedelta(seconds=1))
    before = [(a.id, a.status, a.occurrences) for a in alerts(context)]
    refused = fire(api, am_key)
    assert refused.status_code == 401
    assert "replaced" in refused.json()["error"]["message"]
    assert [(a.id, a.status, a.occurrences) for a in alerts(context)] == before
    assert fire(api, new_key).status_code == 202
    [listed] = api.get("/api/v1/integrations", headers=admin).json()
    assert listed["previous_valid_until"] is None and listed["rotated_at"] is not None


def test_zero_grace_ends_the_old_key_at_once(
    api: TestClient, context: AppContext, admin: dict[str, str], generic_key: str
) -> None:
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    rotated = api.post(
        f"/api/v1/integrations/{integration['id']}/rotate", json={"grace": "0s"}, headers=admin
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["previous_valid_until"] is None
    body = {"summary": "disk full", "dedup_key": "disk"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=body).status_code == 401
    assert api.post(f"/api/v1/alerts?key={rotated.json()['key']}", json=body).status_code == 202
    [(_, _, previous_hash, _, valid_until, _)] = key_rows(context)
    assert previous_hash is None and valid_until is None


def test_rotating_again_ends_the_earlier_replaced_key(
    api: TestClient, context: AppContext, admin: dict[str, str], pd_key: str
) -> None:
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    url = f"/api/v1/integrations/{integration['id']}/rotate"
    second = api.post(url, headers=admin).json()["key"]  # no body: the default grace (1h)
    third = api.post(url, headers=admin).json()["key"]

    def trigger(key: str) -> int:
        return _deliver(api, "pagerduty", key, None)

    assert trigger(pd_key) == 401
    assert trigger(second) == 202
    assert trigger(third) == 202


def test_signing_integration_gets_a_new_secret_and_the_old_one_works_in_the_grace(
    api: TestClient, context: AppContext, admin: dict[str, str], frozen: datetime
) -> None:
    old_key, old_secret = signing_integration(context)
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    rotated = api.post(
        f"/api/v1/integrations/{integration['id']}/rotate", json={"grace": "1h"}, headers=admin
    )
    assert rotated.status_code == 200, rotated.text
    new_key, new_secret = rotated.json()["key"], rotated.json()["signing_secret"]
    assert new_secret and new_secret != old_secret

    def post(key: str, secret: str, fingerprint: str) -> int:
        body = delivery(fingerprint)
        return api.post(
            f"/api/v1/alerts/grafana?key={key}",
            content=body,
            headers={"Content-Type": "application/json", SIGNATURE: grafana_sign(secret, body)},
        ).status_code

    # During the grace period: any mix of old and new key and secret (Grafana's URL and secret may be
    # updated one after the other).
    assert [
        post(k, s, f"{n:016x}")
        for n, (k, s) in enumerate(
            [(old_key, old_secret), (old_key, new_secret), (new_key, old_secret), (new_key, new_secret)]
        )
    ] == [202, 202, 202, 202]
    assert post(new_key, "a-secret-nobody-configured", "ff") == 401
    clock.advance(timedelta(hours=1))
    before = len(alerts(context))
    assert post(new_key, old_secret, "aa") == 401
    assert post(old_key, new_secret, "bb") == 401
    assert len(alerts(context)) == before
    assert post(new_key, new_secret, "cc") == 202


def test_rotation_refusals_change_nothing(
    api: TestClient,
    context: AppContext,
    admin: dict[str, str],
    responder: dict[str, str],
    am_key: str,
) -> None:
    other = make_key(context, "generic", "other")
    [first, second] = api.get("/api/v1/integrations", headers=admin).json()
    api.delete(f"/api/v1/integrations/{second['id']}", headers=admin)
    before = key_rows(context)
    url = f"/api/v1/integrations/{first['id']}/rotate"
    cases = [
        (api.post(url, headers=responder), 403),
        (api.post(url), 401),
        (api.post(url, json={"grace": "-5m"}, headers=admin), 422),
        (api.post(url, json={"grace": "8d"}, headers=admin), 422),
        (api.post(url, json={"grace": "soon"}, headers=admin), 422),
        (api.post(url, json={"grace": "1h", "extra": 1}, headers=admin), 422),
        (api.post(url, json={"signing_secret": "long-enough-but-not-signing"}, headers=admin), 422),
        (api.post(url, json={"signing_secret": "short"}, headers=admin), 422),
        (api.post(url, json={"grace": "1h", "signing_secret": None, "key": "x"}, headers=admin), 422),
        (api.post("/api/v1/integrations/999/rotate", headers=admin), 404),
        (api.post(f"/api/v1/integrations/{second['id']}/rotate", headers=admin), 409),
    ]
    for response, expected in cases:
        assert response.status_code == expected, (response.request.content, response.text)
        assert response.json()["error"]["message"]
    assert key_rows(context) == before
    assert fire(api, am_key).status_code == 202
    assert api.post(f"/api/v1/alerts?key={other}", json={"summary": "x"}).status_code == 401  # revoked


def test_service_refuses_grace_outside_the_bounds(context: AppContext, am_key: str) -> None:
    with context.db.write() as session:
        [row] = session.scalars(select(IntegrationKey))
        for grace in (timedelta(seconds=-1), timedelta(days=7, seconds=1)):
            with pytest.raises(integrations.InvalidInput):
                integrations.rotate_integration(session, org=None, integration_id=row.id, grace=grace)


def test_cli_rotate(database_url: str) -> None:
    runner = CliRunner()
    base = ["--database-url", database_url]
    created = runner.invoke(
        cli_app,
        ["integration", "create", "--name", "grafana", "--type", "grafana", "--signing-secret", *base],
    )
    assert created.exit_code == 0, created.output
    old_key = created.stdout.strip().splitlines()[-1]

    rotated = runner.invoke(cli_app, ["integration", "rotate", "1", "--grace", "2h", *base])
    assert rotated.exit_code == 0, rotated.output
    lines = rotated.stdout.strip().splitlines()
    new_key = lines[-1]
    assert len(new_key) == 32 and new_key != old_key
    assert [line for line in lines if line.startswith("signing secret: ")]
    assert "work until" in rotated.stderr

    listed = runner.invoke(cli_app, ["integration", "list", "--json", *base])
    [row] = json.loads(listed.stdout)
    assert row["prefix"] == new_key[:8] and row["previous_valid_until"] is not None
    table = runner.invoke(cli_app, ["integration", "list", *base], env={"COLUMNS": "200"})
    assert "old key until" in table.stdout

    chosen = runner.invoke(
        cli_app,
        ["integration", "rotate", "1", "--grace", "0s", *base],
        env={"WARROOM_INTEGRATION_SIGNING_SECRET": "the-secret-we-picked-next"},
    )
    assert chosen.exit_code == 0, chosen.output
    assert chosen.stdout.strip().splitlines() == [chosen.stdout.strip().splitlines()[-1]]  # the key alone
    assert "no longer works" in chosen.stderr

    same = runner.invoke(
        cli_app,
        ["integration", "rotate", "1", *base],
        env={"WARROOM_INTEGRATION_SIGNING_SECRET": "the-secret-we-picked-next"},
    )
    assert same.exit_code != 0
    assert "WARROOM_INTEGRATION_SIGNING_SECRET" in same.output and "must differ" in same.output
    for arguments, message in [
        (["integration", "rotate", "1", "--grace", "later"], "not a duration"),
        (["integration", "rotate", "1", "--grace", "30d"], "grace must be between"),
        (["integration", "rotate", "7"], "no integration with id 7"),
    ]:
        refused = runner.invoke(cli_app, [*arguments, *base])
        assert refused.exit_code != 0
        assert message in refused.output
    listed_again = json.loads(runner.invoke(cli_app, ["integration", "list", "--json", *base]).stdout)
    assert listed_again[0]["prefix"] == chosen.stdout.strip().splitlines()[-1][:8]


def test_a_rotation_survives_a_restart(
    api: TestClient, context: AppContext, admin: dict[str, str], am_key: str, frozen: datetime
) -> None:
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    new_key = api.post(f"/api/v1/integrations/{integration['id']}/rotate", headers=admin).json()["key"]
    # A new process: its own app, context and connections on the same database.
    restarted_context = AppContext.from_settings(context.settings)
    try:
        with TestClient(create_app(context=restarted_context)) as restarted:
            assert fire(restarted, am_key).status_code == 202  # still in the grace period
            assert fire(restarted, new_key).status_code == 202
            clock.advance(timedelta(hours=1))
            assert fire(restarted, am_key).status_code == 401
            assert fire(restarted, new_key).status_code == 202
    finally:
        restarted_context.db.dispose()


def run_jobs_at(context: AppContext, moment: datetime) -> int:
    clock.set(moment)
    worker = Worker(context, name="rotation-test")
    total = 0
    while ran := worker.run_once():
        total += ran
    return total


def test_the_replaced_key_is_erased_when_its_grace_period_ends(
    api: TestClient, context: AppContext, admin: dict[str, str], frozen: datetime
) -> None:
    key, old_secret = signing_integration(context)
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    url = f"/api/v1/integrations/{integration['id']}/rotate"
    assert api.post(url, json={"grace": "30m"}, headers=admin).status_code == 200
    [(_, current_hash, previous_hash, _, _, _)] = key_rows(context)
    assert previous_hash is not None

    # Not before the deadline: the job is not due yet.
    assert run_jobs_at(context, frozen + timedelta(minutes=29)) == 0
    assert key_rows(context)[0][2] == previous_hash
    # At the deadline the worker erases the replaced key's hash and signing secret.
    assert run_jobs_at(context, frozen + timedelta(minutes=30)) == 1
    with context.db.read() as session:
        row = session.get(IntegrationKey, integration["id"])
        assert row is not None
        assert (row.previous_key_hash, row.previous_signing_secret, row.previous_valid_until) == (
            None,
            None,
            None,
        )
        assert row.key_hash == current_hash and row.signing_secret not in (None, old_secret)
    # The old key is now simply unknown.
    body = delivery("ee")
    response = api.post(
        f"/api/v1/alerts/grafana?key={key}",
        content=body,
        headers={SIGNATURE: grafana_sign(old_secret, body), "Content-Type": "application/json"},
    )
    assert response.status_code == 401 and "not valid" in response.json()["error"]["message"]


def test_an_earlier_rotation_job_leaves_a_later_replaced_key_alone(
    api: TestClient, context: AppContext, admin: dict[str, str], generic_key: str, frozen: datetime
) -> None:
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    url = f"/api/v1/integrations/{integration['id']}/rotate"
    second = api.post(url, json={"grace": "30m"}, headers=admin).json()["key"]
    clock.set(frozen + timedelta(minutes=10))
    third = api.post(url, json={"grace": "1h"}, headers=admin).json()["key"]

    # The first rotation's job comes due; the key it was about is already gone, the second's is in its grace.
    assert run_jobs_at(context, frozen + timedelta(minutes=30)) == 1
    body = {"summary": "disk full", "dedup_key": "disk"}
    assert api.post(f"/api/v1/alerts?key={second}", json=body).status_code == 202
    assert run_jobs_at(context, frozen + timedelta(minutes=70)) == 1
    assert key_rows(context)[0][2] is None
    assert api.post(f"/api/v1/alerts?key={second}", json=body).status_code == 401
    assert api.post(f"/api/v1/alerts?key={third}", json=body).status_code == 202
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=body).status_code == 401


def test_revoking_erases_a_replaced_key_at_once(
    api: TestClient, context: AppContext, admin: dict[str, str], generic_key: str
) -> None:
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    api.post(f"/api/v1/integrations/{integration['id']}/rotate", json={"grace": "2h"}, headers=admin)
    assert key_rows(context)[0][2] is not None
    assert api.delete(f"/api/v1/integrations/{integration['id']}", headers=admin).status_code == 200
    [(_, _, previous_hash, _, valid_until, revoked_at)] = key_rows(context)
    assert previous_hash is None and valid_until is None and revoked_at is not None


def test_each_key_records_when_it_was_last_used_to_the_minute(
    api: TestClient, context: AppContext, admin: dict[str, str], am_key: str, frozen: datetime
) -> None:
    def listed() -> dict[str, Any]:
        [row] = [
            r for r in api.get("/api/v1/integrations", headers=admin).json() if r["type"] == "alertmanager"
        ]
        return row

    def used(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    assert listed()["last_used_at"] is None
    assert fire(api, am_key).status_code == 202
    assert used(listed()["last_used_at"]) == NOW
    clock.set(NOW + timedelta(seconds=50))
    assert fire(api, am_key).status_code == 202
    assert used(listed()["last_used_at"]) == NOW  # written at most once a minute
    clock.set(NOW + timedelta(seconds=70))
    assert fire(api, am_key).status_code == 202
    assert used(listed()["last_used_at"]) == NOW + timedelta(seconds=70)
    # A refused delivery (a key for another kind of sender) is not a use.
    clock.set(NOW + timedelta(minutes=5))
    assert api.post(f"/api/v1/alerts?key={am_key}", json={"summary": "x"}).status_code == 403
    assert used(listed()["last_used_at"]) == NOW + timedelta(seconds=70)
    lines = api.get("/metrics").text.splitlines()
    [gauge] = [line for line in lines if line.startswith("warroom_integration_last_used_timestamp_seconds{")]
    labels, value = gauge.rsplit(" ", 1)
    assert labels.endswith('{integration="prometheus",type="alertmanager"}')
    assert float(value) == (NOW + timedelta(seconds=70)).timestamp()

    # After a rotation the new key starts unused, and the old key's uses show apart.
    rotated = api.post(
        f"/api/v1/integrations/{listed()['id']}/rotate", json={"grace": "30m"}, headers=admin
    ).json()
    assert rotated["last_used_at"] is None
    assert rotated["previous_key_last_used_at"] is None  # its uses after the rotation only
    clock.set(NOW + timedelta(minutes=10))
    assert fire(api, am_key).status_code == 202  # the old key, within its grace
    assert used(listed()["previous_key_last_used_at"]) == NOW + timedelta(minutes=10)
    assert listed()["last_used_at"] is None
    assert fire(api, rotated["key"]).status_code == 202
    assert used(listed()["last_used_at"]) == NOW + timedelta(minutes=10)


def _deliver(api: TestClient, kind: str, key: str, signing_secret: str | None) -> int:
    """One accepted delivery of this kind of source, with this key."""
    if kind == "pagerduty":
        event = {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": "db-lag",
            "payload": {"summary": "replica lag", "source": "db-2", "severity": "error"},
        }
        return api.post("/v2/enqueue", json=event).status_code
    if kind == "opsgenie":
        body = {"message": "Disk almost full on db-1", "alias": "disk-db1"}
        return api.post("/v2/alerts", json=body, headers={"Authorization": f"GenieKey {key}"}).status_code
    if kind == "grafana":
        assert signing_secret is not None
        signed = delivery()
        headers = {SIGNATURE: grafana_sign(signing_secret, signed), "Content-Type": "application/json"}
        return api.post(f"/api/v1/alerts/grafana?key={key}", content=signed, headers=headers).status_code
    if kind == "generic":
        return api.post(f"/api/v1/alerts?key={key}", json={"summary": "disk full"}).status_code
    return fire(api, key).status_code


@pytest.mark.parametrize("kind", ["alertmanager", "pagerduty", "opsgenie", "grafana", "generic"])
def test_the_old_key_shows_no_use_from_before_the_rotation(
    api: TestClient,
    context: AppContext,
    admin: dict[str, str],
    database_url: str,
    frozen: datetime,
    kind: str,
) -> None:
    """QA: right after a rotation the old key showed as "last used" before it (its last use as the current
    key), telling an operator a source still sends with it. Only its uses after the rotation count, and the
    first one is written even within a minute of a use before it (the once-a-minute throttle)."""
    if kind == "grafana":
        key, signing_secret = signing_integration(context)
    else:
        key, signing_secret = make_key(context, kind), None
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    assert _deliver(api, kind, key, signing_secret) == 202
    clock.advance(timedelta(seconds=11))

    rotated = api.post(
        f"/api/v1/integrations/{integration['id']}/rotate", json={"grace": "1h"}, headers=admin
    ).json()
    assert rotated["previous_key_last_used_at"] is None
    [row] = api.get("/api/v1/integrations", headers=admin).json()
    assert row["previous_key_last_used_at"] is None and row["last_used_at"] is None
    table = CliRunner().invoke(
        cli_app, ["integration", "list", "--database-url", database_url], env={"COLUMNS": "250"}
    )
    assert "old key until" in table.stdout and ", last used" not in table.stdout

    clock.advance(timedelta(seconds=20))  # within a minute of the old key's last use as the current one
    assert _deliver(api, kind, key, signing_secret) == 202
    [row] = api.get("/api/v1/integrations", headers=admin).json()
    assert datetime.fromisoformat(row["previous_key_last_used_at"]) == NOW + timedelta(seconds=31)
    assert row["last_used_at"] is None
