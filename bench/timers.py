"""10,000 pending timers: how late does each job start relative to its run_at?

Method: a fresh database (SQLite file with the production pragmas, or PostgreSQL) holds N pending
jobs whose run_at are spread uniformly over a window that starts a few seconds in the future. One
worker (``warroom.jobs.worker.Worker.run_forever``, default poll interval and batch) runs them; the
handler records the real time it started. Lateness = start - run_at. Reports p50/p99/max per backend.

    .venv/bin/python bench/timers.py                       # SQLite, 10,000 jobs over 60 s
    .venv/bin/python bench/timers.py --backend postgres --postgres-url postgresql+psycopg://...
    .venv/bin/python bench/timers.py --jobs 10000 --window 10  # a harsher 1,000 timers/s
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.orm import Session

from warroom import migrate
from warroom.context import AppContext
from warroom.db import Database
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import job_handler
from warroom.jobs.worker import Worker
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings

_lock = threading.Lock()
_started: dict[int, datetime] = {}


@job_handler("bench.timer")
def _timer(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    now = datetime.now(UTC)
    with _lock:
        _started[job.id] = now
    return {"late_ms": round((now - job.run_at).total_seconds() * 1000, 1)}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run(url: str, *, jobs: int, window: float, lead: float, timeout: float) -> dict[str, float]:
    settings = Settings(database_url=url, run_worker=False)
    db = Database(url, sqlite_synchronous=settings.sqlite_synchronous)
    migrate.upgrade(db.engine)
    context = AppContext(settings=settings, db=db, org=OrgConfig())
    _started.clear()
    start = datetime.now(UTC) + timedelta(seconds=lead)
    offsets = sorted(random.uniform(0, window) for _ in range(jobs))
    rows = [
        {
            "kind": "bench.timer",
            "payload": {"n": n},
            "run_at": start + timedelta(seconds=offset),
            "status": JobStatus.pending,
            "attempts": 0,
            "max_attempts": 8,
            "created_at": datetime.now(UTC),
        }
        for n, offset in enumerate(offsets)
    ]
    with db.write() as session:
        session.execute(insert(Job), rows)
    with db.engine.connect() as connection:
        # Fresh statistics, as autovacuum would have them on a live system.
        connection.execute(text("ANALYZE jobs"))
        connection.commit()
    if datetime.now(UTC) > start:
        raise SystemExit("inserting took longer than --lead; raise it")
    worker = Worker(context, name="bench")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + lead + window + timeout
    while time.monotonic() < deadline:
        with _lock:
            if len(_started) >= jobs:
                break
        time.sleep(0.2)
    stop.set()
    thread.join(30)
    with db.read() as session:
        run_at = dict(session.execute(text("SELECT id, run_at FROM jobs")).all())
    db.dispose()
    lateness = []
    for job_id, started in _started.items():
        due = run_at[job_id]
        if isinstance(due, str):
            due = datetime.fromisoformat(due)
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        lateness.append((started - due).total_seconds())
    if len(lateness) < jobs:
        print(f"  only {len(lateness)} of {jobs} jobs ran before the timeout", file=sys.stderr)
    starts = sorted(_started.values())
    busy = (starts[-1] - starts[0]).total_seconds() if len(starts) > 1 else 0.0
    return {
        "rate": len(starts) / busy if busy else 0.0,
        "ran": len(lateness),
        "p50": statistics.median(lateness),
        "p99": _percentile(lateness, 0.99),
        "max": max(lateness),
        "min": min(lateness),
    }


def _fresh_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("WARROOM_BENCH_POSTGRES_URL"))
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the run_at values spread over")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds before the first run_at")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait after the window")
    args = parser.parse_args()
    backends: list[tuple[str, str]] = []
    if args.backend in ("sqlite", "both"):
        path = Path(tempfile.mkdtemp(prefix="warroom-bench-")) / "timers.db"
        backends.append(("sqlite", f"sqlite:///{path}"))
    if args.backend in ("postgres", "both"):
        if not args.postgres_url:
            parser.error("--postgres-url (or WARROOM_BENCH_POSTGRES_URL) is needed for PostgreSQL")
        _fresh_postgres(args.postgres_url)  # the database is emptied: never point this at real data
        backends.append(("postgres", args.postgres_url))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.jobs} timers over {args.window:g} s ({args.jobs / args.window:.0f}/s), one worker, "
        f"{os.cpu_count()} CPUs, load average {load:.2f} at start"
    )
    for name, url in backends:
        result = run(url, jobs=args.jobs, window=args.window, lead=args.lead, timeout=args.timeout)
        print(
            f"  {name:9s} ran {result['ran']:>6}  lateness p50 {result['p50'] * 1000:7.1f} ms  "
            f"p99 {result['p99'] * 1000:7.1f} ms  max {result['max'] * 1000:7.1f} ms  "
            f"(earliest {result['min'] * 1000:.1f} ms; {result['rate']:.0f} jobs/s)"
        )


if __name__ == "__main__":
    main()
