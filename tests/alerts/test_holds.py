"""What holds an alert now, as the API and the CLI show it: an alert its inhibitor or maintenance window held
and then released is shown as released (routed, or unrouted like any other), not as still held."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.alerts.test_maintenance import T0, start_window
from tests.alerts.test_metrics import scrape
from tests.alerts.test_source_ack import run_at
from warroom.alerts import digest
from warroom.cli.main import app
from warroom.client import Client
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker


def fire(api: TestClient, key: str, alertname: str, severity: str, **fields: Any) -> dict[str, Any]:
    body = {
        "summary": f"{alertname} on web-1",
        "severity": severity,
        "dedup_key": alertname,
        "type": alertname,
        "labels": {"alertname": alertname, "instance": "web-1"},
        **fields,
    }
    response = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()["alerts"][0]
    return result


def listed(api: TestClient, headers: dict[str, str], **params: Any) -> dict[int, dict[str, Any]]:
    page = api.get("/api/v1/alerts", params=params, headers=headers)
    assert page.status_code == 200, page.text
    return {row["id"]: row for row in page.json()["items"]}


def overview(api: TestClient, headers: dict[str, str]) -> tuple[int, int]:
    shown = api.get("/api/v1/alerts/overview", headers=headers).json()
    return shown["unrouted"], shown["held"]


def cli_through(api: TestClient, token: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The real CLI, its requests answered by the app under test (no server to start)."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client() -> Client:
        return Client("http://warroom.test", token, transport=httpx.MockTransport(through_the_app))

    monkeypatch.setattr("warroom.cli.alerts.Client", client)
    monkeypatch.setattr("warroom.cli.maintenance.Client", client)
    return CliRunner()


def cli(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


UNROUTED_INFO = 'warroom_alerts_unrouted{{severity="info",source="generic"}} {}.0'


def test_an_alert_its_inhibitor_released_shows_as_released_not_inhibited(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    viewer: dict[str, str],
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example's host-down rule: web-1's HostDown mutes its other alerts. An info alert no rule takes is
    unrouted once released; a critical one is routed; one that resolved while muted was never released."""
    runner = cli_through(api, tokens["viewer"], monkeypatch)
    host = fire(api, generic_key, "HostDown", "critical")
    assert host["incident"] == "INC-1"
    cold = fire(api, generic_key, "CacheCold", "info")
    errors = fire(api, generic_key, "ApiErrors", "critical")
    blip = fire(api, generic_key, "DiskBlip", "info")
    fire(api, generic_key, "DiskBlip", "info", status="resolved")
    muted = [cold["id"], errors["id"], blip["id"]]
    assert [row["incident"] for row in (cold, errors, blip)] == [None, None, None]

    # While the host is down they are held, not unrouted.
    rows = listed(api, viewer)
    for alert_id in muted:
        assert (rows[alert_id]["inhibited_by"], rows[alert_id]["held_by"]) == ("ALR-1", "ALR-1")
        assert rows[alert_id]["unrouted"] is False
    assert listed(api, viewer, unrouted=True) == {}
    assert overview(api, viewer) == (0, 2)  # open ones: the blip resolved
    assert UNROUTED_INFO.format(0) in scrape(api)
    assert cli(runner, "alerts", "list").count("inhibited by ALR-1") == 3
    shown = cli(runner, "alerts", "show", str(cold["id"]))
    assert "by ALR-1, held until that alert resolves" in shown

    fire(api, generic_key, "HostDown", "critical", status="resolved")
    rows = listed(api, viewer)
    # The info alert is released to no rule: unrouted, and still says what muted it.
    assert (rows[cold["id"]]["held_by"], rows[cold["id"]]["inhibited_by"]) == (None, "ALR-1")
    assert rows[cold["id"]]["unrouted"] is True
    # The critical one is routed: to its inhibitor's incident, still open (in monitoring).
    assert (rows[errors["id"]]["held_by"], rows[errors["id"]]["incident"]) == (None, "INC-1")
    assert rows[blip["id"]]["held_by"] is None
    # The blip resolved while muted: never released, so never routed, and not unrouted either.
    assert rows[blip["id"]]["unrouted"] is False
    assert set(listed(api, viewer, unrouted=True)) == {cold["id"]}
    assert set(listed(api, viewer, unrouted=True, firing=True)) == {cold["id"]}
    assert overview(api, viewer) == (1, 0)
    assert UNROUTED_INFO.format(1) in scrape(api)

    printed = cli(runner, "alerts", "list")
    assert "inhibited by" not in printed
    assert "unrouted (released)" in printed and "INC-1" in printed
    shown = cli(runner, "alerts", "show", str(cold["id"]))
    assert "released (was inhibited by ALR-1)" in shown and "held until" not in shown
    assert "released (was inhibited by ALR-1)" in cli(runner, "alerts", "show", str(errors["id"]))
    # It resolved while muted: it was not released, and says only what muted it.
    shown = cli(runner, "alerts", "show", str(blip["id"]))
    assert "was inhibited by ALR-1" in shown and "released" not in shown


