"""A channel's ``timeout`` is the deadline of a whole delivery: connecting, sending, reading the full answer.

A timeout per socket wait does not bound a delivery: a peer that trickles its answer a byte at a time resets
it with every byte, and held a delivery slot (and a stopping worker) for minutes. Every channel that talks to
a peer runs under one ``Deadline``:

- HTTP (Slack, webhooks): the request runs under ``anyio.fail_after``, which cancels it wherever it waits
  (connecting, TLS, sending, the status line, the headers, the body), as httpx's maintainers advise for a
  total timeout; httpx's own timeouts only bound each wait.
- SMTP: ``DeadlineSMTP`` gives each wait on the server (the connection, the TLS handshake, each write, each
  read of a reply) only what is left of the deadline.

Past the deadline the delivery fails with ``DeliveryTimeout``, a ``TimeoutError``: retried with backoff like
any network error.
"""

from __future__ import annotations

import contextlib
import io
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio
import httpx

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

# What a wait started past the deadline is given: it ends at once (as a socket timeout) unless what it waits
# for has already arrived. Not 0, which would make a socket non-blocking.
_AT_ONCE = 0.001


class DeliveryTimeout(TimeoutError):
    """The peer did not take the message and answer in full within the channel's timeout."""


class Deadline:
    """``seconds`` from now, for everything a delivery to ``peer`` (as named in errors) waits on."""

    def __init__(self, seconds: float, peer: str) -> None:
        self.seconds = seconds
        self.peer = peer
        self._ends = time.monotonic() + seconds

    def left(self) -> float:
        """How long the next wait on the peer may take: what is left of the deadline (a millisecond once it
        has passed, so the wait times out unless its data is already there)."""
        return max(self._ends - time.monotonic(), _AT_ONCE)

    def timed_out(self) -> DeliveryTimeout:
        return DeliveryTimeout(
            f"{self.peer} did not take the message within the channel's timeout "
            f"({self.seconds:g}s for the whole delivery)"
        )

    @contextlib.contextmanager
    def kept(self) -> Iterator[None]:
        """Run the delivery's I/O: a wait cut short by the deadline fails as ``DeliveryTimeout``."""
        try:
            yield
        except DeliveryTimeout:
            raise
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise self.timed_out() from exc
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib reports a read or a write that timed out as the server hanging up.
            if isinstance(exc.__context__, TimeoutError):
                raise self.timed_out() from exc
            raise


def post(
    deadline: Deadline,
    url: str,
    *,
    content: bytes | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST, and read the whole answer, within ``deadline``."""

    async def request() -> httpx.Response:
        with anyio.fail_after(deadline.left()):
            async with httpx.AsyncClient(timeout=deadline.seconds) as client:
                return await client.post(url, content=content, json=json, headers=headers)

    with deadline.kept():
        try:
            return anyio.run(request)
        except httpx.ConnectError as exc:
            reason = why_not_connected(exc)
            if reason is None:
                raise
            raise httpx.ConnectError(reason, request=exc.request) from exc


def why_not_connected(exc: httpx.ConnectError) -> str | None:
    """Why a connection failed, as the synchronous client said it (``[Errno 111] Connection refused``): anyio
    says "All connection attempts failed", and keeps the reason of each attempt further down the chain."""
    link: BaseException | None = exc
    while link is not None:
        if isinstance(link, BaseExceptionGroup) and all(isinstance(e, OSError) for e in link.exceptions):
            return "; ".join(_os_error(e) for e in link.exceptions if isinstance(e, OSError))
        if isinstance(link, OSError) and link.errno:
            return _os_error(link)
        link = link.__cause__ or link.__context__
    return None


def _os_error(error: OSError) -> str:
    if error.errno and error.errno > 0:
        return f"[Errno {error.errno}] {os.strerror(error.errno)}"
    return str(error)  # a name that did not resolve: "[Errno -2] Name or service not known"


class DeadlineSMTP(smtplib.SMTP):
    """An SMTP connection to ``host``:``port`` whose every wait on the server ends by ``deadline``; with
    ``implicit_tls``, TLS from the start (what ``smtplib.SMTP_SSL`` does). ``starttls`` works as usual.

    smtplib funnels its I/O through three places, each given what is left of the deadline: ``_get_socket``
    (connecting, and the implicit TLS handshake), ``send`` (every command and the message) and the reader of
    ``getreply`` (each read of a reply, however slowly it comes)."""

    def __init__(
        self, host: str, port: int, *, deadline: Deadline, implicit_tls: ssl.SSLContext | None = None
    ) -> None:
        self._deadline = deadline
        self._implicit_tls = implicit_tls
        super().__init__(host, port, timeout=deadline.seconds)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), self._deadline.left(), self.source_address)
        if self._implicit_tls is None:
            return sock
        try:
            sock.settimeout(self._deadline.left())  # the socket's timeout bounds the whole handshake
            return self._implicit_tls.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def send(self, s: ReadableBuffer | str) -> None:
        if self.sock is not None:
            # A socket's timeout bounds a whole sendall. A socket that cannot take it (a failed STARTTLS left
            # it detached) fails in smtplib's own way, as the server hanging up.
            with contextlib.suppress(OSError):
                self.sock.settimeout(self._deadline.left())
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            # What smtplib would make (sock.makefile("rb")), reading within the deadline.
            self.file = io.BufferedReader(_DeadlineReader(self.sock, self._deadline))
        return super().getreply()


class _DeadlineReader(io.RawIOBase):
    """Reads from ``sock`` (plain or TLS), each read given what is left of ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        self._sock.settimeout(self._deadline.left())
        received = self._sock.recv_into(buffer)
        # Leave the socket with what is left: a wait smtplib starts on its own after a reply (the STARTTLS
        # handshake) ends by the deadline too.
        self._sock.settimeout(self._deadline.left())
        return received
