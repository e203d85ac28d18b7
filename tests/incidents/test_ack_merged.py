"""Acknowledging an incident merged into another names the one to acknowledge, following later merges to the
last, as a page request and an ack link do. Before, ``incident ack`` answered "INC-17 is resolved; there is
nothing to acknowledge (409)" without naming INC-9."""

from __future__ import annotations

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


def acknowledged(api: TestClient, headers: dict[str, str], ref: str) -> tuple[int, dict[str, object]]:
    answer = api.post(f"/api/v1/incidents/{ref}/ack", headers=headers)
    return answer.status_code, answer.json()["error"] if answer.status_code >= 400 else {}


def test_ack_of_a_merged_incident_names_its_target(
    cli: CliRunner, api: TestClient, responder: dict[str, str]
) -> None:
    target = create(api, responder)["id"]
    merged = create(api, responder)["id"]
    merge(api, responder, merged, target)

    said = cli.invoke(cli_app, ["incident", "ack", merged], env={"COLUMNS": "200"})
    assert said.exit_code != 0
    assert f"{merged} was merged into {target}: acknowledge {target}" in " ".join(said.output.split())
    status, error = acknowledged(api, responder, merged)
    assert status == 409 and error["details"][0]["merged_into"] == target  # type: ignore[index]
    assert acknowledged(api, responder, target)[0] == 200  # the target itself takes it


def test_a_chain_of_merges_is_followed_to_its_end(api: TestClient, responder: dict[str, str]) -> None:
    first, second, last = (create(api, responder)["id"] for _ in range(3))
    merge(api, responder, first, second)
    merge(api, responder, second, last)
    status, error = acknowledged(api, responder, first)
    assert status == 409
    assert (
        error["message"] == f"{first} was merged into {second}, since merged into {last}: acknowledge {last}"
    )

    api.patch(f"/api/v1/incidents/{last}", json={"status": "resolved"}, headers=responder)
    status, error = acknowledged(api, responder, first)
    assert status == 409 and str(error["message"]).endswith(
        f"{last} is resolved; there is nothing to acknowledge"
    )


def test_a_plain_resolved_incident_is_refused_as_before(api: TestClient, responder: dict[str, str]) -> None:
    plain = create(api, responder)["id"]
    api.patch(f"/api/v1/incidents/{plain}", json={"status": "resolved"}, headers=responder)
    status, error = acknowledged(api, responder, plain)
    assert status == 409 and error["message"] == f"{plain} is resolved; there is nothing to acknowledge"
