"""Shared fixtures: every test that takes ``context`` runs on a real SQLite file and, when
WARROOM_TEST_POSTGRES_URL is set, again on PostgreSQL."""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tests.peers import Recorder, start_recorder
from warroom import migrate
from warroom.alerts.retention import PRUNE_KIND
from warroom.app import create_app
from warroom.auth import service as auth_service
from warroom.auth.models import Role
from warroom.client import Client
from warroom.context import AppContext
from warroom.db import Database, create_db_engine
from warroom.jobs.models import Job
from warroom.models import metadata
from warroom.orgconfig import OrgConfig, load_org_config
from warroom.settings import Settings

# pytest-xdist's workers start with COLUMNS=80, which Rich reads once, when the CLI's console is made: without
# it the console measures at each print, so a test's own COLUMNS (a wide table) is honoured as without xdist.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "examples" / "warroom.yaml"
POSTGRES_URL = os.environ.get("WARROOM_TEST_POSTGRES_URL")

BACKENDS = ["sqlite", *(["postgres"] if POSTGRES_URL else [])]


def require_peer(available: bool, reason: str) -> None:
    """Skip a peer test whose program is missing, except under CI=true, where that is a failure."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"peer missing in CI: {reason}")
    pytest.skip(reason)


@contextmanager
def machine_zone(monkeypatch: pytest.MonkeyPatch, zone: str) -> Iterator[None]:
    """This process's local time zone is ``zone`` (TZ) while it lasts, as the CLI would see it on such a
    machine; then back to the real one."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


def _worker_database(url: str, worker: str) -> str:
    """Under pytest-xdist each worker gets a database of its own (``test_gw0`` beside ``test``), made anew,
    since the tests truncate every table between them."""
    base = make_url(url)
    name = f"{base.database}_{worker}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    assert POSTGRES_URL
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    url = _worker_database(POSTGRES_URL, worker) if worker else POSTGRES_URL
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    if worker:  # a worker's own database goes with the run (FORCE: a test's pool may still hold a connection)
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


# Emptying the tables between tests: DELETE and resetting the sequences takes a few milliseconds, where a
# TRUNCATE of every table (new files for each table and index) took a quarter of a second or more per test.
# This machine's PostgreSQL runs without autovacuum: once DELETE's dead rows pile up, a TRUNCATE clears them.
_DEAD_ROWS_BEFORE_TRUNCATE = 20_000
_SEQUENCES = (
    "SELECT quote_ident(sequence_schema) || '.' || quote_ident(sequence_name)"
    " FROM information_schema.sequences"
)


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        dead_rows = connection.scalar(text("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables"))
        if dead_rows > _DEAD_ROWS_BEFORE_TRUNCATE:
            names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            # Replica role: foreign keys are not checked, so the order of the deletes does not matter.
            statements = ["SET LOCAL session_replication_role = replica"]
            statements += [f'DELETE FROM "{table.name}"' for table in metadata.sorted_tables]
            statements += [
                f"SELECT setval('{name}', 1, false)" for name in connection.scalars(text(_SEQUENCES))
            ]
            connection.exec_driver_sql("; ".join(statements))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "warroom.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    _truncate_postgres(url)
    return url


@pytest.fixture
def on_sqlite(tmp_path: Path, sqlite_template: Path, org: OrgConfig) -> Iterator[AppContext]:
    """The app's context on a SQLite file of its own (these are SQLite's files; PostgreSQL has none)."""
    path = tmp_path / "data" / "warroom.db"
    path.parent.mkdir()
    shutil.copyfile(sqlite_template, path)
    settings = Settings(
        data_dir=tmp_path, database_url=f"sqlite:///{path}", config=EXAMPLE_CONFIG, run_worker=False
    )
    db = Database.from_settings(settings)
    yield AppContext(settings=settings, db=db, org=org)
    db.dispose()


@pytest.fixture
def org() -> OrgConfig:
    return load_org_config(EXAMPLE_CONFIG)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # No background worker in API tests: they run jobs with ``Worker.run_once`` and a frozen clock.
    return Settings(data_dir=tmp_path, database_url=database_url, config=EXAMPLE_CONFIG, run_worker=False)


@pytest.fixture
def context(settings: Settings, org: OrgConfig) -> Iterator[AppContext]:
    db = Database(settings.resolved_database_url, sqlite_synchronous="NORMAL")
    yield AppContext(settings=settings, db=db, org=org)
    db.dispose()


def job_count(session: Session) -> int:
    """The jobs besides the retention chain, which every app that starts schedules."""
    return session.scalar(select(func.count()).select_from(Job).where(Job.kind != PRUNE_KIND)) or 0


@pytest.fixture
def tokens(context: AppContext) -> dict[str, str]:
    with context.db.write() as session:
        return {
            role.value: auth_service.create_token(session, name=f"{role.value}-user", role=role).token
            for role in Role
        }


@pytest.fixture
def api(context: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(context=context)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(tokens: dict[str, str]) -> dict[str, str]:
    return bearer(tokens["admin"])


@pytest.fixture
def responder(tokens: dict[str, str]) -> dict[str, str]:
    return bearer(tokens["responder"])


@pytest.fixture
def viewer(tokens: dict[str, str]) -> dict[str, str]:
    return bearer(tokens["viewer"])


@pytest.fixture
def served_log() -> Iterator[Callable[[], str]]:
    """Logging set up as ``warroom serve`` sets it up (``configure_logging``), in place of pytest's handlers,
    its handler writing to a buffer instead of stderr: the function yielded returns what it wrote since it
    was last called."""
    from warroom.cli.main import QUIET_LOGGERS, SERVE_LOG_FORMAT, configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in (*QUIET_LOGGERS, "alembic")}
    root.handlers.clear()
    configure_logging(SERVE_LOG_FORMAT)
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)

    def written() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield written
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    """Tests may freeze or advance ``warroom.clock.clock``; always hand the next test a real one."""
    from warroom.clock import clock

    yield
    clock.reset()


def cli_through_the_app(
    api: TestClient, token: str, monkeypatch: pytest.MonkeyPatch, *modules: str
) -> CliRunner:
    """A runner for the CLI's client commands in ``modules`` (``warroom.cli.notify`` …), answered by the test
    app with ``token``: no server process."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client() -> Client:
        return Client("http://warroom.test", token, transport=httpx.MockTransport(through_the_app))

    for module in modules:
        monkeypatch.setattr(f"{module}.Client", client)
    return CliRunner()


@pytest.fixture
def uvicorn_not_run(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``warroom serve`` up to the point where uvicorn would serve: the configs it would have run, in order.
    The sockets ``serve`` bound (``--port`` should be a free one) are closed, and the server counts as
    started, so the command ends as after a clean shutdown."""
    import uvicorn

    ran: list[uvicorn.Config] = []

    def run(server: uvicorn.Server, sockets: list[Any] | None = None) -> None:
        ran.append(server.config)
        for listener in sockets or []:
            listener.close()
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return ran


@pytest.fixture
def pager() -> Iterator[Recorder]:
    """The people's pager webhooks: a local HTTP server that records what it receives;
    ``pager.fail(path, n, 404)`` refuses a path."""
    recorder = start_recorder()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


def cli_commands() -> Iterator[tuple[list[str], Any]]:
    """Every command and group of ``warroom`` with its path, as Typer builds them."""
    import typer

    from warroom.cli.main import app as cli_app

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(cli_app), [])
