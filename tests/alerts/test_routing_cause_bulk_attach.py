"""``warroom alerts attach INC-n`` with filters: alerts already on the target are left out (said once), not
counted as failures; the command exits 0 when nothing failed, and a refusal names its alert once."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.alerts.test_dependency_grouping import fire, incident_of
from tests.conftest import cli_through_the_app
from warroom.cli.main import app as cli_app
from warroom.client import Client
from warroom.context import AppContext


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_through_the_app(api, tokens["responder"], monkeypatch, "warroom.cli.alerts")


def two_incidents(api: TestClient, key: str) -> tuple[int, int]:
    """ALR-1 opens INC-1, ALR-2 (another group of the same service) INC-2."""
    first = fire(api, key, "search", "IndexStale")
    second = fire(api, key, "search", "SearchLatency")
    assert (first["incident"], second["incident"]) == ("INC-1", "INC-2")
    return first["id"], second["id"]


def test_alerts_already_on_the_target_are_left_out(
    api: TestClient, context: AppContext, generic_key: str, cli: CliRunner
) -> None:
    first, second = two_incidents(api, generic_key)
    result = cli.invoke(cli_app, ["alerts", "attach", "INC-2", "--service", "search", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 matching alert already on INC-2, left out" in result.stdout
    assert "1 of 1 alerts attached" in result.stdout
    assert "error" not in result.output
    assert (incident_of(context, first), incident_of(context, second)) == (2, 2)
    # Again: nothing left to do, and that is no failure.
    again = cli.invoke(cli_app, ["alerts", "attach", "inc-2", "--service", "search", "--yes"])
    assert again.exit_code == 0, again.output
    assert "2 matching alerts already on INC-2, left out" in again.stdout
    as_json = cli.invoke(cli_app, ["alerts", "attach", "2", "--service", "search", "--yes", "--json"])
    assert (as_json.exit_code, as_json.stdout.strip()) == (0, "[]")
    # Named by id, a repeat is still refused by the server (409), in words that name the alert once.
    third = fire(api, generic_key, "search", "ShardUnassigned")["id"]
    named = cli.invoke(cli_app, ["alerts", "attach", "INC-2", str(first), str(third)])
    assert named.exit_code == 1
    assert f"error: ALR-{first} is already on INC-2" in named.stderr, named.stderr
    assert f"{first}: ALR-{first}" not in named.stderr


def test_one_put_there_meanwhile_counts_as_done_and_other_refusals_name_their_alert_once(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = two_incidents(api, generic_key)
    third = fire(api, generic_key, "search", "ShardUnassigned")["id"]  # INC-3
    headers = {"Authorization": f"Bearer {tokens['responder']}"}
    seen: list[str] = []

    def through_the_app(request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        if path.endswith("/attach") and not seen:
            # Another responder, between the list the CLI confirmed and its first attach: ALR-2 goes to INC-3
            # (a person moved it), ALR-1 to INC-3 too.
            seen.append(path)
            for alert in (first, second):
                moved = api.post(
                    f"/api/v1/alerts/{alert}/attach", json={"incident": "INC-3"}, headers=headers
                )
                assert moved.status_code == 200, moved.text
        answer = api.request(request.method, path, headers=request.headers, content=request.content)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    monkeypatch.setattr(
        "warroom.cli.alerts.Client",
        lambda: Client(
            "http://warroom.test", tokens["responder"], transport=httpx.MockTransport(through_the_app)
        ),
    )
    result = CliRunner().invoke(cli_app, ["alerts", "attach", "INC-3", "--service", "search", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 matching alert already on INC-3, left out" in result.stdout  # ALR-3, at the listing
    assert "0 of 2 alerts attached; 2 already on INC-3 meanwhile" in result.stdout
    assert (incident_of(context, first), incident_of(context, second), incident_of(context, third)) == (
        3,
        3,
        3,
    )

    # A real refusal still fails the command, naming the alert once.
    assert (
        api.patch("/api/v1/incidents/INC-1", json={"status": "resolved"}, headers=headers).status_code == 200
    )
    refused = CliRunner().invoke(cli_app, ["alerts", "attach", "INC-1", "--service", "search", "--yes"])
    assert refused.exit_code == 1
    assert "0 of 3 alerts attached" in refused.stdout
    assert "INC-1 is resolved: alerts go on an open incident" in refused.stderr
    assert f"error: ALR-{first}: INC-1 is resolved" in refused.stderr
    assert f"{first}: ALR-{first}" not in refused.stderr
