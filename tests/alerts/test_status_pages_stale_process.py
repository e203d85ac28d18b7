"""A status page taken out of the org file raises nothing more, even from a process that has not read the new
file yet: each start and reload records the file's pages in the database, and a poll checks that record as
it writes. Two processes share one database here: ``context`` reloads, ``stale`` (a worker that has not
looked at ``config_reloads`` yet, or one ``kill -HUP`` did not reach) keeps the file it started with."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from tests.alerts.test_incident_lock_order import waits_for_lock
from tests.alerts.test_source_ack import run_at
from tests.alerts.test_status_pages import (
    T0,
    VendorPage,
    org,
    poll_results,
    vendor,
    vendor_alerts,
    vendor_incident,
    with_pages,
)
from warroom import reload
from warroom.alerts import status_pages
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import Database
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker

__all__ = ["org", "vendor"]  # fixtures shared with test_status_pages

GITHUB = "github:q7gd3y91r8s1"


@pytest.fixture
def stale(context: AppContext) -> Iterator[AppContext]:
    """Another process on the same database, with the org file ``context`` started with."""
    db = Database(context.settings.resolved_database_url, sqlite_synchronous="NORMAL")
    yield AppContext(settings=context.settings, db=db, org=context.org)
    db.dispose()


def pending_polls(context: AppContext) -> list[str | None]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(Job.idempotency_key).where(
                    Job.kind == status_pages.POLL_KIND, Job.status == JobStatus.pending
                )
            )
        )


def test_a_process_that_has_not_reloaded_does_not_reopen_a_removed_pages_alert(
    context: AppContext, stale: AppContext, vendor: VendorPage
) -> None:
    """The page is taken out and the reload resolves ALR-1. The worker still runs under its older file: its
    next poll found the vendor's incident still unresolved and opened ALR-2, firing (and paging) until that
    worker reloaded. It raises nothing now, and its chain ends; a reload that puts the page back starts it
    again, in any process."""
    clock.set(T0)
    vendor.incidents = [vendor_incident(1)]
    original = context.org
    with TestClient(create_app(context=context)):
        worker = Worker(stale, name="stale-worker")
        run_at(worker, T0)
        assert [row[:2] for row in vendor_alerts(context)] == [(GITHUB, "firing")]

        clock.set(T0 + timedelta(seconds=30))
        context.org = with_pages(original)
        reload.start_recurring(context)
        assert [row[:2] for row in vendor_alerts(context)] == [(GITHUB, "resolved")]

        run_at(worker, T0 + timedelta(minutes=1))  # the stale worker's next poll
        assert [row[:2] for row in vendor_alerts(context)] == [(GITHUB, "resolved")]
        assert poll_results(context)[-1] == {
            "skipped": "the page was taken out of the org file by a reload in another process"
        }
        assert pending_polls(context) == []

        clock.set(T0 + timedelta(minutes=5))
        context.org = original
        reload.start_recurring(context)
        run_at(worker, T0 + timedelta(minutes=5))
        assert [row[:2] for row in vendor_alerts(context)] == [(GITHUB, "resolved"), (GITHUB, "firing")]
        assert len(pending_polls(context)) == 1  # the chain goes on


def test_a_reload_during_a_stale_poll_resolves_what_it_wrote(
    context: AppContext, stale: AppContext, vendor: VendorPage
) -> None:
    """PostgreSQL: the stale poll has checked the page's record and is writing when the reload that takes the
    page out runs. The reload waits for it (the poll holds the record's row), then resolves the alert it
    opened; without the wait the reload read the open alerts before the poll committed, and its alert stayed
    open."""
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    clock.set(T0)
    vendor.incidents = [vendor_incident(1)]
    original = context.org
    reload.start_recurring(context)
    page = original.automation.status_pages[0]
    status = status_pages.fetch(page)
    reloaded: dict[str, BaseException | None] = {}

    def reload_without_the_page() -> None:
        try:
            reload.start_recurring(context)
            reloaded["outcome"] = None
        except BaseException as exc:  # asserted on below
            reloaded["outcome"] = exc

    reloader = threading.Thread(target=reload_without_the_page)
    with stale.db.write() as session:
        holder = int(session.scalar(text("SELECT pg_backend_pid()")) or 0)
        assert status_pages.in_recorded_file(session, page.name)
        context.org = with_pages(original)
        reloader.start()
        waits_for_lock(context, holder, time.monotonic() + 8)
        status_pages.apply(session, stale.org, page, status)
    reloader.join(10)
    assert not reloader.is_alive() and reloaded == {"outcome": None}
    assert [row[:2] for row in vendor_alerts(context)] == [(GITHUB, "resolved")]
