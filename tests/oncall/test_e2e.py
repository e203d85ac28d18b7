"""``warroom serve`` as a subprocess: the on-call CLI commands, and a page by real SMTP acknowledged
from the CLI, with the embedded worker on the real clock."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import run_cli, serve_for_cli
from tests.peers import SmtpServer, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path, smtp: SmtpServer) -> Iterator[dict[str, str]]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["notification_channels"] = [
        {"name": "email", "type": "email", "settings": {"host": "127.0.0.1", "port": smtp.port}},
        {"name": "console", "type": "console"},
    ]
    for person in data["people"]:
        person.pop("notification_rules", None)
        person.pop("contact_methods", None)
    config = tmp_path / "org.yaml"
    config.write_text(yaml.safe_dump(data))
    with serve_for_cli(config, tmp_path, token_name="oncall-e2e", role="responder") as env:
        yield env


def cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, check=ok)


def test_oncall_cli(server: dict[str, str]) -> None:
    who = cli(server, "oncall", "who", "--at", "2026-03-02T10:00:00+00:00")
    assert "platform-primary" in who.stdout and "Carol Wagner (carol)" in who.stdout
    rows = json.loads(cli(server, "oncall", "who", "--schedule", "payments-primary", "--json").stdout)
    assert [r["schedule"] for r in rows] == ["payments-primary"] and rows[0]["person"] in ("erin", "frank")

    shifts = json.loads(
        cli(
            server,
            "oncall",
            "shifts",
            "platform-secondary",
            "-n",
            "3",
            "--after",
            "2026-03-02T10:00Z",
            "--json",
        ).stdout
    )
    assert [s["person"] for s in shifts] == ["alice", "bob", "carol"]
    table = cli(server, "oncall", "shifts", "platform-secondary", "-n", "2", "--after", "2026-03-02T10:00Z")
    assert "Alice Schmidt (alice)" in table.stdout and "168" in table.stdout  # hours

    # Tomorrow, 09:00 to 17:00 at UTC+1: an override must not be over yet, nor more than 90 days ahead.
    day = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    created = json.loads(
        cli(
            server,
            "oncall",
            "override",
            "platform-primary",
            "--person",
            "frank",
            "--start",
            f"{day}T09:00:00+01:00",
            "--end",
            f"{day}T17:00:00+01:00",
            "--reason",
            "swap",
            "--json",
        ).stdout
    )
    listed = json.loads(cli(server, "oncall", "overrides", "platform-primary", "--json").stdout)
    assert [o["id"] for o in listed] == [created["id"]]
    at_noon = json.loads(
        cli(server, "oncall", "who", "-s", "platform-primary", "--at", f"{day}T12:00+01:00", "--json").stdout
    )
    assert at_noon[0]["person"] == "frank"
    cli(server, "oncall", "remove-override", "platform-primary", str(created["id"]))
    assert json.loads(cli(server, "oncall", "overrides", "platform-primary", "--json").stdout) == []

    bad = cli(server, "oncall", "override", "platform-primary", "--person", "mallory",
              "--start", "2030-01-01T09:00Z", "--end", "2030-01-01T10:00Z", ok=False)  # fmt: skip
    assert bad.returncode == 1 and "unknown person 'mallory'" in bad.stderr
    past = cli(server, "oncall", "override", "platform-primary", "--person", "frank",
               "--start", "2020-12-07T10:00Z", "--end", "2020-12-07T11:00Z", ok=False)  # fmt: skip
    assert past.returncode == 1 and "the override would already be over (422" in past.stderr, past.stderr
    long = cli(server, "oncall", "override", "platform-primary", "--person", "frank",
               "--start", f"{day}T09:00Z", "--end", "2036-12-07T11:00Z", ok=False)  # fmt: skip
    assert long.returncode == 1 and "an override lasts at most 31d" in long.stderr, long.stderr
    assert json.loads(cli(server, "oncall", "overrides", "platform-primary", "--all", "--json").stdout) == []
    missing = cli(server, "oncall", "shifts", "nope", ok=False)
    assert missing.returncode == 1 and "no schedule 'nope'" in missing.stderr
    policies = cli(server, "oncall", "policies")
    assert "platform-escalation" in policies.stdout and "on call for platform-primary" in policies.stdout
    # One step a line, not "…— 10m␤2. on call…" run together.
    assert "\u2424" not in policies.stdout and re.search(r"^│.*│ 2\. on call for", policies.stdout, re.M)


def test_page_by_smtp_then_ack_from_the_cli(server: dict[str, str], smtp: SmtpServer) -> None:
    inbox = smtp.sink
    on_call = json.loads(cli(server, "oncall", "who", "-s", "platform-primary", "--json").stdout)[0]["person"]
    assert on_call is not None
    created = json.loads(
        cli(server, "incident", "create", "API down", "-s", "P1", "--service", "api", "--json").stdout
    )
    ref = created["id"]
    wait_until(lambda: inbox.to(f"{on_call}@acme.example"), timeout=20)
    [mail] = inbox.to(f"{on_call}@acme.example")
    assert ref in mail["Subject"]
    cli(server, "incident", "ack", ref)
    paging = json.loads(cli(server, "oncall", "pages", ref, "--json").stdout)
    assert [e["state"] for e in paging["escalations"]] == ["acknowledged"]
    assert [(p["person"], p["status"]) for p in paging["pages"]] == [(on_call, "sent")]
    timeline = json.loads(cli(server, "incident", "timeline", ref, "--json").stdout)["items"]
    actions = [e["action"] for e in timeline]
    assert any(a.startswith("Paged step 1 of platform-escalation") for a in actions)
    assert any(a.startswith("Escalation stopped (acknowledged)") for a in actions)

    # A responder asks for the database experts too: frank's page says who asked and why.
    asked = cli(server, "oncall", "page", ref, "--policy", "database-experts", "--note", "replication lag")
    assert f"page of database-experts requested for {ref}" in asked.stdout, asked.stdout
    wait_until(lambda: inbox.to("frank@acme.example"), timeout=20)
    [expert_mail] = inbox.to("frank@acme.example")
    text = expert_mail.get_body("plain").get_content()  # type: ignore[union-attr]
    assert "asked for this page: replication lag" in text, text
    unknown = cli(server, "oncall", "page", ref, "--policy", "dba", ok=False)
    assert unknown.returncode == 1 and "no escalation policy 'dba'" in unknown.stderr, unknown.stderr
