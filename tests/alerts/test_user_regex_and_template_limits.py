"""User-written regexes run in linear time (RE2), and user-written templates are bounded in what they build.

Both are the org file's or an API caller's text run on every alert: a responder's maintenance window with
``(a|a)*b`` stalled all alert intake, and a rule title of ``'ab' * 50000000`` took a gigabyte."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.alerts.test_maintenance import send, start_window
from tests.alerts.test_rule_templates_strict import org_with_rules
from warroom import templating
from warroom.alerts import automation
from warroom.alerts.config import AlertConditions, EmailRule, TemplateRenderer, compiled_regex
from warroom.alerts.models import Alert, MaintenanceWindow
from warroom.context import AppContext
from warroom.errors import InvalidInput
from warroom.notify.config import ConsoleChannel
from warroom.notify.render import render as render_message
from warroom.orgconfig import ConfigError
from warroom.templating import MAX_LENGTH, MAX_WIDTH
from warroom.userregex import RegexError

# --- regexes ---------------------------------------------------------------------------------------------


def test_a_catastrophic_pattern_matches_a_long_text_in_linear_time() -> None:
    """Python's backtracking ``re`` takes 2^n steps for ``(a|a)*b`` on n a's (minutes at 30); RE2 cannot
    backtrack. Run in a child so that a regression fails the test (on its generous timeout) instead of
    hanging the suite."""
    code = (
        "from warroom.alerts.config import AlertConditions, AlertFacts, compiled_regex\n"
        "text = 'a' * 100_000\n"
        "assert compiled_regex('(a|a)*b').fullmatch(text) is None\n"
        "assert compiled_regex('(a+)+$').search(text + '!') is None\n"
        "conditions = AlertConditions(labels_regex={'instance': '(a|a)*b'})\n"
        "facts = AlertFacts('generic', 'critical', 'x', None, {'instance': text})\n"
        "assert not conditions.accepts(facts)\n"
        "print('done')\n"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "done"


@pytest.mark.parametrize(
    ("pattern", "said"),
    [
        (r"(a)\1", r"a backreference (\1) is not supported"),
        (r"(?P<x>a)(?P=x)", "a backreference (?P=name) is not supported"),
        (r"db(?=-primary)", "lookahead (?=...) is not supported"),
        (r"db(?!-replica)", "negative lookahead (?!...) is not supported"),
        (r"(?<=db-)\d+", "lookbehind (?<=...) is not supported"),
        (r"(?<!x)y", "negative lookbehind (?<!...) is not supported"),
        (r"(?>a+)b", "an atomic group (?>...) is not supported"),
        (r"a*+b", "a possessive repeat"),
        (r"db\Z", r"write \z"),
        (r"(?x) a b", "supported inline flags"),
        (r"((a{100}){100}){100}", "invalid repetition size"),
        ("a" * 5000, "pattern too long"),
        ("(", "missing )"),
    ],
)
def test_a_pattern_linear_matching_cannot_run_is_refused_and_says_why(pattern: str, said: str) -> None:
    with pytest.raises(RegexError) as caught:
        compiled_regex(pattern)
    assert said in str(caught.value)
    with pytest.raises(ValueError, match="bad regex") as refused:
        AlertConditions(labels_regex={"instance": pattern})
    assert said in str(refused.value)
    if "lookahead" in said or "backreference" in said:
        assert "RE2" in str(caught.value) and "linear time" in str(caught.value)


def test_config_check_refuses_a_rule_matching_with_lookahead() -> None:
    rule = {"name": "db", "match": {"labels_regex": {"instance": "db(?!-replica)"}}, "incident": {}}
    with pytest.raises(ConfigError) as caught:
        org_with_rules(rule)
    assert "negative lookahead (?!...) is not supported" in str(caught.value)


def test_patterns_read_as_before() -> None:
    """What people write keeps working: classes, anchors, named groups, inline flags, non-ASCII text."""
    assert compiled_regex(r"db-[0-9]+").fullmatch("db-12")
    assert not compiled_regex(r"db-[0-9]+").fullmatch("db-12-replica")
    assert compiled_regex(r"(?i)^PROD$").fullmatch("prod")
    found = compiled_regex(r"host=(?P<host>\S+)").search("disk full host=db1 now")
    assert found is not None and found.group("host") == "db1" and found.group(1) == "db1"
    assert compiled_regex(r"café \p{L}+").fullmatch("café über")
    assert compiled_regex("x").search("\ud800x") is not None  # a lone surrogate from JSON is no error
    rule = EmailRule(
        name="backup", subject=r"Backup (?P<job>\w+) (?P<state>completed|failed)", resolve="COMPLETED"
    )
    read = rule.read("ops@example.com", "BACKUP nightly Completed")
    assert read == ({"job": "nightly"}, "Completed") and rule.resolves("Completed")


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{{ 'host=db1 x' | regex_search('host=(\\\\S+)', 1) }}", "db1"),
        ("{{ 'host=db1 x' | regex_search('host=(?P<h>\\\\S+)', 'h') }}", "db1"),
        ("{{ 'a-b' | regex_replace('(\\\\w)-(\\\\w)', '\\\\2·\\\\1 é') }}", "b·a é"),
        ("{{ 'a-b' | regex_replace('(?P<x>a)', '[\\\\g<x>]\\\\n') }}", "[a]\n-b"),
        ("{{ 'abc' | regex_replace('', '.') }}", ".a.b.c."),
    ],
)
def test_the_regex_filters_read_as_re_does(template: str, rendered: str) -> None:
    alert = Alert(summary="s", alert_type="T", labels={}, annotations={}, handler_errors=[])
    assert automation.render(template, alert, "rule r: incident.title") == rendered
    assert alert.handler_errors == []


def test_a_filter_pattern_it_refuses_fails_the_template_with_the_reason() -> None:
    alert = Alert(summary="aa", alert_type="T", labels={}, annotations={}, handler_errors=[])
    assert automation.render("{{ alert.summary | regex_search('(a)\\\\1') }}", alert, "rule r: x") == ""
    [failure] = alert.handler_errors
    assert failure["event"] == "template" and "backreference" in failure["error"]


def test_a_responder_cannot_make_a_window_with_a_pattern_it_refuses(
    api: TestClient, responder: dict[str, str]
) -> None:
    body = {"reason": "x", "match": {"labels_regex": {"instance": "db(?=1)"}}, "duration": "30m"}
    response = api.post("/api/v1/maintenance", json=body, headers=responder)
    assert response.status_code == 422, response.text
    assert "lookahead (?=...) is not supported" in response.text


def test_a_catastrophic_window_does_not_stall_intake(
    api: TestClient, responder: dict[str, str], generic_key: str
) -> None:
    """The reported attack: a window with ``(a|a)*b`` and an alert with a long run of a's."""
    start_window(api, responder, match={"labels_regex": {"instance": "(a|a)*b"}}, duration="30m")
    result = send(api, generic_key, "long", labels={"instance": "a" * 5000})
    assert result["incident"] is not None  # not held: the label does not match


