"""Slow or stuck clients against the real server: a request that does not arrive in time gets 408 and its
connection is closed (WARROOM_HTTP_HEADER_TIMEOUT, WARROOM_HTTP_BODY_TIMEOUT, WARROOM_HTTP_BODY_MIN_RATE,
shortened here), while a well-behaved client keeps its keep-alive connection."""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG, require_peer
from tests.e2e.server import ServerProcess
from tests.peers import wait_until

pytestmark = pytest.mark.e2e

STUCK_HEADERS = b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"  # and then nothing


def read_to_end(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a bounded wait, not a timing claim)."""
    connection.settimeout(30)
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    return received


def send_slowly(connection: socket.socket, body: bytes, pieces: int, pause: float) -> bytes:
    """``body`` in ``pieces`` with ``pause`` seconds between them, stopping early if the server answers (or
    closes); then everything the server sends until it closes."""
    size = -(-len(body) // pieces)
    for start in range(0, len(body), size):
        if select.select([connection], [], [], pause)[0]:
            break
        try:
            connection.sendall(body[start : start + size])
        except OSError:  # closed under us: its answer is read below
            break
    return read_to_end(connection)


def request_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def test_headers_that_never_finish_are_cut_off_and_a_keep_alive_client_is_not(
    database_url: str, tmp_path: Path
) -> None:
    """QA's report: a connection sending ``POST … Host: x`` and then nothing was kept for ever. So was one
    that said nothing, and one answered before its body came (401 here: no key, which is checked first) that
    sent the body and then nothing: uvicorn's keep-alive timeout, armed at the answer, was cancelled by the
    body's bytes."""
    env = {"WARROOM_HTTP_HEADER_TIMEOUT": "1", "WARROOM_MAX_BODY_BYTES": "100"}
    with ServerProcess(
        database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path, extra_env=env
    ) as server:
        stuck = socket.create_connection(("127.0.0.1", server.port))
        stuck.sendall(STUCK_HEADERS)
        silent = socket.create_connection(("127.0.0.1", server.port))
        answered_early = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        answered_early.sendall(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n")
        refused = answered_early.recv(4096)
        assert refused.startswith(b"HTTP/1.1 401 ")
        answered_early.sendall(b"x" * 200)

        # Meanwhile a client asks every 0.3 s on one connection, for longer than the header limit: each
        # request's headers come at once, so its connection is kept.
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        client.connect()
        kept = client.sock
        for _ in range(8):
            client.request("GET", "/healthz")
            answer = client.getresponse()
            assert answer.status == 200
            answer.read()
            time.sleep(0.3)
        assert client.sock is kept  # never reconnected
        client.close()

        # The stuck request is answered 408 and closed; the connection that never said a word is closed.
        cut_off = read_to_end(stuck)
        assert cut_off.startswith(b"HTTP/1.1 408 ")
        assert b"connection: close" in cut_off.lower()
        assert read_to_end(silent) == b""
        # Closed, after the rest of the 401 if any; or reset, when the server closed it with the body unread.
        with contextlib.suppress(ConnectionResetError):
            read_to_end(answered_early)
        for connection in (stuck, silent, answered_early):
            connection.close()
        wait_until(lambda: "too slow to send a request" in server.log())
        assert "WARROOM_HTTP_HEADER_TIMEOUT" in server.log()


def test_a_body_that_trickles_is_answered_408(database_url: str, tmp_path: Path) -> None:
    """The intake's own body reader, the app's (the request guard) and a public form alike: a byte every
    0.1 s is slower than the minimum rate once the body's time is up."""
    env = {"WARROOM_HTTP_BODY_TIMEOUT": "1", "WARROOM_HTTP_BODY_MIN_RATE": "100"}
    with ServerProcess(
        database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path, extra_env=env
    ) as server:
        # PagerDuty's route: its key is in the body, so the intake reads the body first (a keyless request to
        # a route whose key is in the URL or headers is answered 401 before its body is read).
        for path in ("/v2/enqueue", "/api/v1/incidents", "/api/v1/reports"):
            with socket.create_connection(("127.0.0.1", server.port)) as slow:
                slow.sendall(request_head(path, 1000))
                answer = send_slowly(slow, b"x" * 1000, pieces=1000, pause=0.1)
            assert answer.startswith(b"HTTP/1.1 408 "), (path, answer)
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        wait_until(lambda: "1 body too slow" in server.log())
        assert "Traceback" not in server.log()


def test_the_408_reaches_a_client_that_was_still_sending(database_url: str, tmp_path: Path) -> None:
    """CI caught a trickling client whose next byte, sent as the 408 was on its way, reached a closed
    connection: the reset lost the answer. The 408 is now followed by the end of the stream, and what the
    client still sends is read and dropped for a while, as for a 414 or 431."""
    env = {"WARROOM_HTTP_BODY_TIMEOUT": "1", "WARROOM_HTTP_BODY_MIN_RATE": "100"}
    with ServerProcess(
        database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path, extra_env=env
    ) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as slow:
            slow.sendall(request_head("/v2/enqueue", 1000))  # its key is in the body: the body is read
            while not select.select([slow], [], [], 0.1)[0]:
                slow.sendall(b"x")
            for _ in range(3):  # bytes in flight when the answer came
                time.sleep(0.05)
                slow.sendall(b"x")
            answer = read_to_end(slow)
        assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_slow_body_that_keeps_the_minimum_rate_is_read(database_url: str, tmp_path: Path) -> None:
    """Past the body's time, each WARROOM_HTTP_BODY_MIN_RATE bytes received buy a second more: a report sent
    in three pieces over longer than the body's time is taken."""
    env = {"WARROOM_HTTP_BODY_TIMEOUT": "0.5", "WARROOM_HTTP_BODY_MIN_RATE": "100"}
    report = {
        "contact": "a@example.com",
        "description": "checkout fails " * 40,
        "affected_feature": "checkout",
    }
    body = json.dumps(report).encode()
    with (
        ServerProcess(
            database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path, extra_env=env
        ) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sender,
    ):
        sender.sendall(request_head("/api/v1/reports", len(body)))
        answer = send_slowly(sender, body, pieces=3, pause=0.4)
    assert answer.startswith(b"HTTP/1.1 202 "), answer


def test_stuck_connections_no_longer_use_up_the_file_limit(database_url: str, tmp_path: Path) -> None:
    """QA's report: stuck connections used up the server's file limit and /healthz timed out. With a limit of
    256 files and 300 stuck connections, /healthz answers again once they are cut off."""
    prlimit = shutil.which("prlimit")
    require_peer(prlimit is not None, "prlimit (util-linux) is not installed")
    assert prlimit is not None

    class LimitedServer(ServerProcess):
        def command(self) -> list[str]:
            return [prlimit, "--nofile=256:256", "--", *super().command()]

    env = {"WARROOM_HTTP_HEADER_TIMEOUT": "1"}
    with LimitedServer(
        database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path, extra_env=env
    ) as server:
        stuck = []
        for _ in range(300):
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            connection.sendall(STUCK_HEADERS)
            stuck.append(connection)
        try:
            wait_until(lambda: _healthy(server), timeout=60)
        finally:
            for connection in stuck:
                connection.close()


def _healthy(server: ServerProcess) -> bool:
    try:
        return httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
