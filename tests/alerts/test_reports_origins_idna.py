"""An allowed origin with a host in other letters than ASCII (``https://münchen.example``) is kept in the
IDNA (punycode) form browsers send in Origin (``https://xn--mnchen-3ya.example``). Before, the config check
took it as written and it could never match: the browser's preflight was answered 405."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import ReportsConfig
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config

WRITTEN = "https://münchen.example"
SENT = "https://xn--mnchen-3ya.example"  # what a browser on that site sends as Origin


@pytest.fixture
def org() -> OrgConfig:
    base = load_org_config(EXAMPLE_CONFIG)
    reports = ReportsConfig.model_validate(
        {**base.automation.reports.model_dump(), "allowed_origins": [WRITTEN]}
    )
    return base.model_copy(update={"automation": base.automation.model_copy(update={"reports": reports})})


def test_a_browser_on_a_site_with_a_non_ascii_name_gets_its_preflight(api: TestClient) -> None:
    answer = api.options(
        "/api/v1/reports",
        headers={
            "Origin": SENT,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert answer.status_code == 204, answer.text
    assert answer.headers["access-control-allow-origin"] == SENT


def with_origins(origins: str) -> OrgConfig:
    text = EXAMPLE_CONFIG.read_text()
    marker = "    severity: warning\n  retention:"
    assert marker in text
    return parse_org_config(
        text.replace(marker, f"    severity: warning\n    allowed_origins: {origins}\n  retention:")
    )


def test_the_config_keeps_hosts_as_browsers_send_them() -> None:
    org = with_origins(
        "['https://MÜNCHEN.example:443', 'https://straße.example:8443', 'https://xn--mnchen-3ya.example']"
    )
    # Mapped as browsers map them (UTS #46, not IDNA 2003's "strasse"); the same origin twice is kept once.
    assert org.automation.reports.allowed_origins == [SENT, "https://xn--strae-oqa.example:8443"]


def test_a_host_with_no_idna_form_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ConfigError) as caught:
        with_origins("['https://☃.example']")
    [problem] = caught.value.problems
    assert problem.location.startswith("automation.reports.allowed_origins"), problem
    assert "has no IDNA (punycode) form" in problem.message, problem.message