def test_a_stored_window_with_a_pattern_now_refused_matches_nothing(
    api: TestClient, context: AppContext, responder: dict[str, str], generic_key: str, viewer: dict[str, str]
) -> None:
    """A window stored before patterns ran on RE2 may hold a lookahead: intake goes on, and it holds no
    alert, where failing validation on each read would refuse every alert."""
    window = start_window(api, responder, match={"labels_regex": {"instance": "db-1"}}, duration="30m")
    with context.db.write() as session:
        session.execute(
            update(MaintenanceWindow)
            .where(MaintenanceWindow.id == window["id"])
            .values(conditions={"labels_regex": {"instance": "db-(?=1)1"}})
        )
    result = send(api, generic_key, "db", labels={"instance": "db-1"})
    assert result["incident"] is not None
    listed = api.get(f"/api/v1/maintenance/{window['ref']}", headers=viewer)
    assert listed.status_code == 200 and listed.json()["match"]["labels_regex"] == {"instance": "db-(?=1)1"}


# --- templates -------------------------------------------------------------------------------------------

OVER = MAX_LENGTH // 2 + 1  # 'ab' * OVER passes MAX_LENGTH


@pytest.mark.parametrize(
    "template",
    [
        f"{{{{ ('ab' * {OVER}) ~ lipsum(n=3) }}}}",
        f"{{{{ {OVER} * 'ab' }}}}",
        f"{{{{ (['ab'] * {MAX_LENGTH + 1}) | length }}}}",
        f"{{{{ 'x' | center({MAX_WIDTH + 1}) }}}}",
        f"{{{{ 'x' | indent({MAX_WIDTH + 1}, true) }}}}",
        f"{{{{ 'x'.ljust({MAX_WIDTH + 1}) }}}}",
        f"{{{{ 'x'.zfill({MAX_WIDTH + 1}) }}}}",
        f"{{{{ '%{MAX_WIDTH + 1}d' % 1 }}}}",
        f"{{{{ '%.{MAX_WIDTH + 1}f' % 1.0 }}}}",
        f"{{{{ '%*d' % ({MAX_WIDTH + 1}, 1) }}}}",
        f"{{{{ '%{MAX_WIDTH + 1}s' | format('x') }}}}",
        f"{{{{ '{{:>{MAX_WIDTH + 1}}}'.format(1) }}}}",
        f"{{{{ '{{:{{}}}}'.format(1, {MAX_WIDTH + 1}) }}}}",
        "{{ 2 ** 200000 }}",
        "{{ lipsum(n=1000) }}",
        # Doubling, a step at a time: each step is checked, not only the output.
        "{% set ns = namespace(s='ab') %}{% for i in range(25) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}x",
        "{% set ns = namespace(s='ab') %}{% for i in range(25) %}{% set ns.s = ns.s + ns.s %}{% endfor %}x",
        "{{ ('a' * 2000) | replace('', 'b' * 1000) | length }}",
        "{{ ('a' * 2000).replace('a', 'b' * 1000) | length }}",
        "{{ ('a' * 2000) | regex_replace('', 'b' * 1000) | length }}",
        "{{ (['ab' * 1000] * 1000) | join(',') | length }}",
        "{{ ','.join(['ab' * 1000] * 1000) | length }}",
        # Lists of long strings: each string is within the limit, the list is not.
        "{{ (['ab' * 1000] * 1000) | length }}",
        "{{ range(1000) | map('string') | map('center', 10000) | list | length }}",
        "{{ range(1000) | map('string') | map('center', 10000) | sort | first }}",
        "{{ range(1000) | map('string') | map('center', 10000) | batch(10) | list | length }}",
        # The output itself: many small pieces.
        "{% for i in range(100000) %}{{ 'abcdefghijk' }}{% endfor %}",
        "{% set x %}{% for i in range(100000) %}abcdefghijk{% endfor %}{% endset %}{{ x | length }}",
    ],
)
def test_a_template_building_too_much_fails_and_the_failure_is_kept(template: str) -> None:
    alert = Alert(summary="disk full", alert_type="DiskFull", labels={}, annotations={}, handler_errors=[])
    assert automation.render(template, alert, "rule disk: incident.title") == ""
    [failure] = alert.handler_errors
    assert failure["event"] == "template", failure
    assert failure["error"].startswith(("TemplateLimitError", "RegexError")), failure


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{{ 'ab' * 3 }}{{ [1] * 2 }}{{ 2 ** 10 }}{{ 7 % 3 }}{{ 'a' + 'b' }}", "ababab[1, 1]10241ab"),
        (
            "[{{ 'x' | center(5) }}|{{ 'a\nb' | indent(2, true) }}|{{ 'x'.rjust(3, '-') }}]",
            "[  x  |  a\n  b|--x]",
        ),
        ("[{{ '%5.1f|%-3s|' % (2.25, 'a') }}{{ '%(n)03d' % {'n': 7} }}]", "[  2.2|a  |007]"),
        ("[{{ '{:>4}|{:.2f}'.format('a', 1) }}{{ '%s-%s' | format('a', 'b') }}]", "[   a|1.00a-b]"),
        ("{{ ', '.join(labels.keys()) }}|{{ labels.values() | join('/') }}", "env, team|prod/db"),
        (
            "{{ 'a\tb'.expandtabs(4) }}{{ 'aXa'.replace('X', '-') }}{{ 'aa' | replace('a', 'b', 1) }}",
            "a   ba-aba",
        ),
        ("{{ lipsum(n=2, html=false) | length > 0 }}", "True"),
        (
            "{{ labels | list | sort | join(',') }}|{{ 'ba' | list | sort | join }}|{{ 'ab' | reverse }}"
            "|{{ [2, 1, 2] | unique | list | reverse | list }}|{{ range(3) | slice(2) | list }}",
            "env,team|ab|ba|[1, 2]|[[0, 1], [2]]",
        ),
    ],
)
def test_templates_within_the_limits_render_as_before(template: str, rendered: str) -> None:
    alert = Alert(
        summary="s", alert_type="T", labels={"env": "prod", "team": "db"}, annotations={}, handler_errors=[]
    )
    assert automation.render(template, alert, "rule r: incident.title") == rendered
    assert alert.handler_errors == []


