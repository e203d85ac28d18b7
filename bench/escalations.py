"""Escalation firing lateness with real ``escalation.check`` jobs among 10,000 pending escalations.

Method (see bench/README.md):
1. Open ``--incidents`` P1 incidents (default 10,000) with a frozen clock and run their ``oncall.start``
   jobs, so each has a real escalation waiting on an ``escalation.check`` job (and its first page
   delivered to the console channel).
2. Move every check an hour out; then, per phase (``--phases due/window,...``; default 600 over 60 s,
   a steady 10 a second, then a burst of 2,000 over 30 s), bring ``due`` of them to deadlines spread
   evenly over the next ``window`` seconds of real time. The rest stay pending (they load the index).
3. Release the clock and run ``--workers`` real worker loops (``Worker.run_forever``, default poll
   interval) until every due check of the phase has run. Each check pages step 2 (a page row, a
   delivery and its ``notify.deliver`` job, which the same workers run): the real load.
4. Lateness of a check = when its transaction finished (step 2 paged, committed) minus its deadline.

Usage: python bench/escalations.py [--database-url URL] [--incidents N] [--phases 600/60,2000/30]
                                   [--workers N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text, update

from warroom import migrate
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import Database
from warroom.incidents import service as incident_service
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify.config import ConsoleChannel
from warroom.oncall.models import Escalation
from warroom.oncall.paging import CHECK_KIND
from warroom.orgconfig import load_org_config
from warroom.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _reset_postgres(url: str) -> None:
    database = Database(url)
    with database.engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    database.dispose()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _retime(database: Database, checks: list[Job], deadlines: list[datetime]) -> None:
    """Move checks (and their escalations' recorded deadlines) to new deadlines."""
    with database.write() as session:
        for job, deadline in zip(checks, deadlines, strict=True):
            session.execute(update(Job).where(Job.id == job.id).values(run_at=deadline))
            session.execute(
                update(Escalation)
                .where(Escalation.id == int(job.payload["escalation_id"]))
                .values(next_check_at=deadline)
            )


def _phase(
    context: AppContext, database: Database, checks: list[Job], window: float, workers: int
) -> dict[str, object]:
    """Bring ``checks`` due evenly over ``window`` seconds, run real workers until all ran, measure."""
    due = len(checks)
    base = datetime.now(UTC) + timedelta(seconds=2)
    _retime(database, checks, [base + timedelta(seconds=window * i / max(1, due - 1)) for i in range(due)])
    ids = [job.id for job in checks]
    stop = threading.Event()
    loops = [Worker(context, name=f"bench-{n}") for n in range(workers)]
    threads = [threading.Thread(target=w.run_forever, args=(stop,), daemon=True) for w in loops]
    for thread in threads:
        thread.start()
    limit = time.monotonic() + window + 600
    while time.monotonic() < limit:
        with database.read() as session:
            remaining = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.id.in_(ids), Job.status.in_([JobStatus.pending, JobStatus.running]))
            )
        if not remaining:
            break
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    with database.read() as session:
        rows = session.execute(select(Job.run_at, Job.finished_at, Job.status).where(Job.id.in_(ids))).all()
    lateness = [
        (finished - run_at).total_seconds()
        for run_at, finished, status in rows
        if finished is not None and status == JobStatus.done
    ]
    result: dict[str, object] = {
        "checks": due,
        "window_seconds": window,
        "rate_per_second": round(due / window, 1),
        "fired": len(lateness),
    }
    if lateness:
        result.update(
            {
                "lateness_p50_s": round(statistics.median(lateness), 3),
                "lateness_p99_s": round(_percentile(lateness, 0.99), 3),
                "lateness_max_s": round(max(lateness), 3),
            }
        )
    return result


def run(
    url: str, incidents: int, phases: list[tuple[int, float]], workers: int, data_dir: Path
) -> dict[str, object]:
    if not url.startswith("sqlite"):
        _reset_postgres(url)
    settings = Settings(data_dir=data_dir, database_url=url, config=ROOT / "examples" / "warroom.yaml")
    org = load_org_config(settings.config)
    # Pages go to the console channel, so the measurement is about timers, not a mail server.
    org.notification_channels = [ConsoleChannel(name="console", type="console")]
    for person in org.people:
        person.notification_rules = []
        person.contact_methods = []
        person.email = None
    database = Database.from_settings(settings)
    migrate.upgrade(database.engine)
    context = AppContext(settings=settings, db=database, org=org)

    started = time.perf_counter()
    clock.set(datetime.now(UTC))
    batch = 500
    for first in range(0, incidents, batch):
        with database.write() as session:
            for _ in range(min(batch, incidents - first)):
                incident_service.create_incident(
                    session,
                    org=org,
                    data=IncidentCreate(title="bench", severity="P1", services=["api"]),
                    performer="bench",
                )
    setup_worker = Worker(context, name="bench-setup", batch=200)
    while setup_worker.run_once():
        pass
    setup_seconds = time.perf_counter() - started

    with database.read() as session:
        checks = list(
            session.scalars(
                select(Job).where(Job.kind == CHECK_KIND, Job.status == JobStatus.pending).order_by(Job.id)
            )
        )
    assert len(checks) == incidents, f"expected {incidents} pending checks, found {len(checks)}"
    clock.reset()
    _retime(database, checks, [datetime.now(UTC) + timedelta(hours=1)] * len(checks))
    results = []
    offset = 0
    for due, window in phases:
        results.append(_phase(context, database, checks[offset : offset + due], window, workers))
        offset += due
    with database.read() as session:
        pending = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.pending))
    database.dispose()
    return {
        "database": "sqlite" if url.startswith("sqlite") else "postgresql",
        "incidents_with_pending_escalations": incidents,
        "workers": workers,
        "poll_interval": settings.worker_poll_interval,
        "setup_seconds": round(setup_seconds, 1),
        "pending_jobs_after": pending,
        "phases": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None, help="Default: a fresh SQLite file in a temp dir.")
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--phases", default="600/60,2000/30", help="due/window pairs, one phase each.")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    phases = [(int(due), float(window)) for due, window in (p.split("/") for p in args.phases.split(","))]
    if sum(due for due, _ in phases) > args.incidents:
        parser.error("the phases need more checks than --incidents gives")
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        result = run(url, args.incidents, phases, args.workers, Path(tmp))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
