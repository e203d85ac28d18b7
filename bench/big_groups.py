"""Bench: one Alertmanager notification of N new alerts (a whole group, up to ``max_intake_body_bytes``)
posted through the real app, as ``bench/alerts_intake.py`` serves it; reports seconds and ms per alert.

The alerts look like a real storm's group: one alertname (``KubePodCrashLooping``) over N pods spread on
``--hosts`` nodes (an ``instance`` label each, as the example's ``host-down`` inhibit rule reads), with the
usual Kubernetes labels and a description, about 1 KiB each. ``--inhibit`` keeps the example's inhibit
rules (default: they are taken out of the org file); ``--hosts-down K`` first posts a ``HostDown`` alert for
the first K nodes, so that inhibition has something to decide. ``--severity`` picks whether the rules route
the group (critical: one incident, each alert attached to it) or leave it unrouted (warning).

After the post, the script counts what was stored (alerts, muted alerts, incidents, timeline entries), so
that two runs, before and after a change, can be compared for the same results, not only for speed.

Usage:  .venv/bin/python bench/big_groups.py [-n 2000] [--database-url URL] [--inhibit] [--hosts-down 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alerts_intake import CONFIG, free_port, make_key, process_cpu_seconds, start_server, wait_ready


def group_alerts(count: int, hosts: int, severity: str, started: str) -> list[dict[str, Any]]:
    alerts = []
    for n in range(count):
        host = f"node-{n % hosts:03d}.prod.acme.example:9100"
        labels = {
            "alertname": "KubePodCrashLooping",
            "severity": severity,
            "namespace": f"team-{n % 17}",
            "pod": f"worker-{n:05d}-7f9c8d6b5-{n % 97:02d}x4z",
            "container": "worker",
            "instance": host,
            "job": "kube-state-metrics",
            "cluster": "prod-eu-1",
            "prometheus": "monitoring/k8s",
        }
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": f"Pod {labels['namespace']}/{labels['pod']} is crash looping",
                    "description": (
                        f"Pod {labels['namespace']}/{labels['pod']} ({labels['container']}) is in waiting "
                        f"state (reason: CrashLoopBackOff) on {host} for longer than 15 minutes. "
                        + "Restarts keep failing; see the runbook. "
                        * 4
                    ),
                    "runbook_url": "https://runbooks.acme.example/kubernetes/kubepodcrashlooping",
                },
                "startsAt": started,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=max_over_time%28kube_pod_container",
                "fingerprint": f"{n:016x}",
            }
        )
    return alerts


def notification(alerts: list[dict[str, Any]], alertname: str) -> bytes:
    body = {
        "receiver": "warroom",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
    }
    return json.dumps(body).encode()


def host_down(hosts: int, started: str) -> list[dict[str, Any]]:
    return [
        {
            "status": "firing",
            "labels": {
                "alertname": "HostDown",
                "severity": "critical",
                "instance": f"node-{n:03d}.prod.acme.example:9100",
                "job": "node",
            },
            "annotations": {"summary": f"node-{n:03d} is down"},
            "startsAt": started,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": f"{0xFFFF0000 + n:016x}",
        }
        for n in range(hosts)
    ]


def stored(database_url: str) -> dict[str, int]:
    from warroom.alerts.models import Alert
    from warroom.db import Database
    from warroom.incidents.models import Incident, TimelineEntry

    database = Database(database_url)
    with database.read() as session:

        def count(model: Any, *where: Any) -> int:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

        result = {
            "alerts": count(Alert),
            "muted": count(Alert, Alert.inhibited_by_id.is_not(None)),
            "on_incidents": count(Alert, Alert.incident_id.is_not(None)),
            "unrouted": count(Alert, Alert.incident_id.is_(None), Alert.inhibited_by_id.is_(None)),
            "incidents": count(Incident),
            "timeline_entries": count(TimelineEntry),
            # Those intake wrote (the worker may have added its own, paging, by the time of the count).
            "automation_entries": count(TimelineEntry, TimelineEntry.performer == "automation"),
        }
    database.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--alerts", type=int, default=2000, help="New alerts in the one notification.")
    parser.add_argument("--database-url", help="Default: a fresh SQLite file (synchronous=FULL).")
    parser.add_argument("--inhibit", action="store_true", help="Keep the example's inhibit rules.")
    parser.add_argument("--hosts", type=int, default=50, help="Nodes the pods are spread on.")
    parser.add_argument("--hosts-down", type=int, default=0, help="HostDown alerts posted first.")
    parser.add_argument("--severity", default="critical", choices=["critical", "warning"])
    parser.add_argument("--port", type=int, help="Default: a free port.")
    parser.add_argument(
        "--busy-timeout",
        type=float,
        default=3600,
        help="WARROOM_SQLITE_BUSY_TIMEOUT of the server: a SQLite delivery is answered 503 after about this "
        "long (30 s by default in production); raised so that a slow store is timed, not cut off.",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="warroom-big-groups-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    config = workdir / "warroom.yaml"
    org = yaml.safe_load(CONFIG.read_text())
    if not args.inhibit:
        org["automation"]["inhibit_rules"] = []
    config.write_text(yaml.safe_dump(org))
    key = make_key(database_url, "alertmanager")
    port = args.port or free_port()
    env = {
        "WARROOM_MAX_INTAKE_BODY_BYTES": str(32 << 20),
        "WARROOM_SQLITE_BUSY_TIMEOUT": str(args.busy_timeout),
    }
    server = start_server(port, database_url, config, env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz")
        url = f"{base}/api/v1/alerts/alertmanager"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        with httpx.Client(timeout=3600, headers=headers) as client:
            if args.hosts_down:
                response = client.post(
                    url, content=notification(host_down(args.hosts_down, started), "HostDown")
                )
                response.raise_for_status()
            body = notification(group_alerts(args.alerts, args.hosts, args.severity, started), "Crash")
            print(
                f"server pid {server.pid}; posting {args.alerts} alerts, {len(body) / 2**20:.1f} MiB",
                flush=True,
            )
            cpu_before = process_cpu_seconds(server.pid)
            began = time.perf_counter()
            response = client.post(url, content=body)
            elapsed = time.perf_counter() - began
            cpu = process_cpu_seconds(server.pid) - cpu_before
        if response.status_code != 202:
            raise SystemExit(f"{response.status_code}: {response.text[:500]}")
        result = {
            "database": database_url.split(":")[0],
            "alerts": args.alerts,
            "inhibit_rules": args.inhibit,
            "hosts_down": args.hosts_down,
            "severity": args.severity,
            "mib": round(len(body) / 2**20, 2),
            "seconds": round(elapsed, 2),
            "ms_per_alert": round(elapsed / args.alerts * 1000, 3),
            # The server's CPU time over the post (all its threads): it moves less than the wall clock does
            # when other work shares the cores.
            "server_cpu_seconds": round(cpu, 2),
            "stored": stored(database_url),
        }
        print(json.dumps(result), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
