from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import run_cli
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config
from warroom.severity.service import response_due_at


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text, "org.yaml")
    return [str(p) for p in caught.value.problems]


def test_example_file_is_valid() -> None:
    org = load_org_config(EXAMPLE_CONFIG)
    assert org.severity_ids == ["P0", "P1", "P2", "P3"]
    assert {s.name for s in org.services} >= {"api", "database", "frontend", "payments", "auth", "queue"}
    assert org.audience("customers") is not None


def test_defaults_follow_the_seed_matrix() -> None:
    org = OrgConfig()
    targets = [(s.id, s.response_target_text) for s in org.severities]
    assert targets == [("P0", "5m"), ("P1", "15m"), ("P2", "2h"), ("P3", "next business day")]
    assert org.severities[0].escalation.startswith("All hands")
    assert not org.severities[3].page


def test_problems_name_location_and_line() -> None:
    found = problems_of(
        "services:\n"
        "  - name: api\n"
        "    tier: 9\n"
        "  - name: web\n"
        "    dependencies: [api, ghost]\n"
        "severities:\n"
        "  - id: P0\n"
        "    name: Critical\n"
        "    definition: down\n"
        "    response_target: soon\n"
    )
    assert any(p.startswith("services[0].tier (line 3)") for p in found), found
    assert any(p.startswith("severities[0].response_target (line 10)") for p in found), found


def test_cross_reference_problems() -> None:
    found = problems_of(
        "services:\n  - name: web\n    dependencies: [ghost]\ndefault_severity: P9\n"
        "severity_rules:\n  - severity: SEV1\n    reason: r\n    when: {symptoms_any: [x]}\n"
    )
    assert any("services[0].dependencies[0] (line 3)" in p and "ghost" in p for p in found), found
    assert any(p.startswith("default_severity (line 4)") for p in found), found
    assert any(p.startswith("severity_rules[0].severity (line 6)") for p in found), found


def test_unknown_sections_and_bad_yaml_are_errors() -> None:
    assert any("servics" in p for p in problems_of("servics: []\n"))
    assert any("line 2" in p for p in problems_of("services:\n  - name: [unclosed\n"))
    assert problems_of("- just\n- a list\n") == ["(top level) (line 1): the file must be a mapping"]


def test_teams_can_retune_the_matrix() -> None:
    org = parse_org_config(
        "severities:\n"
        "  - {id: SEV1, name: Major, definition: big, response_target: 10m}\n"
        "  - {id: SEV2, name: Minor, definition: small, response_target: 1h30m}\n"
        "default_severity: SEV2\nseverity_rules: []\n"
    )
    assert org.severity_ids == ["SEV1", "SEV2"]
    opened = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert response_due_at(org, "SEV2", opened) == opened + timedelta(minutes=90)


def test_next_business_day_target_skips_the_weekend() -> None:
    org = load_org_config(EXAMPLE_CONFIG)  # business hours start 09:00 Europe/Berlin
    friday_evening = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    due = response_due_at(org, "P3", friday_evening)
    assert due == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Monday 09:00 CET


def test_config_check_command(tmp_path: Path) -> None:
    good = run_cli("config", "check", str(EXAMPLE_CONFIG))
    assert "ok" in good.stdout
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("audiences:\n  - id: internal\n    channels: []\n  - id: execs\n    chanels: [x]\n")
    bad = run_cli("config", "check", str(bad_file), check=False)
    assert bad.returncode == 2
    assert "3 problem(s)" in bad.stderr
    assert "audiences[0].channels (line 3)" in bad.stderr
    assert "audiences[1].chanels (line 5)" in bad.stderr
    bad_file.write_text("roles: [scribe]\n")
    roles = run_cli("config", "check", str(bad_file), check=False)
    assert roles.returncode == 2 and "roles (line 1): 'commander' must be one of the roles" in roles.stderr
    missing = run_cli("config", "check", str(tmp_path / "nope.yaml"), check=False)
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_config_check_warns_of_secrets_this_environment_lacks(tmp_path: Path) -> None:
    """The file is valid, so the check passes; but a delivery would fail here, and the check says so."""
    unset = {"SLACK_WEBHOOK_URL": "", "SMTP_PASSWORD": "", "WARROOM_OPS_WEBHOOK_SECRET": ""}
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    checked = subprocess_check(EXAMPLE_CONFIG, environment)
    assert checked.returncode == 0, checked.stderr
    assert "notification_channels[1] (email).settings.password: ${SMTP_PASSWORD} is not set here" in (
        checked.stderr
    )
    assert "${SLACK_WEBHOOK_URL}" in checked.stderr and "${WARROOM_OPS_WEBHOOK_SECRET}" in checked.stderr
    all_set = subprocess_check(
        EXAMPLE_CONFIG, {**environment, **{name: "set" for name in unset}, "WARROOM_WEBHOOK_SECRET": ""}
    )
    # alice pages through the bare webhook channel, which signs with WARROOM_WEBHOOK_SECRET
    assert "people[0] (alice): the bare webhook channel has no signing secret" in all_set.stderr
    assert all_set.stderr.count("warning") == 1
    empty = subprocess_check(EXAMPLE_CONFIG, {**environment, **{name: "" for name in unset}})
    assert "${SMTP_PASSWORD} is empty here" in empty.stderr
    unsigned = tmp_path / "unsigned.yaml"
    unsigned.write_text(
        "notification_channels:\n  - name: hook\n    type: webhook\n    settings: {url: 'https://x.example'}\n"
    )
    without = subprocess_check(unsigned, {**environment, "WARROOM_WEBHOOK_SECRET": ""})
    assert without.returncode == 0
    assert "notification_channels[0] (hook): no signing secret" in without.stderr
    with_default = subprocess_check(unsigned, {**environment, "WARROOM_WEBHOOK_SECRET": "a shared secret"})
    assert "signing secret" not in with_default.stderr
    # Its only warning: a file of channels alone routes and pages nothing.
    assert with_default.stderr.count("warning") == 1 and "nobody would be paged" in with_default.stderr


