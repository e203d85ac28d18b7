"""Real peers for tests in every domain: free ports, bounded waits, an aiosmtpd SMTP server, a recording
HTTP server and a self-signed certificate. ``warroom serve`` itself is started by tests/e2e/server.py."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], object], timeout: float = 20.0, interval: float = 0.1) -> None:
    """Poll ``check()`` until it is truthy; a bounded wait for another process, not a timing claim."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


class MailSink:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        # address -> the SMTP answer that refuses it ("550 5.1.1 no such user"); the others are accepted.
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """The messages whose To header names ``address``."""
        return [m for m in self.messages if address in str(m["To"])]


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1:``port``; optionally requiring LOGIN, STARTTLS or implicit TLS, and
    offering SMTPUTF8 (aiosmtpd's default is not to)."""

    def __init__(
        self,
        port: int | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        smtputf8: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.sink = MailSink()
        self.logins: list[str] = []
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if username is not None:
            kwargs |= {"authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if implicit_tls is not None:
            kwargs.update(ssl_context=implicit_tls)
        self._credentials = (username, password)
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if (login, password) == self._credentials:
                self.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """A local HTTP server recording every request; ``fail(path, n, status)`` fails the next n (answering
    ``body``, by default ``nope``)."""

    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    failures: dict[str, list[tuple[int, dict[str, str], bytes]]] = field(default_factory=dict)
    holds: dict[str, tuple[threading.Event, threading.Event]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def fail(
        self,
        path: str,
        times: int,
        status: int = 500,
        headers: dict[str, str] | None = None,
        body: bytes = b"nope",
    ) -> None:
        with self.lock:
            self.failures.setdefault(path, []).extend([(status, headers or {}, body)] * times)

    def hold(self, path: str, entered: threading.Event, gate: threading.Event) -> None:
        """Requests to ``path`` set ``entered``, then wait for ``gate`` before answering."""
        self.holds[path] = (entered, gate)

    def to(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def start_recorder() -> Recorder:
    recorder: Recorder

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            hold = recorder.holds.get(self.path)
            if hold is not None:
                hold[0].set()
                hold[1].wait(30)
            with recorder.lock:
                recorder.requests.append(Request("POST", self.path, dict(self.headers.items()), body))
                pending = recorder.failures.get(self.path) or []
                status, headers, answer = pending.pop(0) if pending else (200, {}, b"ok")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder = Recorder(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return recorder


class SlowPeer:
    """A raw TCP server on 127.0.0.1 that answers slowly: ``converse(peer, connection)`` runs for each
    connection and sends with ``peer.trickle``, one byte every ``interval`` seconds. ``connected`` is set when
    a client connects; leaving the ``with`` block stops every trickle at once and hangs up."""

    def __init__(self, converse: Callable[[SlowPeer, socket.socket], None], interval: float) -> None:
        self.converse = converse
        self.interval = interval
        self.connected = threading.Event()
        self.taken: list[bytes] = []  # what it answered in full: request bodies, messages
        self._stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def trickle(self, connection: socket.socket, data: bytes) -> None:
        for byte in data:
            if self._stopped.wait(self.interval):
                raise ConnectionAbortedError("the slow peer was stopped")
            connection.sendall(bytes([byte]))

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connected.set()
            thread = threading.Thread(target=self._converse, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _converse(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(30)
            with contextlib.suppress(OSError):  # the client hung up, or the peer was stopped
                self.converse(self, connection)

    def __enter__(self) -> SlowPeer:
        self._threads[0].start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        for thread in list(self._threads):
            thread.join(10)
        self._listener.close()


def slow_http(peer: SlowPeer, connection: socket.socket) -> None:
    """Reads an HTTP request, then trickles ``200 OK``: status line, headers and body."""
    reader = connection.makefile("rb")
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = reader.read(length)
    peer.trickle(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    peer.taken.append(body)


def slow_smtp(peer: SlowPeer, connection: socket.socket) -> None:
    """An SMTP server that takes any message and trickles every reply: each line of a reply is short (8
    bytes), so no single wait for a byte, nor for one reply line, is long; the whole conversation is."""
    reader = connection.makefile("rb")
    peer.trickle(connection, b"220 ok\r\n")
    while line := reader.readline():
        command = line[:4].upper()
        if command in (b"EHLO", b"HELO"):
            peer.trickle(connection, b"250-ok\r\n" * 4 + b"250 ok\r\n")
        elif command == b"DATA":
            peer.trickle(connection, b"354 go\r\n")
            message = b""
            while (line := reader.readline()) not in (b".\r\n", b""):
                message += line
            peer.trickle(connection, b"250 ok\r\n")
            peer.taken.append(message)
        elif command == b"QUIT":
            peer.trickle(connection, b"221 ok\r\n")
            return
        else:
            peer.trickle(connection, b"250 ok\r\n")


def self_signed_certificate(directory: Any, host: str = "127.0.0.1") -> tuple[str, str] | None:
    """A certificate for ``host`` (an IP address or a DNS name) and its key, made with the openssl CLI; None
    when openssl is missing."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        return None
    cert, key = f"{directory}/cert.pem", f"{directory}/key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={host}", "-addext", f"subjectAltName={_san(host)}",
            "-keyout", key, "-out", cert,
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _san(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"
