"""``warroom demo seed`` (run by ``make run``): example data on a fresh database, once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from warroom.alerts import maintenance
from warroom.alerts.models import Alert, MaintenanceWindow
from warroom.alerts.service import noise_report
from warroom.context import AppContext
from warroom.db import utcnow
from warroom.demo import seed_demo
from warroom.incidents.models import Incident, TimelineEntry


def test_seed_demo_once(context: AppContext) -> None:
    with context.db.write() as session:
        assert seed_demo(session, context.org) == 3
    with context.db.write() as session:
        assert seed_demo(session, context.org) == 0  # a database with incidents is left alone
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 3
        windows = list(session.scalars(select(MaintenanceWindow)))
    assert [(w.services, maintenance.state(w, utcnow())) for w in windows] == [(["search"], "scheduled")]


def test_the_demo_has_alerts_to_read(context: AppContext) -> None:
    with context.db.write() as session:
        seed_demo(session, context.org)
    with context.db.read() as session:
        alerts = {
            a.alert_type: (a.occurrences, a.incident_id, a.service) for a in session.scalars(select(Alert))
        }
        report = noise_report(session, since=timedelta(days=1))
    with context.db.read() as session:
        disk = session.scalars(select(Alert).where(Alert.alert_type == "DiskSpaceLow")).one()
        assert [(note.author, note.body[:6]) for note in disk.notes] == [("erin", "Known:")]
    assert alerts == {
        "DiskSpaceLow": (12, None, "database"),
        "SearchLatencyHigh": (4, None, "search"),
        "CertificateExpiring": (1, None, None),
    }
    assert [group.key for group in report.groups] == [
        "DiskSpaceLow",
        "SearchLatencyHigh",
        "CertificateExpiring",
    ]


def test_the_demo_checkout_incident_lists_the_changes_before_it(context: AppContext) -> None:
    with context.db.write() as session:
        seed_demo(session, context.org)
    with context.db.read() as session:
        first = select(func.min(Incident.id)).scalar_subquery()
        actions = session.scalars(select(TimelineEntry.action).where(TimelineEntry.incident_id == first))
        notes = [action for action in actions if action.startswith("Changes in the")]
    assert len(notes) == 1 and "Deployed payments 3.1.0" in notes[0] and "Rotated the PSP" in notes[0]


def test_the_demo_s_commanders_and_responders_are_people_of_the_example_org(context: AppContext) -> None:
    """The demo named "Alice Chen" and "Erin Walsh", nobody in examples/warroom.yaml: the update-due
    reminder the README describes could never reach them."""
    from warroom.incidents.models import Responder

    with context.db.write() as session:
        seed_demo(session, context.org)
    people = {person.name for person in context.org.people}
    with context.db.read() as session:
        commanders = {i.commander for i in session.scalars(select(Incident)) if i.commander is not None}
        responders = set(session.scalars(select(Responder.name)))
    assert commanders == {"alice", "erin"}
    assert commanders <= people and responders <= people, (commanders, responders, people)


def test_the_demo_on_an_org_with_no_services_is_refused_before_anything_is_written(
    context: AppContext,
) -> None:
    """With no org file (the built-in defaults, which name no services) the demo ended in a traceback
    ("unknown service 'payments'") after writing its changes."""
    from warroom.alerts.models import ChangeEvent
    from warroom.errors import InvalidInput
    from warroom.orgconfig import OrgConfig

    with pytest.raises(InvalidInput) as caught, context.db.write() as session:
        seed_demo(session, OrgConfig())
    assert caught.value.message == (
        "the demo needs an org file that names services, and this one names none: run it with the example "
        "org (--config examples/warroom.yaml, or WARROOM_CONFIG) or one naming payments, api, database and "
        "search"
    )
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 0
        assert session.scalar(select(func.count()).select_from(ChangeEvent)) == 0


def test_demo_seed_with_no_org_file_is_one_line_and_makes_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``warroom demo seed`` with no --config / WARROOM_CONFIG ended in an InvalidInput traceback."""
    from tests.e2e.server import run_cli

    database = tmp_path / "demo.db"
    monkeypatch.delenv("WARROOM_CONFIG", raising=False)
    result = run_cli("demo", "seed", database_url=f"sqlite:///{database}", check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert " ".join(result.stderr.split()).startswith("error: the demo needs an org file that names services")
    assert not database.exists()
