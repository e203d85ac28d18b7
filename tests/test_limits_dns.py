"""A channel's ``timeout`` bounds the lookup of its peer's name too. Before, SMTP resolved the mail server's
name with a blocking ``getaddrinfo`` before the deadline applied to anything, and the HTTP channels' request
was cancelled at the deadline but ``anyio.run`` then waited for the event loop's resolver thread: a resolver
that never answers held the delivery (its slot, and a worker told to stop) for as long as it took.

The machine's resolver cannot be pointed at a test server (glibc asks the ``nameserver`` of resolv.conf, on
port 53), so the resolver is the one part replaced here: ``socket.getaddrinfo`` for names under
``hangs.test`` waits until the test ends, and for names under ``slow.test`` answers 127.0.0.1 after a moment
(and ``socket.getfqdn``, which smtplib called to name this machine, hangs in one test). Everything else is
real: the worker, the channels, the peers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.notify.conftest import WEBHOOK_SECRET
from tests.notify.test_deadline import BOUND, KINDS, job_of, slow_peer
from tests.notify.test_delivery import delivery, send
from tests.peers import MailSink, free_port
from warroom.context import AppContext
from warroom.jobs.models import JobStatus
from warroom.jobs.worker import Worker
from warroom.notify import deadline as deadlines
from warroom.notify.config import (
    ChannelConfig,
    EmailChannel,
    EmailSettings,
    SlackChannel,
    SlackSettings,
    WebhookChannel,
    WebhookSettings,
)
from warroom.notify.models import DeliveryStatus

SLOW_ANSWER = 0.3  # seconds the resolver takes for a name under slow.test


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names looked up under the test domains, in order."""
    real = socket.getaddrinfo
    asked: list[str] = []
    done = threading.Event()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.endswith(".hangs.test"):
            asked.append(name)
            done.wait(120)  # a resolver that never answers
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if name.endswith(".slow.test"):
            asked.append(name)
            time.sleep(SLOW_ANSWER)
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield asked
    done.set()


def use_channel(context: AppContext, kind: str, host: str, port: int, timeout: float) -> tuple[str, str]:
    """Adds a channel named "named" of ``kind`` sending to ``host``:``port``; its name and a recipient."""
    channel: ChannelConfig
    if kind == "email":
        settings = EmailSettings(
            host=host, port=port, security="none", from_address="incidents@acme.example", timeout=timeout
        )
        channel = EmailChannel(name="named", type="email", settings=settings)
    elif kind == "slack":
        channel = SlackChannel(
            name="named", type="slack", settings=SlackSettings(url=f"http://{host}:{port}/", timeout=timeout)
        )
    else:
        channel = WebhookChannel(
            name="named",
            type="webhook",
            settings=WebhookSettings(url=f"http://{host}:{port}/", secret=WEBHOOK_SECRET, timeout=timeout),
        )
    channels = [*context.org.notification_channels, channel]
    context.org = context.org.model_copy(update={"notification_channels": channels})
    return "named", "oncall@acme.example" if kind == "email" else ""


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_that_never_resolves_fails_by_the_channels_deadline(
    context: AppContext, kind: str, resolver: list[str]
) -> None:
    host = f"{kind}.hangs.test"
    channel, to = use_channel(context, kind, host, 2525, timeout=1)
    delivery_id = send(context, channel=channel, to=to, template="test")
    attempt = threading.Thread(target=Worker(context, name="w").run_once, daemon=True)
    started = time.monotonic()
    attempt.start()
    attempt.join(BOUND)
    took = time.monotonic() - started
    assert not attempt.is_alive(), f"the delivery still waited on the resolver after {took:.1f}s"
    assert resolver == [host]
    failed = delivery(context, delivery_id)
    assert failed.status == DeliveryStatus.failed and failed.attempts == 1
    assert "within the channel's timeout (1s for the whole delivery)" in (failed.last_error or "")
    if kind == "email":  # said where it waited (the HTTP client's own lookup is not told apart)
        assert f"looking up {host}" in (failed.last_error or ""), failed.last_error
    job = job_of(context, delivery_id)
    assert job.status == JobStatus.pending and job.lease_owner is None  # retried with backoff
    assert (job.last_error or "").startswith("DeliveryTimeout: ")


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_resolved_within_the_deadline_is_delivered_to_its_address(
    context: AppContext, kind: str, resolver: list[str]
) -> None:
    """The lookup's time counts against the deadline; the connection goes to the address it found."""
    with slow_peer(kind, interval=0.01) as peer:
        channel, to = use_channel(context, kind, f"{kind}.slow.test", peer.port, timeout=30)
        delivery_id = send(context, channel=channel, to=to, template="test")
        assert Worker(context, name="w").run_once() == 1
    sent = delivery(context, delivery_id)
    assert sent.status == DeliveryStatus.sent, sent.last_error
    assert resolver == [f"{kind}.slow.test"]
    assert len(peer.taken) == 1


class EhloNames(MailSink):
    """Keeps the name each client gave itself (EHLO) with its message."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.names.append(session.host_name)
        return await super().handle_DATA(server, session, envelope)


def test_email_goes_out_while_this_machines_own_name_does_not_resolve(
    context: AppContext, resolver: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """smtplib names the machine in EHLO by looking its name up (``getfqdn``), with no bound either: the
    delivery waited for that lookup too. Now it waits a second at most, then says the connection's address."""
    answer = threading.Event()

    def getfqdn(name: str = "") -> str:
        answer.wait(60)
        return "late.acme.example"

    monkeypatch.setattr(socket, "getfqdn", getfqdn)
    monkeypatch.setattr(deadlines, "_own_name", None)  # not what an earlier test found
    sink = EhloNames()
    # Named, or the server would look its own name up with the same getfqdn.
    server = Controller(sink, hostname="127.0.0.1", port=free_port(), server_hostname="mail.acme.example")
    server.start()
    try:
        channel, to = use_channel(context, "email", "mail.slow.test", server.port, timeout=5)
        delivery_id = send(context, channel=channel, to=to, template="test")
        attempt = threading.Thread(target=Worker(context, name="w").run_once, daemon=True)
        started = time.monotonic()
        attempt.start()
        attempt.join(BOUND)
        took = time.monotonic() - started
        assert not attempt.is_alive(), f"the delivery still waited on the lookup after {took:.1f}s"
    finally:
        answer.set()
        attempt.join(30)
        server.stop()
    sent = delivery(context, delivery_id)
    assert sent.status == DeliveryStatus.sent, sent.last_error
    assert sink.names == ["[127.0.0.1]"]
