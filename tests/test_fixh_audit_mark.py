"""`warroom audit verify` (QA): deleting the newest incident passed when the number sequence was lowered
with it (``sqlite_sequence``); a wiped timeline was named by an entry that is not there; a wrong secret key
failed every incident with no hint. Real SQLite files and PostgreSQL, through the command."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select, text, update
from typer.testing import CliRunner

from warroom.cli.main import app
from warroom.context import AppContext
from warroom.incidents import service
from warroom.incidents.models import Incident, IncidentNumberMark, IncidentService, Responder, TimelineEntry
from warroom.incidents.schemas import IncidentCreate


def make_incidents(context: AppContext, count: int) -> None:
    with context.db.write() as session:
        for number in range(count):
            service.create_incident(
                session, org=context.org, performer="tester", data=IncidentCreate(title=f"db slow {number}")
            )


def verify(context: AppContext, *extra: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    runner = CliRunner(env=env if env is not None else {"WARROOM_DATA_DIR": str(context.settings.data_dir)})
    result = runner.invoke(
        app, ["audit", "verify", "--database-url", context.settings.resolved_database_url, *extra]
    )
    return result.exit_code, json.loads(result.output) if "--json" in extra else result.output


def delete_incident(context: AppContext, number: int) -> None:
    with context.db.write() as session:
        for model in (TimelineEntry, Responder, IncidentService):
            session.execute(delete(model).where(model.incident_id == number))
        session.execute(text("DELETE FROM jobs WHERE incident_id = :n"), {"n": number})
        session.execute(delete(Incident).where(Incident.id == number))


def lower_the_sequence(context: AppContext, to: int) -> None:
    with context.db.write() as session:
        if context.db.is_sqlite:
            session.execute(text("UPDATE sqlite_sequence SET seq = :n WHERE name = 'incidents'"), {"n": to})
        else:
            session.execute(text("SELECT setval(pg_get_serial_sequence('incidents', 'id'), :n)"), {"n": to})


def test_the_newest_incident_deleted_with_the_sequence_lowered_is_found(context: AppContext) -> None:
    make_incidents(context, 6)
    assert verify(context, "--json")[0] == 0
    delete_incident(context, 6)
    lower_the_sequence(context, 5)
    code, report = verify(context, "--json")
    if context.db.is_sqlite:
        assert code == 1 and report["problems"] == [
            {"incident": "INC-6", "seq": 0, "reason": "missing (deleted)"}
        ]
    else:  # numbers missing stay warnings on PostgreSQL; the marked one says it was created
        assert code == 0 and len(report["warnings"]) == 1
        assert report["warnings"][0].startswith("INC-6 missing (deleted: the newest incident created")


def test_lowering_the_mark_too_needs_the_key(context: AppContext) -> None:
    make_incidents(context, 6)
    delete_incident(context, 6)
    lower_the_sequence(context, 5)
    with context.db.write() as session:
        session.execute(update(IncidentNumberMark).values(highest=5))
    code, report = verify(context, "--json")
    assert code == 1
    assert [(p["incident"], p["seq"]) for p in report["problems"]] == [("incident numbers", 0)]
    assert "does not match its seal" in report["problems"][0]["reason"]
    # Removed altogether: said too.
    with context.db.write() as session:
        session.execute(delete(IncidentNumberMark))
    code, report = verify(context, "--json")
    assert code == 1 and "is not recorded" in report["problems"][0]["reason"]


def test_the_mark_follows_creations_and_is_one_row(context: AppContext) -> None:
    make_incidents(context, 3)
    with context.db.write() as session:
        service.raise_number_mark(session, 2)  # a lower number (a slower concurrent creation) leaves it
    with context.db.read() as session:
        marks = session.execute(select(IncidentNumberMark.id, IncidentNumberMark.highest)).all()
    assert [tuple(mark) for mark in marks] == [(1, 3)]
    assert verify(context, "--json")[0] == 0


def test_a_wiped_timeline_says_its_entries_were_removed(context: AppContext) -> None:
    make_incidents(context, 3)
    with context.db.write() as session:
        session.execute(delete(TimelineEntry).where(TimelineEntry.incident_id == 2))
        session.execute(update(Incident).where(Incident.id == 2).values(timeline_count=0, timeline_head=""))
    code, output = verify(context)
    assert code == 1
    assert "entry #1" not in output and "BROKEN INC-2: its entries were removed" in output
    assert "do not match their seal" in output and "HINT" not in output


def test_a_wrong_key_gets_one_hint(context: AppContext) -> None:
    make_incidents(context, 3)
    env = {"WARROOM_DATA_DIR": str(context.settings.data_dir), "WARROOM_SECRET_KEY": "not the server's"}
    code, output = verify(context, env=env)
    assert code == 1 and output.count("BROKEN") == 3 and "incident numbers" not in output
    assert output.count("every incident fails: is WARROOM_SECRET_KEY (or data_dir/secret_key)") == 1
    code, report = verify(context, "--json", env=env)
    assert code == 1 and "WARROOM_SECRET_KEY" in report["hint"]
    # One incident tampered with, the others fine: no hint.
    with context.db.write() as session:
        session.execute(update(TimelineEntry).where(TimelineEntry.incident_id == 1).values(action="x"))
    code, output = verify(context)
    assert code == 1 and "HINT" not in output
