"""A channel's ``timeout`` is the deadline of a whole delivery: connecting, sending, reading the full answer.

A timeout per socket wait does not bound a delivery: a peer that trickles its answer a byte at a time resets
it with every byte, and held a delivery slot (and a stopping worker) for minutes. Every channel that talks to
a peer runs under one ``Deadline``:

- HTTP (Slack, webhooks): the request runs under ``anyio.fail_after``, which cancels it wherever it waits
  (looking the host up, connecting, TLS, sending, the status line, the headers, the body), as httpx's
  maintainers advise for a total timeout; httpx's own timeouts only bound each wait.
- SMTP: ``DeadlineSMTP`` gives each wait on the server (looking its name up, the connection, the TLS
  handshake, each write, each read of a reply) only what is left of the deadline.

Looking a name up (``getaddrinfo``) cannot be interrupted: a resolver that does not answer holds the thread
asking for as long as its own timeouts (and retries) last. Lookups therefore run in threads of their own
(``_LookupThreads``), which a delivery stops waiting for at its deadline and nothing waits for after it.

Past the deadline the delivery fails with ``DeliveryTimeout``, a ``TimeoutError``: retried with backoff like
any network error.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

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

    def timed_out(self, waiting_for: str = "") -> DeliveryTimeout:
        """The delivery's timeout; ``waiting_for`` says what it was waiting for, if not the peer itself."""
        return DeliveryTimeout(
            f"{self.peer} did not take the message within the channel's timeout "
            f"({self.seconds:g}s for the whole delivery){f', {waiting_for}' if waiting_for else ''}"
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
        # The loop looks names up in its default executor, which ``anyio.run`` waits for as it ends: a lookup
        # the deadline cancelled would hold the delivery until the resolver gave up.
        asyncio.get_running_loop().set_default_executor(_lookups)
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


_P = ParamSpec("_P")
_T = TypeVar("_T")


class _LookupThreads(ThreadPoolExecutor):
    """Runs each call (a name lookup) in a daemon thread of its own, which nothing waits for: not a delivery
    past its deadline, not an event loop closing (``shutdown`` returns at once), not a process exiting. A
    lookup left behind ends when the resolver answers or gives up. (A ``ThreadPoolExecutor`` only because an
    event loop's default executor must be one; its pool is never used.)"""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, name="name-lookup", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


_lookups = _LookupThreads()


def connect(deadline: Deadline, host: str, port: int, source_address: Any = None) -> socket.socket:
    """``socket.create_connection`` within ``deadline``: the lookup of ``host`` included, then each address
    it gave in turn (the last one's error if none takes the connection)."""
    lookup = _lookups.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        addresses = lookup.result(timeout=deadline.left())
    except TimeoutError:
        raise deadline.timed_out(f"looking up {host}") from None
    except socket.gaierror as exc:
        raise _naming(exc, f"looking up {host}") from None
    error: OSError | None = None
    for family, kind, protocol, _, address in addresses:
        sock = socket.socket(family, kind, protocol)
        try:
            sock.settimeout(deadline.left())
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    if error is None:
        raise OSError(f"{host} has no address")
    # "[Errno 111] Connection refused" alone does not say which server: a worker without WARROOM_SMTP_HOST
    # tries localhost:25, and its log and notify list said only that.
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    raise _naming(error, f"connecting to {server}") from None


def _naming(error: OSError, doing: str) -> OSError:
    """``error`` as the same kind of error, its message saying what was being done (``connecting to
    mail.example.com:25``); as it is when it has no error number (a timeout, said by the deadline)."""
    if error.errno is None or error.strerror is None:
        return error
    try:
        return type(error)(error.errno, f"{error.strerror}, {doing}")
    except TypeError:  # a kind of OSError that is not made so
        return error


_own_name: Future[str] | None = None
_own_name_lock = threading.Lock()


def own_name(deadline: Deadline, sock: socket.socket) -> str:
    """What this machine calls itself in EHLO: its full name (``socket.getfqdn()``, as smtplib finds it, a
    lookup too), looked up once per process and waited for at most a second of the deadline. Without one (no
    dot in it, or no answer yet) the connection's own address, as a literal (``[192.0.2.7]``, RFC 5321),
    where smtplib would look up the host's name again."""
    global _own_name
    with _own_name_lock:
        if _own_name is None or (_own_name.done() and _own_name.exception() is not None):
            _own_name = _lookups.submit(socket.getfqdn)
        lookup = _own_name
    try:
        name = lookup.result(timeout=min(deadline.left(), 1.0))
    except Exception:
        name = ""
    if "." in name:
        return name
    address = str(sock.getsockname()[0])
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


class DeadlineSMTP(smtplib.SMTP):
    """An SMTP connection to ``host``:``port`` whose every wait on the server ends by ``deadline``; with
    ``implicit_tls``, TLS from the start (what ``smtplib.SMTP_SSL`` does). ``starttls`` works as usual.

    smtplib funnels its I/O through three places, each given what is left of the deadline: ``_get_socket``
    (looking the server up, connecting, and the implicit TLS handshake), ``send`` (every command and the
    message) and the reader of ``getreply`` (each read of a reply, however slowly it comes). The name it gives
    itself is ``own_name``'s, not smtplib's own lookup."""

    def __init__(
        self, host: str, port: int, *, deadline: Deadline, implicit_tls: ssl.SSLContext | None = None
    ) -> None:
        self._deadline = deadline
        self._implicit_tls = implicit_tls
        # Connected here rather than by smtplib's constructor, which then looks this machine's name up with
        # no bound (a name set now keeps it from that; the real one is set below).
        super().__init__(local_hostname="localhost", timeout=deadline.seconds)
        self._host = host  # the server's name for STARTTLS, as smtplib's constructor would keep it
        try:
            code, message = self.connect(host, port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, message)
            assert self.sock is not None
            self.local_hostname = own_name(deadline, self.sock)
        except BaseException:
            self.close()
            raise

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = connect(self._deadline, host, port, self.source_address)
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
