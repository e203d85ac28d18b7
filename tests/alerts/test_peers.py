"""Real peers: Debian's Prometheus Alertmanager posting webhooks, and the pdpyras PagerDuty client, both
talking to a ``warroom serve`` subprocess."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.alerts.test_storm_bodies import crashlooping
from tests.conftest import EXAMPLE_CONFIG, require_peer
from tests.e2e.server import ServerProcess, create_token, run_cli
from tests.peers import free_port, self_signed_certificate, wait_until

with warnings.catch_warnings():
    # pdpyras 5.4.1 announces its own deprecation on import; it is still the client the brief names.
    warnings.simplefilter("ignore", UserWarning)
    import pdpyras

pytestmark = [pytest.mark.e2e, pytest.mark.peer]

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    admin = create_token("e2e-admin", "admin", database_url=database_url)
    with ServerProcess(
        database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path, extra_args=["--no-worker"]
    ) as warroom:
        yield {"url": warroom.url, "database_url": database_url, "admin": admin}


def get(server: dict[str, str], path: str, **params: Any) -> Any:
    response = httpx.get(
        server["url"] + path,
        params=params,
        headers={"Authorization": f"Bearer {server['admin']}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def integration_key(server: dict[str, str], kind: str) -> str:
    result = run_cli(
        "integration",
        "create",
        "--name",
        f"e2e-{kind}",
        "--type",
        kind,
        "--database-url",
        server["database_url"],
        check=False,
    )
    key = last_line(result)
    assert len(key) == 32
    return key


@contextmanager
def running_alertmanager(
    tmp_path: Path, webhook_url: str, max_alerts: int | None = None, receiver: str | None = None
) -> Iterator[str]:
    """Debian's Alertmanager on a free port, sending to ``webhook_url`` (or as ``receiver``, the YAML of the
    receiver's notifier configs, says)."""
    require_peer(
        Path(ALERTMANAGER).exists(), "prometheus-alertmanager is not installed (scripts/install-peers.sh)"
    )
    config = tmp_path / "am.yml"
    webhook = f"    webhook_configs:\n      - url: '{webhook_url}'\n        send_resolved: true\n" + (
        f"        max_alerts: {max_alerts}\n" if max_alerts is not None else ""
    )
    config.write_text(
        "route:\n"
        "  receiver: warroom\n"
        "  group_by: [alertname, service]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: warroom\n" + (receiver or webhook)
    )
    port = free_port()
    storage = tmp_path / "am-data"
    storage.mkdir()
    log = (tmp_path / "am.log").open("w")
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def alertmanager(server: dict[str, str], tmp_path: Path) -> Iterator[str]:
    key = integration_key(server, "alertmanager")
    with running_alertmanager(tmp_path, f"{server['url']}/api/v1/alerts/alertmanager?key={key}") as url:
        yield url


