"""A request the HTTP layer refuses before the app sees it is answered in Warroom's JSON error shape with its
proper status, and logged: a URL longer than httptools can parse (414), header lines over the limit (431;
there was none), a request that is not HTTP (400). uvicorn answered the first and the last with a plain-text
400 "Invalid HTTP request received.", and took headers of any size.

The real server's protocol (``server.http_protocol``) and the real app, served by uvicorn on a Unix socket."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.peers import wait_until
from warroom import server
from warroom.app import create_app
from warroom.context import AppContext
from warroom.server import MAX_HEADER_BYTES, MAX_URL_BYTES


@pytest.fixture
def served(context: AppContext, tmp_path: Path) -> Iterator[Path]:
    """The app served as ``warroom serve`` serves it, on a Unix socket: its path."""
    path = tmp_path / "warroom.sock"
    config = uvicorn.Config(
        create_app(context=context),
        uds=str(path),
        http=server.http_protocol(context.settings),
        log_level="warning",
        access_log=False,
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_until(lambda: running.started)
    yield path
    running.should_exit = True
    thread.join(timeout=30)


def exchange(path: Path, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a new connection; the status, headers and body of the answer, read to the close."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(30)
        connection.connect(str(path))
        # Answered and closed before all of it was sent: the answer is there all the same.
        with contextlib.suppress(BrokenPipeError):
            connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def get(target: str, *headers: str) -> bytes:
    return "\r\n".join([f"GET {target} HTTP/1.1", "Host: x", *headers, "Connection: close", "", ""]).encode()


def refusal(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> str:
    """The answer is ``status`` in Warroom's error shape with ``code``, and closes the connection; its
    message."""
    got, headers, body = answer
    assert got == status, (got, body[:300])
    assert headers["content-type"] == "application/json" and headers["connection"] == "close", headers
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code and error["details"] is None, error
    message: str = error["message"]
    return message


def test_a_url_or_headers_over_the_limit_are_refused_in_the_json_shape(
    served: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="warroom.server")
    query = "/healthz?pad="
    longest = query + "a" * (MAX_URL_BYTES - len(query))
    served_at_the_limit = exchange(served, get(longest))
    assert served_at_the_limit[0] not in (400, 414), served_at_the_limit  # the app's answer
    too_long = exchange(served, get(longest + "a"))
    assert str(MAX_URL_BYTES) in refusal(too_long, 414, "uri_too_long")
    # A URL of any length: what is over the limit is not kept.
    assert refusal(exchange(served, get(query + "a" * 1_000_000)), 414, "uri_too_long")

    big = "X-Padding: " + "a" * (MAX_HEADER_BYTES - 200)
    assert exchange(served, get("/healthz", big))[0] == 200
    too_large = exchange(served, get("/healthz", big, "X-More: " + "b" * 400))
    assert str(MAX_HEADER_BYTES) in refusal(too_large, 431, "headers_too_large")
    many = [f"X-{number}: {number}" for number in range(MAX_HEADER_BYTES // 10)]
    refusal(exchange(served, get("/healthz", *many)), 431, "headers_too_large")

    refusal(exchange(served, b"NOT HTTP AT ALL\r\n\r\n"), 400, "bad_request")
    said = [r.getMessage() for r in caplog.records if r.name == "warroom.server"]
    assert len(said) == 4 and all("refused a request from" in line for line in said), said
    assert "(414)" in said[0] and "(431)" in said[-1], said
