"""Token names are unique among active tokens: a token acts under its name (a note's author edits it), so a
second token of that name could rewrite the first one's notes."""

from __future__ import annotations

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from warroom.cli.main import app
from warroom.context import AppContext


def test_an_active_tokens_name_cannot_be_given_again(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    first = api.post("/api/v1/tokens", json={"name": "responder", "role": "responder"}, headers=admin)
    assert first.status_code == 201, first.text
    second = api.post("/api/v1/tokens", json={"name": "responder", "role": "admin"}, headers=admin)
    assert second.status_code == 409, second.text
    assert "already named 'responder'" in second.text
    # The existing token of that name (the fixture's own) is refused too.
    assert (
        api.post("/api/v1/tokens", json={"name": "admin-user", "role": "admin"}, headers=admin).status_code
        == 409
    )
    # Revoked, its name can be given again.
    assert api.delete(f"/api/v1/tokens/{first.json()['id']}", headers=admin).status_code == 200
    again = api.post("/api/v1/tokens", json={"name": "responder", "role": "responder"}, headers=admin)
    assert again.status_code == 201, again.text


def test_the_cli_refuses_a_taken_name(database_url: str) -> None:
    runner = CliRunner()
    db = ["--database-url", database_url]
    created = runner.invoke(app, ["token", "create", "--name", "cron", "--role", "viewer", *db])
    assert created.exit_code == 0, created.output
    refused = runner.invoke(app, ["token", "create", "--name", "cron", "--role", "admin", *db])
    assert refused.exit_code == 1 and "already named 'cron'" in refused.output, refused.output
    assert "Traceback" not in refused.output
