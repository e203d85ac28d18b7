"""The real server as a subprocess: durability on kill -9, the CLI against it, bad config refusal."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import ssl
import subprocess
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import EXAMPLE_CONFIG, require_peer
from tests.e2e.server import ServerProcess, create_token, run_cli
from tests.peers import free_port, self_signed_certificate, wait_until
from warroom.alerts.models import Alert, ChangeEvent, Heartbeat
from warroom.alerts.retention import PRUNE_KIND
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.db import Database
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident, TimelineEntry
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.models import Job, JobStatus
from warroom.orgconfig import load_org_config
from warroom.settings import Settings

EXAMPLE_ORG = load_org_config(EXAMPLE_CONFIG)


def new_key(session: Session, name: str, kind: IntegrationType, service: str | None = None) -> str:
    """An integration made straight in the database (its service checked against the example org file)."""
    return integrations.create_integration(
        session, org=EXAMPLE_ORG, name=name, type=kind, service=service
    ).key


pytestmark = pytest.mark.e2e


@pytest.fixture
def admin_token(database_url: str) -> str:
    token = create_token("e2e-admin", "admin", database_url=database_url)
    assert token.startswith("wr_")
    return token


def test_created_incident_survives_kill_9(database_url: str, tmp_path: Path, admin_token: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    server = ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path).start()
    try:
        refs = []
        for index in range(5):
            response = httpx.post(
                f"{server.url}/api/v1/incidents",
                headers=headers,
                json={"title": f"disk full {index}", "severity": "P1", "services": ["database"]},
            )
            assert response.status_code == 201
            refs.append(response.json()["id"])
        # No graceful shutdown: whatever was answered 201 must already be on disk.
        server.kill9()
    finally:
        server.stop()
    with ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path) as restarted:
        listing = httpx.get(f"{restarted.url}/api/v1/incidents", headers=headers).json()
        assert sorted(i["id"] for i in listing["items"]) == sorted(refs)
        timeline = httpx.get(f"{restarted.url}/api/v1/incidents/{refs[-1]}/timeline", headers=headers).json()[
            "items"
        ]
        assert timeline[0]["kind"] == "created"


def test_every_answered_alert_survives_kill_9_mid_flood(database_url: str, tmp_path: Path) -> None:
    """Sixteen senders post alerts (each its own dedup key) while the server is killed with SIGKILL: every
    alert that was answered 202 is in the database afterwards. Deliveries in flight at the kill may or may
    not be; none that was acknowledged may be missing."""
    database = Database(database_url)
    with database.write() as session:
        key = new_key(session, "flood", IntegrationType.generic, service="search")
    acknowledged: list[str] = []
    server = ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path).start()

    async def flood() -> None:
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

            async def sender(number: int) -> None:
                sent = 0
                while not stop.is_set():
                    dedup_key = f"s{number}-{sent}"
                    sent += 1
                    try:
                        response = await client.post(
                            f"/api/v1/alerts?key={key}", json={"summary": "flood", "dedup_key": dedup_key}
                        )
                    except httpx.HTTPError:
                        return  # the server is gone
                    assert response.status_code == 202, response.text
                    acknowledged.append(dedup_key)

            async def killer() -> None:
                while len(acknowledged) < 300:
                    await asyncio.sleep(0.005)
                server.kill9()  # with senders in flight: no graceful shutdown, no final flush
                stop.set()

            await asyncio.gather(killer(), *(sender(number) for number in range(16)))

    try:
        asyncio.run(flood())
    finally:
        server.stop()
    with database.read() as session:
        stored = set(session.scalars(select(Alert.dedup_key)))
        # The integration's service went on each alert in the same transaction as the alert.
        services = set(session.scalars(select(Alert.service)))
    database.dispose()
    assert services == {"search"}
    assert len(acknowledged) >= 300
    missing = [dedup_key for dedup_key in acknowledged if dedup_key not in stored]
    assert not missing, f"{len(missing)} acknowledged alerts lost, e.g. {missing[:5]}"


def test_answered_changes_and_failed_runs_survive_kill_9(database_url: str, tmp_path: Path) -> None:
    """A change event (202) and a failed run of a heartbeat (200) are on disk when the answer leaves: killed
    right after, the server lost neither."""
    database = Database(database_url)
    with database.write() as session:
        pagerduty = new_key(session, "ci", IntegrationType.pagerduty)
        heartbeat = new_key(session, "cron", IntegrationType.heartbeat)
    server = ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path).start()
    try:
        change = {"routing_key": pagerduty, "payload": {"summary": "Deployed api 2.14", "source": "api"}}
        assert httpx.post(f"{server.url}/v2/change/enqueue", json=change, timeout=10).status_code == 202
        failed = httpx.post(
            f"{server.url}/api/v1/heartbeats/nightly-backup/3?key={heartbeat}",
            content=b"disk full",
            timeout=10,
        )
        assert failed.status_code == 200, failed.text
        server.kill9()
    finally:
        server.stop()
    with database.read() as session:
        assert [(c.summary, c.service) for c in session.scalars(select(ChangeEvent))] == [
            ("Deployed api 2.14", "api")
        ]
        [beat] = session.scalars(select(Heartbeat))
        assert beat.failed_at is not None and beat.last_exit_status == 3
        [alert] = session.scalars(select(Alert).where(Alert.alert_type == "HeartbeatFailed"))
        assert alert.annotations == {"exit_status": "3", "output": "disk full"}
    database.dispose()


def test_a_change_noted_during_an_incident_and_the_retention_chain_survive_kill_9(
    database_url: str, tmp_path: Path
) -> None:
    """The timeline entry of a change recorded during an incident is in the change's transaction, and the
    retention chain is scheduled once, however often the server starts or dies."""
    database = Database(database_url)
    # The timeline chain is keyed with the server's secret key (made here, in its data directory).
    database.set_session_info(timeline_key=Settings(data_dir=tmp_path).timeline_key)
    with database.write() as session:
        pagerduty = new_key(session, "ci", IntegrationType.pagerduty)
        incident = incident_service.create_incident(
            session,
            org=load_org_config(EXAMPLE_CONFIG),
            data=IncidentCreate(title="Checkout errors", severity="P2", services=["api"]),
            performer="test",
        )
        incident_id = incident.id
    server = ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path).start()
    try:
        change = {
            "routing_key": pagerduty,
            "payload": {"summary": "Rolled back api", "source": "argo", "custom_details": {"service": "api"}},
        }
        assert httpx.post(f"{server.url}/v2/change/enqueue", json=change, timeout=10).status_code == 202
        server.kill9()
    finally:
        server.stop()
    with ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path):
        pass  # started again: it must not schedule a second chain
    with database.read() as session:
        [change] = session.scalars(select(ChangeEvent))
        actions = session.scalars(
            select(TimelineEntry.action).where(TimelineEntry.incident_id == incident_id)
        )
        assert [a for a in actions if a.startswith("Change ")] == [
            f"Change during this incident, recorded now: {change.ref} {change.happened_at:%H:%M} UTC: "
            "Rolled back api [api] [argo]"
        ]
        pending = session.scalars(select(Job).where(Job.kind == PRUNE_KIND, Job.status == JobStatus.pending))
        assert len(pending.all()) == 1
    database.dispose()


def test_a_delayed_incident_opens_after_a_kill_9(database_url: str, tmp_path: Path) -> None:
    """A rule's delay is a durable job committed with the alert: the server killed during the delay, the next
    one opens the incident when the delay is over."""
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    [rule] = [rule for rule in document["automation"]["rules"] if rule["name"] == "critical-monitoring"]
    rule["incident"]["delay"] = "5s"
    config = tmp_path / "warroom.yaml"
    config.write_text(yaml.safe_dump(document))
    database = Database(database_url)
    with database.write() as session:
        key = new_key(session, "scripts", IntegrationType.generic)
    server = ServerProcess(database_url=database_url, config=config, data_dir=tmp_path).start()
    try:
        alert = {"summary": "search down", "severity": "critical", "service": "search", "dedup_key": "s1"}
        answer = httpx.post(f"{server.url}/api/v1/alerts?key={key}", json=alert, timeout=10)
        assert answer.status_code == 202, answer.text
        server.kill9()
    finally:
        server.stop()

    def incident_of_the_alert() -> int | None:
        with database.read() as session:
            return session.scalars(select(Alert.incident_id)).one()

    assert incident_of_the_alert() is None  # still waiting when the server died
    with ServerProcess(database_url=database_url, config=config, data_dir=tmp_path):
        wait_until(incident_of_the_alert)
    with database.read() as session:
        assert session.get_one(Incident, incident_of_the_alert()).title.startswith("search down")
    database.dispose()


def test_an_answered_note_survives_kill_9(database_url: str, tmp_path: Path) -> None:
    """A note answered 201 is on disk, with its line on the incident's timeline, when the server dies."""
    database = Database(database_url)
    with database.write() as session:
        key = new_key(session, "psp", IntegrationType.generic, service="payments")
    token = create_token("night-shift", "responder", database_url=database_url)
    server = ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path).start()
    try:
        fired = httpx.post(
            f"{server.url}/api/v1/alerts?key={key}",
            json={"summary": "charges failing", "severity": "critical"},
            timeout=10,
        )
        assert fired.status_code == 202, fired.text
        alert_id = fired.json()["alerts"][0]["id"]
        noted = httpx.post(
            f"{server.url}/api/v1/alerts/{alert_id}/notes",
            json={"body": "PSP down for EU cards"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert noted.status_code == 201, noted.text
        server.kill9()
    finally:
        server.stop()
    with database.read() as session:
        alert = session.get_one(Alert, alert_id)
        assert alert.service == "payments" and alert.incident_id is not None
        assert [note.body for note in alert.notes] == ["PSP down for EU cards"]
        actions = session.scalars(
            select(TimelineEntry.action).where(TimelineEntry.incident_id == alert.incident_id)
        )
        assert f"Note on alert ALR-{alert_id}: PSP down for EU cards" in list(actions)
    database.dispose()


def test_cli_walkthrough(database_url: str, tmp_path: Path, admin_token: str) -> None:
    with ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path) as server:

        def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return run_cli(*args, url=server.url, token=admin_token, check=check)

        created = json.loads(
            cli(
                "incident",
                "create",
                "Checkout errors",
                "--severity",
                "P1",
                "--service",
                "payments",
                "--commander",
                "Alice",
                "--json",
            ).stdout
        )
        ref = created["id"]
        assert created["severity"] == "P1"
        table = cli("incident", "list").stdout
        assert ref in table and "Checkout errors" in table
        cli("incident", "ack", ref)
        cli("responder", "add", ref, "Bob", "--role", "technical", "--contact", "bob@example.com")
        cli("log", ref, "Rolled back deploy 8812", "--impact", "errors dropping")
        cli("incident", "update", ref, "--status", "identified", "--note", "bad deploy")
        cli("incident", "send-update", ref, "We found the cause.", "--audience", "status-page")
        cli("incident", "resolve", ref, "--note", "rollback complete")
        shown = json.loads(cli("incident", "show", ref, "--json").stdout)
        assert shown["status"] == "resolved"
        assert shown["acknowledged_by"] == "e2e-admin"
        timeline = json.loads(cli("incident", "timeline", ref, "--json").stdout)["items"]
        # Paging and automation add entries of their own; the walkthrough's own steps come in this order.
        by_cli = [entry["kind"] for entry in timeline if entry["performer"] == "e2e-admin"]
        assert by_cli == [
            "created",
            "commander_change",
            "acknowledged",
            "responder_joined",
            "action",
            "status_change",
            "communication",
            "status_change",
        ]
        bad = cli("incident", "update", ref, "--status", "identified", check=False)
        assert bad.returncode == 1
        assert "cannot move from resolved to identified" in bad.stderr
        missing = cli("incident", "show", "INC-999", check=False)
        assert missing.returncode == 1 and "no incident INC-999" in missing.stderr
        assert "P0" in cli("severity", "list").stdout

    # The chain is keyed with the server's secret key, in its data directory.
    audit = run_cli("audit", "verify", database_url=database_url, env={"WARROOM_DATA_DIR": str(tmp_path)})
    assert "verified" in audit.stdout


def test_cli_without_token_or_server(tmp_path: Path) -> None:
    unreachable = run_cli("incident", "list", url="http://127.0.0.1:9", token="x", check=False)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


def test_serve_refuses_a_bad_org_file(tmp_path: Path, database_url: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - name: api\n    tier: nine\n")
    result = run_cli(
        "serve", "--config", str(bad), "--database-url", database_url, "--port", str(free_port()), check=False
    )
    assert result.returncode == 2
    assert "services[0].tier (line 3)" in result.stderr


def test_an_answered_mail_survives_kill_9(database_url: str, tmp_path: Path) -> None:
    """``warroom serve --mail-port``: a message answered 250 is an alert on disk when the server dies."""
    database = Database(database_url)
    with database.write() as session:
        key = new_key(session, "nas", IntegrationType.email, service="search")
    mail_port = free_port()
    server = ServerProcess(
        database_url=database_url,
        config=EXAMPLE_CONFIG,
        data_dir=tmp_path,
        extra_args=["--mail-port", str(mail_port)],
    ).start()
    try:
        wait_until(lambda: _accepts(mail_port))
        mail = EmailMessage()
        mail["From"] = "nas1@storage.example"
        mail["Subject"] = "[FIRING:1] RAID degraded on nas1"
        mail.set_content("Disk 3 failed; rebuilding onto the spare.")
        with smtplib.SMTP("127.0.0.1", mail_port, timeout=10) as client:
            refused = client.send_message(mail, to_addrs=[f"{key}@alerts.example"])
            assert refused == {}
        server.kill9()
    finally:
        server.stop()
    with database.read() as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.source, alert.service, alert.summary) == (
            "email",
            "search",
            "[FIRING:1] RAID degraded on nas1",
        )
        assert alert.annotations["description"] == "Disk 3 failed; rebuilding onto the spare."
    database.dispose()


def test_mail_over_starttls(database_url: str, tmp_path: Path) -> None:
    """``warroom serve --mail-tls-cert`` (on uvloop, as served): STARTTLS is offered and required, and a
    message sent over it is stored."""
    made = self_signed_certificate(tmp_path)
    require_peer(made is not None, "openssl is needed to make a test certificate")
    assert made is not None
    certificate, certificate_key = made
    database = Database(database_url)
    with database.write() as session:
        key = new_key(session, "ups", IntegrationType.email)
    mail_port = free_port()
    server = ServerProcess(
        database_url=database_url,
        config=EXAMPLE_CONFIG,
        data_dir=tmp_path,
        extra_args=[
            "--mail-port",
            str(mail_port),
            "--mail-tls-cert",
            certificate,
            "--mail-tls-key",
            certificate_key,
        ],
    ).start()
    trusting = ssl.create_default_context(cafile=certificate)
    try:
        wait_until(lambda: _accepts(mail_port))
        mail = EmailMessage()
        mail["From"] = "ups1@power.example"
        mail["Subject"] = "PROBLEM: UPS on battery"
        mail.set_content("Runtime 12 min.")
        with smtplib.SMTP("127.0.0.1", mail_port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            code, answer = client.mail("ups1@power.example")
            assert code == 530, answer  # not before TLS: the address is the secret
            client.starttls(context=trusting)
            assert client.send_message(mail, to_addrs=[f"{key}@alerts.example"]) == {}
    finally:
        server.stop()
    with database.read() as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.source, alert.summary) == ("email", "PROBLEM: UPS on battery")
    database.dispose()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _reports(server: ServerProcess, forwarded_for: list[str | None]) -> list[int]:
    """POST a customer report from here (127.0.0.1) once per entry, with that X-Forwarded-For if any."""
    report = {"contact": "a@example.com", "description": "checkout fails", "affected_feature": "checkout"}
    return [
        httpx.post(
            f"{server.url}/api/v1/reports",
            json=report,
            headers={"X-Forwarded-For": address} if address else {},
            timeout=10,
        ).status_code
        for address in forwarded_for
    ]


def test_a_forwarded_for_header_gets_no_fresh_report_bucket(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default, and a proxy on the same host passes the
    client's own header on unless told to overwrite it: the report form's limit (5 a minute in the example
    file) must not be a fresh bucket per header. WARROOM_FORWARDED_ALLOW_IPS names the proxies to believe."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own variable: not read by serve
    spoofed: list[str | None] = [f"10.0.0.{index}" for index in range(6)]
    with ServerProcess(database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path) as server:
        assert _reports(server, spoofed) == [202] * 5 + [429]
    database = Database(database_url)
    with database.read() as session:
        clients = {alert.annotations["client"] for alert in session.scalars(select(Alert))}
    assert clients == {"127.0.0.1"}

    # Behind a proxy that sets the header (nginx: proxy_set_header X-Forwarded-For $remote_addr), naming it
    # (--forwarded-allow-ips, or WARROOM_FORWARDED_ALLOW_IPS) gives each client behind it its own bucket, and
    # a client repeating its address is limited.
    behind_proxy = ServerProcess(
        database_url=database_url,
        config=EXAMPLE_CONFIG,
        data_dir=tmp_path / "proxied",
        extra_args=["--forwarded-allow-ips", "127.0.0.1, ::1"],
    )
    with behind_proxy as server:
        assert _reports(server, spoofed) == [202] * 6
        assert _reports(server, ["10.0.0.9"] * 6) == [202] * 5 + [429]


@pytest.mark.parametrize("option", ["--port", "--mail-port"])
def test_serve_refuses_a_port_in_use_before_it_touches_the_database(tmp_path: Path, option: str) -> None:
    """The ports are bound first: with one taken, ``serve`` says so in one line and has not migrated (here,
    created) the database or started a worker that could take a job before the process exits."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    ports = {"--port": str(free_port()), "--mail-port": str(free_port()), option: str(taken)}
    database = tmp_path / "never.db"
    try:
        result = run_cli(
            "serve", "--config", str(EXAMPLE_CONFIG), "--database-url", f"sqlite:///{database}",
            *(word for pair in ports.items() for word in pair), check=False,
        )  # fmt: skip
    finally:
        holder.close()
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken}: Address already in use" in result.stderr
    assert f"choose another {option})" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not database.exists()


def test_serve_refuses_the_same_port_for_http_and_mail(tmp_path: Path) -> None:
    """Not "is another Warroom running?": the command line gave one port twice."""
    port = str(free_port())
    database = tmp_path / "never.db"
    result = run_cli(
        "serve", "--config", str(EXAMPLE_CONFIG), "--database-url", f"sqlite:///{database}",
        "--port", port, "--mail-port", port, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"--mail-port must differ from --port (both are {port} on 127.0.0.1)" in result.stderr
    assert not database.exists()
