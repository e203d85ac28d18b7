"""Alert intake benchmarks (bounded, loopback only). Not part of the test suite.

1. Single-alert intake over HTTP (plain JSON, durable commit, dedup) vs a bare ASGI "hello" endpoint in the
   same uvicorn process, both driven by ``wrk`` with the same threads, connections and duration.
2. Alert storm: 100,000 Alertmanager-webhook alerts over 200 fingerprints in batches of 100, sent by one
   Python load generator with a fixed number of concurrent connections; checks that they fold into exactly
   200 alerts, and reports alerts/s. The same batches go to Debian's Alertmanager (``/api/v2/alerts``,
   in memory) with the same generator, as a reference.

Each comparison runs ``--rounds`` times, alternating its two sides, because the cores are shared and the
machine's speed drifts; the round with the median ratio is reported, with every round kept in the output.
The server's CPU time per request (from /proc) is reported beside each rate: unlike a rate, it hardly moves
with the load on the machine.

Usage:  .venv/bin/python bench/alerts_intake.py [--database-url URL] [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "warroom.yaml"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

SINGLE_LUA = r"""
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
request = function()
  counter = counter + 1
  -- 1,000 dedup keys: the first sighting of each inserts, the rest update count and last seen.
  local body = string.format(
    '{"summary":"queue depth %d","severity":"info","dedup_key":"bench-%d","labels":{"job":"queue"}}',
    counter, math.random(0, 999))
  return wrk.format(nil, "/api/v1/alerts", nil, body)
end
"""

NOOP_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"summary":"queue depth 1","severity":"info","dedup_key":"bench-1","labels":{"job":"queue"}}'
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    port: int, database_url: str, config: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``bench/alerts_server.py`` on ``port``: the real app, as ``warroom serve`` builds it."""
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "alerts_server.py"),
            "--port",
            str(port),
            "--database-url",
            database_url,
            "--config",
            str(config),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})},
    )


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready")


def run_wrk(url: str, duration: int, connections: int, script: Path | None = None) -> float:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{output}")
    assert match, output
    print(f"wrk {url} {script.name if script else ''}: {match.group(1)} requests/s", flush=True)
    return float(match.group(1))


def storm_batches(total: int, fingerprints: int, batch: int) -> list[list[dict[str, Any]]]:
    # In the past, or Alertmanager refuses alerts whose default end precedes their start.
    started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    batches = []
    for b in range(total // batch):
        alerts = []
        for i in range(batch):
            n = b * batch + i
            fp = n % fingerprints
            alerts.append(
                {
                    "labels": {"alertname": "Storm", "instance": f"node-{fp}", "severity": "info"},
                    "annotations": {"summary": f"node-{fp} flapping", "value": str(n)},
                    "startsAt": started,
                    "fingerprint": f"{fp:016x}",
                }
            )
        batches.append(alerts)
    return batches


def as_webhook(alerts: list[dict[str, Any]]) -> bytes:
    body = {
        "receiver": "warroom",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": a["startsAt"],
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": a["fingerprint"],
            }
            for a in alerts
        ],
        "groupLabels": {"alertname": "Storm"},
        "commonLabels": {"alertname": "Storm"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="Storm"}',
        "truncatedAlerts": 0,
    }
    return json.dumps(body).encode()


