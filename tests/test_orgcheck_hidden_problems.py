"""`warroom config check` names every problem of the org file in one run: a bad value in one entry (a
paging mode's typo, a channel of an unknown type) costs only that entry's checks, not every on-call or
channel one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import run_cli
from warroom.orgconfig import ConfigError, parse_org_config


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text, "org.yaml")
    return [str(problem) for problem in caught.value.problems]


def example_with(*edits: tuple[str, str], more: str = "") -> str:
    text = EXAMPLE_CONFIG.read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text + more


ONCALL_TYPOS = (
    ("members: [alice, bob, carol, dave]", "members: [alice, bobb, carol, dave]"),
    ("    manager: heidi\n", "    manager: heidy\n"),
    ("participants: [erin, frank]", "participants: [erin, franc]"),
    ("{schedule: platform-secondary}", "{schedule: platform-secndary}"),
    ("severity_policies: {}", "severity_policies: {P0: platform-escalaton}"),
    ("{name: pager-hook, channel: webhook,", "{name: pager-hook, channel: webhok,"),
    ("{contact: pager-hook, delay: 2m}", "{contact: pager-hok, delay: 2m}"),
)
ONCALL_PLACES = [
    "people[0].contact_methods[1].channel",
    "people[0].notification_rules[1].contact",
    "teams[0].members[1]",
    "teams[1].manager",
    "schedules[2].layers[0].participants[1]",
    "escalation_policies[0].steps[1].targets[0]",
    "severity_policies.P0",
]


def places(found: list[str]) -> list[str]:
    return [problem.split(" (line ")[0] for problem in found]


def test_a_paging_mode_that_does_not_parse_hides_no_on_call_mistake() -> None:
    found = problems_of(example_with(*ONCALL_TYPOS, more="paging_modes: {P1: escalte}\n"))
    assert sorted(places(found)) == sorted([*ONCALL_PLACES, "paging_modes.P1"]), found
    assert "'bobb' is not a person in this file; did you mean 'bob'?" in "\n".join(found)
    # The paging modes that did parse are still checked.
    found = problems_of(example_with(more="paging_modes: {P1: escalte, P7: none}\n"))
    assert places(found) == ["paging_modes.P1", "paging_modes.P7"], found


def test_the_readme_repro_of_a_paging_mode_names_all_three(tmp_path: Path) -> None:
    org = tmp_path / "pm2.yaml"
    org.write_text(example_with(*ONCALL_TYPOS[:1], ONCALL_TYPOS[3], more="paging_modes: {P1: escalte}\n"))
    checked = run_cli("config", "check", str(org), check=False)
    assert checked.returncode == 2
    assert "3 problem(s)" in checked.stderr, checked.stderr
    for place in ("teams[0].members[1]", "escalation_policies[0].steps[1].targets[0]", "paging_modes.P1"):
        assert place in checked.stderr


CHANNEL_MISTAKES = (
    ("    type: console", "    type: consle"),
    (
        "  - name: ops-webhook\n",
        "  - name: console\n"
        "    type: slack\n"
        "    to: 'https://hooks.slack.example/x'\n"
        "  - name: mailer\n"
        "    type: email\n"
        "    to: ops@mailhost\n"
        "    templates:\n"
        "      nope: {subject: x}\n"
        "      page: {subject: '{{ incident.title', text: '{{ incident.ref | shout }}'}\n"
        "      test: {subject: '{{ incident.nosuch }}'}\n"
        "  - name: ops-webhook\n",
    ),
)


def test_a_channel_of_an_unknown_type_hides_no_other_problem(tmp_path: Path) -> None:
    """It was one raw pydantic line ("Input tag 'consle' found using 'type' does not match any of the
    expected tags") and nothing else: the team's typo and the other channels' problems were lost."""
    found = problems_of(example_with(*ONCALL_TYPOS, *CHANNEL_MISTAKES))
    assert sorted(places(found)) == sorted(
        [
            *ONCALL_PLACES,
            "notification_channels[3].to",
            "notification_channels[3].templates.nope",
            "notification_channels[3].templates.page.subject",
            "notification_channels[3].templates.page.text",
            "notification_channels[3].templates.test.subject",
            "notification_channels[5].name",  # 'console' again: the channel of an unknown type has its name
            "notification_channels[5].type",
        ]
    ), found
    said = {problem.split(" (line ")[0]: problem for problem in found}
    assert said["notification_channels[5].type"].endswith(
        "unknown type 'consle'; did you mean 'console'? (allowed: email, slack, webhook, console)"
    )
    assert "tag" not in said["notification_channels[5].type"]
    assert "'ops@mailhost' is not an email address" in said["notification_channels[3].to"]
    assert "template error" in said["notification_channels[3].templates.page.subject"]
    assert "shout" in said["notification_channels[3].templates.page.text"]
    assert (
        "incident.nosuch: incident has no such field"
        in said["notification_channels[3].templates.test.subject"]
    )

    org = tmp_path / "pm3.yaml"
    org.write_text(example_with(ONCALL_TYPOS[0], CHANNEL_MISTAKES[0]))
    checked = run_cli("config", "check", str(org), check=False)
    assert checked.returncode == 2
    assert "2 problem(s)" in checked.stderr, checked.stderr
    assert "teams[0].members[1] (line" in checked.stderr
    assert "notification_channels[3].type (line" in checked.stderr
    assert "did you mean 'console'?" in checked.stderr


def test_a_channel_of_an_unknown_type_is_still_a_channel_of_the_file() -> None:
    """Its name is one the file has (a contact naming it is no unknown channel), and its templates are
    checked; a channel with no type at all is said so."""
    found = problems_of(
        "people:\n"
        "  - name: al\n"
        "    contact_methods: [{name: pager, channel: pagerhook, to: 'https://pager.example/al'}]\n"
        "notification_channels:\n"
        "  - {name: pagerhook, type: webhok, templates: {page: {subject: '{{ incident.nosuch }}'}}}\n"
        "  - {name: other}\n"
    )
    assert places(found) == [
        "notification_channels[0].type",
        "notification_channels[0].templates.page.subject",
        "notification_channels[1]",
    ], found
    assert "did you mean 'webhook'?" in found[0]
    assert found[2].endswith("missing key 'type' (allowed: email, slack, webhook, console)")


def test_a_bad_setting_of_one_channel_hides_nothing_else() -> None:
    """A known type with a bad setting (a port out of range) lost every channel and on-call check too."""
    found = problems_of(example_with(ONCALL_TYPOS[0], ("      port: 587\n", "      port: 99999\n")))
    assert places(found) == ["teams[0].members[1]", "notification_channels[1].settings.port"], found
    # Where the file has it: no "email." of pydantic's between the entry and its setting, and port's line.
    port_line = (
        example_with(("      port: 587\n", "      port: 99999\n")).splitlines().index("      port: 99999") + 1
    )
    assert found[1].startswith(f"notification_channels[1].settings.port (line {port_line}): "), found