def test_a_webhook_format_template_building_too_much_is_a_recorded_failure() -> None:
    renderer = TemplateRenderer({"payload": {"name": "ab"}}, where="formats.kuma.")
    assert renderer.text("summary", f"{{{{ payload.name * {OVER} }}}}") == ""
    assert renderer.value("dedup_key", f"payload.name * {OVER}") is None
    assert [error["field"] for error in renderer.errors] == ["formats.kuma.summary", "formats.kuma.dedup_key"]
    assert all(error["message"].startswith("TemplateLimitError") for error in renderer.errors)


FOREVER = "{% for a in range(100000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}x"


def test_a_rule_template_running_too_long_is_stopped_and_the_failure_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nested loops build nothing, so no size check stops them: 10 ** 10 turns would hold the thread that
    # routes alerts for hours.
    monkeypatch.setattr(templating, "MAX_RENDER_SECONDS", 0.2)
    alert = Alert(summary="disk full", alert_type="DiskFull", labels={}, annotations={}, handler_errors=[])
    assert automation.render(FOREVER, alert, "rule disk: incident.title") == ""
    [failure] = alert.handler_errors
    assert failure["error"] == "TemplateTimeLimitError: the template ran longer than 0.2 s, its limit"
    # The thread goes on: the next template renders, and nothing stopped is left pending for it.
    assert automation.render("{{ alert.summary }}", alert, "rule disk: incident.title") == "disk full"
    time.sleep(0.3)
    assert automation.render("{{ alert.summary }}", alert, "rule disk: incident.title") == "disk full"
    assert len(alert.handler_errors) == 1


