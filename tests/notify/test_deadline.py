"""A channel's ``timeout`` bounds the whole delivery: connecting, sending and reading the full answer. Real
peers that trickle their answers (``tests.peers.SlowPeer``): before, each byte started the timeout again, so a
delivery held its slot, and a worker told to stop, for as long as the peer liked (a QA run: minutes)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sqlalchemy import select

from tests.notify.conftest import WEBHOOK_SECRET
from tests.notify.test_delivery import delivery, send
from tests.peers import SlowPeer, free_port, slow_http, slow_smtp
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
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

KINDS = ["webhook", "slack", "email"]
# How long a delivery with a 1 s timeout may take here: a bound for a loaded machine, not a measurement.
BOUND = 5.0


def slow_peer(kind: str, interval: float) -> SlowPeer:
    """A mail server or an HTTP server sending a byte every ``interval`` seconds. Trickling at 0.3 s, the
    HTTP answer takes 18 s; at 0.1 s each line of the mail server's replies takes 0.8 s, and the conversation
    9 s."""
    return SlowPeer(slow_smtp if kind == "email" else slow_http, interval)


def use_channel(context: AppContext, kind: str, port: int, timeout: float) -> tuple[str, str]:
    """Adds a channel named "slow" of ``kind`` sending to 127.0.0.1:``port``; its name and a recipient."""
    channel: ChannelConfig
    if kind == "email":
        settings = EmailSettings(
            host="127.0.0.1",
            port=port,
            security="none",
            from_address="incidents@acme.example",
            timeout=timeout,
        )
        channel = EmailChannel(name="slow", type="email", settings=settings)
    elif kind == "slack":
        channel = SlackChannel(
            name="slow",
            type="slack",
            settings=SlackSettings(url=f"http://127.0.0.1:{port}/", timeout=timeout),
        )
    else:
        channel = WebhookChannel(
            name="slow",
            type="webhook",
            settings=WebhookSettings(url=f"http://127.0.0.1:{port}/", secret=WEBHOOK_SECRET, timeout=timeout),
        )
    channels = [*context.org.notification_channels, channel]
    context.org = context.org.model_copy(update={"notification_channels": channels})
    return "slow", "oncall@acme.example" if kind == "email" else ""


def job_of(context: AppContext, delivery_id: int) -> Job:
    with context.db.read() as session:
        job = session.scalar(select(Job).where(Job.id == delivery(context, delivery_id).job_id))
        assert job is not None
        return job


def assert_retried_as_a_timeout(context: AppContext, delivery_id: int) -> None:
    failed = delivery(context, delivery_id)
    assert failed.status == DeliveryStatus.failed and failed.attempts == 1
    assert "within the channel's timeout (1s for the whole delivery)" in (failed.last_error or "")
    job = job_of(context, delivery_id)
    # Waiting for its retry, not left running to its lease (which would send it again after a stop).
    assert job.status == JobStatus.pending and job.lease_owner is None
    assert (job.last_error or "").startswith("DeliveryTimeout: ")


@pytest.mark.parametrize("kind", KINDS)
def test_a_peer_that_trickles_its_answer_fails_as_a_timeout_by_the_deadline(
    context: AppContext, kind: str
) -> None:
    with slow_peer(kind, interval=0.3 if kind != "email" else 0.1) as peer:
        channel, to = use_channel(context, kind, peer.port, timeout=1)
        delivery_id = send(context, channel=channel, to=to, template="test")
        attempt = threading.Thread(target=Worker(context, name="w").run_once)
        started = time.monotonic()
        attempt.start()
        attempt.join(BOUND)
        took, waiting = time.monotonic() - started, attempt.is_alive()
    attempt.join(30)  # the peer has stopped and hung up: an attempt still waiting on it ends now
    assert not waiting, f"the delivery still waited on the peer after {took:.1f}s"
    assert_retried_as_a_timeout(context, delivery_id)
    assert peer.taken == []


def test_a_worker_told_to_stop_during_a_trickling_delivery_waits_no_longer_than_the_deadline(
    context: AppContext,
) -> None:
    """SIGTERM sets the stop event: the worker finishes the delivery in hand, which now ends by its deadline,
    and the job waits for its retry. Before, the stop waited for the whole trickle (or, under ``warroom
    serve``, gave up after 30 s, leaving the job to its lease and the message to be sent again)."""
    with slow_peer("webhook", interval=0.3) as peer:
        channel, to = use_channel(context, "webhook", peer.port, timeout=1)
        delivery_id = send(context, channel=channel, to=to, template="test")
        stop = threading.Event()
        worker = threading.Thread(
            target=Worker(context, name="w", poll_interval=0.05).run_forever, args=(stop,)
        )
        worker.start()
        assert peer.connected.wait(10), "the webhook was never called"
        stop.set()
        started = time.monotonic()
        worker.join(BOUND)
        took, running = time.monotonic() - started, worker.is_alive()
    worker.join(30)
    assert not running, f"the worker still waited on the delivery {took:.1f}s after it was told to stop"
    assert_retried_as_a_timeout(context, delivery_id)


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_answer_that_ends_within_the_timeout_is_delivered(context: AppContext, kind: str) -> None:
    """Every byte comes 10 ms after the last: the whole answer within the timeout, however many waits."""
    with slow_peer(kind, interval=0.01) as peer:
        channel, to = use_channel(context, kind, peer.port, timeout=30)
        delivery_id = send(context, channel=channel, to=to, template="test")
        assert Worker(context, name="w").run_once() == 1
    sent = delivery(context, delivery_id)
    assert sent.status == DeliveryStatus.sent, sent.last_error
    assert len(peer.taken) == 1
    assert job_of(context, delivery_id).status == JobStatus.done


@pytest.mark.parametrize("kind", KINDS)
def test_a_peer_that_refuses_the_connection_is_named_as_such(context: AppContext, kind: str) -> None:
    """The HTTP channels' requests run in an event loop now, whose own words ("All connection attempts
    failed") would hide why: the error says it as before."""
    port = free_port()
    channel, to = use_channel(context, kind, port, timeout=5)
    delivery_id = send(context, channel=channel, to=to, template="test")
    # The port is held (bound, not listening): see test_email_is_delivered_after_smtp_comes_back.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        assert Worker(context, name="w").run_once() == 1
    failed = delivery(context, delivery_id)
    assert failed.status == DeliveryStatus.failed
    assert "Connection refused" in (failed.last_error or ""), failed.last_error


def test_a_stopping_server_waits_for_its_slowest_channel() -> None:
    """``warroom serve`` gives its worker 5 s more than the longest channel timeout (at least 30 s) to stop,
    so a delivery in hand ends by its deadline and is retried, instead of being left to its lease."""
    from warroom.notify.config import ConsoleChannel, longest_delivery_timeout

    assert longest_delivery_timeout([]) == 10.0
    assert longest_delivery_timeout([ConsoleChannel(name="console", type="console")]) == 10.0
    slow = WebhookChannel(name="ticketing", type="webhook", settings=WebhookSettings(timeout=90))
    quick = SlackChannel(name="slack", type="slack", settings=SlackSettings(timeout=3))
    assert longest_delivery_timeout([quick, slow]) == 90.0