def subprocess_check(path: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warroom", "config", "check", str(path)],
        env={**environment, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [("2026-02-30", "day is out of range for month"), ("2026-03-01T25:00:00Z", "hour must be in 0..23")],
)
def test_a_date_the_calendar_lacks_is_a_problem_with_its_place(value: str, why: str) -> None:
    """YAML reads these as dates and fails building them; the check, serve and reload used to crash."""
    text = EXAMPLE_CONFIG.read_text() + f"\nmaintenance_note_dates:\n  - {value}\n"
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith("maintenance_note_dates[0] (line ")
    assert f"{value!r} is not a date or time that exists ({why})" in problems[0]


def test_an_impossible_date_behind_aliases_is_reported_once() -> None:
    """Aliases make the YAML a graph: a cycle crashed the report, and repeated aliases made it explode."""
    problems = problems_of("x: &a [2026-02-30, *a]\ny: [*a, *a, *a]\n")
    assert problems == [
        "x[0] (line 1): '2026-02-30' is not a date or time that exists (day is out of range for month)"
    ]


def test_a_byte_that_is_not_utf8_is_a_problem_with_its_place(tmp_path: Path) -> None:
    """An editor that saved Latin-1: the check printed a UnicodeDecodeError traceback (exit 1)."""
    path = tmp_path / "org.yaml"
    path.write_bytes(EXAMPLE_CONFIG.read_bytes() + b"# caf\xe9 rules\n")
    line = EXAMPLE_CONFIG.read_bytes().count(b"\n") + 1
    with pytest.raises(ConfigError) as caught:
        load_org_config(path)
    assert caught.value.path == str(path)
    assert [str(p) for p in caught.value.problems] == [
        f"(file) (line {line}): byte 0xe9 at column 6 is not UTF-8 (invalid continuation byte); "
        "save the file as UTF-8"
    ]
    checked = run_cli("config", "check", str(path), check=False, env={"COLUMNS": "300"})
    assert checked.returncode == 2, checked.stderr
    assert "Traceback" not in checked.stderr
    assert f"(line {line}): byte 0xe9 at column 6 is not UTF-8" in checked.stderr


def test_a_field_problem_does_not_hide_the_cross_reference_problems() -> None:
    """Pydantic checks no references once a field failed: a bad interval hid a duplicate name and an unknown
    service, a bad rrule the schedule's unknown services. One run shows them all."""
    found = problems_of(
        "services: [{name: api}]\n"
        "automation:\n"
        "  heartbeats:\n"
        "    - {name: a, interval: 5s}\n"
        "    - {name: a, interval: 1m, service: zz}\n"
        "  maintenance_schedules:\n"
        "    - name: vacuum\n"
        "      rrule: FREQ=YEARLY\n"
        "      duration: 1h\n"
        "      reason: r\n"
        "      services: [api, ghost]\n"
    )
    assert [p.split(": ")[0] for p in found] == [
        "automation.heartbeats[0].interval (line 4)",
        "automation.heartbeats[1].name (line 5)",
        "automation.heartbeats[1].service (line 5)",
        "automation.maintenance_schedules[0].rrule (line 8)",
        "automation.maintenance_schedules[0].services[1] (line 11)",
    ], found
    assert "interval must be between 10s and 7d" in found[0]
    assert found[1].endswith(
        "'a' at line 5 is already the name of the heartbeat at line 4 (automation.heartbeats[0].name)"
    )
    assert found[2].endswith("'zz' is not a service in this file (known: api)")
    assert found[4].endswith("'ghost' is not a service in this file (known: api)")


def test_what_did_not_parse_is_never_reported_as_unknown() -> None:
    """A service whose name did not parse is not missing: the checks that read it stay quiet, the others
    (their sections parsed) still run."""
    found = problems_of(
        "services: [{name: 'bad name'}, {name: api, dependencies: [db]}]\n"
        "roles: [scribe]\n"
        "automation:\n"
        "  heartbeats: [{name: h, interval: 1m, service: api}]\n"
    )
    assert found == [
        "services[0].name (line 1): must be letters, digits, '-', '_' or '.'",
        "roles (line 2): 'commander' must be one of the roles",
    ]
    found = problems_of(
        "severities: 3\n"
        "severity_rules: [{severity: P9, reason: r, when: {}}]\n"
        "services: [{name: api, tier: 9}]\n"
        "automation:\n"
        "  heartbeats: [{name: h, interval: 1m, service: ghost}]\n"
    )
    assert found == [
        "severities (line 1): Input should be a valid list",
        "services[0].tier (line 3): Input should be less than or equal to 4",
        "automation.heartbeats[0].service (line 5): 'ghost' is not a service in this file (known: api)",
    ]


def test_a_cross_reference_problem_may_hold_a_semicolon() -> None:
    """They were joined with '; ' and split again, so one holding it came out as two, one of them bogus."""
    found = problems_of(
        "notification_channels:\n  - {name: mail, type: email, templates: {nope: {subject: x}}}\n"
    )
    assert len(found) == 1
    assert found[0].startswith(
        "notification_channels[0].templates.nope (line 2): not a built-in template; allowed:"
    )


DUPLICATE = "and YAML would silently keep only the last; merge the two or remove one"


def test_a_key_given_twice_is_a_problem_at_its_second_place() -> None:
    """PyYAML keeps the last of two equal keys, silently: a second ``automation:`` appended to a good file
    passed the check and a reload ran with no rules; a rule's second ``match:`` replaced its first."""
    text = EXAMPLE_CONFIG.read_text()
    first = text.splitlines().index("automation:") + 1
    appended = problems_of(text + "automation:\n  mode: first\n")
    assert appended == [
        f"automation (line {text.count(chr(10)) + 1}): duplicate key 'automation' (column 1): already given "
        f"at line {first}, column 1, {DUPLICATE}"
    ]
    # Every one, anywhere in the file, by its place; in a flow mapping too, and as YAML builds keys (1, true).
    found = problems_of(
        "automation:\n"
        "  rules:\n"
        "    - name: r\n"
        "      match: {source: [webhook]}\n"
        "      match: {severity: [critical]}\n"
        "severity_policies: {P1: a, 'P1': b}\n"
        "paging_modes: {1: none, true: escalate}\n"
    )
    assert found == [
        f"automation.rules[0].match (line 5): duplicate key 'match' (column 7): already given at line 4, "
        f"column 7, {DUPLICATE}",
        f"severity_policies.P1 (line 6): duplicate key 'P1' (column 28): already given at line 6, column 21, "
        f"{DUPLICATE}",
        f"paging_modes.true (line 7): duplicate key 'true' (column 25): already given at line 7, column 16, "
        f"{DUPLICATE}",
    ]


def test_merge_keys_and_aliases_are_not_duplicates() -> None:
    """A key a merge (``<<``) brings in may be overridden, as YAML means; a mapping used through several
    aliases is checked once."""
    org = parse_org_config(
        "organization: Acme\n"
        "services:\n"
        "  - &base {name: api, tier: 1, description: core}\n"
        "  - <<: *base\n"
        "    name: web\n"
        "  - {<<: *base, name: db}\n"
    )
    assert [(s.name, s.tier) for s in org.services] == [("api", 1), ("web", 1), ("db", 1)]
    found = problems_of("services:\n  - &s {name: a, name: b}\n  - *s\n  - *s\n")
    assert [p.split(": ")[0] for p in found] == ["services[0].name (line 2)"]


@pytest.mark.parametrize(
    "text", ["", "\n  \n", "# all commented out\n# services: []\n", "---\n", "---\n...\n"]
)
def test_an_empty_file_is_a_problem(text: str) -> None:
    """An empty (truncated) file ran as the defaults: no services, policies or rules, nobody paged."""
    (problem,) = problems_of(text)
    assert problem.startswith("(file): the file is empty (nothing but blanks, comments or '---')")
    assert OrgConfig().severity_ids == ["P0", "P1", "P2", "P3"]  # no file at all still runs on the defaults
    assert load_org_config(None) == OrgConfig()


def test_config_check_refuses_an_empty_file_and_warns_of_one_that_routes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text("")
    empty = run_cli("config", "check", str(path), check=False, env={"COLUMNS": "300"})
    assert empty.returncode == 2 and "(file): the file is empty" in empty.stderr
    path.write_text(EXAMPLE_CONFIG.read_text() + "automation:\n  mode: first\n")
    twice = run_cli("config", "check", str(path), check=False, env={"COLUMNS": "300"})
    assert twice.returncode == 2 and "duplicate key 'automation' (column 1)" in twice.stderr
    path.write_text("organization: Acme\n")
    bare = run_cli("config", "check", str(path), check=False, env={"COLUMNS": "300"})
    assert bare.returncode == 0, bare.stderr
    assert "it defines no services, escalation policies or automation rules" in bare.stderr
    good = run_cli("config", "check", str(EXAMPLE_CONFIG), env={"COLUMNS": "300"})
    assert "defines no services" not in good.stderr


def test_every_problem_of_one_entry_is_reported_in_one_run() -> None:
    """Independent checks of one entry each report: a rule's title and its notify message, every bad regex
    of a map, an enrichment entry's severity and its template, an inhibit rule's empty source beside its
    bad target."""
    found = problems_of(
        "audiences: [{id: internal, channels: [console]}]\n"
        "automation:\n"
        "  rules:\n"
        "    - name: payments-down\n"
        "      match:\n"
        '        labels_regex: {alertname: "DB(.*", instance: "(?=x)y", job: "(a)\\\\1"}\n'
        "      incident:\n"
        '        title: "{{ incident.ref }} {{ alerts.summary }} {{ alert.status }}"\n'
        '      notify: [{audience: internal, message: "{% if %}"}]\n'
        "  enrich:\n"
        "    - name: e\n"
        "      severity: fatal\n"
        '      labels: {team: "{{ alert.labels.team ", owner: "{{ x }"}\n'
        "  inhibit_rules:\n"
        "    - {name: i, source: {}, target: {labels_regex: {x: '('}}}\n"
    )
    where = [problem.split(": ", 1)[0] for problem in found]
    assert where == [
        "automation.rules[0].match.labels_regex.alertname (line 6)",
        "automation.rules[0].match.labels_regex.instance (line 6)",
        "automation.rules[0].match.labels_regex.job (line 6)",
        "automation.rules[0].incident.title (line 8)",
        "automation.rules[0].incident.title (line 8)",
        "automation.rules[0].notify[0].message (line 9)",
        "automation.enrich[0].severity (line 12)",
        "automation.enrich[0].labels.team (line 13)",
        "automation.enrich[0].labels.owner (line 13)",
        "automation.inhibit_rules[0].source (line 15)",
        "automation.inhibit_rules[0].target.labels_regex.x (line 15)",
    ], found
    assert [found[index].split(": ", 2)[1] for index in range(3)] == [
        "bad regex 'DB(.*'",
        "bad regex '(?=x)y'",
        "bad regex '(a)\\\\1'",
    ], found
    assert "'alerts', 'incident' are never given to it" in found[3]
    assert "alert.status: alert has no such field" in found[4]
    assert "bad template: Expected an expression" in found[5]
    assert "bad template: " in found[7] and "bad template: " in found[8]
    assert "source and target each need a condition" in found[9]


def test_a_template_names_each_field_with_its_own_variable() -> None:
    """``incident.foo`` is not an alert field: each variable's unknown fields are said apart."""
    found = problems_of(
        "audiences: [{id: internal, channels: [console]}]\n"
        "automation:\n"
        "  rules:\n"
        "    - name: r\n"
        "      incident: {}\n"
        '      notify: [{audience: internal, message: "{{ alert.annotation }} {{ incident.foo }}"}]\n'
    )
    assert [problem.split(" (line 6): ", 1)[1].split("; it has")[0] for problem in found] == [
        "bad template: alert.annotation: alert has no such field",
        "bad template: incident.foo: incident has no such field",
    ], found


@pytest.mark.parametrize(
    ("section", "entries", "kind"),
    [
        ("rules", "[{name: payments-down}, {name: other}, {name: payments-down}]", "rule"),
        ("enrich", "[{name: e}, {name: f}, {name: e}]", "enrichment entry"),
        (
            "heartbeats",
            "[{name: h, interval: 1m}, {name: x, interval: 1m}, {name: h, interval: 1m}]",
            "heartbeat",
        ),
    ],
)
def test_a_name_given_twice_is_named_with_both_lines(section: str, entries: str, kind: str) -> None:
    items = yaml.safe_load(entries)
    listed = "".join(f"    - {json.dumps(item)}\n" for item in items)
    found = problems_of(f"automation:\n  {section}:\n{listed}")
    name = items[0]["name"]
    assert found == [
        f"automation.{section}[2].name (line 5): {name!r} at line 5 is already the name of the {kind} "
        f"at line 3 (automation.{section}[0].name)"
    ]


def test_services_and_audiences_given_twice_are_named() -> None:
    found = problems_of(
        "services:\n  - name: api\n  - name: api\n"
        "audiences:\n  - {id: ops, channels: [console]}\n  - {id: ops, channels: [console]}\n"
    )
    assert found == [
        "services[1].name (line 3): 'api' at line 3 is already the name of the service at line 2 "
        "(services[0].name)",
        "audiences[1].id (line 6): 'ops' at line 6 is already the name of the audience at line 5 "
        "(audiences[0].id)",
    ]


def test_people_and_policies_given_twice_are_named_with_both_lines() -> None:
    """They said only "people[1].name: 'bob' is defined twice", where services named both lines."""
    person = "{name: bob, email: bob@acme.example}"
    policy = "{name: p, steps: [{targets: [{person: bob}]}]}"
    found = problems_of(
        f"people:\n  - {person}\n  - {person}\nescalation_policies:\n  - {policy}\n  - {policy}\n"
    )
    assert [line for line in found if "already the name" in line] == [
        "people[1].name (line 3): 'bob' at line 3 is already the name of the person at line 2 "
        "(people[0].name)",
        "escalation_policies[1].name (line 6): 'p' at line 6 is already the name of the escalation policy at "
        "line 5 (escalation_policies[0].name)",
    ], found


@pytest.mark.parametrize(
    ("entry", "wanted"),
    [
        (
            '"just a string"',
            "automation.rules[0] (line 3): should be a mapping (name, match, during, …), not "
            "the text 'just a string'",
        ),
        (
            "{name: r, match: null}",
            "automation.rules[0].match (line 3): should be a mapping (source, severity, "
            "type, …), not null (empty)",
        ),
    ],
)
def test_an_entry_that_is_not_a_mapping_is_said_without_class_names(entry: str, wanted: str) -> None:
    assert problems_of(f"automation:\n  rules:\n    - {entry}\n") == [wanted]


def test_a_misspelt_key_or_value_says_what_the_place_takes() -> None:
    found = problems_of(
        "services: [{name: payments}, {name: api}]\n"
        "automation:\n"
        "  rules:\n"
        "    - name: r\n"
        "      match: {services: [payments], severity: [crtical]}\n"
        "      runbook: [x]\n"
        "      incident: {services: [paymnets]}\n"
    )
    assert found == [
        "automation.rules[0].match.severity[0] (line 5): 'crtical' is not allowed: expected 'critical', "
        "'error', 'warning' or 'info'",
        "automation.rules[0].match.services (line 5): unknown key 'services'; did you mean 'service'? "
        "(allowed here: source, severity, type, labels_regex, labels_missing, integrations, service, labels)",
        "automation.rules[0].runbook (line 6): unknown key 'runbook'; did you mean 'runbooks'? "
        "(allowed here: name, match, during, incident, runbooks, page, notify, resolve_to_monitoring, "
        "acknowledge_incident_with_alerts, resolve_after)",
        "automation.rules[0].incident.services[0] (line 7): 'paymnets' is not a service in this file; "
        "did you mean 'payments'?",
    ]
    # A notification channel is one of several kinds: the keys are those of its kind.
    found = problems_of("notification_channels:\n  - {name: mail, type: email, too: [oncall@example.com]}\n")
    assert found == [
        "notification_channels[0].too (line 2): unknown key 'too'; did you mean 'to'? (allowed here: "
        "name, to, templates, type, settings)"
    ]


def test_the_nearest_name_is_the_one_sharing_the_longest_start() -> None:
    from warroom.fields import not_in_file

    # Equally close by difflib's measure (QA: sched-095 was offered for sched-05O, a letter O for a zero).
    assert not_in_file("sched-05O", "schedule", ["sched-095", "sched-050"]).endswith(
        "did you mean 'sched-050'?"
    )
    assert not_in_file("polcy-042", "escalation policy", ["policy-042"]) == (
        "'polcy-042' is not an escalation policy in this file; did you mean 'policy-042'?"
    )


def test_an_unquoted_clock_after_ten_is_a_clock_not_a_base_60_number() -> None:
    """YAML 1.1 reads 10:00 to 23:59 as base-60 integers (600): ``handoff_time: 10:00`` was refused as "Input
    should be a valid string" while 09:00 passed. The org file reads them as YAML 1.2 does: text."""
    org = parse_org_config(
        "business_hours: {time_zone: Europe/Berlin, start: 10:00, end: 18:30}\n"
        "people: [{name: ann}]\n"
        "schedules:\n"
        "  - name: s\n"
        "    layers:\n"
        "      - shift_length: 1d\n"
        "        handoff_time: 10:00\n"
        "        start: 2026-01-05\n"
        "        participants: [ann]\n"
        "        restrictions: [{days: [0], start: 22:00, end: 23:59}]\n"
        "services: [{name: api, tier: 3}]\n"
        "escalation_policies: [{name: p, repeat: 2, steps: [{targets: [{person: ann}], delay: 1:30:00}]}]\n"
    )
    assert (org.business_hours.start, org.business_hours.end) == ("10:00", "18:30")
    layer = org.schedules[0].layers[0]
    assert layer.handoff_time == "10:00"
    assert (layer.restrictions[0].start, layer.restrictions[0].end) == ("22:00", "23:59")
    # Numbers are still numbers; a duration written HH:MM:SS still is one (as text, not as seconds).
    assert org.services[0].tier == 3 and org.escalation_policies[0].repeat == 2
    assert org.escalation_policies[0].steps[0].delay == timedelta(hours=1, minutes=30)
    from warroom.orgconfig import OrgFileLoader

    loaded = yaml.load("a: 10:00\nb: 12\nc: -7\nd: 0x1f\ne: 1.5\nf: 1_000\ng: 190:20:30.15\n", OrgFileLoader)
    assert loaded == {"a": "10:00", "b": 12, "c": -7, "d": 31, "e": 1.5, "f": 1000, "g": "190:20:30.15"}
    assert yaml.safe_load("a: 10:00")["a"] == 600  # PyYAML's own loader is left as it was


def test_the_nearest_name_is_ranked_among_every_close_one() -> None:
    """Among numbered names some twenty are equally close to svc-25 (svc-025, svc-125, svc-250, svc-295, …):
    difflib kept three of them before the shared start was looked at, and svc-295 was offered."""
    from warroom.fields import closest, not_in_file

    services = [f"svc-{number:03d}" for number in range(300)]
    assert not_in_file("svc-25", "service", services) == (
        "'svc-25' is not a service in this file; did you mean 'svc-250'?"
    )
    # The longest shared start first, then the nearest number, then the first by name.
    assert closest("svc-35", services) == "svc-035"  # no svc-350: svc-035 is the same number
    assert closest("svc-0255", services) == "svc-025"
    assert closest("team-7", ["team-17", "team-70", "team-07"]) == "team-70"
    assert closest("ab-1", ["ab-2", "ab-3"]) == "ab-2"
    assert closest("zzz", services) is None
    # Case aside: a slip of case is suggested (it was not), and of names alike but for case, the nearer one.
    assert (
        not_in_file("API", "service", ["api", "db"])
        == "'API' is not a service in this file; did you mean 'api'?"
    )
    assert closest("Api", ["API", "api"]) == "api"
    assert closest("Api", ["api", "API"]) == "api"
    assert closest("API", ["api", "Api"]) == "Api"


def test_a_problem_of_one_item_of_a_list_names_the_item_and_its_line() -> None:
    """In a long block list, "services[300].dependencies (line 607)" pointed at the list's first line when the
    name at fault was three lines below; two bad regexes of one rule were both at the first one's line."""
    found = problems_of(
        "services:\n"
        "  - name: db\n"
        "  - name: api\n"
        "    dependencies:\n"
        "      - db\n"
        "      - ghost\n"
        "people:\n"
        "  - name: ann\n"
        "teams:\n"
        "  - name: core\n"
        "    members:\n"
        "      - ann\n"
        "      - zed\n"
        "schedules:\n"
        "  - name: s\n"
        "    layers:\n"
        "      - shift_length: 1d\n"
        "        start: 2026-01-05\n"
        "        participants:\n"
        "          - ann\n"
        "          - ghost\n"
        "escalation_policies:\n"
        "  - name: p\n"
        "    steps:\n"
        "      - targets:\n"
        "          - person: ann\n"
        "          - schedule: nope\n"
        "automation:\n"
        "  rules:\n"
        "    - name: r\n"
        "      match:\n"
        "        service:\n"
        "          - api\n"
        "          - apu\n"
        "        labels_regex:\n"
        "          alertname: 'DB(.*'\n"
        "          app.kubernetes.io/name: 'x(?=y)'\n"
        "      incident:\n"
        "        services:\n"
        "          - api\n"
        "          - gone\n"
    )
    assert [problem.split(": ", 1)[0] for problem in found] == [
        "services[1].dependencies[1] (line 6)",
        "teams[0].members[1] (line 13)",
        "schedules[0].layers[0].participants[1] (line 21)",
        "escalation_policies[0].steps[0].targets[1] (line 27)",
        "automation.rules[0].match.service[1] (line 34)",
        "automation.rules[0].match.labels_regex.alertname (line 36)",
        "automation.rules[0].match.labels_regex.app.kubernetes.io/name (line 37)",
        "automation.rules[0].incident.services[1] (line 41)",
    ], found
    assert found[5].endswith(": bad regex 'DB(.*': missing ): DB(.*"), found


def test_a_dependency_cycle_is_a_problem_naming_the_chain() -> None:
    """A cycle passed silently, yet it changes grouping: with a dependency window each side's alert folds
    into the other's incident. A service depending on itself, and every knot of services, is named once."""
    found = problems_of(
        "services:\n"
        "  - {name: web, dependencies: [api]}\n"
        "  - {name: api, dependencies: [db, cache]}\n"
        "  - name: db\n"
        "    dependencies:\n"
        "      - disk\n"
        "      - web\n"
        "  - {name: cache, dependencies: [api]}\n"
        "  - {name: disk, dependencies: [disk]}\n"
        "  - {name: queue, dependencies: [web]}\n"
    )
    assert found == [
        "services[0].dependencies[0] (line 2): a dependency cycle: web -> api -> db -> web; cache is in "
        "cycles with these too (a service cannot depend on itself through others; remove one of these "
        "dependencies)",
        "services[4].dependencies[0] (line 9): a dependency cycle: disk -> disk (a service cannot depend on "
        "itself; remove it from its own dependencies)",
    ], found
    assert problems_of("services:\n  - {name: a, dependencies: [b]}\n  - {name: b, dependencies: [a]}\n") == [
        "services[0].dependencies[0] (line 2): a dependency cycle: a -> b -> a (a service cannot depend on "
        "itself through others; remove one of these dependencies)"
    ]
    # A chain (and a diamond) is no cycle.
    org = parse_org_config(
        "services:\n  - {name: web, dependencies: [api, auth]}\n  - {name: api, dependencies: [db, auth]}\n"
        "  - {name: auth, dependencies: [db]}\n  - {name: db}\n"
    )
    assert [service.name for service in org.services] == ["web", "api", "auth", "db"]


def test_a_maintenance_schedule_names_an_unknown_service_as_every_section_does() -> None:
    """It said "['svc-35'] are not services here", where every other section names the nearest one."""
    found = problems_of(
        "services: [{name: svc-035}, {name: svc-350}, {name: api}]\n"
        "automation:\n"
        "  maintenance_schedules:\n"
        "    - name: vacuum\n"
        "      rrule: FREQ=WEEKLY;BYDAY=SU;BYHOUR=2\n"
        "      duration: 1h\n"
        "      reason: r\n"
        "      services:\n"
        "        - api\n"
        "        - svc-35\n"
    )
    assert found == [
        "automation.maintenance_schedules[0].services[1] (line 10): 'svc-35' is not a service in this file; "
        "did you mean 'svc-350'?"
    ]


def test_a_yaml_syntax_error_is_one_line_at_the_line_where_it_starts(tmp_path: Path) -> None:
    """PyYAML's text spans lines and says ``in "<unicode string>"``; squashed onto one line it named two
    places, and an unclosed quote was reported where the next quote was found, 500 lines on."""
    unclosed = 'services:\n  - name: api\n    description: "the API\n  - name: db\n  - name: db\\.replica\n'
    assert problems_of(unclosed) == [
        "org.yaml (line 3): the double-quoted text that starts here (column 18) is not closed where it "
        "should be: found unknown escape character '.' at line 5, column 14"
    ]
    assert problems_of("services:\n  - name: [api\n") == [
        "org.yaml (line 2): the [ list that starts here (column 11) is not closed where it should be: "
        "expected ',' or ']', but got '<stream end>' at line 3, column 1"
    ]
    assert problems_of("services:\n\t- name: api\n") == [
        "org.yaml (line 2): found character '\\t' that cannot start any token (column 1): YAML indents with "
        "spaces, not tabs"
    ]
    assert problems_of("services:\n  - name: api\n   tier: 2\n") == [
        "org.yaml (line 3): expected <block end>, but found '<block mapping start>' (column 4), in the list "
        "that starts at line 2, column 3: check this line's indentation"
    ]
    # A control character is found while reading, before parsing: it was a traceback.
    assert problems_of('organization: "Acme\x07"\n') == [
        "org.yaml (line 1): character #x0007 (column 20) is not allowed in YAML (special characters are not "
        "allowed)"
    ]
    path = tmp_path / "org.yaml"
    path.write_text(unclosed)
    checked = run_cli("config", "check", str(path), check=False, env={"COLUMNS": "300"})
    assert checked.returncode == 2, checked.stderr
    assert f"{path} (line 3): the double-quoted text that starts here" in checked.stderr
    assert "<unicode string>" not in checked.stderr and "Traceback" not in checked.stderr


def test_a_tab_inside_a_value_is_not_called_indentation() -> None:
    """A tab after the line's first non-blank character is inside a value, not indentation."""
    assert problems_of("services:\n  - name: api\n    description: Product\tsearch\n") == [
        "org.yaml (line 3): found character '\\t' that cannot start any token (column 25): a tab inside a "
        "plain value: quote the value or use spaces"
    ]
    assert problems_of("services:\n  \t- name: api\n")[0].endswith(": YAML indents with spaces, not tabs")


def test_a_problem_with_two_places_names_both_in_words() -> None:
    """PyYAML gives some problems as two halves, each at its own place ("found duplicate anchor 's'; first
    occurrence" and "second occurrence"): they were glued into one garbled sentence that lost the first
    place's line."""
    anchors = "services:\n  - &s\n    name: a\n  - name: b\nx-a: &s 1\n"
    assert problems_of(anchors) == [
        "org.yaml (line 5): duplicate anchor 's' (column 6): first given at line 2, column 5"
    ]
    assert problems_of("services:\n  - name: a\n---\nx: 1\n") == [
        "org.yaml (line 3): expected a single document in the stream (at line 1, column 1), but found "
        "another document (column 1)"
    ]


def test_config_check_lists_problems_in_the_files_order() -> None:
    """Field problems came first, then the cross-reference ones, each check in its own order: line 900,
    line 12, line 640. A person fixes a file top to bottom."""
    found = problems_of(
        "services:\n"
        "  - {name: api, dependencies: [ghost]}\n"
        "  - {name: web, tier: 9}\n"
        "people:\n"
        "  - {name: ann, time_zone: Mars/Olympus}\n"
        "teams:\n"
        "  - {name: core, members: [nobody]}\n"
        "roles: [scribe]\n"
    )
    assert [int(problem.split("(line ")[1].split(")")[0]) for problem in found] == [2, 3, 5, 7, 8], found


HIDDEN = "must not contain control or formatting characters (line breaks, direction marks)"


def test_a_display_name_is_one_visible_line(tmp_path: Path) -> None:
    """A person's (or a team's) display name is what pages, timelines and the web UI show for them: a line
    break, an escape or a direction mark in it made one entry read as another. It is checked as strictly
    as the handle, with its line; empty (the handle is shown) and ordinary names with accents, emoji and
    inner spaces are fine, trimmed."""
    found = problems_of(
        "people:\n"
        '  - name: bob\n    display_name: "Bob\\r\\nINC-1 resolved by alice"\n'
        '  - name: carol\n    display_name: "Carol \\u202eWagner"\n'
        '  - name: dave\n    display_name: "Dave\\tMiller"\n'
        '  - name: erin\n    display_name: "Erin \\e[2J"\n'
        '  - name: fred\n    display_name: "   "\n'
        "teams:\n"
        '  - name: dba\n    display_name: "DBA\\nteam"\n    members: [bob]\n'
    )
    assert found == [
        f"people[0].display_name (line 3): {HIDDEN}",
        f"people[1].display_name (line 5): {HIDDEN}",
        f"people[2].display_name (line 7): {HIDDEN}",
        f"people[3].display_name (line 9): {HIDDEN}",
        "people[4].display_name (line 11): must not be blank",
        f"teams[0].display_name (line 14): {HIDDEN}",
    ], found
    org = parse_org_config(
        "people:\n"
        "  - name: ana\n    display_name: ' Ana Müller-Łukasz 👩\u200d💻 '\n"
        "  - name: ben\n"
        "teams:\n  - name: ops\n    display_name: Ops & SRE\n    members: [ana, ben]\n"
    )
    assert [person.label for person in org.people] == ["Ana Müller-Łukasz 👩\u200d💻", "ben"]
    bad_file = tmp_path / "org.yaml"
    bad_file.write_text('people:\n  - name: bob\n    display_name: "Bob\\u202e"\n')
    checked = run_cli("config", "check", str(bad_file), check=False)
    assert checked.returncode == 2
    assert f"people[0].display_name (line 3): {HIDDEN}" in checked.stderr
