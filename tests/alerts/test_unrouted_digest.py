"""automation.unrouted_digest: when business hours begin, an audience hears of the alerts that arrived since
the last digest and that no rule routed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import digest
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify.models import Delivery
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config


def org_data(**digest_config: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["audiences"].append({"id": "on-call", "channels": ["console", "status-page"]})
    data["automation"]["unrouted_digest"] = digest_config
    # A rule that matches its alerts and does nothing: routed on purpose, so not in the digest.
    data["automation"]["rules"].insert(0, {"name": "known-noise", "match": {"labels": {"noise": "yes"}}})
    return data


@pytest.fixture
def org() -> OrgConfig:
    return parse_org_config(yaml.safe_dump(org_data(audience="on-call")))


def pending_digests(context: AppContext) -> list[Job]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(Job)
                .where(Job.kind == digest.DIGEST_KIND, Job.status == JobStatus.pending)
                .order_by(Job.id)
            )
        )


def send(api: TestClient, key: str, **alert: Any) -> None:
    answer = api.post(f"/api/v1/alerts?key={key}", json={"severity": "warning", **alert})
    assert answer.status_code == 202, answer.text


def test_the_morning_digest_names_what_no_rule_routed(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    # The app scheduled the first digest when it started: the next start of business hours.
    [first] = pending_digests(context)
    since = datetime.fromisoformat(first.payload["since"])
    assert first.run_at == digest.next_digest(context.org, since)
    assert context.org.business_hours.is_open(first.run_at)
    clock.set(since + timedelta(minutes=1))
    for host in ("web-1", "web-2"):
        send(api, generic_key, summary=f"cert expires on {host}", type="CertExpiry", dedup_key=host)
    send(api, generic_key, summary="queue slow", type="QueueSlow", dedup_key="q", status="firing")
    send(api, generic_key, summary="queue slow", type="QueueSlow", dedup_key="q", status="resolved")
    send(api, generic_key, summary="payments down", severity="critical", labels={"service": "payments"})
    send(api, generic_key, summary="flaky probe", labels={"noise": "yes"})

    clock.set(first.run_at + timedelta(seconds=1))
    worker = Worker(context, name="w1")
    while worker.run_once():
        pass
    with context.db.read() as session:
        ran = session.get_one(Job, first.id)
        [delivery] = session.scalars(select(Delivery).where(Delivery.template == "unrouted_digest")).all()
    assert ran.result == {"unrouted": 3, "sent": ["console"], "refused": []}
    assert delivery.channel == "console"
    assert delivery.subject.startswith("[Acme Cloud] 3 alerts no rule routed since")
    assert "2 x CertExpiry" in delivery.body and "1 x QueueSlow" in delivery.body
    assert "1 still open" not in delivery.body and "2 still open" in delivery.body
    assert "payments" not in delivery.body and "flaky" not in delivery.body
    assert "2 x CertExpiry: cert expires on web-2" in delivery.body  # the group's newest alert speaks for it
    assert "warroom alerts list --unrouted\n" in delivery.body  # read later, still finds them
    # The next digest covers what comes after this one.
    [following] = pending_digests(context)
    assert datetime.fromisoformat(following.payload["since"]) == first.run_at
    assert (
        following.run_at == digest.next_digest(context.org, first.run_at) > first.run_at + timedelta(hours=12)
    )

    # Nothing new: nothing is sent, and the chain goes on.
    clock.set(following.run_at + timedelta(seconds=1))
    while worker.run_once():
        pass
    with context.db.read() as session:
        assert len(session.scalars(select(Delivery).where(Delivery.template == "unrouted_digest")).all()) == 1
        assert session.get_one(Job, following.id).result == {"unrouted": 0, "sent": [], "refused": []}
    assert len(pending_digests(context)) == 1


def test_the_next_digest_is_the_next_morning() -> None:
    org = load_org_config(EXAMPLE_CONFIG)  # 09:00-18:00 Berlin, Monday to Friday, Berlin's holidays
    friday_noon = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)
    assert digest.next_digest(org, friday_noon) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    monday_early = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    assert digest.next_digest(org, monday_early) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    at_opening = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert digest.next_digest(org, at_opening) == datetime(2026, 12, 8, 8, 0, tzinfo=UTC)


def test_an_unknown_audience_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_org_config(yaml.safe_dump(org_data(audience="nobody")))
    assert any("unrouted_digest.audience" in str(p) for p in refused.value.problems)


def test_an_alert_released_by_its_inhibitor_that_no_rule_routes_is_in_the_digest(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """While web-6's HostDown mutes its other alerts they are not unrouted, only held. Once it resolves, one
    that no rule takes is unrouted like any other: before, it stayed out of every digest."""
    clock.set(datetime(2026, 3, 2, 7, 0, tzinfo=UTC))
    host = {
        "summary": "web-6 down",
        "type": "HostDown",
        "severity": "critical",
        "labels": {"instance": "web-6"},
    }
    send(api, generic_key, dedup_key="hd66", **host)
    send(
        api,
        generic_key,
        summary="web-6 info thing",
        type="Foo",
        severity="info",
        dedup_key="f66",
        labels={"instance": "web-6"},
    )
    window = (clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=1))
    with context.db.read() as session:
        assert digest.summary(session, *window)["total"] == 0  # held by the open HostDown
    send(api, generic_key, dedup_key="hd66", status="resolved", **host)
    with context.db.read() as session:
        released = digest.summary(session, *window)
    assert released["total"] == 1 and released["groups"][0]["type"] == "Foo"
