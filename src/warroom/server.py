"""How ``warroom serve`` speaks HTTP: uvicorn's httptools protocol, plus time limits on reading a request.

Uvicorn closes a connection idle between requests (``timeout_keep_alive``) but waits for ever on a request
that has begun: a client that sends half its headers, or a body a byte a minute, holds a connection (a file
descriptor) as long as it likes, and enough of them leave the server none for anyone else. Here a request's
headers must arrive within ``http_header_timeout`` seconds of its first byte (or of the connection, for one
that says nothing), and its body within ``http_body_timeout`` seconds plus one per ``http_body_min_rate``
bytes received (Apache's mod_reqtimeout rule). Past either the client gets 408 and the connection is closed.

One timer per connection, re-armed only when it fires (on a busy connection, once per the shorter timeout): a
request costs two reads of the loop's clock, not a timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from warroom.clock import clock
from warroom.settings import Settings

log = logging.getLogger("warroom.server")

# What the connection is waiting for from its client.
_NOTHING = 0  # between requests (uvicorn's keep-alive timeout applies) or the request is all in
_SILENCE = 1  # no request, no keep-alive timeout: just connected, or answered before its body came
_HEADERS = 2
_BODY = 3

HEADERS_LATE = "headers not complete in time"
BODY_LATE = "body too slow"
SILENT = "no request"

_TIMEOUT_MESSAGE = b"The request did not arrive in time; the connection is closed.\n"
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n"
    b"\r\n%s" % (len(_TIMEOUT_MESSAGE), _TIMEOUT_MESSAGE)
)


@dataclass(frozen=True)
class ReadLimits:
    header_timeout: float
    body_timeout: float
    body_min_rate: int  # bytes/s; 0: the body has body_timeout, however large

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadLimits:
        return cls(settings.http_header_timeout, settings.http_body_timeout, settings.http_body_min_rate)

    @property
    def check_every(self) -> float:
        """The longest a connection's timer is armed for: no limit is checked later than it is due."""
        return min(self.header_timeout, self.body_timeout)

    def describe(self) -> str:
        rate = f" plus 1 s per {self.body_min_rate} bytes" if self.body_min_rate else ""
        return f"headers within {self.header_timeout:g} s, a body within {self.body_timeout:g} s{rate}"


class DropLog:
    """The log lines for connections closed as too slow: the first at once, then at most one per
    ``interval`` summing up those since (a client opening thousands must not flood the log)."""

    def __init__(self, interval: timedelta = timedelta(minutes=1)) -> None:
        self.interval = interval
        self.logged_at: datetime | None = None
        self.pending: Counter[str] = Counter()
        self.last_client = ""
        self.flush_timer: asyncio.TimerHandle | None = None

    def dropped(self, reason: str, client: str, limits: ReadLimits, loop: asyncio.AbstractEventLoop) -> None:
        self.pending[reason] += 1
        self.last_client = client
        now = clock.now()
        if self.logged_at is None or now - self.logged_at >= self.interval:
            self.flush(limits)
        elif self.flush_timer is None:
            wait = (self.logged_at + self.interval - now).total_seconds()
            self.flush_timer = loop.call_later(wait, self.flush, limits)

    def flush(self, limits: ReadLimits) -> None:
        self.flush_timer = None
        total = sum(self.pending.values())
        if not total:
            return
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.pending.items()))
        since = "" if self.logged_at is None else f" since {self.logged_at:%H:%M:%S}"
        log.warning(
            "closed %d connection(s) too slow to send a request%s (%s; last from %s): a client must send %s "
            "(WARROOM_HTTP_HEADER_TIMEOUT, WARROOM_HTTP_BODY_TIMEOUT, WARROOM_HTTP_BODY_MIN_RATE)",
            total,
            since,
            reasons,
            self.last_client,
            limits.describe(),
        )
        self.pending.clear()
        self.logged_at = clock.now()


drop_log = DropLog()


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request does not arrive in time."""

    limits: ClassVar[ReadLimits]  # set by http_protocol()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting_for = _NOTHING
        self.waiting_since = 0.0
        self.body_received = 0
        self.read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_for = _SILENCE
        self.waiting_since = self.loop.time()
        self.read_timer = self.loop.call_later(self.limits.check_every, self._check_reading)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None
        self.waiting_for = _NOTHING
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        if self.waiting_for == _NOTHING:  # in silence, the request is timed from the start of the silence
            self.waiting_since = self.loop.time()
        self.waiting_for = _HEADERS
        if self.read_timer is None:
            # A running timer fires within check_every (it is never armed for longer) and re-checks.
            self.read_timer = self.loop.call_later(self.limits.check_every, self._check_reading)

    def on_headers_complete(self) -> None:
        HttpToolsProtocol.on_headers_complete(self)
        self.waiting_for = _BODY
        self.waiting_since = self.loop.time()
        self.body_received = 0

    def on_body(self, body: bytes) -> None:
        self.body_received += len(body)
        HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        if self.cycle is not None and self.cycle.response_complete:
            # Answered before its body was all in: uvicorn armed its keep-alive timeout then, and the body's
            # bytes cancelled it. Timed here instead, or the connection would be kept for ever.
            self.waiting_for = _SILENCE
            self.waiting_since = self.loop.time()
            if self.read_timer is None:
                self.read_timer = self.loop.call_later(self.limits.check_every, self._check_reading)
        else:
            self.waiting_for = _NOTHING
        HttpToolsProtocol.on_message_complete(self)

    def _check_reading(self) -> None:
        self.read_timer = None
        if (
            self.waiting_for == _NOTHING
            or self.transport.is_closing()
            or self.transport.get_protocol() is not self
        ):
            return  # idle, closed, or handed over (a WebSocket upgrade)
        limits = self.limits
        now = self.loop.time()
        if self.waiting_for == _BODY:
            allowed = limits.body_timeout
            if limits.body_min_rate:
                allowed += self.body_received / limits.body_min_rate
        else:
            allowed = limits.header_timeout
        deadline = self.waiting_since + allowed
        if self.flow.read_paused:
            # The server's doing (a pipelined request waits its turn, or the app has yet to read the body
            # buffered so far), not the client's: look again later.
            wait = limits.check_every
        elif now < deadline:
            wait = min(deadline - now, limits.check_every)
        else:
            self._drop()
            return
        self.read_timer = self.loop.call_later(wait, self._check_reading)

    def _drop(self) -> None:
        cycle = self.cycle
        if self.waiting_for == _HEADERS:
            reason = HEADERS_LATE
            answer = cycle is None or cycle.response_complete  # not in the middle of an earlier response
        elif self.waiting_for == _BODY:
            reason = BODY_LATE
            answer = not cycle.response_started
        else:  # silent: closed as an idle keep-alive connection is, without a word
            reason = SILENT
            answer = False
        if cycle is not None and not cycle.response_complete:
            # The app's receive() says the client is gone, and what it still sends is dropped (as on a
            # client's own hang-up), at once: nothing may be written after the 408.
            cycle.disconnected = True
            cycle.message_event.set()
        if answer:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()
        self.waiting_for = _NOTHING
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        drop_log.dropped(reason, client, self.limits, self.loop)


def http_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.run(http=...)``, with the settings' time limits."""

    class ConfiguredHttpProtocol(TimedHttpProtocol):
        limits = ReadLimits.from_settings(settings)

    return ConfiguredHttpProtocol