def test_alertmanager_fires_and_resolves(server: dict[str, str], alertmanager: str) -> None:
    labels = {"alertname": "CheckoutErrors", "service": "payments", "severity": "critical"}
    other = {"alertname": "CheckoutLatency", "service": "search", "severity": "warning"}
    started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    alerts = [
        {"labels": labels, "annotations": {"summary": "checkout 5xx above 5%"}, "startsAt": started},
        {"labels": other, "annotations": {"summary": "search slow"}, "startsAt": started},
    ]
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=10)
    assert response.status_code == 200, response.text

    def both_arrived() -> bool:
        return get(server, "/api/v1/alerts", firing="true")["total"] == 2

    wait_until(both_arrived)
    items = {a["labels"]["alertname"]: a for a in get(server, "/api/v1/alerts")["items"]}
    checkout = items["CheckoutErrors"]
    assert checkout["source"] == "alertmanager"
    assert len(checkout["dedup_key"]) == 16  # Alertmanager's fingerprint
    assert checkout["incident"] == "INC-1"
    assert checkout["rules"] == ["payments-down"]
    assert items["CheckoutLatency"]["unrouted"] is True
    incident = get(server, "/api/v1/incidents/INC-1")
    assert incident["severity"] == "P0"
    assert incident["title"] == "Payments: checkout 5xx above 5%"
    timeline = get(server, "/api/v1/incidents/INC-1/timeline")["items"]
    assert "Page requested: escalation policy payments-escalation" in [e["action"] for e in timeline]

    # End the alerts in Alertmanager: it sends the resolved notifications.
    ended = datetime.now(UTC).isoformat()
    for alert in alerts:
        alert["endsAt"] = ended
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=10).status_code == 200

    def all_resolved() -> bool:
        return get(server, "/api/v1/alerts", firing="true")["total"] == 0

    wait_until(all_resolved)
    detail = get(server, f"/api/v1/alerts/{checkout['id']}")
    assert detail["status"] == "resolved"
    assert detail["occurrences"] == 1  # repeated group notifications did not count as new occurrences
    assert get(server, "/api/v1/incidents/INC-1")["status"] == "monitoring"
    assert get(server, "/api/v1/incidents")["total"] == 1

    # The client commands read the same server.
    env = {"WARROOM_URL": server["url"], "WARROOM_TOKEN": server["admin"]}
    listed = run_cli("alerts", "list", "--unrouted", "--json", env=env, check=False)
    assert listed.returncode == 0, listed.stderr
    assert '"CheckoutLatency"' in listed.stdout and '"CheckoutErrors"' not in listed.stdout
    by_service = run_cli(
        "alerts", "list", "--service", "payments", "-s", "critical", "--json", env=env, check=False
    )
    assert by_service.returncode == 0, by_service.stderr
    assert [a["labels"]["alertname"] for a in json.loads(by_service.stdout)["items"]] == ["CheckoutErrors"]
    by_label = run_cli(
        "alerts", "list", "-l", "alertname=CheckoutLatency", "--since", "1h", "--json", env=env, check=False
    )
    assert by_label.returncode == 0, by_label.stderr
    assert [a["labels"]["alertname"] for a in json.loads(by_label.stdout)["items"]] == ["CheckoutLatency"]
    through = json.loads(
        run_cli("alerts", "list", "--integration", "e2e-alertmanager", "--json", env=env).stdout
    )
    assert {a["labels"]["alertname"] for a in through["items"]} == {"CheckoutErrors", "CheckoutLatency"}
    nowhere = run_cli("alerts", "list", "--integration", "nope", "--json", env=env, check=False)
    assert nowhere.returncode == 1 and "no integration named 'nope'" in nowhere.stderr
    searched = run_cli("alerts", "list", "-q", "checkoutlatency", "--json", env=env, check=False)
    assert searched.returncode == 0, searched.stderr
    assert [a["labels"]["alertname"] for a in json.loads(searched.stdout)["items"]] == ["CheckoutLatency"]
    bad_label = run_cli("alerts", "list", "--label", "alertname", env=env, check=False)
    assert bad_label.returncode == 2 and "name=value" in bad_label.stderr
    noise = run_cli("alerts", "noise", "--since", "1h", env=env, check=False)
    assert noise.returncode == 0, noise.stderr
    assert "Alert noise by type" in noise.stdout and "CheckoutErrors" in noise.stdout and "█" in noise.stdout
    by_severity = json.loads(run_cli("alerts", "noise", "--by", "severity", "--json", env=env).stdout)
    assert {group["key"] for group in by_severity["groups"]} >= {"critical"}
    bad_by = run_cli("alerts", "noise", "--by", "colour", env=env, check=False)
    assert bad_by.returncode == 1 and "by must be one of" in bad_by.stderr
    shown = run_cli("alerts", "show", str(checkout["id"]), env=env, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "checkout 5xx above 5%" in shown.stdout
    assert "at its source" in shown.stdout  # Alertmanager resolved it, not a person
    latency_id = str(items["CheckoutLatency"]["id"])
    # It resolved with the rest: promoting it is a deliberate choice.
    promoted = run_cli("alerts", "promote", latency_id, "--severity", "P3", "--force", env=env, check=False)
    assert promoted.returncode == 0, promoted.stderr
    assert "INC-2" in promoted.stdout
    reported = run_cli(
        "report", "Search index is a day old", "--service", "search", "--json", env=env, check=False
    )
    assert reported.returncode == 0, reported.stderr
    # A person acknowledges it, then resolves it by hand; a second try of each is refused with who did it.
    report_id = str(json.loads(reported.stdout)["id"])
    acknowledged = run_cli("alerts", "ack", report_id, env=env, check=False)
    assert acknowledged.returncode == 0, acknowledged.stderr
    assert f"ALR-{report_id} acknowledged" in acknowledged.stdout
    again = run_cli("alerts", "ack", report_id, env=env, check=False)
    assert again.returncode != 0 and "already acknowledged" in again.stderr and "e2e-admin" in again.stderr
    # Several at once: each is tried; the refusals are named and make the command fail.
    second = run_cli("report", "Backups are late", "--json", env=env, check=False)
    second_id = str(json.loads(second.stdout)["id"])
    several = run_cli("alerts", "ack", second_id, report_id, "ALR-999999", "--json", env=env, check=False)
    assert several.returncode == 1
    assert [a["id"] for a in json.loads(several.stdout)] == [int(second_id)]
    # Each refusal names its alert once ("ALR-3 is already …", not "3: ALR-3 is already …").
    assert f"error: ALR-{report_id} is already acknowledged" in " ".join(several.stderr.split())
    assert f"{report_id}: ALR-{report_id}" not in several.stderr
    assert "error: no alert ALR-999999" in " ".join(several.stderr.split())  # named once, as given
    listed = run_cli("alerts", "list", "--status", "acknowledged", "--json", env=env, check=False)
    assert listed.returncode == 0, listed.stderr
    assert [str(a["id"]) for a in json.loads(listed.stdout)["items"]] == [second_id, report_id]
    bad_status = run_cli("alerts", "list", "--status", "acked", env=env, check=False)
    assert bad_status.returncode != 0 and "acked" in bad_status.stderr
    # The second one was acknowledged by mistake: taken back, it fires again (once only).
    unacked = run_cli("alerts", "unack", second_id, env=env, check=False)
    assert unacked.returncode == 0 and f"ALR-{second_id} unacknowledged: firing" in unacked.stdout, (
        unacked.stderr
    )
    twice = run_cli("alerts", "unack", second_id, env=env, check=False)
    assert twice.returncode == 1 and "is firing, not acknowledged" in twice.stderr
    # Snoozed instead: acknowledged for two hours, then firing again if nobody resolved it.
    snoozed = run_cli("alerts", "snooze", second_id, "--for", "2h", env=env, check=False)
    assert snoozed.returncode == 0 and f"ALR-{second_id} snoozed until" in snoozed.stdout, snoozed.stderr
    listed = json.loads(run_cli("alerts", "list", "--status", "acknowledged", "--json", env=env).stdout)
    [snoozed_alert] = [a for a in listed["items"] if str(a["id"]) == second_id]
    assert snoozed_alert["snoozed_until"] and snoozed_alert["snoozed_by"] == "e2e-admin"
    assert "then firing again" in " ".join(run_cli("alerts", "show", second_id, env=env).stdout.split())
    only_snoozed = json.loads(run_cli("alerts", "list", "--snoozed", "--json", env=env).stdout)
    assert [str(a["id"]) for a in only_snoozed["items"]] == [second_id]
    neither = run_cli("alerts", "snooze", second_id, env=env, check=False)
    assert neither.returncode == 2 and "give either --for" in neither.stderr
    too_long = run_cli("alerts", "snooze", second_id, "--for", "8d", env=env, check=False)
    assert too_long.returncode == 2 and "at most 7d" in too_long.stderr
    resolved = run_cli("alerts", "resolve", report_id, "--note", "reindexed", env=env, check=False)
    assert resolved.returncode == 0, resolved.stderr
    assert f"ALR-{report_id} resolved" in resolved.stdout
    shown = run_cli("alerts", "show", report_id, env=env, check=False)
    assert "by e2e-admin" in shown.stdout and "reindexed" in shown.stdout
    assert "at its source" not in shown.stdout
    again = run_cli("alerts", "resolve", report_id, env=env, check=False)
    assert again.returncode != 0 and "already resolved" in again.stderr


class _FailFirstProxy(BaseHTTPRequestHandler):
    """Between Alertmanager and Warroom: forwards every delivery, but answers the first one 500, as if the
    connection broke after Warroom committed. Alertmanager then retries the identical body."""

    upstream = ""
    deliveries: list[tuple[bytes, int]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        upstream = httpx.post(
            self.upstream + self.path, content=body, headers={"Content-Type": "application/json"}, timeout=10
        )
        first = not self.deliveries
        self.deliveries.append((body, upstream.status_code))
        status = 500 if first else upstream.status_code
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def log_message(self, *_: Any) -> None:
        pass


def test_alertmanager_retry_after_5xx_changes_nothing(server: dict[str, str], tmp_path: Path) -> None:
    key = integration_key(server, "alertmanager")
    _FailFirstProxy.upstream = server["url"]
    _FailFirstProxy.deliveries = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _FailFirstProxy)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    webhook = f"http://127.0.0.1:{proxy.server_port}/api/v1/alerts/alertmanager?key={key}"
    try:
        with running_alertmanager(tmp_path, webhook) as alertmanager:
            labels = {"alertname": "DiskFull", "service": "database", "severity": "warning"}
            fired = [{"labels": labels, "annotations": {"summary": "disk 97% on db-1"}}]
            assert httpx.post(f"{alertmanager}/api/v2/alerts", json=fired, timeout=10).status_code == 200
            wait_until(lambda: len(_FailFirstProxy.deliveries) >= 2)
    finally:
        proxy.shutdown()
        proxy.server_close()
    (first_body, first_status), (retry_body, retry_status) = _FailFirstProxy.deliveries[:2]
    assert first_status == retry_status == 202  # Warroom took both; the proxy hid the first answer
    assert json.loads(first_body) == json.loads(retry_body)  # Alertmanager retried the same notification
    [alert] = get(server, "/api/v1/alerts")["items"]
    assert alert["occurrences"] == 1
    assert alert["status"] == "firing"
    assert get(server, "/api/v1/alerts")["total"] == 1


def test_alertmanager_truncated_notification_is_flagged(server: dict[str, str], tmp_path: Path) -> None:
    # A receiver with max_alerts: 1 gets one alert of a group of three, and truncatedAlerts: 2.
    key = integration_key(server, "alertmanager")
    webhook = f"{server['url']}/api/v1/alerts/alertmanager?key={key}"
    # Starting now, not earlier: Alertmanager flushes a group at once for an alert older than group_wait,
    # which could send the first alert alone before the other two are grouped with it.
    started = datetime.now(UTC).isoformat()
    alerts = [
        {
            "labels": {"alertname": "DiskFull", "service": "storage", "instance": f"node-{n}"},
            "annotations": {"summary": f"node-{n} disk full"},
            "startsAt": started,
        }
        for n in range(3)
    ]
    with running_alertmanager(tmp_path, webhook, max_alerts=1) as alertmanager:
        assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=10).status_code == 200
        wait_until(lambda: get(server, "/api/v1/alerts")["total"] == 1)
    [stored] = get(server, "/api/v1/alerts")["items"]
    detail = get(server, f"/api/v1/alerts/{stored['id']}")
    assert detail["raw"].get("truncatedAlerts") == 2, detail["raw"]
    metrics = httpx.get(f"{server['url']}/metrics", timeout=10).text
    assert 'warroom_alerts_truncated_total{source="alertmanager"} 2.0' in metrics
    env = {"WARROOM_URL": server["url"], "WARROOM_TOKEN": server["admin"]}
    shown = run_cli("alerts", "show", str(stored["id"]), env=env, check=False)
    assert "left out 2 more alert(s)" in shown.stdout


