"""QA round (scripting the CLI): a command that asks before changing several alerts says why it stops where
there is no one to answer (a standard input that is no terminal and gives nothing: cron, ``</dev/null``), as
``--json`` does, and changes nothing; an answer piped in is taken. Every list command's ``--json`` is the
envelope the paged API lists answer with (``items``, ``total``, ``limit``, ``offset``), not a bare array."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from tests.alerts.conftest import make_key
from tests.alerts.test_dependency_grouping import fire
from tests.conftest import cli_through_the_app
from warroom.cli.main import app
from warroom.context import AppContext
from warroom.notify.enums import DeliveryStatus
from warroom.notify.models import Delivery

ENVELOPE = {"items", "total", "limit", "offset"}


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    modules = ("alerts", "notify", "changes")
    return cli_through_the_app(api, tokens["admin"], monkeypatch, *(f"warroom.cli.{m}" for m in modules))


def statuses(api: TestClient, admin: dict[str, str]) -> list[str]:
    listed = api.get("/api/v1/alerts", headers=admin)
    assert listed.status_code == 200, listed.text
    return sorted(alert["status"] for alert in listed.json()["items"])


def said(result: Result) -> str:
    return " ".join(result.output.split())


def test_no_one_to_ask_is_said_and_nothing_changes(
    api: TestClient, context: AppContext, cli: CliRunner, admin: dict[str, str]
) -> None:
    key = make_key(context, "generic", "scripts")
    fire(api, key, "database", "DiskSpaceLow")
    fire(api, key, "database", "ReplicationLag")
    for command in (["ack"], ["resolve"], ["snooze", "--for", "1h"]):
        # CliRunner's standard input is no terminal; with no input it gives no answer, as </dev/null.
        stopped = cli.invoke(app, ["alerts", *command, "--service", "database"], env={"COLUMNS": "200"})
        assert stopped.exit_code == 2, said(stopped)  # a usage error: --yes is needed
        assert "filters need --yes: there is no one to ask" in " ".join(stopped.stderr.split()), said(stopped)
        assert "Aborted" not in stopped.output
        assert statuses(api, admin) == ["firing", "firing"]
    # A "no" piped in declines; a "y" is taken as typed.
    declined = cli.invoke(app, ["alerts", "ack", "--service", "database"], input="n\n")
    assert declined.exit_code == 1 and statuses(api, admin) == ["firing", "firing"]
    assert "2 alerts will be acknowledged. Go on? [y/N]: n" in said(declined)
    taken = cli.invoke(app, ["alerts", "ack", "--service", "database"], input="y\n", env={"COLUMNS": "200"})
    assert taken.exit_code == 0, said(taken)
    assert statuses(api, admin) == ["acknowledged", "acknowledged"]


def envelope(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert isinstance(printed, dict) and set(printed) == ENVELOPE, printed
    return printed


def test_every_list_prints_the_envelope_with_its_total(
    api: TestClient, context: AppContext, cli: CliRunner, admin: dict[str, str], database_url: str
) -> None:
    key = make_key(context, "generic", "scripts")
    fire(api, key, "database", "DiskSpaceLow")
    for summary in ("Deployed api 2.14", "Deployed api 2.15", "Deployed api 2.16"):
        assert api.post("/api/v1/changes", json={"summary": summary}, headers=admin).status_code == 201
    with context.db.write() as session:
        for number in range(3):
            session.add(
                Delivery(
                    channel="ops-mail",
                    channel_type="email",
                    recipient="ops@example.com",
                    template="incident_opened",
                    subject=f"letter {number}",
                    body="",
                    data={},
                    status=DeliveryStatus.dead,
                    attempts=5,
                    last_error="mailbox unavailable",
                )
            )

    notifications = envelope(
        cli.invoke(app, ["notify", "list", "--status", "dead", "--limit", "2", "--json"])
    )
    assert (len(notifications["items"]), notifications["total"], notifications["limit"]) == (2, 3, 2)
    newest = notifications["items"][0]["id"]
    # With --before-id, a page's total counts what is left.
    left = envelope(
        cli.invoke(app, ["notify", "list", "--status", "dead", "--before-id", str(newest), "--json"])
    )
    assert left["total"] == 2 and newest not in [row["id"] for row in left["items"]]
    dead = envelope(cli.invoke(app, ["notify", "failures", "--limit", "1", "--json"]))
    assert (len(dead["items"]), dead["total"]) == (1, 3)

    jobs_args = ["jobs", "list", "--database-url", database_url, "--json"]
    jobs = envelope(cli.invoke(app, [*jobs_args, "--limit", "1", "--offset", "1"]))
    every = envelope(cli.invoke(app, jobs_args))
    assert every["total"] == len(every["items"]) > 1
    assert (jobs["total"], jobs["limit"], jobs["offset"]) == (every["total"], 1, 1)
    assert jobs["items"] == every["items"][1:2]
    after = envelope(cli.invoke(app, [*jobs_args, "--before-id", str(every["items"][0]["id"])]))
    assert after["total"] == every["total"] - 1

    changes = envelope(cli.invoke(app, ["changes", "list", "--limit", "2", "--offset", "1", "--json"]))
    assert [row["summary"] for row in changes["items"]] == ["Deployed api 2.15", "Deployed api 2.14"]
    assert (changes["total"], changes["limit"], changes["offset"]) == (3, 2, 1)
    newest = envelope(cli.invoke(app, ["changes", "list", "--limit", "1", "--json"]))["items"][0]["ref"]
    left = envelope(cli.invoke(app, ["changes", "list", "--before-id", newest, "--json"]))
    assert left["total"] == 2 and newest not in [row["ref"] for row in left["items"]]