def test_a_webhook_format_running_too_long_is_a_recorded_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templating, "MAX_RENDER_SECONDS", 0.05)
    renderer = TemplateRenderer({"payload": {}}, where="formats.kuma.")
    assert renderer.text("summary", FOREVER) == ""
    slow = "((range(100000) | list) * 10) | map('string') | map('center', 100) | map('length') | sum"
    assert renderer.value("dedup_key", slow) is None
    assert [(error["field"], error["message"]) for error in renderer.errors] == [
        (field, "TemplateTimeLimitError: the template ran longer than 0.05 s, its limit")
        for field in ("formats.kuma.summary", "formats.kuma.dedup_key")
    ]


def test_a_channel_template_running_too_long_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templating, "MAX_RENDER_SECONDS", 0.2)
    channel = ConsoleChannel.model_validate(
        {"name": "ops", "type": "console", "templates": {"message": {"text": FOREVER}}}
    )
    with pytest.raises(InvalidInput) as caught:
        render_message(channel, "message", {"message": "hi", "subject": "hi", "incident": None})
    assert "could not be rendered: the template ran longer than 0.2 s" in str(caught.value)


def test_renders_in_many_threads_are_stopped_each_at_its_own_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(templating, "MAX_RENDER_SECONDS", 0.2)
    environment = templating.LimitedSandbox()
    endless, quick = environment.from_string(FOREVER), environment.from_string("{{ n }}")
    outcomes: dict[int, list[str]] = {}

    def work(number: int) -> None:
        seen = outcomes.setdefault(number, [])
        for round_number in range(3):
            seen.append(quick.render(n=round_number))
            if number % 2:
                try:
                    endless.render()
                except templating.TemplateTimeLimitError:
                    seen.append("stopped")

    threads = [threading.Thread(target=work, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {
        number: ["0", "stopped", "1", "stopped", "2", "stopped"] if number % 2 else ["0", "1", "2"]
        for number in range(6)
    }


def test_a_channel_template_building_too_much_is_refused() -> None:
    channel = ConsoleChannel.model_validate(
        {"name": "ops", "type": "console", "templates": {"message": {"text": f"{{{{ 'ab' * {OVER} }}}}"}}}
    )
    with pytest.raises(InvalidInput) as caught:
        render_message(channel, "message", {"message": "hi", "subject": "hi", "incident": None})
    assert "could not be rendered" in str(caught.value) and "at most" in str(caught.value)
