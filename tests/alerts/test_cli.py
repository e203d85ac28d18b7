"""Admin commands for integration keys, run in-process against the test database."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

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
