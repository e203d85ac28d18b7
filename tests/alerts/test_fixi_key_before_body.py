"""A delivery whose key is in its URL or headers is refused (401, 403) before its body is received: a caller
without a key that could deliver cannot hold a connection (and the server's time) by declaring a large body
and sending it slowly, or not at all. The answer closes the connection (its body is never read).

PagerDuty's routes are not among them: their key is in the body.

The real server's protocol and the real app, served by uvicorn on a Unix socket."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path

import pytest

from tests.alerts.conftest import make_key
from tests.test_contract_http_limits import served  # noqa: F401  (a fixture)
from warroom.context import AppContext

# Under every route's limit (max_body_bytes), so that the declared size alone is not refused (413).
DECLARED = 500_000


def exchange(path: Path, sent: bytes) -> bytes:
    """Send ``sent`` on a new connection to the server's socket and read to the close (the connection must
    end; a hang fails at the 5 s timeout)."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(5)
        connection.connect(str(path))
        connection.sendall(sent)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                received += chunk
    return received


def declare_and_wait(path: Path, target: str, *headers: str, send: bytes = b"") -> tuple[int, str, bytes]:
    """POST ``target`` declaring a DECLARED-byte body, send only ``send`` of it and wait: the status, the
    head and the body of the answer. A hang (the server waiting for the body) fails at the socket's
    timeout."""
    head = "\r\n".join(
        [
            f"POST {target} HTTP/1.1",
            "Host: x",
            "Content-Type: application/json",
            *headers,
            f"Content-Length: {DECLARED}",
            "",
            "",
        ]
    ).encode()
    head_bytes, _, body = exchange(path, head + send).partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1]) if head_bytes else 0
    return status, head_bytes.decode("latin-1").lower(), body


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/alerts/alertmanager",
        "/api/v1/alerts/grafana",
        "/api/v1/alerts",
        "/api/v1/alerts/webhook/anything",
        "/v2/alerts",
        "/v2/alerts/db-1/close?identifierType=alias",
    ],
)
def test_no_key_is_refused_without_the_body(served: Path, target: str) -> None:  # noqa: F811
    status, head, body = declare_and_wait(served, target)
    assert status == 401, (status, head, body[:300])
    assert "connection: close" in head


@pytest.mark.parametrize(
    "target",
    ["/api/v1/alerts/alertmanager?key=0123456789abcdef0123456789abcdef", "/api/v1/alerts/webhook/x"],
)
def test_a_wrong_key_is_refused_without_the_body(served: Path, target: str) -> None:  # noqa: F811
    bearer = "Authorization: Bearer fedcba9876543210fedcba9876543210"
    status, head, body = declare_and_wait(served, target, bearer, send=b'{"alerts": [' + b" " * 1000)
    assert status == 401, (status, head, body[:300])
    assert "connection: close" in head


def test_a_key_of_another_kind_is_refused_without_the_body(
    served: Path,  # noqa: F811
    context: AppContext,
) -> None:
    key = make_key(context, "generic", "scripts")
    status, _, body = declare_and_wait(served, f"/api/v1/alerts/grafana?key={key}")
    assert status == 403, body[:300]
    genie = make_key(context, "alertmanager", "prom")
    status, _, body = declare_and_wait(served, "/v2/alerts", f"Authorization: GenieKey {genie}")
    assert status == 403, body[:300]
    assert "requestId" in json.loads(body)  # Opsgenie's shape


def test_a_good_key_still_has_its_body_read(served: Path, context: AppContext) -> None:  # noqa: F811
    key = make_key(context, "generic", "scripts")
    body = json.dumps({"summary": "disk full", "dedup_key": "disk-1"}).encode()
    request = "\r\n".join(
        [
            f"POST /api/v1/alerts?key={key} HTTP/1.1",
            "Host: x",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
            "",
            "",
        ]
    ).encode()
    received = exchange(served, request + body)
    assert received.startswith(b"HTTP/1.1 202 "), received[:300]
