"""automation.auto_resolve: alerts whose source never resolves them close when they go quiet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import run_at, timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import AutoResolveConfig
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, parse_org_config

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def statuses(context: AppContext) -> dict[str, tuple[str, str | None, str | None]]:
    with context.db.read() as session:
        return {
            a.dedup_key: (a.status.value, a.resolved_by, a.resolution_note)
            for a in session.scalars(select(Alert).order_by(Alert.id))
        }


def test_quiet_alerts_resolve_after_their_entry_says(
    context: AppContext, generic_key: str, am_key: str, viewer: dict[str, str]
) -> None:
    entries = [
        AutoResolveConfig.model_validate(
            {"match": {"source": ["generic"], "severity": ["info"]}, "after": "10m"}
        ),
        AutoResolveConfig.model_validate({"match": {"source": ["generic"]}, "after": "1h"}),
    ]
    context.org = context.org.model_copy(
        update={"automation": context.org.automation.model_copy(update={"auto_resolve": entries})}
    )
    clock.set(T0)
    with TestClient(create_app(context=context)) as api:

        def send(path: str, key: str, body: Any) -> None:
            response = api.post(f"{path}?key={key}", json=body)
            assert response.status_code == 202, response.text

        critical = {"summary": "backup job failed", "severity": "critical", "service": "database"}
        send(
            "/api/v1/alerts",
            generic_key,
            {**critical, "dedup_key": "backup", "labels": {"alertname": "Backup"}},
        )
        send("/api/v1/alerts", generic_key, {"summary": "fyi", "severity": "info", "dedup_key": "fyi"})
        firing = {
            "status": "firing",
            "labels": {"alertname": "Lag", "severity": "critical"},
            "fingerprint": "lag",
        }
        send("/api/v1/alerts/alertmanager", am_key, {"version": "4", "status": "firing", "alerts": [firing]})
        assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "investigating"

        worker = Worker(context, name="w1")
        run_at(worker, T0 + timedelta(minutes=11))
        # The info alert matched the first entry (10m); the critical one the second (1h); Alertmanager none.
        assert statuses(context) == {
            "backup": ("firing", None, None),
            "fyi": ("resolved", "automation", "not seen for 10m: resolved automatically (auto_resolve)"),
            "lag": ("firing", None, None),
        }
        # A repeat moves the clock of the critical alert on.
        clock.set(T0 + timedelta(minutes=30))
        send(
            "/api/v1/alerts",
            generic_key,
            {**critical, "summary": "backup failed again", "dedup_key": "backup"},
        )
        run_at(worker, T0 + timedelta(hours=1, minutes=5))
        assert statuses(context)["backup"][0] == "firing"
        # So does the same body sent again later (a cron job repeating its failure), though a retry right
        # away changes nothing and neither counts an occurrence.
        repeated = {**critical, "summary": "backup failed again", "dedup_key": "backup"}
        clock.set(T0 + timedelta(hours=1, minutes=10))
        send("/api/v1/alerts", generic_key, repeated)
        clock.set(T0 + timedelta(hours=1, minutes=10, seconds=20))
        send("/api/v1/alerts", generic_key, repeated)
        with context.db.read() as session:
            backup = session.scalars(select(Alert).where(Alert.dedup_key == "backup")).one()
            assert (backup.last_seen_at, backup.occurrences) == (T0 + timedelta(hours=1, minutes=10), 2)
        run_at(worker, T0 + timedelta(hours=1, minutes=31))
        assert statuses(context)["backup"][0] == "firing"
        run_at(worker, T0 + timedelta(hours=2, minutes=11))
        assert statuses(context)["backup"] == (
            "resolved",
            "automation",
            "not seen for 1h: resolved automatically (auto_resolve)",
        )
        assert statuses(context)["lag"][0] == "firing"  # Alertmanager resolves its own
        incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
        assert incident["status"] == "monitoring"
        resolved = [e for e in timeline(context, 1) if "resolved" in e.action and "auto_resolve" in e.action]
        assert len(resolved) == 1 and resolved[0].performer == "automation"
        shown = api.get("/api/v1/alerts?status=resolved", headers=viewer).json()["items"]
        assert {a["resolution_note"] for a in shown} >= {
            "not seen for 1h: resolved automatically (auto_resolve)"
        }
    # One chain of sweeps, whatever the restarts.
    with TestClient(create_app(context=context)):
        pass
    with context.db.read() as session:
        pending = session.scalars(
            select(Job).where(Job.kind == "alerts.auto_resolve", Job.status == JobStatus.pending)
        ).all()
    assert len(pending) == 1


def test_without_entries_the_chain_ends(context: AppContext) -> None:
    entries = [AutoResolveConfig.model_validate({"after": "1h"})]
    original = context.org
    context.org = original.model_copy(
        update={"automation": original.automation.model_copy(update={"auto_resolve": entries})}
    )
    clock.set(T0)
    with TestClient(create_app(context=context)):
        pass
    context.org = original  # the entries are taken out of the org file
    run_at(Worker(context, name="w1"), T0 + timedelta(minutes=5))
    with context.db.read() as session:
        kinds = [
            (j.status, j.result)
            for j in session.scalars(select(Job).where(Job.kind == "alerts.auto_resolve"))
        ]
    assert kinds == [(JobStatus.done, {"skipped": "the org file has no auto_resolve entries"})]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"after": "30s"}, "between 1m and 30d"),
        ({"match": {"source": ["fax"]}, "after": "1h"}, "unknown source"),
        ({"match": {"source": ["generic"]}}, "after"),
    ],
)
def test_auto_resolve_config_is_checked(entry: dict[str, Any], problem: str) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["auto_resolve"] = [entry]
    with pytest.raises(ConfigError) as caught:
        parse_org_config(yaml.safe_dump(data), "org.yaml")
    assert any(problem in str(line) for line in caught.value.problems), caught.value.problems