def test_alertmanager_storm_group_over_a_mebibyte_arrives_whole(
    server: dict[str, str], alertmanager: str
) -> None:
    """QA's storm: with max_alerts 0, Alertmanager sends a group of 1,200 crash-looping pods as one body of
    over 1 MiB, and one pod's label holds a NUL. Both were refused (413, 400) and never retried: every alert
    of the group after the first flush was lost. Now the whole group arrives, the NUL marked."""
    started = datetime.now(UTC).isoformat()
    alerts = [
        {
            "labels": alert["labels"],
            "annotations": alert["annotations"],
            "generatorURL": alert["generatorURL"],
            "startsAt": started,
        }
        for alert in crashlooping(1200)["alerts"]
    ]
    alerts[7]["labels"]["instance"] = "10.42.0.7\x00:8080"
    assert len(json.dumps(alerts)) > 1024 * 1024
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=30).status_code == 200
    wait_until(lambda: get(server, "/api/v1/alerts", limit=1)["total"] == 1200, timeout=60)
    marked = get(server, "/api/v1/alerts", label="pod=checkout-api-7d9f8c6b5-00007")["items"]
    assert [alert["labels"]["instance"] for alert in marked] == ["10.42.0.7\ufffd:8080"]


def test_alertmanager_watchdog_pings_a_heartbeat(server: dict[str, str], tmp_path: Path) -> None:
    """The usual dead man's switch: Alertmanager's always-firing Watchdog alert, routed to a webhook receiver
    at the heartbeat's URL. Its real notification counts as a ping (the body is ignored)."""
    key = integration_key(server, "heartbeat")
    webhook = f"{server['url']}/api/v1/heartbeats/prometheus-watchdog?key={key}"
    watchdog = [{"labels": {"alertname": "Watchdog", "severity": "none"}, "annotations": {"summary": "ok"}}]
    with running_alertmanager(tmp_path, webhook) as alertmanager:
        assert httpx.post(f"{alertmanager}/api/v2/alerts", json=watchdog, timeout=10).status_code == 200

        def pinged() -> bool:
            beats = {h["name"]: h for h in get(server, "/api/v1/heartbeats")}
            return beats["prometheus-watchdog"]["pings"] >= 1

        wait_until(pinged, timeout=30)
    beats = {h["name"]: h for h in get(server, "/api/v1/heartbeats")}
    assert beats["prometheus-watchdog"]["state"] == "ok"
    assert beats["nightly-backup"]["state"] == "never pinged"
    assert get(server, "/api/v1/alerts")["total"] == 0  # a ping is not an alert


