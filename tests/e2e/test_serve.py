"""The real server as a subprocess: durability on kill -9, the CLI against it, bad config refusal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import ServerProcess, create_token, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def admin_token(database_url: str) -> str:
    token = create_token("e2e-admin", "admin", database_url=database_url)
    assert token.startswith("wr_")
    return token


def test_created_incident_survives_kill_9(database_url: str, tmp_path: Path, admin_token: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    server = ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path).start()
    try:
        refs = []
        for index in range(5):
            response = httpx.post(
                f"{server.url}/api/v1/incidents",
                headers=headers,
                json={"title": f"disk full {index}", "severity": "P1", "services": ["database"]},
            )
            assert response.status_code == 201
            refs.append(response.json()["id"])
        # No graceful shutdown: whatever was answered 201 must already be on disk.
        server.kill9()
    finally:
        server.stop()
    with ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path) as restarted:
        listing = httpx.get(f"{restarted.url}/api/v1/incidents", headers=headers).json()
        assert sorted(i["id"] for i in listing["items"]) == sorted(refs)
        timeline = httpx.get(f"{restarted.url}/api/v1/incidents/{refs[-1]}/timeline", headers=headers).json()
        assert timeline[0]["kind"] == "created"


def test_cli_walkthrough(database_url: str, tmp_path: Path, admin_token: str) -> None:
    with ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path) as server:

        def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return run_cli(*args, url=server.url, token=admin_token, check=check)

        created = json.loads(
            cli(
                "incident",
                "create",
                "Checkout errors",
                "--severity",
                "P1",
                "--service",
                "payments",
                "--commander",
                "Alice",
                "--json",
            ).stdout
        )
        ref = created["id"]
        assert created["severity"] == "P1"
        table = cli("incident", "list").stdout
        assert ref in table and "Checkout errors" in table
        cli("incident", "ack", ref)
        cli("responder", "add", ref, "Bob", "--role", "technical", "--contact", "bob@example.com")
        cli("log", ref, "Rolled back deploy 8812", "--impact", "errors dropping")
        cli("incident", "update", ref, "--status", "identified", "--note", "bad deploy")
        cli("incident", "send-update", ref, "We found the cause.", "--audience", "status-page")
        cli("incident", "resolve", ref, "--note", "rollback complete")
        shown = json.loads(cli("incident", "show", ref, "--json").stdout)
        assert shown["status"] == "resolved"
        assert shown["acknowledged_by"] == "e2e-admin"
        timeline = json.loads(cli("incident", "timeline", ref, "--json").stdout)
        # Paging and automation add entries of their own; the walkthrough's own steps come in this order.
        by_cli = [entry["kind"] for entry in timeline if entry["performer"] == "e2e-admin"]
        assert by_cli == [
            "created",
            "commander_change",
            "acknowledged",
            "responder_joined",
            "action",
            "status_change",
            "communication",
            "status_change",
        ]
        bad = cli("incident", "update", ref, "--status", "identified", check=False)
        assert bad.returncode == 1
        assert "cannot move from resolved to identified" in bad.stderr
        missing = cli("incident", "show", "INC-999", check=False)
        assert missing.returncode == 1 and "no incident INC-999" in missing.stderr
        assert "P0" in cli("severity", "list").stdout

    audit = run_cli("audit", "verify", database_url=database_url)
    assert "verified" in audit.stdout


def test_cli_without_token_or_server(tmp_path: Path) -> None:
    unreachable = run_cli("incident", "list", url="http://127.0.0.1:9", token="x", check=False)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


def test_serve_refuses_a_bad_org_file(tmp_path: Path, database_url: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - name: api\n    tier: nine\n")
    result = run_cli(
        "serve", "--config", str(bad), "--database-url", database_url, "--port", "0", check=False
    )
    assert result.returncode == 2
    assert "services[0].tier (line 3)" in result.stderr
