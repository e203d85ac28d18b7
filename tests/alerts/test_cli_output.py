"""The CLI prints what alerts, people and files say as plain text: brackets in a summary are not markup."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer
from fastapi.testclient import TestClient
from rich.text import Text

from warroom.alerts.schemas import AlertDetail, AlertRead, MaintenanceRead
from warroom.cli import alerts as alerts_cli
from warroom.cli import maintenance as maintenance_cli
from warroom.cli.output import SafeConsole, console, error_console, fail, table

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
