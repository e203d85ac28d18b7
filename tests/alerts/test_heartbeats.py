"""Heartbeats: a sender that stops pinging fires an alert (routed and paged like any other); the next ping
resolves it. The example org file has ``prometheus-watchdog`` (1m + 2m grace) and a rule that pages on it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.conftest import make_key
from tests.alerts.test_source_ack import run_at, sent_pages, timeline
from tests.conftest import EXAMPLE_CONFIG, job_count
from tests.e2e.server import run_cli, serve_for_cli
from warroom import reload
from warroom.alerts.heartbeats import (
    OUTPUT_LIMIT,
    OUTPUT_READ_LIMIT,
    OUTPUT_TAIL_BYTES,
    Signal,
    read_output,
)
from warroom.alerts.models import Alert, Heartbeat
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, parse_org_config

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday: carol is on call for platform-primary
WATCHDOG = "/api/v1/heartbeats/prometheus-watchdog"


@pytest.fixture
def hb_key(context: AppContext) -> str:
    return make_key(context, "heartbeat", "watchdog")


def ping(api: TestClient, key: str, name: str = "prometheus-watchdog", **kwargs: Any) -> dict[str, Any]:
    response = api.post(f"/api/v1/heartbeats/{name}?key={key}", **kwargs)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def states(api: TestClient, headers: dict[str, str]) -> dict[str, str]:
    return {h["name"]: h["state"] for h in api.get("/api/v1/heartbeats", headers=headers).json()}


def heartbeat_alerts(context: AppContext) -> list[tuple[str, int | None]]:
    with context.db.read() as session:
        rows = session.scalars(select(Alert).where(Alert.source == "heartbeat").order_by(Alert.id))
        return [(a.status.value, a.incident_id) for a in rows]


def test_a_silent_sender_fires_and_the_next_ping_resolves(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    assert states(api, viewer) == {"prometheus-watchdog": "never pinged", "nightly-backup": "never pinged"}
    answer = ping(api, hb_key, content=b'{"receiver": "watchdog", "alerts": []}')  # a body is ignored
    assert answer["pings"] == 1
    assert datetime.fromisoformat(answer["next_due_at"]) == T0 + timedelta(minutes=3)
    # Pings on time keep moving the deadline; the check due at the first one waits for the newest.
    clock.set(T0 + timedelta(minutes=1))
    ping(api, hb_key)
    with context.db.read() as session:
        assert job_count(session) == 1  # one waiting check, however many pings
    run_at(worker, T0 + timedelta(minutes=3, seconds=1))
    assert heartbeat_alerts(context) == []
    assert states(api, viewer)["prometheus-watchdog"] == "ok"

    # Then the sender goes quiet: at the deadline (last ping + 1m + 2m) the alert fires and pages.
    run_at(worker, T0 + timedelta(minutes=4, seconds=1))
    assert heartbeat_alerts(context) == [("firing", 1)]
    assert states(api, viewer)["prometheus-watchdog"] == "missed"
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["severity"] == "P1" and incident["title"].startswith("Monitoring is blind: No heartbeat")
    run_at(worker, T0 + timedelta(minutes=4, seconds=1))
    assert sent_pages(context, 1) == [("carol", "email", 1, 1)]
    metrics = api.get("/metrics").text
    assert 'warroom_heartbeat_missed{name="prometheus-watchdog"} 1.0' in metrics
    assert 'warroom_heartbeat_missed{name="nightly-backup"} 0.0' in metrics
    pinged = [line for line in metrics.splitlines() if line.startswith("warroom_heartbeat_last_ping")]
    assert len(pinged) == 1 and 'name="prometheus-watchdog"' in pinged[0]
    assert float(pinged[0].split()[-1]) == (T0 + timedelta(minutes=1)).timestamp()
    # Staying quiet fires nothing more.
    run_at(worker, T0 + timedelta(hours=1))
    assert heartbeat_alerts(context) == [("firing", 1)]

    # It comes back: the alert resolves and the incident moves to monitoring.
    clock.set(T0 + timedelta(hours=1, minutes=1))
    ping(api, hb_key)
    assert heartbeat_alerts(context) == [("resolved", 1)]
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "monitoring"
    assert any("resolved" in entry.action for entry in timeline(context, 1))
    assert states(api, viewer)["prometheus-watchdog"] == "ok"
    # And it is watched again: quiet once more, a new alert fires (the resolved one stays as it was).
    run_at(worker, T0 + timedelta(hours=1, minutes=4, seconds=1))
    assert [status for status, _ in heartbeat_alerts(context)] == ["resolved", "firing"]


def test_a_heartbeat_that_never_pinged_never_fires(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    clock.set(T0)
    run_at(Worker(context, name="w1"), T0 + timedelta(days=2))
    assert heartbeat_alerts(context) == []
    ping(api, hb_key, name="nightly-backup")
    assert states(api, viewer) == {"prometheus-watchdog": "never pinged", "nightly-backup": "ok"}


def test_a_heartbeat_watched_before_its_first_ping_fires_when_none_comes(
    context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """``first_ping_within``: a sender that was never set up is caught too, from the app's start."""
    heartbeats = [
        h.model_copy(update={"first_ping_within": timedelta(hours=1)})
        if h.name == "prometheus-watchdog"
        else h
        for h in context.org.automation.heartbeats
    ]
    automation = context.org.automation.model_copy(update={"heartbeats": heartbeats})
    context.org = context.org.model_copy(update={"automation": automation})
    clock.set(T0)
    with TestClient(create_app(context=context)) as api:
        listed = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=viewer).json()}
        assert listed["prometheus-watchdog"]["state"] == "never pinged"
        assert datetime.fromisoformat(listed["prometheus-watchdog"]["due_at"]) == T0 + timedelta(hours=1)
        assert listed["nightly-backup"]["due_at"] is None  # not watched before its first ping
    # A restart later keeps the first deadline and its one check job.
    clock.set(T0 + timedelta(minutes=30))
    with TestClient(create_app(context=context)) as api:
        pass
    with context.db.read() as session:
        checks = session.scalars(select(Job.run_at).where(Job.kind == "alerts.heartbeat_check")).all()
    assert checks == [T0 + timedelta(hours=1)]

    worker = Worker(context, name="w1")
    run_at(worker, T0 + timedelta(minutes=59))
    assert heartbeat_alerts(context) == []
    run_at(worker, T0 + timedelta(hours=1, seconds=1))
    assert heartbeat_alerts(context) == [("firing", 1)]
    with context.db.read() as session:
        alert = session.scalars(select(Alert).where(Alert.source == "heartbeat")).one()
        assert alert.summary == (
            "No heartbeat from prometheus-watchdog: it has never pinged, 1h after Warroom started watching it"
        )
    with TestClient(create_app(context=context)) as api:
        assert states(api, viewer)["prometheus-watchdog"] == "missed"
        assert "warroom_heartbeat_last_ping_timestamp_seconds{" not in api.get("/metrics").text
        # The sender is set up at last: its first ping resolves the alert, and it is watched as usual.
        clock.set(T0 + timedelta(hours=2))
        assert ping(api, hb_key)["pings"] == 1
        assert heartbeat_alerts(context) == [("resolved", 1)]
        shown = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=viewer).json()}
        assert shown["prometheus-watchdog"]["state"] == "ok"
        assert datetime.fromisoformat(shown["prometheus-watchdog"]["first_ping_at"]) == T0 + timedelta(
            hours=2
        )


