from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import Recorder, free_port, start_recorder
from warroom.notify.config import (
    ConsoleChannel,
    EmailChannel,
    EmailSettings,
    SlackChannel,
    SlackSettings,
    TemplateOverride,
    WebhookChannel,
    WebhookSettings,
)
from warroom.orgconfig import OrgConfig, load_org_config

WEBHOOK_SECRET = "correct horse battery staple"


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = start_recorder()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


@pytest.fixture
def org(smtp_port: int, recorder: Recorder) -> OrgConfig:
    """The example org file with its channels pointed at local peers."""
    base = load_org_config(EXAMPLE_CONFIG)
    channels = [
        EmailChannel(
            name="email",
            type="email",
            to="updates@acme.example",
            settings=EmailSettings(
                host="127.0.0.1",
                port=smtp_port,
                security="none",
                from_address="Acme Incidents <incidents@acme.example>",
                timeout=5,
            ),
        ),
        SlackChannel(name="slack", type="slack", settings=SlackSettings(url=recorder.url("/slack"))),
        WebhookChannel(
            name="ops-webhook",
            type="webhook",
            settings=WebhookSettings(
                url=recorder.url("/hook"), secret=WEBHOOK_SECRET, headers={"X-Team": "ops"}
            ),
        ),
        ConsoleChannel(
            name="console",
            type="console",
            templates={"test": TemplateOverride(subject="Console check for {{ organization }}")},
        ),
    ]
    # These tests count notification jobs; paging (which adds its own) is tested in tests/oncall.
    paging_off = {level.id: "none" for level in base.severities}
    return base.model_copy(update={"notification_channels": channels, "paging_modes": paging_off})
