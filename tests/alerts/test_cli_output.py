"""The CLI prints what alerts, people and files say as plain text: brackets in a summary are not markup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from rich.cells import cell_len
from rich.text import Text
from typer.testing import CliRunner

from tests.alerts.conftest import make_key, payload
from warroom.alerts.schemas import AlertDetail, AlertPage, AlertRead, MaintenanceRead
from warroom.app import AppContext
from warroom.cli import alerts as alerts_cli
from warroom.cli import maintenance as maintenance_cli
from warroom.cli.main import app
from warroom.cli.output import (
    IdColumn,
    SafeConsole,
    WordColumn,
    build_table,
    console,
    error_console,
    fail,
    short_when,
    table,
)
from warroom.client import Client
from warroom.notify.models import DeliveryStatus
from warroom.notify.schemas import DeliveryPage, DeliveryRead

TRICKY = "disk [/] full on [red]db-1[/red] \\[x]"


def test_alert_text_with_brackets_prints_as_itself(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    alert = {"summary": TRICKY, "dedup_key": "[bold]", "labels": {"alertname": "[Disk]", "path": "[/]"}}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=alert).status_code == 202
    detail = AlertDetail.model_validate(api.get("/api/v1/alerts/1", headers=viewer).json())
    with console.capture() as captured:
        alerts_cli._show(detail)
        table(
            "Alerts", ["id", "summary"], [alerts_cli.alert_row(AlertRead.model_validate(detail.model_dump()))]
        )
    printed = captured.get()
    assert printed.count(TRICKY) == 1  # the show header; the table cell wraps, so check its pieces
    assert "[Disk]" in printed and "[bold]" in printed and "[/]" in printed
    assert "[red]db-1[/red]" in printed


def test_a_maintenance_regex_and_reason_print_as_themselves() -> None:
    moment = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    window = MaintenanceRead.model_validate(
        {
            "id": 1,
            "ref": "MW-1",
            "reason": "rebuild [/] replicas",
            "services": [],
            "labels": {},
            "match": {"labels_regex": {"instance": "db-[a-z]+"}},
            "starts_at": moment,
            "ends_at": moment,
            "state": "active",
            "created_by": "alice",
            "created_at": moment,
        }
    )
    with console.capture() as captured:
        console.print(maintenance_cli._summary(window))
    printed = captured.get()
    assert "instance=~db-[a-z]+" in printed and "rebuild [/] replicas" in printed


def test_an_error_message_with_brackets_prints_as_itself() -> None:
    with error_console.capture() as captured, pytest.raises(typer.Exit):
        fail("unknown service '[/]'")
    assert "unknown service '[/]'" in captured.get()


def test_control_characters_in_alert_text_are_shown_not_obeyed(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    """Alert text must not clear a responder's screen, retitle the window or reverse what the line says.
    Escapes are shown as ␛, direction marks by name; Rich's own styling stays. (A customer report, which
    needs no key, has its summary made one line at intake: none of it reaches a terminal.)"""
    report = {
        "contact": "x@example.com",
        "description": "hi \x1b[2J\x1b[H\x1b[8mhidden",
        "affected_feature": "checkout\x1b]0;pwned\x07 \u202eevil",
    }
    assert api.post("/api/v1/reports", json=report).status_code == 202
    alert = {
        "summary": "esc \x1b[31mred \x1b[2J \x1b]0;pwned\x07 \u202eevil",
        "dedup_key": "esc",
        "labels": {"host": "\x1b[1mbold\x9b"},
    }
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=alert).status_code == 202
    shown = []
    for alert_id in (1, 2):
        detail = AlertDetail.model_validate(api.get(f"/api/v1/alerts/{alert_id}", headers=viewer).json())
        with console.capture() as captured:
            alerts_cli._show(detail)
            table(
                "Alerts",
                ["id", "summary"],
                [alerts_cli.alert_row(AlertRead.model_validate(detail.model_dump()))],
            )
        shown.append(captured.get())
    printed = "".join(shown)
    assert (
        "\x1b" not in printed and "\x07" not in printed and "\u202e" not in printed and "\x9b" not in printed
    )
    assert (
        "␛[2J" in printed
        and "␛]0;pwned" in printed
        and "<U+202E>evil" in printed
        and "bold<U+009B>" in printed
    )
    with console.capture() as styled:
        console.print("[bold]styled[/]", Text("kept", style="red"))
    assert "styled" in styled.get()  # not a terminal here: no styling either way, and nothing broken


def test_styling_still_reaches_a_real_terminal() -> None:
    terminal = SafeConsole(force_terminal=True, color_system="standard", width=80)
    with terminal.capture() as captured:
        terminal.print(Text("alarm \x1b[2J", style="bold red"))
    printed = captured.get()
    assert "\x1b[1;31m" in printed and "alarm ␛[2J" in printed and "\x1b[2J" not in printed


def _lines(renderable: object, width: int = 80) -> list[str]:
    terminal = SafeConsole(width=width, force_terminal=False)
    with terminal.capture() as captured:
        terminal.print(renderable)
    return captured.get().splitlines()


def _one_alert(api: TestClient, generic_key: str, viewer: dict[str, str], **alert: Any) -> AlertRead:
    body = {"summary": "Disk almost full on db-1 mount /var/lib/postgresql", "dedup_key": "disk", **alert}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=body).status_code == 202
    items = api.get("/api/v1/alerts", headers=viewer).json()["items"]
    return AlertRead.model_validate(items[0])


def test_ids_are_whole_in_an_80_column_terminal(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    """At 80 columns every id printed as ``ALR-1…`` once ids reached ALR-100: which one to acknowledge?"""
    alert = _one_alert(api, generic_key, viewer, service="database", severity="critical")
    refs = [f"ALR-{n}" for n in (100, 101, 10234)]
    page = AlertPage(
        items=[
            alert.model_copy(update={"ref": ref, "incident": incident})
            for ref, incident in zip(refs, ["INC-1234", None, "INC-99999"], strict=True)
        ],
        total=3,
        limit=50,
        offset=0,
    )
    for width in (80, 72):
        lines = _lines(alerts_cli._alerts_table(page), width)
        printed = "\n".join(lines)
        for ref in [*refs, "INC-1234", "INC-99999"]:
            assert f" {ref} " in printed, (width, printed)
        assert "not shown at this width: source" in printed  # other columns gave up the room
        assert max(cell_len(line) for line in lines) <= width, printed


def test_an_id_column_is_never_wrapped_nor_cut() -> None:
    """The one helper every CLI table of ids uses (alerts, incidents, jobs, notifications, maintenance,
    changes, overrides, tokens): its cells stay whole; a cell of words wraps between them only."""
    words = "a long text that has to wrap " * 3
    rows = [(f"MW-{n}", Text("inhibited by ALR-123456"), words, words, words) for n in (7, 12345)]
    lines = _lines(build_table("Windows", [IdColumn("id"), IdColumn("held"), "a", "b", "c"], rows), 40)
    printed = "\n".join(lines)
    assert " MW-7 " in printed and " MW-12345 " in printed and " ALR-123456 " in printed, printed
    assert max(cell_len(line) for line in lines) <= 40, printed
    # An empty table, or an id column of numbers, still works.
    assert "id" in "\n".join(_lines(build_table(None, [IdColumn("id"), "name"], []), 40))
    assert " 123456789 " in "\n".join(
        _lines(build_table(None, [IdColumn("#"), "x"], [(123456789, words)]), 30)
    )


def test_control_characters_in_a_table_keep_its_columns_aligned(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    """A stand-in such as <U+202E> is as wide as it prints: Rich measured the cell before it was put in (a
    control character has no width to Rich), so the row came out wider than the table."""
    summary = "Uni \u202e reversed, \x85 next line, \x1b[2J clear, \u2066isolate\u2069 and \u200e mark"
    alert = _one_alert(api, generic_key, viewer, summary=summary, labels={"host": "db\x9b1"})
    page = AlertPage(
        items=[alert, alert.model_copy(update={"summary": "plain"})], total=2, limit=50, offset=0
    )
    for width in (80, 120, 200):
        lines = _lines(alerts_cli._alerts_table(page), width)
        printed = "\n".join(lines)
        if width == 200:  # room for the whole summary
            assert "<U+202E>" in printed and "<U+0085>" in printed and "␛[2J" in printed, printed
        body = lines[1:]  # under the title
        assert len({cell_len(line) for line in body}) == 1, printed  # every line as wide: aligned
        assert max(cell_len(line) for line in lines) <= width
    # Styled text keeps its style on the same characters, and a line of it wraps at the console's width.
    terminal = SafeConsole(force_terminal=True, color_system="standard", width=40)
    with terminal.capture() as captured:
        terminal.print(Text.assemble(("a\u202eb ", "red"), ("xxxxx", "bold")))
        terminal.print("\u202e " * 12)
    printed = captured.get()
    assert "\x1b[31ma<U+202E>b \x1b[0m\x1b[1mxxxxx\x1b[0m" in printed, repr(printed)
    assert all(cell_len(Text.from_ansi(line).plain) <= 40 for line in printed.splitlines()), printed


def test_a_time_in_a_narrow_list_is_short() -> None:
    now = datetime(2026, 12, 6, 15, 0).astimezone()
    assert short_when(now.replace(hour=14, minute=12, second=33), now) == "14:12"
    assert short_when(now - timedelta(days=1), now) == (now - timedelta(days=1)).strftime("%b %d 15:00")
    assert short_when(now + timedelta(days=40), now) == (now + timedelta(days=40)).strftime("%Y-%m-%d 15:00")
    assert short_when(None, now) == "—"


@pytest.fixture
def cli_through_app(
    api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    """The CLI's API commands, answered by the test app."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client() -> Client:
        return Client("http://warroom.test", tokens["admin"], transport=httpx.MockTransport(through_the_app))

    monkeypatch.setattr("warroom.cli.alerts.Client", client)
    monkeypatch.setattr("warroom.cli.incidents.Client", client)
    yield CliRunner()


