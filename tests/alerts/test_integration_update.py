"""Changing an integration in place: its name, and the header names a signing integration reads. The key,
the signing secret and the open alerts stay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.alerts.conftest import integration_rows
from tests.alerts.test_grafana_signing import NOW, SIGNATURE, TIMESTAMP, delivery, grafana_sign, post
from warroom.auth.models import IntegrationKey
from warroom.cli.main import app as cli_app
from warroom.clock import clock
from warroom.context import AppContext


@pytest.fixture
def frozen() -> Iterator[datetime]:
    clock.set(NOW)
    yield NOW


def signed(api: TestClient, admin: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/integrations",
        json={"name": "grafana-prod", "type": "grafana", "signing": True, **fields},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def rows(context: AppContext) -> list[tuple[Any, ...]]:
    return integration_rows(
        context,
        IntegrationKey.name,
        IntegrationKey.key_hash,
        IntegrationKey.signing_secret,
        IntegrationKey.signature_header,
        IntegrationKey.timestamp_header,
    )


def test_header_names_change_in_place_and_the_key_and_secret_stay(
    api: TestClient, context: AppContext, admin: dict[str, str], frozen: datetime
) -> None:
    created = signed(api, admin)
    key, secret = created["key"], created["signing_secret"]
    sent = str(int(frozen.timestamp()))
    first = delivery("aa")
    assert (
        post(api, key, first, {SIGNATURE: grafana_sign(secret, first, sent), TIMESTAMP: sent}).status_code
        == 202
    )

    response = api.patch(
        f"/api/v1/integrations/{created['id']}",
        json={"signature_header": "X-Hub-Signature", "timestamp_header": "X-Hub-Time"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["signature_header"], updated["timestamp_header"]) == ("X-Hub-Signature", "X-Hub-Time")
    assert updated["name"] == "grafana-prod" and updated["prefix"] == created["prefix"]
    # The old names (Grafana's defaults) are still read for the default grace period of an hour.
    assert (updated["previous_signature_header"], updated["previous_timestamp_header"]) == (None, None)
    assert datetime.fromisoformat(updated["previous_headers_valid_until"]) == frozen + timedelta(hours=1)

    # The same key and secret, under the new names; and under the old ones until the contact point changes.
    second = delivery("bb")
    new_names = {"X-Hub-Signature": grafana_sign(secret, second, sent), "X-Hub-Time": sent}
    assert post(api, key, second, new_names).status_code == 202
    third = delivery("cc")
    old_names = {SIGNATURE: grafana_sign(secret, third, sent), TIMESTAMP: sent}
    assert post(api, key, third, old_names).status_code == 202
    # A signature under the new name is checked under the new names only, even if the old ones would pass.
    both = {**old_names, "X-Hub-Signature": "sha256=" + "0" * 64, "X-Hub-Time": sent}
    assert post(api, key, third, both).status_code == 401

    # Once the grace period is over, only the new names are read.
    clock.set(frozen + timedelta(hours=1, seconds=1))
    later = str(int((frozen + timedelta(hours=1, seconds=1)).timestamp()))
    fourth = delivery("dd")
    signature = grafana_sign(secret, fourth, later)
    assert post(api, key, fourth, {SIGNATURE: signature, TIMESTAMP: later}).status_code == 401
    [listed] = api.get("/api/v1/integrations", headers=admin).json()
    assert listed["previous_headers_valid_until"] is None
    assert post(api, key, fourth, {"X-Hub-Signature": signature, "X-Hub-Time": later}).status_code == 202

    # null goes back to Grafana's own names, one header at a time; grace 0s stops reading the old at once.
    back = api.patch(
        f"/api/v1/integrations/{created['id']}", json={"signature_header": None, "grace": "0s"}, headers=admin
    ).json()
    assert (back["signature_header"], back["timestamp_header"]) == (None, "X-Hub-Time")
    assert back["previous_headers_valid_until"] is None
    fifth = delivery("ee")
    signature = grafana_sign(secret, fifth, later)
    assert post(api, key, fifth, {"X-Hub-Signature": signature, "X-Hub-Time": later}).status_code == 401
    assert post(api, key, fifth, {SIGNATURE: signature, "X-Hub-Time": later}).status_code == 202


def test_rename(api: TestClient, context: AppContext, admin: dict[str, str], am_key: str) -> None:
    [integration] = api.get("/api/v1/integrations", headers=admin).json()
    response = api.patch(
        f"/api/v1/integrations/{integration['id']}", json={"name": "  prometheus-eu  "}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "prometheus-eu"
    # The key is untouched: the source goes on sending with it.
    body = {
        "receiver": "x",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "A"}}],
    }
    assert api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=body).status_code == 202


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({}, 422, "body"),
        ({"name": ""}, 422, "name"),
        ({"name": "   "}, 422, "name"),
        ({"name": "x" * 201}, 422, "name"),
        ({"signature_header": "X Bad"}, 422, "signature_header"),
        ({"signature_header": "Content-Type"}, 422, "signature_header"),
        ({"timestamp_header": "x-sig"}, 422, "timestamp_header"),  # the signature header, in other case
        ({"key": "0" * 32}, 422, "key"),  # the key changes only by rotation
        ({"type": "generic"}, 422, "type"),
        ({"grace": "1h"}, 422, "body"),  # a grace period alone changes nothing
        ({"signature_header": "X-Other", "grace": "8d"}, 422, "grace"),
        ({"signature_header": "X-Other", "grace": "soon"}, 422, "grace"),
        ({"name": "renamed", "grace": "8d"}, 422, "grace"),  # refused even where no header name changes
    ],
)
def test_refusals_change_nothing(
    api: TestClient,
    context: AppContext,
    admin: dict[str, str],
    change: dict[str, Any],
    status: int,
    field: str,
) -> None:
    created = signed(api, admin, signature_header="X-Sig")
    before = rows(context)
    response = api.patch(f"/api/v1/integrations/{created['id']}", json=change, headers=admin)
    assert response.status_code == status, response.text
    assert field in json.dumps(response.json()["error"])
    assert rows(context) == before


def test_refusals_by_integration_and_role(
    api: TestClient,
    context: AppContext,
    admin: dict[str, str],
    responder: dict[str, str],
    generic_key: str,
) -> None:
    [plain] = api.get("/api/v1/integrations", headers=admin).json()
    before = rows(context)
    # A header name means nothing to an integration that does not sign.
    not_signing = api.patch(
        f"/api/v1/integrations/{plain['id']}", json={"signature_header": "X-Sig"}, headers=admin
    )
    assert not_signing.status_code == 422 and "signs" in not_signing.json()["error"]["message"]
    assert (
        api.patch(f"/api/v1/integrations/{plain['id']}", json={"name": "n"}, headers=responder).status_code
        == 403
    )
    assert api.patch(f"/api/v1/integrations/{plain['id']}", json={"name": "n"}).status_code == 401
    assert api.patch("/api/v1/integrations/999", json={"name": "n"}, headers=admin).status_code == 404
    assert rows(context) == before
    api.delete(f"/api/v1/integrations/{plain['id']}", headers=admin)
    revoked = api.patch(f"/api/v1/integrations/{plain['id']}", json={"name": "n"}, headers=admin)
    assert revoked.status_code == 409 and "revoked" in revoked.json()["error"]["message"]


def test_cli_update(database_url: str) -> None:
    runner = CliRunner()
    where = ["--database-url", database_url]
    created = runner.invoke(
        cli_app, ["integration", "create", "--name", "g", "--type", "grafana", "--signing-secret", *where]
    )
    assert created.exit_code == 0, created.output

    def listed() -> dict[str, Any]:
        [row] = json.loads(runner.invoke(cli_app, ["integration", "list", "--json", *where]).stdout)
        return dict(row)

    result = runner.invoke(
        cli_app,
        [
            "integration",
            "update",
            "1",
            "--name",
            "grafana-eu",
            "--signature-header",
            "X-Sig",
            "--timestamp-header",
            "X-Time",
            *where,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "signature header: X-Sig; timestamp header: X-Time" in result.output
    assert "deliveries signed under the previous names (X-Grafana-Alerting-Signature," in result.output
    row = listed()
    assert (row["name"], row["signature_header"], row["timestamp_header"]) == (
        "grafana-eu",
        "X-Sig",
        "X-Time",
    )

    # Refusals name the option and change nothing.
    for args, message in [
        ([], "nothing to change"),
        (["--signature-header", "Authorization"], "--signature-header"),
        (["--timestamp-header", "x-sig"], "--timestamp-header must differ from --signature-header"),
        (["--default-headers", "--signature-header", "X-Other"], "either --default-headers"),
        (["--name", ""], "--name"),
        (["--signature-header", "X-Q", "--grace", "8d"], "--grace"),
        (["--signature-header", "X-Q", "--grace", "soon"], "--grace"),
    ]:
        refused = runner.invoke(cli_app, ["integration", "update", "1", *args, *where])
        assert refused.exit_code != 0 and message in refused.output, (args, refused.output)
    assert listed() == row
    missing = runner.invoke(cli_app, ["integration", "update", "7", "--name", "x", *where])
    assert missing.exit_code != 0 and "7" in missing.output

    reset = runner.invoke(cli_app, ["integration", "update", "1", "--default-headers", *where])
    assert reset.exit_code == 0, reset.output
    assert (listed()["signature_header"], listed()["timestamp_header"]) == (None, None)
