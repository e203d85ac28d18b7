"""Org file validation of the on-call sections: clear problems with their locations."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.e2e.server import run_cli
from warroom.orgconfig import ConfigError, parse_org_config

GOOD = """
people:
  - {name: ann, email: ann@example.com}
  - {name: bob, email: bob@example.com}
teams:
  - {name: core, members: [ann, bob], manager: bob, schedule: primary}
schedules:
  - name: primary
    layers:
      - {shift_length: 1w, start: 2026-01-05, participants: [ann, bob]}
escalation_policies:
  - name: core
    steps:
      - targets: [{schedule: primary}]
      - targets: [{manager_of: core}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_org_config(textwrap.dedent(text))
    return [str(p) for p in caught.value.problems]


def test_good_file_loads() -> None:
    org = parse_org_config(GOOD)
    assert [p.name for p in org.people] == ["ann", "bob"]
    assert org.escalation_policies[0].steps[0].targets[0].schedule == "primary"
    assert org.paging_modes["P0"] == "all_hands"


def test_unknown_references_and_empty_rotation() -> None:
    found = problems(
        """
        people:
          - {name: ann, contact_methods: [{name: pager, channel: carrier-pigeon, to: x}]}
        teams:
          - {name: core, members: [ann, zed], manager: nobody, schedule: missing}
        schedules:
          - name: primary
            layers:
              - {shift_length: 1d, start: 2026-01-05, participants: []}
              - {shift_length: 1d, start: 2026-01-05, participants: [ghost]}
            overrides:
              - {person: ghost, start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}
          - name: empty
        escalation_policies:
          - name: core
            steps:
              - targets: [{schedule: nope}, {team: nope}, {person: zed}]
              - targets: []
          - name: none
        severity_policies: {P1: missing, P9: core}
        services:
          - {name: api, escalation_policy: gone}
        """
    )
    expected = [
        "people[0].contact_methods[0].channel (line 3): unknown channel 'carrier-pigeon' (allowed: console,",
        "teams[0].members[1] (line 5): 'zed' is not a person in this file (known: ann)",
        "teams[0].manager (line 5): 'nobody' is not a person",
        "teams[0].schedule (line 5): 'missing' is not a schedule",
        "schedules[0].layers[0].participants (line 9): a rotation needs at least one participant",
        "schedules[0].layers[1].participants[0] (line 10): 'ghost' is not a person",
        "schedules[0].overrides[0].person (line 12): 'ghost' is not a person",
        "schedules[1].layers: a schedule needs at least one rotation layer",
        "escalation_policies[0].steps[0].targets[0] (line 17): 'nope' is not a schedule",
        "escalation_policies[0].steps[0].targets[1] (line 17): 'nope' is not a team",
        "escalation_policies[0].steps[0].targets[2] (line 17): 'zed' is not a person",
        "escalation_policies[0].steps[1].targets (line 18): a step needs at least one target",
        "escalation_policies[1].steps: a policy needs at least one step",
        "severity_policies.P1 (line 20): 'missing' is not a policy",
        "severity_policies.P9 (line 20): not one of the severities",
        "services[0].escalation_policy (line 22): 'gone' is not a policy",
    ]
    for wanted in expected:
        location, _, message = wanted.partition(": ")
        where = location.split(" (line")[0]
        assert any(p.startswith(where) and location in p and message in p for p in found), (wanted, found)


ALL = "every page this way would be refused"


def test_a_contact_that_no_page_could_reach_is_a_problem() -> None:
    """A Slack or webhook channel with no URL of its own needs a URL to post to; a chat handle or a name
    there would have every page refused (and the step handed on) at 3 a.m. rather than at `config check`."""
    found = problems(
        """
        notification_channels:
          - {name: team-slack, type: slack, settings: {url: "https://hooks.slack.example/T0/B0"}}
          - {name: hook, type: webhook, settings: {secret: s}}
        people:
          - name: ann
            chat_handle: "@ann"
            contact_methods:
              - {name: chat, channel: slack, to: "@ann"}
              - {name: team, channel: team-slack, to: "@ann"}
              - {name: own-hook, channel: slack, to: "https://hooks.slack.example/T0/ann"}
              - {name: pager, channel: hook, to: pager-ann}
            notification_rules:
              - {contact: own-hook}
              - {channel: slack}
              - {channel: webhook, to: "https://pager.example/ann"}
        """
    )
    refused = "has no URL configured, so the recipient must be the URL"
    assert found == [
        f"people[0].contact_methods[0].to (line 9): channel 'slack' {refused} (got '@ann'): {ALL}",
        f"people[0].contact_methods[3].to (line 12): channel 'hook' {refused} (got 'pager-ann'): {ALL}",
        f"people[0].notification_rules[1].to (line 15): channel 'slack' {refused} (got '@ann'): {ALL}",
    ]


def test_field_errors() -> None:
    found = problems(
        """
        people:
          - name: ann
            time_zone: Mars/Olympus
            contact_methods: [{name: pager, channel: carrier-pigeon, to: x}]
            notification_rules: [{contact: pager, channel: email}]
        schedules:
          - name: primary
            layers:
              - {shift_length: 0m, handoff_time: "25:00", start: 2026-01-05, participants: [ann]}
        escalation_policies:
          - name: p
            steps:
              - targets: [{person: ann, schedule: primary}]
                delay: 0m
        paging_modes: {P0: loudly}
        """
    )
    text = "\n".join(found)
    for wanted in (
        "people[0].time_zone (line 4): unknown time zone 'Mars/Olympus'",
        "people[0].notification_rules[0]",
        "schedules[0].layers[0].shift_length",
        "schedules[0].layers[0].handoff_time",
        "escalation_policies[0].steps[0].targets[0]",
        "escalation_policies[0].steps[0].delay",
        "paging_modes.P0",
    ):
        assert wanted in text, (wanted, text)


def test_config_check_command_reports_problems(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(GOOD.replace("participants: [ann, bob]", "participants: []"))
    result = run_cli("config", "check", str(path), check=False)
    assert result.returncode == 2, result
    assert "schedules[0].layers[0].participants" in result.stderr
    assert "a rotation needs at least one participant" in result.stderr


@pytest.mark.parametrize(
    ("contact", "why"),
    [
        ('{name: hook, channel: webhook, to: "https://[::1/hook"}', "is not a valid URL"),
        ('{name: hook, channel: webhook, to: "ftp://pager.example/x"}', "is not an http(s) URL with a host"),
        ('{name: mail, channel: email, to: "ann@example.com\\nBcc: eve@example.com"}', "on one line"),
    ],
)
def test_a_contact_that_could_never_be_reached_is_a_problem(contact: str, why: str) -> None:
    """One bad hook address stopped paging for its whole policy (the page's record could not be written)."""
    text = GOOD.replace(
        "  - {name: ann, email: ann@example.com}",
        f"  - name: ann\n    email: ann@example.com\n    contact_methods: [{contact}]",
    )
    found = problems(text)
    assert any(p.startswith("people[0].contact_methods[0].to") and why in p for p in found), found
