"""A status page's redirect is followed only within its own scheme, host and port, and what a peer answers
never reaches the messages (the log, the poll job's result) other than by where and what kind of problem."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from warroom.alerts import status_pages
from warroom.alerts.config import StatusPageConfig

SECRET = {
    "AccessKeyId": "ASIAFIXGSECRETKEY",
    "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/fixg",
    "Code": "Success",
}


class Server:
    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                answer(self)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _json(handler: BaseHTTPRequestHandler, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _redirect(handler: BaseHTTPRequestHandler, location: str) -> None:
    handler.send_response(302)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


@pytest.fixture
def metadata() -> Iterator[Server]:
    server = Server(lambda handler: _json(handler, SECRET))
    yield server
    server.close()


def _page(url: str) -> StatusPageConfig:
    return StatusPageConfig(name="vendorx", url=url, interval=timedelta(minutes=1))


def test_a_redirect_to_another_host_is_not_followed(metadata: Server) -> None:
    target = f"{metadata.url}/latest/meta-data/iam/security-credentials/role"
    vendor = Server(lambda handler: _redirect(handler, target))
    try:
        with pytest.raises(ValueError) as raised:
            status_pages.fetch(_page(vendor.url))
    finally:
        vendor.close()
    assert metadata.requests == []  # never asked
    message = str(raised.value)
    assert "redirected to another host" in message
    assert "ASIAFIXG" not in message and "wJalr" not in message


def test_a_redirect_on_the_same_host_is_followed() -> None:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/moved/"):
            _json(handler, {"incidents": [], "scheduled_maintenances": []})
        else:
            _redirect(handler, "/moved" + handler.path)

    vendor = Server(answer)
    try:
        status = status_pages.fetch(_page(vendor.url))
    finally:
        vendor.close()
    assert status.incidents == [] and status.maintenances == [] and status.unread == []


def test_a_parse_error_names_where_and_what_never_the_peers_values() -> None:
    vendor = Server(lambda handler: _json(handler, {"incidents": {"input": SECRET}, **SECRET}))
    try:
        with pytest.raises(ValueError) as raised:
            status_pages.fetch(_page(vendor.url))
    finally:
        vendor.close()
    message = str(raised.value)
    assert "is not a Statuspage incident list" in message
    assert "incidents: list_type" in message
    assert "ASIAFIXG" not in message and "wJalr" not in message and "input" not in message
    with pytest.raises(ValueError) as parsed:
        status_pages._parsed("u", json.dumps(SECRET).encode(), status_pages.UnresolvedIncidents, "list")
    assert "ASIAFIXG" not in str(parsed.value) and parsed.value.__suppress_context__  # no traceback of it
