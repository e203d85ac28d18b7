"""An integration's name is unique among live integrations: rules, maintenance windows and the alert list
name integrations by name, so two live ones of one name would both match. A revoked one's name may be taken
again. Duplicates a database already holds (from before the check) are warned of, not broken on."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.alerts.conftest import integration_rows
from warroom.app import create_app
from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.cli.main import app as cli_app
from warroom.context import AppContext
from warroom.db import utcnow


def create(api: TestClient, admin: dict[str, str], name: str, type_: str = "generic") -> Any:
    return api.post("/api/v1/integrations", json={"name": name, "type": type_}, headers=admin)


def names(context: AppContext) -> list[tuple[Any, ...]]:
    return integration_rows(context, IntegrationKey.id, IntegrationKey.name)


def test_a_live_integrations_name_is_refused_on_create_and_rename(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    first = create(api, admin, "generic").json()
    other = create(api, admin, "prometheus", "alertmanager").json()

    # Another type is no excuse, nor surrounding space: the name is what rules and filters match.
    for name, type_ in [("generic", "generic"), (" generic ", "alertmanager")]:
        refused = create(api, admin, name, type_)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["message"] == (
            f"name 'generic' is taken by integration {first['id']} (generic); choose another name, or revoke "
            f"integration {first['id']} first"
        )
        assert error["details"] == [
            {"field": "name", "message": error["message"], "integration_id": first["id"]}
        ]
    assert names(context) == [(first["id"], "generic"), (other["id"], "prometheus")]

    renamed = api.patch(f"/api/v1/integrations/{other['id']}", json={"name": "generic"}, headers=admin)
    assert renamed.status_code == 409 and "taken by integration" in renamed.text, renamed.text
    assert names(context) == [(first["id"], "generic"), (other["id"], "prometheus")]
    # Keeping its own name is no conflict.
    kept = api.patch(f"/api/v1/integrations/{first['id']}", json={"name": "generic"}, headers=admin)
    assert kept.status_code == 200, kept.text

    # A revoked integration sends nothing: its name may be taken again, by a new one or by a rename.
    assert api.delete(f"/api/v1/integrations/{first['id']}", headers=admin).status_code == 200
    again = create(api, admin, "generic")
    assert again.status_code == 201, again.text
    assert api.delete(f"/api/v1/integrations/{again.json()['id']}", headers=admin).status_code == 200
    moved = api.patch(f"/api/v1/integrations/{other['id']}", json={"name": "generic"}, headers=admin)
    assert moved.status_code == 200, moved.text


def test_the_cli_refuses_a_live_integrations_name(database_url: str) -> None:
    runner = CliRunner()
    where = ["--database-url", database_url]
    for name in ("generic", "other"):
        made = runner.invoke(cli_app, ["integration", "create", "--name", name, "--type", "generic", *where])
        assert made.exit_code == 0, made.output
    for args in (
        ["create", "--name", "generic", "--type", "grafana"],
        ["update", "2", "--name", "generic"],
    ):
        refused = runner.invoke(cli_app, ["integration", *args, *where])
        assert refused.exit_code == 1, refused.output
        assert " ".join(refused.stderr.split()) == (
            "error: --name 'generic' is taken by integration 1 (generic); choose another name, or revoke "
            "integration 1 first"
        )
    listed = runner.invoke(cli_app, ["integration", "list", "--json", *where])
    assert [row["name"] for row in json.loads(listed.stdout)] == ["generic", "other"]


def test_duplicates_from_before_the_check_are_warned_of_and_still_work(
    context: AppContext,
    admin: dict[str, str],
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with context.db.write() as session:
        for number, name in enumerate(["generic", "generic", "prometheus", "generic"]):
            session.add(
                IntegrationKey(
                    name=name,
                    type=IntegrationType.generic,
                    key_hash=f"{number:064x}",
                    prefix=f"{number:08x}",
                    revoked_at=utcnow() if number == 3 else None,  # revoked: no matter
                )
            )
    caplog.set_level(logging.WARNING, logger="warroom")
    with TestClient(create_app(context=context)) as api:
        # The server starts, and warns of the name the live ones share.
        warned = [r.getMessage() for r in caplog.records if "are all named" in r.getMessage()]
        assert warned == [
            "integrations 1, 2 are all named 'generic': a rule, maintenance window or alert filter naming it "
            "matches each of them. Rename all but one: warroom integration update ID --name NEW"
        ]
        # A duplicate can still be changed in place, and renamed out of the clash.
        kept = api.patch("/api/v1/integrations/2", json={"name": "generic", "service": "api"}, headers=admin)
        assert kept.status_code == 200, kept.text
        listed = CliRunner().invoke(cli_app, ["integration", "list", "--database-url", database_url])
        assert listed.exit_code == 0, listed.output
        assert "integrations 1, 2 are all named 'generic'" in " ".join(listed.stderr.split())
        renamed = api.patch("/api/v1/integrations/2", json={"name": "generic-b"}, headers=admin)
        assert renamed.status_code == 200, renamed.text
    listed = CliRunner().invoke(cli_app, ["integration", "list", "--database-url", database_url])
    assert "are all named" not in listed.stderr


def test_a_name_is_one_visible_line_of_at_most_200_characters(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    """A terminal escape in a name lays out whoever lists integrations, and the CLI took names of any length
    (the column holds 200)."""
    kept = create(api, admin, "generic")
    for name, why in [
        ("evil\x1b[2Jname", "control or formatting characters"),
        ("two\nlines", "control or formatting characters"),
        ("n" * 201, "at most 200 characters"),
        ("   ", "must not be blank"),
    ]:
        refused = create(api, admin, name)
        assert refused.status_code == 422, (name, refused.text)
        assert why in refused.json()["error"]["message"], refused.text
        renamed = api.patch(f"/api/v1/integrations/{kept.json()['id']}", json={"name": name}, headers=admin)
        assert renamed.status_code == 422, (name, renamed.text)
    shown = CliRunner().invoke(
        cli_app,
        ["integration", "create", "--name", "n" * 300, "--type", "generic"],
        env={"WARROOM_DATABASE_URL": context.settings.database_url},
    )
    assert shown.exit_code != 0 and "at most 200 characters" in shown.output, shown.output
    assert names(context) == [(kept.json()["id"], "generic")]
