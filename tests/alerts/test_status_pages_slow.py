"""A slow vendor status page must not hold up pages: a poll reads within a deadline and no further than its
byte cap, and polls take at most their share of the worker's network slots.

QA pointed four pages at a server that trickled one byte a second for 150 s: every network slot held a poll
for the whole 150 s (httpx's timeout bounds each socket wait, not the request), and pages due meanwhile were
delivered up to 2.5 minutes late."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from tests.alerts.test_source_ack import run_at
from tests.alerts.test_status_pages import vendor_incident
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import status_pages
from warroom.alerts.config import AutomationConfig, StatusPageConfig
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify.service import DELIVER_JOB
from warroom.orgconfig import OrgConfig, load_org_config

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class SlowVendor:
    """A status page that answers a valid incident list, ``pause`` seconds per byte (``trickle``), or that
    sends ``flood`` bytes at once and then keeps the connection open without finishing (until closed)."""

    def __init__(self) -> None:
        self.pause = 0.05
        self.flood: int | None = None
        self.released = threading.Event()
        self.body = json.dumps({"page": {"id": "p1"}, "incidents": [vendor_incident(1)]}).encode()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    if vendor.flood is not None:
                        self.send_response(200)
                        self.end_headers()  # no length: the body goes on until the connection ends
                        self.wfile.write(b" " * vendor.flood)
                        vendor.released.wait(30)
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(vendor.body)))
                    self.end_headers()
                    for byte in vendor.body:
                        if vendor.released.wait(vendor.pause):
                            return
                        self.wfile.write(bytes([byte]))
                except OSError:
                    pass  # the poll gave up and hung up

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vendor() -> Iterator[SlowVendor]:
    page = SlowVendor()
    yield page
    page.close()


def with_pages(url: str, *names: str) -> OrgConfig:
    base = load_org_config(EXAMPLE_CONFIG)
    pages = [
        StatusPageConfig(name=name, url=url, interval=timedelta(seconds=30), maintenance_severity=None)
        for name in names
    ]
    automation = AutomationConfig.model_validate(
        {**base.automation.model_dump(), "status_pages": [page.model_dump() for page in pages]}
    )
    return base.model_copy(update={"automation": automation})


@pytest.fixture
def org(vendor: SlowVendor) -> OrgConfig:
    return with_pages(vendor.url, "github")


def polls(context: AppContext) -> list[Job]:
    with context.db.read() as session:
        return list(
            session.scalars(select(Job).where(Job.kind == status_pages.POLL_KIND).order_by(Job.id)).all()
        )


def test_a_trickling_page_is_given_up_at_the_deadline(
    context: AppContext, vendor: SlowVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is a valid incident list, sent a byte at a time: each byte comes well within any per-read
    timeout, but the whole takes longer than the poll's deadline. The poll gives up, raises nothing, and
    the next poll is scheduled as after any unreadable page."""
    monkeypatch.setattr(status_pages, "DEADLINE_SECONDS", 0.3)
    clock.set(T0)
    with context.db.write() as session:
        status_pages.schedule_polls(session, context.org)
    run_at(Worker(context, name="w1"), T0)
    done, following = polls(context)
    url = f"{vendor.url}/api/v2/incidents/unresolved.json"
    assert (done.status, done.result) == (
        JobStatus.done,
        {"error": f"{url} did not answer in full within 0.3s"},
    )
    assert following.status == JobStatus.pending and following.run_at == T0 + timedelta(seconds=30)
    with context.db.read() as session:
        assert session.scalars(select(Alert)).all() == []


def test_reading_stops_at_the_byte_cap(
    context: AppContext, vendor: SlowVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that answers more than the cap and goes on: the poll stops reading at the cap (it kept all of
    it in memory, and waited for the end, before checking)."""
    monkeypatch.setattr(status_pages, "MAX_RESPONSE_BYTES", 1000)
    vendor.flood = 5000
    page = context.org.automation.status_pages[0]
    with pytest.raises(ValueError, match="answered more than 1000 bytes"):
        status_pages.fetch(page)


def test_a_host_lookup_that_hangs_is_given_up_at_the_deadline(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resolver that does not answer: the poll ends at its deadline, without waiting for the lookup."""
    monkeypatch.setattr(status_pages, "DEADLINE_SECONDS", 0.3)
    released, looked_up = threading.Event(), threading.Event()
    resolve = socket.getaddrinfo

    def hanging(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("status.vendor.invalid", b"status.vendor.invalid"):
            return resolve(host, *args, **kwargs)
        released.wait(30)
        looked_up.set()
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    page = StatusPageConfig(name="vendor", url="http://status.vendor.invalid", maintenance_severity=None)
    try:
        with pytest.raises(ValueError, match=r"did not answer in full within 0\.3s"):
            status_pages.fetch(page)
        assert not looked_up.is_set()  # the poll did not wait for the lookup to end
    finally:
        released.set()


def test_polls_leave_network_slots_to_pages(context: AppContext, vendor: SlowVendor) -> None:
    """Four pages are due, then a page to a person: a worker with four network slots takes two polls (the
    polls' peer limit) and the delivery. Before, the four polls took every slot and the page waited for the
    slowest vendor."""
    context.org = with_pages(vendor.url, "github", "stripe", "atlassian", "twilio")
    clock.set(T0)
    with context.db.write() as session:
        assert status_pages.schedule_polls(session, context.org) == 4
        jobs_service.enqueue(
            session,
            kind=DELIVER_JOB,
            payload={},
            run_at=T0 + timedelta(seconds=1),
            peer="hooks.example.com",
        )
    assert {job.peer for job in polls(context)} == {status_pages.POLL_PEER}
    clock.set(T0 + timedelta(seconds=2))
    lane = Worker(context, name="w", concurrency=4).in_lane("network")
    claimed = lane._claim(limit=4, in_flight=Tally())
    with context.db.read() as session:
        kinds = Tally(session.scalars(select(Job.kind).where(Job.id.in_([job_id for job_id, _ in claimed]))))
    assert kinds == {status_pages.POLL_KIND: 2, DELIVER_JOB: 1}


def test_the_next_poll_keeps_the_peer(context: AppContext, vendor: SlowVendor) -> None:
    vendor.pause = 0
    clock.set(T0)
    with context.db.write() as session:
        status_pages.schedule_polls(session, context.org)
    run_at(Worker(context, name="w1"), T0)
    assert [(job.status, job.peer) for job in polls(context)] == [
        (JobStatus.done, status_pages.POLL_PEER),
        (JobStatus.pending, status_pages.POLL_PEER),
    ]
