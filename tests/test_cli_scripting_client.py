"""QA round (an SRE scripting Warroom from cron): what the CLI says when the answer is not Warroom's, or
comes too late, or never comes. The peers are real HTTP servers on this machine that are not Warroom (a
login page, a proxy, an http-to-https redirect, a server that holds the request); the CLI runs as typed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.peers import free_port
from warroom.cli.main import app
from warroom.client import Client
from warroom.settings import Settings

TOKEN = "wr_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg"
SSO_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in - Acme SSO</title></head><body>...</body></html>"


@dataclass
class NotWarroom:
    """A real HTTP server that answers every request with ``status``, ``headers`` and ``body``; with
    ``holding``, it keeps each request unanswered until the test ends (a server busy past the client's
    wait). ``seen`` has each request's method, path and Authorization header."""

    server: ThreadingHTTPServer
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: bytes = b"{}"
    holding: bool = False
    released: threading.Event = field(default_factory=threading.Event)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.status, self.body = status, body
        self.headers = {name.replace("_", "-"): value for name, value in headers.items()}


@pytest.fixture
def peer() -> Iterator[NotWarroom]:
    peer: NotWarroom

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            peer.seen.append((self.command, self.path, self.headers.get("authorization")))
            if peer.holding:
                peer.released.wait(30)
                return
            self.send_response(peer.status)
            for name, value in peer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(peer.body)))
            self.end_headers()
            self.wfile.write(peer.body)

        do_GET = do_POST = do_PATCH = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    peer = NotWarroom(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield peer
    peer.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def warroom(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI with none of the client's settings from the environment the tests run in."""
    for name in ("WARROOM_URL", "WARROOM_TOKEN", "WARROOM_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    yield CliRunner()


def run(runner: CliRunner, *args: str, **env: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **env})


def said(result: Result) -> str:
    """What the command printed, as one line (an error is one line however long)."""
    return " ".join(result.output.split())


def failed_cleanly(result: Result) -> None:
    """Exit 1 with an error line: no traceback, no Python exception escaping."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and result.output.startswith("error: "), result.output


# --- 1. an answer that comes late is not "cannot reach" ---------------------------------------------------


def test_the_client_waits_longer_than_the_server_waits_for_a_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server waits up to 30 s for a database lock and then answers 503; the client gave up at 15 s and
    said "cannot reach" of a write the server then made."""
    monkeypatch.delenv("WARROOM_TIMEOUT", raising=False)
    server = Settings()
    with Client("http://127.0.0.1:1", TOKEN) as client:
        assert client.timeout > server.sqlite_busy_timeout + 10
        assert client.timeout > server.postgres_lock_timeout + 10
    monkeypatch.setenv("WARROOM_TIMEOUT", "90")
    with Client("http://127.0.0.1:1", TOKEN) as client:
        assert client.timeout == 90


def test_no_answer_to_a_write_says_the_outcome_is_unknown_and_how_to_check(
    peer: NotWarroom, warroom: CliRunner
) -> None:
    peer.holding = True
    env = {"WARROOM_URL": peer.url, "WARROOM_TOKEN": TOKEN, "WARROOM_TIMEOUT": "0.5"}
    created = run(warroom, "incident", "create", "Checkout down", "--severity", "P1", **env)
    failed_cleanly(created)
    assert said(created) == (
        f"error: no answer from {peer.url} within 0.5 s (WARROOM_TIMEOUT), sent 2 times with one "
        "Idempotency-Key (so made once at most); the outcome is unknown: the server may have made the "
        "change; check with `warroom incident list` before retrying"
    )
    assert "cannot reach" not in created.output
    acked = run(warroom, "alerts", "ack", "ALR-12", **env)
    failed_cleanly(acked)
    assert "check with `warroom alerts show ALR-12` before retrying" in said(acked)
    ended = run(warroom, "maintenance", "end", "MW-2", **env)
    assert "check with `warroom maintenance show MW-2` before retrying" in said(ended)
    # A read that gets no answer in time leaves nothing in doubt; nor does a dry run.
    for args in (["incident", "list"], ["severity", "list"]):
        listed = run(warroom, *args, **env)
        failed_cleanly(listed)
        assert said(listed) == (
            f"error: no answer from {peer.url} within 0.5 s (WARROOM_TIMEOUT); WARROOM_TIMEOUT (seconds) "
            "waits longer"
        )
    # Each write was sent twice (the second time with the first's Idempotency-Key), each read once.
    assert [method for method, _, _ in peer.seen] == ["POST"] * 6 + ["GET", "GET"]


def test_a_server_that_takes_no_connection_cannot_be_reached(warroom: CliRunner) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    listed = run(
        warroom, "incident", "create", "x", "--severity", "P3", WARROOM_URL=closed, WARROOM_TOKEN=TOKEN
    )
    failed_cleanly(listed)
    assert said(listed).startswith(f"error: cannot reach {closed}: ")
    assert "outcome" not in listed.output and "WARROOM_URL is not set" not in listed.output


def test_cannot_reach_the_default_address_says_warroom_url_is_not_set(
    warroom: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default address, here one where nothing listens (8080 may be taken on a developer's machine).
    monkeypatch.setattr("warroom.client.DEFAULT_URL", f"http://127.0.0.1:{free_port()}")
    listed = run(warroom, "incident", "list", WARROOM_TOKEN=TOKEN)
    failed_cleanly(listed)
    assert said(listed).endswith(
        "WARROOM_URL is not set (so the default address was tried): set it to the server's address"
    )


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "1e9"])
def test_a_timeout_that_is_no_number_of_seconds_is_refused(warroom: CliRunner, value: str) -> None:
    refused = run(warroom, "incident", "list", WARROOM_URL="http://127.0.0.1:1", WARROOM_TIMEOUT=value)
    failed_cleanly(refused)
    assert "WARROOM_TIMEOUT is seconds to wait for an answer, more than 0 and at most 86400" in said(refused)


# --- 3. an answer that is not Warroom's -------------------------------------------------------------------


def test_a_login_page_answered_with_200_is_said_not_to_be_warroom(
    peer: NotWarroom, warroom: CliRunner
) -> None:
    """An SSO proxy answers 200 with its login page: json.loads raised, and a traceback was all."""
    peer.answer(200, SSO_PAGE, content_type="text/html; charset=utf-8")
    for args in (
        ["incident", "list"],
        ["incident", "create", "x", "--severity", "P3"],
        ["alerts", "show", "1"],
    ):
        answered = run(warroom, *args, WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN)
        failed_cleanly(answered)
        assert said(answered) == (
            f"error: the server at {peer.url} answered something that is not Warroom's API (200 text/html: "
            "'<!DOCTYPE html> <html><head><title>Sign in - Acme SSO</title></head><body>...</…'); check "
            "WARROOM_URL"
        )


def test_json_that_is_not_warroom_s_is_said_not_to_be_warroom(peer: NotWarroom, warroom: CliRunner) -> None:
    """``{"ok": true}`` from some health endpoint raised pydantic's ValidationError."""
    peer.answer(200, b'{"ok": true}', content_type="application/json")
    shown = run(warroom, "incident", "show", "INC-1", WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN)
    failed_cleanly(shown)
    assert said(shown).startswith(
        f'error: the server at {peer.url} answered something that is not Warroom\'s API ({{"ok": true}}: id: '
    )
    assert said(shown).endswith("check WARROOM_URL, or that the server runs Warroom 0.1.0, as this CLI does")
    listed = run(warroom, "severity", "list", WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN)
    failed_cleanly(listed)
    assert '({"ok": true}, where a list was due); check WARROOM_URL' in said(listed)
    # JSON sent as text/plain is no answer of Warroom's either.
    peer.answer(200, b'{"items": []}', content_type="text/plain")
    plain = run(warroom, "incident", "list", WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN)
    failed_cleanly(plain)
    assert "not Warroom's API (200 text/plain: '{\"items\": []}')" in said(plain)


# --- 5. errors from what is not Warroom -------------------------------------------------------------------


def test_an_error_without_warroom_s_error_body_names_the_status_and_the_url(
    peer: NotWarroom, warroom: CliRunner
) -> None:
    peer.answer(404)
    empty = run(warroom, "incident", "list", WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN)
    failed_cleanly(empty)
    # It said "error:  (404 http_error)".
    assert said(empty) == (
        f"error: HTTP 404 from {peer.url} with no Warroom error body (is WARROOM_URL right?)"
    )
    peer.answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")
    proxied = run(warroom, "incident", "list", WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN)
    failed_cleanly(proxied)
    assert said(proxied) == (
        f"error: HTTP 502 from {peer.url} without a Warroom error (text/html: '<html><body><h1>502 Bad "
        "Gateway</h1></body></html>'): the answer of a proxy, or of another server (is WARROOM_URL right?)"
    )


def test_a_redirect_names_where_it_points_and_the_url_to_set(peer: NotWarroom, warroom: CliRunner) -> None:
    """It said "nothing at '/api/v1/incidents' (301 not_found)" of an http-to-https redirect."""
    secure = f"https://127.0.0.1:{peer.server.server_address[1]}"
    peer.answer(301, location=f"{secure}/api/v1/incidents?state=all&limit=50&offset=0")
    moved = run(warroom, "incident", "list", WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN)
    failed_cleanly(moved)
    assert said(moved) == f"error: {peer.url} redirects to {secure} (HTTP 301): set WARROOM_URL={secure}"
    # Behind a path prefix, the prefix stays in the address to set.
    peer.answer(308, location="https://warroom.example.com/ops/api/v1/incidents/INC-4")
    prefixed = run(warroom, "incident", "show", "INC-4", WARROOM_URL=f"{peer.url}/ops", WARROOM_TOKEN=TOKEN)
    assert said(prefixed) == (
        f"error: {peer.url}/ops redirects to https://warroom.example.com/ops (HTTP 308): set "
        "WARROOM_URL=https://warroom.example.com/ops"
    )
    # A login page is not an address to set; its query (a return URL, a state) is left out.
    peer.answer(302, location="/sso/login?return=%2Fapi%2Fv1%2Fincidents&state=s3cr3t")
    login = run(warroom, "incident", "list", WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN)
    failed_cleanly(login)
    assert said(login) == (
        f"error: {peer.url} redirects /api/v1/incidents to {peer.url}/sso/login (HTTP 302), which is not "
        "Warroom's API (a login page?): is WARROOM_URL the server's address?"
    )


# --- 4. a token with a line end ---------------------------------------------------------------------------


@pytest.mark.parametrize("around", ["\r", "\n", "\r\n", " ", "\t"])
def test_a_token_with_a_line_end_is_sent_without_it(
    peer: NotWarroom, warroom: CliRunner, around: str
) -> None:
    """``WARROOM_TOKEN="$(cat file)"`` of a file written on Windows keeps its CR: the request failed with
    "cannot reach …: Illegal header value b'Bearer wr_…'", the secret printed whole."""
    peer.answer(200, b'{"items": [], "total": 0, "limit": 50, "offset": 0}', content_type="application/json")
    listed = run(warroom, "incident", "list", WARROOM_URL=peer.url, WARROOM_TOKEN=TOKEN + around)
    assert listed.exit_code == 0, listed.output
    assert peer.seen[-1][2] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("token", "what"),
    [
        (TOKEN[:20] + "\r" + TOKEN[20:], "a control character at position 21 of 47"),
        (TOKEN[:20] + "\x1b[2J" + TOKEN[20:], "a control character at position 21 of 50"),
        (TOKEN[:10] + " " + TOKEN[10:], "a space at position 11 of 47"),
        (TOKEN[:10] + "…", "a character beyond ASCII at position 11 of 11"),
    ],
)
def test_a_token_with_a_character_no_token_has_is_refused_without_showing_it(
    peer: NotWarroom, warroom: CliRunner, token: str, what: str
) -> None:
    refused = run(warroom, "incident", "list", WARROOM_URL=peer.url, WARROOM_TOKEN=token)
    failed_cleanly(refused)
    assert said(refused) == (
        f"error: WARROOM_TOKEN has {what}, which no Warroom token has: check how it is set (the token is not "
        "shown)"
    )
    assert TOKEN[:10] not in refused.output and TOKEN[-10:] not in refused.output
    assert peer.seen == []  # nothing was sent
