"""A page of a person asked for through an API process whose org file has them, run by a worker whose org file
has not (one process reloaded by ``kill -HUP``, the worker still on the old file): the timeline says the
worker's org file has no such person, and may be older or different, not that they are "no longer" in it."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from tests.oncall.test_paging import T0, open_incident, pages, run_at, timeline
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.oncall import paging


def test_a_person_the_workers_org_file_lacks_is_said_so_naming_the_worker(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    clock.set(T0)
    incident_id = open_incident(context)
    worker = Worker(context, name="worker-1")
    run_at(worker, T0)
    # The API process (its org file reloaded) accepted a page of "quinn", whom the worker's file lacks.
    with context.db.write() as session:
        paging.request_person_page(
            session, incident_id=incident_id, person="quinn", requested_by="admin", note=None, at=T0
        )
    caplog.set_level(logging.WARNING, logger="warroom")
    run_at(worker, T0 + timedelta(seconds=1))

    assert not [p for p in pages(context, incident_id) if p.person == "quinn"]
    actions = [e.action for e in timeline(context, incident_id)]
    said = [a for a in actions if a.startswith("Page of quinn requested by admin not sent")]
    assert len(said) == 1, actions
    assert "no longer" not in said[0]
    assert "the org file of the worker that ran it (worker-1" in said[0]
    assert "has no person quinn" in said[0]
    assert "older than, or different from, the one the request was checked against" in said[0]
    assert "reload every process (warroom config reload)" in said[0]
    assert any("has no person quinn" in r.getMessage() for r in caplog.records)
