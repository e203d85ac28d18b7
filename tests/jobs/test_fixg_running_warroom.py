"""What an SRE running Warroom watches it by: /metrics through a database outage, the job queue's backlog
(a dead worker), a worker's own metrics, the clock offset before it is measured, and a worker's log when it
lost a job's lease while running it."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tests.peers import free_port, wait_until
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import enqueue, job_handler
from warroom.jobs.worker import Worker

START = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_metrics_keep_the_process_counters_when_the_database_cannot_be_read(
    api: TestClient, context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """A scrape during an outage still carries this process's counters (the refused deliveries describe the
    outage), and says the database's gauges are missing instead of answering 503."""
    healthy = api.get("/metrics")
    assert healthy.status_code == 200
    assert samples(healthy.text)[("warroom_metrics_database_up", ())] == 1
    assert ("warroom_jobs_oldest_due_seconds", ()) in samples(healthy.text)

    with context.db.write() as session:  # the jobs table gone (a database without its schema)
        session.execute(text("ALTER TABLE jobs RENAME TO jobs_away"))
    try:
        broken = api.get("/metrics")
    finally:
        with context.db.write() as session:
            session.execute(text("ALTER TABLE jobs_away RENAME TO jobs"))
    assert broken.status_code == 200, broken.text
    values = samples(broken.text)
    assert values[("warroom_metrics_database_up", ())] == 0
    assert ("python_info", ()) in values or any(
        name == "python_info" for name, _ in values
    )  # the process's own
    assert not any(name.startswith("warroom_incidents") for name, _ in values)
    assert any("the database's gauges are left out" in r.getMessage() for r in caplog.records)
    assert samples(api.get("/metrics").text)[("warroom_metrics_database_up", ())] == 1


def test_a_locked_table_on_postgresql_costs_a_scrape_two_seconds_not_the_lock_timeout(
    api: TestClient, context: AppContext
) -> None:
    if context.db.is_sqlite:
        pytest.skip("SQLite's readers never wait for a writer (WAL)")
    locker = create_engine(context.settings.resolved_database_url)
    try:
        with locker.connect() as connection:
            connection.execute(text("BEGIN"))
            connection.execute(text("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE"))
            scraped = api.get("/metrics")
            connection.execute(text("ROLLBACK"))
    finally:
        locker.dispose()
    assert scraped.status_code == 200, scraped.text
    assert samples(scraped.text)[("warroom_metrics_database_up", ())] == 0


@job_handler("test.fixg-noop")
def _noop(context: AppContext, session: Session, job: Job) -> None:
    return None


def test_the_job_backlog_shows_a_worker_that_takes_nothing(api: TestClient, context: AppContext) -> None:
    """No worker runs here: due jobs pile up and the oldest one's wait grows, which Prometheus can alert on;
    a job whose worker's lease ran out shows as such."""
    clock.set(START)
    with context.db.write() as session:
        enqueue(session, kind="test.fixg-noop", payload={}, run_at=START - timedelta(seconds=90))
        enqueue(session, kind="test.fixg-noop", payload={}, run_at=START - timedelta(seconds=30))
        enqueue(session, kind="test.fixg-noop", payload={}, run_at=START + timedelta(hours=1))  # not due
        stuck = enqueue(session, kind="test.fixg-noop", payload={}, run_at=START - timedelta(minutes=5))
        stuck.status = JobStatus.running
        stuck.lease_owner = "gone:1:abc"
        stuck.lease_expires_at = START - timedelta(minutes=1)
    values = samples(api.get("/metrics").text)
    assert values[("warroom_jobs_due", (("kind", "test.fixg-noop"),))] == 2
    assert values[("warroom_jobs_oldest_due_seconds", ())] == pytest.approx(90)
    assert values[("warroom_jobs_lease_expired", ())] == 1

    assert Worker(context, name="w").run_once() >= 3  # a worker back: the backlog drains
    values = samples(api.get("/metrics").text)
    assert ("warroom_jobs_due", (("kind", "test.fixg-noop"),)) not in values
    assert values[("warroom_jobs_oldest_due_seconds", ())] == 0
    assert values[("warroom_jobs_lease_expired", ())] == 0


