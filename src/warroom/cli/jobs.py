"""Admin commands for the durable job queue: ``warroom worker`` and ``warroom jobs list``.

They use the database directly (like ``token create``), not the HTTP API.
"""

from __future__ import annotations

import json
import signal
import threading
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from warroom.cli.helptext import environment_epilog
from warroom.cli.output import IdColumn, WordColumn, clipped, console, emit, fail, table
from warroom.cli.parsing import BeforeIdOption, OnceOnlyCommand, row_number
from warroom.errors import WarroomError
from warroom.jobs.enums import JobStatus

if TYPE_CHECKING:
    from warroom.jobs.schemas import JobRead

jobs_app = typer.Typer(
    help="The durable job queue (admin; uses the database directly).", no_args_is_help=True
)


def _serve_metrics(host: str, port: int) -> None:
    """This process's metrics on their own port, from a daemon thread: a worker has no API server, and a
    worker that stopped taking jobs is seen by what it exports (``warroom_jobs_run_total`` standing still)."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        fail(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}")
    console.print(f"metrics on http://{host}:{port}/metrics")


# Below the options (``main`` registers ``worker`` with it): in an option's help, at 80 columns, Rich cut the
# variables' names.
WORKER_EPILOG = environment_epilog(
    {
        "--config": "WARROOM_CONFIG",
        "--database-url": "WARROOM_DATABASE_URL",
        "--poll-interval": "WARROOM_WORKER_POLL_INTERVAL",
        "--batch": "WARROOM_WORKER_BATCH",
        "--concurrency": "WARROOM_WORKER_CONCURRENCY",
    }
)


def worker(
    config: Annotated[Path | None, typer.Option("--config", help="YAML org file (WARROOM_CONFIG).")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL (WARROOM_DATABASE_URL).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name in leases (default host:pid:random).")] = None,
    poll_interval: Annotated[
        float | None, typer.Option(help="Seconds between polls when idle.", min=0.001, max=3600)
    ] = None,
    batch: Annotated[int | None, typer.Option(help="Jobs claimed per transaction.", min=1)] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Deliveries (email, Slack, webhooks) run at once, on SQLite too; other jobs too on "
            "PostgreSQL, one at a time on SQLite (and everything with --once on SQLite); default 4.",
            min=1,
            max=64,
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit.")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve this worker's own metrics (jobs run, their lateness, its clock offset) for "
            "Prometheus at http://HOST:PORT/metrics; off by default.",
            min=1,
            max=65535,
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="The address --metrics-port listens on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
) -> None:
    """Run background jobs (pages, notifications, timers) until SIGINT/SIGTERM."""
    from warroom import reload
    from warroom.alerts import handlers
    from warroom.cli.main import (
        WORKER_LOG_FORMAT,
        _database,
        _org,
        _settings,
        _warn_if_nothing_routed,
        _warn_of_broken_handlers,
        configure_logging,
    )
    from warroom.context import AppContext
    from warroom.jobs.worker import Worker

    configure_logging(WORKER_LOG_FORMAT)
    settings = _settings(config, database_url)
    org = _org(settings)
    _warn_if_nothing_routed(settings.config, org)
    _warn_of_broken_handlers()
    context = AppContext(settings=settings, db=_database(settings, create=True), org=org)
    # Intake in processes without this worker's handler packages enqueues their alerts' events too.
    handlers.announce_logged(context)
    runner = Worker(context, name=name, poll_interval=poll_interval, batch=batch, concurrency=concurrency)
    if once:
        ran = runner.run_once()
        runner.close()
        console.print(f"ran {ran} job(s)")
        context.db.dispose()
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        # Stop first: with its output's reader gone (a closed ``| tee``), the line below cannot be written,
        # and the signal must still stop the worker.
        stop.set()
        with suppress(OSError):
            console.print(f"worker {runner.name}: {signal.Signals(signum).name}, finishing the job in hand")

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    # kill -HUP reads the org file again (warroom.reload), in a thread: not inside the signal handler.
    signal.signal(
        signal.SIGHUP,
        lambda _signum, _frame: threading.Thread(target=reload.reload_logged, args=(context,)).start(),
    )
    from warroom.db import shown_location

    console.print(f"worker {runner.name} on {shown_location(context.db.engine.url)}")
    if metrics_port is not None:
        _serve_metrics(metrics_host, metrics_port)
    # Reloads asked of a server (warroom config reload) reach this worker too.
    watcher = reload.ReloadWatcher(context)
    watcher.start()
    runner.run_forever(stop)
    watcher.stop()
    context.db.dispose()


@jobs_app.command("list", cls=OnceOnlyCommand)
def jobs_list(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    before_id: BeforeIdOption = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL (WARROOM_DATABASE_URL).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List jobs, newest first."""
    from warroom.cli.main import _database, _settings
    from warroom.jobs import service
    from warroom.jobs.schemas import JobPage, JobRead

    older_than = row_number(before_id, None, "--before-id")
    database = _database(_settings(database_url=database_url), read_only=True)
    try:
        with database.read() as session:
            rows = [
                JobRead.model_validate(job)
                for job in service.list_jobs(
                    session, status=status, kind=kind, limit=limit, offset=offset, before_id=older_than
                )
            ]
            total = service.count_jobs(session, status=status, kind=kind, before_id=older_than)
            page = JobPage(items=rows, total=total, limit=limit, offset=offset)
    except WarroomError as exc:
        fail(exc.message)
    finally:
        database.dispose()
    # The peer column only when a listed job has one (deliveries): the table stays narrow otherwise.
    with_peer = any(j.peer for j in rows)
    emit(
        as_json,
        page,  # GET /api/v1/jobs's shape, read from the database
        lambda: table(
            f"Jobs ({len(rows)} of {total})",
            [
                IdColumn("id"),
                WordColumn("kind"),
                WordColumn("status"),
                "run at",
                WordColumn("attempts", drop=1),
                IdColumn("incident"),
                *([WordColumn("peer", drop=2)] if with_peer else []),
                "outcome",
            ],
            [
                (
                    j.id,
                    j.kind,
                    j.status.value,
                    j.run_at,
                    f"{j.attempts}/{j.max_attempts}",
                    f"INC-{j.incident_id}" if j.incident_id else "",
                    *([j.peer or ""] if with_peer else []),
                    clipped(_outcome(j)),
                )
                for j in rows
            ],
        ),
    )


def _outcome(job: JobRead) -> str:
    """What a job came to: a done job's result (a note a handler left while waiting, such as a heartbeat
    check's "pinged; next ping due at …", is no error of it), else its last error or note."""
    if job.status is JobStatus.done:
        if not job.result:
            return "done"
        return ", ".join(
            f"{name}={value if isinstance(value, str) else json.dumps(value)}"
            for name, value in job.result.items()
        )
    return job.last_error or ""
