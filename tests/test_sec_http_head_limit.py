"""A header line sent without end is refused (431) once the request's head is over the limit, while the
client is still sending: httptools kept the pieces of an unfinished header line, so one client could send
megabytes of it (memory grew with it, and each piece re-copied all before it, stalling the server for every
other client) and got 431 only after it ended the line.

The real server's protocol and the real app, served by uvicorn on a Unix socket."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from pathlib import Path

from tests.test_contract_http_limits import exchange, get, served  # noqa: F401  (served: a fixture)
from warroom.server import MAX_HEADER_BYTES

PIECE = 8192


def test_an_endless_header_line_is_refused_while_it_is_still_being_sent(served: Path) -> None:  # noqa: F811
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(5)
        connection.connect(str(served))
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        began = time.monotonic()
        # The line is never ended: the answer must come while the client sends, not after.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 4_000_000 and not select.select([connection], [], [], 0.01)[0]:
                connection.sendall(b"A" * PIECE)
                sent += PIECE
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                received += chunk
    took = time.monotonic() - began
    assert received.startswith(b"HTTP/1.1 431 "), (sent, received[:200])
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"connection: close" in head and b"content-type: application/json" in head, head
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    # Answered once a little over the limit had come (what the sockets' buffers hold aside), in a moment.
    assert MAX_HEADER_BYTES < sent < MAX_HEADER_BYTES + 2_000_000, sent
    assert took < 3, took


def test_seventy_kib_of_unfinished_header_is_answered_431_without_the_end(served: Path) -> None:  # noqa: F811
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(5)
        connection.connect(str(served))
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"A" * (70 * 1024))
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]


def test_a_head_just_under_the_limit_sent_in_pieces_is_served(served: Path) -> None:  # noqa: F811
    # The raw count must not refuse what the header lines' count allows: pieces, many lines, a long URL.
    big = "X-Padding: " + "a" * (MAX_HEADER_BYTES - 200)
    request = get("/healthz?pad=" + "p" * 60_000, big)
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(10)
        connection.connect(str(served))
        for start in range(0, len(request), 1000):
            connection.sendall(request[start : start + 1000])
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 "), received[:200]
    many = [f"X-{number}: {number}" for number in range(MAX_HEADER_BYTES // 16)]
    assert exchange(served, get("/healthz", *many))[0] == 200
