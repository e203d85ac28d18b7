"""A merged incident reads as merged, not as one resolved by a fix: in the API (``merged_into``), in
``incident list`` and in ``incident show``."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import cli_through_the_app
from tests.incidents.test_api import create
from warroom.cli.main import app as cli_app


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_through_the_app(api, tokens["responder"], monkeypatch, "warroom.cli.incidents")


def merge(api: TestClient, headers: dict[str, str], ref: str, into: str) -> None:
    answer = api.post(f"/api/v1/incidents/{ref}/merge", json={"into": into}, headers=headers)
    assert answer.status_code == 200, answer.text


def test_the_api_names_the_incident_it_was_merged_into(api: TestClient, responder: dict[str, str]) -> None:
    target = create(api, responder)["id"]
    merged = create(api, responder)["id"]
    plain = create(api, responder)["id"]
    api.patch(f"/api/v1/incidents/{plain}", json={"status": "resolved"}, headers=responder)
    merge(api, responder, merged, target)

    shown = api.get(f"/api/v1/incidents/{merged}", headers=responder).json()
    assert shown["status"] == "resolved" and shown["merged_into"] == target
    assert api.get(f"/api/v1/incidents/{plain}", headers=responder).json()["merged_into"] is None
    assert api.get(f"/api/v1/incidents/{target}", headers=responder).json()["merged_into"] is None
    listed = {
        i["id"]: i["merged_into"] for i in api.get("/api/v1/incidents", headers=responder).json()["items"]
    }
    assert listed == {target: None, merged: target, plain: None}

    # Reopened, it is merged no more (its alerts stayed where they went); the direct target only, no chain.
    reopened = api.patch(f"/api/v1/incidents/{merged}", json={"status": "investigating"}, headers=responder)
    assert reopened.json()["merged_into"] is None


def test_list_and_show_say_merged(cli: CliRunner, api: TestClient, responder: dict[str, str]) -> None:
    target = create(api, responder)["id"]
    merged = create(api, responder, title="Checkout slow")["id"]
    plain = create(api, responder, title="Search slow")["id"]
    api.patch(f"/api/v1/incidents/{plain}", json={"status": "resolved"}, headers=responder)
    merge(api, responder, merged, target)

    listed = cli.invoke(cli_app, ["incident", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if "│ INC-" in line}
    assert f"merged → {target}" in rows[merged]
    assert "resolved" not in rows[merged]
    assert rows[merged].rstrip(" │").endswith("—")  # ack: not "no", nobody was meant to ack it here
    assert "merged" not in rows[plain] and " resolved " in rows[plain]
    assert rows[plain].rstrip(" │").endswith("no")

    shown = cli.invoke(cli_app, ["incident", "show", merged], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert f"resolved, merged into {target} at 20" in shown.output
    assert f"— (merged: see {target})" in shown.output
    assert "merged" not in cli.invoke(cli_app, ["incident", "show", plain]).output

    as_json = json.loads(cli.invoke(cli_app, ["incident", "show", merged, "--json"]).output)
    assert as_json["merged_into"] == target
