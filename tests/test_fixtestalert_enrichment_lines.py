"""``config check`` names a bad template of an enrichment entry's ``labels``, ``annotations`` or ``links`` at
the item's own path and line (``automation.enrich[1].labels.team``), not at the map's first line: in an entry
of twenty labels, that line is the one to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from warroom.alerts.config import EnrichRule
from warroom.cli.main import app
from warroom.orgconfig import ConfigError, parse_org_config

ORG_FILE = """\
services: [{name: api}]
automation:
  enrich:
    - name: api-service
      service: api
    - name: team-labels
      labels:
        region: eu
        team: "{{ alert.labels.namespace | no_such_filter }}"
        owner: "{{ alert.labels.owner }}"
      annotations:
        note: fine
        runbook: "{% if %}"
      links:
        - href: "https://grafana.example.com/d/x"
          text: "{{ alert.summary "
"""


def _line(text: str, starts: str) -> int:
    return next(
        number for number, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith(starts)
    )


def test_a_bad_label_template_is_reported_at_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ORG_FILE)
    checked = CliRunner().invoke(app, ["config", "check", str(path)])
    assert checked.exit_code == 2, checked.output
    team, runbook, text = _line(ORG_FILE, "team:"), _line(ORG_FILE, "runbook:"), _line(ORG_FILE, "text:")
    assert (team, runbook, text) == (9, 13, 16)
    assert (
        f"automation.enrich[1].labels.team (line {team}): bad template: No filter named 'no_such_filter'"
        in (checked.output)
    )
    assert f"automation.enrich[1].annotations.runbook (line {runbook}): bad template: " in checked.output
    assert f"automation.enrich[1].links[0].text (line {text}): bad template: " in checked.output
    # The map's own line (its first label) is named for none of them.
    assert "automation.enrich[1].labels (line" not in checked.output


def test_each_bad_template_of_one_map_is_its_own_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_org_config(ORG_FILE.replace('"{{ alert.labels.owner }}"', '"{{ x }"'), "org.yaml")
    where = [str(problem).split(": ", 1)[0] for problem in caught.value.problems]
    assert where == [
        "automation.enrich[1].labels.team (line 9)",
        "automation.enrich[1].labels.owner (line 10)",
        "automation.enrich[1].annotations.runbook (line 13)",
        "automation.enrich[1].links[0].text (line 16)",
    ]


def test_outside_config_check_the_problem_still_names_its_item() -> None:
    """Where an entry is validated alone (no file, no lines), its text still says which label fails."""
    with pytest.raises(ValidationError) as caught:
        EnrichRule.model_validate(
            {"name": "e", "labels": {"region": "eu", "team": "{{ x | no_such_filter }}"}}
        )
    assert "labels.team: No filter named 'no_such_filter'." in str(caught.value)
