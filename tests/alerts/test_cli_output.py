"""The CLI prints what alerts, people and files say as plain text: brackets in a summary are not markup."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from rich.cells import cell_len
from rich.text import Text

from warroom.alerts.schemas import AlertDetail, AlertPage, AlertRead, MaintenanceRead
from warroom.cli import alerts as alerts_cli
from warroom.cli import maintenance as maintenance_cli
from warroom.cli.output import IdColumn, SafeConsole, build_table, console, error_console, fail, table

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
    """A customer report needs no key: its text must not clear a responder's screen, retitle the window or
    reverse what the line says. Escapes are shown as ␛, direction marks by name; Rich's own styling stays."""
    report = {
        "contact": "x@example.com",
        "description": "hi \x1b[2J\x1b[H\x1b[8mhidden",
        "affected_feature": "checkout\x1b]0;pwned\x07 \u202eevil",
    }
    assert api.post("/api/v1/reports", json=report).status_code == 202
    alert = {"summary": "esc \x1b[31mred", "dedup_key": "esc", "labels": {"host": "\x1b[1mbold\x9b"}}
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
        assert "…" in printed  # other columns gave up the room
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
