"""``automation.resolve_after``: an incident automation moved to monitoring (all its alerts resolved) is
resolved by automation once it has stayed there that long with none of its alerts firing again."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import T0, generic, incident, run_at, timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.automation import QUIET_KIND
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker
from warroom.oncall.models import Escalation, EscalationState
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config


@pytest.fixture
def org() -> OrgConfig:
    base = load_org_config(EXAMPLE_CONFIG)
    automation = base.automation.model_copy(update={"resolve_after": timedelta(minutes=30)})
    return base.model_copy(update={"automation": automation})


def end(api: TestClient, key: str, dedup_key: str) -> None:
    generic(api, key, summary="api 5xx", dedup_key=dedup_key, status="resolved")


def quiet_jobs(context: AppContext) -> list[tuple[str, Any]]:
    with context.db.read() as session:
        rows = session.scalars(select(Job).where(Job.kind == QUIET_KIND).order_by(Job.id))
        return [(job.status.value, job.result) for job in rows]


def test_a_quiet_incident_is_resolved_and_one_that_fires_again_is_not(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    generic(api, generic_key, summary="api 5xx", dedup_key="5xx")
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=5))
    end(api, generic_key, "5xx")
    assert incident(context).status.value == "monitoring"

    # Not yet: 29 minutes in monitoring.
    run_at(worker, T0 + timedelta(minutes=34))
    assert incident(context).status.value == "monitoring"
    assert quiet_jobs(context) == [("pending", None)]

    # It fires again: back to investigating, and that stay's job finds nothing to do.
    clock.set(T0 + timedelta(minutes=34))
    generic(api, generic_key, summary="api 5xx", dedup_key="5xx")
    assert incident(context).status.value == "investigating"
    run_at(worker, T0 + timedelta(minutes=35))
    assert quiet_jobs(context) == [("done", {"resolved": False, "reason": "it is investigating"})]

    # It resolves again: a new stay in monitoring; after 30 quiet minutes automation resolves the incident.
    clock.set(T0 + timedelta(minutes=40))
    end(api, generic_key, "5xx")
    run_at(worker, T0 + timedelta(minutes=70))
    resolved = incident(context)
    assert resolved.status.value == "resolved" and resolved.resolved_at == T0 + timedelta(minutes=70)
    last = [e for e in timeline(context) if e.action.startswith("Status: monitoring → resolved")]
    assert [(e.action, e.performer) for e in last] == [
        (
            "Status: monitoring → resolved — its alerts stayed resolved for 30m in monitoring "
            "(resolve_after)",
            "automation",
        )
    ]
    assert quiet_jobs(context)[-1] == ("done", {"resolved": True})
    with context.db.read() as session:  # the resolve ends its escalation, as any resolve does
        states = session.scalars(select(Escalation.state).where(Escalation.incident_id == 1)).all()
    assert states and set(states) == {EscalationState.resolved}


def test_a_person_s_move_wins(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    generic(api, generic_key, summary="api 5xx", dedup_key="5xx")
    end(api, generic_key, "5xx")
    assert incident(context).status.value == "monitoring"
    # The responder is not convinced: back to identified. Automation leaves it alone.
    moved = api.patch("/api/v1/incidents/INC-1", json={"status": "identified"}, headers=responder)
    assert moved.status_code == 200, moved.text
    run_at(worker, T0 + timedelta(hours=1))
    assert incident(context).status.value == "identified"
    assert quiet_jobs(context) == [("done", {"resolved": False, "reason": "it is identified"})]


def test_off_by_default_and_per_rule(api: TestClient, context: AppContext, generic_key: str) -> None:
    """The example org file resolves nothing by itself; a rule can turn it off for its incidents."""
    context.org = load_org_config(EXAMPLE_CONFIG)
    clock.set(T0)
    generic(api, generic_key, summary="api 5xx", dedup_key="5xx")
    end(api, generic_key, "5xx")
    assert incident(context).status.value == "monitoring" and quiet_jobs(context) == []

    base = load_org_config(EXAMPLE_CONFIG)
    rules = [
        rule.model_copy(update={"resolve_after": timedelta(0)})
        if rule.name == "critical-monitoring"
        else rule
        for rule in base.automation.rules
    ]
    automation = base.automation.model_copy(update={"resolve_after": timedelta(minutes=30), "rules": rules})
    context.org = base.model_copy(update={"automation": automation})
    generic(api, generic_key, summary="disk", dedup_key="disk", labels={"alertname": "DiskFull"})
    end(api, generic_key, "disk")
    assert incident(context, 2).status.value == "monitoring" and quiet_jobs(context) == []


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("resolve_after: 30s", "resolve_after must be 0s (off) or between 1m and 7d"),
        ("resolve_after: 8d", "resolve_after must be 0s (off) or between 1m and 7d"),
        ("resolve_after: soon", "resolve_after"),
    ],
)
def test_a_bad_length_is_refused(setting: str, problem: str) -> None:
    text = EXAMPLE_CONFIG.read_text().replace(
        "  dependency_window: 30m", f"  dependency_window: 30m\n  {setting}", 1
    )
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse_org_config(text)