class _PagerDutyV1Relay(BaseHTTPRequestHandler):
    """Alertmanager posts Events API v1 to a fixed URL (its ``url`` setting is for v2 only), so the test
    points its proxy here: the CONNECT to events.pagerduty.com is answered, TLS is ended with a certificate
    for that name (which Alertmanager is told to trust), and each POST inside goes on to Warroom."""

    protocol_version = "HTTP/1.1"  # keep the tunnel open for the requests inside it
    upstream = ""
    tls: ssl.SSLContext
    connects: list[str] = []

    def do_CONNECT(self) -> None:
        self.connects.append(self.path)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.connection = self.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb", buffering=0)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        answer = httpx.post(
            self.upstream + self.path, content=body, headers={"Content-Type": "application/json"}, timeout=10
        )
        self.send_response(answer.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *_: Any) -> None:
        pass


def test_alertmanager_as_a_pagerduty_v1_client(server: dict[str, str], tmp_path: Path) -> None:
    """Alertmanager's pagerduty_configs with a service_key speak Events API v1: relayed to Warroom, its
    notifications open the alert and resolve it."""
    made = self_signed_certificate(tmp_path, host="events.pagerduty.com")
    require_peer(made is not None, "openssl is needed to make a test certificate")
    assert made is not None
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*made)
    relay_class = type("Relay", (_PagerDutyV1Relay,), {"upstream": server["url"], "tls": tls, "connects": []})
    relay = ThreadingHTTPServer(("127.0.0.1", 0), relay_class)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    key = integration_key(server, "pagerduty")
    receiver = (
        "    pagerduty_configs:\n"
        f"      - service_key: '{key}'\n"
        "        send_resolved: true\n"
        "        http_config:\n"
        f"          proxy_url: 'http://127.0.0.1:{relay.server_address[1]}'\n"
        f"          tls_config: {{ca_file: '{made[0]}'}}\n"
    )
    try:
        with running_alertmanager(tmp_path, "", receiver=receiver) as alertmanager:
            started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            alert = {
                "labels": {"alertname": "RaidDegraded", "service": "database", "severity": "warning"},
                "annotations": {"summary": "RAID degraded on nas1"},
                "startsAt": started,
            }
            assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10).status_code == 200
            wait_until(lambda: get(server, "/api/v1/alerts", firing="true")["total"] == 1)
            [stored] = get(server, "/api/v1/alerts")["items"]
            assert (stored["source"], stored["severity"]) == ("pagerduty", "error")
            assert stored["summary"].startswith("[FIRING:1] RaidDegraded")
            alert["endsAt"] = datetime.now(UTC).isoformat()
            assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10).status_code == 200
            wait_until(lambda: get(server, "/api/v1/alerts", firing="true")["total"] == 0)
    finally:
        relay.shutdown()
    assert get(server, "/api/v1/alerts")["total"] == 1
    assert set(relay_class.connects) == {"events.pagerduty.com:443"}