# A time as a list shows it in a narrow terminal: 14:12 today (Dec 05 14:12 if the day turned meanwhile).
SHORT_TIME = re.compile(r"(?<![\d:])\d\d:\d\d(?![\d:])")
FULL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def test_lists_are_readable_in_80_columns(
    api: TestClient,
    context: AppContext,
    am_key: str,
    generic_key: str,
    admin: dict[str, str],
    database_url: str,
    cli_through_app: CliRunner,
) -> None:
    """At 80 columns Rich narrowed every column alike: "DBRe… on db-1", severity "crit…", source "alert…",
    last seen "2026… 14:1…", heartbeat "prom…". Short words stay whole, the free text wraps, times are
    short, and what does not fit is left out, and said so."""
    body = payload("alertmanager-0.25-firing.json")
    firing = body["alerts"][0]
    body["alerts"] = [
        {
            **firing,
            "labels": {"alertname": "DBReplicationLag", "instance": "db-1", "severity": "critical"},
            "annotations": {"summary": "DBReplicationLag on db-1: replica is 300 seconds behind primary"},
            "fingerprint": "1",
        },
        {
            **firing,
            "labels": {"alertname": "HighErrorRate", "instance": "api-3", "severity": "warning"},
            "annotations": {"summary": "HTTP 5xx error rate above 5% on api-3 for 10 minutes"},
            "fingerprint": "2",
        },
    ]
    assert api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=body).status_code == 202
    generic = {"summary": "Disk almost full on db-1 mount /var/lib/postgresql", "dedup_key": "disk"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=generic).status_code == 202
    assert api.post("/api/v1/alerts/ALR-2/acknowledge", headers=admin).status_code == 200
    heartbeat_key = make_key(context, "heartbeat", "watchdog")
    assert api.post(f"/api/v1/heartbeats/prometheus-watchdog?key={heartbeat_key}").status_code == 200
    assert api.post(f"/api/v1/heartbeats/nightly-backup/1?key={heartbeat_key}").status_code == 200

    def shown(columns: int, *args: str) -> str:
        result = cli_through_app.invoke(app, list(args), env={"COLUMNS": str(columns)})
        assert result.exit_code == 0, result.output
        assert max(cell_len(line) for line in result.stdout.splitlines()) <= columns, result.stdout
        return result.stdout

    alerts = shown(80, "alerts", "list")
    for word in ("ALR-1", "ALR-2", "ALR-3", "firing", "acknowledged", "critical", "warning", "unrouted"):
        assert re.search(rf"(?<!\S){word}(?!\S)", alerts), (word, alerts)
    assert " DBReplicationLag on " in alerts and "…" not in alerts, alerts
    assert SHORT_TIME.search(alerts) and not FULL_TIME.search(alerts), alerts
    assert "not shown at this width: source" in alerts, alerts

    beats = shown(80, "heartbeats")
    for word in ("prometheus-watchdog", "nightly-backup", "ok", "failed", "1m", "1d"):
        assert re.search(rf"(?<!\S){word}(?!\S)", beats), (word, beats)
    assert "…" not in beats and SHORT_TIME.search(beats) and not FULL_TIME.search(beats), beats

    keys = shown(80, "integration", "list", "--database-url", database_url)
    for word in ("prometheus", "alertmanager", "scripts", "generic", "watchdog", "heartbeat"):
        assert re.search(rf"(?<!\S){word}(?!\S)", keys), (word, keys)
    assert SHORT_TIME.search(keys) and not FULL_TIME.search(keys), keys

    incidents = shown(80, "incident", "list")
    assert SHORT_TIME.search(incidents) and "investigating" in incidents and "…" not in incidents, incidents

    # Where there is room, every column and the full time, as before; and --json keeps the instant.
    for args in (["alerts", "list"], ["heartbeats"], ["integration", "list", "--database-url", database_url]):
        wide = shown(250, *args)
        assert FULL_TIME.search(wide) and "not shown" not in wide, wide
    assert "source" in shown(250, "alerts", "list") and "alertmanager" in shown(250, "alerts", "list")
    listed = cli_through_app.invoke(app, ["alerts", "list", "--json"]).stdout
    assert re.search(r'"last_seen_at": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d', listed), listed


