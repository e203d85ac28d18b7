"""QA: `warroom audit verify` ran three statements per incident (6,012 for 2,003 incidents) and showed no
progress. It reads every timeline in one streamed statement now, and tells a progress callback (the CLI's
bar on a terminal) as each incident is checked. Real SQLite files and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, update

from tests.test_fixh_audit_mark import make_incidents, verify
from warroom.context import AppContext
from warroom.incidents import service
from warroom.incidents.models import TimelineEntry
from warroom.incidents.schemas import TimelineEntryCreate


@contextmanager
def statements(context: AppContext) -> Iterator[list[str]]:
    said: list[str] = []

    def count(*args: Any) -> None:
        said.append(args[2])

    event.listen(context.db.engine, "before_cursor_execute", count)
    try:
        yield said
    finally:
        event.remove(context.db.engine, "before_cursor_execute", count)


def audited(context: AppContext) -> tuple[service.AuditReport, int]:
    with statements(context) as said, context.db.read() as session:
        report = service.audit(session, context.settings.timeline_key)
    return report, len(said)


def test_the_audit_does_not_ask_again_for_each_incident(context: AppContext) -> None:
    make_incidents(context, 3)
    few, asked_for_few = audited(context)
    make_incidents(context, 12)
    many, asked_for_many = audited(context)
    assert not few.problems and not many.problems and many.checked > few.checked
    # Five times the incidents, the same statements (it was 3 more per incident).
    assert asked_for_many == asked_for_few, (asked_for_few, asked_for_many)
    assert asked_for_many <= 6


def test_results_are_those_of_each_incident_in_turn(context: AppContext) -> None:
    """Breaks in several incidents, between good ones, are each named where they are, as before."""
    make_incidents(context, 6)
    with context.db.write() as session:
        for ref in ("INC-2", "INC-5"):
            service.log_action(
                session, ref=ref, entry=TimelineEntryCreate(action="rolled back"), performer="t"
            )
        session.execute(update(TimelineEntry).where(TimelineEntry.incident_id == 2).values(action="edited"))
        session.execute(
            update(TimelineEntry)
            .where(TimelineEntry.incident_id == 5, TimelineEntry.seq == 2)
            .values(performer="mallory")
        )
    code, report = verify(context, "--json")
    assert code == 1
    assert [(p["incident"], p["seq"]) for p in report["problems"]] == [("INC-2", 1), ("INC-5", 2)]
    assert all("edited after it was written" in p["reason"] for p in report["problems"])
    # One entry each (created), and the action logged on two: INC-2 breaks at its first, INC-5 at its second.
    assert report["checked"] == 4 + 1 + 2


def test_progress_is_told_as_each_incident_is_checked(context: AppContext) -> None:
    make_incidents(context, 4)
    told: list[tuple[int, int]] = []
    with context.db.read() as session:
        service.audit(
            session, context.settings.timeline_key, progress=lambda done, total: told.append((done, total))
        )
    assert told[-1] == (4, 4) and [done for done, _ in told] == sorted(done for done, _ in told)
    assert {total for _, total in told} == {4}


def test_piped_verify_prints_no_progress(context: AppContext) -> None:
    make_incidents(context, 2)
    code, said = verify(context)
    assert code == 0 and said.strip().splitlines() == ["ok 2 timeline entries verified"]