def test_an_alert_its_maintenance_window_released_no_longer_shows_the_window(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    viewer: dict[str, str],
    responder: dict[str, str],
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    runner = cli_through(api, tokens["viewer"], monkeypatch)
    start_window(api, responder, services=["api"], duration="1h")
    # A warning pages nobody in the example: once the window ends, no rule takes it.
    held = fire(
        api, generic_key, "SlowQueries", "warning", service="api", labels={"alertname": "SlowQueries"}
    )
    assert held["incident"] is None
    row = listed(api, viewer)[held["id"]]
    assert (row["maintenance"], row["held_by"], row["unrouted"]) == ("MW-1", "MW-1", False)
    assert listed(api, viewer, unrouted=True) == {}
    assert overview(api, viewer) == (0, 1)
    assert "MW-1" in cli(runner, "alerts", "list")
    assert "arrived during MW-1, held until it ends" in cli(runner, "alerts", "show", str(held["id"]))

    run_at(worker, T0 + timedelta(hours=1, seconds=1))
    row = listed(api, viewer)[held["id"]]
    assert (row["maintenance"], row["held_by"], row["unrouted"]) == ("MW-1", None, True)
    assert set(listed(api, viewer, unrouted=True)) == {held["id"]}
    assert overview(api, viewer) == (1, 0)
    for printed in (cli(runner, "alerts", "list"), cli(runner, "maintenance", "show", "MW-1")):
        assert "unrouted (released)" in printed
        assert f"ALR-{held['id']}" in printed
    assert "MW-1" not in cli(runner, "alerts", "list")
    shown = cli(runner, "alerts", "show", str(held["id"]))
    assert "arrived during MW-1, released" in shown and "held until" not in shown


def test_an_alert_that_resolved_while_its_window_held_it_is_not_unrouted(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    viewer: dict[str, str],
    responder: dict[str, str],
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A critical search alert fires and resolves during search's window: the window never released it, so no
    rule ever had it, and it is not unrouted, after the window as during it (list, --unrouted, the digest).
    An info alert still open at the end is released to no rule, and stays unrouted once it resolves."""
    clock.set(T0)
    runner = cli_through(api, tokens["viewer"], monkeypatch)
    start_window(api, responder, services=["search"], duration="1h")
    blip = fire(api, generic_key, "SearchDown", "critical", service="search")
    fire(api, generic_key, "SearchDown", "critical", service="search", status="resolved")
    cold = fire(api, generic_key, "CacheCold", "info", service="search")
    assert listed(api, viewer, unrouted=True) == {}

    run_at(Worker(context, name="w1"), T0 + timedelta(hours=1, seconds=1))
    rows = listed(api, viewer)
    assert (rows[blip["id"]]["held_by"], rows[blip["id"]]["unrouted"]) == (None, False)
    assert (rows[cold["id"]]["held_by"], rows[cold["id"]]["unrouted"]) == (None, True)
    assert set(listed(api, viewer, unrouted=True)) == {cold["id"]}
    assert overview(api, viewer) == (1, 0)
    printed = cli(runner, "alerts", "list")
    assert printed.count("unrouted") == 1 and "unrouted (released)" in printed
    # Resolved after its release, the info alert is still unrouted: it was released, and no rule took it.
    clock.set(T0 + timedelta(hours=2))
    fire(api, generic_key, "CacheCold", "info", service="search", status="resolved")
    assert set(listed(api, viewer, unrouted=True)) == {cold["id"]}
    assert listed(api, viewer)[cold["id"]]["unrouted"] is True
    with context.db.read() as session:
        assert digest.summary(session, T0, T0 + timedelta(hours=3))["total"] == 1
