"""``warroom db copy --to URL``: a history made through the app (demo seed, API calls, a rule-opened incident)
moves SQLite -> PostgreSQL, PostgreSQL -> SQLite and SQLite -> SQLite with every row as it was; a server
on the copy takes the old token and integration key and numbers new rows after the copied ones; a target
that is not empty, a source behind the schema, the source itself and an unreachable server are refused
with the target unchanged; a failure mid-copy leaves the target without rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import JSON, create_engine, func, inspect, make_url, select, text

from tests.conftest import EXAMPLE_CONFIG, POSTGRES_URL
from tests.e2e.server import ServerProcess, create_token, run_cli
from warroom import migrate
from warroom.models import metadata

needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="needs WARROOM_TEST_POSTGRES_URL")


@dataclass(frozen=True)
class Seeded:
    url: str
    data_dir: Path
    token: str
    integration_key: str
    rule_incident: str

    @property
    def env(self) -> dict[str, str]:
        return {"WARROOM_DATA_DIR": str(self.data_dir)}


def seed(url: str, data_dir: Path) -> Seeded:
    """A history made as a team makes one: the demo data, then a server taking API calls and alerts."""
    env = {"WARROOM_DATA_DIR": str(data_dir)}
    data_dir.mkdir(parents=True, exist_ok=True)
    run_cli("db", "upgrade", database_url=url, env=env)
    run_cli("demo", "seed", "--config", str(EXAMPLE_CONFIG), database_url=url, env=env)
    token = create_token("admin", "admin", database_url=url, env=env)
    create_token("viewer", "viewer", database_url=url, env=env)
    auth = {"Authorization": f"Bearer {token}"}
    with ServerProcess(
        database_url=url, config=EXAMPLE_CONFIG, data_dir=data_dir, extra_args=["--no-worker"]
    ) as server:
        created = httpx.post(
            f"{server.url}/api/v1/integrations", json={"name": "prom", "type": "generic"}, headers=auth
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        # critical-monitoring (examples/warroom.yaml) opens an incident, after the demo's three, and pages.
        fired = httpx.post(
            f"{server.url}/api/v1/alerts?key={key}",
            json={
                "summary": "logins failing",
                "severity": "critical",
                "service": "auth",
                "dedup_key": "auth-down",
            },
        )
        assert fired.status_code == 202, fired.text
        rule_incident = fired.json()["alerts"][0]["incident"]
        assert rule_incident == "INC-4", fired.text
        for number in range(5):
            sent = httpx.post(
                f"{server.url}/api/v1/alerts?key={key}",
                json={
                    "summary": f"disk {number} — ünïcode",
                    "severity": "info",
                    "dedup_key": f"disk-{number}",
                },
            )
            assert sent.status_code == 202, sent.text
        incident = httpx.post(
            f"{server.url}/api/v1/incidents",
            json={"title": "Search slow", "severity": "P2", "services": ["search"]},
            headers=auth,
        )
        assert incident.status_code == 201, incident.text
        ref = incident.json()["id"]
        entry = httpx.post(
            f"{server.url}/api/v1/incidents/{ref}/timeline",
            json={"action": "restarted the indexer", "impact": "none", "system_state": {"p99_ms": 812.5}},
            headers=auth,
        )
        assert entry.status_code == 201, entry.text
        assert (
            httpx.post(f"{server.url}/api/v1/incidents/{ref}/ack", json={}, headers=auth).status_code == 200
        )
        now = datetime.now(UTC)
        override = httpx.post(
            f"{server.url}/api/v1/oncall/platform-primary/overrides",
            json={
                "person": "bob",
                "start": (now + timedelta(hours=1)).isoformat(),
                "end": (now + timedelta(hours=5)).isoformat(),
                "reason": "swap",
            },
            headers=auth,
        )
        assert override.status_code == 201, override.text
    return Seeded(url, data_dir, token, key, rule_incident)


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order, read through the ORM's types; for JSON columns, also whether
    the value is SQL NULL (JSON null reads as None too)."""
    engine = create_engine(url)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            flags = [column.is_(None) for column in table.columns if isinstance(column.type, JSON)]
            statement = select(*table.columns, *flags).order_by(*table.primary_key.columns)
            rows[table.name] = [tuple(row) for row in connection.execute(statement)]
    engine.dispose()
    return rows


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        present = set(inspect(connection).get_table_names())
        found = {
            table.name: int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)
            for table in metadata.sorted_tables
            if table.name in present
        }
    engine.dispose()
    return found


