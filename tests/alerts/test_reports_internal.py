"""Internal reports: a ``labels.service`` that disagrees with ``service`` (rules would read two services) and
an empty label name are refused; ``warroom report`` takes ``--label KEY=VALUE`` and reads ``-`` from stdin;
the example org file routes what the README's ``warroom report`` example sends (it was left unrouted); and a
``rate_period`` of 0s, which turned the public form's limit off, is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG, cli_through_the_app
from warroom.cli.main import app
from warroom.orgconfig import ConfigError, parse_org_config

INTERNAL = "/api/v1/reports/internal"


def test_a_service_label_must_agree_with_the_service(api: TestClient, responder: dict[str, str]) -> None:
    body = {"description": "search is slow", "service": "search", "labels": {"service": "payments"}}
    refused = api.post(INTERNAL, json=body, headers=responder)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["details"][0]["field"] == "labels.service"
    assert "'payments' is not the report's service 'search'" in error["message"]
    # The same service in another case is the service, in the org's spelling.
    taken = api.post(INTERNAL, json={**body, "labels": {"service": "Search", "team": "x"}}, headers=responder)
    assert taken.status_code == 202, taken.text
    assert taken.json()["labels"] == {"service": "search", "team": "x"}
    assert taken.json()["service"] == "search"


@pytest.mark.parametrize("name", ["", " "])
def test_a_label_needs_a_name(api: TestClient, responder: dict[str, str], name: str) -> None:
    refused = api.post(INTERNAL, json={"description": "x", "labels": {name: "v"}}, headers=responder)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["field"] == "labels"


def test_the_readme_example_is_routed_by_the_example_org(api: TestClient, responder: dict[str, str]) -> None:
    body = {"description": "search returns stale results", "service": "search", "severity": "error"}
    first = api.post(INTERNAL, json=body, headers=responder).json()
    again = api.post(INTERNAL, json={**body, "description": "and facets are empty"}, headers=responder).json()
    other = api.post(INTERNAL, json={**body, "service": "auth"}, headers=responder).json()
    assert first["incident"] is not None
    assert again["incident"] == first["incident"]  # one incident per service
    assert other["incident"] not in (None, first["incident"])
    incident = api.get(f"/api/v1/incidents/{first['incident']}", headers=responder).json()
    assert incident["severity"] == "P2"  # error, by the severity map
    assert incident["title"] == "Reported: search returns stale results"


@pytest.fixture
def runner(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_through_the_app(api, tokens["responder"], monkeypatch, "warroom.cli.alerts")


def test_the_cli_takes_labels_and_reads_stdin(
    runner: CliRunner, api: TestClient, responder: dict[str, str]
) -> None:
    done = runner.invoke(
        app,
        ["report", "-", "--service", "search", "-l", "team=discovery", "--label", "region=eu=1", "--json"],
        input="index lagging\nsince the 14:00 deploy\n",
    )
    assert done.exit_code == 0, done.output
    alert = api.get("/api/v1/alerts?source=internal-discovery", headers=responder).json()["items"][0]
    shown = api.get(f"/api/v1/alerts/{alert['id']}", headers=responder).json()
    assert shown["summary"] == "index lagging"
    assert shown["annotations"]["description"] == "index lagging\nsince the 14:00 deploy\n"
    assert shown["labels"] == {"team": "discovery", "region": "eu=1", "service": "search"}

    for bad in ["team", "=x"]:
        wrong = runner.invoke(app, ["report", "x", "--label", bad])
        assert wrong.exit_code == 2, wrong.output
        assert "KEY=VALUE" in wrong.output
    blank = runner.invoke(app, ["report", "-"], input="  \n")
    assert blank.exit_code == 2 and "must not be blank" in blank.output


def test_a_rate_period_of_nothing_is_refused(tmp_path: Path) -> None:
    text = EXAMPLE_CONFIG.read_text()
    assert "    rate_period: 1m\n" in text
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text.replace("    rate_period: 1m\n", "    rate_period: 0s\n"))
    [problem] = caught.value.problems
    assert problem.location == "automation.reports.rate_period"
    assert "rate_period must be more than 0s" in problem.message
    path = tmp_path / "org.yaml"
    path.write_text(text.replace("    rate_period: 1m\n", "    rate_period: 0s\n"))
    checked = CliRunner().invoke(app, ["config", "check", str(path)])
    assert checked.exit_code != 0 and "rate_period must be more than 0s" in checked.output
