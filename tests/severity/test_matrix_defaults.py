"""Defaults the author did not write follow the file's own severity matrix: the default level, the suggestion
rules, and the alert severity -> incident level map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from warroom.alerts import automation
from warroom.alerts.config import IncidentAction
from warroom.cli.main import app
from warroom.incidents.schemas import Assessment
from warroom.orgconfig import ConfigError, OrgConfig, parse_org_config
from warroom.severity.service import suggest_severity

TWO_LEVELS = """
organization: Test
services:
  - {name: api, owner_team: platform, tier: 1, customer_facing: true}
teams: [{name: platform}]
severities:
  - {id: SEV1, name: Critical, definition: Down for everyone, response_target: 5m}
  - {id: SEV2, name: Minor, definition: Something is off, response_target: 4h, page: false}
automation:
  rules:
    - name: everything
      incident: {}
"""


def matrix(*ids: str) -> str:
    levels = [{"id": i, "name": i, "definition": i, "response_target": "1h"} for i in ids]
    return yaml.safe_dump({"severities": levels, "automation": {"rules": [{"name": "all", "incident": {}}]}})


def mapped(org: OrgConfig) -> dict[str, str]:
    return {
        s: automation.mapped_severity(org, IncidentAction(), s)
        for s in ("critical", "error", "warning", "info")
    }


def test_a_matrix_of_its_own_passes_config_check_without_writing_the_defaults(tmp_path: Path) -> None:
    """Before: eleven problems about the built-in suggestion rules (P0...P3) and one about the default level,
    none of which the author wrote."""
    org = parse_org_config(TWO_LEVELS, "org.yaml")
    assert org.default_severity == "SEV2"
    # The built-in rules keep their order and reasons; P0 and P1 are the first level here, P2 and P3 the last.
    levels = {rule.reason: rule.severity for rule in org.severity_rules}
    assert len(levels) == 11
    assert levels["complete outage, data loss, exposed data or failing payments"] == "SEV1"
    assert levels["10,000 or more users affected"] == "SEV1"
    assert levels["a customer-facing service is affected"] == "SEV2"
    assert levels["cosmetic issue"] == "SEV2"
    config = tmp_path / "org.yaml"
    config.write_text(TWO_LEVELS)
    checked = CliRunner().invoke(app, ["config", "check", str(config)])
    assert checked.exit_code == 0, checked.output


def test_the_derived_suggestion_rules_suggest_levels_of_the_matrix() -> None:
    org = parse_org_config(TWO_LEVELS)
    outage = suggest_severity(org, Assessment(symptoms=["payment_failure"]))
    assert (outage.severity, outage.name) == ("SEV1", "Critical")
    assert suggest_severity(org, Assessment()).severity == "SEV2"  # the default level


def test_a_critical_alert_opens_an_incident_at_the_most_severe_level(tmp_path: Path) -> None:
    """Before, every alert severity mapped to SEV2 here (index min(1, last)), which pages nobody."""
    org = parse_org_config(TWO_LEVELS)
    assert mapped(org) == {"critical": "SEV1", "error": "SEV1", "warning": "SEV2", "info": "SEV2"}
    config = tmp_path / "org.yaml"
    config.write_text(TWO_LEVELS)
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"summary": "database down", "severity": "critical"}))
    shown = CliRunner().invoke(app, ["config", "test-alert", str(alert), "--json", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)[0]["incident"]["severity"] == "SEV1"


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["S1"], ["S1", "S1", "S1", "S1"]),
        (["S1", "S2", "S3"], ["S1", "S2", "S2", "S3"]),
        # From four levels, the most severe is left to people.
        (["P0", "P1", "P2", "P3"], ["P1", "P2", "P2", "P3"]),
        (["S1", "S2", "S3", "S4", "S5"], ["S2", "S3", "S4", "S5"]),
        (["S1", "S2", "S3", "S4", "S5", "S6"], ["S2", "S3", "S5", "S6"]),
    ],
)
def test_the_default_map_spreads_the_alert_severities_over_the_matrix_in_order(
    ids: list[str], expected: list[str]
) -> None:
    org = parse_org_config(matrix(*ids))
    assert list(mapped(org).values()) == expected


def test_what_the_file_writes_is_kept_and_checked_as_written() -> None:
    text = TWO_LEVELS + "default_severity: P2\nseverity_rules: [{severity: P0, reason: r, when: {}}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text)
    assert [problem.location for problem in caught.value.problems] == [
        "default_severity",
        "severity_rules[0].severity",
    ]
    # An automation map given by the file is used as written.
    written: dict[str, Any] = yaml.safe_load(TWO_LEVELS)
    written["automation"]["severity_map"] = {"critical": "SEV2"}
    assert mapped(parse_org_config(yaml.safe_dump(written)))["critical"] == "SEV2"


def test_a_matrix_that_has_the_built_in_levels_keeps_the_built_in_rules() -> None:
    org = parse_org_config(matrix("P0", "P1", "P2", "P3", "P4"))
    assert org.default_severity == "P2"
    assert [rule.severity for rule in org.severity_rules] == [
        rule.severity for rule in OrgConfig().severity_rules
    ]


def test_another_problem_in_the_file_does_not_bring_the_default_problems_back() -> None:
    """When a field does not parse, the checks across sections run on what did: with the defaults derived."""
    with pytest.raises(ConfigError) as caught:
        parse_org_config(TWO_LEVELS + "business_hours: {start: '25:00'}\n")
    locations = [problem.location for problem in caught.value.problems]
    assert locations and all(location.startswith("business_hours") for location in locations), locations


def test_a_p1_to_p4_matrix_gets_defaults_that_agree_with_each_other() -> None:
    """P1 is this matrix's most severe level, as P0 is the built-in's: the built-in rules and the alert map
    both read the built-in levels by place, so the rule for an outage and a critical alert meet at P2 (the
    built-in P1), an all-hands rule at P1, and cosmetic issues at P4."""
    org = parse_org_config(matrix("P1", "P2", "P3", "P4"))
    by_place = {"P0": "P1", "P1": "P2", "P2": "P3", "P3": "P4"}
    assert [rule.severity for rule in org.severity_rules] == [
        by_place[rule.severity] for rule in OrgConfig().severity_rules
    ]
    assert org.default_severity == by_place[OrgConfig().default_severity]
    assert list(mapped(org).values()) == ["P2", "P3", "P3", "P4"]