def test_a_heartbeat_no_longer_watched_before_its_first_ping_does_not_fire(
    context: AppContext, viewer: dict[str, str]
) -> None:
    watched = [
        h.model_copy(update={"first_ping_within": timedelta(hours=1)})
        for h in context.org.automation.heartbeats
    ]
    original = context.org
    context.org = original.model_copy(
        update={"automation": original.automation.model_copy(update={"heartbeats": watched})}
    )
    clock.set(T0)
    with TestClient(create_app(context=context)):
        pass
    # The setting is taken out of the org file before the deadline: the pending check fires nothing.
    context.org = original
    run_at(Worker(context, name="w1"), T0 + timedelta(hours=2))
    assert heartbeat_alerts(context) == []
    with TestClient(create_app(context=context)) as api:
        assert set(states(api, viewer).values()) == {"never pinged"}
        # When its first ping comes after all, its deadline is watched: silence after it fires.
        clock.set(T0 + timedelta(hours=2, minutes=1))
        ping(api, make_key(context, "heartbeat", "watchdog"))
    run_at(Worker(context, name="w1"), T0 + timedelta(hours=2, minutes=5))
    assert heartbeat_alerts(context) == [("firing", 1)]


def test_a_heartbeat_taken_out_and_put_back_is_watched_again(
    context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """Its check ran while it was out of the org file (and ended, firing nothing); once it is back, a ping
    schedules a new check, so silence fires again."""
    original = context.org
    clock.set(T0)
    with TestClient(create_app(context=context)) as api:
        ping(api, hb_key)
    context.org = original.model_copy(
        update={"automation": original.automation.model_copy(update={"heartbeats": []})}
    )
    run_at(Worker(context, name="w1"), T0 + timedelta(minutes=4))
    assert heartbeat_alerts(context) == []
    context.org = original
    clock.set(T0 + timedelta(minutes=10))
    with TestClient(create_app(context=context)) as api:
        ping(api, hb_key)
    run_at(Worker(context, name="w1"), T0 + timedelta(minutes=14))
    assert heartbeat_alerts(context) == [("firing", 1)]


def test_bad_pings_are_refused_and_change_nothing(
    api: TestClient, context: AppContext, hb_key: str, generic_key: str
) -> None:
    clock.set(T0)

    def stored() -> tuple[int, int]:
        with context.db.read() as session:
            return (
                session.scalar(select(func.count()).select_from(Heartbeat)) or 0,
                job_count(session),
            )

    assert api.post(WATCHDOG).status_code == 401
    assert api.post(f"{WATCHDOG}?key=not-a-key").status_code == 401
    wrong_kind = api.post(f"{WATCHDOG}?key={generic_key}")
    assert wrong_kind.status_code == 403, wrong_kind.text
    unknown = api.post(f"/api/v1/heartbeats/nope?key={hb_key}")
    assert unknown.status_code == 404 and "prometheus-watchdog" in unknown.text
    assert stored() == (0, 0)
    with_bearer = api.post(WATCHDOG, headers={"Authorization": f"Bearer {hb_key}"})
    assert with_bearer.status_code == 200, with_bearer.text
    assert stored() == (1, 1)
    # A revoked key stops working.
    revoked = api.delete(
        "/api/v1/integrations/1", headers={"Authorization": f"Bearer {admin_token(context)}"}
    )
    assert revoked.status_code == 200, revoked.text
    assert api.post(f"{WATCHDOG}?key={hb_key}").status_code == 401
    with context.db.read() as session:
        assert session.scalars(select(Heartbeat.pings)).one() == 1


def admin_token(context: AppContext) -> str:
    from warroom.auth import service as auth_service
    from warroom.auth.models import Role

    with context.db.write() as session:
        return auth_service.create_token(session, name="hb-admin", role=Role.admin).token


def test_a_maintenance_window_holds_a_heartbeat_alert(
    api: TestClient, context: AppContext, hb_key: str, responder: dict[str, str]
) -> None:
    """Planned Prometheus downtime: a window on the heartbeat's label keeps its miss from paging."""
    clock.set(T0)
    ping(api, hb_key)
    window = {
        "reason": "Prometheus upgrade",
        "labels": {"heartbeat": "prometheus-watchdog"},
        "duration": "1h",
    }
    assert api.post("/api/v1/maintenance", json=window, headers=responder).status_code == 201
    run_at(Worker(context, name="w1"), T0 + timedelta(minutes=3, seconds=1))
    assert heartbeat_alerts(context) == [("firing", None)]


@pytest.mark.e2e
def test_heartbeats_cli(tmp_path: Path) -> None:
    with serve_for_cli(EXAMPLE_CONFIG, tmp_path, token_name="hb-e2e", role="viewer") as env:
        created = run_cli("integration", "create", "--name", "cron", "--type", "heartbeat", env=env).stdout
        key = created.strip().splitlines()[-1]
        response = httpx.post(f"{env['WARROOM_URL']}/api/v1/heartbeats/nightly-backup?key={key}")
        assert response.status_code == 200, response.text
        listed = run_cli("heartbeats", env=env).stdout
        assert "nightly-backup" in listed and "ok" in listed and "never pinged" in listed
        rows = {row["name"]: row for row in json.loads(run_cli("heartbeats", "--json", env=env).stdout)}
        assert rows["nightly-backup"]["pings"] == 1 and rows["nightly-backup"]["interval"] == "1d"
        # The next run fails: the table says so, with its exit status.
        failed = httpx.post(
            f"{env['WARROOM_URL']}/api/v1/heartbeats/nightly-backup/3?key={key}", content=b"oops"
        )
        assert failed.status_code == 200, failed.text
        row = next(
            line for line in run_cli("heartbeats", env=env).stdout.splitlines() if "nightly-backup" in line
        )
        assert "failed" in row and " 3 " in row


@pytest.mark.parametrize(
    ("heartbeats", "problem"),
    [
        (
            [{"name": "a", "interval": "1m"}, {"name": "a", "interval": "2m"}],
            "is already the name of the heartbeat at line",
        ),
        ([{"name": "a", "interval": "1m", "service": "nowhere"}], "'nowhere' is not a service"),
        ([{"name": "a", "interval": "5s"}], "between 10s and 7d"),
        ([{"name": "a", "interval": "1m", "grace": "30d"}], "between 0s and 7d"),
        ([{"name": "Bad Name", "interval": "1m"}], "name"),
        ([{"name": "a"}], "interval"),
        ([{"name": "a", "interval": "1m", "first_ping_within": "10s"}], "between 1m and 30d"),
        ([{"name": "a", "interval": "1m", "max_runtime": "8d"}], "between 1m and 7d"),
    ],
)
def test_heartbeat_config_is_checked(heartbeats: list[dict[str, str]], problem: str) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["heartbeats"] = heartbeats
    with pytest.raises(ConfigError) as caught:
        parse_org_config(yaml.safe_dump(data), "org.yaml")
    assert any(problem in str(line) for line in caught.value.problems), caught.value.problems


BACKUP = "/api/v1/heartbeats/nightly-backup"


def heartbeat_alert_rows(context: AppContext) -> list[Alert]:
    with context.db.read() as session:
        return list(session.scalars(select(Alert).where(Alert.source == "heartbeat").order_by(Alert.id)))


def test_a_failed_run_fires_at_once_and_the_next_good_run_resolves(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """A backup that fails every night still pings on time: its exit status is the alert, not its silence."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    assert api.post(f"{BACKUP}/0?key={hb_key}").json()["status"] == "ok"  # exit status 0: a plain ping
    assert heartbeat_alerts(context) == []

    clock.set(T0 + timedelta(days=1))
    output = "pg_dump: error: connection to server failed\n" * 3
    failed = api.post(f"{BACKUP}/2?key={hb_key}", content=output.encode())
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "failed" and failed.json()["pings"] == 2
    # The failure is a sign of life: the deadline moves as for any ping.
    assert datetime.fromisoformat(failed.json()["next_due_at"]) == T0 + timedelta(days=2, hours=2)
    [alert] = heartbeat_alert_rows(context)
    assert (alert.status.value, alert.alert_type, alert.dedup_key) == (
        "firing",
        "HeartbeatFailed",
        "heartbeat:nightly-backup:failed",
    )
    assert alert.summary == "nightly-backup reported a failed run (exit status 2)"
    assert alert.annotations == {"exit_status": "2", "output": output}
    assert (alert.severity, alert.service) == ("error", "database")
    # The example file's scheduled-job-failed rule opens a P3 (it does not page).
    incident = api.get(f"/api/v1/incidents/INC-{alert.incident_id}", headers=viewer).json()
    assert incident["severity"] == "P3"
    assert incident["title"] == "Scheduled job failed: nightly-backup reported a failed run (exit status 2)"
    listed = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=viewer).json()}
    assert listed["nightly-backup"]["state"] == "failed"
    assert listed["nightly-backup"]["last_exit_status"] == 2
    assert datetime.fromisoformat(listed["nightly-backup"]["failed_at"]) == T0 + timedelta(days=1)
    assert 'warroom_heartbeat_failed{name="nightly-backup"} 1.0' in api.get("/metrics").text

    # The next night fails again (/fail, no exit status): the same alert, one more occurrence, the new output.
    clock.set(T0 + timedelta(days=2))
    assert api.post(f"{BACKUP}/fail?key={hb_key}", content=b"disk full").json()["status"] == "failed"
    [alert] = heartbeat_alert_rows(context)
    assert alert.occurrences == 2 and alert.status.value == "firing"
    assert alert.last_raw is not None and alert.last_raw["output"] == "disk full"
    assert "exit_status" not in alert.last_raw
    # ... and what alerts show prints is this run's, not the first one's.
    assert alert.annotations == {"output": "disk full"}
    assert alert.summary == "nightly-backup reported a failed run"
    # Its deadline kept moving, so no "missed" alert fires while it keeps reporting.
    run_at(worker, T0 + timedelta(days=2, hours=3))
    assert [a.alert_type for a in heartbeat_alert_rows(context)] == ["HeartbeatFailed"]

    # A good run resolves it; the incident moves to monitoring.
    clock.set(T0 + timedelta(days=3))
    assert ping(api, hb_key, name="nightly-backup")["status"] == "ok"
    [alert] = heartbeat_alert_rows(context)
    assert alert.status.value == "resolved"
    incident = api.get(f"/api/v1/incidents/INC-{alert.incident_id}", headers=viewer).json()
    assert incident["status"] == "monitoring"
    listed = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=viewer).json()}
    assert listed["nightly-backup"]["state"] == "ok" and listed["nightly-backup"]["failed_at"] is None
    assert 'warroom_heartbeat_failed{name="nightly-backup"} 0.0' in api.get("/metrics").text


def test_a_failure_after_silence_resolves_the_miss(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """Missed, then a failed run: the sender is back (the miss resolves), and its run failed (that fires)."""
    clock.set(T0)
    ping(api, hb_key)
    run_at(Worker(context, name="w1"), T0 + timedelta(minutes=3, seconds=1))
    assert [(a.alert_type, a.status.value) for a in heartbeat_alert_rows(context)] == [
        ("HeartbeatMissed", "firing")
    ]
    clock.set(T0 + timedelta(minutes=10))
    assert api.post(f"{WATCHDOG}/fail?key={hb_key}").status_code == 200
    assert [(a.alert_type, a.status.value) for a in heartbeat_alert_rows(context)] == [
        ("HeartbeatMissed", "resolved"),
        ("HeartbeatFailed", "firing"),
    ]
    assert states(api, viewer)["prometheus-watchdog"] == "failed"


def test_a_failed_runs_output_keeps_its_tail_and_survives_bad_bytes(
    api: TestClient, context: AppContext, hb_key: str
) -> None:
    clock.set(T0)
    output = b"x" * 20_000 + b"\x00\xff the real error\n"
    assert api.post(f"{BACKUP}/1?key={hb_key}", content=output).status_code == 200
    [alert] = heartbeat_alert_rows(context)
    kept = alert.annotations["output"]
    assert kept.startswith("[...]\n") and kept.endswith("\ufffd\ufffd the real error\n")
    assert len(kept) == len("[...]\n") + 10_000


def test_a_failed_runs_report_is_never_refused_for_its_body(
    api: TestClient, context: AppContext, hb_key: str
) -> None:
    """A cron job's log over the request limit, sent whole or chunked, a JSON body with an escaped NUL and an
    unrelated query parameter with one: each is recorded with its output's tail (the request guard's limit
    and NUL checks refused them, and ``curl -fsS`` in a crontab hid it)."""
    clock.set(T0)
    log = b"log line ok\n" * 120_000 + b"backup failed: disk full\n"
    assert len(log) > context.settings.max_body_bytes

    def chunked() -> Any:
        for start in range(0, len(log), 65536):
            yield log[start : start + 65536]

    for number, content in enumerate((log, chunked(), b'"\\u0000"', b"a\x00b"), start=1):
        reported = api.post(f"{BACKUP}/{number + 1}?key={hb_key}&note=x%00y", content=content)
        assert reported.status_code == 200, (number, reported.text)
        [alert] = heartbeat_alert_rows(context)
        output = alert.annotations["output"]
        assert alert.annotations["exit_status"] == str(number + 1)
        if number <= 2:
            assert output.startswith("[...]\n") and output.endswith("backup failed: disk full\n"), output[
                -80:
            ]
            assert len(output) == len("[...]\n") + OUTPUT_LIMIT
    assert output == "a\ufffdb"
    with context.db.read() as session:
        assert session.scalars(select(Heartbeat.pings)).one() == 4


def test_a_report_is_read_for_its_tail_up_to_a_limit() -> None:
    """The body is read as it arrives, holding only its tail; past OUTPUT_READ_LIMIT reading stops, and the
    output says so."""

    async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
        for number in range(count):
            yield str(number % 10).encode() * size

    def whole(count: int, size: int) -> bytes:
        return b"".join(str(number % 10).encode() * size for number in range(count))

    tail, cut = asyncio.run(read_output(chunks(2000, 1000)))
    assert not cut and tail == whole(2000, 1000)[-OUTPUT_TAIL_BYTES:]
    tail, cut = asyncio.run(read_output(chunks(3, 1000)))
    assert not cut and tail == whole(3, 1000)
    count = OUTPUT_READ_LIMIT // 65536 + 10
    tail, cut = asyncio.run(read_output(chunks(count, 65536)))
    # Reading stopped with the chunk that went over the limit.
    assert cut and tail == whole(OUTPUT_READ_LIMIT // 65536 + 1, 65536)[-OUTPUT_TAIL_BYTES:]
    output = Signal.parse("fail").with_output(tail, cut=cut).output
    assert output.endswith("[... output over 16 MiB: the rest was not read]")


def test_bad_signals_are_refused_and_change_nothing(
    api: TestClient, context: AppContext, hb_key: str, generic_key: str
) -> None:
    clock.set(T0)
    # "²" is a digit to str.isdigit() but not to int() (found by the API fuzz test: a 500).
    for signal in ("256", "-1", "failed", "1.5", "0001", "started", "²", "1³"):
        refused = api.post(f"{BACKUP}/{signal}?key={hb_key}", content=b"out")
        assert refused.status_code == 422, (signal, refused.text)
        assert "fail" in refused.json()["error"]["message"]
    assert api.post(f"{BACKUP}/fail").status_code == 401
    assert api.post(f"{BACKUP}/fail?key=not-a-key").status_code == 401
    assert api.post(f"{BACKUP}/fail?key={generic_key}").status_code == 403
    assert api.post(f"/api/v1/heartbeats/nope/fail?key={hb_key}").status_code == 404
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Heartbeat)) == 0
    assert heartbeat_alert_rows(context) == []
    # Bearer works as for a ping.
    answered = api.post(f"{BACKUP}/fail", headers={"Authorization": f"Bearer {hb_key}"})
    assert answered.status_code == 200, answered.text


def test_a_stranger_is_refused_before_its_body_is_read(
    api: TestClient, context: AppContext, hb_key: str, generic_key: str
) -> None:
    """A report's body may be 16 MiB of output: it used to be read whole before the key was looked at, so
    anyone could make the server read 16 MiB per request for a 401."""
    pulled: list[int] = []

    async def output() -> AsyncIterator[bytes]:
        for number in range(256):  # 16 MiB
            pulled.append(number)
            yield b"x" * 65536

    async def report(path: str) -> httpx.Response:
        pulled.clear()
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warroom") as client:
            return await client.post(path, content=output())

    for path, refused in [
        (f"{BACKUP}/fail", 401),
        (f"{BACKUP}/fail?key=not-a-key", 401),
        (f"{BACKUP}/fail?key={generic_key}", 403),
        (f"/api/v1/heartbeats/nope/fail?key={hb_key}", 404),
        (f"{WATCHDOG}?key={generic_key}", 403),
    ]:
        answer = asyncio.run(report(path))
        assert answer.status_code == refused, (path, answer.text)
        assert len(pulled) <= 1, (path, len(pulled))
    answer = asyncio.run(report(f"{BACKUP}/fail?key={hb_key}"))
    assert answer.status_code == 200, answer.text
    assert len(pulled) == 256
    [alert] = heartbeat_alert_rows(context)
    assert alert.annotations["output"].endswith("xxx")


def with_max_runtime(context: AppContext, name: str, max_runtime: timedelta) -> None:
    heartbeats = [
        h.model_copy(update={"max_runtime": max_runtime}) if h.name == name else h
        for h in context.org.automation.heartbeats
    ]
    automation = context.org.automation.model_copy(update={"heartbeats": heartbeats})
    context.org = context.org.model_copy(update={"automation": automation})


def test_a_run_that_outlives_max_runtime_fires_and_its_end_resolves(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """A backup that hangs at 03:00 pings nothing: with /start and max_runtime it is caught at 05:00, not the
    next day at its deadline."""
    with_max_runtime(context, "nightly-backup", timedelta(hours=2))
    worker = Worker(context, name="w1")
    clock.set(T0)
    ping(api, hb_key, name="nightly-backup")
    # A run that ends in time: its duration is kept, and its time limit passes quietly.
    clock.set(T0 + timedelta(days=1))
    started = api.post(f"{BACKUP}/start?key={hb_key}")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "started" and started.json()["pings"] == 1  # a start is no ping
    listed = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=viewer).json()}
    assert listed["nightly-backup"]["state"] == "running"
    clock.set(T0 + timedelta(days=1, minutes=40))
    assert api.post(f"{BACKUP}/0?key={hb_key}").json()["status"] == "ok"
    run_at(worker, T0 + timedelta(days=1, hours=2, seconds=1))
    assert heartbeat_alert_rows(context) == []
    listed = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=viewer).json()}
    assert listed["nightly-backup"]["state"] == "ok" and listed["nightly-backup"]["last_run"] == "40m"

    # The next night's run hangs: at start + 2h the missed alert fires, long before the deadline (+1d 2h).
    clock.set(T0 + timedelta(days=2))
    api.post(f"{BACKUP}/start?key={hb_key}")
    run_at(worker, T0 + timedelta(days=2, hours=1, minutes=59))
    assert heartbeat_alert_rows(context) == []
    run_at(worker, T0 + timedelta(days=2, hours=2, seconds=1))
    [alert] = heartbeat_alert_rows(context)
    assert (alert.alert_type, alert.status.value) == ("HeartbeatMissed", "firing")
    assert alert.summary == (
        "The nightly database backup did not report in: its run started at 2026-03-04 10:00 UTC and has not "
        "finished within 2h"
    )
    assert states(api, viewer)["nightly-backup"] == "missed"
    # It ends at last (with a failure): the miss resolves, the failure fires, and the run took 3h.
    clock.set(T0 + timedelta(days=2, hours=3))
    assert api.post(f"{BACKUP}/fail?key={hb_key}", content=b"timeout").status_code == 200
    assert [(a.alert_type, a.status.value) for a in heartbeat_alert_rows(context)] == [
        ("HeartbeatMissed", "resolved"),
        ("HeartbeatFailed", "firing"),
    ]
    listed = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=viewer).json()}
    assert listed["nightly-backup"]["last_run"] == "3h" and listed["nightly-backup"]["started_at"] is None


def test_a_newer_start_replaces_the_time_limit_of_the_one_before(
    api: TestClient, context: AppContext, hb_key: str
) -> None:
    with_max_runtime(context, "nightly-backup", timedelta(hours=2))
    worker = Worker(context, name="w1")
    clock.set(T0)
    api.post(f"{BACKUP}/start?key={hb_key}")  # before any ping: it starts being watched from its first ping
    clock.set(T0 + timedelta(hours=1))
    api.post(f"{BACKUP}/start?key={hb_key}")  # a retry of the job
    run_at(worker, T0 + timedelta(hours=2, seconds=1))  # the first start's limit: that run is gone
    assert heartbeat_alert_rows(context) == []
    run_at(worker, T0 + timedelta(hours=3, seconds=1))  # the second start's limit
    assert [a.alert_type for a in heartbeat_alert_rows(context)] == ["HeartbeatMissed"]


def test_a_start_without_max_runtime_only_marks_the_run(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    clock.set(T0)
    assert api.post(f"{BACKUP}/start?key={hb_key}").status_code == 200
    with context.db.read() as session:
        assert job_count(session) == 0
    assert states(api, viewer)["nightly-backup"] == "running"
    assert api.post(f"{BACKUP}/start").status_code == 401
    assert api.post(f"/api/v1/heartbeats/nope/start?key={hb_key}").status_code == 404


def test_a_shortened_interval_moves_the_waiting_check_earlier(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """nightly-backup checked daily (1d + 2h); the org file is changed to 10m + 5m and reloaded. The next
    ping's deadline is 15 minutes away, and the check waiting for tomorrow is moved to it: the backup is
    not left unwatched for a day."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    ping(api, hb_key, "nightly-backup")
    heartbeats = [
        h.model_copy(update={"interval": timedelta(minutes=10), "grace": timedelta(minutes=5)})
        if h.name == "nightly-backup"
        else h
        for h in context.org.automation.heartbeats
    ]
    automation = context.org.automation.model_copy(update={"heartbeats": heartbeats})
    context.org = context.org.model_copy(update={"automation": automation})
    clock.set(T0 + timedelta(minutes=1))
    answer = ping(api, hb_key, "nightly-backup")
    assert datetime.fromisoformat(answer["next_due_at"]) == T0 + timedelta(minutes=16)
    run_at(worker, T0 + timedelta(minutes=16, seconds=1))
    assert [status for status, _ in heartbeat_alerts(context)] == ["firing"]
    assert states(api, viewer)["nightly-backup"] == "missed"


def with_heartbeat(context: AppContext, name: str, **changes: Any) -> None:
    """The running org file with one heartbeat changed (``None``: taken out), as a reload would make it."""
    heartbeats = [
        h.model_copy(update=changes) if h.name == name else h
        for h in context.org.automation.heartbeats
        if h.name != name or changes
    ]
    automation = context.org.automation.model_copy(update={"heartbeats": heartbeats})
    context.org = context.org.model_copy(update={"automation": automation})


def due_at(context: AppContext, name: str) -> datetime:
    with context.db.read() as session:
        heartbeat = session.scalars(select(Heartbeat).where(Heartbeat.name == name)).one()
        return heartbeat.due_at


def test_a_longer_interval_moves_the_deadline_at_the_reload(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """prometheus-watchdog (1m + 2m) pinged at T0 is due at T0 + 3m. The org file makes it hourly and is
    reloaded: the deadline is the last ping + 1h + 2m at once, and the check waiting for T0 + 3m does not page
    for a sender that is on time."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    ping(api, hb_key)
    clock.set(T0 + timedelta(minutes=1))
    with_heartbeat(context, "prometheus-watchdog", interval=timedelta(hours=1))
    reload.start_recurring(context)
    assert due_at(context, "prometheus-watchdog") == T0 + timedelta(hours=1, minutes=2)
    run_at(worker, T0 + timedelta(minutes=3, seconds=1))
    assert heartbeat_alerts(context) == []
    assert states(api, viewer)["prometheus-watchdog"] == "ok"
    # A second reload (another process, or a restart) changes nothing more.
    reload.start_recurring(context)
    assert due_at(context, "prometheus-watchdog") == T0 + timedelta(hours=1, minutes=2)
    run_at(worker, T0 + timedelta(hours=1, minutes=1))
    assert heartbeat_alerts(context) == []
    # Silent past the new deadline, it fires, once, saying how long it waited.
    run_at(worker, T0 + timedelta(hours=1, minutes=2, seconds=1))
    run_at(worker, T0 + timedelta(hours=2))
    assert heartbeat_alerts(context) == [("firing", 1)]
    with context.db.read() as session:
        alert = session.scalars(select(Alert).where(Alert.source == "heartbeat")).one()
        assert alert.summary == "No heartbeat from prometheus-watchdog: nothing for over 1h2m"


def test_a_shorter_interval_already_past_fires_at_the_reload(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """nightly-backup (1d + 2h) pinged at T0; 30 s later the org file says 10s + 10s and is reloaded, with no
    ping since: the deadline (T0 + 20s) is past, so it is missed now (once), not tomorrow."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    ping(api, hb_key, "nightly-backup")
    clock.set(T0 + timedelta(seconds=30))
    with_heartbeat(context, "nightly-backup", interval=timedelta(seconds=10), grace=timedelta(seconds=10))
    reload.start_recurring(context)
    reload.start_recurring(context)
    assert due_at(context, "nightly-backup") == T0 + timedelta(seconds=20)
    assert states(api, viewer)["nightly-backup"] == "late"
    run_at(worker, T0 + timedelta(seconds=30))
    assert [status for status, _ in heartbeat_alerts(context)] == ["firing"]
    assert states(api, viewer)["nightly-backup"] == "missed"
    reload.start_recurring(context)
    run_at(worker, T0 + timedelta(minutes=5))
    assert [status for status, _ in heartbeat_alerts(context)] == ["firing"]
    with context.db.read() as session:
        checks = session.scalars(select(Job.status).where(Job.kind == "alerts.heartbeat_check")).all()
    assert [str(status) for status in checks] == ["done"]


def test_a_changed_first_ping_within_moves_the_first_deadline(context: AppContext) -> None:
    """Never pinged, watched from the start (T0) with first_ping_within 1h; made 2h and reloaded at T0 + 10m:
    the first deadline is 2h after the start, as it would have been with 2h from the start."""
    with_heartbeat(context, "prometheus-watchdog", first_ping_within=timedelta(hours=1))
    clock.set(T0)
    with TestClient(create_app(context=context)):
        pass
    clock.set(T0 + timedelta(minutes=10))
    with_heartbeat(context, "prometheus-watchdog", first_ping_within=timedelta(hours=2))
    reload.start_recurring(context)
    assert due_at(context, "prometheus-watchdog") == T0 + timedelta(hours=2)
    worker = Worker(context, name="w1")
    run_at(worker, T0 + timedelta(hours=1, minutes=1))
    assert heartbeat_alerts(context) == []
    run_at(worker, T0 + timedelta(hours=2, seconds=1))
    assert heartbeat_alerts(context) == [("firing", 1)]


def test_a_heartbeat_taken_out_of_the_file_has_its_open_alert_resolved(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """No ping can resolve the alert of a heartbeat that is no longer in the org file (it gets 404): the
    reload resolves it, saying why, and cancels the heartbeat's waiting checks."""
    with_heartbeat(context, "prometheus-watchdog", max_runtime=timedelta(hours=1))
    clock.set(T0)
    worker = Worker(context, name="w1")
    ping(api, hb_key)
    run_at(worker, T0 + timedelta(minutes=3, seconds=1))
    assert heartbeat_alerts(context) == [("firing", 1)]
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] != "monitoring"
    # A ping after the miss would have scheduled a new check; a failed run fires the second alert.
    clock.set(T0 + timedelta(minutes=5))
    assert api.post(f"{WATCHDOG}/fail?key={hb_key}").status_code == 200
    run_at(worker, T0 + timedelta(minutes=8, seconds=1))
    assert [status for status, _ in heartbeat_alerts(context)] == ["resolved", "firing", "firing"]
    assert api.post(f"{WATCHDOG}/start?key={hb_key}").status_code == 200  # its time limit check waits

    clock.set(T0 + timedelta(minutes=10))
    with_heartbeat(context, "prometheus-watchdog")  # taken out
    reload.start_recurring(context)
    reload.start_recurring(context)  # another process: nothing more
    assert [status for status, _ in heartbeat_alerts(context)] == ["resolved", "resolved", "resolved"]
    with context.db.read() as session:
        closed = session.scalars(select(Alert).where(Alert.source == "heartbeat").order_by(Alert.id)).all()[
            1:
        ]
        for alert in closed:
            assert alert.resolved_by == "automation"
            assert "removed from the org file" in (alert.resolution_note or "")
        waiting = session.scalars(
            select(Job.idempotency_key).where(
                Job.kind == "alerts.heartbeat_check", Job.status == JobStatus.pending
            )
        ).all()
    assert [key for key in waiting if "prometheus-watchdog" in (key or "")] == []
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "monitoring"
    assert api.post(f"{WATCHDOG}?key={hb_key}").status_code == 404
    assert "prometheus-watchdog" not in states(api, viewer)


def test_a_heartbeat_put_back_by_a_reload_is_watched_again_from_it(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """prometheus-watchdog (1m + 2m) pings at T0, is taken out of the org file and reloaded, then put back and
    reloaded at T0 + 10m with no ping since: it is watched from that reload (due at T0 + 13m, not shown late
    forever), so a sender that stays dead fires. nightly-backup, watched before its first ping (1h), is
    watched again for an hour from the reload."""
    with_heartbeat(context, "nightly-backup", first_ping_within=timedelta(hours=1))
    original = context.org
    clock.set(T0)
    reload.start_recurring(context)
    worker = Worker(context, name="w1")
    ping(api, hb_key)
    clock.set(T0 + timedelta(minutes=1))
    context.org = original.model_copy(
        update={"automation": original.automation.model_copy(update={"heartbeats": []})}
    )
    reload.start_recurring(context)
    run_at(worker, T0 + timedelta(minutes=5))
    assert heartbeat_alerts(context) == []

    clock.set(T0 + timedelta(minutes=10))
    context.org = original
    reload.start_recurring(context)
    reload.start_recurring(context)  # another process, or a restart: nothing more
    assert due_at(context, "prometheus-watchdog") == T0 + timedelta(minutes=13)
    assert due_at(context, "nightly-backup") == T0 + timedelta(hours=1, minutes=10)
    # Not "ok": nothing was heard from it since it was put back.
    assert states(api, viewer) == {"prometheus-watchdog": "watching", "nightly-backup": "never pinged"}
    with context.db.read() as session:
        waiting = session.scalars(
            select(Job.payload).where(Job.kind == "alerts.heartbeat_check", Job.status == JobStatus.pending)
        ).all()
    assert sorted(payload["name"] for payload in waiting) == ["nightly-backup", "prometheus-watchdog"]
    run_at(worker, T0 + timedelta(minutes=12))
    assert heartbeat_alerts(context) == []
    run_at(worker, T0 + timedelta(minutes=13, seconds=1))
    assert [status for status, _ in heartbeat_alerts(context)] == ["firing"]
    assert states(api, viewer)["prometheus-watchdog"] == "missed"
    run_at(worker, T0 + timedelta(hours=1, minutes=10, seconds=1))
    assert [status for status, _ in heartbeat_alerts(context)] == ["firing", "firing"]
