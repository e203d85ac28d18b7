"""The 408 a slow client gets is in Warroom's JSON error shape, as every other error (the 414, 431 and 400
the server answers before the app sees a request are): it was ``text/plain``. Against the real server, the
timeouts shortened (WARROOM_HTTP_HEADER_TIMEOUT, WARROOM_HTTP_BODY_TIMEOUT)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


def _answer(connection: socket.socket) -> tuple[bytes, dict[str, str], dict[str, object]]:
    """The status line, headers and JSON body of what the server sends until it closes the connection."""
    connection.settimeout(30)
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    assert int(headers["content-length"]) == len(body), received
    return status.encode(), headers, json.loads(body)


def test_a_late_request_gets_a_json_408(database_url: str, tmp_path: Path) -> None:
    env = {
        "WARROOM_HTTP_HEADER_TIMEOUT": "1",
        "WARROOM_HTTP_BODY_TIMEOUT": "1",
        "WARROOM_HTTP_BODY_MIN_RATE": "100",
    }
    with ServerProcess(
        database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path, extra_env=env
    ) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as stuck:
            stuck.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and then nothing
            status, headers, body = _answer(stuck)
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert headers["content-type"] == "application/json" and headers["connection"] == "close"
        assert body == {
            "error": {
                "code": "request_timeout",
                "message": "the request's headers did not arrive within 1 s; the connection is closed",
                "details": None,
            }
        }

        with socket.create_connection(("127.0.0.1", server.port)) as stalled:
            # PagerDuty's route reads its body first (the key is in it); 10 of 100 bytes, then nothing.
            stalled.sendall(
                b"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n" + b"x" * 10
            )
            status, headers, body = _answer(stalled)
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert headers["content-type"] == "application/json"
        assert body == {
            "error": {
                "code": "request_timeout",
                "message": "the request's body did not arrive within 1 s plus 1 s per 100 bytes; the "
                "connection is closed",
                "details": None,
            }
        }