def _notifications(alertmanager: str, integration: str) -> tuple[float, float]:
    """Alertmanager's own count of notifications sent by an integration, and of those that failed."""
    counts = {"alertmanager_notifications_total": 0.0, "alertmanager_notifications_failed_total": 0.0}
    for line in httpx.get(f"{alertmanager}/metrics", timeout=10).text.splitlines():
        name, _, rest = line.partition("{")
        if name in counts and f'integration="{integration}"' in rest:
            counts[name] += float(rest.rsplit(" ", 1)[1])
    return counts["alertmanager_notifications_total"], counts["alertmanager_notifications_failed_total"]


def test_alertmanager_as_an_opsgenie_client(server: dict[str, str], tmp_path: Path) -> None:
    """Alertmanager's opsgenie_configs, with api_url pointed at Warroom: the alert opens by alias, with its
    labels as details, and closes when it ends. With update_alerts, Alertmanager follows each create with
    PUTs of the message and description, and counts a notification failed unless all of them succeed."""
    key = integration_key(server, "opsgenie")
    receiver = (
        "    opsgenie_configs:\n"
        f"      - api_key: '{key}'\n"
        f"        api_url: '{server['url']}/'\n"
        "        priority: P1\n"
        "        update_alerts: true\n"
        "        description: 'replication is behind on {{ .CommonLabels.service }}'\n"
        "        send_resolved: true\n"
    )
    with running_alertmanager(tmp_path, "", receiver=receiver) as alertmanager:
        alert = {
            "labels": {"alertname": "ReplicationLag", "service": "database", "severity": "critical"},
            "annotations": {"summary": "replica 40 s behind"},
            "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        }
        assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10).status_code == 200
        wait_until(lambda: get(server, "/api/v1/alerts", firing="true")["total"] == 1)
        [stored] = get(server, "/api/v1/alerts")["items"]
        assert (stored["source"], stored["severity"], stored["alert_type"]) == (
            "opsgenie",
            "critical",
            "ReplicationLag",
        )
        assert stored["labels"]["service"] == "database"
        # Every notification (the create and its updates) succeeded, and the updates counted no occurrence.
        wait_until(lambda: _notifications(alertmanager, "opsgenie")[0] >= 1)
        assert _notifications(alertmanager, "opsgenie")[1] == 0
        [stored] = get(server, "/api/v1/alerts")["items"]
        assert stored["occurrences"] == 1
        assert stored["annotations"]["description"] == "replication is behind on database"
        alert["endsAt"] = datetime.now(UTC).isoformat()
        assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10).status_code == 200
        wait_until(lambda: get(server, "/api/v1/alerts", firing="true")["total"] == 0)
    assert get(server, "/api/v1/alerts")["total"] == 1