def test_a_narrow_table_leaves_out_columns_in_their_order() -> None:
    """The columns given a ``drop`` go, lowest first, only as far as the table needs; the words of the rest
    are whole and a time column wraps between date and time, never inside them."""
    moment = datetime.now().astimezone() - timedelta(days=3)
    summary = "a long summary that has to wrap in a narrow terminal " * 2
    rows = [("ALR-12345", "acknowledged", "critical", "alertmanager", summary, "payments", 1234, moment)]
    columns = [
        IdColumn("id"),
        WordColumn("status"),
        WordColumn("sev"),
        WordColumn("source", drop=1),
        "summary",
        WordColumn("service", drop=3),
        WordColumn("count", drop=2),
        "last seen",
    ]
    day = short_when(moment).rsplit(" ", 1)[0]  # Dec 03 (2025-12-30 early in January)
    for width, left_out in ((100, "source"), (80, "source, service, count"), (260, None)):
        lines = _lines(build_table("Alerts", columns, rows), width)
        printed = "\n".join(lines)
        assert max(cell_len(line) for line in lines) <= width, printed
        for word in ("ALR-12345", "acknowledged", "critical", day):
            assert f" {word} " in printed or width == 260, (width, printed)
        if left_out:
            assert f"not shown at this width: {left_out} " in printed, printed
            assert "…" not in printed, printed
        else:
            assert "alertmanager" in printed and "not shown" not in printed and FULL_TIME.search(printed)


