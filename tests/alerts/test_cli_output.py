"""The CLI prints what alerts, people and files say as plain text: brackets in a summary are not markup."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer
from fastapi.testclient import TestClient

from warroom.alerts.schemas import AlertDetail, AlertRead, MaintenanceRead
from warroom.cli import alerts as alerts_cli
from warroom.cli import maintenance as maintenance_cli
from warroom.cli.output import console, error_console, fail, table

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
