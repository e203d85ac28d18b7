"""A storm's notifications. Alertmanager (max_alerts 0) and Grafana send a whole alert group as one body,
never retry a 4xx and cannot fix what they send: a group over the API's 1 MiB is taken (up to
max_intake_body_bytes), a body over that is refused and logged, still read only up to the limit; a NUL in one
alert is marked, not the group lost; a truncated group's loss is counted once per notification that changed
something, not once per copy."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from tests.alerts.conftest import make_key
from warroom.alerts.models import Alert
from warroom.app import WarroomApp, create_app
from warroom.context import AppContext

AM_PATH = "/api/v1/alerts/alertmanager"


def stored(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Alert)) or 0


def crashlooping(count: int, status: str = "firing") -> dict[str, Any]:
    """Alertmanager's notification of a KubePodCrashLooping group grouped by alertname across a big
    deployment: alerts of about 900 bytes each, as kube-prometheus's rules make them."""
    alerts = []
    for n in range(count):
        pod = f"checkout-api-7d9f8c6b5-{n:05d}"
        alerts.append(
            {
                "status": status,
                "labels": {
                    "alertname": "KubePodCrashLooping",
                    "container": "checkout-api",
                    "endpoint": "http",
                    "instance": f"10.42.{n // 250}.{n % 250}:8080",
                    "job": "kube-state-metrics",
                    "namespace": "checkout",
                    "pod": pod,
                    "prometheus": "monitoring/k8s",
                    "reason": "CrashLoopBackOff",
                    "service": "checkout-api",
                    "severity": "warning",
                    "uid": f"5f0c2d1e-{n:04d}-4b7a-9c1d-2e3f4a5b6c7d",
                },
                "annotations": {
                    "description": f"Pod checkout/{pod} (checkout-api) is in waiting state (reason: "
                    '"CrashLoopBackOff") on cluster prod-eu-1.',
                    "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/"
                    "kubepodcrashlooping",
                    "summary": "Pod is crash looping.",
                },
                "startsAt": "2026-11-28T11:02:04.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr=max_over_time%28kube_pod_container_"
                "status_waiting_reason%7Breason%3D%22CrashLoopBackOff%22%2Cjob%3D%22kube-state-metrics%22%7D"
                "%5B5m%5D%29+%3E%3D+1&g0.tab=1",
                "fingerprint": f"{n:016x}",
            }
        )
    return {
        "receiver": "warroom",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": {"alertname": "KubePodCrashLooping", "namespace": "checkout"},
        "commonAnnotations": {"summary": "Pod is crash looping."},
        "externalURL": "http://alertmanager-main-0:9093",
        "version": "4",
        "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": 0,
    }


def test_a_storm_group_over_the_api_limit_is_taken_whole(api: TestClient, context: AppContext) -> None:
    """QA's storm: 1,200 crash-looping pods make a 1.1 MB notification. It was refused (413) on every flush,
    and Alertmanager never retries a 4xx: every alert of it was lost."""
    key = make_key(context, "alertmanager", "prod-eu-1")
    body = json.dumps(crashlooping(1200)).encode()
    assert context.settings.max_body_bytes < len(body) < context.settings.max_intake_body_bytes
    response = api.post(f"{AM_PATH}?key={key}", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text[:500]
    assert response.json()["accepted"] == 1200
    assert stored(context) == 1200
    # The rest of the API keeps its 1 MiB: a plain JSON batch of that size is still refused.
    scripts = make_key(context, "generic", "scripts")
    batch = [
        {"summary": alert["annotations"]["description"], **alert} for alert in crashlooping(1200)["alerts"]
    ]
    assert api.post(f"/api/v1/alerts?key={scripts}", json=batch).status_code == 413
    assert stored(context) == 1200


@pytest.fixture
def small_limits(context: AppContext) -> AppContext:
    """Limits small enough to go over cheaply: 4 KiB for the API, 64 KiB for the group senders."""
    context.settings = context.settings.model_copy(
        update={"max_body_bytes": 4096, "max_intake_body_bytes": 65536}
    )
    return context


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "request-guard"])
@pytest.mark.parametrize("kind", ["alertmanager", "grafana"])
def test_group_routes_take_bodies_up_to_their_own_limit_and_log_a_refusal(
    small_limits: AppContext, caplog: pytest.LogCaptureFixture, fast_path: bool, kind: str
) -> None:
    """Whether the fast path answers the route or the framework does (an app mounted some other way), the
    group senders' routes take bodies over the API's limit, and a body over their own limit is refused with
    413 and a warning naming the route, the integration and the size (or that it was read up to the limit)."""
    context = small_limits
    app = create_app(context=context)
    if not fast_path:
        app.intake = None
    key = make_key(context, kind, f"{kind}-prod")
    url = f"/api/v1/alerts/{kind}?key={key}"
    caplog.set_level(logging.WARNING, logger="warroom")
    with TestClient(app) as api:
        taken = json.dumps(crashlooping(40)).encode()
        assert 4096 < len(taken) < 65536
        assert api.post(url, content=taken).status_code == 202
        assert stored(context) == 40

        huge = json.dumps(crashlooping(100)).encode()
        assert len(huge) > 65536
        refused = api.post(url, content=huge)
        assert refused.status_code == 413, refused.text
        assert "over the limit of 65536 bytes" in refused.text
        said = [record.getMessage() for record in caplog.records if "413" in record.getMessage()]
        assert said == [
            f"POST /api/v1/alerts/{kind}: refused {kind} delivery of {len(huge)} bytes (413, over the limit "
            f"of 65536 bytes; integration '{kind}-prod'): its alerts are not recorded"
        ]

        def chunks() -> Iterator[bytes]:  # no Content-Length
            for start in range(0, len(huge), 16384):
                yield huge[start : start + 16384]

        caplog.clear()
        assert api.post(url, content=chunks()).status_code == 413
        [line] = [record.getMessage() for record in caplog.records if "413" in record.getMessage()]
        assert "delivery of over 65536 bytes (read up to the limit)" in line, line
        assert stored(context) == 40


