"""The log of connections closed as too slow (warroom.server): one line at once, then at most one a minute
summing up the rest, so a client opening thousands cannot flood the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from warroom.clock import clock
from warroom.server import BODY_LATE, HEADERS_LATE, DropLog, ReadLimits

LIMITS = ReadLimits(header_timeout=10, body_timeout=20, body_min_rate=500)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()  # only holds the flush timer: never run
    clock.set(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    yield loop
    clock.reset()
    loop.close()


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "warroom.server"]


def test_the_first_drop_is_logged_and_the_rest_summed_up_a_minute_later(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    drops = DropLog()
    drops.dropped(HEADERS_LATE, "192.0.2.1:40000", LIMITS, loop)
    [first] = lines(caplog)
    assert "closed 1 connection(s)" in first and "192.0.2.1:40000" in first
    assert "headers within 10 s, a body within 20 s plus 1 s per 500 bytes" in first

    for number in range(1000):
        clock.advance(timedelta(milliseconds=10))
        drops.dropped(BODY_LATE if number % 10 == 0 else HEADERS_LATE, f"192.0.2.2:{number}", LIMITS, loop)
    assert len(lines(caplog)) == 1  # within the minute: counted, not logged
    assert drops.flush_timer is not None  # the sum is logged when the minute is up, even if none follow

    clock.advance(timedelta(seconds=51))
    drops.flush(LIMITS)  # as the timer does
    summed = lines(caplog)[-1]
    assert "closed 1000 connection(s)" in summed and "since 12:00:00" in summed
    assert "100 body too slow, 900 headers not complete in time" in summed
    assert "192.0.2.2:999" in summed

    drops.flush(LIMITS)  # nothing new: nothing logged
    assert len(lines(caplog)) == 2
    clock.advance(timedelta(minutes=5))
    drops.dropped(HEADERS_LATE, "192.0.2.3:1", LIMITS, loop)
    assert "closed 1 connection(s)" in lines(caplog)[-1]
