"""A rule's runbooks should be runbooks of the org file: those its services list (``services[].runbooks``).
Another name (a typo, or a runbook kept elsewhere) is warned of by ``config check`` and by a reload, with
the nearest name, and the file is still taken: an upgrade does not stop a server whose rules name runbooks
no service lists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import file_warnings
from warroom.cli.main import app
from warroom.context import AppContext
from warroom.orgconfig import OrgConfig, load_org_config, parse_org_config
from warroom.settings import Settings

ORG = """\
services:
  - name: payments
    runbooks: [payments-failover, card-processor-status]
  - name: api
    runbooks: [api-rollback]
automation:
  rules:
    - name: payments
      match: {service: [payments]}
      incident: {}
      runbooks:
        - payments-failover
        - payments-failovr
        - db-restore
    - name: api
      match: {service: [api]}
      incident: {}
      runbooks: [api-rollback, card-processor-status]
"""
NOW = datetime(2026, 12, 7, tzinfo=UTC)


def test_an_unknown_runbook_is_a_warning_with_the_nearest_name() -> None:
    org = parse_org_config(ORG)
    assert org.automation.rules[0].runbooks == ["payments-failover", "payments-failovr", "db-restore"]
    assert file_warnings(org, NOW) == [
        "automation.rules[0] (payments).runbooks: 'payments-failovr' is not a runbook of a service in this "
        "file; did you mean 'payments-failover'?",
        "automation.rules[0] (payments).runbooks: 'db-restore' is not a runbook of a service in this file "
        "(known: payments-failover, card-processor-status, api-rollback)",
    ]
    # Any service's runbook will do, as the api rule's shows.
    fixed = ORG.replace("        - payments-failovr\n        - db-restore\n", "")
    assert file_warnings(parse_org_config(fixed), NOW) == []
    # A file whose services list none has none.
    none_listed = parse_org_config(
        "automation:\n  rules:\n    - {name: r, incident: {}, runbooks: [db-restore]}\n"
    )
    assert file_warnings(none_listed, NOW) == [
        "automation.rules[0] (r).runbooks: 'db-restore' is not a runbook of a service in this file "
        "(no runbook of a service is defined)"
    ]


def test_config_check_warns_of_an_unknown_runbook(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ORG)
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "did you mean 'payments-failover'?" in " ".join(result.output.split())


def _example_with_rule_runbooks(runbooks: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    rule = next(rule for rule in data["automation"]["rules"] if rule.get("runbooks"))
    rule["runbooks"] = runbooks
    return data


@pytest.fixture
def org_file(tmp_path: Path) -> Path:
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(_example_with_rule_runbooks(["payments-failover"])))
    return path


@pytest.fixture
def settings(tmp_path: Path, database_url: str, org_file: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, config=org_file, run_worker=False)


@pytest.fixture
def org(org_file: Path) -> OrgConfig:
    return load_org_config(org_file)


def test_a_reload_warns_of_an_unknown_runbook_and_takes_the_file(
    api: TestClient, context: AppContext, org_file: Path, admin: dict[str, str]
) -> None:
    org_file.write_text(
        yaml.safe_dump(_example_with_rule_runbooks(["payments-failover", "payment-failover"]))
    )
    taken = api.post("/api/v1/config/reload", headers=admin)
    assert taken.status_code == 200, taken.text
    assert any(
        "'payment-failover' is not a runbook of a service in this file; did you mean 'payments-failover'?"
        in warning
        for warning in taken.json()["warnings"]
    ), taken.json()["warnings"]
    running = next(rule for rule in context.org.automation.rules if rule.runbooks)
    assert running.runbooks == ["payments-failover", "payment-failover"]
