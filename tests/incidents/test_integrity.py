"""Timeline hash chain, concurrent creation, and the severity suggestion rules."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, update

from tests.e2e.server import run_cli
from warroom.context import AppContext
from warroom.incidents import service
from warroom.incidents.models import Incident, TimelineEntry
from warroom.incidents.schemas import Assessment, IncidentCreate, TimelineEntryCreate
from warroom.orgconfig import OrgConfig
from warroom.severity.service import suggest_severity


def make_incident(context: AppContext, title: str = "db slow") -> str:
    with context.db.write() as session:
        incident = service.create_incident(
            session, org=context.org, performer="tester", data=IncidentCreate(title=title, severity="P2")
        )
        for step in range(3):
            service.log_action(
                session, ref=incident.id, performer="tester", entry=TimelineEntryCreate(action=f"step {step}")
            )
        return incident.ref


def test_chain_verifies_then_detects_edit_and_deletion(context: AppContext) -> None:
    ref = make_incident(context)
    make_incident(context, "other")
    with context.db.read() as session:
        checked, problems = service.verify_timelines(session)
    assert checked == 8 and problems == []

    with context.db.write() as session:
        session.execute(
            update(TimelineEntry)
            .where(TimelineEntry.seq == 3, TimelineEntry.incident_id == 1)
            .values(action="nothing to see here")
        )
    with context.db.read() as session:
        _, problems = service.verify_timelines(session)
    assert [(p.incident, p.seq) for p in problems] == [(ref, 3)]
    assert "edited" in problems[0].reason

    result = run_cli(
        "audit",
        "verify",
        database_url=context.settings.resolved_database_url,
        env={"WARROOM_DATA_DIR": str(context.settings.data_dir)},  # the server's secret key keys the chain
        check=False,
    )
    assert result.returncode == 1
    assert f"{ref} entry #3" in result.stderr


def test_chain_detects_removed_tail(context: AppContext) -> None:
    make_incident(context)
    with context.db.write() as session:
        last = session.scalar(select(TimelineEntry).order_by(TimelineEntry.seq.desc()).limit(1))
        session.delete(last)
    with context.db.read() as session:
        _, problems = service.verify_timelines(session)
    assert problems and "removed" in problems[0].reason


def test_concurrent_creation_gives_unique_numbers(context: AppContext) -> None:
    errors: list[BaseException] = []
    refs: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            for n in range(5):
                with context.db.write() as session:
                    incident = service.create_incident(
                        session,
                        org=context.org,
                        performer=f"w{index}",
                        data=IncidentCreate(title=f"t{index}-{n}"),
                    )
                    ref = incident.ref
                with lock:
                    refs.append(ref)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(refs) == 30 and len(set(refs)) == 30
    with context.db.read() as session:
        assert len(session.scalars(select(Incident.id)).all()) == 30


def test_concurrent_timeline_appends_keep_one_chain(context: AppContext) -> None:
    ref = make_incident(context)

    def worker() -> None:
        for n in range(5):
            with context.db.write() as session:
                service.log_action(session, ref=ref, performer="w", entry=TimelineEntryCreate(action=f"a{n}"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with context.db.read() as session:
        _, problems = service.verify_timelines(session)
        assert problems == []
        assert [e.seq for e in service.get_timeline(session, ref)] == list(range(1, 25))


@pytest.mark.parametrize(
    ("assessment", "services", "expected"),
    [
        ({"symptoms": ["complete_outage"]}, [], "P0"),
        ({"symptoms": ["data_exposure"]}, [], "P0"),
        ({"safety_concerns": "fire alarm in DC"}, [], "P0"),
        ({"symptoms": ["login_down"]}, [], "P1"),
        ({"user_impact": {"estimated": 20000}}, [], "P1"),
        ({"business_impact": {"revenue": "high"}}, [], "P1"),
        ({"symptoms": ["slow_responses"]}, [], "P2"),
        ({}, ["search"], "P2"),
        ({"symptoms": ["typo"]}, ["database"], "P3"),
        ({}, [], "P2"),
    ],
)
def test_suggestion_rules(
    org: OrgConfig, assessment: dict[str, object], services: list[str], expected: str
) -> None:
    suggestion = suggest_severity(org, Assessment.model_validate(assessment), services)
    assert suggestion.severity == expected
    assert suggestion.reasons


def test_suggestion_picks_most_severe_and_lists_all(org: OrgConfig) -> None:
    suggestion = suggest_severity(
        org, Assessment(symptoms=["slow_responses", "payment_failure"]), ["payments"]
    )
    assert suggestion.severity == "P0"
    assert list(suggestion.matched) == ["P0", "P2"]


def test_entries_appended_while_the_check_runs_are_no_break(context: AppContext) -> None:
    """On a running system (PostgreSQL reads each statement afresh), an entry appended between the check's
    read of the heads and its read of the entries looked like a chain whose tail was removed."""
    from sqlalchemy import event

    ref = make_incident(context)
    statements: list[int] = []
    appended: list[int] = []

    with context.db.read() as session:

        def append_once(state: object) -> None:
            statements.append(1)
            if len(statements) == 2:  # the heads were read; the entries are about to be
                appended.append(1)
                with context.db.write() as other:
                    entry = TimelineEntryCreate(action="appended meanwhile")
                    service.log_action(other, ref=ref, performer="w", entry=entry)

        event.listen(session, "do_orm_execute", append_once)
        checked, problems = service.verify_timelines(session)
    assert appended and problems == []
    assert checked == 4  # the entries the head it read covers
    with context.db.read() as session:
        assert service.verify_timelines(session) == (5, [])


def test_an_entry_slipped_in_past_the_head_is_found(context: AppContext) -> None:
    ref = make_incident(context)
    with context.db.write() as session:
        last = session.scalar(select(TimelineEntry).order_by(TimelineEntry.seq.desc()).limit(1))
        assert last is not None
        session.add(
            TimelineEntry(
                incident_id=last.incident_id,
                seq=last.seq + 1,
                occurred_at=last.occurred_at,
                performer="intruder",
                kind=last.kind,
                action="added behind the chain's back",
                prev_hash=last.hash,
                hash="0" * 64,
            )
        )
    with context.db.read() as session:
        _, problems = service.verify_timelines(session)
    assert [(p.incident, p.seq) for p in problems] == [(ref, 5)]
    assert "past the incident's recorded head" in problems[0].reason
