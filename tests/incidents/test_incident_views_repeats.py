"""A repeated status command (a second resolve or acknowledgement, the status an incident has) changes
nothing and says so, with or without a note, exits 0, and is answered with ``"unchanged": true``."""

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


def test_the_api_answers_a_repeat_with_unchanged(api: TestClient, responder: dict[str, str]) -> None:
    ref = create(api, responder)["id"]
    url = f"/api/v1/incidents/{ref}"

    def patch(**body: object) -> bool:
        answer = api.patch(url, json=body, headers=responder)
        assert answer.status_code == 200, answer.text
        unchanged: bool = answer.json()["unchanged"]
        return unchanged

    def ack() -> bool:
        answer = api.post(f"{url}/ack", headers=responder)
        assert answer.status_code == 200, answer.text
        unchanged: bool = answer.json()["unchanged"]
        return unchanged

    assert [ack(), ack()] == [False, True]
    assert [patch(status="identified"), patch(status="identified")] == [False, True]
    assert patch(status="identified", note="still") is True  # the note is kept, nothing else changed
    assert patch(note="a note alone") is False  # what was asked: a note
    assert patch(status="identified", title="Renamed") is False  # one of the two changed
    assert [patch(status="resolved"), patch(status="resolved"), patch(status="resolved", note="x")] == [
        False,
        True,
        True,
    ]
    assert "unchanged" not in api.get(url, headers=responder).json()  # a read is no answer to a change


def test_the_cli_says_a_repeat_changed_nothing(
    cli: CliRunner, api: TestClient, responder: dict[str, str]
) -> None:
    ref = create(api, responder)["id"]

    def run(*args: str) -> str:
        result = cli.invoke(cli_app, ["incident", *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    first = run("resolve", ref)
    assert first.startswith(f"{ref} resolved at ") and "nothing changed" not in first
    again = run("resolve", ref)
    assert again.startswith(f"nothing changed: {ref} was resolved already (at ")
    assert "resolved at" not in again
    noted = run("resolve", ref, "--note", "cron 2")
    assert noted.startswith(f"nothing changed: {ref} was resolved already")
    assert "the note is on its timeline" in noted
    assert json.loads(run("resolve", ref, "--json"))["unchanged"] is True

    other = create(api, responder)["id"]
    assert json.loads(run("resolve", other, "--json"))["unchanged"] is False
    assert json.loads(run("update", other, "--status", "investigating", "--json"))["unchanged"] is False
    same = run("update", other, "--status", "investigating")
    assert same.startswith(f"nothing changed: {other} was investigating already\n")
    assert json.loads(run("update", other, "--status", "investigating", "--json"))["unchanged"] is True

    assert "nothing changed" not in run("ack", other)
    acked = run("ack", other)
    assert acked.startswith(f"nothing changed: {other} was acknowledged already, by responder-user at ")
    assert json.loads(run("ack", other, "--json"))["unchanged"] is True
