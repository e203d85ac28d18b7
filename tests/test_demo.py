"""``warroom demo seed`` (run by ``make run``): example data on a fresh database, once."""

from __future__ import annotations

from sqlalchemy import func, select

from warroom.alerts import maintenance
from warroom.alerts.models import MaintenanceWindow
from warroom.context import AppContext
from warroom.db import utcnow
from warroom.demo import seed_demo
from warroom.incidents.models import Incident


def test_seed_demo_once(context: AppContext) -> None:
    with context.db.write() as session:
        assert seed_demo(session, context.org) == 3
    with context.db.write() as session:
        assert seed_demo(session, context.org) == 0  # a database with incidents is left alone
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 3
        windows = list(session.scalars(select(MaintenanceWindow)))
    assert [(w.services, maintenance.state(w, utcnow())) for w in windows] == [(["search"], "scheduled")]
