"""Admin commands for integration keys, run in-process against the test database."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.alerts.test_source_ack import pd_trigger
from warroom.cli.main import app
from warroom.client import Client


def test_integration_create_list_revoke(database_url: str) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "integration",
            "create",
            "--name",
            "prometheus",
            "--type",
            "alertmanager",
            "--database-url",
            database_url,
        ],
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    listed = runner.invoke(app, ["integration", "list", "--json", "--database-url", database_url])
    assert listed.exit_code == 0, listed.output
    assert '"prometheus"' in listed.stdout and key not in listed.stdout
    bad_type = runner.invoke(
        app, ["integration", "create", "--name", "x", "--type", "nagios", "--database-url", database_url]
    )
    assert bad_type.exit_code == 2
    revoked = runner.invoke(app, ["integration", "revoke", "1", "--database-url", database_url])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked integration 1 (prometheus)" in revoked.stdout
    # A repeat changes nothing and says so (it said "revoked" again).
    again = runner.invoke(app, ["integration", "revoke", "1", "--database-url", database_url])
    assert again.exit_code == 0, again.output
    assert "integration 1 (prometheus) was already revoked (at " in " ".join(again.stdout.split())
    missing = runner.invoke(app, ["integration", "revoke", "99", "--database-url", database_url])
    assert missing.exit_code == 1


def test_a_negative_id_is_an_id_that_names_nothing(
    api: TestClient, tokens: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Click read the -1 of `alerts show -1` as an option: "No such option: -1"."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(request.method, request.url.raw_path.decode(), headers=request.headers)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    monkeypatch.setattr(
        "warroom.cli.alerts.Client",
        lambda: Client(
            "http://warroom.test", tokens["viewer"], transport=httpx.MockTransport(through_the_app)
        ),
    )
    runner = CliRunner()
    for args in (
        ["alerts", "show", "-1"],
        ["alerts", "show", "-1", "--json"],
        ["alerts", "show", "--", "-1"],
    ):
        shown = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert shown.exit_code == 1, shown.output
        assert "no alert '-1': ids look like 12 or ALR-12 (404 not_found)" in shown.output
    # A number id below 1 is refused for what it is; an option not known is still one.
    revoked = runner.invoke(
        app, ["integration", "revoke", "-1", "--database-url", database_url], env={"COLUMNS": "200"}
    )
    assert revoked.exit_code == 2 and "greater than or equal to 1" in revoked.output
    typo = runner.invoke(app, ["alerts", "show", "-1", "--jsno"], env={"COLUMNS": "200"})
    assert typo.exit_code == 2 and "No such option: --jsno" in typo.output


def test_alerts_filters_repeat_and_one_value_options_refuse_a_second(
    api: TestClient,
    tokens: dict[str, str],
    generic_key: str,
    pd_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--source A --source B` kept only B (click overwrites an option of one value): the list's filters
    repeat, as --service does, and an option that takes one value refuses a second one."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    monkeypatch.setattr(
        "warroom.cli.alerts.Client",
        lambda: Client(
            "http://warroom.test", tokens["responder"], transport=httpx.MockTransport(through_the_app)
        ),
    )
    body = {"summary": "cron late", "severity": "info", "dedup_key": "cron"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=body).status_code == 202
    for key in ("api", "db"):
        trigger = pd_trigger(pd_key, key, cls=f"Down-{key}")
        assert api.post("/v2/enqueue", json=trigger).status_code == 202
    runner = CliRunner()

    def listed(*args: str) -> list[str]:
        result = runner.invoke(app, ["alerts", "list", "--json", *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return sorted(alert["ref"] for alert in json.loads(result.stdout)["items"])

    assert listed("--source", "generic") == ["ALR-1"]
    assert listed("--source", "generic", "--source", "pagerduty") == ["ALR-1", "ALR-2", "ALR-3"]
    assert listed("--integration", "scripts", "--integration", "pd-shaped") == ["ALR-1", "ALR-2", "ALR-3"]
    assert listed("--incident", "INC-1") == ["ALR-2"]
    assert listed("--incident", "INC-1", "--incident", "INC-2") == ["ALR-2", "ALR-3"]
    # Acting by filter takes the repeats too.
    acked = runner.invoke(
        app, ["alerts", "ack", "--incident", "INC-1", "--incident", "INC-2", "--yes", "--json"]
    )
    assert acked.exit_code == 0, acked.output
    assert sorted(alert["ref"] for alert in json.loads(acked.stdout)) == ["ALR-2", "ALR-3"]
    # Each value is checked: a typo among them is refused, not matched as nothing.
    typo = runner.invoke(app, ["alerts", "list", "--source", "generic", "--source", "nagois"])
    assert typo.exit_code == 1 and "unknown source 'nagois'" in typo.output

    for args in (
        ["alerts", "list", "--since", "2h", "--since", "1d"],
        ["alerts", "list", "--search=db", "-q", "api"],
        ["alerts", "note", "ALR-1", "-m", "one", "--message", "two"],
        ["alerts", "snooze", "ALR-1", "--for", "1h", "--for", "2h"],
    ):
        twice = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert twice.exit_code == 2 and "was given twice; it takes one value" in twice.output, twice.output
    assert listed("--status", "firing") == ["ALR-1"]  # nothing was noted or snoozed