def test_alertmanager_through_a_webhook_format(database_url: str, tmp_path: Path) -> None:
    """A real sender's JSON read by an org file's webhook format rather than the built-in adapter: each of
    Alertmanager's alerts (``each: payload.alerts``) opens by its fingerprint, then resolves."""
    org = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    org["automation"]["webhook_formats"].append(
        {
            "name": "am-own",
            "each": "payload.alerts",
            "alert": "{{ item.labels.alertname }}",
            "dedup_key": "{{ item.fingerprint }}",
            "summary": "{{ item.annotations.summary }}",
            "service": "{{ item.labels.service }}",
            "severity": "{{ item.labels.severity }}",
            "resolve": "item.status == 'resolved'",
            "labels": {"instance": "{{ item.labels.instance }}"},
            "links": [{"href": "{{ item.generatorURL }}", "text": "Prometheus"}],
        }
    )
    config = tmp_path / "org.yaml"
    config.write_text(yaml.safe_dump(org))
    admin = create_token("e2e-admin", "admin", database_url=database_url)
    with ServerProcess(
        database_url=database_url, config=config, data_dir=tmp_path, extra_args=["--no-worker"]
    ) as warroom:
        server = {"url": warroom.url, "database_url": database_url, "admin": admin}
        key = integration_key(server, "webhook")
        with running_alertmanager(tmp_path, f"{warroom.url}/api/v1/alerts/webhook/am-own?key={key}") as am:
            alerts = [
                {
                    "labels": {
                        "alertname": "DiskFull",
                        "service": "database",
                        "severity": "warning",
                        "instance": i,
                    },
                    "annotations": {"summary": f"disk 95% on {i}"},
                    "generatorURL": "http://prometheus.example/graph?g0.expr=disk",
                    "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                }
                for i in ("db-1", "db-2")
            ]
            assert httpx.post(f"{am}/api/v2/alerts", json=alerts, timeout=10).status_code == 200
            wait_until(lambda: get(server, "/api/v1/alerts", firing="true")["total"] == 2)
            stored = get(server, "/api/v1/alerts")["items"]
            assert {(a["source"], a["service"], a["severity"], a["alert_type"]) for a in stored} == {
                ("webhook", "database", "warning", "DiskFull")
            }
            assert {a["labels"]["instance"] for a in stored} == {"db-1", "db-2"}
            assert all(len(a["dedup_key"]) == 16 for a in stored)  # Alertmanager's fingerprints
            for alert in alerts:
                alert["endsAt"] = datetime.now(UTC).isoformat()
            assert httpx.post(f"{am}/api/v2/alerts", json=alerts, timeout=10).status_code == 200
            wait_until(lambda: get(server, "/api/v1/alerts", firing="true")["total"] == 0)
        assert get(server, "/api/v1/alerts")["total"] == 2


def test_pdpyras_trigger_acknowledge_resolve(server: dict[str, str]) -> None:
    key = last_line(
        run_cli(
            "integration",
            "create",
            "--name",
            "pd",
            "--type",
            "pagerduty",
            "--service",  # the service of its alerts: PagerDuty events name none
            "database",
            "--config",
            str(EXAMPLE_CONFIG),
            "--database-url",
            server["database_url"],
            check=False,
        )
    )
    session = pdpyras.EventsAPISession(key)
    session.url = server["url"]
    dedup = session.trigger("Disk full on db-1", "db-1.prod", dedup_key="disk-db1", severity="critical")
    assert dedup == "disk-db1"
    [alert] = get(server, "/api/v1/alerts")["items"]
    assert (alert["source"], alert["status"], alert["severity"]) == ("pagerduty", "firing", "critical")
    assert alert["service"] == "database"
    assert alert["incident"] == "INC-1"  # the critical-monitoring rule
    assert get(server, "/api/v1/incidents/INC-1")["title"] == "Disk full on db-1 on database"
    # Retriggering the same event is a no-op; acknowledge and resolve go by dedup key.
    session.trigger("Disk full on db-1", "db-1.prod", dedup_key="disk-db1", severity="critical")
    assert get(server, "/api/v1/alerts")["total"] == 1
    session.acknowledge("disk-db1")
    assert get(server, "/api/v1/alerts")["items"][0]["status"] == "acknowledged"
    session.resolve("disk-db1")
    [alert] = get(server, "/api/v1/alerts")["items"]
    assert alert["status"] == "resolved"
    assert get(server, "/api/v1/incidents/INC-1")["status"] == "monitoring"
    # A revoked key is refused; pdpyras raises on the 401.
    listing = last_line(
        run_cli("integration", "revoke", "1", "--database-url", server["database_url"], check=False)
    )
    assert "revoked" in listing
    with pytest.raises(pdpyras.PDClientError):
        session.trigger("again", "db-1.prod", dedup_key="disk-db1")


def test_pdpyras_change_events(server: dict[str, str]) -> None:
    """PagerDuty's Change Events client (CI plugins speak the same API): a deploy, then an incident that
    opens soon after lists it on its timeline."""
    key = integration_key(server, "pagerduty")
    session = pdpyras.ChangeEventsAPISession(key)
    session.url = server["url"]
    change_id = session.submit(
        "Deployed payments 3.1.0",
        source="github-actions",
        custom_details={"service": "payments", "build": 812},
        links=[{"href": "https://ci.example.com/812", "text": "build 812"}],
    )
    assert change_id == "CHG-1"
    [change] = get(server, "/api/v1/changes")["items"]
    assert (change["service"], change["source"], change["recorded_by"]) == (
        "payments",
        "github-actions",
        "integration e2e-pagerduty",
    )
    assert change["details"] == {"service": "payments", "build": 812}
    assert change["links"] == [{"href": "https://ci.example.com/812", "text": "build 812"}]
    incident = httpx.post(
        server["url"] + "/api/v1/incidents",
        json={"title": "Card payments failing", "severity": "P1", "services": ["payments"]},
        headers={"Authorization": f"Bearer {server['admin']}"},
        timeout=10,
    )
    assert incident.status_code == 201, incident.text
    timeline = get(server, f"/api/v1/incidents/{incident.json()['id']}/timeline")["items"]
    notes = [entry["action"] for entry in timeline if entry["action"].startswith("Changes in the")]
    assert len(notes) == 1 and "CHG-1" in notes[0] and "Deployed payments 3.1.0" in notes[0]
    # A wrong key: pdpyras raises on PagerDuty's error answer.
    bad = pdpyras.ChangeEventsAPISession("not-a-key")
    bad.url = server["url"]
    with pytest.raises(pdpyras.PDClientError):
        bad.submit("Deployed again")
