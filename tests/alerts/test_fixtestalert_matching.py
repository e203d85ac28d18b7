"""``warroom config test-alert --matching``: in an org file of many rules, only the rules that match are
listed (the others counted), then what would happen; when none matches, one line says so and that the alert
would be stored unrouted. The default output still lists every rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.e2e.server import run_cli, serve_for_cli
from warroom.cli.main import app

TEAMS = [f"team-{index:02d}" for index in range(30)]


def org_file(tmp_path: Path) -> Path:
    """30 rules, one per team, and a catch-all for critical alerts after them (mode first)."""
    rules = [
        {
            "name": f"{team}-down",
            "match": {"labels": {"team": team}},
            "incident": {"title": f"{team}: {{{{ alert.summary }}}}", "severity": "P2"},
        }
        for team in TEAMS
    ]
    rules.append(
        {
            "name": "any-critical",
            "match": {"severity": ["critical"]},
            "incident": {"title": "{{ alert.summary }}", "severity": "P1"},
        }
    )
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump({"services": [{"name": "search"}], "automation": {"rules": rules}}))
    return path


def delivery(tmp_path: Path, name: str, team: str, severity: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"summary": "index lagging", "severity": severity, "labels": {"team": team}}))
    return path


def words(text: str) -> str:
    return " ".join(text.split())


def test_matching_lists_only_the_rules_that_match(tmp_path: Path) -> None:
    runner = CliRunner()
    config = org_file(tmp_path)
    alert = delivery(tmp_path, "critical", "team-17", "critical")
    test_alert = ["config", "test-alert", str(alert), "--config", str(config)]

    everything = runner.invoke(app, test_alert, env={"COLUMNS": "200"})
    assert everything.exit_code == 0, everything.output
    # The default is unchanged: every rule, with why each other one does not match.
    assert all(f"{team}-down" in everything.output for team in TEAMS)
    assert "label team is 'team-17', not 'team-03'" in everything.output

    shown = runner.invoke(app, [*test_alert, "--matching"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    listed = [team for team in TEAMS if f"{team}-down" in shown.output]
    assert listed == ["team-17"], shown.output
    assert "applies" in shown.output and "matches (mode first: an earlier rule applies)" in shown.output
    assert "any-critical" in shown.output
    assert "(29 other rules do not match)" in shown.output
    assert "why not" not in shown.output and "not 'team-03'" not in shown.output
    # ... and the summary of what would happen, as without it.
    assert "-> incident P2 'team-17: index lagging' (rule team-17-down)" in words(shown.output)
    assert len(shown.output.splitlines()) < len(everything.output.splitlines()) - 25

    as_json = runner.invoke(app, [*test_alert, "--matching", "--json"])
    assert as_json.exit_code == 0, as_json.output
    [preview] = json.loads(as_json.stdout)
    assert [(rule["rule"], rule["applied"]) for rule in preview["rules"]] == [
        ("team-17-down", True),
        ("any-critical", False),
    ]
    assert preview["rules_checked"] == 31 and preview["incident"]["rule"] == "team-17-down"


def test_matching_when_no_rule_matches_says_it_once_with_what_happens(tmp_path: Path) -> None:
    config = org_file(tmp_path)
    alert = delivery(tmp_path, "stray", "nobody", "warning")
    shown = CliRunner().invoke(
        app,
        ["config", "test-alert", str(alert), "--matching", "--config", str(config)],
        env={"COLUMNS": "200"},
    )
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if line.strip()]
    assert lines == [
        "index lagging (generic, warning, type generic, service -)",
        "labels: team=nobody",
        "-> no rule matches (31 rules checked): unrouted: stored, and listed by alerts list --unrouted",
    ], shown.output
    plain = CliRunner().invoke(app, ["config", "test-alert", str(alert), "--config", str(config)])
    assert words(plain.output).count("-> unrouted: stored") == 1 and "no rule matches" not in plain.output


@pytest.mark.e2e
def test_matching_with_the_server(tmp_path: Path) -> None:
    config = org_file(tmp_path)
    matched = delivery(tmp_path, "matched", "team-05", "warning")
    stray = delivery(tmp_path, "stray", "nobody", "warning")
    with serve_for_cli(config, tmp_path, token_name="matching-e2e", role="viewer") as env:
        env = {**env, "COLUMNS": "200"}
        shown = run_cli("config", "test-alert", str(matched), "--server", "--matching", env=env).stdout
        assert [team for team in TEAMS if f"{team}-down" in shown] == ["team-05"], shown
        assert "(30 other rules do not match)" in shown and "any-critical" not in shown
        assert "a new one, as its group" in words(shown)  # the server's live summary
        none = run_cli("config", "test-alert", str(stray), "--server", "--matching", env=env).stdout
        assert "-> no rule matches (31 rules checked): unrouted: stored" in words(none)
        rows = json.loads(
            run_cli("config", "test-alert", str(matched), "--server", "--matching", "--json", env=env).stdout
        )
        assert [rule["rule"] for rule in rows[0]["rules"]] == ["team-05-down"] and rows[0]["live"]
