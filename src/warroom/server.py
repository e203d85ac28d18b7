"""How ``warroom serve`` speaks HTTP: uvicorn's httptools protocol, plus time limits on reading a request.

Uvicorn closes a connection idle between requests (``timeout_keep_alive``) but waits for ever on a request
that has begun: a client that sends half its headers, or a body a byte a minute, holds a connection (a file
descriptor) as long as it likes, and enough of them leave the server none for anyone else. Here a request's
headers must arrive within ``http_header_timeout`` seconds of its first byte (or of the connection, for one
that says nothing), and its body within ``http_body_timeout`` seconds plus one per ``http_body_min_rate``
bytes received (Apache's mod_reqtimeout rule). Past either the client gets 408 and the connection is closed.

One timer per connection, re-armed only when it fires (on a busy connection, once per the shorter timeout): a
request costs two reads of the loop's clock, not a timer of its own.

A request whose URL is longer than httptools can parse gets 414, one whose header lines are over
``MAX_HEADER_BYTES`` 431, and one that is not HTTP at all 400, each in Warroom's JSON error shape (uvicorn
answers them all with a plain-text 400), and the connection is closed.

Header lines are counted as their bytes arrive, not only when httptools hands over a whole header: it keeps
the pieces of a header line until its end (copying them all again for each piece), so a single header sent
without end would otherwise be kept, and would stall the server, however large it grew.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from warroom.clock import clock
from warroom.errors import error_body
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

REQUEST_TIMEOUT = "request_timeout"


# The longest URL httptools can parse (its offsets are 16-bit): a longer one is answered 414.
MAX_URL_BYTES = 65_535
# A request's header lines ("name: value", CRLF) together: over it, 431. Far above what any sender's are
# (h11 takes 16 KiB for the whole head, nginx 32 KiB); httptools alone set no limit.
MAX_HEADER_BYTES = 65_536
# What a request's head takes besides its URL and header lines (method, version, CRLFs, whitespace around
# header values): the raw bytes of a head still arriving may be over MAX_HEADER_BYTES by this much.
HEAD_OVERHEAD_BYTES = 1024

URL_TOO_LONG = f"the URL is over {MAX_URL_BYTES} bytes"
HEADERS_TOO_LARGE = f"the request's headers are over {MAX_HEADER_BYTES} bytes together"
NOT_HTTP = "the request could not be read as HTTP/1.1"
# How long the rest of a request answered before it was all read is read and dropped (Apache's lingering
# close waits as long), so that the answer reaches the client rather than a reset.
LINGER_SECONDS = 2.0


class HeadRefused(Exception):
    """Raised in a parser callback to stop reading a request whose URL or headers are over the limit."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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
        self.header_bytes = 0
        # The raw bytes of the request head still arriving (0 while it is not known where in a chunk it
        # began), and how many requests began in the chunk being parsed.
        self.head_received = 0
        self.heads_begun = 0
        self.refused: HeadRefused | None = None
        self.answered_unread = False  # a request answered before it was all read: the rest is dropped
        self.linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_for = _SILENCE
        self.waiting_since = self.loop.time()
        self.read_timer = self.loop.call_later(self.limits.check_every, self._check_reading)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None
        if self.linger_timer is not None:
            self.linger_timer.cancel()
            self.linger_timer = None
        self.waiting_for = _NOTHING
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        if self.waiting_for == _NOTHING:  # in silence, the request is timed from the start of the silence
            self.waiting_since = self.loop.time()
        self.waiting_for = _HEADERS
        self.header_bytes = 0
        self.head_received = 0
        self.heads_begun += 1
        if self.read_timer is None:
            # A running timer fires within check_every (it is never armed for longer) and re-checks.
            self.read_timer = self.loop.call_later(self.limits.check_every, self._check_reading)

    def on_url(self, url: bytes) -> None:
        # Called for each piece of the URL as it arrives: never more than the limit is kept.
        if len(self.url) + len(url) > MAX_URL_BYTES:
            raise self._refuse(HeadRefused(HTTPStatus.REQUEST_URI_TOO_LONG, "uri_too_long", URL_TOO_LONG))
        HttpToolsProtocol.on_url(self, url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self.header_bytes > MAX_HEADER_BYTES:
            status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            raise self._refuse(HeadRefused(status, "headers_too_large", HEADERS_TOO_LARGE))
        HttpToolsProtocol.on_header(self, name, value)

    def _refuse(self, refused: HeadRefused) -> HeadRefused:
        """Note why the request is refused: the parser error the callback's exception becomes makes uvicorn
        answer it (``send_400_response``)."""
        self.refused = refused
        return refused

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser gave up on, in Warroom's JSON error shape: 414 or 431 for
        one over a limit here (logged), else 400 (uvicorn logs those itself). The connection is closed."""
        refused = self.refused
        if refused is None:
            status, code, message = HTTPStatus.BAD_REQUEST, "bad_request", NOT_HTTP
        else:
            status, code, message = refused.status, refused.code, refused.message
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
            log.warning("refused a request from %s: %s (%d)", client, message, status)
        self._answer_and_close(status, code, message)
        self.waiting_for = _NOTHING  # answered: no 408 after it

    def _answer_and_close(self, status: HTTPStatus, code: str, message: str) -> None:
        """Answer ``status`` in Warroom's JSON error shape, as the app answers errors, and close."""
        body = json.dumps(error_body(code, message), separators=(",", ":")).encode()
        head = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._close_after_answer()

    def _close_after_answer(self) -> None:
        """Close a connection answered before its request was all read. The client may still be sending (the
        rest of a long URL, a trickling body): closed with that unread, the connection would be reset, and
        the answer lost with it. So the answer is followed by the end of the stream, and what comes is read
        and dropped until the client closes, for LINGER_SECONDS at most."""
        self.answered_unread = True
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self.answered_unread:
            return
        waited_for = self.waiting_for
        self.heads_begun = 0
        HttpToolsProtocol.data_received(self, data)
        if self.waiting_for == _HEADERS and not self.answered_unread:
            self._count_head(data, waited_for)

    def _count_head(self, data: bytes, waited_for: int) -> None:
        """Count a chunk that ends inside a request's head, and refuse the request (431) once the head is
        over the limit: httptools has kept at most this one chunk more than the limit."""
        if self.heads_begun == 0:
            self.head_received += len(data)  # all of it is the head's
        elif self.heads_begun == 1 and waited_for in (_SILENCE, _NOTHING):
            self.head_received = len(data)  # the head began the chunk
        # else the head began after the end of an earlier request in the chunk, at an offset httptools does
        # not tell: counted from the next chunk (a chunk is at most the transport's read size).
        if self.head_received - len(self.url) > MAX_HEADER_BYTES + HEAD_OVERHEAD_BYTES:
            status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            self._refuse(HeadRefused(status, "headers_too_large", HEADERS_TOO_LARGE))
            self.send_400_response(HEADERS_TOO_LARGE)

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
        waited_for = self.waiting_for
        self.waiting_for = _NOTHING
        if answer:
            # The JSON error shape, as every other error (the 414 and 431 above): a client reads it alike.
            limits = self.limits
            if waited_for == _BODY:
                rate = f" plus 1 s per {limits.body_min_rate} bytes" if limits.body_min_rate else ""
                late = f"the request's body did not arrive within {limits.body_timeout:g} s{rate}"
            else:
                late = f"the request's headers did not arrive within {limits.header_timeout:g} s"
            self._answer_and_close(
                HTTPStatus.REQUEST_TIMEOUT, REQUEST_TIMEOUT, f"{late}; the connection is closed"
            )
        else:
            self.transport.close()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        drop_log.dropped(reason, client, self.limits, self.loop)


def http_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.run(http=...)``, with the settings' time limits."""

    class ConfiguredHttpProtocol(TimedHttpProtocol):
        limits = ReadLimits.from_settings(settings)

    return ConfiguredHttpProtocol
