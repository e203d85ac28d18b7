"""What on-call engineers found hard to read in a terminal: `alerts show` of PagerDuty and Alertmanager
payloads, long names in `integration list`, cut values, line breaks in summaries, free text cut in narrow
terminals, times in two zones, and an alert named twice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from rich.cells import cell_len
from typer.testing import CliRunner

from tests.alerts import test_cli_output
from tests.alerts.conftest import make_key
from tests.alerts.test_cli_output import _column
from tests.conftest import machine_zone
from warroom.alerts.schemas import AlertDetail
from warroom.app import AppContext
from warroom.cli.main import app
from warroom.cli.output import NEWLINE, build_table, one_line, when

# The CLI's commands, answered by the test app.
cli_through_app = test_cli_output.cli_through_app

URL = "https://grafana.example.com/d/abc123/payments-overview?orgId=1&from=now-1h&to=now&var-instance=db-1"


def _run(runner: CliRunner, columns: int, *args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    # The raw payload of `alerts show` is JSON as it came, its long lines wrapped by the terminal (not cut).
    lines = result.stdout.split("raw payload")[0].splitlines()
    assert max(cell_len(line) for line in lines) <= columns, result.stdout
    return result.stdout


def _generic(api: TestClient, key: str, **alert: object) -> None:
    answer = api.post(f"/api/v1/alerts?key={key}", json={"dedup_key": str(alert["summary"]), **alert})
    assert answer.status_code == 202, answer.text


def _pagerduty(api: TestClient, key: str, details: object) -> None:
    event = {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": "pd-1",
        "payload": {
            "summary": "Checkout latency",
            "source": "api-1",
            "severity": "error",
            "custom_details": details,
        },
        "images": [
            {
                "src": "https://grafana.example.com/render/d/abc/chart.png",
                "href": "https://grafana.example.com",
                "alt": "Chart",
            }
        ],
    }
    assert api.post("/v2/enqueue", json=event).status_code == 202


def _values(printed: str, header: str) -> list[str]:
    """The value column of a two-column table (`show`'s), each row's lines joined without a space: a
    folded token comes back whole."""
    lines = printed.splitlines()
    head = next(i for i, line in enumerate(lines) if re.search(rf"┃ {header} +┃ value +┃", line))
    rows: list[list[str]] = []
    for line in lines[head + 2 :]:
        if line.startswith("└"):
            break
        name, value = (part.strip() for part in line.split("│")[1:3])
        if name or not rows:
            rows.append([name, ""])
        rows[-1][1] += value
    return [f"{name}={value}" for name, value in rows]


def test_show_prints_structured_values_as_json_and_an_image_with_its_source(
    api: TestClient, pd_key: str, cli_through_app: CliRunner
) -> None:
    """PagerDuty's custom_details and Alertmanager's grouped annotations printed as Python's repr
    ({'firing': …}, True, None), and an image only as its link."""
    details = {
        "firing": "Labels:\n - alertname = HighLatency\n",
        "num_firing": "1",
        "paged": True,
        "ack": None,
    }
    _pagerduty(api, pd_key, details)
    shown = _run(cli_through_app, 120, "alerts", "show", "1")
    assert "{'firing'" not in shown and "True" not in shown and "None" not in shown, shown
    assert '"num_firing": "1",' in shown and '"paged": true,' in shown and '"ack": null' in shown, shown
    assert (
        "link: Chart https://grafana.example.com (image: https://grafana.example.com/render/d/abc/chart.png)"
        in shown
    ), shown


def test_show_cuts_a_huge_value_and_says_how_to_get_it(
    api: TestClient, pd_key: str, cli_through_app: CliRunner
) -> None:
    """A 400 KB custom_details printed 422,609 characters; now a screenful, a note, and --json has all."""
    details = {"dump": "x" * 400_000}
    _pagerduty(api, pd_key, details)
    shown = _run(cli_through_app, 120, "alerts", "show", "1")
    assert len(shown) < 60_000, len(shown)
    assert "more characters not shown: warroom alerts show ALR-1 --json has all" in " ".join(shown.split())
    whole = cli_through_app.invoke(app, ["alerts", "show", "1", "--json"])
    assert whole.exit_code == 0 and whole.stdout.count("x" * 400_000) == 2  # annotations and raw payload


def test_show_says_one_occurrence(
    api: TestClient, cli_through_app: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    moment = datetime(2026, 12, 6, 21, 21, tzinfo=UTC)
    alert = AlertDetail.model_validate(
        {
            "id": 1,
            "ref": "ALR-1",
            "status": "firing",
            "severity": "warning",
            "source": "generic",
            "alert_type": "generic",
            "dedup_key": "k",
            "summary": "s",
            "service": None,
            "incident": None,
            "labels": {},
            "annotations": {},
            "links": [],
            "occurrences": 1,
            "first_seen_at": moment,
            "last_seen_at": moment,
            "integration_id": None,
            "acknowledged_at": None,
            "resolved_at": None,
            "rules": [],
            "unrouted": True,
            "handler_errors": [],
            "raw": {"a": 1},
            "last_raw": {"a": 2},
        }
    )

    class Answer:
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def get_alert(self, _: str) -> AlertDetail:
            return alert

    monkeypatch.setattr("warroom.cli.alerts.Client", Answer)
    shown = _run(CliRunner(), 120, "alerts", "show", "1")
    assert "raw payload (latest, 1 occurrence):" in shown, shown


def test_show_wraps_values_and_keeps_field_names_whole(
    api: TestClient, generic_key: str, cli_through_app: CliRunner
) -> None:
    """A dashboard URL label was cut with "…" at 80 and 100 columns; an 84-character service turned every
    field name into "…" and pushed the table past the right edge."""
    service = "payments-" + "x" * 75
    _generic(api, generic_key, summary="Disk full", service=service, labels={"dashboard": URL})
    for columns in (60, 80, 100):
        shown = _run(cli_through_app, columns, "alerts", "show", "1")
        assert "…" not in shown, shown
        fields = _values(shown, "field")
        for name in ("status", "severity", "dedup key", "service", "first seen", "last seen"):
            assert any(row.startswith(f"{name}=") for row in fields), (name, shown)
        assert f"service={service}" in fields, shown
        assert f"dashboard={URL}" in _values(shown, "label"), shown


def test_a_line_break_in_a_summary_cannot_fake_a_row(
    api: TestClient, generic_key: str, cli_through_app: CliRunner
) -> None:
    summary = "Disk 91% on db-7\n│ ALR-9999 │ resolved │ info │ generic │ all clear"
    _generic(api, generic_key, summary=summary, annotations={"description": "line one\nline two"})
    listed = _run(cli_through_app, 200, "alerts", "list")
    [row] = [line for line in listed.splitlines() if "ALR-1 " in line]
    assert f"Disk 91% on db-7{NEWLINE}│ ALR-9999" in row and "all clear" in row, listed
    assert not any(
        line.startswith("│ ") and "resolved" in line and "ALR-1 " not in line for line in listed.splitlines()
    )
    shown = _run(cli_through_app, 200, "alerts", "show", "1")
    heading = shown.splitlines()[0]
    assert heading == f"ALR-1 Disk 91% on db-7{NEWLINE}│ ALR-9999 │ resolved │ info │ generic │ all clear", (
        shown
    )
    # In show's annotations a description keeps its lines, inside its cell.
    annotations = shown.split("raw payload")[0].splitlines()
    [first] = [line for line in annotations if "line one" in line]
    [second] = [line for line in annotations if "line two" in line]
    assert first.startswith("│ description") and second.startswith("│ ") and second.endswith("│"), shown
    # Every line separator there is, not only \n.
    for breaking in ("\n", "\r\n", "\r", "\v", "\f", "\x1c", "\x85", "\u2028", "\u2029"):
        assert len(one_line(f"a{breaking}b").splitlines()) == 1, repr(breaking)
        assert len(build_table(None, ["x"], [(f"a{breaking}b",)]).rows) == 1


def test_free_text_folds_in_a_narrow_terminal(
    api: TestClient, generic_key: str, admin: dict[str, str], cli_through_app: CliRunner
) -> None:
    """At 60 columns `AM Http5xx on svc-08-am11` printed as `svc-08…`; at 100 a CJK summary as
    `…ディスクが満杯です o…`. Free text wraps, and a word longer than its column folds."""
    summaries = [f"AM Http5xx on svc-{n:02}-am11" for n in range(8)]
    summaries.append("日本語のアラート 🔥🔥 ディスクが満杯です on データベース")
    for summary in summaries:
        _generic(api, generic_key, summary=summary)
    title = "Checkout fails for EU cards on payments-gateway-eu-west-1.internal.example.com"
    assert (
        api.post("/api/v1/incidents", headers=admin, json={"title": title, "severity": "P2"}).status_code
        == 201
    )

    def joined(text: str) -> str:
        return "".join(text.split())

    for columns in (60, 80, 100):
        listed = _run(cli_through_app, columns, "alerts", "list", "--limit", "9")
        assert "…" not in listed, listed
        assert sorted(map(joined, _column(listed, "summary"))) == sorted(map(joined, summaries)), listed
        incidents = _run(cli_through_app, columns, "incident", "list")
        assert "…" not in incidents and [joined(title)] == list(map(joined, _column(incidents, "title"))), (
            incidents
        )


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with machine_zone(monkeypatch, "Asia/Kolkata"):
        yield


def test_local_times_name_their_zone(
    api: TestClient, generic_key: str, admin: dict[str, str], cli_through_app: CliRunner, kolkata: None
) -> None:
    """`alerts show` said "snoozed until 2026-12-07 02:51:12 by first-admin" (local, unnamed) while the
    timeline said "until 2026-12-06 21:21 UTC": the same moment, seemingly five and a half hours apart."""
    assert when(datetime(2026, 12, 6, 21, 21, 12, tzinfo=UTC)) == "2026-12-07 02:51:12 IST"
    _generic(api, generic_key, summary="Disk almost full on db-1")
    snoozed = _run(cli_through_app, 200, "alerts", "snooze", "1", "--for", "2h")
    end = api.get("/api/v1/alerts/1", headers=admin).json()["snoozed_until"]
    local = datetime.fromisoformat(end).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert f"ALR-1 snoozed until {local} IST" in snoozed, snoozed
    shown = _run(cli_through_app, 200, "alerts", "show", "1")
    assert f"until {local} IST by admin-user" in shown, shown
    # A list with room writes each time in full, zone and all; a narrow one writes them short, and says once
    # which zone they are in.
    assert re.search(r"\d\d:\d\d:\d\d IST", _run(cli_through_app, 250, "alerts", "list")), "wide"
    narrow = _run(cli_through_app, 80, "alerts", "list")
    assert "times in IST" in narrow and not re.search(r"\d\d:\d\d IST", narrow), narrow


@pytest.mark.parametrize(
    ("tz", "shown"),
    [
        ("UTC+3", "2026-12-06 18:21:12 -03:00"),  # POSIX: three hours behind UTC, named "UTC"
        ("Foo/Bar", "2026-12-06 21:21:12 +00:00"),  # unknown: UTC, named "Foo"
        ("Europe/London", "2026-12-06 21:21:12 GMT"),
        ("America/Sao_Paulo", "2026-12-06 18:21:12 -03:00"),
    ],
)
def test_a_zone_is_named_only_where_the_name_is_right(
    tz: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TZ=UTC+3 wrote 18:21 "UTC" for 21:21 UTC, and TZ=Foo/Bar wrote 21:21 "Foo"."""
    with machine_zone(monkeypatch, tz):
        assert when(datetime(2026, 12, 6, 21, 21, 12, tzinfo=UTC)) == shown


def test_integration_list_survives_long_names(
    context: AppContext, database_url: str, cli_through_app: CliRunner
) -> None:
    """A 57-character name cut "never" to "nev…" and the header "revoked" to "rev…" at 80 columns, the
    "last used" column to "…" once one was revoked, and left out "type" at 100; a 300-character one left
    the id column no width at all, and the note under the table was cut."""
    make_key(context, "generic", "scripts")
    make_key(context, "alertmanager", "prometheus-staging-eu-west-1-" + "k" * 28)

    def listed(columns: int) -> str:
        return _run(cli_through_app, columns, "integration", "list", "--database-url", database_url)

    def words(printed: str) -> set[str]:
        return set(re.split(r"[\s│┃]+", printed))

    for columns in (80, 100):
        printed = listed(columns)
        assert "…" not in printed.replace("h…", ""), printed  # a prefix column, where shown, ends in …
        assert {"never", "revoked", "last", "used", "generic", "1", "2"} <= words(printed), printed
        assert "(--json has all)" in printed, printed
    assert "alertmanager" in words(listed(100))
    runner = CliRunner()
    assert runner.invoke(app, ["integration", "revoke", "1", "--database-url", database_url]).exit_code == 0
    printed = listed(80)
    [scripts] = [line for line in printed.splitlines() if " scripts " in line]
    assert re.search(r" never +│ \d\d:\d\d +│$", scripts) and "…" not in printed.replace("h…", ""), printed

    make_key(context, "generic", "n" * 200)  # the longest name there may be
    for columns in (80, 100, 200):
        printed = listed(columns)
        assert "┃┃" not in printed and re.search(r"^│ 3 +│ n+ +│", printed, re.MULTILINE), printed
        assert columns == 200 or "(--json has all)" in " ".join(printed.split()), printed
        assert {"never", "revoked"} <= words(printed), printed
        assert "".join(_column(printed, "name")[2].split()) == "n" * 200, printed


def test_naming_an_alert_twice_counts_it_once(
    api: TestClient, generic_key: str, admin: dict[str, str], cli_through_app: CliRunner
) -> None:
    """`alerts attach INC-116 345 345` attached it, then failed: "already on INC-116", exit 1."""
    for n in (1, 2):
        _generic(api, generic_key, summary=f"alert {n}")
    assert (
        api.post("/api/v1/incidents", headers=admin, json={"title": "x", "severity": "P2"}).status_code == 201
    )
    attached = cli_through_app.invoke(app, ["alerts", "attach", "INC-1", "1", "1", "ALR-1", "alr-1"])
    assert attached.exit_code == 0, attached.output
    assert attached.stdout.count("attached") == 1 and "error" not in attached.output, attached.output
    acked = cli_through_app.invoke(app, ["alerts", "ack", "2", "ALR-2", "2", "--json"])
    assert acked.exit_code == 0 and '"ref": "ALR-2"' in acked.stdout, acked.output
    # A real refusal still fails the command, named once.
    again = cli_through_app.invoke(app, ["alerts", "ack", "2", "2"])
    assert again.exit_code == 1 and again.output.count("already acknowledged") == 1, again.output
