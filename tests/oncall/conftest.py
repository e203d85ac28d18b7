from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import SmtpServer
from warroom.client import Client
from warroom.notify.config import ConsoleChannel
from warroom.orgconfig import OrgConfig, load_org_config


@pytest.fixture
def org() -> OrgConfig:
    """The example org file, its email/slack/webhook channels turned into console ones so deliveries
    succeed without secrets (the SMTP tests point email at a real local server)."""
    base = load_org_config(EXAMPLE_CONFIG)
    channels = [
        ConsoleChannel(name=name, type="console") for name in ("email", "slack", "webhook", "console")
    ]
    return base.model_copy(update={"notification_channels": channels})


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free port; what it accepts is in ``smtp.sink``."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def oncall_cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """``warroom oncall …`` answered by the test app, as the responder."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client() -> Client:
        return Client(
            "http://warroom.test", tokens["responder"], transport=httpx.MockTransport(through_the_app)
        )

    monkeypatch.setattr("warroom.cli.oncall.Client", client)
    return CliRunner()