def test_an_endless_body_is_read_only_up_to_the_limit(small_limits: AppContext) -> None:
    """A body streamed without end and without Content-Length is cut off at the limit (413), not held."""
    context = small_limits
    key = make_key(context, "alertmanager")

    async def deliver(app: WarroomApp) -> tuple[int, int]:
        pulled = 0
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            nonlocal pulled
            pulled += 1
            return {"type": "http.request", "body": b" " * 8192, "more_body": True}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": AM_PATH,
            "raw_path": AM_PATH.encode(),
            "query_string": f"key={key}".encode(),
            "headers": [(b"content-type", b"application/json")],
            "root_path": "",
            "scheme": "http",
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 1234),
            "http_version": "1.1",
        }
        await app(scope, receive, send)
        return sent[0]["status"], pulled

    for fast_path in (True, False):
        app = create_app(context=context)
        if not fast_path:
            app.intake = None
        status, pulled = asyncio.run(deliver(app))
        assert status == 413
        assert pulled <= 65536 // 8192 + 1


def with_nul(delivery: dict[str, Any]) -> dict[str, Any]:
    delivery["alerts"][1]["labels"]["instance"] = "10.42.0.1\x00:8080"
    delivery["alerts"][1]["annotations"]["summary"] = "crash\x00looping"
    return delivery


@pytest.mark.parametrize("kind", ["alertmanager", "grafana"])
def test_a_nul_in_one_alert_is_marked_and_the_group_taken(
    api: TestClient, context: AppContext, kind: str
) -> None:
    """QA: one NUL in one label refused the whole notification (400), which the sender resends, refused,
    forever. Its alerts are taken, the NUL shown as U+FFFD (as mail and heartbeat intake do)."""
    key = make_key(context, kind)
    response = api.post(f"/api/v1/alerts/{kind}?key={key}", json=with_nul(crashlooping(3)))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3
    with context.db.read() as session:
        marked = session.scalars(select(Alert).where(Alert.dedup_key == f"{1:016x}")).one()
        assert marked.labels["instance"] == "10.42.0.1\ufffd:8080"
        assert marked.summary == "crash\ufffdlooping"
    assert stored(context) == 3


def test_the_pagerduty_and_opsgenie_notifiers_nuls_are_marked(api: TestClient, context: AppContext) -> None:
    """Alertmanager's and Grafana's PagerDuty and Opsgenie notifiers send one event for a group, its alerts'
    labels in its texts, and do not retry a 4xx either: a NUL there is marked too."""
    pd_key = make_key(context, "pagerduty")
    event = {
        "routing_key": pd_key,
        "event_action": "trigger",
        "dedup_key": "group\x00key",
        "payload": {
            "summary": "[FIRING:3] KubePodCrashLooping",
            "source": "alertmanager",
            "severity": "warning",
            "custom_details": {"firing": "instance = 10.42.0.1\x00:8080"},
        },
    }
    taken = api.post("/v2/enqueue", json=event)
    assert taken.status_code == 202, taken.text
    assert taken.json()["dedup_key"] == "group\ufffdkey"
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    created = api.post(
        "/v2/alerts",
        json={"message": "crash\x00looping", "alias": "kube-group", "description": "10.42.0.1\x00:8080"},
        headers=genie,
    )
    assert created.status_code == 202, created.text
    updated = api.put(
        "/v2/alerts/kube-group/description?identifierType=alias",
        json={"description": "a\x00b"},
        headers=genie,
    )
    assert updated.status_code == 202, updated.text
    with context.db.read() as session:
        summaries = set(session.scalars(select(Alert.summary)))
        described = session.scalars(select(Alert).where(Alert.source == "opsgenie")).one()
    assert summaries == {"[FIRING:3] KubePodCrashLooping", "crash\ufffdlooping"}
    assert described.annotations["description"] == "a\ufffdb"


def truncated_total() -> float:
    return REGISTRY.get_sample_value("warroom_alerts_truncated_total", {"source": "alertmanager"}) or 0


def test_a_truncated_group_counts_once_per_notification_that_changed_something(
    api: TestClient, context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """QA: 3 alerts left out read 6 after an HA pair's two copies, 12 after the resolve. An identical copy
    (a retry, the HA peer's, an unchanged repeat) reports the same loss again: it is answered so, not counted
    or logged again. Each notification that changes the group is counted."""
    url = f"{AM_PATH}?key={make_key(context, 'alertmanager')}"
    caplog.set_level(logging.WARNING, logger="warroom.alerts")
    firing = {**crashlooping(2), "truncatedAlerts": 3}
    before = truncated_total()
    for _ in range(3):  # the first, the HA peer's copy, a repeat at repeat_interval
        answer = api.post(url, json=firing)
        assert answer.status_code == 202, answer.text
        assert answer.json()["truncated_alerts"] == 3
    assert truncated_total() == before + 3
    assert len([record for record in caplog.records if "left 3 alert(s)" in record.getMessage()]) == 1
    resolved = {**crashlooping(2, status="resolved"), "truncatedAlerts": 3}
    for _ in range(2):  # the resolve and its HA copy
        assert api.post(url, json=resolved).json()["truncated_alerts"] == 3
    assert truncated_total() == before + 6
