"""The long-running commands' logs name no secret that a library would log at INFO: httpx logged each
delivery's URL (a Slack or webhook URL is a credential, and so is a person's own contact URL), aiosmtpd each
SMTP command line (the recipient is an email integration's key)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import free_port
from warroom.cli import main
from warroom.cli.main import QUIET_LOGGERS, app

SECRET_URL = "https://hooks.slack.example/services/T000/B000/XOXSECRETTOKEN123"


@pytest.fixture
def library_loggers() -> Iterator[None]:
    """The quiet loggers as a fresh process has them (unset), and as they were after the test."""
    before = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def post_to_a_secret_url() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    with httpx.Client(transport=transport) as client:
        assert client.post(SECRET_URL, json={"text": "INC-1"}).status_code == 404


def test_serve_logs_no_url_of_a_delivery(
    library_loggers: None,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    uvicorn_not_run: list[Any],
) -> None:
    served = CliRunner().invoke(
        app,
        [
            *("serve", "--config", str(EXAMPLE_CONFIG), "--database-url", database_url, "--no-worker"),
            *("--port", str(free_port())),
        ],
    )
    assert served.exit_code == 0, served.output
    assert uvicorn_not_run and uvicorn_not_run[0].access_log is False  # uvicorn's access log: URLs with ?key=
    caplog.set_level(logging.INFO)
    post_to_a_secret_url()
    logging.getLogger("mail.log").info("%r >> %r", ("127.0.0.1", 5000), b"RCPT TO:<0123456789abcdef@x>")
    assert "XOXSECRETTOKEN123" not in caplog.text and "RCPT" not in caplog.text
    assert {name: logging.getLogger(name).getEffectiveLevel() for name in QUIET_LOGGERS} == dict.fromkeys(
        QUIET_LOGGERS, logging.WARNING
    )
    # Warroom's own lines are still logged.
    logging.getLogger("warroom.reload").info("org file reloaded")
    assert "org file reloaded" in caplog.text


def test_the_worker_logs_no_url_of_a_delivery(
    library_loggers: None, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    worked = CliRunner().invoke(app, ["worker", "--once", "--database-url", database_url])
    assert worked.exit_code == 0, worked.output
    caplog.set_level(logging.INFO)
    post_to_a_secret_url()
    assert "XOXSECRETTOKEN123" not in caplog.text
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING


def test_without_the_setup_httpx_would_log_the_url(
    library_loggers: None, caplog: pytest.LogCaptureFixture
) -> None:
    """What the two tests above guard against: httpx logs each request's URL at INFO."""
    caplog.set_level(logging.INFO)
    post_to_a_secret_url()
    assert "XOXSECRETTOKEN123" in caplog.text
    main.configure_logging("%(message)s")
    caplog.clear()
    post_to_a_secret_url()
    assert "XOXSECRETTOKEN123" not in caplog.text
