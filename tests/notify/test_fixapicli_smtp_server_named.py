"""A mail server that refuses the connection is named in the delivery's error (host:port), as a lookup that
does not answer is (``…, looking up mail.example.com``): a worker without WARROOM_SMTP_HOST falls back to
localhost:25, and ``warroom worker``'s log and ``notify list`` said only ``ConnectionRefusedError: [Errno 111]
Connection refused``, eight times over."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.notify.test_delivery import delivery, notification_entries, open_incident, send
from tests.peers import free_port
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.notify.config import EmailChannel, EmailSettings
from warroom.notify.models import DeliveryStatus
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings

REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused, connecting to"


def _refused_once(context: AppContext, port: int, channel: str) -> tuple[str, str]:
    """The delivery's error and its timeline entry after one attempt at a closed ``port``."""
    incident_id = open_incident(context)
    delivery_id = send(
        context, channel=channel, to="oncall@acme.example", template="test", incident_id=incident_id
    )
    # Held (bound, not listening): refused, and no client can take it as its own local port meanwhile.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        assert Worker(context, name="w").run_once() == 1
    failed = delivery(context, delivery_id)
    assert failed.status == DeliveryStatus.failed and failed.last_error is not None
    [entry] = notification_entries(context, incident_id)
    return failed.last_error, entry.action


def test_the_channels_mail_server_is_named(context: AppContext, smtp_port: int) -> None:
    error, action = _refused_once(context, smtp_port, "email")
    assert error == f"{REFUSED} 127.0.0.1:{smtp_port}", error
    assert f"connecting to 127.0.0.1:{smtp_port}" in action, action


@pytest.fixture
def fallback_port() -> int:
    return free_port()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fallback_port: int) -> Settings:
    """WARROOM_SMTP_HOST and _PORT as a worker would have them, for a channel that names no server."""
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        config=EXAMPLE_CONFIG,
        run_worker=False,
        smtp_host="localhost",
        smtp_port=fallback_port,
    )


@pytest.fixture
def org(org: OrgConfig) -> OrgConfig:
    bare = EmailChannel(name="bare-email", type="email", settings=EmailSettings(security="none", timeout=5))
    return org.model_copy(update={"notification_channels": [*org.notification_channels, bare]})


def test_the_fallback_mail_server_is_named(context: AppContext, fallback_port: int) -> None:
    error, _ = _refused_once(context, fallback_port, "bare-email")
    assert error == f"{REFUSED} localhost:{fallback_port}", error