def _column(printed: str, header: str) -> list[str]:
    """Each row's cell of the column ``header`` in a printed table, its wrapped lines joined by spaces."""
    lines = printed.splitlines()
    head = next(i for i, line in enumerate(lines) if re.search(rf"┃ {re.escape(header)} +┃", line))
    index = [cell.strip() for cell in lines[head].split("┃")].index(header)
    cells: list[list[str]] = []
    for line in lines[head + 2 :]:
        if line.startswith("└"):
            break
        if line.startswith("├"):
            continue
        parts = [part.strip() for part in line.split("│")]
        if parts[1] or not cells:  # an id in the first column starts a row
            cells.append([])
        if parts[index]:
            cells[-1].append(parts[index])
    return [" ".join(cell) for cell in cells]


def test_lists_show_free_text_whole_or_say_it_was_cut(
    api: TestClient,
    generic_key: str,
    cli_through_app: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A summary, a subject or an error was cut at 60 or 80 characters at every width, with no "…"; the
    tables wrap free text, so only an error long enough to fill the screen is cut, and says so."""
    summary = " ".join(f"word{n:03}" for n in range(25)) + "!"
    assert len(summary) == 200
    long = {"summary": summary, "dedup_key": "long"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=long).status_code == 202
    listed = cli_through_app.invoke(app, ["alerts", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert _column(listed.stdout, "summary") == [summary], listed.stdout

    moment = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    subject = "[P1] INC-1 needs you: " + "replication lag on db-1 and db-2 " * 3
    error = "Slack answered 500: " + "upstream connect error or disconnect/reset before headers " * 8
    dead = DeliveryRead(
        id=1,
        channel="slack",
        channel_type="slack",
        recipient="#ops",
        template="page",
        subject=subject.strip(),
        body="",
        status=DeliveryStatus.dead,
        attempts=5,
        last_error=error.strip(),
        incident="INC-1",
        job_id=None,
        created_at=moment,
        updated_at=moment,
        sent_at=None,
    )

    class Deliveries:
        def __enter__(self) -> Deliveries:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def list_notifications(self, **_: object) -> DeliveryPage:
            return DeliveryPage(items=[dead], total=1, limit=50, offset=0)

    monkeypatch.setattr("warroom.cli.notify.Client", Deliveries)
    failures = cli_through_app.invoke(app, ["notify", "failures"], env={"COLUMNS": "250"})
    assert failures.exit_code == 0, failures.output
    assert _column(failures.stdout, "subject") == [subject.strip()], failures.stdout
    [shown] = _column(failures.stdout, "last error")
    assert len(error.strip()) > 300 and shown == error.strip()[:299] + "…", failures.stdout
