"""Refused reports are counted in warroom_alert_deliveries_rejected_total as every intake route's refusals are
(they had no sample at all), and a rate-limited client is logged, at most once a minute per address bucket,
so that an operator behind a proxy notices every customer sharing its one bucket."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.alerts.test_reports_cors import REPORT, with_reports
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.ratelimit import RateLimit
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.orgconfig import OrgConfig, load_org_config

JSON = {"Content-Type": "application/json"}


def rejected(source: str, reason: str) -> float:
    labels = {"source": source, "reason": reason}
    return REGISTRY.get_sample_value("warroom_alert_deliveries_rejected_total", labels) or 0


@pytest.fixture
def org() -> OrgConfig:
    return with_reports(load_org_config(EXAMPLE_CONFIG), rate_limit=1, rate_period=timedelta(hours=1))


def test_every_refused_report_is_counted_by_reason(
    api: TestClient, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    customer = ["rate_limited", "invalid_payload", "unsupported_media_type", "payload_too_large"]
    internal = ["invalid_payload", "unauthorized", "forbidden"]
    before = {
        **{("customer-report", reason): rejected("customer-report", reason) for reason in customer},
        **{("internal-discovery", reason): rejected("internal-discovery", reason) for reason in internal},
    }
    assert api.post("/api/v1/reports", json=REPORT).status_code == 202
    answers = [
        api.post("/api/v1/reports", json=REPORT).status_code,  # over the limit
        api.post("/api/v1/reports", json={**REPORT, "contact": "not-an-email"}).status_code,
        api.post("/api/v1/reports", content=b"{", headers=JSON).status_code,
        api.post("/api/v1/reports", content=b"contact=a", headers={"Content-Type": "text/plain"}).status_code,
        api.post("/api/v1/reports", content=b"x" * 2_000_000, headers=JSON).status_code,
        api.post(
            "/api/v1/reports/internal", json={"description": "x", "labels": {"": "y"}}, headers=responder
        ).status_code,
        api.post("/api/v1/reports/internal", json={"description": "x"}).status_code,
        api.post("/api/v1/reports/internal", json={"description": "x"}, headers=viewer).status_code,
    ]
    assert answers == [429, 422, 400, 415, 413, 422, 401, 403]
    counted = {key: rejected(*key) - count for key, count in before.items()}
    assert counted == {
        ("customer-report", "rate_limited"): 1,
        ("customer-report", "invalid_payload"): 2,  # the contact (422) and the body that is no JSON (400)
        ("customer-report", "unsupported_media_type"): 1,
        ("customer-report", "payload_too_large"): 1,
        ("internal-discovery", "invalid_payload"): 1,
        ("internal-discovery", "unauthorized"): 1,
        ("internal-discovery", "forbidden"): 1,
    }
    # A preflight or a read of the path is no delivery.
    before_405 = rejected("customer-report", "invalid_payload")
    assert api.options("/api/v1/reports").status_code == 405
    assert api.get("/api/v1/reports").status_code == 405
    assert rejected("customer-report", "invalid_payload") == before_405


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "warroom.alerts" and "refused from" in r.getMessage()
    ]


def test_a_rate_limited_client_is_logged_once_a_minute(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="warroom.alerts")
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    # Behind a proxy that is not trusted, every customer comes from its (private) address.
    with TestClient(create_app(context=context), client=("10.0.0.7", 4711)) as api:
        assert api.post("/api/v1/reports", json=REPORT).status_code == 202
        for _ in range(3):
            assert api.post("/api/v1/reports", json=REPORT).status_code == 429
        [first] = refusal_lines(caplog)
        assert first.startswith("public report refused from 10.0.0.7: over the rate limit (1 per 1h)")
        assert "WARROOM_FORWARDED_ALLOW_IPS" in first
        clock.advance(timedelta(seconds=59))
        assert api.post("/api/v1/reports", json=REPORT).status_code == 429
        assert len(refusal_lines(caplog)) == 1
        clock.advance(timedelta(seconds=1))
        assert api.post("/api/v1/reports", json=REPORT).status_code == 429
        second = refusal_lines(caplog)[1]
        # The two held back since the first line, and this one.
        assert second.startswith("public reports refused from 10.0.0.7: 4 since 2026-03-02 10:00:00 UTC")


def test_each_bucket_has_its_own_minute(caplog: pytest.LogCaptureFixture) -> None:
    from warroom.alerts.ratelimit import RefusalLog  # here: the test fails alone where it is missing

    caplog.set_level(logging.WARNING, logger="warroom.alerts")
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    log = RefusalLog()
    limit = RateLimit(5, timedelta(minutes=1))
    for client in ["2001:db8::1", "2001:db8::2", "93.184.216.34", "2001:db8::3", "93.184.216.34"]:
        log.refused(client, limit)
    lines = refusal_lines(caplog)
    assert [line.split(":")[0] for line in lines] == [
        "public report refused from 2001",
        "public report refused from 93.184.216.34",
    ]
    assert "2001:db8::/64" in lines[0]
    # A public address is no proxy's: no hint.
    assert "WARROOM_FORWARDED_ALLOW_IPS" not in lines[1]
