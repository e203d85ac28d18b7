"""A page handed to delivery shows what became of the message, so a failing mail server is visible."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.oncall.test_paging import T0, open_incident, run_at
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.oncall.paging import incident_paging
from warroom.orgconfig import OrgConfig, load_org_config


@pytest.fixture
def org() -> OrgConfig:
    """The example org file as it ships: its email channel logs in with ${SMTP_PASSWORD}."""
    return load_org_config(EXAMPLE_CONFIG)


def test_pages_carry_their_delivery_outcome(context: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)  # so every mail fails
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)  # pages step 1
    run_at(worker, T0)  # the first delivery attempts
    with context.db.read() as session:
        paging = incident_paging(session, ref=f"INC-{incident_id}")
    emails = [page for page in paging.pages if page.channel == "email"]
    assert emails, paging.pages
    for page in emails:
        assert page.status == "sent"  # handed to delivery...
        assert page.delivery_status == "dead"  # ...which could not send it (a secret missing: at once)
        assert page.error and "SMTP_PASSWORD" in page.error