def test_the_clock_offset_is_not_a_number_until_a_worker_measures_it() -> None:
    """A server without a worker (``serve --no-worker``) never measures it: 0 would read as "in step"."""
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import warroom.jobs.worker; from prometheus_client import REGISTRY; "
            "print(REGISTRY.get_sample_value('warroom_clock_offset_seconds'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert math.isnan(float(shown.stdout.strip())), shown.stdout


def test_a_worker_on_sqlite_reports_no_offset(context: AppContext) -> None:
    from prometheus_client import REGISTRY

    if not context.db.is_sqlite:
        pytest.skip("PostgreSQL: measured (tests/jobs/test_fixe_clock_offset.py)")
    Worker(context, name="w-sqlite").check_clock()
    assert REGISTRY.get_sample_value("warroom_clock_offset_seconds") == 0


def test_a_worker_serves_its_own_metrics_when_asked(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "WARROOM_DATA_DIR": str(tmp_path), "WARROOM_WORKER_POLL_INTERVAL": "0.05"}
    database = f"sqlite:///{tmp_path / 'w.db'}"
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "warroom", "worker", "--database-url", database, "--metrics-port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def scraped() -> str | None:
            assert process.poll() is None, (tmp_path / "worker.log").read_text()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
            except httpx.HTTPError:
                return None
            return answer.text if answer.status_code == 200 else None

        wait_until(scraped, timeout=30)
        wait_until(lambda: "warroom_clock_offset_seconds 0.0" in (scraped() or ""), timeout=30)
        assert "warroom_jobs_run_total" in (scraped() or "")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        log.close()
    assert f"metrics on http://127.0.0.1:{port}/metrics" in (tmp_path / "worker.log").read_text()

    # A port taken: one line, no traceback.
    with PortTaken() as taken:
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "warroom",
                "worker",
                "--database-url",
                database,
                "--metrics-port",
                str(taken),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert refused.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{taken}" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr


class PortTaken:
    """A port something else listens on."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *_: Any) -> None:
        self.sock.close()


STOLEN: list[str] = []


@job_handler("test.fixg-stolen", deferred_transaction=True)
def _stolen(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """A delivery whose worker froze (SIGSTOP) past its lease: another worker took the job meanwhile."""

    def take() -> None:  # another thread: this one's session has not begun its transaction yet
        with context.db.write() as other:
            other.execute(text("UPDATE jobs SET lease_owner = 'other' WHERE id = :id"), {"id": job.id})

    taker = threading.Thread(target=take)
    taker.start()
    taker.join()
    STOLEN.append("sent")
    return {"sent": True}


def test_a_lease_lost_while_the_job_ran_is_not_logged_as_skipped(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="warroom.jobs")
    STOLEN.clear()
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.fixg-stolen", payload={}).id
    worker = Worker(context, name="frozen", concurrency=1)
    assert worker.claim() == [job_id]
    assert worker.run_job(job_id) is False
    assert STOLEN == ["sent"]
    lines = [r.getMessage() for r in caplog.records if "lease lost" in r.getMessage()]
    assert lines == [
        f"job {job_id}: lease lost while it ran here: another worker took it (it may run twice); its outcome "
        "is that worker's"
    ]


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "0", "3601"])
def test_the_worker_refuses_a_poll_interval_it_could_not_wait(tmp_path: Path, value: str) -> None:
    from typer.testing import CliRunner

    from warroom.cli.main import app as cli

    database = ["--database-url", f"sqlite:///{tmp_path / 'w.db'}"]
    refused = CliRunner().invoke(cli, ["worker", "--once", "--poll-interval", value, *database])
    assert refused.exit_code == 2, refused.output
    assert "--poll-interval" in refused.output and "Traceback" not in refused.output