def as_postable(alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps([{k: v for k, v in a.items() if k != "fingerprint"} for a in alerts]).encode()


async def send_all(url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                response = await client.post(url, content=body)
                if response.status_code >= 300:
                    raise SystemExit(f"{url}: {response.status_code} {response.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def make_key(database_url: str, kind: str) -> str:
    from warroom import migrate
    from warroom.auth import integrations
    from warroom.auth.models import IntegrationType
    from warroom.db import Database
    from warroom.orgconfig import OrgConfig

    database = Database(database_url)
    migrate.upgrade(database.engine)
    with database.write() as session:
        key = integrations.create_integration(
            session, org=OrgConfig(), name=f"bench-{kind}", type=IntegrationType(kind)
        ).key
    database.dispose()
    return key


def count_alerts(database_url: str, source: str) -> tuple[int, int]:
    from warroom.alerts.models import Alert
    from warroom.db import Database

    database = Database(database_url)
    with database.read() as session:
        rows = session.scalar(select(func.count()).select_from(Alert).where(Alert.source == source)) or 0
        occurrences = session.scalar(select(func.sum(Alert.occurrences)).where(Alert.source == source)) or 0
    database.dispose()
    return rows, occurrences


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_wrk(
    pid: int, url: str, duration: int, connections: int, script: Path | None = None
) -> dict[str, float]:
    """Requests/s from wrk, and the server's CPU time per request over the same run."""
    before = process_cpu_seconds(pid)
    rps = run_wrk(url, duration, connections, script)
    used = process_cpu_seconds(pid) - before
    return {"rps": rps, "cpu_us_per_request": used / (rps * duration) * 1e6}


def start_alertmanager(workdir: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    if not Path(ALERTMANAGER).exists():
        return None
    port = free_port()
    config = workdir / "am.yml"
    config.write_text("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n")
    (workdir / "am-data").mkdir()
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/-/ready")
    return process, url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="Default: a fresh SQLite file (synchronous=FULL).")
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run.")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds of each comparison.")
    parser.add_argument("--storm", type=int, default=100_000)
    parser.add_argument("--fingerprints", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--storm-concurrency", type=int, default=4)
    parser.add_argument("--only", choices=["single", "storm"], help="Run one of the two comparisons.")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")

    workdir = Path(tempfile.mkdtemp(prefix="warroom-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    generic_key = make_key(database_url, "generic")
    am_key = make_key(database_url, "alertmanager")
    port = free_port()
    server = start_server(port, database_url, CONFIG)
    alertmanager = None
    results: dict[str, Any] = {"database": database_url.split(":")[0], "cores": os.cpu_count()}
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz")
        alertmanager = start_alertmanager(workdir)
        script = workdir / "single.lua"
        script.write_text(SINGLE_LUA.replace("KEY", generic_key))
        noop_script = workdir / "noop.lua"
        noop_script.write_text(NOOP_LUA)
        # Warm both paths. Then alternate hello and intake, so that a change in the machine's speed (the
        # cores are shared) hits both sides of a ratio alike; the median round is the figure.
        if args.only != "storm":
            run_wrk(f"{base}/bench/hello", 2, args.connections)
            run_wrk(base, 2, args.connections, script)
        rounds = []
        for _ in range(args.rounds if args.only != "storm" else 0):
            hello = measured_wrk(server.pid, f"{base}/bench/hello", args.duration, args.connections)
            intake = measured_wrk(server.pid, base, args.duration, args.connections, script)
            rounds.append({"hello": hello, "intake": intake, "ratio": intake["rps"] / hello["rps"]})
        if rounds:
            noop = run_wrk(f"{base}/bench/fastapi-noop", args.duration, args.connections, noop_script)
            median = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
            results.update(
                connections=args.connections,
                single_rounds=rounds,
                hello_rps=median["hello"]["rps"],
                intake_rps=median["intake"]["rps"],
                ratio=median["ratio"],
                hello_cpu_us_per_request=median["hello"]["cpu_us_per_request"],
                intake_cpu_us_per_request=median["intake"]["cpu_us_per_request"],
                fastapi_noop_rps=noop,
            )

        if args.only == "single":
            print(json.dumps(results, indent=2), flush=True)
            return
        batches = storm_batches(args.storm, args.fingerprints, args.batch)
        webhook_bodies = [as_webhook(b) for b in batches]
        postable_bodies = [as_postable(b) for b in batches]
        storm_rounds = []
        for _ in range(args.rounds):
            elapsed = asyncio.run(
                send_all(
                    f"{base}/api/v1/alerts/alertmanager",
                    webhook_bodies,
                    {"Authorization": f"Bearer {am_key}", "Content-Type": "application/json"},
                    args.storm_concurrency,
                )
            )
            storm_round: dict[str, float] = {"warroom_alerts_per_s": args.storm / elapsed}
            if alertmanager is not None:
                am_elapsed = asyncio.run(
                    send_all(
                        f"{alertmanager[1]}/api/v2/alerts",
                        postable_bodies,
                        {"Content-Type": "application/json"},
                        args.storm_concurrency,
                    )
                )
                storm_round["alertmanager_alerts_per_s"] = args.storm / am_elapsed
                storm_round["ratio"] = (
                    storm_round["warroom_alerts_per_s"] / storm_round["alertmanager_alerts_per_s"]
                )
            storm_rounds.append(storm_round)
            print(json.dumps(storm_round), flush=True)
        rows, occurrences = count_alerts(database_url, "alertmanager")
        by_ratio = sorted(storm_rounds, key=lambda r: r.get("ratio", r["warroom_alerts_per_s"]))
        median_storm = by_ratio[len(by_ratio) // 2]
        results.update(
            storm_alerts=args.storm,
            storm_rounds=storm_rounds,
            storm_alerts_per_s=median_storm["warroom_alerts_per_s"],
            alertmanager_alerts_per_s=median_storm.get("alertmanager_alerts_per_s"),
            storm_vs_alertmanager=median_storm.get("ratio"),
            storm_rows=rows,
            storm_occurrences=occurrences,
        )
        print(json.dumps(results, indent=2), flush=True)
        # Every round sends the same alerts again: still 200 alerts, every occurrence counted.
        if rows != args.fingerprints or occurrences != args.storm * args.rounds:
            raise SystemExit(
                f"storm folded into {rows} alerts with {occurrences} occurrences, "
                f"expected {args.fingerprints} with {args.storm * args.rounds}"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
        if alertmanager is not None:
            alertmanager[0].terminate()
            alertmanager[0].wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