def highest(url: str, table: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        value = int(connection.execute(text(f"SELECT max(id) FROM {table}")).scalar() or 0)
    engine.dispose()
    return value


def copy(source: Seeded, target: str, *extra: str, check: bool = True) -> Any:
    return run_cli("db", "copy", "--to", target, *extra, database_url=source.url, env=source.env, check=check)


@pytest.fixture
def scratch_postgres() -> Iterator[Callable[[], str]]:
    """New, empty PostgreSQL databases on the test server (wt_dbcopy_<random>), dropped afterwards."""
    assert POSTGRES_URL
    base = make_url(POSTGRES_URL)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"wt_dbcopy_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return base.set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as connection:
        for name in made:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """One SQLite history for the module: the tests only read it."""
    data_dir = tmp_path_factory.mktemp("source") / "data"
    return seed(f"sqlite:///{data_dir / 'warroom.db'}", data_dir)


def check_served_copy(source: Seeded, target: str) -> None:
    """A server on the copy (same secret key: same data directory) takes the old token and integration key,
    and numbers the next incident and alert after the copied ones."""
    incidents, alerts = highest(target, "incidents"), highest(target, "alerts")
    assert incidents >= 5  # the demo's three, the rule's, the API's
    audit = run_cli("audit", "verify", "--database-url", target, env=source.env)
    assert f"ok {len(dump(source.url)['timeline_entries'])} timeline entries verified" in audit.stdout
    auth = {"Authorization": f"Bearer {source.token}"}
    with ServerProcess(
        database_url=target, config=EXAMPLE_CONFIG, data_dir=source.data_dir, extra_args=["--no-worker"]
    ) as server:
        listed = httpx.get(f"{server.url}/api/v1/incidents", headers=auth)
        assert listed.status_code == 200, listed.text
        created = httpx.post(
            f"{server.url}/api/v1/incidents", json={"title": "after the move", "severity": "P3"}, headers=auth
        )
        assert created.status_code == 201, created.text
        assert created.json()["id"] == f"INC-{incidents + 1}"
        fired = httpx.post(
            f"{server.url}/api/v1/alerts?key={source.integration_key}",
            json={"summary": "new after the move", "severity": "info", "dedup_key": "after-move"},
        )
        assert fired.status_code == 202, fired.text
        assert fired.json()["alerts"][0]["id"] == alerts + 1
        rule_incident = httpx.get(f"{server.url}/api/v1/incidents/{source.rule_incident}", headers=auth)
        assert rule_incident.status_code == 200, rule_incident.text


@needs_postgres
def test_sqlite_to_postgres_keeps_every_row_and_a_server_on_it_goes_on(
    seeded_sqlite: Seeded, scratch_postgres: Callable[[], str], tmp_path: Path
) -> None:
    target = scratch_postgres()
    copied = copy(seeded_sqlite, target, "--json")
    report = json.loads(copied.stdout)
    assert "rows written after that are not copied" in copied.stderr
    assert report["tables"] == counts(seeded_sqlite.url)
    assert report["rows"] == sum(report["tables"].values()) > 0
    assert report["audit"]["problems"] == [] and report["audit"]["checked"] > 0
    assert "alembic_version" not in report["tables"]
    assert dump(target) == dump(seeded_sqlite.url)
    check_served_copy(seeded_sqlite, target)


def test_sqlite_to_sqlite_prints_the_rows_and_the_audit(seeded_sqlite: Seeded, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'new' / 'warroom.db'}"
    copied = copy(seeded_sqlite, target)
    assert "timeline_entries" in copied.stdout
    last = copied.stdout.strip().splitlines()[-1]
    total = sum(counts(seeded_sqlite.url).values())
    assert f"copied {total:,} rows in {len(metadata.sorted_tables)} tables" in last
    assert "audit verify on the target: ok" in last
    assert dump(target) == dump(seeded_sqlite.url)
    check_served_copy(seeded_sqlite, target)


@needs_postgres
def test_postgres_to_sqlite(scratch_postgres: Callable[[], str], tmp_path: Path) -> None:
    source = seed(scratch_postgres(), tmp_path / "data")
    target = f"sqlite:///{tmp_path / 'moved.db'}"
    copy(source, target)
    assert counts(target) == counts(source.url)
    assert dump(target) == dump(source.url)
    check_served_copy(source, target)


def test_a_target_with_rows_is_refused_and_unchanged(seeded_sqlite: Seeded, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'used.db'}"
    create_token("someone", "viewer", database_url=target, env=seeded_sqlite.env)
    before = dump(target)
    refused = copy(seeded_sqlite, target, check=False)
    assert refused.returncode == 2, refused.stderr
    assert "already holds rows (api_tokens)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert dump(target) == before


@needs_postgres
def test_a_postgres_target_with_rows_is_refused(
    seeded_sqlite: Seeded, scratch_postgres: Callable[[], str]
) -> None:
    target = scratch_postgres()
    run_cli("demo", "seed", "--config", str(EXAMPLE_CONFIG), database_url=target, env=seeded_sqlite.env)
    before = dump(target)
    refused = copy(seeded_sqlite, target, check=False)
    assert refused.returncode == 2 and "already holds rows (" in refused.stderr, refused.stderr
    assert dump(target) == before


def test_a_source_behind_the_schema_is_refused(tmp_path: Path) -> None:
    from alembic import command

    source = tmp_path / "old.db"
    command.upgrade(migrate.alembic_config(f"sqlite:///{source}"), "0042")
    target = tmp_path / "target.db"
    refused = run_cli(
        "db",
        "copy",
        "--to",
        f"sqlite:///{target}",
        database_url=f"sqlite:///{source}",
        check=False,
        env={"WARROOM_DATA_DIR": str(tmp_path)},
    )
    assert refused.returncode == 2, refused.stderr
    assert "is not at this version's schema: run warroom db upgrade first" in refused.stderr
    assert not target.exists()


def test_the_source_itself_is_refused(seeded_sqlite: Seeded) -> None:
    before = counts(seeded_sqlite.url)
    path = make_url(seeded_sqlite.url).database
    assert path
    # The same file named another way.
    other = f"sqlite:///{Path(path).parent}/../{Path(path).parent.name}/{Path(path).name}"
    refused = copy(seeded_sqlite, other, check=False)
    assert refused.returncode == 2
    assert "is the source" in refused.stderr
    assert counts(seeded_sqlite.url) == before


@needs_postgres
def test_the_same_postgres_database_by_another_url_is_refused(scratch_postgres: Callable[[], str]) -> None:
    source = scratch_postgres()
    run_cli("db", "upgrade", database_url=source)
    refused = run_cli(
        "db", "copy", "--to", f"{source}?application_name=other", database_url=source, check=False
    )
    assert refused.returncode == 2
    assert "is the source" in refused.stderr


def test_a_missing_source_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    refused = run_cli(
        "db",
        "copy",
        "--to",
        f"sqlite:///{target}",
        database_url=f"sqlite:///{tmp_path / 'none.db'}",
        check=False,
    )
    assert refused.returncode == 2
    assert "no database at" in refused.stderr
    assert not target.exists()


def test_without_the_secret_key_the_copy_says_the_audit_was_not_run(
    seeded_sqlite: Seeded, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    copied = run_cli(
        "db",
        "copy",
        "--to",
        target,
        database_url=seeded_sqlite.url,
        env={"WARROOM_DATA_DIR": str(tmp_path / "elsewhere")},
    )
    assert "audit verify on the target: not run: no secret key" in copied.stdout
    assert "its server needs this secret key" not in copied.stdout  # there is none
    assert counts(target) == counts(seeded_sqlite.url)
    assert not (tmp_path / "elsewhere" / "secret_key").exists()


def test_an_unreachable_target_is_refused_without_its_password(seeded_sqlite: Seeded) -> None:
    # A port of this helper's range where nothing listens.
    refused = copy(seeded_sqlite, "postgresql+psycopg://warroom:s3cret-pw@127.0.0.1:21949/none", check=False)
    assert refused.returncode == 2
    assert (
        "cannot use the database at postgresql+psycopg://warroom:***@127.0.0.1:21949/none" in refused.stderr
    )
    assert "s3cret-pw" not in refused.stderr + refused.stdout


def test_a_failure_mid_copy_leaves_a_sqlite_target_without_rows(
    seeded_sqlite: Seeded, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    run_cli("db", "upgrade", database_url=target, env=seeded_sqlite.env)
    engine = create_engine(target)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON timeline_entries "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    engine.dispose()
    failed = copy(seeded_sqlite, target, check=False)
    assert failed.returncode == 1, failed.stderr
    assert "the copy failed at table timeline_entries, nothing was written" in failed.stderr
    assert set(counts(target).values()) == {0}


@needs_postgres
def test_a_failure_mid_copy_leaves_a_postgres_target_without_rows(
    seeded_sqlite: Seeded, scratch_postgres: Callable[[], str]
) -> None:
    target = scratch_postgres()
    run_cli("db", "upgrade", database_url=target, env=seeded_sqlite.env)
    engine = create_engine(target)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON alert_notes FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    failed = copy(seeded_sqlite, target, check=False)
    assert failed.returncode == 1, failed.stderr
    assert "the copy failed at table alert_notes, nothing was written" in failed.stderr
    assert "refused by the test" in failed.stderr
    assert set(counts(target).values()) == {0}
    # Merely migrated, it is taken once the cause is gone.
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER refuse ON alert_notes")
    engine.dispose()
    copy(seeded_sqlite, target)
    assert counts(target) == counts(seeded_sqlite.url)


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=needs_postgres)])
def test_an_alert_inhibited_by_a_newer_one_is_copied(
    engine: str, seeded_sqlite: Seeded, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An older alert firing again while a newer one inhibits it refers forward in its own table: the
    reference goes in once the newer row is there (foreign keys are checked row by row)."""
    own = Seeded(**{**seeded_sqlite.__dict__, "url": f"sqlite:///{tmp_path / 'own.db'}"})
    copy(seeded_sqlite, own.url)
    newest = highest(own.url, "alerts")
    sqlite = create_engine(own.url)
    with sqlite.begin() as connection:
        connection.execute(
            text("UPDATE alerts SET inhibited_by_id = :newest WHERE id = 1"), {"newest": newest}
        )
    sqlite.dispose()
    target = (
        request.getfixturevalue("scratch_postgres")()
        if engine == "postgres"
        else f"sqlite:///{tmp_path / 't.db'}"
    )
    copy(own, target)
    assert dump(target) == dump(own.url)
    assert (
        dump(target)["alerts"][0][list(metadata.tables["alerts"].columns.keys()).index("inhibited_by_id")]
        == newest
    )


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=needs_postgres)])
def test_rows_written_while_copying_are_not_copied(
    engine: str, seeded_sqlite: Seeded, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The source is read in one snapshot: a token made once the copy has started is in none of its tables
    (read outside a snapshot, the count taken first and the rows read later would disagree)."""
    from warroom import dbcopy
    from warroom.auth import service as auth_service
    from warroom.auth.models import Role
    from warroom.db import Database

    own = (
        request.getfixturevalue("scratch_postgres")()
        if engine == "postgres"
        else f"sqlite:///{tmp_path / 's.db'}"
    )
    copy(seeded_sqlite, own)
    source, target = Database(own), Database(f"sqlite:///{tmp_path / 'target.db'}")
    migrate.upgrade(target.engine)
    before = counts(own)

    def write_meanwhile(table: str, done: int, total: int) -> None:
        if counts(own) == before:
            with source.write() as session:
                auth_service.create_token(session, name="made while copying", role=Role.viewer)

    copied = dbcopy.copy_rows(source.engine, target.engine, progress=write_meanwhile)
    source.dispose()
    target.dispose()
    assert {table.name: table.rows for table in copied} == before == counts(str(target.url))
    assert counts(own)["api_tokens"] == before["api_tokens"] + 1


@needs_postgres
def test_a_postgres_scheme_target_reads_as_in_the_database_url(
    seeded_sqlite: Seeded, scratch_postgres: Callable[[], str]
) -> None:
    # postgres:// (as hosting providers hand out), as WARROOM_DATABASE_URL takes it: psycopg 3.
    target = scratch_postgres()
    given = "postgres://" + target.split("://", 1)[1]
    copied = copy(seeded_sqlite, given, "--json")
    assert json.loads(copied.stdout)["tables"] == counts(seeded_sqlite.url)
    assert counts(target) == counts(seeded_sqlite.url)


@pytest.mark.parametrize("target", ["sqlite://", "sqlite:///:memory:"])
def test_a_target_that_is_not_a_database_file_is_refused(seeded_sqlite: Seeded, target: str) -> None:
    # In memory: it was reported copied, and gone with the command.
    refused = copy(seeded_sqlite, target, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"the target {target!r} is not a database file" in refused.stderr
    assert "copied" not in refused.stdout


@pytest.fixture
def tables_dropped(tmp_path: Path) -> str:
    """A database at this version's revision whose heartbeats table was dropped by hand."""
    url = f"sqlite:///{tmp_path / 'dropped.db'}"
    run_cli("db", "upgrade", database_url=url, env={"WARROOM_DATA_DIR": str(tmp_path)})
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE heartbeats"))
    engine.dispose()
    return url


DROPPED_ADVICE = (
    "has no table heartbeats (were Warroom's tables dropped?): restore it from a backup, or empty it and run "
    "warroom db upgrade"
)


def test_a_source_with_tables_dropped_is_refused_before_the_target_is_touched(
    tables_dropped: str, tmp_path: Path
) -> None:
    target = tmp_path / "target.db"
    refused = run_cli(
        "db", "copy", "--to", f"sqlite:///{target}", database_url=tables_dropped, env={}, check=False
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()], refused.stderr
    assert DROPPED_ADVICE in refused.stderr
    assert not target.exists()  # not migrated, not made


def test_serve_on_tables_dropped_says_it_in_one_line(tables_dropped: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tests.peers import free_port
    from warroom.cli.main import app

    runner = CliRunner(env={"COLUMNS": "80", "WARROOM_DATA_DIR": str(tmp_path)})
    result = runner.invoke(app, ["serve", "--port", str(free_port()), "--database-url", tables_dropped])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert DROPPED_ADVICE in lines[0]


def test_another_secret_key_than_the_sources_is_named_as_the_likely_cause(
    seeded_sqlite: Seeded, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    copied = run_cli(
        "db",
        "copy",
        "--to",
        target,
        database_url=seeded_sqlite.url,
        env={**seeded_sqlite.env, "WARROOM_SECRET_KEY": "not-the-sources-key"},
        check=False,
    )
    assert copied.returncode == 1  # as before: the copy's audit failed
    assert copied.stderr.count("BROKEN INC-") == highest(seeded_sqlite.url, "incidents")
    last = copied.stdout.strip().splitlines()[-1]
    assert (
        "audit verify on the target: every incident fails: the secret key probably differs from the "
        "source's (set WARROOM_SECRET_KEY or WARROOM_DATA_DIR as the source server's and run warroom audit "
        f"verify --database-url {target})"
    ) in last, last
    assert "its server needs this secret key" not in last and "on the source and the target" not in last
    assert counts(target) == counts(seeded_sqlite.url)
