from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import SmtpServer
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
