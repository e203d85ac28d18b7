"""A browser on the company's own site can send the public report form: CORS for the origins of
``automation.reports.allowed_origins``, on POST /api/v1/reports only. Before, a preflight was answered 405 and
no answer carried Access-Control-Allow-Origin, so no browser could send a report from another origin."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import ReportsConfig
from warroom.alerts.models import Alert, ReportHit
from warroom.app import create_app
from warroom.context import AppContext
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config

SITE = "https://www.acme.example"
OTHER = "https://evil.example"
REPORT = {"contact": "ann@example.com", "description": "checkout fails", "affected_feature": "checkout"}


def with_reports(org: OrgConfig, **fields: object) -> OrgConfig:
    reports = ReportsConfig.model_validate({**org.automation.reports.model_dump(), **fields})
    return org.model_copy(update={"automation": org.automation.model_copy(update={"reports": reports})})


@pytest.fixture
def org() -> OrgConfig:
    return with_reports(load_org_config(EXAMPLE_CONFIG), allowed_origins=[SITE], rate_limit=1)


def stored(context: AppContext) -> tuple[int, int]:
    with context.db.read() as session:
        alerts = session.scalar(select(func.count()).select_from(Alert)) or 0
        hits = session.scalar(select(func.count()).select_from(ReportHit)) or 0
    return alerts, hits


def cors_headers(answer: object) -> dict[str, str]:
    headers = answer.headers  # type: ignore[attr-defined]
    return {name: value for name, value in headers.items() if name.lower().startswith("access-control-")}


def preflight(api: TestClient, origin: str, path: str = "/api/v1/reports") -> object:
    return api.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_an_allowed_origin_gets_its_preflight_and_its_answers(api: TestClient, context: AppContext) -> None:
    for _ in range(3):  # not counted against the limit (one report a minute here), nor stored
        answer = preflight(api, SITE)
        assert answer.status_code == 204, answer.text  # type: ignore[attr-defined]
        assert cors_headers(answer) == {
            "access-control-allow-origin": SITE,
            "access-control-allow-methods": "POST",
            "access-control-allow-headers": "content-type",
            "access-control-max-age": "600",
            "access-control-expose-headers": "Retry-After",
        }
        assert answer.headers["vary"] == "Origin"  # type: ignore[attr-defined]
    assert stored(context) == (0, 0)

    taken = api.post("/api/v1/reports", json=REPORT, headers={"Origin": SITE})
    assert taken.status_code == 202, taken.text
    assert taken.headers["access-control-allow-origin"] == SITE
    assert taken.headers["vary"] == "Origin"
    # The page can read its refusals too: the limit's (and when to try again), a field at fault, a big body.
    limited = api.post("/api/v1/reports", json=REPORT, headers={"Origin": SITE})
    assert limited.status_code == 429
    assert limited.headers["access-control-allow-origin"] == SITE
    assert limited.headers["access-control-expose-headers"] == "Retry-After"
    bad = api.post("/api/v1/reports", json={**REPORT, "contact": "nobody"}, headers={"Origin": SITE})
    assert bad.status_code == 422 and bad.headers["access-control-allow-origin"] == SITE
    huge = api.post(
        "/api/v1/reports",
        content=b'{"description": "' + b"x" * 2_000_000 + b'"}',
        headers={"Origin": SITE, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413 and huge.headers["access-control-allow-origin"] == SITE
    assert stored(context) == (1, 1)


def test_another_origin_gets_no_cors_headers(api: TestClient, context: AppContext) -> None:
    for origin in (OTHER, "https://www.acme.example.evil.example", "http://www.acme.example", "null"):
        answer = preflight(api, origin)
        assert answer.status_code == 405  # type: ignore[attr-defined]
        assert cors_headers(answer) == {}
    assert stored(context) == (0, 0)
    # A script is no browser: its report is taken, but no browser page of that origin could read the answer.
    sent = api.post("/api/v1/reports", json=REPORT, headers={"Origin": OTHER})
    assert sent.status_code == 202 and cors_headers(sent) == {}
    plain = api.post("/api/v1/reports", json=REPORT)  # no Origin: no CORS header either
    assert plain.status_code == 429 and cors_headers(plain) == {}


def test_only_the_public_form_takes_cross_origin_requests(api: TestClient, responder: dict[str, str]) -> None:
    """The internal route takes a token: no page of another site is let near it."""
    assert cors_headers(preflight(api, SITE, "/api/v1/reports/internal")) == {}
    assert preflight(api, SITE, "/api/v1/incidents").status_code == 405  # type: ignore[attr-defined]
    internal = api.post(
        "/api/v1/reports/internal", json={"description": "x"}, headers={**responder, "Origin": SITE}
    )
    assert internal.status_code == 202 and cors_headers(internal) == {}


def test_without_allowed_origins_nothing_changes(context: AppContext) -> None:
    context.org = with_reports(context.org, allowed_origins=[])
    app = create_app(context=context)
    with TestClient(app) as api:
        answer = preflight(api, SITE)
        assert answer.status_code == 405 and cors_headers(answer) == {}  # type: ignore[attr-defined]
        sent = api.post("/api/v1/reports", json=REPORT, headers={"Origin": SITE})
        assert sent.status_code == 202 and cors_headers(sent) == {}


def test_allowed_origins_are_origins() -> None:
    text = EXAMPLE_CONFIG.read_text()
    marker = "    severity: warning\n  retention:"
    assert marker in text

    def with_origins(origins: str) -> OrgConfig:
        return parse_org_config(
            text.replace(marker, f"    severity: warning\n    allowed_origins: {origins}\n  retention:")
        )

    # As browsers write Origin: lowercase, without the scheme's default port.
    org = with_origins("[HTTPS://WWW.Acme.Example:443, 'http://localhost:8000']")
    assert org.automation.reports.allowed_origins == ["https://www.acme.example", "http://localhost:8000"]
    for bad, says in [
        ("https://www.acme.example/", "no path"),
        ("https://www.acme.example/contact", "no path"),
        ("www.acme.example", "scheme://host[:port]"),
        ("'*'", "scheme://host[:port]"),
        ("ftp://files.acme.example", "scheme://host[:port]"),
    ]:
        with pytest.raises(ConfigError) as caught:
            with_origins(f"[{bad}]")
        [problem] = caught.value.problems
        assert problem.location.startswith("automation.reports.allowed_origins"), problem
        assert says in problem.message, problem.message
