"""The timeline chain is keyed with the server's secret key (QA): edits re-chained with a plain hash, a
wiped timeline and a deleted incident all passed ``warroom audit verify``. On a real SQLite file and on
PostgreSQL, through the command as an operator runs it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from alembic import command
from sqlalchemy import Connection, delete, insert, select, text, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from warroom import migrate
from warroom.cli.main import app
from warroom.context import AppContext
from warroom.incidents import service
from warroom.incidents.models import Incident, TimelineEntry
from warroom.incidents.schemas import IncidentCreate, TimelineEntryCreate

GENESIS = "0" * 64


def make_incidents(context: AppContext, count: int = 3) -> None:
    with context.db.write() as session:
        for number in range(count):
            incident = service.create_incident(
                session, org=context.org, performer="tester", data=IncidentCreate(title=f"db slow {number}")
            )
            for step in range(3):
                service.log_action(
                    session,
                    ref=incident.id,
                    performer="tester",
                    entry=TimelineEntryCreate(action=f"step {step}"),
                )


def verify(context: AppContext, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    runner = CliRunner(env=env if env is not None else {"WARROOM_DATA_DIR": str(context.settings.data_dir)})
    result = runner.invoke(
        app, ["audit", "verify", "--json", "--database-url", context.settings.resolved_database_url, *extra]
    )
    return result.exit_code, json.loads(result.output) if result.output.startswith("{") else {
        "output": result.output
    }


def named(report: dict[str, Any]) -> list[tuple[str, int]]:
    return [(problem["incident"], problem["seq"]) for problem in report["problems"]]


def plain_digest(row: TimelineEntry, prev: str) -> str:
    """The unkeyed SHA-256 hash an entry had before the chain was keyed: what QA re-chained with."""
    return service.stored_entry_digest(row, prev)


def edit_and_rechain(session: Session, *, incident_id: int, index: int) -> None:
    """QA's tamper: edit the incident's entry at ``index`` and re-chain it and every later entry with the
    plain hash, the head too."""
    rows = session.scalars(
        select(TimelineEntry).where(TimelineEntry.incident_id == incident_id).order_by(TimelineEntry.seq)
    ).all()
    rows[index].action = "nothing to see here"
    prev = rows[index - 1].hash
    for row in rows[index:]:
        row.prev_hash = prev
        row.hash = prev = plain_digest(row, prev)
    session.execute(update(Incident).where(Incident.id == incident_id).values(timeline_head=prev))


def test_untampered_timelines_verify(context: AppContext) -> None:
    make_incidents(context)
    code, report = verify(context)
    assert (code, report) == (0, {"checked": 12, "problems": [], "warnings": []})
    text_result = CliRunner(env={"WARROOM_DATA_DIR": str(context.settings.data_dir)}).invoke(
        app, ["audit", "verify", "--database-url", context.settings.resolved_database_url]
    )
    assert text_result.exit_code == 0 and "ok 12 timeline entries verified" in text_result.output


def test_an_edit_re_chained_with_a_plain_hash_is_named(context: AppContext) -> None:
    make_incidents(context)
    with context.db.write() as session:
        edit_and_rechain(session, incident_id=2, index=2)
    code, report = verify(context)
    assert code == 1 and named(report) == [("INC-2", 3)]
    assert "edited" in report["problems"][0]["reason"]


def test_a_wiped_timeline_is_named_and_stays_broken_after_new_entries(context: AppContext) -> None:
    make_incidents(context)
    with context.db.write() as session:
        session.execute(delete(TimelineEntry).where(TimelineEntry.incident_id == 2))
        session.execute(
            update(Incident).where(Incident.id == 2).values(timeline_count=0, timeline_head=GENESIS)
        )
    code, report = verify(context)
    assert code == 1 and [incident for incident, _ in named(report)] == ["INC-2"]
    # The server goes on writing to the wiped incident: the next entry does not seal it afresh.
    with context.db.write() as session:
        service.log_action(session, ref=2, performer="tester", entry=TimelineEntryCreate(action="later"))
    code, report = verify(context)
    assert code == 1 and [incident for incident, _ in named(report)] == ["INC-2"]


def test_a_deleted_incident_is_named(context: AppContext) -> None:
    make_incidents(context, 4)
    with context.db.write() as session:
        session.execute(delete(TimelineEntry).where(TimelineEntry.incident_id.in_([2, 4])))
        session.execute(delete(Incident).where(Incident.id.in_([2, 4])))  # 4: the newest, no gap above it
    code, report = verify(context)
    if context.db.is_sqlite:  # AUTOINCREMENT takes no number back on a rollback: a gap is a deletion
        assert code == 1 and named(report) == [("INC-2", 0), ("INC-4", 0)]
        assert all("deleted" in problem["reason"] for problem in report["problems"])
    else:  # a sequence keeps the numbers rolled-back transactions took: only a warning
        assert code == 0 and report["problems"] == []
        assert [warning.split(" ")[0] for warning in report["warnings"]] == ["INC-2", "INC-4"]
        assert "rolled-back" in report["warnings"][0]


def test_a_rolled_back_incident_leaves_no_gap_on_sqlite(context: AppContext) -> None:
    make_incidents(context, 1)
    try:
        with context.db.write() as session:
            service.create_incident(session, org=context.org, performer="t", data=IncidentCreate(title="no"))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    make_incidents(context, 1)
    code, report = verify(context)
    if context.db.is_sqlite:
        assert (code, report["warnings"]) == (0, [])
        with context.db.read() as session:
            assert session.scalars(select(Incident.id).order_by(Incident.id)).all() == [1, 2]
    else:
        assert code == 0 and report["warnings"] == [
            "INC-2 missing (deleted, or a number a rolled-back transaction took)"
        ]


def test_verify_with_a_data_directory_it_cannot_read_says_why(
    context: AppContext, tmp_path_factory: Any
) -> None:
    """A data directory that is a file, or a ``secret_key`` that cannot be read: one line each, not a
    traceback (``NotADirectoryError``, ``IsADirectoryError``)."""
    make_incidents(context, 1)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    a_file = elsewhere / "a-file"
    a_file.write_text("not a directory\n")
    code, report = verify(context, env={"WARROOM_DATA_DIR": str(a_file), "COLUMNS": "300"})
    assert code == 2 and f"({a_file} is a file, not a directory)" in report["output"], report
    (elsewhere / "secret_key").mkdir()
    code, report = verify(context, env={"WARROOM_DATA_DIR": str(elsewhere), "COLUMNS": "300"})
    said = " ".join(report["output"].split())
    assert code == 1 and f"cannot read the secret key {elsewhere / 'secret_key'}: Is a directory" in said, (
        said
    )


def test_verify_needs_the_servers_secret_key(context: AppContext, tmp_path_factory: Any) -> None:
    make_incidents(context, 1)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    code, report = verify(context, env={"WARROOM_DATA_DIR": str(elsewhere)})
    assert code == 2 and "no secret key" in report["output"] and "WARROOM_SECRET_KEY" in report["output"]
    assert not (elsewhere / "secret_key").exists()  # none made up for the check
    code, report = verify(context, env={"WARROOM_DATA_DIR": str(elsewhere), "WARROOM_SECRET_KEY": "not it"})
    assert code == 1 and named(report) == [("INC-1", 1)]
    secret = (context.settings.data_dir / "secret_key").read_text().strip()
    code, report = verify(context, env={"WARROOM_DATA_DIR": str(elsewhere), "WARROOM_SECRET_KEY": secret})
    assert (code, report["problems"]) == (0, [])


def _legacy_incident(connection: Connection, number: int, entries: int) -> None:
    """An incident as the release before 0041 wrote it: plain SHA-256 entries from the all-zero genesis."""
    at = datetime(2026, 1, 5, 10, number, tzinfo=UTC)
    connection.execute(
        text(
            "INSERT INTO incidents (id, title, summary, severity, status, is_private, created_by, "
            "created_at, updated_at, assessment, timeline_head, timeline_count) VALUES (:id, 'old', '', "
            "'P2', 'investigating', false, 'tester', :at, :at, '{}', '', 0)"
        ),
        {"id": number, "at": at},
    )
    prev = GENESIS
    for seq in range(1, entries + 1):
        digest = service._entry_digest(
            prev, number, seq, at, "tester", "note", f"old {seq}", None, None, None
        )
        connection.execute(
            insert(TimelineEntry.__table__).values(
                incident_id=number,
                seq=seq,
                occurred_at=at,
                performer="tester",
                kind="note",
                action=f"old {seq}",
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    connection.execute(
        text("UPDATE incidents SET timeline_head = :head, timeline_count = :count WHERE id = :id"),
        {"head": prev, "count": entries, "id": number},
    )


def _back_to_0040_with_legacy_incidents(context: AppContext) -> None:
    engine = context.db.engine
    with engine.begin() as connection:
        config = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.downgrade(config, "0040")
        for number in (1, 2, 3):
            _legacy_incident(connection, number, 3)
        if context.db.is_sqlite:
            connection.execute(text("UPDATE sqlite_sequence SET seq = 3 WHERE name = 'incidents'"))
        else:
            connection.execute(text("SELECT setval(pg_get_serial_sequence('incidents', 'id'), 3)"))


def test_timelines_written_before_the_keyed_chain_still_verify_and_are_sealed(context: AppContext) -> None:
    _back_to_0040_with_legacy_incidents(context)
    migrate.upgrade(context.db.engine, timeline_key=lambda: context.settings.timeline_key)
    code, report = verify(context)
    assert (code, report) == (0, {"checked": 9, "problems": [], "warnings": []})
    # New entries on an old incident are keyed, and the whole verifies.
    with context.db.write() as session:
        service.log_action(session, ref=2, performer="tester", entry=TimelineEntryCreate(action="new"))
    make_incidents(context, 1)
    code, report = verify(context)
    assert (code, report) == (0, {"checked": 14, "problems": [], "warnings": []})
    # The old part is sealed: an old entry edited and re-chained with the plain hash is found.
    with context.db.write() as session:
        edit_and_rechain(session, incident_id=1, index=1)
        # and an old timeline wiped
        session.execute(delete(TimelineEntry).where(TimelineEntry.incident_id == 3))
        session.execute(
            update(Incident).where(Incident.id == 3).values(timeline_count=0, timeline_head=GENESIS)
        )
    code, report = verify(context)
    assert code == 1 and [incident for incident, _ in named(report)] == ["INC-1", "INC-3"]
    assert all("seal" in problem["reason"] for problem in report["problems"])


def test_a_migration_without_the_key_leaves_old_incidents_unsealed_and_named(context: AppContext) -> None:
    _back_to_0040_with_legacy_incidents(context)
    migrate.upgrade(context.db.engine)  # Alembic by hand: no secret key
    context.settings.resolved_secret_key()  # the server's, which it has made by now
    code, report = verify(context)
    # and the highest number's mark (0042), unsealed too
    assert code == 1 and named(report) == [("INC-1", 0), ("INC-2", 0), ("INC-3", 0), ("incident numbers", 0)]
    assert all("not sealed" in problem["reason"] for problem in report["problems"])


def test_the_plain_hash_of_old_entries_is_unchanged() -> None:
    """Entries written before 0041 verify against the same SHA-256 as before."""
    at = datetime(2026, 1, 5, tzinfo=UTC)
    canonical = json.dumps(
        {
            "prev": GENESIS,
            "incident": 1,
            "seq": 1,
            "at": at.isoformat(timespec="microseconds"),
            "performer": "p",
            "kind": "note",
            "action": "a",
            "impact": None,
            "state": None,
            "data": None,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert service._entry_digest(GENESIS, 1, 1, at, "p", "note", "a", None, None, None) == expected


def test_an_append_after_refreshing_only_the_count_and_head_keeps_the_seal(context: AppContext) -> None:
    """The alert handlers re-read an incident's count and head under its lock before appending: the seal
    they loaded before may be older, and the entry must still carry the seal on."""
    make_incidents(context, 1)
    session = context.db.write_session()
    try:
        incident = session.get(Incident, 1)
        assert incident is not None and incident.timeline_seal
        session.commit()  # the seal loaded stays as it was (expire_on_commit off)
        with context.db.write() as other:  # another process appends meanwhile
            service.log_action(other, ref=1, performer="w", entry=TimelineEntryCreate(action="meanwhile"))
        session.refresh(incident, ["timeline_count", "timeline_head"], with_for_update=True)
        service.append_timeline(session, incident, performer="w", kind="note", action="after")
        session.commit()
    finally:
        session.close()
    code, report = verify(context)
    assert (code, report["problems"]) == (0, [])
